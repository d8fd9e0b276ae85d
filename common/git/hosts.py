"""Pull/merge requests, review comments and commit statuses on GitHub, GitLab and Bitbucket.

A git remote says where the code is; :func:`host_repo` turns it into the host's
REST API and the repository's name there, and :class:`HostClient` calls the few
documented routes the orchestrator needs after it pushed a branch.

The token is handled as in :mod:`common.git.sync`:

- The API base passes the same address policy as a git remote
  (:func:`~common.git.sync.check_remote_url`) before any request: a self-hosted
  ``api_url`` is caller input, and our token would otherwise go to an internal
  address (SSRF). ``ALLOW_PRIVATE_GIT_HOSTS`` lifts the address check only.
- Redirects are never followed: the policy saw only the first address, and a 30x
  could send the request, token and all, to another one.
- The token travels only in the header the host documents. It is never logged (no
  request headers are), and any host message quoted in an error is scrubbed of it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from common.errors import AppError, Conflict, GitHostError, InvalidInput, NotFound, RateLimited
from common.git.sync import Resolver, check_remote_url
from common.logs import get_logger, scrub

log = get_logger("git.hosts")

HostKind = Literal["github", "gitlab", "bitbucket"]
StatusState = Literal["success", "failure", "pending", "error"]

_KINDS: tuple[HostKind, ...] = ("github", "gitlab", "bitbucket")
_NAMES: dict[HostKind, str] = {"github": "GitHub", "gitlab": "GitLab", "bitbucket": "Bitbucket"}
_PUBLIC: dict[str, tuple[HostKind, str]] = {
    "github.com": ("github", "https://api.github.com"),
    "gitlab.com": ("gitlab", "https://gitlab.com/api/v4"),
    "bitbucket.org": ("bitbucket", "https://api.bitbucket.org/2.0"),
}
# Where a self-hosted instance serves its API. Bitbucket has none here: Bitbucket
# Data Center speaks another API (/rest/api/1.0), so only an explicit api_url works.
_SELF_HOSTED_API: dict[HostKind, str] = {"github": "/api/v3", "gitlab": "/api/v4"}
_SCP = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^/].*)$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
_STATES: tuple[StatusState, ...] = ("success", "failure", "pending", "error")
_GITLAB_STATES: dict[StatusState, str] = {
    "success": "success",
    "failure": "failed",
    "pending": "pending",
    "error": "failed",  # GitLab has no "error" state
}
_BITBUCKET_STATES: dict[StatusState, str] = {
    "success": "SUCCESSFUL",
    "failure": "FAILED",
    "pending": "INPROGRESS",
    "error": "FAILED",
}
_USER_AGENT = "ai-orchestrator (git hosts)"
_GITHUB_API_VERSION = "2022-11-28"
_GITHUB_DESCRIPTION_MAX = 140
_MAX_ERROR_BYTES = 65536
_MAX_MESSAGE = 300
_DIFF_POLL_S = 0.5
_DEFAULT_RETRY_AFTER_S = 60


class GitHostTokenRefused(AppError):
    """The host refused the stored token (401/403): wrong, expired, revoked, or without
    the rights to the repository. Not our own 401: the caller's API key was fine."""

    status = 403
    code = "git_host_token_refused"


class GitHostNotFound(NotFound):
    """The host has no such repository, pull request or commit, or hides it from the token."""

    code = "git_host_not_found"


class PullRequestExists(Conflict):
    """An open pull/merge request for the same branches is already there."""

    code = "pull_request_exists"


class GitHostRateLimited(RateLimited):
    code = "git_host_rate_limited"


@dataclass(frozen=True)
class HostRepo:
    """A repository on a git host, as its REST API names it.

    ``path`` is "owner/name" (GitHub), "workspace/slug" (Bitbucket) or the full
    namespace path "group/sub/name" (GitLab); ``api_url`` has no trailing slash.
    ``allow_private`` is the address policy :class:`HostClient` applies to ``api_url``.
    """

    kind: HostKind
    api_url: str
    path: str
    web_host: str
    web_url: str
    allow_private: bool = False

    @property
    def project_id(self) -> str:
        """GitLab's project id: the namespace path, URL-encoded as one segment."""
        return quote(self.path, safe="")


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    kind: Literal["pull_request", "merge_request"]


