"""The Docker worker: a Dockerfile (and its .dockerignore) that a reviewer would let ship.

:func:`check_dockerfile` is the deterministic review every Dockerfile gets, the
model's or anyone's: pinned base images, a non-root user in the final stage, no
secrets baked into a layer, no unverified remote ``ADD``, package caches cleaned,
a ``HEALTHCHECK``. Error-level findings are sent back to the model as failed checks;
warnings and notes are returned with the files.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from common.agents import prompts
from common.agents.checked import ask_code
from common.agents.workers import WorkerName, WorkerOutput, WorkTask
from common.agents.workers.code import input_messages
from common.code.checks import CheckResult
from common.models.base import ModelClient

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class DockerFinding:
    """One problem in a Dockerfile: ``line`` is 1-based (None: the file as a whole)."""

    rule: str
    severity: Severity
    line: int | None
    message: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_check(self) -> CheckResult:
        where = f"line {self.line}: " if self.line is not None else ""
        return CheckResult(self.rule, False, f"{where}{self.message} Fix: {self.fix}", self.line)


# -- the deterministic review -------------------------------------------------

_SECRET_NAME = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?", re.I
)
# A name that points at a secret rather than holding one (FOO_PASSWORD_FILE=/run/secrets/x).
_SECRET_REFERENCE = re.compile(r"_(FILE|PATH|DIR|NAME|URL_ENV)$", re.I)
_SECRET_FILES = [
    (re.compile(r"(^|/)\.env(\.(?!example$|sample$|template$)[\w.-]+)?$"), "a .env file"),
    (re.compile(r"(^|/)id_(rsa|dsa|ecdsa|ed25519)$"), "an SSH private key"),
    (re.compile(r"\.(pem|key|p12|pfx)$"), "a key or certificate file"),
    (re.compile(r"(^|/)\.(netrc|npmrc|pypirc)$"), "a credentials file"),
    (re.compile(r"(^|/)\.(aws|ssh|docker)(/|$)"), "a credentials folder"),
]
_SECRET_VAR = r"\$\{?\w*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY)\w*\}?"
_RUN_SECRETS = [
    (
        re.compile(rf"\b(echo|printf)\b[^;&|]*{_SECRET_VAR}", re.I),
        "a secret variable is echoed in RUN (it ends up in the build log and the layer)",
    ),
    (
        re.compile(
            r"(?:^|[\s;&|])(?:export\s+)?\w*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY)\w*"
            r"=(?!\$)['\"]?[^\s'\"$]{4,}",
            re.I,
        ),
        "a secret value is written into RUN",
    ),
    (
        re.compile(r"--password[= ](?!\$)\S+|\s-u\s+\w+:(?!\$)\S+", re.I),
        "a password is passed on a RUN command line",
    ),
]
_KNOWN_TOKENS = re.compile(
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{36,}\b|\bgithub_pat_\w{22,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_ROOT_USERS = {"root", "0"}


def check_dockerfile(content: str) -> list[DockerFinding]:
    """Review ``content`` as a Dockerfile, without building or running anything.

    Parameters
    ----------
    content:
        The Dockerfile's text. It is parsed from memory: ./Dockerfile is never read
        nor written.

    Returns
    -------
    list[DockerFinding]
        Every finding, in line order; severity ``error`` means "do not ship".
    """
    instructions = _instructions(content)
    findings: list[DockerFinding] = []
    froms = [i for i in instructions if i["instruction"] == "FROM"]
    if not froms:
        return [
            DockerFinding(
                "no-from",
                "error",
                None,
                "the Dockerfile has no FROM instruction.",
                "start with FROM <image>:<tag>.",
            )
        ]
    global_args: dict[str, str] = {}
    stages: list[_Stage] = []
    for item in instructions:
        name, value, line = item["instruction"], item["value"], item["startline"] + 1
        if name == "FROM":
            stage = _start_stage(value, line, global_args, stages, findings)
            stages.append(stage)
            continue
        if not stages:
            if name == "ARG":
                global_args.update(_arg_defaults(value))
                findings += _check_arg(value, line)
            continue
        stage = stages[-1]
        if name == "USER":
            stage.user = value.strip()
            stage.user_line = line
        elif name == "HEALTHCHECK":
            stage.healthcheck = value.strip().upper() != "NONE"
        elif name == "ENV":
            findings += _check_env(value, line)
        elif name == "ARG":
            findings += _check_arg(value, line)
        elif name in ("COPY", "ADD"):
            findings += _check_copy(name, value, line)
        elif name == "RUN":
            findings += _check_run(value, line)
    for item in instructions:
        if item["instruction"] != "COMMENT" and _KNOWN_TOKENS.search(item["value"]):
            findings.append(
                DockerFinding(
                    "secret-literal",
                    "error",
                    item["startline"] + 1,
                    "a credential (cloud key, access token or private key) is written in"
                    " the Dockerfile.",
                    "remove it and revoke it; pass it at build time with RUN --mount=type=secret.",
                )
            )
    findings += _check_final_stage(stages[-1])
    return sorted(findings, key=_in_line_order)


def _in_line_order(finding: DockerFinding) -> tuple[int, str]:
    # Findings about the file as a whole (no line) come last.
    return (finding.line if finding.line is not None else 1 << 30, finding.rule)


@dataclass
class _Stage:
    alias: str | None
    line: int
    user: str | None = None
    user_line: int | None = None
    healthcheck: bool = False


def _instructions(content: str) -> list[dict[str, Any]]:
    from dockerfile_parse import DockerfileParser

    # A file object, never a path: given none, the parser reads and writes ./Dockerfile.
    parser = DockerfileParser(fileobj=io.BytesIO(content.encode()), env_replace=False)
    return [i for i in parser.structure if i["instruction"] != "COMMENT"]


def _start_stage(
    value: str,
    line: int,
    global_args: dict[str, str],
    stages: list[_Stage],
    findings: list[DockerFinding],
) -> _Stage:
    words = [w for w in value.split() if not w.startswith("--")]
    image = words[0] if words else ""
    alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
    parent = next((s for s in reversed(stages) if s.alias and s.alias == image.lower()), None)
    stage = _Stage(alias=alias.lower() if alias else None, line=line)
    if parent is not None:
        # FROM an earlier stage inherits its user (and healthcheck) too.
        stage.user, stage.user_line, stage.healthcheck = (
            parent.user,
            parent.user_line,
            parent.healthcheck,
        )
        return stage
    findings += _check_base_image(image, line, global_args)
    return stage


def _check_base_image(image: str, line: int, args: dict[str, str]) -> list[DockerFinding]:
    resolved = re.sub(
        r"\$\{?(\w+)(?::?-[^}]*)?\}?", lambda m: args.get(m.group(1), m.group(0)), image
    )
    if resolved.lower() == "scratch":
        return []
    if "$" in resolved:
        return [
            DockerFinding(
                "base-image-unresolved",
                "warning",
                line,
                f"the base image {image} depends on a build argument with no default, so"
                " its tag cannot be checked.",
                "give the ARG a default with a pinned tag, e.g. ARG BASE=python:3.12-slim.",
            )
        ]
    name, tag, digest = split_image(resolved)
    if digest:
        return []
    if tag is None:
        return [
            DockerFinding(
                "base-image-untagged",
                "error",
                line,
                f"the base image {name} has no tag, so it means :latest and changes under you.",
                f"pin a version tag, e.g. {name}:<version>, or better a digest (@sha256:...).",
            )
        ]
    if tag == "latest":
        return [
            DockerFinding(
                "base-image-latest",
                "error",
                line,
                f"the base image {name}:latest is not pinned: builds are not reproducible.",
                f"pin a version tag, e.g. {name}:<version>, or better a digest (@sha256:...).",
            )
        ]
    return [
        DockerFinding(
            "base-image-digest",
            "info",
            line,
            f"the base image {name}:{tag} is pinned by tag; a tag can be moved.",
            f"pin it by digest too: {name}:{tag}@sha256:<digest>.",
        )
    ]


def split_image(reference: str) -> tuple[str, str | None, str | None]:
    """``registry:5000/team/app:1.2@sha256:abc`` → (name, tag, digest); absent parts are None."""
    rest, _, digest = reference.partition("@")
    head, _, last = rest.rpartition("/")
    tag = None
    if ":" in last:
        last, tag = last.split(":", 1)
    name = f"{head}/{last}" if head else last
    return name, tag or None, digest or None


def _arg_defaults(value: str) -> dict[str, str]:
    out = {}
    for word in _words(value):
        key, sep, default = word.partition("=")
        if sep:
            out[key] = default
    return out


def _words(value: str) -> list[str]:
    try:
        return shlex.split(value, posix=True)
    except ValueError:  # an unbalanced quote: still check what we can
        return value.split()


def _env_pairs(value: str) -> list[tuple[str, str]]:
    words = _words(value)
    if words and "=" not in words[0]:
        # The legacy form: ENV KEY the rest is the value.
        return [(words[0], " ".join(words[1:]))]
    return [(k, v) for k, _, v in (w.partition("=") for w in words)]


def _is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _SECRET_REFERENCE.search(name)


def _check_env(value: str, line: int) -> list[DockerFinding]:
    return [
        DockerFinding(
            "secret-env",
            "error",
            line,
            f"ENV {name} stores a secret in the image: anyone who pulls it can read it.",
            f"remove it; set {name} at run time (docker run -e, a Kubernetes Secret) or"
            " use RUN --mount=type=secret during the build.",
        )
        for name, val in _env_pairs(value)
        if _is_secret_name(name) and val.strip()
    ]


def _check_arg(value: str, line: int) -> list[DockerFinding]:
    findings = []
    for word in _words(value):
        name, sep, default = word.partition("=")
        if not _is_secret_name(name):
            continue
        if sep and default.strip():
            findings.append(
                DockerFinding(
                    "secret-arg",
                    "error",
                    line,
                    f"ARG {name} has a secret default value, kept in the image history.",
                    "remove the default; use RUN --mount=type=secret,id=... to read it"
                    " during the build.",
                )
            )
        else:
            findings.append(
                DockerFinding(
                    "secret-build-arg",
                    "warning",
                    line,
                    f"ARG {name} looks like a secret; build arguments are kept in the image"
                    " history (docker history).",
                    "use RUN --mount=type=secret,id=... instead of a build argument.",
                )
            )
    return findings


def _copy_sources(value: str) -> tuple[list[str], list[str]]:
    """(flags, sources) of a COPY/ADD value, in shell or JSON form."""
    words: list[str]
    rest = value.strip()
    flags = []
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        flags.append(flag)
        rest = rest.strip()
    if rest.startswith("["):
        try:
            words = [str(w) for w in json.loads(rest)]
        except (json.JSONDecodeError, TypeError):
            words = _words(rest)
    else:
        words = _words(rest)
    return flags, words[:-1]


def _check_copy(name: str, value: str, line: int) -> list[DockerFinding]:
    flags, sources = _copy_sources(value)
    findings = []
    for source in sources:
        path = source.rstrip("/")
        for pattern, what in _SECRET_FILES:
            if pattern.search(path):
                findings.append(
                    DockerFinding(
                        "secret-file",
                        "error",
                        line,
                        f"{name} {source} puts {what} into a layer; it stays there even if"
                        " a later step deletes it.",
                        "do not copy it: list it in .dockerignore and give the secret at run"
                        " time or with RUN --mount=type=secret.",
                    )
                )
                break
        if (
            name == "ADD"
            and re.match(r"https?://", source, re.I)
            and not any(f.startswith("--checksum") for f in flags)
        ):
            findings.append(
                DockerFinding(
                    "add-remote-url",
                    "warning",
                    line,
                    f"ADD {source} downloads a file that nothing verifies.",
                    "use ADD --checksum=sha256:<sum> <url>, or RUN curl -fsSL and check its"
                    " sha256 in the same step.",
                )
            )
    return findings


def _check_run(value: str, line: int) -> list[DockerFinding]:
    findings = []
    for pattern, message in _RUN_SECRETS:
        if pattern.search(value):
            findings.append(
                DockerFinding(
                    "secret-in-run",
                    "error",
                    line,
                    f"{message}.",
                    "mount the secret for this step only: RUN --mount=type=secret,id=name"
                    " and read /run/secrets/name.",
                )
            )
            break
    cache_mounted = "--mount=type=cache" in value
    if re.search(r"\bapt(-get)?\s+(-\S+\s+)*install\b", value) and not cache_mounted:
        if "/var/lib/apt/lists" not in value:
            findings.append(
                DockerFinding(
                    "apt-cache",
                    "warning",
                    line,
                    "apt-get install leaves the package lists in the layer.",
                    "end the same RUN with && rm -rf /var/lib/apt/lists/*.",
                )
            )
        if "--no-install-recommends" not in value:
            findings.append(
                DockerFinding(
                    "apt-recommends",
                    "info",
                    line,
                    "apt-get install also installs recommended packages.",
                    "add --no-install-recommends.",
                )
            )
    if (
        re.search(r"\bapk\s+(-\S+\s+)*add\b", value)
        and "--no-cache" not in value
        and "/var/cache/apk" not in value
        and not cache_mounted
    ):
        findings.append(
            DockerFinding(
                "apk-cache",
                "warning",
                line,
                "apk add keeps its package index in the layer.",
                "use apk add --no-cache.",
            )
        )
    if (
        re.search(r"\bpip3?\s+install\b", value)
        and "--no-cache-dir" not in value
        and not cache_mounted
    ):
        findings.append(
            DockerFinding(
                "pip-cache",
                "info",
                line,
                "pip install keeps its download cache in the layer.",
                "add --no-cache-dir.",
            )
        )
    return findings


def _check_final_stage(stage: _Stage) -> list[DockerFinding]:
    findings = []
    user = (stage.user or "").split(":")[0].strip()
    if not user:
        findings.append(
            DockerFinding(
                "root-user",
                "error",
                stage.line,
                "the final stage sets no USER, so the container runs as root.",
                "create an unprivileged user and switch to it before CMD, e.g."
                " RUN useradd --create-home --uid 10001 app, then USER app.",
            )
        )
    elif user.lower() in _ROOT_USERS:
        findings.append(
            DockerFinding(
                "root-user",
                "error",
                stage.user_line,
                f"USER {stage.user} runs the container as root.",
                "switch to an unprivileged user (USER app, or a numeric uid such as 10001).",
            )
        )
    if not stage.healthcheck:
        findings.append(
            DockerFinding(
                "healthcheck-missing",
                "info",
                None,
                "the final stage has no HEALTHCHECK.",
                "add HEALTHCHECK CMD <a command that fails when the app is unhealthy>.",
            )
        )
    return findings


def exposed_ports(content: str) -> list[int]:
    """The TCP ports a Dockerfile's EXPOSE instructions name, in order, without repeats."""
    ports: list[int] = []
    try:
        instructions = _instructions(content)
    except Exception:  # a Dockerfile we cannot read names no ports
        return ports
    for item in instructions:
        if item["instruction"] != "EXPOSE":
            continue
        for word in item["value"].split():
            number, _, protocol = word.partition("/")
            if number.isdigit() and protocol in ("", "tcp") and int(number) not in ports:
                ports.append(int(number))
    return ports


