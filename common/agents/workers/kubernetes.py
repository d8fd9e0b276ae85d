"""The Kubernetes worker: manifests that pass review, from safe deterministic ones.

:func:`base_manifests` writes safe manifests from an :class:`AppSpec` with no model
at all: a Deployment and a Service, and when asked an Ingress, a ConfigMap, a
HorizontalPodAutoscaler and a PodDisruptionBudget. The worker hands them to the
model as the starting point for what the task asks, and :func:`check_manifests`
reviews every answer. Error-level findings go back to the model as failed checks;
YAML that does not parse never leaves.

The review covers the fields that most often go wrong; validation against the
Kubernetes OpenAPI schema of a given version is :mod:`common.kubernetes.schema`
(``POST /api/kubernetes/generate`` runs both).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.agents import prompts
from common.agents.checked import ask_code
from common.agents.workers import WorkerName, WorkerOutput, WorkTask
from common.agents.workers.code import input_messages
from common.agents.workers.docker import exposed_ports, is_dockerfile_path, split_image
from common.code.checks import CheckResult
from common.models.base import ModelClient

Severity = Literal["error", "warning", "info"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# Kubernetes' own quantity syntax ("100m", "0.5", "256Mi", "1e3"): anything else is
# refused by the API server, yet passes the OpenAPI schema (a plain string there).
_QUANTITY = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY", re.I)
_WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")

# One definition of each constrained value, shared by AppSpec and the endpoint's
# all-optional description of it (common/kubernetes/models.py).
AppName = Annotated[str, Field(min_length=1, max_length=63, pattern=_DNS_LABEL)]
DnsLabel = Annotated[str, Field(min_length=1, max_length=63, pattern=_DNS_LABEL)]
DnsName = Annotated[str, Field(min_length=1, max_length=253, pattern=_DNS_NAME)]
Image = Annotated[str, Field(min_length=1, max_length=300, pattern=r"^\S+$")]
Port = Annotated[int, Field(ge=1, le=65535)]
HttpPath = Annotated[str, Field(max_length=1024, pattern=r"^/\S*$")]
Quantity = Annotated[str, Field(max_length=32, pattern=_QUANTITY)]
# What a container env name and a ConfigMap/Secret key may be (the API's own rules).
EnvName = Annotated[
    str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
]
DataKey = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
Replicas = Annotated[int, Field(ge=0, le=100)]
# A PodDisruptionBudget count: a number of pods or a percentage of them.
PodCount = Annotated[int, Field(ge=0, le=1000)] | Annotated[str, Field(pattern=r"^\d{1,3}%$")]


class Resources(BaseModel):
    cpu_request: Quantity = "100m"
    memory_request: Quantity = "128Mi"
    cpu_limit: Quantity | None = "500m"
    memory_limit: Quantity = "256Mi"

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        # The API server refuses a request above its limit; say so before writing YAML.
        pairs = [("memory", self.memory_request, self.memory_limit)]
        if self.cpu_limit is not None:
            pairs.append(("cpu", self.cpu_request, self.cpu_limit))
        for what, request, limit in pairs:
            if quantity(request) > quantity(limit):
                raise ValueError(f"the {what} request {request} is above its limit {limit}")
        return self


def quantity(text: str) -> Decimal:
    """A Kubernetes quantity ("250m", "1.5Gi", "2") as a plain number (cores, bytes).

    Raises
    ------
    ValueError
        ``text`` is not a quantity.
    """
    match = re.fullmatch(r"([+]?[0-9.]+)([a-zA-Z]*)", text.strip())
    suffixes: dict[str, int | Decimal] = {
        "": 1,
        "m": Decimal("0.001"),
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "P": 10**15,
        "E": 10**18,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
    }
    try:
        if match is None:
            return Decimal(text)  # the exponent form, "1e3"
        return Decimal(match.group(1)) * Decimal(suffixes[match.group(2)])
    except (InvalidOperation, KeyError) as exc:
        raise ValueError(f"{text!r} is not a Kubernetes quantity") from exc


class SecretRef(BaseModel):
    """An environment variable read from a key of a Secret kept in the cluster.

    The Secret's values never appear in the manifests: it is created outside them
    (``kubectl create secret``, an external secrets operator) and only referenced.
    """

    model_config = ConfigDict(extra="forbid")

    env: EnvName = Field(description="The environment variable's name.")
    secret: DnsName | None = Field(None, description="The Secret (default `<app>-secrets`).")
    key: DataKey | None = Field(None, description="Its key (default: the variable's name).")


class Autoscaling(BaseModel):
    """A HorizontalPodAutoscaler (autoscaling/v2) on CPU utilisation."""

    model_config = ConfigDict(extra="forbid")

    min_replicas: int = Field(2, ge=1, le=1000)
    max_replicas: int = Field(10, ge=1, le=1000)
    # Of the CPU request: above 100 is allowed (a pod may burst past its request).
    target_cpu_percent: int = Field(80, ge=1, le=1000)

    @model_validator(mode="after")
    def _ordered(self) -> Autoscaling:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})"
            )
        return self


class DisruptionBudget(BaseModel):
    """A PodDisruptionBudget (policy/v1): exactly one of the two bounds."""

    model_config = ConfigDict(extra="forbid")

    min_available: PodCount | None = None
    max_unavailable: PodCount | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> DisruptionBudget:
        if (self.min_available is None) == (self.max_unavailable is None):
            raise ValueError("give exactly one of min_available and max_unavailable")
        return self


class AppSpec(BaseModel):
    """What to deploy: one container image behind a Service, and what else is asked."""

    name: AppName
    image: Image
    # Container ports; the first one is the one the Service, the probes and the Ingress use.
    ports: list[Port] = Field(default_factory=lambda: [8080], min_length=1, max_length=20)
    replicas: Replicas = 2
    # Plain values. Values of names that look like secrets are never written: they are
    # read from the Secret ``<name>-secrets`` instead, which is created outside the
    # manifests. With ``configmap`` the plain values go to a ConfigMap.
    env: dict[EnvName, Annotated[str, Field(max_length=10_000)]] = {}
    secrets: list[SecretRef] = Field(default_factory=list, max_length=100)
    configmap: bool = False
    resources: Resources = Resources()
    liveness_path: HttpPath = "/healthz"
    readiness_path: HttpPath = "/healthz"
    # A slow starter gets a startup probe, so liveness does not kill it while it starts.
    startup_path: HttpPath | None = None
    host: DnsName | None = None
    tls_secret: DnsName | None = None
    ingress_class: str | None = None
    service_port: Port = 80
    service_type: ServiceType = "ClusterIP"
    namespace: DnsLabel | None = None
    run_as_user: int = Field(10001, ge=1)
    read_only_root: bool = True
    autoscaling: Autoscaling | None = None
    pdb: DisruptionBudget | None = None

    @model_validator(mode="after")
    def _consistent(self) -> AppSpec:
        if len(set(self.ports)) != len(self.ports):
            raise ValueError("ports must not repeat")
        if self.tls_secret and not self.host:
            raise ValueError("tls_secret needs a host (TLS is set on the Ingress)")
        given = [s.env for s in self.secrets]
        repeated = {n for n in given if given.count(n) > 1}
        both = sorted((set(given) & set(self.env)) | repeated)
        if both:
            raise ValueError(f"environment variables given twice: {', '.join(both)}")
        return self

    @property
    def config_name(self) -> str:
        return f"{self.name}-config"

    @property
    def default_secret(self) -> str:
        return f"{self.name}-secrets"

    def secret_keys(self) -> dict[str, list[str]]:
        """Every Secret the manifests read, and its keys: what must exist in the cluster."""
        keys: dict[str, list[str]] = {}
        for name in sorted(self.env):
            if _SECRET_NAME.search(name):
                keys.setdefault(self.default_secret, []).append(name)
        for ref in self.secrets:
            keys.setdefault(ref.secret or self.default_secret, []).append(ref.key or ref.env)
        if self.tls_secret:
            keys.setdefault(self.tls_secret, []).extend(["tls.crt", "tls.key"])
        return keys


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
    """The manifests ``spec`` asks for, as one multi-document YAML text.

    Always a Deployment and a Service; a ConfigMap first with ``configmap``; an
    Ingress with ``host``; a HorizontalPodAutoscaler with ``autoscaling`` (the
    Deployment then leaves ``replicas`` to it); a PodDisruptionBudget with ``pdb``.
    Every object carries the same labels, and every selector selects them. The same
    spec always gives the same text; it passes :func:`check_manifests` with no error
    (unless the spec itself is wrong, e.g. an image on ``:latest``) and the schema of
    every Kubernetes version :mod:`common.kubernetes.schema` knows.
    """
    import yaml

    def labels() -> dict[str, str]:
        # A fresh dict each time: a shared one would be written as a YAML anchor/alias.
        return {"app.kubernetes.io/name": spec.name}

    def metadata(name: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if spec.namespace:
            meta["namespace"] = spec.namespace
        meta["labels"] = labels()
        return meta

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
    plain = {k: v for k, v in spec.env.items() if not _SECRET_NAME.search(k)}
    env = [
        _env_var(spec.name, k, v)
        for k, v in sorted(spec.env.items())
        if not (spec.configmap and k in plain)
    ]
    env += [
        {
            "name": ref.env,
            "valueFrom": {
                "secretKeyRef": {
                    "name": ref.secret or spec.default_secret,
                    "key": ref.key or ref.env,
                }
            },
        }
        for ref in sorted(spec.secrets, key=lambda r: r.env)
    ]
    if spec.configmap:
        container["envFrom"] = [{"configMapRef": {"name": spec.config_name}}]
    if env:
        container["env"] = sorted(env, key=lambda e: str(e["name"]))
    limits = {"memory": spec.resources.memory_limit}
    if spec.resources.cpu_limit:
        limits = {"cpu": spec.resources.cpu_limit, **limits}
    container["resources"] = {
        "requests": {"cpu": spec.resources.cpu_request, "memory": spec.resources.memory_request},
        "limits": limits,
    }
    if spec.startup_path:
        # Up to 150 s to start; liveness only begins once this has passed.
        container["startupProbe"] = _probe(
            spec.startup_path, probe_port, initial_delay=0, period=5, failures=30
        )
    container["livenessProbe"] = _probe(spec.liveness_path, probe_port, initial_delay=10)
    container["readinessProbe"] = _probe(spec.readiness_path, probe_port, initial_delay=5)
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": spec.read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }
    pod: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.run_as_user,
            "runAsGroup": spec.run_as_user,
            "fsGroup": spec.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
    }
    if spec.read_only_root:
        # A read-only root filesystem still needs somewhere to write temporary files.
        container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
        pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    deployment_spec: dict[str, Any] = {}
    if spec.autoscaling is None:
        # With an HPA the count is its to set: a replicas field here would reset it
        # on every `kubectl apply`.
        deployment_spec["replicas"] = spec.replicas
    deployment_spec["selector"] = {"matchLabels": labels()}
    deployment_spec["template"] = {"metadata": {"labels": labels()}, "spec": pod}
    documents: list[dict[str, Any]] = []
    if spec.configmap:
        documents.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": metadata(spec.config_name),
                "data": dict(sorted(plain.items())),
            }
        )
    documents.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(spec.name),
            "spec": deployment_spec,
        }
    )
    documents.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(spec.name),
            "spec": {
                "type": spec.service_type,
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
    )
    if spec.host:
        ingress_spec: dict[str, Any] = {}
        if spec.ingress_class:
            ingress_spec["ingressClassName"] = spec.ingress_class
        if spec.tls_secret:
            ingress_spec["tls"] = [{"hosts": [spec.host], "secretName": spec.tls_secret}]
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
                "metadata": metadata(spec.name),
                "spec": ingress_spec,
            }
        )
    if spec.autoscaling is not None:
        documents.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": metadata(spec.name),
                "spec": {
                    "scaleTargetRef": {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": spec.name,
                    },
                    "minReplicas": spec.autoscaling.min_replicas,
                    "maxReplicas": spec.autoscaling.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": spec.autoscaling.target_cpu_percent,
                                },
                            },
                        }
                    ],
                },
            }
        )
    if spec.pdb is not None:
        budget: dict[str, Any] = {}
        if spec.pdb.min_available is not None:
            budget["minAvailable"] = spec.pdb.min_available
        else:
            budget["maxUnavailable"] = spec.pdb.max_unavailable
        budget["selector"] = {"matchLabels": labels()}
        documents.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": metadata(spec.name),
                "spec": budget,
            }
        )
    return "---\n".join(
        yaml.safe_dump(doc, sort_keys=False, default_flow_style=False) for doc in documents
    )


def _port_name(index: int, port: int) -> str:
    return "http" if index == 0 else f"port-{port}"


def _probe(
    path: str, port: str, *, initial_delay: int, period: int = 10, failures: int = 3
) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": initial_delay,
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def looks_secret(name: str) -> bool:
    """Does an environment variable's name say it holds a secret (its value is then
    never written: it is read from a Secret)?"""
    return _SECRET_NAME.search(name) is not None


def _env_var(app: str, name: str, value: str) -> dict[str, Any]:
    if _SECRET_NAME.search(name):
        return {
            "name": name,
            "valueFrom": {"secretKeyRef": {"name": f"{app}-secrets", "key": name}},
        }
    return {"name": name, "value": value}


# -- the review ---------------------------------------------------------------

# What a set of manifests may reference without defining: kind -> names.
ExternalRefs = Mapping[str, Collection[str]]


def check_manifests(yaml_text: str, *, external: ExternalRefs | None = None) -> list[Finding]:
    """Review Kubernetes manifests (one or more YAML documents).

    Checks that each document has ``apiVersion``, ``kind`` and ``metadata.name``;
    that workloads (Deployment, StatefulSet, DaemonSet) set resources, liveness and
    readiness probes, a non-root security context, a read-only root filesystem and
    pinned images, and that their selector matches their pod labels; that each
    Service selects pods defined here and targets one of their container ports; that
    each Ingress backend is a Service defined here, on one of its ports; that each
    HorizontalPodAutoscaler scales a workload defined here, and each
    PodDisruptionBudget selects one; that ConfigMaps and Secrets the pods read exist.

    Parameters
    ----------
    yaml_text:
        The manifests.
    external:
        ``None`` (a review of some manifests, which may lean on objects elsewhere in
        the cluster): a reference to an object not defined here is at most a
        warning, and Secrets are taken to live outside. Given (these manifests are
        the whole app, plus the objects named here, e.g. ``{"Secret": ["web-tls"]}``):
        a reference to anything else is an error.

    Returns
    -------
    list[Finding]
        Every finding, in document order; severity ``error`` means "do not apply".
    """
    import yaml

    try:
        loaded = load_documents(yaml_text)
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
                    line_of(node),
                    f"document {index}",
                    "a manifest must be a mapping with apiVersion, kind and metadata.",
                    "write the object as key: value pairs.",
                )
            )
            continue
        obj = _Object(data, node, index)
        findings += _check_identity(obj)
        objects.append(obj)
    review = _Review(objects, external)
    for obj in objects:
        if obj.kind in _WORKLOADS:
            findings += _check_workload(obj)
            findings += _check_references(obj, review)
        elif obj.kind == "Service":
            findings += _check_service(obj, review.workloads)
        elif obj.kind == "Ingress":
            findings += _check_ingress(obj, review)
        elif obj.kind == "HorizontalPodAutoscaler":
            findings += _check_autoscaler(obj, review)
        elif obj.kind == "PodDisruptionBudget":
            findings += _check_disruption_budget(obj, review)
    return findings


class _Object:
    def __init__(self, data: dict[str, Any], node: Any, index: int) -> None:
        self.data = data
        self.node = node
        self.kind = str(data.get("kind") or "")
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
        self.name = str(name) if name else ""
        # Objects refer to each other within one namespace (None: the one applied to).
        self.namespace = str(namespace) if namespace else None
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
        return line_of(self.node, *path)

    def finding(
        self, rule: str, severity: Severity, path: tuple[str | int, ...], message: str, fix: str
    ) -> Finding:
        return Finding(rule, severity, self.line(*path), self.resource, message, fix)


class _Review:
    """The objects under review, and how strict to be about what they reference."""

    def __init__(self, objects: list[_Object], external: ExternalRefs | None) -> None:
        self.objects = objects
        self.workloads = [o for o in objects if o.kind in _WORKLOADS]
        self.complete = external is not None
        self.external = {kind: set(names) for kind, names in (external or {}).items()}

    def find(self, kind: str, name: Any, near: _Object) -> _Object | None:
        return next(
            (
                o
                for o in self.objects
                if o.kind == kind and o.name == name and o.namespace == near.namespace
            ),
            None,
        )

    def known(self, kind: str, name: Any, near: _Object) -> bool:
        return self.find(kind, name, near) is not None or name in self.external.get(kind, ())

    def missing_severity(self) -> Severity:
        # Complete manifests that name an absent object will not work once applied; a
        # partial set may well lean on objects applied with another file.
        return "error" if self.complete else "warning"


def load_documents(text: str) -> list[tuple[Any, Any]]:
    """Each document's data and its node (which knows the lines), as safe_load_all reads them.

    Raises
    ------
    yaml.YAMLError
        The text is not YAML.
    """
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


def line_of(node: Any, *path: str | int) -> int | None:
    """The 1-based line of the deepest node of ``path`` that exists under ``node``.

    A mapping's entry is found at its key's line: ``scaleTargetRef:``, not the line
    of the first field under it.
    """
    import yaml

    if node is None:
        return None
    found = node
    line = int(node.start_mark.line)
    for key in path:
        child = None
        if isinstance(found, yaml.MappingNode) and isinstance(key, str):
            entry = next(((k, v) for k, v in found.value if k.value == key), None)
            if entry is not None:
                child, line = entry[1], int(entry[0].start_mark.line)
        elif isinstance(found, yaml.SequenceNode) and isinstance(key, int):
            child = found.value[key] if len(found.value) > key else None
            if child is not None:
                line = int(child.start_mark.line)
        if child is None:
            break
        found = child
    return line + 1


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
    if security.get("readOnlyRootFilesystem") is not True:
        findings.append(
            obj.finding(
                "root-filesystem-writable",
                "warning",
                (*path, "securityContext"),
                f"container {name} can write to its root filesystem, so an intruder can"
                " change its binaries.",
                "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir"
                " where it writes (/tmp).",
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


def _check_ingress(obj: _Object, review: _Review) -> list[Finding]:
    services = [s for s in review.objects if s.kind == "Service"]
    if not services and not review.complete:
        return []
    backends: list[tuple[tuple[str | int, ...], Any]] = []
    if isinstance(obj.get("spec", "defaultBackend"), dict):
        backends.append((("spec", "defaultBackend"), obj.get("spec", "defaultBackend")))
    for i, _rule in enumerate(_items(obj.get("spec", "rules"))):
        for j, _path in enumerate(_items(obj.get("spec", "rules", i, "http", "paths"))):
            where: tuple[str | int, ...] = ("spec", "rules", i, "http", "paths", j)
            backends.append((where, obj.get(*where, "backend")))
    names = ", ".join(sorted(s.name for s in services)) or "none"
    findings = []
    for where, backend in backends:
        reference = backend.get("service") if isinstance(backend, dict) else None
        if not isinstance(reference, dict):
            continue  # a resource backend (e.g. a bucket): not a Service to check
        name = reference.get("name")
        service = review.find("Service", name, obj)
        if service is None:
            findings.append(
                obj.finding(
                    "ingress-unknown-service",
                    review.missing_severity(),
                    where,
                    f"the backend service {name} is not defined here.",
                    f"point it at one of: {names}.",
                )
            )
            continue
        port = reference.get("port")
        port = port if isinstance(port, dict) else {}
        ports = [p for p in _items(service.get("spec", "ports")) if isinstance(p, dict)]
        if "name" in port:
            ok = any(p.get("name") == port["name"] for p in ports)
        else:
            ok = any(p.get("port") == port.get("number") for p in ports)
        if not ok:
            wanted = port.get("name", port.get("number"))
            offered = [str(p.get("name") or p.get("port")) for p in ports]
            findings.append(
                obj.finding(
                    "ingress-unknown-port",
                    "error",
                    (*where, "backend", "service", "port"),
                    f"the backend port {wanted} is not a port of Service {name}"
                    f" (ports: {', '.join(offered) or 'none'}).",
                    "use one of the Service's port names or numbers.",
                )
            )
    for i, tls in enumerate(_items(obj.get("spec", "tls"))):
        secret = tls.get("secretName") if isinstance(tls, dict) else None
        if secret and review.complete and not review.known("Secret", secret, obj):
            findings.append(
                obj.finding(
                    "secret-missing",
                    "error",
                    ("spec", "tls", i, "secretName"),
                    f"the TLS Secret {secret} is neither defined here nor declared to exist.",
                    "declare it (tls_secret) or use a Secret that exists.",
                )
            )
    return findings


def _check_references(obj: _Object, review: _Review) -> list[Finding]:
    """ConfigMaps and Secrets the pods read: a missing one keeps the pod from starting."""
    refs: list[tuple[str, Any, tuple[str | int, ...]]] = []
    pod: tuple[str | int, ...] = ("spec", "template", "spec")
    for group in ("containers", "initContainers"):
        for i, container in enumerate(_items(obj.get(*pod, group))):
            if not isinstance(container, dict):
                continue
            at: tuple[str | int, ...] = (*pod, group, i)
            for j, var in enumerate(_items(container.get("env"))):
                source = var.get("valueFrom") if isinstance(var, dict) else None
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    ref = source.get(key) if isinstance(source, dict) else None
                    if isinstance(ref, dict) and ref.get("optional") is not True:
                        refs.append((kind, ref.get("name"), (*at, "env", j)))
            for j, item in enumerate(_items(container.get("envFrom"))):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    ref = item.get(key) if isinstance(item, dict) else None
                    if isinstance(ref, dict) and ref.get("optional") is not True:
                        refs.append((kind, ref.get("name"), (*at, "envFrom", j)))
    for j, volume in enumerate(_items(obj.get(*pod, "volumes"))):
        if not isinstance(volume, dict):
            continue
        config = volume.get("configMap")
        if isinstance(config, dict) and config.get("optional") is not True:
            refs.append(("ConfigMap", config.get("name"), (*pod, "volumes", j)))
        secret = volume.get("secret")
        if isinstance(secret, dict) and secret.get("optional") is not True:
            refs.append(("Secret", secret.get("secretName"), (*pod, "volumes", j)))
    findings = []
    for kind, name, path in refs:
        if review.known(kind, name, obj):
            continue
        if kind == "Secret" and not review.complete:
            continue  # Secrets are meant to live outside the manifests
        rule = "configmap-missing" if kind == "ConfigMap" else "secret-missing"
        findings.append(
            obj.finding(
                rule,
                review.missing_severity(),
                path,
                f"the pods read {kind} {name}, which is not defined here"
                + (" nor declared to exist" if review.complete else "")
                + ": they will not start without it.",
                f"define the {kind}, or reference one that exists.",
            )
        )
    return findings


def _check_autoscaler(obj: _Object, review: _Review) -> list[Finding]:
    findings = []
    low, high = obj.get("spec", "minReplicas"), obj.get("spec", "maxReplicas")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        findings.append(
            obj.finding(
                "hpa-min-over-max",
                "error",
                ("spec", "minReplicas"),
                f"minReplicas {low} is above maxReplicas {high}.",
                "make minReplicas at most maxReplicas.",
            )
        )
    ref = obj.get("spec", "scaleTargetRef")
    ref = ref if isinstance(ref, dict) else {}
    target = review.find(str(ref.get("kind") or ""), ref.get("name"), obj)
    if target is None or target.kind not in _WORKLOADS:
        if review.workloads or review.complete:
            names = ", ".join(w.resource for w in review.workloads) or "none"
            findings.append(
                obj.finding(
                    "hpa-unknown-target",
                    review.missing_severity(),
                    ("spec", "scaleTargetRef"),
                    f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not a workload"
                    " defined here.",
                    f"point it at one of: {names}.",
                )
            )
        return findings
    cpu_metric = any(
        isinstance(m, dict)
        and m.get("type") == "Resource"
        and isinstance(m.get("resource"), dict)
        and m["resource"].get("name") == "cpu"
        and isinstance(m["resource"].get("target"), dict)
        and m["resource"]["target"].get("type") == "Utilization"
        for m in _items(obj.get("spec", "metrics"))
    )
    containers = _items(target.get("spec", "template", "spec", "containers"))
    unrequested = [
        str(c.get("name"))
        for c in containers
        if isinstance(c, dict) and "cpu" not in (_dict(_dict(c.get("resources")).get("requests")))
    ]
    if cpu_metric and unrequested:
        findings.append(
            obj.finding(
                "hpa-no-cpu-request",
                "error",
                ("spec", "metrics"),
                f"CPU utilisation is a share of the CPU request, and container(s)"
                f" {', '.join(unrequested)} of {target.resource} request none: the"
                " autoscaler cannot compute it.",
                "set resources.requests.cpu on every container of the target.",
            )
        )
    if target.get("spec", "replicas") is not None:
        findings.append(
            Finding(
                "replicas-with-hpa",
                "info",
                target.line("spec", "replicas"),
                target.resource,
                f"{obj.resource} scales it, yet it sets spec.replicas: each `kubectl apply`"
                " resets the count the autoscaler chose.",
                "leave spec.replicas out and let the autoscaler set it.",
            )
        )
    return findings


def _check_disruption_budget(obj: _Object, review: _Review) -> list[Finding]:
    findings = []
    low, high = obj.get("spec", "minAvailable"), obj.get("spec", "maxUnavailable")
    if low is not None and high is not None:
        findings.append(
            obj.finding(
                "pdb-both-set",
                "error",
                ("spec",),
                "minAvailable and maxUnavailable are both set; the API refuses that.",
                "keep one of them.",
            )
        )
    selector = obj.get("spec", "selector", "matchLabels")
    matched = (
        [w for w in review.workloads if w.namespace == obj.namespace and _selects(selector, w)]
        if isinstance(selector, dict) and selector
        else []
    )
    if not matched:
        if review.workloads or review.complete:
            findings.append(
                obj.finding(
                    "pdb-selector-mismatch",
                    review.missing_severity(),
                    ("spec", "selector"),
                    f"the selector {selector} matches the pod labels of no workload here,"
                    " so it protects nothing.",
                    "use the same labels as the Deployment's spec.template.metadata.labels.",
                )
            )
        return findings
    # The fewest pods the workload may run with: an HPA's floor, else its replicas.
    scaler = next(
        (
            o
            for o in review.objects
            if o.kind == "HorizontalPodAutoscaler"
            and o.namespace == obj.namespace
            and o.get("spec", "scaleTargetRef", "name") == matched[0].name
        ),
        None,
    )
    fewest = (
        scaler.get("spec", "minReplicas") or 1
        if scaler is not None
        else matched[0].get("spec", "replicas")
    )
    blocks = high in (0, "0%") or low == "100%"
    if isinstance(low, int) and isinstance(fewest, int) and low >= fewest:
        blocks = True
    if blocks:
        findings.append(
            obj.finding(
                "pdb-blocks-eviction",
                "warning",
                ("spec", "minAvailable" if low is not None else "maxUnavailable"),
                f"with {fewest} pod(s) it allows no voluntary disruption: node drains and"
                " cluster upgrades will hang on these pods.",
                "allow at least one pod to go (maxUnavailable: 1, or minAvailable below"
                " the replicas).",
            )
        )
    return findings


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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
