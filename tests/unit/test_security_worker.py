"""The security worker: bandit and secret patterns, and fixes proven by a re-scan."""

from __future__ import annotations

from typing import Any

import pytest

from common.agents.workers import WorkTask
from common.agents.workers.security import (
    SecurityWorker,
    entropy,
    scan_file,
    scan_python,
    scan_secrets,
)
from common.errors import InvalidInput, ModelOutputInvalid
from tests.fakes.scripted_model import ScriptedModel

# Assembled so that no secret scanner flags this test file itself.
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPL3"
GH_TOKEN = "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"
PASSWORD = "Tr0ub4dor&3xyz"

VULNERABLE = f'''import subprocess

DB_PASSWORD = "{PASSWORD}"


def run(cmd):
    return subprocess.call(cmd, shell=True)


def find(cursor, name):
    cursor.execute("SELECT * FROM users WHERE name = '%s'" % name)
    return cursor.fetchall()
'''

FIXED = """import os
import subprocess

DB_PASSWORD = os.environ["DB_PASSWORD"]


def run(cmd):
    return subprocess.call(cmd)


def find(cursor, name):
    cursor.execute("SELECT * FROM users WHERE name = %s", (name,))
    return cursor.fetchall()
"""


def rules(findings: list[Any]) -> list[str]:
    return [f.rule for f in findings]


def fenced(code: str, language: str = "python") -> str:
    return f"```{language}\n{code}```"


# -- scanning ------------------------------------------------------------------------


def test_bandit_and_the_secret_patterns_find_the_problems_with_their_lines() -> None:
    findings = scan_python(VULNERABLE)

    by_rule = {f.rule: f for f in findings}
    assert {"B404", "secret-assignment", "B602", "B608"} <= set(by_rule)
    assert (by_rule["B602"].severity, by_rule["B602"].line, by_rule["B602"].source) == (
        "high",
        7,
        "bandit",
    )
    assert by_rule["B608"].line == 11 and "parameterised" in by_rule["B608"].fix
    assert by_rule["secret-assignment"].line == 3
    # Bandit's B105 on the same line is folded into the pattern's finding.
    assert "B105" not in by_rule
    assert all(PASSWORD not in f.message + f.fix for f in findings)


def test_nosec_comments_do_not_hide_a_finding() -> None:
    code = "import subprocess\nsubprocess.call('ls', shell=True)  # nosec\n"

    assert "B602" in rules(scan_python(code))


@pytest.mark.parametrize(
    ("code", "rule"),
    [
        ("import pickle\npickle.loads(data)\n", "B301"),
        ("import hashlib\nhashlib.md5(b'x')\n", "B324"),
        ("eval(user_input)\n", "B307"),
        ("import yaml\nyaml.load(text)\n", "B506"),
        ("import requests\nrequests.get(url, verify=False, timeout=5)\n", "B501"),
    ],
)
def test_bandit_rules(code: str, rule: str) -> None:
    assert rule in rules(scan_python(code))


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (f'key_id = "{AWS_KEY}"\n', "secret-aws-access-key"),
        (
            'aws_secret_access_key = "' + "wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + 'EXAMPLEKEY"\n',
            "secret-aws-secret-key",
        ),
        ("-----BEGIN RSA " + "PRIVATE KEY-----\nMIIE\n", "secret-private-key"),
        ("-----BEGIN OPENSSH " + "PRIVATE KEY-----\n", "secret-private-key"),
        (f'headers = {{"Authorization": "token {GH_TOKEN}"}}\n', "secret-github-token"),
        ('api_key = "9f8e7d6c5b4a39281706"\n', "secret-assignment"),
        ('config = {"client_secret": "q7W!x9Zr2Lp0"}\n', "secret-assignment"),
    ],
)
def test_secret_patterns(text: str, rule: str) -> None:
    (finding,) = scan_secrets(text)

    assert (finding.rule, finding.line, finding.source) == (rule, 1, "secrets")
    assert finding.severity in ("high", "medium")


@pytest.mark.parametrize(
    "text",
    [
        'password = os.environ["PASSWORD"]\n',
        'password = "changeme-please"\n',
        'token = "${TOKEN_FROM_ENV}"\n',
        'password = "aaaaaaaaaaaa"\n',  # no entropy
        'secret_name = "prod"\n',  # too short
        "password = get_password()\n",
    ],
)
def test_references_placeholders_and_low_entropy_values_are_not_secrets(text: str) -> None:
    assert scan_secrets(text) == []


def test_bare_assignments_count_in_config_files_only() -> None:
    env = "DB_PASSWORD=s3cr3tPassw0rd\nMODE=production\nAPI_TOKEN=process.env.TOKEN\n"

    (finding,) = scan_file("deploy/.env", env)

    assert (finding.rule, finding.line) == ("secret-assignment", 1)
    assert "s3cr3tPassw0rd" not in finding.message
    assert scan_python("DB_PASSWORD = s3cr3tPassw0rd\n") == []


