"""Pull-request webhooks without I/O: signatures, delivery ids, one event from each
host's payload, garbage bodies, and matching a repository across URL forms.

The payloads are trimmed from the hosts' documented examples (GitHub
``pull_request``, GitLab "Merge Request Hook", Bitbucket Cloud ``pullrequest:*``),
with their real field names and nesting.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import random
from typing import Any

import pytest

from common.errors import AppError, BadRequest, InvalidInput, MalformedJson, Unauthorized
from common.review.webhooks import (
    BadSignature,
    PullRequestEvent,
    WebhookProvider,
    delivery_id,
    parse_event,
    repository_urls,
    same_repository,
    verify_signature,
)

SECRET = b"w3bh00k-s3cret-" + b"x" * 20
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
BASE = "9049f1265b7d61be4a8904a9a27120d2064dab3b"

GITHUB_PR: dict[str, Any] = {
    "action": "opened",
    "number": 42,
    "pull_request": {
        "url": "https://api.github.com/repos/octo-org/hello-world/pulls/42",
        "id": 1296269,
        "node_id": "PR_kwDOABCD1234",
        "html_url": "https://github.com/octo-org/hello-world/pull/42",
        "diff_url": "https://github.com/octo-org/hello-world/pull/42.diff",
        "number": 42,
        "state": "open",
        "locked": False,
        "title": "Add a greeting ✨",
        "user": {"login": "octocat", "id": 1, "type": "User"},
        "body": "Says hello.",
        "draft": False,
        "created_at": "2026-11-30T19:01:12Z",
        "head": {
            "label": "octocat:feature/greeting",
            "ref": "feature/greeting",
            "sha": HEAD,
            "user": {"login": "octocat", "id": 1},
            "repo": {"full_name": "octo-org/hello-world"},
        },
        "base": {
            "label": "octo-org:main",
            "ref": "main",
            "sha": BASE,
            "user": {"login": "octo-org", "id": 2},
            "repo": {"full_name": "octo-org/hello-world"},
        },
        "merged": False,
        "commits": 1,
    },
    "repository": {
        "id": 1296269,
        "name": "hello-world",
        "full_name": "octo-org/hello-world",
        "private": False,
        "owner": {"login": "octo-org", "id": 2, "type": "Organization"},
        "html_url": "https://github.com/octo-org/hello-world",
        "git_url": "git://github.com/octo-org/hello-world.git",
        "ssh_url": "git@github.com:octo-org/hello-world.git",
        "clone_url": "https://github.com/octo-org/hello-world.git",
        "default_branch": "main",
    },
    "sender": {"login": "octocat", "id": 1, "type": "User"},
}

GITHUB_PING: dict[str, Any] = {
    "zen": "Keep it logically awesome.",
    "hook_id": 109948940,
    "hook": {"type": "Repository", "id": 109948940, "events": ["pull_request"], "active": True},
    "repository": GITHUB_PR["repository"],
    "sender": GITHUB_PR["sender"],
}

GITLAB_MR: dict[str, Any] = {
    "object_kind": "merge_request",
    "event_type": "merge_request",
    "user": {
        "id": 1,
        "name": "Administrator",
        "username": "root",
        "avatar_url": "https://www.gravatar.com/avatar/e64c7d89f26bd1972efa854d13d7dd61",
        "email": "[REDACTED]",
    },
    "project": {
        "id": 1,
        "name": "Gitlab Test",
        "description": "Aut reprehenderit ut est.",
        "web_url": "https://gitlab.example.com/gitlabhq/gitlab-test",
        "avatar_url": None,
        "git_ssh_url": "git@gitlab.example.com:gitlabhq/gitlab-test.git",
        "git_http_url": "https://gitlab.example.com/gitlabhq/gitlab-test.git",
        "namespace": "GitlabHQ",
        "visibility_level": 20,
        "path_with_namespace": "gitlabhq/gitlab-test",
        "default_branch": "master",
    },
    "repository": {
        "name": "Gitlab Test",
        "url": "https://gitlab.example.com/gitlabhq/gitlab-test.git",
        "description": "Aut reprehenderit ut est.",
        "homepage": "https://gitlab.example.com/gitlabhq/gitlab-test",
    },
    "object_attributes": {
        "id": 99,
        "iid": 1,
        "target_branch": "master",
        "source_branch": "ms-viewport",
        "source_project_id": 14,
        "author_id": 51,
        "title": "MS-Viewport",
        "created_at": "2013-12-03T17:23:34Z",
        "updated_at": "2013-12-03T17:23:34Z",
        "state": "opened",
        "merge_status": "unchecked",
        "target_project_id": 14,
        "description": "",
        "url": "https://gitlab.example.com/gitlabhq/gitlab-test/-/merge_requests/1",
        "source": {"name": "Gitlab Test", "path_with_namespace": "gitlabhq/gitlab-test"},
        "target": {"name": "Gitlab Test", "path_with_namespace": "gitlabhq/gitlab-test"},
        "last_commit": {
            "id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "message": "fixed readme",
            "timestamp": "2012-01-03T23:36:29+02:00",
            "url": "https://gitlab.example.com/gitlabhq/gitlab-test/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
            "author": {"name": "GitLab dev user", "email": "gitlabdev@dv6700.(none)"},
        },
        "work_in_progress": False,
        "draft": False,
        "action": "open",
    },
    "labels": [],
    "changes": {},
}

BITBUCKET_PR: dict[str, Any] = {
    "actor": {
        "display_name": "Ada Lovelace",
        "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}",
        "nickname": "ada",
        "type": "user",
        "account_id": "557058:c0b72ad0-1cb5-4018-9cdc-0cde8492c443",
    },
    "pullrequest": {
        "type": "pullrequest",
        "id": 7,
        "title": "Add a greeting",
        "description": "",
        "state": "OPEN",
        "author": {
            "display_name": "Ada Lovelace",
            "uuid": "{d301aafa-d676-4ee0-88be-962be7417567}",
            "nickname": "ada",
            "type": "user",
        },
        "source": {
            "branch": {"name": "feature/greeting"},
            "commit": {"hash": "1a2b3c4d5e6f", "type": "commit"},
            "repository": {"type": "repository", "full_name": "team/hello-world"},
        },
        "destination": {
            "branch": {"name": "main"},
            "commit": {"hash": "abcdef012345", "type": "commit"},
            "repository": {"type": "repository", "full_name": "team/hello-world"},
        },
        "links": {
            "self": {
                "href": "https://api.bitbucket.org/2.0/repositories/team/hello-world/pullrequests/7"
            },
            "html": {"href": "https://bitbucket.org/team/hello-world/pull-requests/7"},
        },
        "close_source_branch": False,
        "created_on": "2026-11-30T19:01:12.345678+00:00",
        "updated_on": "2026-11-30T19:01:12.345678+00:00",
    },
    "repository": {
        "type": "repository",
        "full_name": "team/hello-world",
        "name": "hello-world",
        "uuid": "{b7e9b3a1-4a0b-4f7e-9d2c-0a1b2c3d4e5f}",
        "is_private": True,
        "scm": "git",
        "links": {
            "self": {"href": "https://api.bitbucket.org/2.0/repositories/team/hello-world"},
            "html": {"href": "https://bitbucket.org/team/hello-world"},
            "avatar": {"href": "https://bytebucket.org/ravatar/%7Bb7e9b3a1%7D?ts=default"},
        },
        "workspace": {"slug": "team", "type": "workspace"},
    },
}

PAYLOADS: dict[WebhookProvider, dict[str, Any]] = {
    "github": GITHUB_PR,
    "gitlab": GITLAB_MR,
    "bitbucket": BITBUCKET_PR,
}


def github_headers(event: str = "pull_request", **extra: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-GitHub-Hook-ID": "109948940",
        "Content-Type": "application/json",
        **extra,
    }


def gitlab_headers(event: str = "Merge Request Hook", **extra: str) -> dict[str, str]:
    return {
        "X-Gitlab-Event": event,
        "X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
        "X-Gitlab-Instance": "https://gitlab.example.com",
        "Content-Type": "application/json",
        **extra,
    }


def bitbucket_headers(event: str = "pullrequest:created", **extra: str) -> dict[str, str]:
    return {
        "X-Event-Key": event,
        "X-Request-UUID": "a1b2c3d4-0000-4000-8000-0123456789ab",
        "X-Hook-UUID": "{3f1e6a4b-1111-4222-8333-444455556666}",
        "Content-Type": "application/json",
        **extra,
    }


HEADERS = {"github": github_headers, "gitlab": gitlab_headers, "bitbucket": bitbucket_headers}


def encode(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def with_value(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``payload`` with ``path`` set to ``value`` (deleted when ``...``)."""
    changed = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node = changed
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return changed


