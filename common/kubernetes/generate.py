"""POST /api/kubernetes/generate: deterministic manifests, refined by the model, always checked.

The flow: the app's spec (the description, over what the Dockerfile or compose file
says) → :func:`~common.agents.workers.kubernetes.base_manifests` → the model refines
them, each answer checked against the Kubernetes version's schema and the review's
error-level rules → the accepted answer, or else the deterministic manifests with
the note "model refinement rejected". Either way the text returned has just been
validated: YAML that does not parse or fails the schema never leaves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError

from common.actions.base import (
    AttemptInfo,
    Progress,
    attempts_of,
    attempts_of_failure,
    record_action,
    report,
)
from common.agents import prompts
from common.agents.checked import ask_code
from common.agents.workers.kubernetes import (
    AppSpec,
    Finding,
    Resources,
    base_manifests,
    check_manifests,
    load_documents,
    looks_secret,
    quantity,
)
from common.code.checks import CheckResult
from common.errors import AppError, InvalidInput, ModelOutputInvalid
from common.kubernetes.infer import Inferred, from_compose, from_dockerfile
from common.kubernetes.models import (
    BestPractices,
    ExternalRef,
    FindingOut,
    KubernetesInput,
    KubernetesOutput,
    ObjectRef,
    Validation,
)
from common.kubernetes.schema import SchemaReport, validate_schema
from common.models.base import ModelClient, Usage

if TYPE_CHECKING:
    from common.jobs import JobContext

DEFAULT_TAG = "0.1.0"
# Fields merged key by key (a given value overrides one key), not replaced whole.
_MERGED = ("env", "resources", "secrets")


# -- the spec -----------------------------------------------------------------


def resolve_spec(request: KubernetesInput) -> tuple[AppSpec, dict[str, str], list[str]]:
    """The spec to deploy: defaults < the Dockerfile < the compose file < the description.

    Returns
    -------
    tuple[AppSpec, dict[str, str], list[str]]
        The spec, where each inferred field came from, and remarks on the inference.

    Raises
    ------
    InvalidInput
        No name to be had, an unreadable compose file, or values (given or inferred)
        that do not make a valid spec; ``fields`` names each, and says where an
        inferred one came from.
    """
    layers: list[Inferred] = []
    if request.dockerfile:
        layers.append(from_dockerfile(request.dockerfile))
    if request.compose:
        layers.append(from_compose(request.compose, request.service))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    notes: list[str] = []
    for layer in layers:  # later layers win
        for name, value in layer.values.items():
            values[name] = _merge(name, values.get(name), value)
        sources.update(layer.sources)
        notes += layer.notes
    given = request.app.model_dump(exclude_none=True)
    for name, value in given.items():
        if name in _MERGED and name in values:
            sources[name] += ", under the given values"
        else:
            sources.pop(name, None)
        values[name] = _merge(name, values.get(name), value)
    # A variable given one way is not also kept the way it was inferred (both given:
    # the spec refuses it, naming the variable).
    if "env" in given and values.get("secrets"):
        values["secrets"] = [s for s in values["secrets"] if s["env"] not in given["env"]]
    if "secrets" in given and values.get("env"):
        named = {s["env"] for s in given["secrets"]} - set(given.get("env", {}))
        values["env"] = {k: v for k, v in values["env"].items() if k not in named}
    tag = values.pop("image_tag", None)
    tag_source = sources.pop("image_tag", None)
    if not values.get("name"):
        raise _invalid("app.name", "give a name: there is nothing to infer it from")
    if not values.get("image"):
        values["image"] = f"{values['name']}:{tag or DEFAULT_TAG}"
        sources["image"] = (
            f"default: the name and {tag_source}" if tag_source else "default: the name"
        )
        notes.append(
            f"No image was given: the manifests run {values['image']}; build and push the"
            " image under that name, or give app.image."
        )
    hidden = sorted(k for k in given.get("env", {}) if k in _secret_env_names(values))
    if hidden:
        notes.append(
            f"{', '.join(hidden)} look(s) like secrets: their values are not written; the"
            f" pod reads them from the Secret {values['name']}-secrets (see external_refs)."
        )
    if "resources" in values:
        values["resources"] = _fit_requests(values["resources"], given.get("resources", {}))
    try:
        spec = AppSpec.model_validate(values)
    except ValidationError as exc:
        fields = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in err["loc"]]
            source = sources.get(loc[0]) if loc else None
            fields.append(
                {
                    "path": ".".join(["body", "app", *loc]),
                    "type": err["type"],
                    "message": err["msg"] + (f" (inferred from {source})" if source else ""),
                }
            )
        summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
        raise InvalidInput(
            f"the app is not deployable as described: {summary}", details={"fields": fields}
        ) from exc
    return spec, dict(sorted(sources.items())), notes


def _secret_env_names(values: dict[str, Any]) -> set[str]:
    return {k for k in values.get("env", {}) if looks_secret(k)}


def _merge(name: str, old: Any, new: Any) -> Any:
    if old is None or name not in _MERGED:
        return new
    if name == "secrets":
        names = {s["env"] for s in new}
        return [s for s in old if s["env"] not in names] + list(new)
    return {**old, **new}


def _fit_requests(resources: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Requests and limits that agree: an inferred or default one gives way to a given one.

    A compose limit of 64M under the default request of 128Mi would be refused by
    the API server; a request is lowered to its limit (or a limit raised to a given
    request) unless both were given, which the spec then refuses with its reason.
    """
    fitted = {**Resources().model_dump(), **resources}
    for what in ("cpu", "memory"):
        request, limit = f"{what}_request", f"{what}_limit"
        if fitted.get(limit) is None or (request in given and limit in given):
            continue
        try:
            over = quantity(fitted[request]) > quantity(fitted[limit])
        except ValueError:
            continue  # the spec's own validation names the bad value
        if over:
            if request in given:
                fitted[limit] = fitted[request]
            else:
                fitted[request] = fitted[limit]
    return fitted


