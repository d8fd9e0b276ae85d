"""template.yaml, the Git parts: the KMS key of stored tokens and who may use it, and
the GitLayer that gives the jobs worker a git binary (Lambda's python3.12 has none)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "git"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(ROOT / "template.yaml"))


def _function(template: dict[str, Any], name: str) -> dict[str, Any]:
    [props] = [
        r["Properties"]
        for r in template["Resources"].values()
        if r.get("Type") == "AWS::Serverless::Function"
        and r["Properties"].get("CodeUri") == f"functions/{name}/"
    ]
    return props


def test_git_tokens_are_envelope_encrypted_with_a_retained_rotating_kms_key(
    template: dict[str, Any],
) -> None:
    key = template["Resources"]["GitTokensKey"]
    assert key["Type"] == "AWS::KMS::Key"
    # Deleting the key would make every stored token unreadable
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert key["Properties"]["EnableKeyRotation"] is True
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["GIT_TOKENS_KMS_KEY_ID"] == {"Fn::GetAtt": ["GitTokensKey", "Arn"]}


def test_only_the_functions_that_encrypt_or_decrypt_tokens_may_use_the_key(
    template: dict[str, Any],
) -> None:
    policy = template["Resources"]["GitTokensKeyPolicy"]["Properties"]["PolicyDocument"]
    [statement] = policy["Statement"]
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert statement["Resource"] == {"Fn::GetAtt": ["GitTokensKey", "Arn"]}
    attached = {"Ref": "GitTokensKeyPolicy"}
    for name in ("git_credentials_create", "git_credentials_update", "jobs_worker"):
        assert attached in _function(template, name).get("Policies", []), name
    for name in ("git_credentials_list", "git_credentials_delete", "projects_git_status"):
        assert attached not in _function(template, name).get("Policies", []), name


def test_the_jobs_worker_gets_git_from_the_git_layer(template: dict[str, Any]) -> None:
    layer = template["Resources"]["GitLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/git/"
    assert layer["Properties"]["CompatibleRuntimes"] == [template["Globals"]["Function"]["Runtime"]]
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    assert "build-GitLayer:" in (LAYER / "Makefile").read_text()
    worker = _function(template, "jobs_worker")
    # Added to the CommonLayer of Globals (SAM concatenates the lists)
    assert worker["Layers"] == [{"Ref": "GitLayer"}]
    env = worker["Environment"]["Variables"]
    # The paths collect.sh lays out, under /opt where Lambda unpacks a layer
    script = (LAYER / "collect.sh").read_text()
    assert env["GIT_EXEC_PATH"] == "/opt/libexec/git-core" and '"$OUT/libexec/git-core' in script
    assert env["GIT_TEMPLATE_DIR"] == "/opt/share/git-core/templates"
    assert '"$OUT/share/git-core/templates"' in script
    # git clones into DATA_DIR: only /tmp is writable on Lambda
    assert str(env["DATA_DIR"]).startswith("/tmp/")


def test_the_git_layer_is_built_on_the_runtimes_own_image() -> None:
    dockerfile = (LAYER / "Dockerfile").read_text()
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.12 AS build$", dockerfile, re.M)
    assert re.search(r"^RUN dnf install -y git-core", dockerfile, re.M)
    assert "collect.sh" in dockerfile and re.search(r"^FROM scratch$", dockerfile, re.M)