# -- signatures -------------------------------------------------------------------------


def test_githubs_documented_test_vector_verifies() -> None:
    # docs.github.com, "Validating webhook deliveries": this secret, body and signature.
    digest = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    headers = {"X-Hub-Signature-256": f"sha256={digest}"}
    verify_signature(
        "github", secret=b"It's a Secret to Everybody", body=b"Hello, World!", headers=headers
    )


@pytest.mark.parametrize(
    ("provider", "header"), [("github", "X-Hub-Signature-256"), ("bitbucket", "X-Hub-Signature")]
)
def test_an_hmac_signature_verifies_only_for_its_body_and_secret(
    provider: WebhookProvider, header: str
) -> None:
    body = encode(PAYLOADS[provider])
    good = sign(body)
    # Given the right signature, in any header case, it verifies
    for name in (header, header.lower(), header.upper()):
        verify_signature(provider, secret=SECRET, body=body, headers={name: good})
    # Every bit of the digest counts
    digest = bytes.fromhex(good.removeprefix("sha256="))
    for bit in (0, 7, 100, 255):
        flipped = bytearray(digest)
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad = {header: "sha256=" + flipped.hex()}
        with pytest.raises(BadSignature):
            verify_signature(provider, secret=SECRET, body=body, headers=bad)
    # One byte more in the body, another secret, or another prefix: refused
    refused = [
        (body + b" ", {header: good}),
        (body, {header: sign(body, b"another secret")}),
        (body, {header: good.replace("sha256=", "sha1=")}),
        (body, {header: good.removeprefix("sha256=")}),
        (body, {header: ""}),
        (body, {header: "sha256=ünïcødé"}),
        (body, {}),
        (body, {"X-Hub-Signature-256" if provider == "bitbucket" else "X-Hub-Signature": good}),
    ]
    for sent, headers in refused:
        with pytest.raises(BadSignature):
            verify_signature(provider, secret=SECRET, body=sent, headers=headers)