# -- a deterministic starting point ------------------------------------------

DOCKERIGNORE = """\
# Version control
.git
.gitignore
.hg
.svn

# Virtual environments, dependencies and caches: rebuilt inside the image
.venv
venv
**/__pycache__
**/*.py[cod]
.pytest_cache
.mypy_cache
.ruff_cache
.tox
*.egg-info
node_modules
npm-debug.log*
.npm
.cache
coverage
htmlcov

# Editors and OS files
.idea
.vscode
*.swp
.DS_Store

# Secrets: never part of an image
.env
.env.*
!.env.example
*.pem
*.key
*.p12
*.pfx
id_rsa*
id_dsa*
id_ecdsa*
id_ed25519*
.aws
.ssh
.netrc
.npmrc
.pypirc
secrets
"""

PYTHON_VERSION = "3.12"
NODE_VERSION = "22"
GO_VERSION = "1.23"


def dockerfile_for(files: dict[str, str]) -> str:
    """A plain, safe Dockerfile for the project ``files`` describe (paths from the build context).

    Python (requirements.txt or pyproject.toml), Node (package.json) and Go (go.mod)
    are recognised, in that order, by their manifest nearest the root; anything
    else gets the Python one. The result passes :func:`check_dockerfile` with no
    error.
    """
    manifests = sorted(files, key=lambda p: (p.count("/"), p))
    for path in manifests:
        base = PurePosixPath(path).name
        if base in ("requirements.txt", "pyproject.toml"):
            return _python_dockerfile(files, _folder(path))
        if base == "package.json":
            return _node_dockerfile(files, _folder(path))
        if base == "go.mod":
            return _go_dockerfile(files, _folder(path))
    suffixes = {PurePosixPath(p).suffix for p in files}
    if suffixes & {".js", ".mjs", ".ts"} and not suffixes & {".py"}:
        return _node_dockerfile(files, "")
    if ".go" in suffixes and ".py" not in suffixes:
        return _go_dockerfile(files, "")
    return _python_dockerfile(files, "")


