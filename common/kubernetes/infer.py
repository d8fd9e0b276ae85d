"""What a Dockerfile or a compose file says about an app, as :class:`AppSpec` fields.

Each inferred value carries where it came from ("Dockerfile line 7 (EXPOSE)",
"compose service web: ports"), so the answer can say so. Values of environment
variables whose names look like secrets are never kept: such a variable becomes a
reference to a Secret.
"""

from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

from common.agents.workers.kubernetes import looks_secret
from common.errors import InvalidInput

_URL = re.compile(r"https?://[^\s'\"|;&)]+")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# Users whose uid the usual base images fix: node (the official Node images) and
# nonroot (distroless).
_KNOWN_USERS = {"node": 1000, "nonroot": 65532}
_ROOT = {"root", "0"}
_BINARY_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


@dataclass
class Inferred:
    """AppSpec fields (``resources`` as a dict of its fields), their sources, and remarks."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def set(self, name: str, value: Any, source: str) -> None:
        self.values[name] = value
        self.sources[name] = source


# -- Dockerfile ---------------------------------------------------------------


def from_dockerfile(content: str) -> Inferred:
    """Ports (EXPOSE), probe paths (a curl/wget URL in HEALTHCHECK), the uid (USER) and
    the name and version (OCI LABELs) of the Dockerfile's final stage."""
    from dockerfile_parse import DockerfileParser

    # A file object, never a path: given none, the parser reads and writes ./Dockerfile.
    parser = DockerfileParser(fileobj=io.BytesIO(content.encode()), env_replace=False)
    instructions = [i for i in parser.structure if i["instruction"] != "COMMENT"]
    starts = [n for n, i in enumerate(instructions) if i["instruction"] == "FROM"]
    # Only the final stage is the image that runs; earlier stages only build it.
    final = instructions[starts[-1] :] if starts else instructions
    out = Inferred()
    ports: list[int] = []
    first_expose: int | None = None
    user: tuple[str, int] | None = None
    runs: list[str] = []
    for item in final:
        name, value, line = item["instruction"], str(item["value"]), int(item["startline"]) + 1
        if name == "EXPOSE":
            for word in value.split():
                number, _, protocol = word.partition("/")
                if number.isdigit() and protocol.lower() in ("", "tcp"):
                    port = int(number)
                    if 1 <= port <= 65535 and port not in ports:
                        ports.append(port)
                        first_expose = first_expose or line
        elif name == "USER":
            user = (value.strip(), line)
        elif name == "RUN":
            runs.append(value)
        elif name == "HEALTHCHECK":
            path = _health_path(value)
            if path is not None:
                where = f"Dockerfile line {line} (HEALTHCHECK)"
                out.set("liveness_path", path, where)
                out.set("readiness_path", path, where)
        elif name == "LABEL":
            labels = _labels(value)
            title = labels.get("org.opencontainers.image.title")
            if title and _slug(title):
                out.set(
                    "name",
                    _slug(title),
                    f"Dockerfile line {line} (LABEL org.opencontainers.image.title)",
                )
            version = labels.get("org.opencontainers.image.version") or labels.get("version")
            if version and re.fullmatch(r"[\w][\w.-]{0,127}", version):
                out.set("image_tag", version, f"Dockerfile line {line} (LABEL version)")
    if ports:
        out.set("ports", ports, f"Dockerfile line {first_expose} (EXPOSE)")
    if user is not None:
        _infer_user(out, user[0], user[1], runs)
    return out


def _health_path(command: str) -> str | None:
    """The path of the URL a HEALTHCHECK fetches, if it fetches one."""
    if command.strip().upper() == "NONE":
        return None
    match = _URL.search(command)
    if match is None:
        return None
    parts = urlsplit(match.group(0))
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return path if re.fullmatch(r"/\S{0,1023}", path) else None


def _labels(value: str) -> dict[str, str]:
    try:
        words = shlex.split(value, posix=True)
    except ValueError:  # an unbalanced quote: nothing reliable to read
        return {}
    return dict(w.split("=", 1) for w in words if "=" in w)


def _infer_user(out: Inferred, user: str, line: int, runs: list[str]) -> None:
    name = user.split(":")[0].strip()
    where = f"Dockerfile line {line} (USER {user})"
    if name.lower() in _ROOT:
        out.notes.append(
            f"The Dockerfile runs as root ({where}); the pod runs as uid 10001: make sure"
            " the image works as a non-root user."
        )
        return
    if name.isdigit():
        out.set("run_as_user", int(name), where)
        return
    if name in _KNOWN_USERS:
        out.set("run_as_user", _KNOWN_USERS[name], where)
        return
    for run in runs:
        for command in re.split(r"&&|\|\||;", run):
            if re.search(r"\b(useradd|adduser)\b", command) and re.search(
                rf"\s{re.escape(name)}\s*$", command
            ):
                uid = re.search(r"(?:--uid|-u)[\s=]+(\d+)", command)
                if uid:
                    out.set("run_as_user", int(uid.group(1)), f"{where} and its useradd --uid")
                    return
    out.notes.append(
        f"{where} names a user, not a uid; the pod runs as uid 10001 (runAsNonRoot needs a"
        " number): give app.run_as_user if the image's user has another uid."
    )


# -- compose ------------------------------------------------------------------