def test_a_gitlab_token_must_be_the_secret() -> None:
    body = encode(GITLAB_MR)
    verify_signature(
        "gitlab", secret=SECRET, body=body, headers={"x-gitlab-token": SECRET.decode()}
    )
    for headers in (
        {"X-Gitlab-Token": SECRET.decode()[:-1]},
        {"X-Gitlab-Token": SECRET.decode() + "x"},
        {"X-Gitlab-Token": ""},
        {"X-Gitlab-Token": "jämför"},
        {"X-Hub-Signature": sign(body)},
        {},
    ):
        with pytest.raises(BadSignature):
            verify_signature("gitlab", secret=SECRET, body=body, headers=headers)


def test_a_refusal_is_a_401_that_names_the_header_and_never_the_secret_or_digest() -> None:
    body = encode(GITHUB_PR)
    expected_hex = sign(body).removeprefix("sha256=")
    with pytest.raises(BadSignature) as refused:
        verify_signature(
            "github", secret=SECRET, body=body, headers={"X-Hub-Signature-256": "sha256=00"}
        )
    error = refused.value
    assert isinstance(error, Unauthorized)
    assert error.status == 401 and error.code == "bad_signature"
    assert "X-Hub-Signature-256" in error.message
    text = json.dumps(error.to_body())
    assert SECRET.decode() not in text and expected_hex not in text
    with pytest.raises(BadSignature) as missing:
        verify_signature("gitlab", secret=SECRET, body=body, headers={})
    assert (
        "X-Gitlab-Token" in missing.value.message and SECRET.decode() not in missing.value.message
    )