def _folder(path: str) -> str:
    parent = str(PurePosixPath(path).parent)
    return "" if parent == "." else parent + "/"


def _python_dockerfile(files: dict[str, str], root: str) -> str:
    requirements = files.get(f"{root}requirements.txt")
    pyproject = files.get(f"{root}pyproject.toml")
    deps = (requirements or "") + (pyproject or "")
    port = 8000
    module = _python_entry(files, root)
    if re.search(r"\buvicorn\b", deps, re.I) and module:
        command = ["uvicorn", f"{module}:app", "--host", "0.0.0.0", "--port", str(port)]
    elif re.search(r"\bgunicorn\b", deps, re.I) and module:
        command = ["gunicorn", "--bind", f"0.0.0.0:{port}", f"{module}:app"]
    elif module:
        command = ["python", "-m", module]
    else:
        command = ["python", "-m", "app"]
    version = PYTHON_VERSION
    minimum = re.search(r"requires-python\s*=\s*['\"][^'\"]*>=\s*3\.(\d+)", pyproject or "")
    if minimum and int(minimum.group(1)) > int(PYTHON_VERSION.split(".")[1]):
        version = f"3.{minimum.group(1)}"
    if requirements is not None:
        install = [
            f"COPY {root}requirements.txt ./",
            "RUN pip install --no-cache-dir -r requirements.txt",
            f"COPY {root or '.'} .",
        ]
    else:
        install = [f"COPY {root or '.'} .", "RUN pip install --no-cache-dir ."]
    probe = (
        f"python -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)\""
    )
    return "\n".join(
        [
            f"FROM python:{version}-slim",
            "",
            "ENV PYTHONDONTWRITEBYTECODE=1 \\",
            "    PYTHONUNBUFFERED=1 \\",
            "    PIP_DISABLE_PIP_VERSION_CHECK=1",
            "",
            "RUN useradd --create-home --uid 10001 app",
            "WORKDIR /app",
            *install,
            "",
            "USER app",
            f"EXPOSE {port}",
            f"HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD {probe} || exit 1",
            f"CMD {json.dumps(command)}",
            "",
        ]
    )