@dataclass(frozen=True)
class InlineComment:
    """A review comment on ``line`` of ``path`` in the new version of the file."""

    path: str
    line: int
    body: str


def host_repo(
    remote_url: str,
    *,
    kind: HostKind | None = None,
    api_url: str | None = None,
    allow_private: bool = False,
) -> HostRepo:
    """The host API and repository path behind a git remote.

    Parameters
    ----------
    remote_url:
        https://github.com/o/r.git, git@github.com:o/r.git, ssh://git@host/o/r.git...
    kind:
        The API the host speaks; derived for github.com, gitlab.com and bitbucket.org,
        required for any other host (self-hosted, or a test's stand-in).
    api_url:
        The API base of a self-hosted host; by default ``<scheme>://<host>/api/v3``
        (GitHub Enterprise) or ``/api/v4`` (GitLab). Required for Bitbucket on a
        host other than bitbucket.org.
    allow_private:
        ``ALLOW_PRIVATE_GIT_HOSTS``: let :class:`HostClient` call an API on a loopback
        or private address (and over plain http), as the tests' stand-in is.

    Returns
    -------
    HostRepo

    Raises
    ------
    InvalidInput
        Not a remote URL, a path that is not a repository path, an unknown host
        without ``kind``, or a ``kind``/``api_url`` that contradicts a public host.
        Only the form is checked here (no DNS); :class:`HostClient` checks the address.
    """
    if kind is not None and kind not in _KINDS:
        raise InvalidInput("host_kind must be github, gitlab or bitbucket")
    scheme, host, port, raw_path = _split_remote(remote_url)
    path = _repo_path(raw_path)
    web_scheme = scheme if scheme in ("https", "http") else "https"
    # An ssh remote's port is sshd's, not the web server's.
    web_host = f"{host}:{port}" if port and scheme != "ssh" else host
    public = _PUBLIC.get(host)
    if public is not None:
        known_kind, known_api = public
        if kind is not None and kind != known_kind:
            raise InvalidInput(f"{host} is {_NAMES[known_kind]}, not {_NAMES[kind]}")
        if api_url is not None and _clean_api_url(api_url).lower() != known_api:
            # The host's token is sent to this address: for a public host only its own.
            raise InvalidInput(
                f"{host}'s API is {known_api}; api_url is for a self-hosted GitLab or"
                " GitHub Enterprise"
            )
        resolved_kind, base = known_kind, known_api
    else:
        if kind is None:
            raise InvalidInput(
                f"say which API {host} speaks (host_kind: github, gitlab or bitbucket);"
                " it is derived only for github.com, gitlab.com and bitbucket.org",
                details={"field": "host_kind"},
            )
        resolved_kind = kind
        if api_url is not None:
            base = _clean_api_url(api_url)
        elif kind == "bitbucket":
            raise InvalidInput(
                f"give api_url for Bitbucket on {host}: only Bitbucket Cloud's 2.0 API is"
                " spoken, and it is not served on other hosts",
                details={"field": "api_url"},
            )
        else:
            base = f"{web_scheme}://{web_host}{_SELF_HOSTED_API[kind]}"
    _check_path_shape(resolved_kind, path)
    return HostRepo(
        kind=resolved_kind,
        api_url=base,
        path=path,
        web_host=web_host,
        web_url=f"{web_scheme}://{web_host}/{path}",
        allow_private=allow_private,
    )


def _split_remote(remote_url: str) -> tuple[str, str, int | None, str]:
    text = remote_url.strip()
    scp = _SCP.match(text)
    if scp is not None:
        return "ssh", scp["host"].lower(), None, scp["path"]
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http", "ssh") or not parts.hostname:
        raise InvalidInput("a git remote must be an https:// or ssh:// URL, or git@host:path")
    if parts.password is not None:
        # Not echoed: the password is a token that belongs in /api/git/credentials.
        raise InvalidInput("put the token in /api/git/credentials, not in the remote URL")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("the git remote has an invalid port") from None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return scheme, host, port, parts.path