def test_no_secret_verifies_nothing() -> None:
    # An empty secret would make GitLab's empty token, and an HMAC anyone can compute, pass.
    body = encode(GITLAB_MR)
    with pytest.raises(BadSignature):
        verify_signature("gitlab", secret=b"", body=body, headers={"X-Gitlab-Token": ""})
    with pytest.raises(BadSignature):
        verify_signature(
            "github", secret=b"", body=body, headers={"X-Hub-Signature-256": sign(body, b"")}
        )


# -- delivery ids -----------------------------------------------------------------------


def test_each_hosts_delivery_id_is_read_from_its_header() -> None:
    assert delivery_id("github", github_headers()) == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert delivery_id("bitbucket", {"x-request-uuid": " abc-123 "}) == "abc-123"
    # GitLab: Idempotency-Key is kept across retries and resends; the event UUID is not
    assert delivery_id("gitlab", gitlab_headers()) == "13792a34-cac6-4fda-95a8-c58e00a3954e"
    both = gitlab_headers(**{"Idempotency-Key": "908a6d9e-45fd-46c8-97e6-c4f350f219dd"})
    assert delivery_id("gitlab", both) == "908a6d9e-45fd-46c8-97e6-c4f350f219dd"


@pytest.mark.parametrize(
    ("provider", "headers", "named"),
    [
        ("github", {"X-GitHub-Event": "pull_request"}, "X-GitHub-Delivery"),
        ("gitlab", {"X-Gitlab-Event": "Merge Request Hook"}, "X-Gitlab-Event-UUID"),
        ("bitbucket", {"X-Request-UUID": "  "}, "X-Request-UUID"),
        ("github", {"X-GitHub-Delivery": "has spaces in it"}, "X-GitHub-Delivery"),
        ("github", {"X-GitHub-Delivery": "x" * 201}, "X-GitHub-Delivery"),
        ("bitbucket", {"X-Request-UUID": "ünicode"}, "X-Request-UUID"),
    ],
)
def test_a_missing_or_odd_delivery_id_is_a_400_naming_the_header(
    provider: WebhookProvider, headers: dict[str, str], named: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        delivery_id(provider, headers)
    assert refused.value.status == 400 and named in refused.value.message


# -- events -----------------------------------------------------------------------------


def test_a_github_pull_request_opened_becomes_one_event() -> None:
    event = parse_event("github", github_headers(), encode(GITHUB_PR))
    assert event == PullRequestEvent(
        provider="github",
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        action="opened",
        number=42,
        title="Add a greeting ✨",
        remote_urls=(
            "https://github.com/octo-org/hello-world.git",
            "git@github.com:octo-org/hello-world.git",
            "https://github.com/octo-org/hello-world",
        ),
        base_ref="main",
        head_ref="feature/greeting",
        head_sha=HEAD,
        base_sha=BASE,
        author="octocat",
        url="https://github.com/octo-org/hello-world/pull/42",
    )
    # As the job gets it: through JSON and back
    assert PullRequestEvent.model_validate(json.loads(event.model_dump_json())) == event


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("synchronize", "updated"),
        ("reopened", "reopened"),
        ("closed", None),
        ("edited", None),
        ("labeled", None),
        ("review_requested", None),
    ],
)
def test_github_actions(action: str, expected: str | None) -> None:
    event = parse_event("github", github_headers(), encode(with_value(GITHUB_PR, "action", action)))
    assert (event.action if event else None) == expected