def test_python_that_does_not_parse_gets_the_secret_patterns_only() -> None:
    code = f'def f(:\n    key = "{AWS_KEY}"\n'

    assert rules(scan_python(code)) == ["secret-aws-access-key"]


def test_entropy() -> None:
    assert entropy("") == 0.0
    assert entropy("aaaa") == 0.0
    assert entropy("abcd") == 2.0


# -- the worker ------------------------------------------------------------------------


TASK = WorkTask(id="sec", path="app/db.py", worker="security", description="make it safe")


def test_a_finding_left_in_the_first_answer_is_sent_back_and_the_fix_is_taken() -> None:
    still_shell = FIXED.replace("subprocess.call(cmd)", "subprocess.call(cmd, shell=True)")
    model = ScriptedModel(fenced(still_shell), fenced(FIXED))

    out = SecurityWorker().run(TASK, model=model, project="p", inputs={TASK.path: VULNERABLE})

    assert out.files == {TASK.path: FIXED} and out.attempts == 2
    prompt = model.calls[0]["messages"][-1].content
    assert "B602" in prompt and "B608" in prompt and VULNERABLE in prompt
    assert "B404" not in prompt  # low severity: reported, not required
    assert PASSWORD in prompt  # the code itself goes to the local model, never a finding
    repair = model.calls[1]["messages"][-1].content
    assert "still-B602: not fixed: line 8: B602 (high)" in repair
    before = {f["rule"] for f in out.findings if f["scan"] == "before"}
    after = {f["rule"] for f in out.findings if f["scan"] == "after"}
    assert {"B602", "B608", "secret-assignment"} <= before
    assert not after & {"B602", "B608", "secret-assignment"}
    assert any(c["name"] == "security-rescan" and c["ok"] for c in out.checks)


def test_a_fix_that_adds_a_new_high_severity_problem_is_sent_back() -> None:
    worse = FIXED + "\n\ndef digest(data):\n    import hashlib\n\n    return hashlib.md5(data)\n"
    model = ScriptedModel(fenced(worse), fenced(FIXED))

    SecurityWorker().run(TASK, model=model, project="p", inputs={TASK.path: VULNERABLE})

    assert "new-B324: new problem:" in model.calls[1]["messages"][-1].content


def test_deleting_the_code_is_not_a_fix() -> None:
    gutted = "import os\n\nDB_PASSWORD = os.environ['DB_PASSWORD']\n"
    model = ScriptedModel(fenced(gutted), fenced(FIXED))

    SecurityWorker().run(TASK, model=model, project="p", inputs={TASK.path: VULNERABLE})

    repair = model.calls[1]["messages"][-1].content
    assert "interface: the fix removed what the file defined: find, run" in repair


def test_an_answer_that_never_passes_is_model_output_invalid() -> None:
    model = ScriptedModel(fenced(VULNERABLE), fenced(VULNERABLE), fenced(VULNERABLE))

    with pytest.raises(ModelOutputInvalid) as caught:
        SecurityWorker().run(TASK, model=model, project="p", inputs={TASK.path: VULNERABLE})

    problems = [a["problems"] for a in caught.value.details["attempts"]]
    assert len(problems) == 3
    assert all(any(p.startswith("still-B602:") for p in ps) for ps in problems)


def test_a_file_with_nothing_to_fix_comes_back_unchanged_without_the_model() -> None:
    model = ScriptedModel()

    out = SecurityWorker().run(TASK, model=model, project="p", inputs={TASK.path: FIXED})

    assert out.files == {TASK.path: FIXED} and out.attempts == 0 and model.calls == []
    assert {f["rule"] for f in out.findings} == {"B404", "B603"}  # low: reported only


def test_the_task_file_must_be_among_the_inputs() -> None:
    with pytest.raises(InvalidInput):
        SecurityWorker().run(TASK, model=ScriptedModel(), project="p", inputs={})


def test_a_non_python_file_is_scanned_for_secrets_only() -> None:
    task = TASK.model_copy(update={"path": "web/config.js"})
    leaky = f'export const config = {{ token: "{GH_TOKEN}" }};\n'
    safe = "export const config = { token: process.env.GITHUB_TOKEN };\n"
    model = ScriptedModel(fenced(leaky, "js"), fenced(safe, "js"))

    out = SecurityWorker().run(task, model=model, project="p", inputs={task.path: leaky})

    assert out.files == {task.path: safe}
    assert "still-secret-github-token" in model.calls[1]["messages"][-1].content
    assert [f["scan"] for f in out.findings] == ["before"]
