-- The offline advisory database for dependency scans (common/security/advisories.py):
-- one row per advisory and affected package, its OSV ranges kept as JSON
-- ({"type": "ECOSYSTEM"|"SEMVER", "events": [...]}, or "PEP440" specifiers from
-- safety-db). Filled by `python -m common.cli advisories load ...`, and from the
-- shipped snapshot when a scan finds it empty.

CREATE TABLE IF NOT EXISTS advisories (
    ecosystem    text NOT NULL,                 -- 'PyPI' | 'npm' (OSV's spelling)
    package      text NOT NULL,                 -- normalised: PEP 503 for PyPI, lower case for npm
    advisory_id  text NOT NULL,                 -- GHSA-..., PYSEC-..., pyup.io-...
    aliases      text[] NOT NULL DEFAULT '{}',  -- CVE ids and the other databases' ids
    summary      text NOT NULL DEFAULT '',
    severity     text NOT NULL,                 -- critical | high | medium | low
    score        real,                          -- CVSS v3 base score, when known
    ranges       jsonb NOT NULL DEFAULT '[]',
    versions     text[] NOT NULL DEFAULT '{}',  -- versions listed as affected one by one
    source       text NOT NULL,                 -- snapshot | osv | safety-db | osv.dev
    modified     text,
    loaded_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ecosystem, package, advisory_id)
);