@pytest.mark.parametrize("event_name", ["ping", "push", "issue_comment", "pull_request_review"])
def test_github_events_that_are_not_a_pull_request_are_ignored(event_name: str) -> None:
    assert parse_event("github", github_headers(event_name), encode(GITHUB_PING)) is None


def test_a_gitlab_merge_request_opened_becomes_one_event() -> None:
    event = parse_event("gitlab", gitlab_headers(), encode(GITLAB_MR))
    assert event is not None
    assert event.model_dump() == {
        "provider": "gitlab",
        "delivery_id": "13792a34-cac6-4fda-95a8-c58e00a3954e",
        "action": "opened",
        "number": 1,
        "title": "MS-Viewport",
        "remote_urls": (
            "https://gitlab.example.com/gitlabhq/gitlab-test.git",
            "git@gitlab.example.com:gitlabhq/gitlab-test.git",
            "https://gitlab.example.com/gitlabhq/gitlab-test",
        ),
        "base_ref": "master",
        "head_ref": "ms-viewport",
        "head_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "base_sha": None,
        "author": "root",
        "url": "https://gitlab.example.com/gitlabhq/gitlab-test/-/merge_requests/1",
    }


def test_a_gitlab_update_is_an_event_only_with_new_commits() -> None:
    update = with_value(GITLAB_MR, "object_attributes.action", "update")
    # A title, label or assignee change: no oldrev, nothing new to review
    assert parse_event("gitlab", gitlab_headers(), encode(update)) is None
    pushed = with_value(
        update, "object_attributes.oldrev", "e59094b6fbc8a3c3bd2b1d2b9e2e7c5e2a8f0d10"
    )
    event = parse_event("gitlab", gitlab_headers(), encode(pushed))
    assert event is not None and event.action == "updated"
    reopened = with_value(GITLAB_MR, "object_attributes.action", "reopen")
    assert parse_event("gitlab", gitlab_headers(), encode(reopened)).action == "reopened"  # type: ignore[union-attr]
    for ignored in ("close", "merge", "approved", "unapproved"):
        body = encode(with_value(GITLAB_MR, "object_attributes.action", ignored))
        assert parse_event("gitlab", gitlab_headers(), body) is None
    for other in ("Push Hook", "Note Hook", "Pipeline Hook", "System Hook"):
        assert parse_event("gitlab", gitlab_headers(other), encode(GITLAB_MR)) is None


def test_a_bitbucket_pull_request_becomes_one_event_with_derived_clone_urls() -> None:
    event = parse_event("bitbucket", bitbucket_headers(), encode(BITBUCKET_PR))
    assert event is not None
    assert (event.action, event.number, event.title, event.author) == (
        "opened",
        7,
        "Add a greeting",
        "Ada Lovelace",
    )
    assert (event.head_ref, event.head_sha, event.base_ref, event.base_sha) == (
        "feature/greeting",
        "1a2b3c4d5e6f",
        "main",
        "abcdef012345",
    )
    assert event.url == "https://bitbucket.org/team/hello-world/pull-requests/7"
    assert event.remote_urls == (
        "https://bitbucket.org/team/hello-world.git",
        "git@bitbucket.org:team/hello-world.git",
        "https://bitbucket.org/team/hello-world",
    )
    updated = parse_event(
        "bitbucket", bitbucket_headers("pullrequest:updated"), encode(BITBUCKET_PR)
    )
    assert updated is not None and updated.action == "updated"
    # No web link in the repository: derived from its name as well
    bare = with_value(BITBUCKET_PR, "repository.links", ...)
    event = parse_event("bitbucket", bitbucket_headers(), encode(bare))
    assert event is not None and event.remote_urls[-1] == "https://bitbucket.org/team/hello-world"


def test_bitbucket_events_that_are_not_a_pull_request_opened_or_updated_are_ignored() -> None:
    for key in (
        "repo:push",
        "pullrequest:fulfilled",
        "pullrequest:rejected",
        "pullrequest:comment_created",
        "pullrequest:approved",
    ):
        assert parse_event("bitbucket", bitbucket_headers(key), encode(BITBUCKET_PR)) is None
    declined = with_value(BITBUCKET_PR, "pullrequest.state", "DECLINED")
    assert (
        parse_event("bitbucket", bitbucket_headers("pullrequest:updated"), encode(declined)) is None
    )


