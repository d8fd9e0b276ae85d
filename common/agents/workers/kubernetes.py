"""The Kubernetes worker: Deployment, Service and Ingress manifests that pass review.

:func:`base_manifests` writes safe manifests from an :class:`AppSpec` with no model
at all; the worker hands them to the model as the starting point for what the task
asks, and :func:`check_manifests` reviews every answer. Error-level findings go back
to the model as failed checks; YAML that does not parse never leaves.

The review is basic on purpose (the fields that most often go wrong); full schema
validation against the Kubernetes OpenAPI comes later.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, Field

from common.agents import prompts
from common.agents.checked import ask_code
from common.agents.workers import WorkerName, WorkerOutput, WorkTask
from common.agents.workers.code import input_messages
from common.agents.workers.docker import exposed_ports, is_dockerfile_path, split_image
from common.code.checks import CheckResult
from common.models.base import ModelClient

Severity = Literal["error", "warning", "info"]

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY", re.I)
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")


class Resources(BaseModel):
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str | None = "500m"
    memory_limit: str = "256Mi"


class AppSpec(BaseModel):
    """What to deploy: one container image behind a Service (and an Ingress with ``host``)."""

    name: str = Field(min_length=1, max_length=63, pattern=_DNS_LABEL)
    image: str = Field(min_length=1, max_length=300, pattern=r"^\S+$")
    # Container ports; the first one is the one the Service, the probes and the Ingress use.
    ports: list[int] = Field(default_factory=lambda: [8080], min_length=1)
    replicas: int = Field(2, ge=0, le=100)
    # Values for names that look like secrets are never written: they are read from the
    # Secret ``<name>-secrets`` instead, which is created outside the manifests.
    env: dict[str, str] = {}
    resources: Resources = Resources()
    liveness_path: str = Field("/healthz", pattern=r"^/")
    readiness_path: str = Field("/healthz", pattern=r"^/")
    host: str | None = Field(None, max_length=253, pattern=_DNS_NAME)
    service_port: int = Field(80, ge=1, le=65535)
    run_as_user: int = Field(10001, ge=1)
    ingress_class: str | None = None


@dataclass(frozen=True)
class Finding:
    """One problem in a set of manifests; ``resource`` is ``Kind/name`` (or ``document N``)."""

    rule: str
    severity: Severity
    line: int | None
    resource: str
    message: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_check(self) -> CheckResult:
        where = f"line {self.line}: " if self.line is not None else ""
        return CheckResult(
            self.rule, False, f"{where}{self.resource}: {self.message} Fix: {self.fix}", self.line
        )


# -- deterministic manifests --------------------------------------------------


def base_manifests(spec: AppSpec) -> str:
    """Deployment + Service (+ Ingress when ``spec.host``) as one multi-document YAML text.

    The same spec always gives the same text, and it passes :func:`check_manifests`
    with no error.
    """
    import yaml

    def labels() -> dict[str, str]:
        # A fresh dict each time: a shared one would be written as a YAML anchor/alias.
        return {"app.kubernetes.io/name": spec.name}

    names = [_port_name(i, port) for i, port in enumerate(spec.ports)]
    probe_port = names[0]
    container: dict[str, Any] = {
        "name": spec.name,
        "image": spec.image,
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"}
            for name, port in zip(names, spec.ports, strict=True)
        ],
    }
    if spec.env:
        container["env"] = [_env_var(spec.name, k, v) for k, v in sorted(spec.env.items())]
    limits = {"memory": spec.resources.memory_limit}
    if spec.resources.cpu_limit:
        limits = {"cpu": spec.resources.cpu_limit, **limits}
    container.update(
        {
            "resources": {
                "requests": {
                    "cpu": spec.resources.cpu_request,
                    "memory": spec.resources.memory_request,
                },
                "limits": limits,
            },
            "livenessProbe": _probe(spec.liveness_path, probe_port, initial_delay=10),
            "readinessProbe": _probe(spec.readiness_path, probe_port, initial_delay=5),
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            # A read-only root filesystem still needs somewhere to write temporary files.
            "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        }
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": spec.name, "labels": labels()},
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": labels()},
            "template": {
                "metadata": {"labels": labels()},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": spec.run_as_user,
                        "runAsGroup": spec.run_as_user,
                        "fsGroup": spec.run_as_user,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "labels": labels()},
        "spec": {
            "type": "ClusterIP",
            "selector": labels(),
            "ports": [
                {
                    "name": name,
                    "port": spec.service_port if i == 0 else port,
                    "targetPort": name,
                    "protocol": "TCP",
                }
                for i, (name, port) in enumerate(zip(names, spec.ports, strict=True))
            ],
        },
    }
    documents: list[dict[str, Any]] = [deployment, service]
    if spec.host:
        ingress_spec: dict[str, Any] = {}
        if spec.ingress_class:
            ingress_spec["ingressClassName"] = spec.ingress_class
        ingress_spec["rules"] = [
            {
                "host": spec.host,
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": spec.name, "port": {"name": probe_port}}
                            },
                        }
                    ]
                },
            }
        ]
        documents.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": {"name": spec.name, "labels": labels()},
                "spec": ingress_spec,
            }
        )
    return "---\n".join(
        yaml.safe_dump(doc, sort_keys=False, default_flow_style=False) for doc in documents
    )


def _port_name(index: int, port: int) -> str:
    return "http" if index == 0 else f"port-{port}"


def _probe(path: str, port: str, *, initial_delay: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": 10,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def _env_var(app: str, name: str, value: str) -> dict[str, Any]:
    if _SECRET_NAME.search(name):
        return {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": f"{app}-secrets", "key": name}},
        }
    return {"name": name, "value": value}


# -- the review ---------------------------------------------------------------


def check_manifests(yaml_text: str) -> list[Finding]:
    """Review Kubernetes manifests (one or more YAML documents).

    Checks that each document has ``apiVersion``, ``kind`` and ``metadata.name``;
    that workloads (Deployment, StatefulSet, DaemonSet) set resources, liveness and
    readiness probes, a non-root security context and pinned images, and that their
    selector matches their pod labels; that each Service selects pods defined here
    and targets one of their container ports; that each Ingress backend is a
    Service defined here.

    Returns
    -------
    list[Finding]
        Every finding, in document order; severity ``error`` means "do not apply".
    """
    import yaml

    try:
        loaded = _load(yaml_text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [
            Finding(
                "yaml-parse",
                "error",
                line,
                "the text",
                f"the YAML does not parse: {problem}.",
                "fix the YAML syntax (indentation, quoting).",
            )
        ]
    documents = [(data, node) for data, node in loaded if data is not None]
    if not documents:
        return [
            Finding(
                "no-documents",
                "error",
                None,
                "the text",
                "there are no manifests.",
                "write at least one Kubernetes object.",
            )
        ]
    findings: list[Finding] = []
    objects: list[_Object] = []
    for index, (data, node) in enumerate(documents, start=1):
        if not isinstance(data, dict):
            findings.append(
                Finding(
                    "not-a-mapping",
                    "error",
                    _line(node),
                    f"document {index}",
                    "a manifest must be a mapping with apiVersion, kind and metadata.",
                    "write the object as key: value pairs.",
                )
            )
            continue
        obj = _Object(data, node, index)
        findings += _check_identity(obj)
        objects.append(obj)
    workloads = [o for o in objects if o.kind in _WORKLOADS]
    services = [o for o in objects if o.kind == "Service"]
    for obj in workloads:
        findings += _check_workload(obj)
    for obj in services:
        findings += _check_service(obj, workloads)
    for obj in objects:
        if obj.kind == "Ingress":
            findings += _check_ingress(obj, services)
    return findings


class _Object:
    def __init__(self, data: dict[str, Any], node: Any, index: int) -> None:
        self.data = data
        self.node = node
        self.kind = str(data.get("kind") or "")
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        self.name = str(name) if name else ""
        self.resource = (
            f"{self.kind}/{self.name}" if self.kind and self.name else f"document {index}"
        )

    def get(self, *path: str | int) -> Any:
        value: Any = self.data
        for key in path:
            if isinstance(key, int):
                value = value[key] if isinstance(value, list) and len(value) > key else None
            else:
                value = value.get(key) if isinstance(value, dict) else None
        return value

    def line(self, *path: str | int) -> int | None:
        return _line(self.node, *path)

    def finding(
        self, rule: str, severity: Severity, path: tuple[str | int, ...], message: str, fix: str
    ) -> Finding:
        return Finding(rule, severity, self.line(*path), self.resource, message, fix)


def _load(text: str) -> list[tuple[Any, Any]]:
    """Each document's data and its node (which knows the lines), as safe_load_all reads them."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        documents = []
        while loader.check_node():
            node = loader.get_node()
            documents.append((loader.construct_document(node), node))
        return documents
    finally:
        loader.dispose()


