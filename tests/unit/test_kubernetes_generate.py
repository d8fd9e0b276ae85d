"""POST /api/kubernetes/generate, the pure parts: the full base, inference, the review's
new rules, schema validation, and the refine-or-fall-back loop with a scripted model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from common.agents.workers.kubernetes import AppSpec, base_manifests, check_manifests
from common.errors import InvalidInput
from common.kubernetes import generate, schema
from common.kubernetes.generate import generate_manifests, resolve_spec
from common.kubernetes.infer import from_compose, from_dockerfile
from common.kubernetes.models import KubernetesInput
from tests.fakes.scripted_model import ScriptedModel

FULL_APP: dict[str, Any] = {
    "name": "web",
    "image": "ghcr.io/acme/web:1.4.2",
    "ports": [8000, 9090],
    "replicas": 3,
    "env": {"LOG_LEVEL": "info", "DB_PASSWORD": "hunter2"},
    "secrets": [{"env": "API_TOKEN", "secret": "web-api", "key": "token"}],
    "configmap": True,
    "resources": {"cpu_request": "250m", "memory_request": "256Mi", "memory_limit": "512Mi"},
    "liveness_path": "/livez",
    "readiness_path": "/readyz",
    "startup_path": "/startz",
    "host": "web.example.com",
    "tls_secret": "web-tls",
    "ingress_class": "nginx",
    "service_type": "LoadBalancer",
    "namespace": "shop",
    "autoscaling": {"min_replicas": 2, "max_replicas": 8, "target_cpu_percent": 70},
    "pdb": {"max_unavailable": 1},
}
FULL = AppSpec.model_validate(FULL_APP)
DECLARED = {"Secret": ["web-api", "web-secrets", "web-tls"]}


@pytest.fixture(autouse=True)
def no_action_history(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """What the endpoint would record as its one history entry (no Mongo in unit tests)."""
    recorded: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(generate, "record_action", lambda k, r, e: recorded.append((k, e)))
    return recorded


def kinds(text: str) -> list[str]:
    return [d["kind"] for d in yaml.safe_load_all(text)]


def line_with(text: str, needle: str, occurrence: int = 1) -> int:
    found = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    return found[occurrence - 1]


# -- the deterministic base ----------------------------------------------------------


@pytest.mark.parametrize("version", schema.supported_versions())
def test_the_full_base_validates_on_every_version_with_nothing_to_say(version: str) -> None:
    text = base_manifests(FULL)

    report = schema.validate_schema(text, version)

    assert report.ran is True and report.ok is True, report.errors
    assert check_manifests(text, external=DECLARED) == []
    assert check_manifests(text) == []


def test_the_full_base_has_every_asked_object_with_one_set_of_labels() -> None:
    text = base_manifests(FULL)
    docs = list(yaml.safe_load_all(text))
    by_kind = {d["kind"]: d for d in docs}
    labels = {"app.kubernetes.io/name": "web"}

    assert kinds(text) == [
        "ConfigMap",
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    assert all(d["metadata"]["namespace"] == "shop" for d in docs)
    assert all(d["metadata"]["labels"] == labels for d in docs)
    deployment = by_kind["Deployment"]["spec"]
    assert "replicas" not in deployment  # the HPA owns the count
    assert deployment["selector"]["matchLabels"] == deployment["template"]["metadata"]["labels"]
    pod = deployment["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert c["envFrom"] == [{"configMapRef": {"name": "web-config"}}]
    assert by_kind["ConfigMap"]["data"] == {"LOG_LEVEL": "info"}
    assert c["env"] == [
        {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "web-api", "key": "token"}}},
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "web-secrets", "key": "DB_PASSWORD"}},
        },
    ]
    assert "hunter2" not in text
    assert c["startupProbe"]["httpGet"]["path"] == "/startz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"]["requests"] == {"cpu": "250m", "memory": "256Mi"}
    assert by_kind["Service"]["spec"]["type"] == "LoadBalancer"
    assert by_kind["Ingress"]["spec"]["tls"] == [
        {"hosts": ["web.example.com"], "secretName": "web-tls"}
    ]
    hpa = by_kind["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 8)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert by_kind["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": labels},
    }
    assert FULL.secret_keys() == {
        "web-api": ["token"],
        "web-secrets": ["DB_PASSWORD"],
        "web-tls": ["tls.crt", "tls.key"],
    }


def test_a_writable_root_filesystem_has_no_tmp_volume_and_is_a_warning() -> None:
    text = base_manifests(AppSpec(name="api", image="api:1.0.0", read_only_root=False))

    assert "emptyDir" not in text
    assert schema.validate_schema(text, "1.30").ok is True
    assert [(f.rule, f.severity) for f in check_manifests(text)] == [
        ("root-filesystem-writable", "warning")
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"ports": [8000, 8000]},
        {"ports": [70000]},
        {"tls_secret": "web-tls"},  # no host
        {"env": {"A": "1"}, "secrets": [{"env": "A"}]},
        {"autoscaling": {"min_replicas": 5, "max_replicas": 2}},
        {"pdb": {}},
        {"pdb": {"min_available": 1, "max_unavailable": 1}},
        {"resources": {"cpu_request": "lots"}},
        {"resources": {"memory_request": "1Gi", "memory_limit": "512Mi"}},
        {"env": {"BAD NAME": "x"}},
        {"namespace": "Shop"},
    ],
)
def test_a_bad_spec_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AppSpec.model_validate({"name": "web", "image": "web:1.0.0", **bad})


# -- inference -----------------------------------------------------------------------

DOCKERFILE = """\
FROM python:3.12 AS build
EXPOSE 9999
RUN pip wheel -w /wheels .