def _repo_path(raw: str) -> str:
    path = raw.strip().strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")].rstrip("/")
    segments = path.split("/")
    if not path or any(not _SEGMENT.match(s) or s in (".", "..") for s in segments):
        raise InvalidInput(
            "the remote's path is not a repository path such as owner/name"
            " (letters, digits, '.', '_' and '-' between slashes)"
        )
    return path


def _check_path_shape(kind: HostKind, path: str) -> None:
    parts = len(path.split("/"))
    if kind == "gitlab":
        if parts < 2:
            raise InvalidInput("a GitLab project path is group/name (or group/sub/name)")
    elif parts != 2:
        shape = "owner/name" if kind == "github" else "workspace/slug"
        raise InvalidInput(
            f"a {_NAMES[kind]} repository path is {shape}; the remote's has {parts} parts"
        )


def _clean_api_url(url: str) -> str:
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        raise InvalidInput("api_url must be an https:// URL", details={"field": "api_url"})
    if parts.username is not None or parts.password is not None:
        raise InvalidInput(
            "api_url must not hold credentials: store the token in /api/git/credentials",
            details={"field": "api_url"},
        )
    if parts.query or parts.fragment:
        raise InvalidInput("api_url must not have a query or a fragment")
    try:
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise InvalidInput("api_url has an invalid port") from None
    return text