def test_a_delivery_without_its_event_header_is_a_400_naming_it() -> None:
    with pytest.raises(BadRequest, match="X-GitHub-Event"):
        parse_event("github", {"X-GitHub-Delivery": "abc"}, encode(GITHUB_PR))
    with pytest.raises(BadRequest, match="X-Event-Key"):
        parse_event("bitbucket", {"X-Request-UUID": "abc"}, encode(BITBUCKET_PR))


def test_a_pull_request_event_without_a_delivery_id_is_a_400() -> None:
    headers = {"X-GitHub-Event": "pull_request"}
    with pytest.raises(BadRequest, match="X-GitHub-Delivery"):
        parse_event("github", headers, encode(GITHUB_PR))
    # An ignored event needs none: nothing is recorded for it
    assert parse_event("github", {"X-GitHub-Event": "ping"}, encode(GITHUB_PING)) is None


def test_an_unknown_provider_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse_event("gitea", {}, b"{}")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        verify_signature("gitea", secret=SECRET, body=b"{}", headers={})  # type: ignore[arg-type]


# -- garbage ----------------------------------------------------------------------------


GARBAGE_BODIES = [
    b"",
    b"not json",
    b"\xff\xfe\x00garbage",
    b"\x80\x81\x82",
    b"{",
    b'{"action": "opened",',
    b"[1, 2, 3]",
    b'"a string"',
    b"null",
    b"42",
    b"{}",
    b"NaN",
    b'{"number": NaN}',
    b'{"number": Infinity}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"number": ' + b"9" * 5000 + b"}",
    '{"action": "opened", "title": "\u00e9\u4e2d\U0001f600"}'.encode(),
    '{"action": "opened"}'.encode("utf-16"),
]


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket"])
@pytest.mark.parametrize("body", GARBAGE_BODIES, ids=range(len(GARBAGE_BODIES)))
def test_a_garbage_body_is_malformed_json_or_invalid_input_never_another_error(
    provider: WebhookProvider, body: bytes
) -> None:
    with pytest.raises((MalformedJson, InvalidInput)) as refused:
        parse_event(provider, HEADERS[provider](), body)
    assert refused.value.status in (400, 422)
    # Nothing is read from an unverified body but URLs, and a bad one names none
    assert repository_urls(provider, body) == []


BAD_VALUES: list[Any] = [
    ...,  # the field deleted
    None,
    "",
    [],
    {},
    True,
    1.5,
    -1,
    0,
    10**30,
    2**53,
    "x" * 5000,
    "\x00",
    "\ud800",  # a lone surrogate: valid JSON, not encodable UTF-8
    "-upload-pack=evil",
    "main..evil",
    "ref with space",
    "javascript:alert(1)",
    "zz" * 20,
]

# The fields each reader needs, per host (those that may be absent are left out).
REQUIRED = {
    "github": [
        "number",
        "pull_request.title",
        "pull_request.html_url",
        "pull_request.head.ref",
        "pull_request.head.sha",
        "pull_request.base.ref",
        "pull_request.user.login",
        "repository.clone_url",
        "repository.html_url",
    ],
    "gitlab": [
        "object_attributes.iid",
        "object_attributes.title",
        "object_attributes.url",
        "object_attributes.source_branch",
        "object_attributes.target_branch",
        "object_attributes.last_commit.id",
        "project.git_http_url",
        "project.web_url",
        "user.username",
    ],
    "bitbucket": [
        "pullrequest.id",
        "pullrequest.title",
        "pullrequest.links.html.href",
        "pullrequest.source.branch.name",
        "pullrequest.source.commit.hash",
        "pullrequest.destination.branch.name",
        "pullrequest.author.display_name",
        "repository.full_name",
    ],
}