def _python_entry(files: dict[str, str], root: str) -> str | None:
    """The module that holds the app: main.py, app.py, app/main.py, src/main.py, ..."""
    for candidate in ("main.py", "app.py", "app/main.py", "src/main.py", "server.py", "wsgi.py"):
        if f"{root}{candidate}" in files:
            return candidate.removesuffix(".py").replace("/", ".")
    for candidate in sorted(files):
        if candidate.startswith(root) and candidate.endswith("/__main__.py"):
            return candidate[len(root) :].removesuffix("/__main__.py").replace("/", ".")
    return None


def _node_dockerfile(files: dict[str, str], root: str) -> str:
    try:
        package = json.loads(files.get(f"{root}package.json", "{}"))
    except json.JSONDecodeError:
        package = {}
    if not isinstance(package, dict):
        package = {}
    found = package.get("scripts")
    scripts: dict[str, Any] = found if isinstance(found, dict) else {}
    port = 3000
    has_lock = f"{root}package-lock.json" in files
    if scripts.get("start"):
        command = ["npm", "start"]
    else:
        command = ["node", str(package.get("main") or "index.js")]
    install = "npm ci" if has_lock else "npm install"
    lines = [
        f"FROM node:{NODE_VERSION}-alpine",
        "",
        "WORKDIR /app",
        f"COPY {root}package*.json ./",
    ]
    if scripts.get("build"):
        lines += [
            f"RUN {install} && npm cache clean --force",
            f"COPY --chown=node:node {root or '.'} .",
            "RUN npm run build && npm prune --omit=dev",
        ]
    else:
        lines += [
            f"RUN {install} --omit=dev && npm cache clean --force",
            f"COPY --chown=node:node {root or '.'} .",
        ]
    probe = (
        "node -e \"require('net').connect("
        f"{port}, '127.0.0.1').on('connect', () => process.exit(0))"
        ".on('error', () => process.exit(1))\""
    )
    lines += [
        "",
        "ENV NODE_ENV=production",
        "USER node",
        f"EXPOSE {port}",
        f"HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD {probe}",
        f"CMD {json.dumps(command)}",
        "",
    ]
    return "\n".join(lines)


