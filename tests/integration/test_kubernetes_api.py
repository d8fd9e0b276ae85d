"""POST /api/kubernetes/generate through the Lambda door, in-process, on the run's stores
and the Ollama double: repaired answers, rejected refinements, findings, refusals, jobs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.utils.lambda_events import FakeLambdaContext, http_event, response_json

PATH = "/api/kubernetes/generate"
APP: dict[str, Any] = {
    "name": "shop",
    "image": "ghcr.io/acme/shop:3.2.1",
    "ports": [8000],
    "host": "shop.example.com",
}


def post(key: str, body: Any) -> tuple[int, Any]:
    from functions.kubernetes_generate import handler

    event = http_event("POST", PATH, body=body, headers={"X-API-Key": key})
    response = handler.handler(event, FakeLambdaContext())
    return response["statusCode"], response_json(response)


def fenced(text: str) -> str:
    return f"Here they are:\n```yaml\n{text}```\n"


def base_for(app: dict[str, Any]) -> str:
    from common.agents.workers.kubernetes import AppSpec, base_manifests

    return base_manifests(AppSpec.model_validate(app))


def test_broken_yaml_goes_back_and_the_repaired_answer_is_validated_and_returned(
    api_key: str, ollama: Any
) -> None:
    base = base_for(APP)
    refined = base.replace("initialDelaySeconds: 10", "initialDelaySeconds: 20")
    ollama.script(fenced("kind: Deployment\nmetadata: [1,\n"))
    ollama.script(fenced(refined))

    status, body = post(api_key, {"app": APP, "instructions": "give it 20 s before liveness"})

    assert status == 200, body
    assert body["refined"] is True and body["yaml"] == refined
    assert [a["ok"] for a in body["attempts"]] == [False, True]
    assert "parse" in body["attempts"][0]["problems"][0]
    assert body["validation"]["schema"] == {
        "ran": True,
        "version": "1.30",
        "ok": True,
        "errors": [],
        "reason": None,
    }
    assert body["validation"]["best_practices"]["ok"] is True
    assert body["objects"] == [
        {"kind": "Deployment", "name": "shop"},
        {"kind": "Service", "name": "shop"},
        {"kind": "Ingress", "name": "shop"},
    ]
    assert body["model"] and body["usage"]["total_tokens"] > 0
    chats = ollama.requests_to("/api/chat")
    assert len(chats) == 2
    assert "give it 20 s" in chats[0]["json"]["messages"][-1]["content"]
    assert "parse" in chats[1]["json"]["messages"][-1]["content"]


def test_a_schema_invalid_answer_every_time_gives_the_validated_base_with_the_note(
    api_key: str, ollama: Any
) -> None:
    base = base_for(APP)
    three = base.replace("replicas: 2", 'replicas: "three"')
    for _ in range(2):
        ollama.script(fenced(three))

    status, body = post(api_key, {"app": APP, "options": {"max_attempts": 2}})

    assert status == 200, body
    assert body["refined"] is False and body["yaml"] == base
    assert body["validation"]["schema"]["ok"] is True and body["findings"] == []
    assert any(n.startswith("Model refinement rejected after 2 attempt(s)") for n in body["notes"])
    assert len(body["attempts"]) == 2 and not any(a["ok"] for a in body["attempts"])
    problem = body["attempts"][0]["problems"][0]
    assert problem.startswith("schema: line") and "spec.replicas" in problem
    # The validator's words went back to the model.
    second = ollama.requests_to("/api/chat")[1]["json"]["messages"][-1]["content"]
    assert "'three' is not of type 'integer'" in second


def test_a_latest_image_in_the_description_is_a_finding_at_its_line(
    api_key: str, ollama: Any
) -> None:
    app = {**APP, "image": "ghcr.io/acme/shop:latest"}

    status, body = post(api_key, {"app": app, "refine": False})

    assert status == 200, body
    (finding,) = [f for f in body["findings"] if f["rule"] == "image-latest"]
    lines = body["yaml"].splitlines()
    assert finding["severity"] == "error" and finding["object"] == "Deployment/shop"
    assert lines[finding["line"] - 1].strip() == "image: ghcr.io/acme/shop:latest"
    assert body["validation"]["best_practices"] == {
        "ok": False,
        "errors": 1,
        "warnings": 0,
        "info": 0,
    }
    assert body["validation"]["schema"]["ok"] is True  # the schema has no opinion on tags
    assert ollama.requests_to("/api/chat") == []


def test_hpa_pdb_configmap_and_secret_references_when_asked(api_key: str, ollama: Any) -> None:
    app = {
        **APP,
        "env": {"LOG_LEVEL": "info", "STRIPE_API_KEY": "sk_live_not_for_you"},
        "secrets": [{"env": "DB_PASSWORD", "secret": "shop-db", "key": "password"}],
        "configmap": True,
        "autoscaling": {"min_replicas": 3, "max_replicas": 12, "target_cpu_percent": 65},
        "pdb": {"min_available": 2},
        "tls_secret": "shop-tls",
    }
    ollama.script(fenced(base_for(app)))

    status, body = post(api_key, {"app": app, "kubernetes_version": "v1.33"})

    assert status == 200, body
    assert body["refined"] is True and body["kubernetes_version"] == "1.33"
    assert body["validation"]["schema"]["ok"] is True and body["findings"] == []
    assert [o["kind"] for o in body["objects"]] == [
        "ConfigMap",
        "Deployment",
        "Service",
        "Ingress",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ]
    docs = {d["kind"]: d for d in yaml.safe_load_all(body["yaml"])}
    assert docs["ConfigMap"]["data"] == {"LOG_LEVEL": "info"}
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 3
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    env = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env} == {
        "DB_PASSWORD": {"name": "shop-db", "key": "password"},
        "STRIPE_API_KEY": {"name": "shop-secrets", "key": "STRIPE_API_KEY"},
    }
    assert "sk_live_not_for_you" not in body["yaml"]
    assert any("STRIPE_API_KEY" in n for n in body["notes"])
    assert body["external_refs"] == [
        {"kind": "Secret", "name": "shop-db", "keys": ["password"]},
        {"kind": "Secret", "name": "shop-secrets", "keys": ["STRIPE_API_KEY"]},
        {"kind": "Secret", "name": "shop-tls", "keys": ["tls.crt", "tls.key"]},
    ]


def test_a_compose_file_is_inferred_from_and_the_answer_says_where(
    api_key: str, ollama: Any
) -> None:
    compose = (
        "services:\n"
        "  web:\n"
        "    image: ghcr.io/acme/web:1.0.3\n"
        "    ports: ['8080:3000']\n"
        "    healthcheck:\n"
        "      test: curl -f http://localhost:3000/up\n"
        "    deploy: {replicas: 3}\n"
    )

    status, body = post(api_key, {"compose": compose, "app": {"replicas": 1}, "refine": False})

    assert status == 200, body
    assert body["inferred"] == {
        "image": "compose service web: image",
        "liveness_path": "compose service web: healthcheck",
        "name": "compose service web",
        "ports": "compose service web: ports",
        "readiness_path": "compose service web: healthcheck",
    }
    deployment = next(yaml.safe_load_all(body["yaml"]))
    assert deployment["spec"]["replicas"] == 1  # given, over compose's 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 3000
    assert container["livenessProbe"]["httpGet"]["path"] == "/up"


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ({"app": APP, "kubernetes_version": "1.99"}, "body.kubernetes_version", "1.25, 1.26"),
        ({}, "body", "describe the app"),
        ({"app": {**APP, "name": "Shop_App"}}, "body.app.name", "pattern"),
        ({"app": {**APP, "replicas": "three"}}, "body.app.replicas", "integer"),
        ({"app": APP, "compose": "services:\n  a: {}\n", "service": "b"}, "body.service", "b"),
        ({"dockerfile": "FROM python:3.12-slim\nEXPOSE 8000\n"}, "body.app.name", "name"),
        ({"app": {**APP, "autoscaling": {"min_replicas": 9, "max_replicas": 3}}}, "body.app", ""),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_asks_no_model(
    api_key: str, ollama: Any, body: dict[str, Any], path: str, words: str
) -> None:
    status, answer = post(api_key, body)

    assert status == 422, answer
    assert answer["error"]["code"] == "invalid_input"
    field = answer["error"]["fields"][0]
    assert field["path"].startswith(path) and words in field["message"]
    assert ollama.requests_to("/api/chat") == []


def test_async_answers_202_with_a_job_the_kubernetes_runner_completes(
    api_key: str, ollama: Any
) -> None:
    from common.jobs.kinds import load_runner

    status, body = post(api_key, {"app": APP, "refine": False, "options": {"async": True}})

    assert status == 202, body
    assert body["status_url"] == f"/api/jobs/{body['job_id']}"

    class Ctx:
        key_id = None

        def progress(self, step: str, percent: float, message: str = "") -> None:
            self.last = (step, percent)

    ctx = Ctx()
    result = load_runner("kubernetes")({"app": APP, "refine": False}, ctx)  # type: ignore[arg-type]
    assert result["validation"]["schema"]["ok"] is True and ctx.last == ("done", 100)
    assert result["yaml"] == base_for(APP)