@pytest.mark.parametrize(
    ("provider", "path"), [(p, path) for p, paths in REQUIRED.items() for path in paths]
)
def test_a_required_field_missing_or_mistyped_is_invalid_input_naming_it(
    provider: WebhookProvider, path: str
) -> None:
    refused = 0
    for value in BAD_VALUES:
        body = encode(with_value(PAYLOADS[provider], path, value))
        try:
            parse_event(provider, HEADERS[provider](), body)
        except InvalidInput as exc:
            assert path in exc.message
            assert exc.details["fields"][0]["path"] == path
            refused += 1
    # Most bad values are refused for every field; each field refuses the deletion at least
    assert refused >= 5


# What each kind of field must refuse beyond a missing or mistyped value.
REFUSED_BY_KIND: dict[str, list[Any]] = {
    "number": [True, 0, -1, 1.5, "42", 2**53, 10**30],
    "ref": ["-upload-pack=evil", "main..evil", "ref with space", "a@{1}", "x.lock", "\x00"],
    "sha": ["zz" * 20, "abc", "1" * 65, "6dcb09b5 --exec"],
    "web_url": ["javascript:alert(1)", "data:text/html,hi", "https://x.test/a b"],
    "text": ["\ud800", "a\x00b", "x" * 5000, 7, ["a"]],
}
KIND_FIELDS: list[tuple[WebhookProvider, str, str]] = [
    ("github", "number", "number"),
    ("gitlab", "object_attributes.iid", "number"),
    ("bitbucket", "pullrequest.id", "number"),
    ("github", "pull_request.head.ref", "ref"),
    ("github", "pull_request.base.ref", "ref"),
    ("gitlab", "object_attributes.source_branch", "ref"),
    ("bitbucket", "pullrequest.destination.branch.name", "ref"),
    ("github", "pull_request.head.sha", "sha"),
    ("gitlab", "object_attributes.last_commit.id", "sha"),
    ("bitbucket", "pullrequest.source.commit.hash", "sha"),
    ("github", "pull_request.html_url", "web_url"),
    ("gitlab", "object_attributes.url", "web_url"),
    ("bitbucket", "pullrequest.links.html.href", "web_url"),
    ("github", "pull_request.title", "text"),
    ("gitlab", "user.username", "text"),
    ("bitbucket", "pullrequest.author.display_name", "text"),
]


@pytest.mark.parametrize(("provider", "path", "kind"), KIND_FIELDS)
def test_each_kind_of_field_refuses_what_would_be_unsafe_downstream(
    provider: WebhookProvider, path: str, kind: str
) -> None:
    # Refs and hashes reach git commands; web URLs become links; text goes to PostgreSQL.
    for value in REFUSED_BY_KIND[kind]:
        body = encode(with_value(PAYLOADS[provider], path, value))
        with pytest.raises(InvalidInput, match=path.replace(".", r"\.")):
            parse_event(provider, HEADERS[provider](), body)


def test_a_hash_is_kept_lower_case_and_unicode_text_is_kept_as_is() -> None:
    upper = with_value(GITHUB_PR, "pull_request.head.sha", HEAD.upper())
    titled = with_value(upper, "pull_request.title", "Grüße 你好 😀 — ok")
    event = parse_event("github", github_headers(), encode(titled))
    assert event is not None and event.head_sha == HEAD and event.title == "Grüße 你好 😀 — ok"


def test_every_leaf_of_every_payload_set_to_garbage_gives_an_event_none_or_invalid_input() -> None:
    rng = random.Random(20261208)
    for provider, payload in PAYLOADS.items():
        leaves = list(_leaf_paths(payload))
        for path in leaves:
            for value in rng.sample(BAD_VALUES, 6):
                body = encode(with_value(payload, path, value))
                try:
                    result = parse_event(provider, HEADERS[provider](), body)
                except InvalidInput:
                    continue
                assert result is None or isinstance(result, PullRequestEvent)
                # Whatever came through is still JSON a job can carry
                if result is not None:
                    json.loads(result.model_dump_json())


