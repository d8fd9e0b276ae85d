"""GitHub, GitLab and Bitbucket REST calls (common/git/hosts.py) against the loopback
stand-in of their documented routes (tests/utils/git_hosts.py): pull requests, reviews,
statuses, and the errors a host's answer becomes; the remote parsing and API address policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from common.errors import Conflict, GitHostError, InvalidInput
from common.git.hosts import (
    GitHostNotFound,
    GitHostRateLimited,
    GitHostTokenRefused,
    HostClient,
    HostRepo,
    InlineComment,
    PullRequestExists,
    host_repo,
)
from tests.utils.git_hosts import GitHostStandIn

TOKEN = "glpat-" + "HostT0kenSecret" * 2
# No known prefix: the log scrubber would not recognise it, only the client can hide it.
WRONG = "Wr0ngTokenNotThis" * 2
KINDS = ("github", "gitlab", "bitbucket")
PATHS = {"github": "octo/app", "gitlab": "group/sub/app", "bitbucket": "team/app"}
BASE_SHA = "a" * 40
HEAD_SHA = "b" * 40
OTHER_SHA = "c" * 40


@pytest.fixture(scope="module")
def server() -> Iterator[GitHostStandIn]:
    with GitHostStandIn(token=TOKEN) as standin:
        yield standin


@pytest.fixture
def standin(server: GitHostStandIn) -> GitHostStandIn:
    server.reset()
    for kind, path in PATHS.items():
        server.add_repo(
            kind,
            path,
            branches={"main": BASE_SHA, "ao/fix-1": HEAD_SHA, "ao/fix-2": OTHER_SHA},
        )
    return server


def repo_of(standin: GitHostStandIn, kind: str, path: str | None = None) -> HostRepo:
    return host_repo(
        standin.remote_url(path or PATHS[kind]),
        kind=kind,  # type: ignore[arg-type]
        api_url=standin.api_url(kind),
        allow_private=True,
    )


def client(standin: GitHostStandIn, kind: str, *, token: str = TOKEN, **options: Any) -> HostClient:
    return HostClient(repo_of(standin, kind), token, **options)


def open_one(standin: GitHostStandIn, kind: str, head: str = "ao/fix-1") -> int:
    with client(standin, kind) as host:
        return host.open_pull_request(head=head, base="main", title="Fix", body="Why").number


# -- pull requests ---------------------------------------------------------------------

PR_CALLS = {
    "github": (
        "/repos/octo/app/pulls",
        {"title": "Fix it", "head": "ao/fix-1", "base": "main", "body": "**Verified**"},
    ),
    "gitlab": (
        "/projects/group%2Fsub%2Fapp/merge_requests",
        {
            "source_branch": "ao/fix-1",
            "target_branch": "main",
            "title": "Fix it",
            "description": "**Verified**",
        },
    ),
    "bitbucket": (
        "/repositories/team/app/pullrequests",
        {
            "title": "Fix it",
            "description": "**Verified**",
            "source": {"branch": {"name": "ao/fix-1"}},
            "destination": {"branch": {"name": "main"}},
        },
    ),
}
PR_URLS = {
    "github": "/github/octo/app/pull/{n}",
    "gitlab": "/gitlab/group/sub/app/-/merge_requests/{n}",
    "bitbucket": "/bitbucket/team/app/pull-requests/{n}",
}


@pytest.mark.parametrize("kind", KINDS)
def test_open_pull_request_numbers_and_urls(standin: GitHostStandIn, kind: str) -> None:
    with client(standin, kind) as host:
        first = host.open_pull_request(
            head="ao/fix-1", base="main", title="Fix it", body="**Verified**"
        )
        second = host.open_pull_request(head="ao/fix-2", base="main", title="Two", body="")

    assert (first.number, second.number) == (1, 2)
    assert first.url == standin.url + PR_URLS[kind].format(n=1)
    assert second.url == standin.url + PR_URLS[kind].format(n=2)
    assert first.kind == ("merge_request" if kind == "gitlab" else "pull_request")
    path, body = PR_CALLS[kind]
    calls = standin.calls(kind, "POST", path)
    assert [c.status for c in calls] == [201, 201]
    assert calls[0].json == body
    assert all(c.authorized for c in calls)
    headers = calls[0].headers
    assert "ai-orchestrator" in headers["user-agent"]
    if kind == "github":
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["x-github-api-version"] == "2022-11-28"
    recorded = [(p["head"], p["base"], p["number"]) for p in standin.pull_requests]
    assert recorded == [("ao/fix-1", "main", 1), ("ao/fix-2", "main", 2)]


@pytest.mark.parametrize(
    ("kind", "host_status"), [("github", 422), ("gitlab", 409), ("bitbucket", 400)]
)
def test_second_open_for_the_same_head_is_a_conflict(
    standin: GitHostStandIn, kind: str, host_status: int
) -> None:
    open_one(standin, kind)

    with pytest.raises(PullRequestExists) as caught, client(standin, kind) as host:
        host.open_pull_request(head="ao/fix-1", base="main", title="Again", body="")

    error = caught.value
    assert isinstance(error, Conflict)
    assert (error.status, error.code) == (409, "pull_request_exists")
    assert "already has an open" in error.message and "ao/fix-1" in error.message
    assert error.details == {"head": "ao/fix-1", "base": "main"}
    assert [c.status for c in standin.calls(kind, "POST")] == [201, host_status]
    assert len(standin.pull_requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_branch_is_the_hosts_refusal(standin: GitHostStandIn, kind: str) -> None:
    with pytest.raises(GitHostError) as caught, client(standin, kind) as host:
        host.open_pull_request(head="not-pushed", base="main", title="Fix", body="")

    assert type(caught.value) is GitHostError
    assert caught.value.status == 502
    assert caught.value.details["host_status"] == (400 if kind == "bitbucket" else 422)
    assert "rejected" in caught.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_repository_is_not_found(standin: GitHostStandIn, kind: str) -> None:
    missing = "group/sub/gone" if kind == "gitlab" else "octo/gone"
    repo = repo_of(standin, kind, missing)

    with pytest.raises(GitHostNotFound) as caught, HostClient(repo, TOKEN) as host:
        host.open_pull_request(head="ao/fix-1", base="main", title="Fix", body="")

    assert (caught.value.status, caught.value.code) == (404, "git_host_not_found")
    assert f"repository {missing}" in caught.value.message


# -- reviews ---------------------------------------------------------------------------

COMMENTS = [
    InlineComment(path="app.py", line=3, body="Handle None here."),
    InlineComment(path="pkg/util.py", line=12, body="This loop is quadratic."),
]


def test_github_review_is_one_comment_review(standin: GitHostStandIn) -> None:
    open_one(standin, "github")

    with client(standin, "github") as host:
        host.post_review(number=1, commit=HEAD_SHA, summary="Two findings.", comments=COMMENTS)

    (call,) = standin.calls("github", "POST", "/repos/octo/app/pulls/1/reviews")
    assert call.status == 200
    assert call.json == {
        "commit_id": HEAD_SHA,
        "body": "Two findings.",
        "event": "COMMENT",
        "comments": [
            {"path": "app.py", "line": 3, "side": "RIGHT", "body": "Handle None here."},
            {"path": "pkg/util.py", "line": 12, "side": "RIGHT", "body": "This loop is quadratic."},
        ],
    }
    shown = [(c["type"], c["path"], c["line"], c["body"]) for c in standin.comments]
    assert shown == [
        ("summary", None, None, "Two findings."),
        ("inline", "app.py", 3, "Handle None here."),
        ("inline", "pkg/util.py", 12, "This loop is quadratic."),
    ]


def test_gitlab_review_positions_carry_the_diff_refs(standin: GitHostStandIn) -> None:
    open_one(standin, "gitlab")

    with client(standin, "gitlab") as host:
        host.post_review(number=1, commit=HEAD_SHA, summary="Two findings.", comments=COMMENTS)

    mr = "/projects/group%2Fsub%2Fapp/merge_requests/1"
    assert [(c.method, c.path) for c in standin.calls("gitlab")][1:] == [
        ("GET", mr),
        ("POST", f"{mr}/notes"),
        ("POST", f"{mr}/discussions"),
        ("POST", f"{mr}/discussions"),
    ]
    assert standin.calls("gitlab", "POST", f"{mr}/notes")[0].json == {"body": "Two findings."}
    first = standin.calls("gitlab", "POST", f"{mr}/discussions")[0]
    assert first.status == 201
    assert first.json == {
        "body": "Handle None here.",
        "position": {
            "position_type": "text",
            "base_sha": BASE_SHA,
            "start_sha": BASE_SHA,
            "head_sha": HEAD_SHA,
            "old_path": "app.py",
            "new_path": "app.py",
            "new_line": 3,
        },
    }
    shown = [(c["type"], c["path"], c["line"]) for c in standin.comments]
    assert shown == [
        ("summary", None, None),
        ("inline", "app.py", 3),
        ("inline", "pkg/util.py", 12),
    ]


def test_bitbucket_review_is_a_comment_then_inline_comments(standin: GitHostStandIn) -> None:
    open_one(standin, "bitbucket")

    with client(standin, "bitbucket") as host:
        host.post_review(number=1, commit=HEAD_SHA, summary="Two findings.", comments=COMMENTS)

    calls = standin.calls("bitbucket", "POST", "/repositories/team/app/pullrequests/1/comments")
    assert [c.json for c in calls] == [
        {"content": {"raw": "Two findings."}},
        {"content": {"raw": "Handle None here."}, "inline": {"path": "app.py", "to": 3}},
        {
            "content": {"raw": "This loop is quadratic."},
            "inline": {"path": "pkg/util.py", "to": 12},
        },
    ]
    assert [c.status for c in calls] == [201, 201, 201]
    shown = [(c["type"], c["path"], c["line"]) for c in standin.comments]
    assert shown == [
        ("summary", None, None),
        ("inline", "app.py", 3),
        ("inline", "pkg/util.py", 12),
    ]


def test_gitlab_review_waits_for_the_diff_then_gives_up(standin: GitHostStandIn) -> None:
    open_one(standin, "gitlab")
    mr = "/projects/group%2Fsub%2Fapp/merge_requests/1"

    standin.delay_diff_refs(2)
    with client(standin, "gitlab", diff_wait_s=5) as host:
        host.post_review(number=1, commit=HEAD_SHA, summary="Late diff.", comments=COMMENTS[:1])
    assert len(standin.calls("gitlab", "GET", mr)) == 3
    assert standin.comments[-1]["position"]["head_sha"] == HEAD_SHA

    standin.delay_diff_refs(100)
    with pytest.raises(GitHostError) as caught, client(standin, "gitlab", diff_wait_s=0.2) as host:
        host.post_review(number=1, commit=HEAD_SHA, summary="Never.", comments=COMMENTS)
    assert "has not computed the diff" in caught.value.message
    assert len(standin.comments) == 2  # nothing more was posted


def test_gitlab_review_of_a_head_that_moved_on_is_a_conflict(standin: GitHostStandIn) -> None:
    open_one(standin, "gitlab")
    standin.push("gitlab", PATHS["gitlab"], "ao/fix-1", OTHER_SHA)

    with pytest.raises(Conflict) as caught, client(standin, "gitlab") as host:
        host.post_review(number=1, commit=HEAD_SHA, summary="Stale.", comments=COMMENTS)

    assert "has moved on" in caught.value.message
    assert standin.comments == []


@pytest.mark.parametrize("kind", KINDS)
def test_review_of_an_unknown_pull_request_is_not_found(standin: GitHostStandIn, kind: str) -> None:
    with pytest.raises(GitHostNotFound) as caught, client(standin, kind) as host:
        host.post_review(number=7, commit=HEAD_SHA, summary="?", comments=COMMENTS)
    assert "#7" in caught.value.message or "!7" in caught.value.message


def test_review_input_is_checked_before_any_request(standin: GitHostStandIn) -> None:
    with client(standin, "github") as host:
        for bad in (
            {"summary": " "},
            {"commit": "not-a-sha"},
            {"comments": [InlineComment(path="a.py", line=0, body="x")]},
            {"comments": [InlineComment(path="/etc/passwd", line=1, body="x")]},
        ):
            arguments: dict[str, Any] = {
                "number": 1,
                "commit": HEAD_SHA,
                "summary": "ok",
                "comments": [],
                **bad,
            }
            with pytest.raises(InvalidInput):
                host.post_review(**arguments)
    assert standin.calls() == []


# -- statuses --------------------------------------------------------------------------

STATUS_WORDS = {
    "github": ["pending", "pending", "success", "failure", "error"],
    # GitLab refuses pending -> pending (a 400), which the client takes as "already so".
    "gitlab": ["pending", "success", "failed", "failed"],
    "bitbucket": ["INPROGRESS", "INPROGRESS", "SUCCESSFUL", "FAILED", "FAILED"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_statuses_in_each_hosts_words(standin: GitHostStandIn, kind: str) -> None:
    with client(standin, kind) as host:
        for state in ("pending", "pending", "success"):
            host.set_status(
                commit=HEAD_SHA,
                state=state,  # type: ignore[arg-type]
                context="ao/verify",
                description="x" * 200,
                target_url="https://ao.example/jobs/1",
            )
        host.set_status(commit=HEAD_SHA, state="failure", context="ao/tests", description="3 fail")
        host.set_status(commit=OTHER_SHA, state="error", context="ao/tests", description="crash")

    statuses = standin.statuses
    assert [s["state"] for s in statuses] == STATUS_WORDS[kind]
    assert [s["context"] for s in statuses][-2:] == ["ao/tests", "ao/tests"]
    assert statuses[0]["target_url"] == "https://ao.example/jobs/1"
    if kind == "github":
        assert len(statuses[0]["description"]) == 140
    if kind == "bitbucket":
        # Bitbucket requires a URL: the repository's page stands in for none.
        assert statuses[-1]["target_url"] == f"{standin.url}/{PATHS[kind]}"
        route = f"/repositories/team/app/commit/{HEAD_SHA}/statuses/build"
        calls = standin.calls(kind, "POST", route)
        assert calls[0].json["key"] == "ao/verify" and calls[0].json["name"] == "ao/verify"
        assert [c.status for c in calls] == [201, 200, 200, 201]
    if kind == "gitlab":
        calls = standin.calls(kind, "POST", f"/projects/group%2Fsub%2Fapp/statuses/{HEAD_SHA}")
        assert [c.status for c in calls] == [201, 400, 201, 201]
        assert calls[0].json["name"] == "ao/verify"


@pytest.mark.parametrize("kind", KINDS)
def test_status_on_an_unknown_commit(standin: GitHostStandIn, kind: str) -> None:
    with pytest.raises((GitHostError, GitHostNotFound)) as caught, client(standin, kind) as host:
        host.set_status(commit="d" * 40, state="success", context="ao", description="ok")
    # GitHub says 422 "No commit found"; GitLab and Bitbucket a 404.
    expected = GitHostError if kind == "github" else GitHostNotFound
    assert type(caught.value) is expected
    assert "d" * 12 in caught.value.message


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_token_is_refused_and_never_shown(
    standin: GitHostStandIn, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    capfd.readouterr()
    with pytest.raises(GitHostTokenRefused) as caught, client(standin, kind, token=WRONG) as host:
        host.open_pull_request(head="ao/fix-1", base="main", title="Fix", body="")
    error = caught.value
    assert (error.status, error.code) == (403, "git_host_token_refused")
    assert "refused the token" in error.message and "(401" in error.message
    assert error.details == {"host": standin.host, "host_status": 401}
    assert [c.status for c in standin.calls(kind)] == [401]
    assert standin.pull_requests == []

    # A host that quotes the token back: the message still does not carry it.
    standin.respond_next(kind, 403, {"message": f"token {WRONG} lacks scope api"})
    with pytest.raises(GitHostTokenRefused) as caught, client(standin, kind, token=WRONG) as host:
        host.set_status(commit=HEAD_SHA, state="success", context="ao", description="ok")
    assert "(403" in caught.value.message and "lacks scope" in caught.value.message

    out, err = capfd.readouterr()
    for text in (error.message, str(error.to_body()), caught.value.message, out, err):
        assert WRONG not in text
    assert TOKEN not in out + err


@pytest.mark.parametrize("kind", KINDS)
def test_a_server_error_is_the_502_host_error(standin: GitHostStandIn, kind: str) -> None:
    body = {
        "github": {"message": "Server Error"},
        "gitlab": {"message": "500 Internal Server Error"},
        "bitbucket": {"type": "error", "error": {"message": "Something went wrong"}},
    }[kind]
    standin.respond_next(kind, 500, body)

    with pytest.raises(GitHostError) as caught, client(standin, kind) as host:
        host.open_pull_request(head="ao/fix-1", base="main", title="Fix", body="")

    error = caught.value
    assert type(error) is GitHostError
    assert (error.status, error.code) == (502, "git_host_error")
    assert "(500: " in error.message and "try again later" in error.message
    assert error.to_body()["error"]["host_status"] == 500
    assert standin.pull_requests == []


def test_rate_limit_is_typed_with_retry_after(standin: GitHostStandIn) -> None:
    standin.respond_next(
        "github",
        403,
        {"message": "API rate limit exceeded"},
        headers={"x-ratelimit-remaining": "0", "retry-after": "42"},
    )
    with pytest.raises(GitHostRateLimited) as caught, client(standin, "github") as host:
        host.open_pull_request(head="ao/fix-1", base="main", title="Fix", body="")
    assert caught.value.status == 429
    assert caught.value.headers == {"Retry-After": "42"}


def test_a_slow_or_absent_host_is_the_502_host_error(standin: GitHostStandIn) -> None:
    standin.respond_next("gitlab", 201, {"iid": 1, "web_url": "x"}, delay_s=1.0)
    with pytest.raises(GitHostError) as caught, client(standin, "gitlab", timeout_s=0.2) as host:
        host.open_pull_request(head="ao/fix-1", base="main", title="Fix", body="")
    assert "did not answer within 0.2 s" in caught.value.message

    closed = GitHostStandIn().start()  # a port that was bound once and is free again
    gone = host_repo(
        closed.remote_url("octo/app"),
        kind="github",
        api_url=closed.api_url("github"),
        allow_private=True,
    )
    closed.stop()
    with pytest.raises(GitHostError) as caught, HostClient(gone, TOKEN) as host:
        host.set_status(commit=HEAD_SHA, state="success", context="ao", description="ok")
    assert "cannot be reached" in caught.value.message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("follow", [False, True])
def test_a_redirect_is_not_followed(standin: GitHostStandIn, kind: str, follow: bool) -> None:
    with GitHostStandIn(token=TOKEN) as elsewhere:
        elsewhere.add_repo(kind, PATHS[kind], branches={"main": BASE_SHA, "ao/fix-1": HEAD_SHA})
        target = elsewhere.api_url(kind) + PR_CALLS[kind][0]
        standin.respond_next(kind, 307, headers={"Location": target})
        # Even a client that follows redirects by default sends no request there.
        with httpx.Client(follow_redirects=follow) as http:
            host = client(standin, kind, http=http)
            with pytest.raises(GitHostError) as caught:
                host.open_pull_request(head="ao/fix-1", base="main", title="Fix", body="")
        assert "redirect (307)" in caught.value.message
        assert elsewhere.calls() == []
        assert [c.status for c in standin.calls(kind)] == [307]


# -- remotes and the address policy ---------------------------------------------------


PUBLIC = {
    "github": ("https://api.github.com", "octo/app", "github.com"),
    "gitlab": ("https://gitlab.com/api/v4", "group/sub/app", "gitlab.com"),
    "bitbucket": ("https://api.bitbucket.org/2.0", "team/app", "bitbucket.org"),
}


@pytest.mark.parametrize(
    ("remote", "kind"),
    [
        ("https://github.com/octo/app.git", "github"),
        ("git@github.com:octo/app.git", "github"),
        ("ssh://git@github.com/octo/app", "github"),
        ("https://GitHub.com/octo/app/", "github"),
        ("https://gitlab.com/group/sub/app.git", "gitlab"),
        ("git@gitlab.com:group/sub/app.git", "gitlab"),
        ("https://bitbucket.org/team/app.git", "bitbucket"),
        ("https://me@bitbucket.org/team/app.git", "bitbucket"),
        ("git@bitbucket.org:team/app.git", "bitbucket"),
    ],
)
def test_public_hosts_are_derived(remote: str, kind: str) -> None:
    api_url, path, web_host = PUBLIC[kind]

    repo = host_repo(remote)

    assert (repo.kind, repo.api_url, repo.path, repo.web_host) == (kind, api_url, path, web_host)
    assert repo.web_url == f"https://{web_host}/{path}"
    assert repo.allow_private is False
    if kind == "gitlab":
        assert repo.project_id == "group%2Fsub%2Fapp"


SELF_HOSTED = "https://git.example.com/a/b.git"


def test_self_hosted_hosts_need_a_kind() -> None:
    ghe = host_repo("git@ghe.example.com:octo/app.git", kind="github")
    assert ghe.api_url == "https://ghe.example.com/api/v3"
    gitlab = host_repo("https://git.example.com:8443/a/b/c.git", kind="gitlab")
    assert gitlab.api_url == "https://git.example.com:8443/api/v4"
    assert gitlab.path == "a/b/c"
    ssh = host_repo("ssh://git@git.example.com:2222/a/b.git", kind="gitlab")
    assert ssh.api_url == "https://git.example.com/api/v4"  # sshd's port is not the API's
    given = host_repo(
        "https://git.example.com/a/b.git", kind="gitlab", api_url="https://api.example.com/v4/"
    )
    assert given.api_url == "https://api.example.com/v4"


@pytest.mark.parametrize(
    ("remote", "options", "says"),
    [
        ("file:///srv/app.git", {}, "https:// or ssh://"),
        ("https://github.com/octo", {}, "owner/name"),
        ("https://github.com/octo/app/extra", {}, "owner/name"),
        ("https://bitbucket.org/team/sub/app", {}, "workspace/slug"),
        ("https://gitlab.com/app", {}, "group/name"),
        ("https://github.com/octo/../app", {}, "repository path"),
        (SELF_HOSTED, {}, "host_kind"),
        (SELF_HOSTED, {"kind": "bitbucket"}, "api_url"),
        (SELF_HOSTED, {"kind": "svn"}, "host_kind"),
        ("https://github.com/octo/app", {"kind": "gitlab"}, "github.com is GitHub"),
        ("https://github.com/octo/app", {"api_url": "https://evil.example"}, "api.github.com"),
        (SELF_HOSTED, {"kind": "gitlab", "api_url": "ftp://x/api"}, "https://"),
        (SELF_HOSTED, {"kind": "gitlab", "api_url": "https://u:p@x/api"}, "credentials"),
    ],
)
def test_bad_remotes_are_invalid_input(remote: str, options: dict[str, Any], says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        host_repo(remote, **options)
    assert says in caught.value.message


def test_a_password_in_the_remote_is_refused_unseen() -> None:
    with pytest.raises(InvalidInput) as caught:
        host_repo(f"https://x-access-token:{WRONG}@github.com/octo/app.git")
    assert WRONG not in caught.value.message and "credentials" in caught.value.message


def test_loopback_api_is_refused_without_allow_private(standin: GitHostStandIn) -> None:
    for api_url in (standin.api_url("github"), "https://127.0.0.1:9/api/v3"):
        repo = host_repo(standin.remote_url("octo/app"), kind="github", api_url=api_url)
        with pytest.raises(InvalidInput) as caught:
            HostClient(repo, TOKEN)
        assert "API URL" in caught.value.message
    # https on loopback fails the address check, and names the setting that lifts it.
    assert caught.value.details == {"setting": "ALLOW_PRIVATE_GIT_HOSTS"}

    allowed = repo_of(standin, "github")
    with HostClient(allowed, TOKEN) as host:
        host.set_status(commit=HEAD_SHA, state="success", context="ao", description="ok")
    assert [s["state"] for s in standin.statuses] == ["success"]
    assert standin.calls("github")[0].authorized


def test_a_public_name_resolving_inside_is_refused() -> None:
    repo = host_repo("https://ghe.example.com/octo/app.git", kind="github")
    with pytest.raises(InvalidInput) as caught:
        HostClient(repo, TOKEN, resolve=lambda _host: ["169.254.169.254"])
    assert "not a public address" in caught.value.message
    HostClient(repo, TOKEN, resolve=lambda _host: ["140.82.112.6"]).close()  # no request made


def test_a_token_that_is_not_one_word_is_refused_unseen(standin: GitHostStandIn) -> None:
    for bad in ("", f"{WRONG}\r\nX-Injected: 1", f"{WRONG} more"):
        with pytest.raises(InvalidInput) as caught:
            HostClient(repo_of(standin, "github"), bad)
        assert WRONG not in caught.value.message
    assert standin.calls() == []