def _go_dockerfile(files: dict[str, str], root: str) -> str:
    go_mod = files.get(f"{root}go.mod", "")
    declared = re.search(r"^go\s+(\d+\.\d+)", go_mod, re.M)
    version = declared.group(1) if declared else GO_VERSION
    mains = sorted(
        str(PurePosixPath(p[len(root) :]).parent)
        for p, text in files.items()
        if p.startswith(root) and p.endswith(".go") and re.search(r"^package main\b", text, re.M)
    )
    target = "./" + mains[0] if mains and mains[0] != "." else "."
    sums = f" {root}go.sum" if f"{root}go.sum" in files else ""
    port = 8080
    return "\n".join(
        [
            f"FROM golang:{version}-alpine AS build",
            "WORKDIR /src",
            f"COPY {root}go.mod{sums} ./",
            "RUN go mod download",
            f"COPY {root or '.'} .",
            f'RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app {target}',
            "",
            # Distroless has no shell, hence no HEALTHCHECK: the orchestrator probes instead.
            "FROM gcr.io/distroless/static-debian12:nonroot",
            "COPY --from=build /out/app /app",
            "USER nonroot:nonroot",
            f"EXPOSE {port}",
            'ENTRYPOINT ["/app"]',
            "",
        ]
    )


# -- the worker ---------------------------------------------------------------


