"""Security scans (``POST /api/security/scan``): deterministic tools first, the model on
top, and no fix counted unless it is proven.

Modules: ``scan`` (the scan and the action), ``sast`` (bandit through the security
worker, semgrep), ``secrets`` (the worker's patterns and detect-secrets), ``sca``
(manifests and lock files), ``advisories`` (the offline advisory database),
``versions`` (PEP 440, SemVer, OSV ranges, CVSS), ``sarif`` (the SARIF 2.1.0 log),
``remediate`` (checked fixes), ``models``; ``rules/`` holds the semgrep rules and
``data/`` the shipped advisory snapshot.

Decisions, and why:

- Bandit stays the security worker's (:mod:`common.agents.workers.security`), now
  able to scan many files with one manager; a large tree is split across child
  interpreters, one per core, so the full scan costs about bandit's wall time.
- Semgrep (72 MB wheel, 287 MB installed, LGPL-2.1) runs offline with
  ``--metrics=off`` on the rules in ``rules/``. It cannot share an environment with
  this project (it pins ``opentelemetry-api~=1.37``; FastAPI needs ``>=1.44``), so it
  is neither a runtime nor a ``local`` dependency: install it in its own virtualenv
  and point ``SEMGREP_BIN`` at it (or put it on PATH). Without it (on Lambda) the
  report says "semgrep not installed" and the other tools still run.
- detect-secrets (Apache-2.0, 120 KB, pure Python) is a runtime dependency, run in
  process on the content in memory; merged with the worker's patterns, one finding
  per file and line.
- The advisory database is a PostgreSQL table (migration 0003) in OSV's terms,
  filled by ``python -m common.cli advisories load`` from an OSV export, from
  safety-db when the user installs it (its data is CC BY-NC 4.0, so it is never
  shipped), or from the curated OSV-format snapshot shipped in ``data/`` (loaded by
  itself into an empty table; used in memory when PostgreSQL is down). OSV.dev is
  asked only with ``"online": true``, with a short timeout; never pip-audit, whose
  dependencies (requests, CacheControl, cyclonedx) would not fit the Lambda layer
  for what one HTTP call does.
- SARIF: one run per tool (a tool that did not run has its run, saying why);
  findings two tools agree on are one finding in the answer, one result per tool.
"""
