"""The Kubernetes worker: deterministic manifests, the manifest review, the model loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from common.agents.workers import WorkTask
from common.agents.workers.kubernetes import (
    AppSpec,
    KubernetesWorker,
    base_manifests,
    check_manifests,
    spec_for,
)
from common.errors import ModelOutputInvalid
from tests.fakes.scripted_model import ScriptedModel

SPEC = AppSpec(name="web", image="ghcr.io/acme/web:1.4.2", ports=[8000], host="web.example.com")
BASE = base_manifests(SPEC)

Docs = list[dict[str, Any]]


def mutated(change: Callable[[Docs], object]) -> str:
    """BASE with ``change`` applied to its documents (Deployment, Service, Ingress)."""
    docs = list(yaml.safe_load_all(BASE))
    change(docs)
    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)


def container(docs: Docs) -> dict[str, Any]:
    return docs[0]["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def fenced(text: str) -> str:
    return f"```yaml\n{text}```"


# -- deterministic manifests ---------------------------------------------------------


def test_base_manifests_are_deterministic_and_pass_the_review_with_nothing_to_say() -> None:
    docs = list(yaml.safe_load_all(BASE))

    assert base_manifests(SPEC) == BASE
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "Ingress"]
    assert check_manifests(BASE) == []
    assert "&id" not in BASE  # no YAML anchors: people read these files
    c = container(docs)
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert docs[1]["spec"]["ports"][0] == {
        "name": "http",
        "port": 80,
        "targetPort": "http",
        "protocol": "TCP",
    }
    rule = docs[2]["spec"]["rules"][0]
    assert rule["host"] == "web.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "web",
        "port": {"name": "http"},
    }


def test_without_a_host_there_is_no_ingress_and_secrets_come_from_a_secret() -> None:
    spec = AppSpec(
        name="api",
        image="api:0.1.0",
        ports=[8080, 9090],
        env={"LOG_LEVEL": "info", "DB_PASSWORD": "Sup3rS3cret"},
        resources={"cpu_limit": None},
    )

    text = base_manifests(spec)
    docs = list(yaml.safe_load_all(text))

    assert [d["kind"] for d in docs] == ["Deployment", "Service"]
    assert "Sup3rS3cret" not in text
    env = container(docs)["env"]
    assert env[0] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "api-secrets", "key": "DB_PASSWORD"}},
    }
    assert env[1] == {"name": "LOG_LEVEL", "value": "info"}
    assert "cpu" not in container(docs)["resources"]["limits"]
    assert [p["targetPort"] for p in docs[1]["spec"]["ports"]] == ["http", "port-9090"]
    assert check_manifests(text) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "Web_App"},
        {"image": "has space:1"},
        {"ports": []},
        {"host": "not a host"},
        {"liveness_path": "healthz"},
    ],
)
def test_a_bad_spec_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AppSpec.model_validate({"name": "web", "image": "web:1", **bad})


# -- the review ------------------------------------------------------------------------


def _set(path: list[Any], value: Any) -> Callable[[Docs], None]:
    def change(docs: Docs) -> None:
        target: Any = docs
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return change


_DELETE = object()
POD = [0, "spec", "template", "spec"]
C0 = [*POD, "containers", 0]


@pytest.mark.parametrize(
    ("change", "rule", "severity"),
    [
        (_set([0, "apiVersion"], _DELETE), "missing-field", "error"),
        (_set([1, "kind"], _DELETE), "missing-field", "error"),
        (_set([0, "metadata", "name"], _DELETE), "missing-field", "error"),
        (_set([0, "spec", "selector"], _DELETE), "selector-missing", "error"),
        (
            _set([0, "spec", "selector", "matchLabels"], {"app": "other"}),
            "selector-mismatch",
            "error",
        ),
        (_set([*POD, "containers"], []), "no-containers", "error"),
        (_set([*C0, "image"], "ghcr.io/acme/web"), "image-latest", "error"),
        (_set([*C0, "image"], "ghcr.io/acme/web:latest"), "image-latest", "error"),
        (_set([*C0, "resources"], _DELETE), "resources-missing", "error"),
        (_set([*C0, "resources", "limits"], {"cpu": "1"}), "memory-limit-missing", "warning"),
        (_set([*C0, "livenessProbe"], _DELETE), "liveness-probe-missing", "error"),
        (_set([*C0, "readinessProbe"], _DELETE), "readiness-probe-missing", "error"),
        (_set([*POD, "securityContext"], _DELETE), "root-user", "error"),
        (_set([*C0, "securityContext", "runAsUser"], 0), "root-user", "error"),
        (_set([*C0, "securityContext", "privileged"], True), "privileged", "error"),
        (
            _set([*C0, "securityContext", "allowPrivilegeEscalation"], True),
            "privilege-escalation",
            "warning",
        ),
        (_set([*C0, "env"], [{"name": "API_TOKEN", "value": "abc"}]), "secret-in-env", "warning"),
        (_set([1, "spec", "selector"], _DELETE), "service-selector-missing", "error"),
        (_set([1, "spec", "selector"], {"app": "nope"}), "service-selector-mismatch", "error"),
        (_set([1, "spec", "ports", 0, "targetPort"], 8080), "target-port-mismatch", "error"),
        (_set([1, "spec", "ports", 0, "targetPort"], "web"), "target-port-mismatch", "error"),
        (
            _set([2, "spec", "rules", 0, "http", "paths", 0, "backend", "service", "name"], "x"),
            "ingress-unknown-service",
            "warning",
        ),
    ],
)
def test_each_rule_is_found(change: Callable[[Docs], None], rule: str, severity: str) -> None:
    text = mutated(change)

    found = [f for f in check_manifests(text) if f.rule == rule]

    assert found, check_manifests(text)
    assert found[0].severity == severity and found[0].message and found[0].fix
    assert found[0].line is not None and found[0].resource


def test_a_numeric_target_port_that_matches_is_fine() -> None:
    text = mutated(_set([1, "spec", "ports", 0, "targetPort"], 8000))

    assert check_manifests(text) == []


def test_findings_point_at_the_line() -> None:
    text = mutated(_set([*C0, "image"], "web:latest"))
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "image: web:latest" in t)

    (finding,) = check_manifests(text)

    assert (finding.line, finding.resource) == (line, "Deployment/web")


@pytest.mark.parametrize(
    ("text", "rule", "line"),
    [
        ("kind: Service\nmetadata: [1,\n", "yaml-parse", 3),
        ("---\n---\n", "no-documents", None),
        ("- 1\n- 2\n", "not-a-mapping", 1),
    ],
)
def test_text_that_is_not_manifests(text: str, rule: str, line: int | None) -> None:
    (finding,) = check_manifests(text)

    assert (finding.rule, finding.severity, finding.line) == (rule, "error", line)


def test_a_service_alone_is_not_checked_against_pods_elsewhere() -> None:
    service = BASE.split("---\n")[1]

    assert check_manifests(service) == []


# -- the worker ------------------------------------------------------------------------


TASK = WorkTask(id="k8s", path="deploy/web.yaml", worker="kubernetes", description="deploy it")


def test_spec_for_takes_the_name_from_the_path_and_the_port_from_the_dockerfile() -> None:
    inputs = {"Dockerfile": "FROM python:3.12-slim\nEXPOSE 8000\n"}

    spec = spec_for(TASK, "a todo API", inputs)

    assert (spec.name, spec.image, spec.ports) == ("web", "web:0.1.0", [8000])
    generic = TASK.model_copy(update={"path": "k8s/deployment.yaml"})
    assert spec_for(generic, "A Todo API in FastAPI", {}).name == "todo-fastapi"
    assert spec_for(generic, "the app", {}).name == "app"


def test_a_rule_broken_by_the_first_answer_is_sent_back_and_the_second_is_taken() -> None:
    no_probe = mutated(_set([*C0, "livenessProbe"], _DELETE))
    model = ScriptedModel(fenced(no_probe), fenced(BASE))

    out = KubernetesWorker(SPEC).run(TASK, model=model, project="p", inputs={})

    assert out.files == {"deploy/web.yaml": BASE} and out.attempts == 2
    assert "image: ghcr.io/acme/web:1.4.2" in model.calls[0]["messages"][-1].content
    repair = model.calls[1]["messages"][-1].content
    assert "liveness-probe-missing:" in repair and "Deployment/web" in repair
    assert out.findings == []
    assert any(c["name"] == "manifest-review" and c["ok"] for c in out.checks)


def test_yaml_that_does_not_parse_never_leaves() -> None:
    model = ScriptedModel(fenced("kind: Service\nmetadata: [1,\n"), fenced(BASE))

    out = KubernetesWorker(SPEC).run(TASK, model=model, project="p", inputs={})

    assert out.files["deploy/web.yaml"] == BASE
    assert "parse" in model.calls[1]["messages"][-1].content


def test_an_answer_that_never_passes_is_model_output_invalid() -> None:
    latest = fenced(mutated(_set([*C0, "image"], "web:latest")))
    model = ScriptedModel(latest, latest, latest)

    with pytest.raises(ModelOutputInvalid) as caught:
        KubernetesWorker(SPEC).run(TASK, model=model, project="p", inputs={})

    problems = [a["problems"] for a in caught.value.details["attempts"]]
    assert len(problems) == 3
    assert all(any(p.startswith("image-latest:") for p in ps) for ps in problems)