FROM python:3.12-slim
LABEL org.opencontainers.image.title="Todo API" org.opencontainers.image.version="2.1.0"
RUN useradd --create-home --uid 10042 app
USER app
EXPOSE 8000/tcp 5353/udp 9090
HEALTHCHECK --interval=30s CMD curl -fsS http://localhost:8000/health/live || exit 1
CMD ["python", "-m", "todo"]
"""

COMPOSE = """\
services:
  db:
    image: postgres:16.4
  api:
    image: ghcr.io/acme/todo:2.1.0
    ports:
      - "8080:8000"
      - target: 9000
        published: 9001
      - "127.0.0.1:5000:5001/udp"
    expose: ["7000"]
    user: "1001:1001"
    environment:
      LOG_LEVEL: debug
      DEBUG: false
      DATABASE_PASSWORD: s3cret
      FROM_HOST:
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8000/ready"]
    deploy:
      replicas: 4
      resources:
        limits: {cpus: "0.75", memory: 64M}
        reservations: {cpus: "0.25"}
"""


def test_a_dockerfile_gives_the_final_stage_ports_probe_uid_name_and_tag() -> None:
    found = from_dockerfile(DOCKERFILE)

    assert found.values == {
        "name": "todo-api",
        "image_tag": "2.1.0",
        "ports": [8000, 9090],
        "liveness_path": "/health/live",
        "readiness_path": "/health/live",
        "run_as_user": 10042,
    }
    assert found.sources["ports"] == "Dockerfile line 9 (EXPOSE)"
    assert found.sources["liveness_path"] == "Dockerfile line 10 (HEALTHCHECK)"
    assert found.sources["run_as_user"].startswith("Dockerfile line 8 (USER app)")


@pytest.mark.parametrize(
    ("user", "uid", "note"),
    [("1000:1000", 1000, None), ("node", 1000, None), ("root", None, "root"), ("app", None, "uid")],
)
def test_the_dockerfile_user(user: str, uid: int | None, note: str | None) -> None:
    found = from_dockerfile(f"FROM node:22-alpine\nUSER {user}\n")

    assert found.values.get("run_as_user") == uid
    assert (note is None) == (not found.notes)
    if note:
        assert note in found.notes[0]


def test_a_compose_service_gives_image_ports_env_probe_replicas_and_resources() -> None:
    found = from_compose(COMPOSE)  # the first service with ports: api

    assert found.values == {
        "name": "api",
        "image": "ghcr.io/acme/todo:2.1.0",
        "ports": [8000, 9000, 7000],
        "env": {"LOG_LEVEL": "debug", "DEBUG": "false"},
        "secrets": [{"env": "DATABASE_PASSWORD"}],
        "liveness_path": "/ready",
        "readiness_path": "/ready",
        "run_as_user": 1001,
        "replicas": 4,
        "resources": {"cpu_limit": "750m", "memory_limit": "64Mi", "cpu_request": "250m"},
    }
    assert "s3cret" not in repr(found)
    assert found.sources["replicas"] == "compose service api: deploy.replicas"
    assert any("FROM_HOST" in n for n in found.notes)
    assert from_compose(COMPOSE, "db").values == {"name": "db", "image": "postgres:16.4"}


@pytest.mark.parametrize(
    ("text", "service", "path"),
    [
        ("services: [1,\n", None, "body.compose"),
        ("version: '3'\n", None, "body.compose"),
        (COMPOSE, "nope", "body.service"),
    ],
)
def test_an_unusable_compose_file_is_invalid_input(
    text: str, service: str | None, path: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        from_compose(text, service)

    assert caught.value.details["fields"][0]["path"] == path


def test_given_fields_win_over_compose_which_wins_over_the_dockerfile() -> None:
    request = KubernetesInput.model_validate(
        {
            "app": {
                "replicas": 2,
                "env": {"LOG_LEVEL": "warning"},
                "resources": {"cpu_limit": "1"},
            },
            "dockerfile": DOCKERFILE,
            "compose": COMPOSE,
        }
    )

    spec, inferred, notes = resolve_spec(request)

    assert (spec.name, spec.image, spec.ports) == (
        "api",
        "ghcr.io/acme/todo:2.1.0",
        [8000, 9000, 7000],
    )
    assert spec.replicas == 2 and "replicas" not in inferred
    assert spec.env == {"LOG_LEVEL": "warning", "DEBUG": "false"}
    assert spec.run_as_user == 1001  # compose's user over the Dockerfile's
    assert inferred["run_as_user"] == "compose service api: user"
    assert inferred["env"] == "compose service api: environment, under the given values"
    assert inferred["ports"] == "compose service api: ports"
    # The compose limit of 64Mi is below the default request: the request gives way.
    assert spec.resources.model_dump() == {
        "cpu_request": "250m",
        "memory_request": "64Mi",
        "cpu_limit": "1",
        "memory_limit": "64Mi",
    }
    assert [s.env for s in spec.secrets] == ["DATABASE_PASSWORD"]
    assert any("FROM_HOST" in n for n in notes)


def test_a_variable_given_as_a_secret_is_no_longer_the_inferred_plain_value() -> None:
    request = KubernetesInput.model_validate(
        {"app": {"secrets": [{"env": "LOG_LEVEL", "secret": "logging"}]}, "compose": COMPOSE}
    )

    spec, _, _ = resolve_spec(request)

    assert spec.env == {"DEBUG": "false"}
    assert [s.env for s in spec.secrets] == ["DATABASE_PASSWORD", "LOG_LEVEL"]


def test_with_a_dockerfile_alone_the_image_is_named_after_the_app_and_the_answer_says_so() -> None:
    spec, inferred, notes = resolve_spec(KubernetesInput(dockerfile=DOCKERFILE))

    assert spec.image == "todo-api:2.1.0"
    assert inferred["image"].startswith("default: the name and Dockerfile line 6")
    assert any("build and push" in n for n in notes)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"dockerfile": "FROM python:3.12-slim\n"}, "body.app.name"),
        ({"app": {"name": "web"}, "compose": "services:\n  web:\n    image: 'a b'\n"}, None),
        (
            {"app": {"name": "web", "resources": {"memory_request": "1Gi", "memory_limit": "1Mi"}}},
            "body.app.resources",
        ),
    ],
)
def test_a_spec_that_cannot_be_made_is_invalid_input(
    body: dict[str, Any], path: str | None
) -> None:
    request = KubernetesInput.model_validate(body)
    if path is None:  # an image with a space is not inferred at all: the default stands
        spec, inferred, _ = resolve_spec(request)
        assert spec.image == "web:0.1.0" and inferred["image"] == "default: the name"
        return

    with pytest.raises(InvalidInput) as caught:
        resolve_spec(request)

    assert caught.value.details["fields"][0]["path"] == path


# -- the review's rules, each with its line ------------------------------------------

Docs = list[dict[str, Any]]
BASE = base_manifests(FULL)


def mutated(change: Callable[[Docs], object]) -> str:
    docs = list(yaml.safe_load_all(BASE))
    change(docs)
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def doc(docs: Docs, kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def container(docs: Docs) -> dict[str, Any]:
    return doc(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def _hpa(docs: Docs) -> dict[str, Any]:
    return doc(docs, "HorizontalPodAutoscaler")["spec"]  # type: ignore[no-any-return]


def _pdb(docs: Docs) -> dict[str, Any]:
    return doc(docs, "PodDisruptionBudget")["spec"]  # type: ignore[no-any-return]


def _backend(docs: Docs) -> dict[str, Any]:
    ingress = doc(docs, "Ingress")["spec"]
    return ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]  # type: ignore[no-any-return]


RULES: list[tuple[str, Callable[[Docs], object], str, str, int, str]] = [
    # (rule, change, severity with the whole app declared, the text of its line and
    # which occurrence of it within the object's document, the object)
    (
        "image-latest",
        lambda d: container(d).update(image="ghcr.io/acme/web:latest"),
        "error",
        "image: ghcr.io/acme/web:latest",
        1,
        "Deployment/web",
    ),
    (
        "resources-missing",
        lambda d: container(d).pop("resources"),
        "error",
        "- name: web",
        1,
        "Deployment/web",
    ),
    (
        "liveness-probe-missing",
        lambda d: container(d).pop("livenessProbe"),
        "error",
        "- name: web",
        1,
        "Deployment/web",
    ),
    (
        "root-user",
        lambda d: container(d)["securityContext"].update(runAsUser=0),
        "error",
        "securityContext:",
        2,  # the container's, after the pod's
        "Deployment/web",
    ),
    (
        "root-filesystem-writable",
        lambda d: container(d)["securityContext"].update(readOnlyRootFilesystem=False),
        "warning",
        "securityContext:",
        2,
        "Deployment/web",
    ),
    (
        "selector-mismatch",
        lambda d: doc(d, "Deployment")["spec"]["selector"].update(matchLabels={"app": "x"}),
        "error",
        "selector:",
        1,
        "Deployment/web",
    ),
    (
        "target-port-mismatch",
        lambda d: doc(d, "Service")["spec"]["ports"][0].update(targetPort=8001),
        "error",
        "- name: http",
        1,
        "Service/web",
    ),
    (
        "ingress-unknown-service",
        lambda d: _backend(d).update(name="other"),
        "error",
        "- path: /",
        1,
        "Ingress/web",
    ),
    (
        "ingress-unknown-port",
        lambda d: _backend(d).update(port={"number": 8443}),
        "error",
        "port:",
        1,
        "Ingress/web",
    ),
    (
        "configmap-missing",
        lambda d: container(d)["envFrom"][0]["configMapRef"].update(name="nope"),
        "error",
        "- configMapRef:",
        1,
        "Deployment/web",
    ),
    (
        "secret-missing",
        lambda d: container(d)["env"][0]["valueFrom"]["secretKeyRef"].update(name="undeclared"),
        "error",
        "- name: API_TOKEN",
        1,
        "Deployment/web",
    ),
    (
        "hpa-unknown-target",
        lambda d: _hpa(d)["scaleTargetRef"].update(name="webb"),
        "error",
        "scaleTargetRef:",
        1,
        "HorizontalPodAutoscaler/web",
    ),
    (
        "hpa-min-over-max",
        lambda d: _hpa(d).update(minReplicas=9),
        "error",
        "minReplicas: 9",
        1,
        "HorizontalPodAutoscaler/web",
    ),
    (
        "hpa-no-cpu-request",
        lambda d: container(d)["resources"]["requests"].pop("cpu"),
        "error",
        "metrics:",
        1,
        "HorizontalPodAutoscaler/web",
    ),
    (
        "replicas-with-hpa",
        lambda d: doc(d, "Deployment")["spec"].update(replicas=3),
        "info",
        "replicas: 3",
        1,
        "Deployment/web",
    ),
    (
        "pdb-selector-mismatch",
        lambda d: _pdb(d)["selector"].update(matchLabels={"app": "nope"}),
        "error",
        "selector:",
        1,
        "PodDisruptionBudget/web",
    ),
    (
        "pdb-both-set",
        lambda d: _pdb(d).update(minAvailable=1),
        "error",
        "spec:",
        1,
        "PodDisruptionBudget/web",
    ),
    (
        "pdb-blocks-eviction",
        lambda d: _pdb(d).update(maxUnavailable=0),
        "warning",
        "maxUnavailable: 0",
        1,
        "PodDisruptionBudget/web",
    ),
]


@pytest.mark.parametrize(
    ("rule", "change", "severity", "needle", "occurrence", "resource"),
    RULES,
    ids=[r[0] for r in RULES],
)
def test_each_rule_triggers_on_a_crafted_manifest_at_its_line(
    rule: str,
    change: Callable[[Docs], object],
    severity: str,
    needle: str,
    occurrence: int,
    resource: str,
) -> None:
    text = mutated(change)
    start = text.index(f"kind: {resource.split('/')[0]}\n")  # that object's document
    expected = text[:start].count("\n") + line_with(text[start:], needle, occurrence)

    found = [f for f in check_manifests(text, external=DECLARED) if f.rule == rule]

    assert found, check_manifests(text, external=DECLARED)
    assert (found[0].severity, found[0].resource, found[0].line) == (severity, resource, expected)
    assert found[0].message and found[0].fix


def test_references_to_absent_objects_are_warnings_when_the_manifests_are_not_the_whole_app() -> (
    None
):
    text = mutated(lambda d: _backend(d).update(name="other"))

    (finding,) = [f for f in check_manifests(text) if f.rule == "ingress-unknown-service"]

    assert finding.severity == "warning"
    # Secrets are expected to live outside: not even a warning then.
    assert [f.rule for f in check_manifests(BASE)] == []


# -- schema validation ---------------------------------------------------------------


def test_a_wrong_type_fails_the_schema_at_its_line() -> None:
    text = BASE.replace("maxReplicas: 8", 'maxReplicas: "eight"')

    report = schema.validate_schema(text, "1.30")

    assert report.ran is True and report.ok is False
    (error,) = report.errors
    assert (error.object, error.path) == ("HorizontalPodAutoscaler/web", "spec.maxReplicas")
    assert error.line == line_with(text, 'maxReplicas: "eight"')
    assert "integer" in error.message


def test_an_api_version_the_version_lacks_and_an_unknown_field_fail_the_schema() -> None:
    beta = BASE.replace("apiVersion: autoscaling/v2\n", "apiVersion: autoscaling/v2beta2\n")
    typo = BASE.replace("  minReplicas: 2", "  minReplica: 2")

    (gone,) = schema.validate_schema(beta, "1.30").errors
    (unknown,) = schema.validate_schema(typo, "1.30").errors

    assert gone.path == "apiVersion" and "autoscaling/v2beta2" in gone.message
    assert gone.line == line_with(beta, "autoscaling/v2beta2")
    assert unknown.path == "spec" and "'minReplica' was unexpected" in unknown.message


@pytest.mark.parametrize("version", ["1.99", "2.0", "latest", "1.24"])
def test_an_unknown_version_is_refused_with_the_supported_ones(version: str) -> None:
    with pytest.raises(ValidationError) as caught:
        KubernetesInput.model_validate({"app": {"name": "w"}, "kubernetes_version": version})

    message = caught.value.errors()[0]["msg"]
    assert "1.30" in message and "1.25" in message and "1.37" in message


@pytest.mark.parametrize(("given", "normal"), [("v1.31", "1.31"), ("1.29.4", "1.29")])
def test_a_version_is_normalised(given: str, normal: str) -> None:
    assert schema.check_version(given) == normal


def test_the_versions_known_without_the_package_are_all_in_it() -> None:
    assert set(schema.KNOWN_VERSIONS) <= set(schema.supported_versions())
    assert schema.DEFAULT_VERSION in schema.KNOWN_VERSIONS


def test_without_kubernetes_validate_the_schema_is_reported_not_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema, "available", lambda: False)

    report = schema.validate_schema("kind: nonsense\n", "1.30")

    assert (report.ran, report.ok, report.errors) == (False, None, [])
    assert report.reason and "local" in report.reason


# -- the loop with a scripted model --------------------------------------------------

REQUEST = KubernetesInput.model_validate({"app": FULL_APP, "options": {"max_attempts": 2}})


def fenced(text: str) -> str:
    return f"```yaml\n{text}```"


def test_a_refinement_that_drops_an_object_or_changes_the_image_goes_back() -> None:
    no_pdb = BASE.rsplit("---\n", 1)[0]
    other_image = BASE.replace("ghcr.io/acme/web:1.4.2", "ghcr.io/acme/web:9.9.9")
    refined = BASE.replace("initialDelaySeconds: 10", "initialDelaySeconds: 15")
    model = ScriptedModel(fenced(no_pdb), fenced(other_image), fenced(refined))

    out = generate_manifests(REQUEST, owner_key_id=None, model=model, max_attempts=3)

    assert out.refined is True and out.yaml == refined
    assert [a.ok for a in out.attempts] == [False, False, True]
    assert "object-missing" in out.attempts[0].problems[0]
    assert "PodDisruptionBudget/web" in out.attempts[0].problems[0]
    assert "image-changed" in out.attempts[1].problems[0]
    prompt = model.calls[0]["messages"]
    assert "Kubernetes 1.30" in prompt[0].content and BASE in prompt[-1].content


def test_a_model_that_never_validates_gives_the_checked_base_with_the_note(
    no_action_history: list[tuple[str, dict[str, Any]]],
) -> None:
    bad = fenced(BASE.replace("maxReplicas: 8", 'maxReplicas: "eight"'))
    model = ScriptedModel(bad, bad)

    out = generate_manifests(REQUEST, owner_key_id=None, model=model, max_attempts=2)

    assert out.refined is False and out.yaml == BASE
    assert out.validation.schema_.ok is True and out.validation.best_practices.ok is True
    assert any("Model refinement rejected after 2 attempt(s)" in n for n in out.notes)
    assert all(p.startswith("schema: line") for a in out.attempts for p in a.problems)
    assert no_action_history[0][0] == "kubernetes"
    assert no_action_history[0][1]["refined"] is False


def test_an_error_the_description_causes_does_not_block_the_refinement() -> None:
    request = KubernetesInput.model_validate({"app": {"name": "web", "image": "nginx"}})
    spec, _, _ = resolve_spec(request)
    base = base_manifests(spec)

    out = generate_manifests(
        request, owner_key_id=None, model=ScriptedModel(fenced(base)), max_attempts=1
    )

    assert out.refined is True
    (finding,) = [f for f in out.findings if f.rule == "image-latest"]
    assert finding.severity == "error" and finding.line == line_with(base, "image: nginx")
    assert out.validation.best_practices.ok is False


def test_refine_false_asks_no_model() -> None:
    out = generate_manifests(
        REQUEST.model_copy(update={"refine": False}),
        owner_key_id=None,
        model=None,
        max_attempts=3,
    )

    assert out.refined is False and out.attempts == [] and out.model is None
    assert out.yaml == BASE
    assert [r.name for r in out.external_refs] == ["web-api", "web-secrets", "web-tls"]


def test_where_the_schema_cannot_run_the_model_is_not_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lambda: no kubernetes-validate, so an answer like `replicas: "three"` could not be
    # caught; only the deterministic (test-validated) manifests leave.
    monkeypatch.setattr(schema, "available", lambda: False)
    model = ScriptedModel()

    out = generate_manifests(REQUEST, owner_key_id=None, model=model, max_attempts=2)

    assert model.calls == [] and out.refined is False and out.yaml == BASE
    assert out.validation.schema_.ran is False and out.validation.schema_.reason
    assert out.validation.best_practices.ok is True
    assert any("could not be checked against the schema" in n for n in out.notes)