def external_refs(spec: AppSpec) -> list[ExternalRef]:
    """The Secrets the manifests read and must not contain: create them before applying."""
    return [
        ExternalRef(kind="Secret", name=name, keys=keys)
        for name, keys in sorted(spec.secret_keys().items())
    ]


# -- validation ---------------------------------------------------------------


def review(
    yaml_text: str, *, version: str, external: list[ExternalRef]
) -> tuple[SchemaReport, list[Finding]]:
    """The schema report and the best-practice findings of ``yaml_text``."""
    declared: dict[str, list[str]] = {}
    for ref in external:
        declared.setdefault(ref.kind, []).append(ref.name)
    findings = check_manifests(yaml_text, external=declared)
    return validate_schema(yaml_text, version), findings


def refinement_checks(
    base: str, *, version: str, external: list[ExternalRef]
) -> Callable[[str], list[CheckResult]]:
    """What a refined answer must pass: the schema, no error the base did not have
    (an image on ``:latest`` comes from the description, not the model), and every
    object and image of the base kept."""
    _, base_findings = review(base, version=version, external=external)
    inherited = {(f.rule, f.resource) for f in base_findings if f.severity == "error"}
    base_objects, base_images = _inventory(base)

    def check(code: str) -> list[CheckResult]:
        schema, findings = review(code, version=version, external=external)
        results = [
            CheckResult(
                "schema",
                False,
                (f"line {e.line}: " if e.line else "")
                + f"{e.object} {e.path or '(the object)'}: {e.message}"
                f" (Kubernetes {schema.version} schema)",
                e.line,
            )
            for e in schema.errors
        ]
        results += [
            f.to_check()
            for f in findings
            if f.severity == "error" and (f.rule, f.resource) not in inherited
        ]
        if not results:
            objects, images = _inventory(code)
            lost = [f"{kind}/{name}" for kind, name in base_objects if (kind, name) not in objects]
            if lost:
                results.append(
                    CheckResult(
                        "object-missing",
                        False,
                        f"{', '.join(lost)} asked for but missing: keep every object given.",
                    )
                )
            if images != base_images:
                results.append(
                    CheckResult(
                        "image-changed",
                        False,
                        f"the container images must stay {', '.join(sorted(base_images))}"
                        f" (found {', '.join(sorted(images)) or 'none'}).",
                    )
                )
        return results or [CheckResult("kubernetes-validation", True)]

    return check


def _inventory(yaml_text: str) -> tuple[list[tuple[str, str]], set[str]]:
    """(kind, name) of each object, and every container image, of parseable manifests."""
    objects: list[tuple[str, str]] = []
    images: set[str] = set()
    for data, _node in load_documents(yaml_text):
        if not isinstance(data, dict):
            continue
        metadata = data.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        objects.append((str(data.get("kind") or ""), str(name or "")))
        spec = data.get("spec")
        template = spec.get("template") if isinstance(spec, dict) else None
        pod = template.get("spec") if isinstance(template, dict) else None
        for group in ("containers", "initContainers"):
            found = pod.get(group) if isinstance(pod, dict) else None
            for container in found if isinstance(found, list) else []:
                if isinstance(container, dict) and container.get("image"):
                    images.add(str(container["image"]))
    return objects, images


# -- the endpoint -------------------------------------------------------------