def _line(node: Any, *path: str | int) -> int | None:
    """The 1-based line of the deepest node of ``path`` that exists under ``node``."""
    import yaml

    if node is None:
        return None
    found = node
    for key in path:
        child = None
        if isinstance(found, yaml.MappingNode) and isinstance(key, str):
            child = next((v for k, v in found.value if k.value == key), None)
        elif isinstance(found, yaml.SequenceNode) and isinstance(key, int):
            child = found.value[key] if len(found.value) > key else None
        if child is None:
            break
        found = child
    return int(found.start_mark.line) + 1


def _check_identity(obj: _Object) -> list[Finding]:
    findings = []
    for path in (("apiVersion",), ("kind",), ("metadata", "name")):
        if not obj.get(*path):
            field = ".".join(str(p) for p in path)
            findings.append(
                obj.finding("missing-field", "error", path, f"{field} is missing.", f"set {field}.")
            )
    return findings


def _check_workload(obj: _Object) -> list[Finding]:
    findings = []
    spec_path: tuple[str | int, ...] = ("spec", "template", "spec")
    labels = obj.get("spec", "template", "metadata", "labels")
    labels = labels if isinstance(labels, dict) else {}
    selector = obj.get("spec", "selector", "matchLabels")
    if not isinstance(selector, dict) or not selector:
        if not obj.get("spec", "selector", "matchExpressions"):
            findings.append(
                obj.finding(
                    "selector-missing",
                    "error",
                    ("spec",),
                    "spec.selector.matchLabels is missing.",
                    "select the pods by the labels of spec.template.metadata.labels.",
                )
            )
    else:
        wrong = sorted(k for k, v in selector.items() if labels.get(k) != v)
        if wrong:
            findings.append(
                obj.finding(
                    "selector-mismatch",
                    "error",
                    ("spec", "selector"),
                    f"the selector's labels {', '.join(wrong)} are not on the pod template"
                    " (spec.template.metadata.labels), so it selects no pods.",
                    "make spec.selector.matchLabels a subset of the template's labels.",
                )
            )
    pod = obj.get(*spec_path)
    containers = obj.get(*spec_path, "containers")
    if not isinstance(pod, dict) or not isinstance(containers, list) or not containers:
        findings.append(
            obj.finding(
                "no-containers",
                "error",
                spec_path,
                "spec.template.spec.containers is missing or empty.",
                "list the containers of the pod.",
            )
        )
        return findings
    found = pod.get("securityContext")
    pod_security: dict[str, Any] = found if isinstance(found, dict) else {}
    for i, container in enumerate(containers):
        path = (*spec_path, "containers", i)
        if isinstance(container, dict):
            findings += _check_container(obj, container, path, pod_security)
    return findings


