"""The Docker, Kubernetes and security workers through the real client and the Ollama double."""

from __future__ import annotations

from typing import Any

from common.agents.workers import WorkTask
from common.agents.workers.docker import DockerWorker, dockerfile_for
from common.agents.workers.kubernetes import AppSpec, KubernetesWorker, base_manifests
from common.agents.workers.security import SecurityWorker
from common.models import get_model_client

INPUTS = {"requirements.txt": "fastapi\nuvicorn\n", "main.py": "app = object()\n"}


def chat_requests(ollama: Any) -> list[dict[str, Any]]:
    return [r["json"] for r in ollama.requests_to("/api/chat")]


def test_the_docker_worker_sends_a_broken_rule_back_and_takes_the_fix(ollama: Any) -> None:
    good = dockerfile_for(INPUTS)
    ollama.script(f"```dockerfile\n{good.replace('python:3.12-slim', 'python:latest')}```")
    ollama.script(f"Here it is:\n```dockerfile\n{good}```")
    task = WorkTask(id="d", path="Dockerfile", worker="docker", description="serve main:app")

    out = DockerWorker().run(task, model=get_model_client(), project="a todo API", inputs=INPUTS)

    assert out.files["Dockerfile"] == good and ".dockerignore" in out.files
    first, second = chat_requests(ollama)
    assert first["messages"][0]["role"] == "system" and first["options"]["temperature"] == 0
    assert "base-image-latest" in second["messages"][-1]["content"]


def test_the_kubernetes_worker_returns_reviewed_manifests(ollama: Any) -> None:
    spec = AppSpec(name="todo", image="todo:1.0.0", ports=[8000])
    manifests = base_manifests(spec)
    ollama.script(f"```yaml\n{manifests}```")
    task = WorkTask(id="k", path="k8s/todo.yaml", worker="kubernetes", description="deploy")

    out = KubernetesWorker(spec).run(task, model=get_model_client(), project="p", inputs={})

    assert out.files == {"k8s/todo.yaml": manifests} and out.attempts == 1
    assert "kind: Deployment" in chat_requests(ollama)[0]["messages"][-1]["content"]


def test_the_security_worker_accepts_a_fix_the_rescan_confirms(ollama: Any) -> None:
    vulnerable = (
        "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    )
    fixed = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd)\n"
    ollama.script(f"```python\n{fixed}```")
    task = WorkTask(id="s", path="run.py", worker="security", description="fix it")

    out = SecurityWorker().run(
        task, model=get_model_client(), project="p", inputs={"run.py": vulnerable}
    )

    assert out.files == {"run.py": fixed}
    assert "B602" in chat_requests(ollama)[0]["messages"][-1]["content"]
    assert "B602" not in {f["rule"] for f in out.findings if f["scan"] == "after"}