def from_compose(content: str, service: str | None = None) -> Inferred:
    """Image, ports, environment, healthcheck, user, deploy.replicas and
    deploy.resources of one compose service: ``service``, else the first with ports
    (else the first).

    Raises
    ------
    InvalidInput
        Not a compose file, or ``service`` is not one of its services.
    """
    import yaml

    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise _bad("compose", f"the compose file is not YAML{where}") from exc
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict) or not services:
        raise _bad("compose", "the compose file has no `services`")
    if service is not None:
        if service not in services:
            raise _bad(
                "service",
                f"no service {service!r} in the compose file (services:"
                f" {', '.join(map(str, services))})",
            )
        chosen = service
    else:
        with_ports = [
            n for n, s in services.items() if isinstance(s, dict) and (_ports_of(s) or [])
        ]
        chosen = str(with_ports[0] if with_ports else next(iter(services)))
    body = services[chosen]
    body = body if isinstance(body, dict) else {}
    where = f"compose service {chosen}"
    out = Inferred()
    if _slug(chosen):
        out.set("name", _slug(chosen), where)
    image = body.get("image")
    if isinstance(image, str) and image.strip() and " " not in image.strip():
        out.set("image", image.strip(), f"{where}: image")
    ports = _ports_of(body)
    if ports:
        out.set("ports", ports, f"{where}: ports")
    _environment(out, body.get("environment"), where)
    if body.get("env_file"):
        out.notes.append(
            f"{where} reads env_file, which is not given here: add its variables to app.env"
            " (or app.secrets)."
        )
    health = body.get("healthcheck")
    if isinstance(health, dict) and not health.get("disable"):
        test = health.get("test")
        text = " ".join(map(str, test)) if isinstance(test, list) else str(test or "")
        path = _health_path(text)
        if path is not None:
            out.set("liveness_path", path, f"{where}: healthcheck")
            out.set("readiness_path", path, f"{where}: healthcheck")
    user = body.get("user")
    if user is not None:
        name = str(user).split(":")[0].strip()
        if name.isdigit() and int(name) > 0:
            out.set("run_as_user", int(name), f"{where}: user")
    deploy = body.get("deploy")
    deploy = deploy if isinstance(deploy, dict) else {}
    replicas = deploy.get("replicas")
    if isinstance(replicas, int) and not isinstance(replicas, bool) and 0 <= replicas <= 100:
        out.set("replicas", replicas, f"{where}: deploy.replicas")
    _resources(out, deploy.get("resources"), where)
    return out


def _ports_of(body: dict[str, Any]) -> list[int]:
    """The container side of ``ports`` (short and long syntax) and ``expose``, TCP only."""
    found: list[int] = []
    for entry in [*_list(body.get("ports")), *_list(body.get("expose"))]:
        if isinstance(entry, dict):
            protocol = str(entry.get("protocol") or "tcp").lower()
            targets = [str(entry.get("target") or "")] if protocol == "tcp" else []
        else:
            text = str(entry)
            text, _, protocol = text.partition("/")
            targets = [text.rsplit(":", 1)[-1]] if protocol.lower() in ("", "tcp") else []
        for target in targets:
            low, _, high = target.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                continue
            # A range ("8000-8002") maps each port; a few at most make sense here.
            for port in range(int(low), int(high or low) + 1)[:10]:
                if 1 <= port <= 65535 and port not in found:
                    found.append(port)
    return found[:20]


def _environment(out: Inferred, environment: Any, where: str) -> None:
    pairs: list[tuple[str, Any]] = []
    if isinstance(environment, dict):
        pairs = [(str(k), v) for k, v in environment.items()]
    else:
        for item in _list(environment):
            key, sep, value = str(item).partition("=")
            pairs.append((key, value if sep else None))
    plain: dict[str, str] = {}
    secrets: list[dict[str, str]] = []
    unset: list[str] = []
    for key, value in pairs:
        if not _ENV_NAME.match(key):
            continue
        if looks_secret(key):
            # Its value (if any) stays behind: the pod reads it from a Secret.
            secrets.append({"env": key})
        elif value is None:
            unset.append(key)
        else:
            plain[key] = str(value).lower() if isinstance(value, bool) else str(value)
    if plain:
        out.set("env", plain, f"{where}: environment")
    if secrets:
        out.set("secrets", secrets, f"{where}: environment (names that look like secrets)")
    if unset:
        out.notes.append(
            f"{where} takes {', '.join(unset)} from the host's environment: give their"
            " values in app.env."
        )


def _resources(out: Inferred, resources: Any, where: str) -> None:
    if not isinstance(resources, dict):
        return
    found: dict[str, str] = {}
    for part, prefix in (("limits", "limit"), ("reservations", "request")):
        block = resources.get(part)
        if not isinstance(block, dict):
            continue
        cpus = _millicores(block.get("cpus"))
        if cpus:
            found[f"cpu_{prefix}"] = cpus
        memory = _mebibytes(block.get("memory"))
        if memory:
            found[f"memory_{prefix}"] = memory
    if found:
        out.set("resources", found, f"{where}: deploy.resources")


def _millicores(value: Any) -> str | None:
    try:
        cores = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    millis = int(cores * 1000)
    return f"{millis}m" if millis > 0 else None


def _mebibytes(value: Any) -> str | None:
    """Compose memory ("512M", "1g", "2048k", bytes; binary units) as a quantity."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*", str(value or ""), re.I)
    if match is None:
        return None
    size = int(Decimal(match.group(1)) * _BINARY_UNITS[match.group(2).lower()])
    if size <= 0:
        return None
    if size % 2**20 == 0:
        return f"{size // 2**20}Mi"
    if size % 2**10 == 0:
        return f"{size // 2**10}Ki"
    return str(size)


# -- helpers ------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")


def _bad(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(
        message,
        details={"fields": [{"path": f"body.{field_name}", "type": "invalid", "message": message}]},
    )