def _check_container(
    obj: _Object, container: dict[str, Any], path: tuple[str | int, ...], pod: dict[str, Any]
) -> list[Finding]:
    findings = []
    name = container.get("name") or f"#{path[-1]}"
    image = str(container.get("image") or "")
    if not image:
        findings.append(
            obj.finding(
                "missing-field", "error", path, f"container {name} has no image.", "set its image."
            )
        )
    else:
        image_name, tag, digest = split_image(image)
        if not digest and tag in (None, "latest"):
            findings.append(
                obj.finding(
                    "image-latest",
                    "error",
                    (*path, "image"),
                    f"container {name} uses {image}, which means :latest and changes under you.",
                    f"pin a version tag or digest, e.g. {image_name}:1.2.3.",
                )
            )
    resources = container.get("resources")
    requests = resources.get("requests") if isinstance(resources, dict) else None
    limits = resources.get("limits") if isinstance(resources, dict) else None
    if not isinstance(requests, dict) or not {"cpu", "memory"} <= requests.keys():
        findings.append(
            obj.finding(
                "resources-missing",
                "error",
                (*path, "resources"),
                f"container {name} does not request cpu and memory, so the scheduler"
                " cannot place it well and it may starve its neighbours.",
                "set resources.requests.cpu and resources.requests.memory.",
            )
        )
    if not isinstance(limits, dict) or "memory" not in limits:
        findings.append(
            obj.finding(
                "memory-limit-missing",
                "warning",
                (*path, "resources"),
                f"container {name} has no memory limit.",
                "set resources.limits.memory.",
            )
        )
    for probe, what in (("livenessProbe", "liveness"), ("readinessProbe", "readiness")):
        if not isinstance(container.get(probe), dict):
            findings.append(
                obj.finding(
                    f"{what}-probe-missing",
                    "error",
                    path,
                    f"container {name} has no {probe}.",
                    f"add a {probe} (httpGet on a health path, or tcpSocket).",
                )
            )
    security = container.get("securityContext")
    security = security if isinstance(security, dict) else {}
    user = security.get("runAsUser", pod.get("runAsUser"))
    non_root = security.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if user == 0:
        findings.append(
            obj.finding(
                "root-user",
                "error",
                (*path, "securityContext"),
                f"container {name} runs as root (runAsUser: 0).",
                "run as an unprivileged uid (runAsUser: 10001, runAsNonRoot: true).",
            )
        )
    elif non_root is not True and not (isinstance(user, int) and user > 0):
        findings.append(
            obj.finding(
                "root-user",
                "error",
                path,
                f"container {name} may run as root: neither runAsNonRoot: true nor a"
                " non-zero runAsUser is set.",
                "set securityContext.runAsNonRoot: true and runAsUser: 10001 on the pod.",
            )
        )
    if security.get("privileged") is True:
        findings.append(
            obj.finding(
                "privileged",
                "error",
                (*path, "securityContext", "privileged"),
                f"container {name} is privileged: it has full access to the node.",
                "remove privileged: true; add only the capabilities it needs.",
            )
        )
    if security.get("allowPrivilegeEscalation") is not False:
        findings.append(
            obj.finding(
                "privilege-escalation",
                "warning",
                (*path, "securityContext"),
                f"container {name} does not forbid privilege escalation.",
                "set securityContext.allowPrivilegeEscalation: false.",
            )
        )
    env = container.get("env")
    for j, var in enumerate(env if isinstance(env, list) else []):
        if (
            isinstance(var, dict)
            and _SECRET_NAME.search(str(var.get("name") or ""))
            and var.get("value")
        ):
            findings.append(
                obj.finding(
                    "secret-in-env",
                    "warning",
                    (*path, "env", j),
                    f"env {var.get('name')} of container {name} holds a secret in plain"
                    " text in the manifest.",
                    "use valueFrom.secretKeyRef to read it from a Secret.",
                )
            )
    return findings