class HostClient:
    """The REST calls of one repository on its host, with one token.

    Parameters
    ----------
    repo:
        From :func:`host_repo`.
    token:
        The host token (``GitCredentialManager.token_for``); sent only in the auth header.
    http:
        An httpx client to send with (tests, connection reuse); closed by its owner.
        Redirects stay off whatever it was configured with.
    timeout_s:
        Per request (connect, and each read).
    resolve:
        Host name → addresses for the address check; injected by tests.
    diff_wait_s:
        How long a GitLab review waits for a new merge request's diff to be computed.

    Raises
    ------
    InvalidInput
        The API URL fails the address policy (``repo.allow_private``), or the token is
        empty or not one word.
    """

    def __init__(
        self,
        repo: HostRepo,
        token: str,
        *,
        http: httpx.Client | None = None,
        timeout_s: float = 15.0,
        resolve: Resolver | None = None,
        diff_wait_s: float = 10.0,
    ) -> None:
        _check_api_address(repo, resolve=resolve)
        # A control character would make httpx fail with the header value in its message.
        if not token or not all(33 <= ord(c) < 127 for c in token):
            raise InvalidInput(
                f"the token for {repo.web_host} is empty or not one word of printable ASCII"
            )
        self.repo = repo
        self._token = token
        self._timeout_s = timeout_s
        self._diff_wait_s = diff_wait_s
        self._owns_http = http is None
        self._http = http or httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._headers = _auth_headers(repo.kind, token)
        self._name = _NAMES[repo.kind]

    def close(self) -> None:
        """Close the HTTP client if this object made it."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> HostClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HostClient({self.repo.kind}, {self.repo.path})"

    # -- pull requests -----------------------------------------------------------------

    def open_pull_request(self, *, head: str, base: str, title: str, body: str) -> PullRequest:
        """Open a pull (GitHub, Bitbucket) or merge (GitLab) request from ``head`` into ``base``.

        Parameters
        ----------
        head:
            The pushed branch (on GitHub "owner:branch" for a fork's).
        base:
            The branch to merge into.
        title, body:
            Shown on the host; ``body`` is markdown.

        Returns
        -------
        PullRequest
            Its number (GitLab: the iid) and web URL.

        Raises
        ------
        PullRequestExists
            One is already open for these branches.
        GitHostTokenRefused, GitHostNotFound, GitHostRateLimited, GitHostError
            As the host answered (see the module's errors), or it could not be reached.
        """
        if not head.strip() or not base.strip() or not title.strip():
            raise InvalidInput("a pull request needs a head branch, a base branch and a title")
        repo = self.repo
        noun = "merge request" if repo.kind == "gitlab" else "pull request"
        what = f"opening a {noun} from {head} into {base}"
        if repo.kind == "github":
            route = f"/repos/{repo.path}/pulls"
            payload: dict[str, Any] = {"title": title, "head": head, "base": base, "body": body}
        elif repo.kind == "gitlab":
            route = f"/projects/{repo.project_id}/merge_requests"
            payload = {
                "source_branch": head,
                "target_branch": base,
                "title": title,
                "description": body,
            }
        else:
            route = f"/repositories/{repo.path}/pullrequests"
            payload = {
                "title": title,
                "description": body,
                "source": {"branch": {"name": head}},
                "destination": {"branch": {"name": base}},
            }
        response = self._send("POST", route, what=what, payload=payload)
        if not response.is_success:
            said = _host_message(response, self._token)
            if self._is_duplicate(response.status_code, said):
                raise PullRequestExists(
                    f"{self._name} already has an open {noun} from {head} into {base}"
                    f" in {repo.path}" + (f" ({said})" if said else ""),
                    details={"head": head, "base": base},
                )
            raise self._error(response, what=what, target=f"repository {repo.path}")
        data = self._json(response, what=what)
        if repo.kind == "github":
            number, url = data.get("number"), data.get("html_url")
        elif repo.kind == "gitlab":
            number, url = data.get("iid"), data.get("web_url")
        else:
            number, url = data.get("id"), _dig(data, "links", "html", "href")
        if not isinstance(number, int) or isinstance(number, bool) or not isinstance(url, str):
            raise GitHostError(
                f"{self._name} opened the {noun} but its answer has no number or URL"
            )
        log.info(
            "pull request opened",
            extra={"host_kind": repo.kind, "repo": repo.path, "number": number},
        )
        return PullRequest(
            number=number,
            url=url,
            kind="merge_request" if repo.kind == "gitlab" else "pull_request",
        )

    def _is_duplicate(self, status: int, said: str) -> bool:
        text = said.lower()
        if self.repo.kind == "github":
            return status == 422 and "already exists" in text
        if self.repo.kind == "gitlab":
            return status == 409
        return status == 409 or (
            status == 400 and ("already" in text or "only one pull request" in text)
        )

    # -- reviews -------------------------------------------------------------------------

    def post_review(
        self, *, number: int, commit: str, summary: str, comments: list[InlineComment]
    ) -> None:
        """Post a review: ``summary`` as a comment on the whole request, and ``comments``
        on lines of the new version of their files.

        GitHub gets one review (all or nothing); GitLab a note and one diff thread per
        comment, positioned on the merge request's current diff; Bitbucket a comment and
        one inline comment each. On GitLab and Bitbucket a failure part-way leaves the
        comments posted so far.

        Parameters
        ----------
        number:
            The pull request's number (GitLab: the merge request's iid).
        commit:
            The head commit the review was made on.
        summary:
            Markdown; required (GitHub refuses a comment review without a body).
        comments:
            May be empty.

        Raises
        ------
        InvalidInput
            No summary, a bad commit id, or a comment without path, line >= 1 or body.
        Conflict
            GitLab: the merge request's head is no longer ``commit`` (comments would land
            on lines of another version).
        GitHostTokenRefused, GitHostNotFound, GitHostRateLimited, GitHostError
            As the host answered, or it could not be reached. A line outside the diff is
            refused by the host (GitHostError).
        """
        _check_number(number)
        _check_sha(commit)
        if not summary.strip():
            raise InvalidInput("a review needs a summary")
        for comment in comments:
            if (
                not comment.path.strip()
                or comment.path.startswith("/")
                or not isinstance(comment.line, int)
                or isinstance(comment.line, bool)
                or comment.line < 1
                or not comment.body.strip()
            ):
                raise InvalidInput(
                    "each review comment needs a relative path, a line (1 or more) and a body"
                )
        repo = self.repo
        if repo.kind == "github":
            self._post(
                f"/repos/{repo.path}/pulls/{number}/reviews",
                {
                    "commit_id": commit,
                    "body": summary,
                    "event": "COMMENT",
                    "comments": [
                        {"path": c.path, "line": c.line, "side": "RIGHT", "body": c.body}
                        for c in comments
                    ],
                },
                what=f"posting a review on pull request #{number}",
                target=f"pull request #{number} in {repo.path}",
            )
        elif repo.kind == "gitlab":
            route = f"/projects/{repo.project_id}/merge_requests/{number}"
            target = f"merge request !{number} in {repo.path}"
            refs = self._diff_refs(route, number=number, commit=commit, target=target)
            self._post(
                f"{route}/notes",
                {"body": summary},
                what=f"posting the review summary on merge request !{number}",
                target=target,
            )
            for c in comments:
                position = {
                    "position_type": "text",
                    **refs,
                    # old_path = new_path: older GitLab releases require both.
                    "old_path": c.path,
                    "new_path": c.path,
                    "new_line": c.line,
                }
                self._post(
                    f"{route}/discussions",
                    {"body": c.body, "position": position},
                    what=f"commenting on {c.path}:{c.line} of merge request !{number}",
                    target=target,
                )
        else:
            route = f"/repositories/{repo.path}/pullrequests/{number}/comments"
            target = f"pull request #{number} in {repo.path}"
            self._post(
                route,
                {"content": {"raw": summary}},
                what=f"posting the review summary on pull request #{number}",
                target=target,
            )
            for c in comments:
                self._post(
                    route,
                    {"content": {"raw": c.body}, "inline": {"path": c.path, "to": c.line}},
                    what=f"commenting on {c.path}:{c.line} of pull request #{number}",
                    target=target,
                )
        log.info(
            "review posted",
            extra={
                "host_kind": repo.kind,
                "repo": repo.path,
                "number": number,
                "comments": len(comments),
            },
        )

    def _diff_refs(self, route: str, *, number: int, commit: str, target: str) -> dict[str, str]:
        # GitLab computes a new merge request's diff in the background: diff_refs is
        # null until then, and a position needs its three shas.
        keys = ("base_sha", "start_sha", "head_sha")
        what = f"reading merge request !{number}"
        deadline = time.monotonic() + self._diff_wait_s
        while True:
            response = self._send("GET", route, what=what)
            if not response.is_success:
                raise self._error(response, what=what, target=target)
            refs = self._json(response, what=what).get("diff_refs")
            if isinstance(refs, dict) and all(isinstance(refs.get(k), str) for k in keys):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise GitHostError(
                    f"GitLab has not computed the diff of merge request !{number} in"
                    f" {self.repo.path} after {self._diff_wait_s:g} s; try again"
                )
            time.sleep(min(_DIFF_POLL_S, left))
        head = str(refs["head_sha"]).lower()
        if not (head.startswith(commit.lower()) or commit.lower().startswith(head)):
            raise Conflict(
                f"merge request !{number} in {self.repo.path} has moved on: its head is"
                f" {head[:12]}, the review is of {commit[:12]}; review the new head"
            )
        return {k: str(refs[k]) for k in keys}

    # -- statuses ------------------------------------------------------------------------

    def set_status(
        self,
        *,
        commit: str,
        state: StatusState,
        context: str,
        description: str,
        target_url: str | None = None,
    ) -> None:
        """Set the commit status named ``context`` on ``commit``.

        Parameters
        ----------
        commit:
            The full sha.
        state:
            Mapped to each host's own words: GitLab has no "error" (it gets "failed"),
            Bitbucket says SUCCESSFUL, FAILED and INPROGRESS.
        context:
            The status's name (GitHub context, GitLab name, Bitbucket key and name).
        description:
            One line; GitHub keeps 140 characters, so it is cut there.
        target_url:
            Where the status links to; Bitbucket requires one, so the repository's web
            page stands in when none is given.

        Raises
        ------
        InvalidInput
            A bad commit id, state or an empty context.
        GitHostTokenRefused, GitHostNotFound, GitHostRateLimited, GitHostError
            As the host answered, or it could not be reached.
        """
        _check_sha(commit)
        if state not in _STATES:
            raise InvalidInput("a status is success, failure, pending or error")
        if not context.strip():
            raise InvalidInput("a status needs a context (its name)")
        repo = self.repo
        what = f"setting the {context} status of {commit[:12]}"
        target = f"commit {commit[:12]} in {repo.path}"
        if repo.kind == "github":
            route = f"/repos/{repo.path}/statuses/{commit}"
            payload: dict[str, Any] = {
                "state": state,
                "context": context,
                "description": _clip(description, _GITHUB_DESCRIPTION_MAX),
            }
            if target_url:
                payload["target_url"] = target_url
        elif repo.kind == "gitlab":
            route = f"/projects/{repo.project_id}/statuses/{commit}"
            payload = {"state": _GITLAB_STATES[state], "name": context, "description": description}
            if target_url:
                payload["target_url"] = target_url
        else:
            route = f"/repositories/{repo.path}/commit/{commit}/statuses/build"
            payload = {
                "key": context,
                "state": _BITBUCKET_STATES[state],
                "name": context,
                "description": description,
                "url": target_url or repo.web_url,
            }
        response = self._send("POST", route, what=what, payload=payload)
        if response.is_success:
            return
        said = _host_message(response, self._token)
        if (
            repo.kind == "gitlab"
            and response.status_code == 400
            and "cannot transition status" in said.lower()
            and f"from :{_GITLAB_STATES[state]}" in said.lower()
        ):
            # GitLab refuses pending -> pending: the status is already what we asked for.
            log.info("status unchanged", extra={"host_kind": repo.kind, "state": state})
            return
        raise self._error(response, what=what, target=target)

    # -- HTTP ----------------------------------------------------------------------------

    def _post(self, route: str, payload: dict[str, Any], *, what: str, target: str) -> None:
        response = self._send("POST", route, what=what, payload=payload)
        if not response.is_success:
            raise self._error(response, what=what, target=target)

    def _send(
        self, method: str, route: str, *, what: str, payload: dict[str, Any] | None = None
    ) -> httpx.Response:
        started = time.monotonic()
        try:
            response = self._http.request(
                method,
                self.repo.api_url + route,
                json=payload,
                headers=self._headers,
                timeout=self._timeout_s,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            # `from None`: httpx's exception holds the request, headers and all.
            raise GitHostError(
                f"{self._name} did not answer within {self._timeout_s:g} s ({what}"
                f" in {self.repo.path})"
            ) from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise GitHostError(
                f"{self._name}'s API at {urlsplit(self.repo.api_url).netloc} cannot be"
                f" reached ({type(exc).__name__}; {what} in {self.repo.path})"
            ) from None
        log.info(
            "git host answered",
            extra={
                "host_kind": self.repo.kind,
                "method": method,
                "route": route,
                "status": response.status_code,
                "ms": round((time.monotonic() - started) * 1000),
            },
        )
        return response

    def _json(self, response: httpx.Response, *, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GitHostError(
                f"{self._name} answered {what} with something other than a JSON object"
                f" ({response.status_code})"
            )
        return data

    def _error(self, response: httpx.Response, *, what: str, target: str) -> AppError:
        status = response.status_code
        said = _host_message(response, self._token)
        because = f": {said}" if said else ""
        name, where = self._name, self.repo.path
        if 300 <= status < 400:
            error: AppError = GitHostError(
                f"{name} answered {what} in {where} with a redirect ({status}), which is not"
                " followed: check the API URL, or whether the repository was renamed or moved"
            )
        elif status == 429 or (status == 403 and _rate_limited(response)):
            retry_after = _retry_after(response)
            error = GitHostRateLimited(
                f"{name}'s rate limit was reached {what} in {where} ({status}{because});"
                f" retry in {retry_after} s",
                retry_after=retry_after,
            )
        elif status in (401, 403):
            error = GitHostTokenRefused(
                f"{name} refused the token when {what} in {where} ({status}{because}); check"
                " that it is valid, not expired, and may write pull requests, comments and"
                " commit statuses of the repository",
                details={"host": self.repo.web_host, "host_status": status},
            )
        elif status == 404:
            error = GitHostNotFound(
                f"{name} has no {target} ({status}{because}), or the token cannot see it",
                details={"host": self.repo.web_host, "host_status": status},
            )
        elif 400 <= status < 500:
            error = GitHostError(
                f"{name} rejected {what} in {where} ({status}{because})",
                details={"host_status": status},
            )
        else:
            error = GitHostError(
                f"{name} failed {what} in {where} ({status}{because}); try again later",
                details={"host_status": status},
            )
        log.warning(
            "git host refused",
            extra={"host_kind": self.repo.kind, "status": status, "detail": error.message},
        )
        return error


def _check_api_address(repo: HostRepo, *, resolve: Resolver | None) -> None:
    allow_private = repo.allow_private
    parts = urlsplit(repo.api_url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http") or (scheme == "http" and not allow_private):
        raise InvalidInput(
            f"the {_NAMES.get(repo.kind, repo.kind)} API URL must be https://",
            details={"field": "api_url"},
        )
    try:
        if resolve is None:
            check_remote_url(repo.api_url, allow_private=allow_private)
        else:
            check_remote_url(repo.api_url, allow_private=allow_private, resolve=resolve)
    except InvalidInput as exc:
        raise InvalidInput(
            f"the {_NAMES.get(repo.kind, repo.kind)} API URL is refused: {exc.message}",
            details=exc.details,
        ) from None


def _auth_headers(kind: HostKind, token: str) -> dict[str, str]:
    headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
    if kind == "github":
        headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": _GITHUB_API_VERSION,
            }
        )
    elif kind == "gitlab":
        headers["PRIVATE-TOKEN"] = token
    else:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _check_number(number: int) -> None:
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        raise InvalidInput("a pull request number is a positive integer")


def _check_sha(commit: str) -> None:
    if not isinstance(commit, str) or not _SHA.match(commit):
        raise InvalidInput("a commit is a hexadecimal sha")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _host_message(response: httpx.Response, token: str) -> str:
    """The host's own words about an error, short, one line, without the token.

    GitHub says ``{"message", "errors": [...]}``, GitLab ``{"message": str | list |
    dict}`` or ``{"error": str}``, Bitbucket ``{"error": {"message", "fields"}}``.
    """
    try:
        data = json.loads(response.content[:_MAX_ERROR_BYTES])
    except ValueError:
        return ""  # an HTML error page says nothing a client can use
    if not isinstance(data, dict):
        return ""
    parts: list[str] = []
    for key in ("message", "error", "errors", "error_description"):
        for part in _flatten(data.get(key)):
            if part and part not in parts:
                parts.append(part)
    text = " ".join("; ".join(parts).split())
    if token:
        text = text.replace(token, "***")
    text = scrub(text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _flatten(value: Any, prefix: str = "", depth: int = 0) -> list[str]:
    if depth > 4:
        return []
    if isinstance(value, str):
        return [prefix + value]
    if isinstance(value, list):
        return [s for item in value for s in _flatten(item, prefix, depth + 1)]
    if not isinstance(value, dict):
        return []
    if "message" in value or "fields" in value:  # a GitHub error item, Bitbucket's error
        out = _flatten(value.get("message"), prefix, depth + 1)
        fields = value.get("fields")
        if isinstance(fields, dict):
            out += [s for k, v in fields.items() for s in _flatten(v, f"{k}: ", depth + 1)]
        return out
    if "field" in value and "code" in value:  # GitHub: {"resource", "field", "code"}
        return [f"{prefix}{value['field']} {value['code']}"]
    # GitLab's model errors: {"source_branch": ["does not exist"]}
    return [s for k, v in value.items() for s in _flatten(v, f"{prefix}{k} ", depth + 1)]


def _rate_limited(response: httpx.Response) -> bool:
    # GitHub answers 403 (not 429) for both its primary and secondary rate limits.
    headers = response.headers
    return headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers


def _retry_after(response: httpx.Response) -> int:
    headers = response.headers
    value = (headers.get("retry-after") or "").strip()
    if value.isdigit():
        seconds = int(value)
    else:
        reset = (headers.get("x-ratelimit-reset") or headers.get("ratelimit-reset") or "").strip()
        seconds = int(reset) - int(time.time()) if reset.isdigit() else _DEFAULT_RETRY_AFTER_S
    return max(1, min(seconds, 3600))
