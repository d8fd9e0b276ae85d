"""The remote URL policy (SSRF) and the token hand-off: never in argv or the URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from common.errors import InvalidInput
from common.git.service import GitLinkInput, GitMergeInput, parse_schedule
from common.git.sync import check_remote_url, git_command, git_env
from common.logs import scrub

PUBLIC = {
    "github.com": ["140.82.121.4"],
    "evil.example": ["169.254.169.254"],
    "mixed.example": ["140.82.121.4", "10.0.0.5"],
    "v6.example": ["::ffff:127.0.0.1"],
}


def resolve(host: str) -> list[str]:
    return PUBLIC[host]


@pytest.mark.parametrize(
    ("url", "host", "scheme"),
    [
        ("https://github.com/org/repo.git", "github.com", "https"),
        ("ssh://git@github.com/org/repo.git", "github.com", "ssh"),
        ("git@github.com:org/repo.git", "github.com", "ssh"),
        ("https://github.com:8443/org/repo.git", "github.com:8443", "https"),
    ],
)
def test_public_https_and_ssh_are_accepted(url: str, host: str, scheme: str) -> None:
    remote = check_remote_url(url, resolve=resolve)
    assert (remote.host, remote.scheme) == (host, scheme)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/srv/repo.git",
        "git://github.com/org/repo.git",
        "ext::sh -c touch% /tmp/pwned",
        "http://github.com/org/repo.git",
        "https://127.0.0.1/repo.git",
        "https://localhost.localdomain@10.1.2.3/repo.git",
        "https://[::1]/repo.git",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.1.10/repo.git",
        "https://evil.example/repo.git",
        "https://mixed.example/repo.git",
        "https://v6.example/repo.git",
        "https://user:ghp_secret@github.com/org/repo.git",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        check_remote_url(url, resolve=resolve)


def test_private_hosts_allowed_when_configured() -> None:
    remote = check_remote_url("http://127.0.0.1:9999/repo.git", allow_private=True)
    assert remote.host == "127.0.0.1:9999"
    with pytest.raises(InvalidInput):
        check_remote_url("file:///srv/repo.git", allow_private=True)


def test_token_travels_by_env_only(tmp_path: Path) -> None:
    token = "ghp_" + "s" * 36
    argv = git_command(["clone", "--", "https://github.com/o/r.git", "dest"])
    env = git_env(token=token, host="github.com", askpass=tmp_path / "askpass.sh", base={})
    assert all(token not in a for a in argv)
    assert "credential.helper=" in argv
    assert env["AO_GIT_TOKEN"] == token and env["GIT_ASKPASS"].endswith("askpass.sh")
    assert env["AO_GIT_USERNAME"] == "x-access-token"
    assert [k for k, v in env.items() if token in v] == ["AO_GIT_TOKEN"]
    assert "AO_GIT_TOKEN" not in git_env(token=None, host="x", askpass=tmp_path, base=env)


def test_git_cannot_follow_redirects_or_other_protocols(tmp_path: Path) -> None:
    argv = git_command(["fetch", "origin"])
    assert "http.followRedirects=false" in argv
    assert git_env(token=None, host="x", askpass=tmp_path, base={})["GIT_ALLOW_PROTOCOL"] == (
        "https:ssh"
    )


@pytest.mark.parametrize(
    "token",
    ["github_pat_11ABCDEFG0123456789_abcdefghijkl", "ATBB" + "x" * 28, "ghp_" + "y" * 36],
)
def test_git_host_tokens_are_scrubbed_from_log_text(token: str) -> None:
    assert token not in scrub(f"git push failed with {token} in it")


@pytest.mark.parametrize(("text", "seconds"), [("15m", 900), ("2h", 7200), ("1d", 86400)])
def test_schedules_parse(text: str, seconds: int) -> None:
    assert parse_schedule(text) == seconds


@pytest.mark.parametrize("schedule", ["1m", "4m", "soon", "0h", "-1d"])
def test_short_or_malformed_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ValidationError):
        GitLinkInput(remote_url="https://github.com/o/r.git", schedule=schedule)


@pytest.mark.parametrize("branch", ["-upload-pack=x", "a..b", "feature/", "a b", "x//y"])
def test_branch_names_that_git_could_misread_are_refused(branch: str) -> None:
    with pytest.raises(ValidationError):
        GitMergeInput(branch=branch)


def test_merge_input_needs_a_branch_or_an_accepted_proposal() -> None:
    with pytest.raises(ValidationError):
        GitMergeInput()
    with pytest.raises(ValidationError):
        GitMergeInput(accept=True)
    assert GitMergeInput(branch="feature/x").branch == "feature/x"


def test_the_git_job_kinds_load() -> None:
    from common.jobs.kinds import load_runner

    assert callable(load_runner("git_sync")) and callable(load_runner("git_merge"))


def test_git_gets_none_of_our_secrets(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "SECRET_KEY": "s", "DATABASE_URL": "postgresql://u:p@h/d"}
    env = git_env(token=None, host="x", askpass=tmp_path, base=base)
    assert env["PATH"] == "/usr/bin" and "SECRET_KEY" not in env and "DATABASE_URL" not in env