def _check_service(obj: _Object, workloads: list[_Object]) -> list[Finding]:
    selector = obj.get("spec", "selector")
    if obj.get("spec", "type") == "ExternalName" or not workloads:
        return []
    if not isinstance(selector, dict) or not selector:
        return [
            obj.finding(
                "service-selector-missing",
                "error",
                ("spec",),
                "the Service has no selector, so it sends traffic to no pod.",
                "set spec.selector to the pod labels of the workload it serves.",
            )
        ]
    matched = [w for w in workloads if _selects(selector, w)]
    if not matched:
        return [
            obj.finding(
                "service-selector-mismatch",
                "error",
                ("spec", "selector"),
                f"the selector {selector} matches the pod labels of no workload here.",
                "use the same labels as the Deployment's spec.template.metadata.labels.",
            )
        ]
    numbers: set[int] = set()
    names: set[str] = set()
    for workload in matched:
        for container in _items(workload.get("spec", "template", "spec", "containers")):
            for port in _items(container.get("ports") if isinstance(container, dict) else None):
                if isinstance(port, dict):
                    if isinstance(port.get("containerPort"), int):
                        numbers.add(port["containerPort"])
                    if port.get("name"):
                        names.add(str(port["name"]))
    findings = []
    ports = obj.get("spec", "ports")
    for i, port in enumerate(ports if isinstance(ports, list) else []):
        if not isinstance(port, dict):
            continue
        target = port.get("targetPort", port.get("port"))
        ok = target in names if isinstance(target, str) else target in numbers
        if not ok:
            findings.append(
                obj.finding(
                    "target-port-mismatch",
                    "error",
                    ("spec", "ports", i),
                    f"targetPort {target} is not a containerPort (or port name) of the"
                    f" pods it selects (ports: {sorted(numbers)}, names:"
                    f" {sorted(names)}).",
                    "set targetPort to the container's containerPort or its name.",
                )
            )
    return findings