def generate_manifests(
    request: KubernetesInput,
    *,
    owner_key_id: UUID | None,
    model: ModelClient | None,
    max_attempts: int,
    on_progress: Progress | None = None,
) -> KubernetesOutput:
    """Kubernetes manifests for ``request``, refined by ``model`` when it can, validated.

    Raises
    ------
    InvalidInput
        The description (with what was inferred) does not make a deployable app.
    AppError
        The model server failed (unavailable, timeout): ``refine: false`` works
        without it.

    Notes
    -----
    Where the schema cannot be checked (kubernetes-validate not installed, as on
    Lambda) the model is not asked: only validated text leaves, and the
    deterministic manifests are validated against every version by the test suite.
    """
    started = time.monotonic()
    version = request.kubernetes_version
    report(on_progress, "spec", 5, "reading the description")
    spec, inferred, notes = resolve_spec(request)
    external = external_refs(spec)
    base = base_manifests(spec)
    base_schema, _ = review(base, version=version, external=external)
    if base_schema.ran and not base_schema.ok:
        # A bug here, not the caller's: never answer with manifests that do not validate.
        raise AppError(
            "the deterministic manifests do not pass the schema",
            details={"schema_errors": [e.model_dump() for e in base_schema.errors]},
        )
    text, refined, attempts = base, False, list[AttemptInfo]()
    usage, model_name = Usage(), None
    if not request.refine or model is None:
        notes.append("Not refined by the model (refine is false): the deterministic manifests.")
    elif not base_schema.ran:
        # A model's answer that no schema checked could carry `replicas: "three"` out;
        # the deterministic manifests are proven against every version by the tests.
        notes.append(
            "Not refined by the model: its answer could not be checked against the schema"
            " here (kubernetes-validate is not installed, as on Lambda), so these are the"
            " deterministic manifests."
        )
    else:
        report(on_progress, "refining", 20, "asking the model to refine the manifests")
        messages = prompts.render(
            "kubernetes_generate",
            version=version,
            summary=_summary(spec),
            instructions=f"\nInstructions: {request.instructions}\n"
            if request.instructions.strip()
            else "",
            start=base,
        )
        try:
            checked = ask_code(
                model,
                messages,
                task=f"kubernetes {spec.name}",
                language="yaml",
                max_attempts=max_attempts,
                extra_checks=refinement_checks(base, version=version, external=external),
            )
        except ModelOutputInvalid as exc:
            attempts = attempts_of_failure(exc)
            model_name = str(exc.details.get("model", model.model))
            last = attempts[-1].problems[0] if attempts and attempts[-1].problems else "unknown"
            notes.append(
                f"Model refinement rejected after {len(attempts)} attempt(s) (last problem:"
                f" {last}): these are the deterministic manifests, which pass every check."
            )
        else:
            text = (
                checked.value.code
                if checked.value.code.endswith("\n")
                else checked.value.code + "\n"
            )
            refined, attempts = True, attempts_of(checked)
            usage, model_name = checked.usage, checked.model
    report(on_progress, "validating", 90, "validating the manifests")
    schema, findings = review(text, version=version, external=external)
    if schema.ran and not schema.ok:
        raise AppError("the manifests failed validation after being accepted")
    objects, _ = _inventory(text)
    output = KubernetesOutput(
        yaml=text,
        objects=[ObjectRef(kind=k, name=n) for k, n in objects],
        findings=[
            FindingOut(
                rule=f.rule,
                severity=f.severity,
                message=f.message,
                fix=f.fix,
                line=f.line,
                object=f.resource,
            )
            for f in findings
        ],
        validation=Validation(
            schema_=schema,
            best_practices=BestPractices(
                ok=not any(f.severity == "error" for f in findings),
                errors=sum(f.severity == "error" for f in findings),
                warnings=sum(f.severity == "warning" for f in findings),
                info=sum(f.severity == "info" for f in findings),
            ),
        ),
        inferred=inferred,
        external_refs=external,
        refined=refined,
        notes=notes,
        attempts=attempts,
        kubernetes_version=version,
        model=model_name,
        usage=usage,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    record_action(
        "kubernetes",
        request,
        {
            "refined": refined,
            "attempts": len(attempts),
            "objects": [f"{o.kind}/{o.name}" for o in output.objects],
            "schema": {"ran": schema.ran, "ok": schema.ok, "version": version},
            "findings": [f"{f.severity}:{f.rule}" for f in findings],
        },
    )
    report(on_progress, "done", 100, f"{len(objects)} objects")
    return output


def _summary(spec: AppSpec) -> str:
    """What the description asks for, in a few words per part (the base shows the rest)."""
    parts = [f"{spec.name}, image {spec.image}, container port(s) {spec.ports}"]
    parts.append(
        f"an HPA from {spec.autoscaling.min_replicas} to {spec.autoscaling.max_replicas} pods"
        f" at {spec.autoscaling.target_cpu_percent}% CPU"
        if spec.autoscaling
        else f"{spec.replicas} replica(s)"
    )
    if spec.host:
        parts.append(f"served at {spec.host}" + (" over TLS" if spec.tls_secret else ""))
    if spec.pdb:
        parts.append("a PodDisruptionBudget")
    if spec.configmap:
        parts.append("its plain settings in a ConfigMap")
    if spec.secret_keys():
        parts.append("secrets read from Secrets: " + ", ".join(sorted(spec.secret_keys())))
    if spec.namespace:
        parts.append(f"in namespace {spec.namespace}")
    return "; ".join(parts) + "."


def _invalid(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(
        message,
        details={"fields": [{"path": f"body.{field_name}", "type": "missing", "message": message}]},
    )


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The "kubernetes" job: the same generation as the request, with the job's progress."""
    from common.config import get_settings
    from common.models import get_model_client

    request = KubernetesInput.model_validate(input)
    output = generate_manifests(
        request,
        owner_key_id=ctx.key_id,
        model=get_model_client() if request.refine else None,
        max_attempts=request.options.max_attempts or get_settings().MAX_ATTEMPTS,
        on_progress=ctx.progress,
    )
    return output.public()
