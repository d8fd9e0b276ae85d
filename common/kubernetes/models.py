"""What ``POST /api/kubernetes/generate`` takes and answers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from common.actions.base import AttemptInfo
from common.actions.inputs import MAX_INSTRUCTIONS_CHARS, ActionOptions
from common.agents.workers.kubernetes import (
    AppName,
    Autoscaling,
    DisruptionBudget,
    DnsLabel,
    DnsName,
    EnvName,
    HttpPath,
    Image,
    Port,
    Quantity,
    Replicas,
    SecretRef,
    ServiceType,
)
from common.kubernetes.schema import DEFAULT_VERSION, SchemaReport, check_version
from common.models.base import Usage

MAX_DOCKERFILE_CHARS = 100_000
MAX_COMPOSE_CHARS = 200_000


class ResourcesDescription(BaseModel):
    """Any of the container's requests and limits; the rest is inferred or defaulted."""

    model_config = ConfigDict(extra="forbid")

    cpu_request: Quantity | None = None
    memory_request: Quantity | None = None
    cpu_limit: Quantity | None = None
    memory_limit: Quantity | None = None


class AppDescription(BaseModel):
    """The app, as far as the caller says it. Every field is optional: what is not
    given is inferred from the Dockerfile or compose file, else defaulted. A given
    field always wins over an inferred one."""

    model_config = ConfigDict(extra="forbid")

    name: AppName | None = Field(None, description="DNS label; names every object.")
    image: Image | None = Field(None, description="Pin a tag or digest (`:latest` is a finding).")
    ports: list[Port] | None = Field(
        None, min_length=1, max_length=20, description="Container ports; the first is served."
    )
    replicas: Replicas | None = None
    env: dict[EnvName, str] | None = Field(
        None,
        description="Plain values (a ConfigMap with `configmap`). Names that look like"
        " secrets (PASSWORD, TOKEN, ...) are read from the Secret `<name>-secrets`"
        " instead: their values are never written.",
    )
    secrets: list[SecretRef] | None = Field(
        None, max_length=100, description="Variables read from Secrets kept in the cluster."
    )
    configmap: bool | None = Field(None, description="Put the plain env values in a ConfigMap.")
    resources: ResourcesDescription | None = None
    liveness_path: HttpPath | None = None
    readiness_path: HttpPath | None = None
    startup_path: HttpPath | None = Field(None, description="Adds a startup probe.")
    host: DnsName | None = Field(None, description="Adds an Ingress for this host.")
    tls_secret: DnsName | None = Field(None, description="The Ingress's TLS Secret (kept outside).")
    ingress_class: DnsName | None = None
    service_port: Port | None = None
    service_type: ServiceType | None = None
    namespace: DnsLabel | None = None
    run_as_user: int | None = Field(None, ge=1)
    read_only_root: bool | None = None
    autoscaling: Autoscaling | None = Field(None, description="Adds a HorizontalPodAutoscaler.")
    pdb: DisruptionBudget | None = Field(None, description="Adds a PodDisruptionBudget.")


class KubernetesInput(BaseModel):
    """An app description and/or a Dockerfile or compose file to infer it from."""

    model_config = ConfigDict(extra="forbid")

    app: AppDescription = Field(default_factory=AppDescription)
    dockerfile: str | None = Field(None, max_length=MAX_DOCKERFILE_CHARS)
    compose: str | None = Field(None, max_length=MAX_COMPOSE_CHARS)
    service: str | None = Field(
        None,
        max_length=200,
        description="The compose service to deploy (default: the first with ports).",
    )
    kubernetes_version: str = Field(
        DEFAULT_VERSION, max_length=20, description="Validate against this version's schema."
    )
    instructions: str = Field("", max_length=MAX_INSTRUCTIONS_CHARS)
    refine: bool = Field(True, description="Let the model refine the deterministic manifests.")
    options: ActionOptions = Field(default_factory=ActionOptions)

    @field_validator("kubernetes_version")
    @classmethod
    def _known_version(cls, value: str) -> str:
        return check_version(value)

    @model_validator(mode="after")
    def _something_to_deploy(self) -> KubernetesInput:
        if not (self.app.model_dump(exclude_none=True) or self.dockerfile or self.compose):
            raise ValueError("describe the app (`app`), or give a `dockerfile` or `compose` file")
        if self.service and not self.compose:
            raise ValueError("`service` picks a service of `compose`, which is not given")
        return self


class ObjectRef(BaseModel):
    kind: str
    name: str


class FindingOut(BaseModel):
    rule: str
    severity: str
    message: str
    fix: str
    line: int | None
    object: str = Field(description="`Kind/name` (or `document N`, `the text`).")


class ExternalRef(BaseModel):
    """An object the manifests read but do not (and must not) contain: create it first."""

    kind: str
    name: str
    keys: list[str]


class BestPractices(BaseModel):
    ok: bool = Field(description="No error-level finding.")
    errors: int
    warnings: int
    info: int


class Validation(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    # "schema" would shadow BaseModel.schema(): the attribute has another name.
    schema_: SchemaReport = Field(alias="schema")
    best_practices: BestPractices


class KubernetesOutput(BaseModel):
    yaml: str = Field(description="The manifests, one multi-document YAML text.")
    objects: list[ObjectRef]
    findings: list[FindingOut]
    validation: Validation
    inferred: dict[str, str] = Field(description="Field -> where its value was inferred from.")
    external_refs: list[ExternalRef]
    refined: bool = Field(description="The model's refinement was accepted.")
    notes: list[str]
    attempts: list[AttemptInfo]
    kubernetes_version: str
    model: str | None
    usage: Usage
    duration_ms: int

    def public(self) -> dict[str, Any]:
        """As the API answers it (``schema`` under its real name)."""
        return self.model_dump(mode="json", by_alias=True)
