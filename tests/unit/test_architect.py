"""The Lead architect over a scripted model: plan validation, order, send-backs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from common.agents.architect import ProjectPlan, build_project, safe_path
from common.agents.workers.code import CodeWorker
from common.code.checks import CheckResult
from common.errors import ModelOutputInvalid
from tests.fakes.scripted_model import ScriptedModel


def plan(*tasks: dict[str, Any]) -> str:
    return json.dumps({"name": "shop", "summary": "a tiny shop", "tasks": list(tasks)})


MODELS = {"id": "models", "path": "shop/models.py", "description": "an Item dataclass"}
API = {"id": "api", "path": "shop/api.py", "description": "list items", "depends_on": ["models"]}


@pytest.mark.parametrize(
    ("path", "ok"),
    [
        ("a/b.py", True),
        ("./a//b.py", True),
        ("../x.py", False),
        ("/etc/passwd", False),
        ("a/../../x", False),
        ("a\0b", False),
        ("C:/x.py", False),
    ],
)
def test_safe_path(path: str, ok: bool) -> None:
    if ok:
        assert safe_path(path) in ("a/b.py",)
    else:
        with pytest.raises(ValueError):
            safe_path(path)


@pytest.mark.parametrize(
    ("tasks", "problem"),
    [
        ([MODELS, {**API, "depends_on": ["nope"]}], "unknown tasks"),
        ([{**MODELS, "depends_on": ["api"]}, API], "cycle"),
        ([MODELS, {**API, "id": "models"}], "unique"),
        ([MODELS, {**API, "path": "shop/models.py"}], "different file"),
        ([{**MODELS, "path": "../models.py"}], "escapes"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(tasks: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        ProjectPlan.model_validate_json(plan(*tasks))


def test_tasks_run_in_dependency_order_and_see_their_inputs() -> None:
    model = ScriptedModel(
        plan(API, MODELS),
        "```python\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Item:\n"
        "    name: str\n```",
        "```python\nfrom shop.models import Item\n\n\ndef items():\n    return [Item('a')]\n```",
    )

    result = build_project("a shop", model=model, workers={"code": CodeWorker()})

    assert list(result.files) == ["shop/api.py", "shop/models.py"]
    assert result.rounds == 1 and result.failing == []
    api_prompt = model.calls[2]["messages"]
    assert any(m.context and "class Item" in m.content for m in api_prompt)
    assert all(v.ok for v in result.verification)


def test_a_bad_plan_is_asked_again_with_the_validation_error() -> None:
    model = ScriptedModel(
        plan({**MODELS, "depends_on": ["ghost"]}),
        plan(MODELS),
        "```python\nX = 1\n```",
    )

    result = build_project("a shop", model=model, workers={"code": CodeWorker()})

    assert "ghost" in model.calls[1]["messages"][-1].content
    assert result.files == {"shop/models.py": "X = 1\n"}


def test_a_file_failing_a_project_check_goes_back_to_its_worker() -> None:
    model = ScriptedModel(
        plan(MODELS),
        "```python\ndef price():\n    return 1\n```",
        "```python\ndef price():\n    return 2\n```",
    )

    def tests_pass(files: dict[str, str]) -> dict[str, list[CheckResult]]:
        ok = "return 2" in files["shop/models.py"]
        return {"shop/models.py": [CheckResult("tests", ok, "" if ok else "price() should be 2")]}

    result = build_project(
        "a shop", model=model, workers={"code": CodeWorker()}, project_checks=tests_pass
    )

    assert result.rounds == 2 and result.failing == []
    assert "price() should be 2" in model.calls[2]["messages"][-1].content


def test_a_file_that_never_passes_is_reported_not_hidden() -> None:
    model = ScriptedModel(plan(MODELS), *["```python\nX = 1\n```"] * 3)

    def never(files: dict[str, str]) -> dict[str, list[CheckResult]]:
        return {"shop/models.py": [CheckResult("tests", False, "still wrong")]}

    result = build_project(
        "a shop",
        model=model,
        workers={"code": CodeWorker()},
        project_checks=never,
        max_rounds=2,
    )

    assert result.failing == ["shop/models.py"] and result.rounds == 3


def test_an_unusable_plan_is_a_model_output_error() -> None:
    model = ScriptedModel("no plan", "still no plan", "nope")

    with pytest.raises(ModelOutputInvalid):
        build_project("a shop", model=model, workers={"code": CodeWorker()})


def test_the_default_workers_cover_every_worker_a_plan_can_name() -> None:
    from typing import get_args

    from common.agents.workers import WorkerName, default_workers

    workers = default_workers()

    assert set(workers) == set(get_args(WorkerName))
    assert all(worker.name == name for name, worker in workers.items())