def test_random_bytes_and_random_json_never_escape_as_another_error() -> None:
    rng = random.Random(4242)
    for _ in range(300):
        provider = rng.choice(["github", "gitlab", "bitbucket"])
        if rng.random() < 0.5:
            body = rng.randbytes(rng.randint(0, 200))
        else:
            body = encode(_random_json(rng, depth=0))
        try:
            parse_event(provider, HEADERS[provider](), body)  # type: ignore[arg-type]
        except AppError as exc:
            assert isinstance(exc, MalformedJson | InvalidInput), exc
        assert isinstance(repository_urls(provider, body), list)  # type: ignore[arg-type]


def _leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        paths: list[str] = []
        for key, value in node.items():
            paths += _leaf_paths(value, f"{prefix}{key}.")
        return paths
    return [prefix.rstrip(".")]


def _random_json(rng: random.Random, depth: int) -> Any:
    keys = [
        "action",
        "number",
        "pull_request",
        "object_attributes",
        "pullrequest",
        "repository",
        "project",
        "title",
        "head",
        "ref",
        "sha",
        "iid",
        "id",
        "user",
        "links",
        "html",
    ]
    kind = rng.randrange(6 if depth < 4 else 4)
    if kind == 0:
        return rng.choice([None, True, 0, -5, 2**70, 3.25, "opened", "ü\u0000", "\ud83d"])
    if kind == 1:
        return rng.choice(["synchronize", "open", "main", HEAD, "https://x.test/r"])
    if kind == 2:
        return rng.randint(-(2**64), 2**64)
    if kind == 3:
        return "".join(chr(rng.randint(0, 0x10FFFF)) for _ in range(rng.randint(0, 8)))
    if kind == 4:
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


# -- repositories -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    [
        "https://github.com/octo-org/hello-world",
        "https://github.com/octo-org/hello-world.git",
        "https://github.com/octo-org/hello-world/",
        "https://GitHub.com/Octo-Org/Hello-World.git",
        "https://x-access-token:ghp_secret@github.com/octo-org/hello-world.git",
        "git@github.com:octo-org/hello-world.git",
        "github.com:octo-org/hello-world",
        "ssh://git@github.com/octo-org/hello-world.git",
        "ssh://git@github.com:22/octo-org/hello-world.git",
        "git://github.com/octo-org/hello-world.git",
        "  https://github.com/octo-org/hello-world.git  ",
    ],
)
def test_same_repository_across_url_forms(form: str) -> None:
    assert same_repository(form, ["https://github.com/octo-org/hello-world"])
    assert same_repository("https://github.com/octo-org/hello-world", [form])


@pytest.mark.parametrize(
    "other",
    [
        "https://github.com/octo-org/hello-world-2",
        "https://github.com/octo-org/hello",
        "https://gitlab.com/octo-org/hello-world",
        "git@github.com:someone-else/hello-world.git",
        "https://github.com/octo-org",
        "https://github.com/",
        "",
        "not a url",
        "http://[::1",
    ],
)
def test_other_repositories_do_not_match(other: str) -> None:
    assert not same_repository(other, ["https://github.com/octo-org/hello-world"])
    assert not same_repository("https://github.com/octo-org/hello-world", [other])


def test_each_payloads_urls_match_the_project_remote_in_any_form() -> None:
    remotes = {
        "github": "git@github.com:octo-org/hello-world.git",
        "gitlab": "https://gitlab.example.com/gitlabhq/gitlab-test",
        "bitbucket": "https://ada@bitbucket.org/team/hello-world.git",
    }
    for provider, payload in PAYLOADS.items():
        urls = repository_urls(provider, encode(payload))
        event = parse_event(provider, HEADERS[provider](), encode(payload))
        assert event is not None and list(event.remote_urls) == urls
        assert same_repository(remotes[provider], urls)
        assert not same_repository(remotes[provider], repository_urls(provider, b"[]"))
    assert not same_repository(remotes["github"], [])
