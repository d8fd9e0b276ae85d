"""The Docker worker: the deterministic Dockerfile review, the base Dockerfiles, the model loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.agents.workers import WorkTask
from common.agents.workers.docker import (
    DOCKERIGNORE,
    DockerWorker,
    check_dockerfile,
    dockerfile_for,
    exposed_ports,
    split_image,
)
from common.errors import ModelOutputInvalid
from tests.fakes.scripted_model import ScriptedModel

GOOD = """\
FROM python:3.12-slim
RUN useradd --create-home --uid 10001 app
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
USER app
HEALTHCHECK CMD python -c "print(1)"
CMD ["python", "-m", "app"]
"""


def rules(content: str, severity: str | None = None) -> list[str]:
    return [f.rule for f in check_dockerfile(content) if severity in (None, f.severity)]


def fenced(content: str) -> str:
    return f"```dockerfile\n{content}```"


# -- the review -----------------------------------------------------------------


def test_a_good_dockerfile_has_only_the_digest_note() -> None:
    (finding,) = check_dockerfile(GOOD)

    assert (finding.rule, finding.severity, finding.line) == ("base-image-digest", "info", 1)
    assert "@sha256" in finding.fix


def test_a_digest_pinned_image_has_no_finding() -> None:
    pinned = GOOD.replace("python:3.12-slim", "python:3.12-slim@sha256:" + "a" * 64)

    assert check_dockerfile(pinned) == []


@pytest.mark.parametrize(
    ("change", "rule", "severity", "line"),
    [
        (("python:3.12-slim", "python"), "base-image-untagged", "error", 1),
        (("python:3.12-slim", "python:latest"), "base-image-latest", "error", 1),
        (("python:3.12-slim", "registry:5000/team/python"), "base-image-untagged", "error", 1),
        (("python:3.12-slim", "python:${VERSION}"), "base-image-unresolved", "warning", 1),
        (("USER app\n", ""), "root-user", "error", 1),
        (("USER app", "USER root"), "root-user", "error", 7),
        (("USER app", "USER 0:0"), "root-user", "error", 7),
        (("WORKDIR /app", "ENV DB_PASSWORD=hunter2"), "secret-env", "error", 3),
        (("WORKDIR /app", "ENV API_KEY sk-123456"), "secret-env", "error", 3),
        (("WORKDIR /app", "ARG GITHUB_TOKEN=abc"), "secret-arg", "error", 3),
        (("WORKDIR /app", "ARG NPM_TOKEN"), "secret-build-arg", "warning", 3),
        (("COPY . .", "COPY .env ./"), "secret-file", "error", 6),
        (("COPY . .", "COPY id_rsa /root/.ssh/"), "secret-file", "error", 6),
        (("COPY . .", 'COPY ["certs/server.pem", "/etc/ssl/"]'), "secret-file", "error", 6),
        (("WORKDIR /app", 'RUN echo "$NPM_TOKEN" > .npmrc'), "secret-in-run", "error", 3),
        (("WORKDIR /app", "RUN export API_KEY=abcdef123 && ./setup"), "secret-in-run", "error", 3),
        (("WORKDIR /app", "RUN mysql --password=hunter2 < x.sql"), "secret-in-run", "error", 3),
        (
            ("WORKDIR /app", "RUN echo AKIAIOSFODNN7EXAMPLE > key"),
            "secret-literal",
            "error",
            3,
        ),
        (("COPY . .", "ADD https://example.com/app.tgz /tmp/"), "add-remote-url", "warning", 6),
        (
            (
                "WORKDIR /app",
                "RUN apt-get update && apt-get install -y --no-install-recommends gcc",
            ),
            "apt-cache",
            "warning",
            3,
        ),
        (
            ("WORKDIR /app", "RUN apt-get install -y gcc && rm -rf /var/lib/apt/lists/*"),
            "apt-recommends",
            "info",
            3,
        ),
        (("python:3.12-slim", "alpine:3.20\nRUN apk add curl"), "apk-cache", "warning", 2),
        (("pip install --no-cache-dir", "pip install"), "pip-cache", "info", 5),
        (('HEALTHCHECK CMD python -c "print(1)"\n', ""), "healthcheck-missing", "info", None),
        (
            ('HEALTHCHECK CMD python -c "print(1)"', "HEALTHCHECK NONE"),
            "healthcheck-missing",
            "info",
            None,
        ),
    ],
)
def test_each_rule_is_found_with_its_line(
    change: tuple[str, str], rule: str, severity: str, line: int | None
) -> None:
    content = GOOD.replace(*change)
    assert content != GOOD

    found = [f for f in check_dockerfile(content) if f.rule == rule]

    assert found, check_dockerfile(content)
    assert (found[0].severity, found[0].line) == (severity, line)
    assert found[0].message and found[0].fix


@pytest.mark.parametrize(
    "line",
    [
        "ENV DB_PASSWORD_FILE=/run/secrets/db",
        "ENV API_KEY=",
        "COPY .env.example ./",
        "ADD --checksum=sha256:abc https://example.com/app.tgz /tmp/",
        "RUN --mount=type=secret,id=npm_token cat /run/secrets/npm_token > /dev/null",
        "RUN GITHUB_TOKEN=$(cat /run/secrets/gh) ./fetch",
        "RUN apk add --no-cache curl",
        "RUN useradd -u 10001 other",
    ],
)
def test_safe_lines_raise_no_warning_or_error(line: str) -> None:
    content = GOOD.replace("WORKDIR /app", f"WORKDIR /app\n{line}")

    assert rules(content, "error") == [] and rules(content, "warning") == []


def test_a_secret_value_is_never_echoed_in_a_finding() -> None:
    content = GOOD.replace("WORKDIR /app", "ENV DB_PASSWORD=Sup3rS3cretValue")

    assert all("Sup3rS3cretValue" not in f.message + f.fix for f in check_dockerfile(content))


def test_only_the_final_stage_user_counts() -> None:
    builder_only = "FROM golang:1.23 AS build\nUSER builder\nRUN go build\n\nFROM alpine:3.20\n"

    (root,) = [f for f in check_dockerfile(builder_only) if f.rule == "root-user"]

    assert root.line == 5 and "no USER" in root.message


def test_a_stage_built_from_an_earlier_one_inherits_its_user() -> None:
    content = 'FROM python:3.12-slim AS base\nUSER app\n\nFROM base AS final\nCMD ["app"]\n'

    assert "root-user" not in rules(content)
    # FROM an earlier stage is not a base image: no digest note for line 4.
    assert [f.line for f in check_dockerfile(content) if f.rule.startswith("base-image")] == [1]


def test_arg_defaults_before_from_are_resolved() -> None:
    content = GOOD.replace("FROM python:3.12-slim", "ARG V=3.12\nFROM python:${V}-slim")

    assert rules(content, "error") == [] and "base-image-digest" in rules(content)
    latest = GOOD.replace("FROM python:3.12-slim", "ARG V=latest\nFROM python:${V}")
    assert "base-image-latest" in rules(latest)


def test_scratch_needs_no_tag() -> None:
    assert rules("FROM scratch\nCOPY app /app\nUSER 10001\n", "error") == []


def test_no_from_is_an_error() -> None:
    assert rules("RUN echo hi\n") == ["no-from"]


def test_the_review_never_touches_a_dockerfile_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM python\n")

    check_dockerfile(GOOD)
    exposed_ports(GOOD)

    assert [p.name for p in tmp_path.iterdir()] == ["Dockerfile"]
    assert (tmp_path / "Dockerfile").read_text() == "FROM python\n"


def test_split_image_and_exposed_ports() -> None:
    assert split_image("registry:5000/team/app:1.2@sha256:ab") == (
        "registry:5000/team/app",
        "1.2",
        "sha256:ab",
    )
    assert split_image("localhost:5000/app") == ("localhost:5000/app", None, None)
    assert exposed_ports("FROM x:1\nEXPOSE 8000 9000/udp 8000\nEXPOSE 9090/tcp\n") == [8000, 9090]


# -- the base Dockerfiles -------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"requirements.txt": "fastapi\nuvicorn\n", "main.py": "app = 1\n"},
            ["FROM python:3.12-slim", 'CMD ["uvicorn", "main:app", "--host", "0.0.0.0"'],
        ),
        (
            {"pyproject.toml": "[project]\nrequires-python = '>=3.13'\n", "tool/__main__.py": ""},
            ["FROM python:3.13-slim", "RUN pip install --no-cache-dir .", '"-m", "tool"'],
        ),
        (
            {"requirements.txt": "flask\ngunicorn\n", "app.py": ""},
            ['CMD ["gunicorn", "--bind", "0.0.0.0:8000", "app:app"]'],
        ),
        (
            {
                "package.json": json.dumps({"scripts": {"start": "node s.js", "build": "tsc"}}),
                "package-lock.json": "{}",
            },
            ["FROM node:22-alpine", "RUN npm ci &&", "npm run build", "USER node"],
        ),
        (
            {"package.json": json.dumps({"main": "server.js"})},
            ["RUN npm install --omit=dev", 'CMD ["node", "server.js"]'],
        ),
        (
            {
                "go.mod": "module x\n\ngo 1.22.3\n",
                "go.sum": "",
                "cmd/srv/main.go": "package main\n",
            },
            ["FROM golang:1.22-alpine AS build", "COPY go.mod go.sum ./", "./cmd/srv", "nonroot"],
        ),
        ({}, ["FROM python:3.12-slim", '"-m", "app"']),
        (
            {"backend/requirements.txt": "django\n", "web/package.json": "{}"},
            ["COPY backend/requirements.txt ./", "COPY backend/ ."],
        ),
    ],
)
def test_base_dockerfiles_pass_the_review(files: dict[str, str], expected: list[str]) -> None:
    content = dockerfile_for(files)

    for part in expected:
        assert part in content
    assert rules(content, "error") == [] and rules(content, "warning") == []
    assert dockerfile_for(files) == content  # deterministic


# -- the worker -------------------------------------------------------------------------


TASK = WorkTask(id="docker", path="Dockerfile", worker="docker", description="serve the API")
INPUTS = {"requirements.txt": "fastapi\nuvicorn\n", "main.py": "app = object()\n"}


def test_a_rule_broken_by_the_first_answer_is_sent_back_and_the_second_is_taken() -> None:
    model = ScriptedModel(fenced(GOOD.replace("python:3.12-slim", "python:latest")), fenced(GOOD))

    out = DockerWorker().run(TASK, model=model, project="a todo API", inputs=INPUTS)

    assert out.files == {"Dockerfile": GOOD, ".dockerignore": DOCKERIGNORE}
    assert out.attempts == 2
    first_prompt = model.calls[0]["messages"][-1].content
    assert "FROM python:3.12-slim" in first_prompt and "uvicorn" in first_prompt
    repair = model.calls[1]["messages"][-1].content
    assert "base-image-latest: line 1:" in repair and "not pinned" in repair
    assert [f["rule"] for f in out.findings] == ["base-image-digest"]
    assert any(c["name"] == "dockerfile-review" and c["ok"] for c in out.checks)


def test_an_answer_that_never_passes_is_model_output_invalid() -> None:
    rooted = fenced(GOOD.replace("USER app\n", ""))
    model = ScriptedModel(rooted, rooted)

    with pytest.raises(ModelOutputInvalid) as caught:
        DockerWorker().run(TASK, model=model, project="p", inputs=INPUTS, max_attempts=2)

    problems = [a["problems"] for a in caught.value.details["attempts"]]
    assert all(any(p.startswith("root-user:") for p in ps) for ps in problems)


def test_a_nested_dockerfile_gets_its_own_dockerignore_and_context() -> None:
    model = ScriptedModel(fenced(GOOD))
    task = TASK.model_copy(update={"path": "services/api/Dockerfile"})
    inputs = {"services/api/package.json": "{}", "requirements.txt": "x\n"}

    out = DockerWorker().run(task, model=model, project="p", inputs=inputs)

    assert set(out.files) == {"services/api/Dockerfile", "services/api/.dockerignore"}
    assert "FROM node:22-alpine" in model.calls[0]["messages"][-1].content


def test_a_dockerignore_task_needs_no_model() -> None:
    model = ScriptedModel()
    task = TASK.model_copy(update={"path": ".dockerignore"})

    out = DockerWorker().run(task, model=model, project="p", inputs={})

    assert out.files == {".dockerignore": DOCKERIGNORE} and out.attempts == 0
    assert ".env" in DOCKERIGNORE.splitlines() and "node_modules" in DOCKERIGNORE


def test_feedback_from_the_architect_is_in_the_prompt() -> None:
    model = ScriptedModel(fenced(GOOD))

    DockerWorker().run(TASK, model=model, project="p", inputs=INPUTS, feedback="port 9000")

    assert "port 9000" in model.calls[0]["messages"][-1].content