def is_dockerfile_path(path: str) -> bool:
    name = PurePosixPath(path).name.lower()
    return (
        name in ("dockerfile", "containerfile")
        or name.startswith(("dockerfile.", "containerfile."))
        or name.endswith(".dockerfile")
    )


def error_checks(content: str) -> list[CheckResult]:
    """Error-level findings as failed checks (what the model is asked to fix)."""
    errors = [f.to_check() for f in check_dockerfile(content) if f.severity == "error"]
    return errors or [CheckResult("dockerfile-review", True)]


class DockerWorker:
    """Writes a Dockerfile from a safe deterministic base, refined by the model."""

    name: WorkerName = "docker"

    def run(
        self,
        task: WorkTask,
        *,
        model: ModelClient,
        project: str,
        inputs: dict[str, str],
        feedback: str | None = None,
        max_attempts: int = 3,
    ) -> WorkerOutput:
        """Write the Dockerfile at ``task.path`` (and a ``.dockerignore`` beside it).

        Raises
        ------
        ModelOutputInvalid
            No answer passed the review's error-level rules within ``max_attempts``.
        """
        folder = _folder(task.path)
        if PurePosixPath(task.path).name == ".dockerignore":
            return WorkerOutput(files={task.path: DOCKERIGNORE}, attempts=0)
        context = {p[len(folder) :]: c for p, c in inputs.items() if p.startswith(folder)}
        start = dockerfile_for(context or inputs)
        messages = prompts.render(
            "dockerfile",
            project=project,
            path=task.path,
            description=task.description,
            start=start,
            feedback=f"\nA previous version failed this check; fix it:\n{feedback}\n"
            if feedback
            else "",
        )
        messages[-1:-1] = input_messages(inputs)
        checked = ask_code(
            model,
            messages,
            task=f"dockerfile {task.path}",
            language="dockerfile",
            max_attempts=max_attempts,
            extra_checks=error_checks,
        )
        content = checked.value.code
        files = {task.path: content}
        if is_dockerfile_path(task.path):
            files[f"{folder}.dockerignore"] = DOCKERIGNORE
        return WorkerOutput(
            files=files,
            checks=checked.value.checks,
            findings=[f.to_dict() for f in check_dockerfile(content) if f.severity != "error"],
            usage=checked.usage,
            attempts=len(checked.attempts),
        )