def _selects(selector: dict[str, Any], workload: _Object) -> bool:
    labels = workload.get("spec", "template", "metadata", "labels")
    return isinstance(labels, dict) and all(labels.get(k) == v for k, v in selector.items())


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _check_ingress(obj: _Object, services: list[_Object]) -> list[Finding]:
    if not services:
        return []
    known = {s.name for s in services}
    findings = []
    for i, _rule in enumerate(_items(obj.get("spec", "rules"))):
        for j, _path in enumerate(_items(obj.get("spec", "rules", i, "http", "paths"))):
            name = obj.get("spec", "rules", i, "http", "paths", j, "backend", "service", "name")
            if name not in known:
                findings.append(
                    obj.finding(
                        "ingress-unknown-service",
                        "warning",
                        ("spec", "rules", i, "http", "paths", j),
                        f"the backend service {name} is not defined here.",
                        f"point it at one of: {', '.join(sorted(known))}.",
                    )
                )
    return findings


# -- the worker ---------------------------------------------------------------

_GENERIC_NAMES = {
    "k8s",
    "kube",
    "kubernetes",
    "deploy",
    "deployment",
    "deployments",
    "manifest",
    "manifests",
    "service",
    "app",
    "application",
    "base",
    "overlays",
    "helm",
    "charts",
    "a",
    "an",
    "the",
    "for",
    "with",
    "in",
    "of",
    "and",
    "to",
    "that",
    "on",
    "api",
}


def spec_for(task: WorkTask, project: str, inputs: dict[str, str]) -> AppSpec:
    """A spec guessed from the task's path, the project and the Dockerfile among ``inputs``."""
    pure = PurePosixPath(task.path)
    candidates = [pure.stem, pure.parent.name]
    name = next((_slug(c) for c in candidates if _slug(c) and _slug(c) not in _GENERIC_NAMES), "")
    if not name:
        words = [w for w in re.findall(r"[a-z0-9]+", project.lower()) if w not in _GENERIC_NAMES]
        name = "-".join(words[:3])[:40].strip("-") or "app"
    ports = next((exposed_ports(c) for p, c in inputs.items() if is_dockerfile_path(p)), [])
    return AppSpec(name=name, image=f"{name}:0.1.0", ports=ports or [8080])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")


def error_checks(yaml_text: str) -> list[CheckResult]:
    """Error-level findings as failed checks (what the model is asked to fix)."""
    errors = [f.to_check() for f in check_manifests(yaml_text) if f.severity == "error"]
    return errors or [CheckResult("manifest-review", True)]


class KubernetesWorker:
    """Writes Kubernetes manifests from safe deterministic ones, refined by the model."""

    name: WorkerName = "kubernetes"

    def __init__(self, spec: AppSpec | None = None) -> None:
        self.spec = spec

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
        """Write the manifests of ``task.path`` (one multi-document YAML file).

        Raises
        ------
        ModelOutputInvalid
            No answer parsed and passed the review's error-level rules.
        """
        spec = self.spec or spec_for(task, project, inputs)
        messages = prompts.render(
            "kubernetes",
            project=project,
            path=task.path,
            description=task.description,
            start=base_manifests(spec),
            feedback=f"\nA previous version failed this check; fix it:\n{feedback}\n"
            if feedback
            else "",
        )
        messages[-1:-1] = input_messages(inputs)
        checked = ask_code(
            model,
            messages,
            task=f"kubernetes {task.path}",
            language="yaml",
            max_attempts=max_attempts,
            extra_checks=error_checks,
        )
        content = checked.value.code
        return WorkerOutput(
            files={task.path: content},
            checks=checked.value.checks,
            findings=[f.to_dict() for f in check_manifests(content) if f.severity != "error"],
            usage=checked.usage,
            attempts=len(checked.attempts),
        )
