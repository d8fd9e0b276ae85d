"""A stand-in for the REST routes of GitHub, GitLab and Bitbucket that common/git/hosts.py
calls, on loopback: one threaded server, one API prefix per host.

    {url}/github/api/v3  POST /repos/{o}/{r}/pulls, .../pulls/{n}/reviews, .../statuses/{sha}
    {url}/gitlab/api/v4  POST /projects/{id}/merge_requests, GET .../merge_requests/{iid},
                         POST .../{iid}/notes, .../{iid}/discussions, /projects/{id}/statuses/{sha}
    {url}/bitbucket/2.0  POST /repositories/{ws}/{slug}/pullrequests, .../{id}/comments,
                         .../commit/{sha}/statuses/build

It behaves like the hosts where a client can get it wrong: each host's auth header
and its 401 body, required fields and their types (each host's error shape), one
open request per pair of branches, numbers that count up per repository, the
documented response fields, GitLab's diff_refs (and the position shas a diff note
must match), GitLab's refusal of pending -> pending. Repositories and their branch
heads are seeded by the test (:meth:`GitHostStandIn.add_repo`, :meth:`push`); an
unknown repository, request or commit is a 404 in the host's shape.

Every request is recorded (headers without the auth ones) so a test can check what
was sent; :meth:`respond_next` scripts an answer (a 500, a redirect, a slow reply).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

KINDS = ("github", "gitlab", "bitbucket")
PREFIXES = {"github": "/github/api/v3", "gitlab": "/gitlab/api/v4", "bitbucket": "/bitbucket/2.0"}
DEFAULT_TOKEN = "glpat-" + "StandInToken0123456789"
_AUTH_HEADERS = {"authorization", "private-token"}
_GITHUB_DOCS = "https://docs.github.com/rest"
_GITLAB_STATES = ("pending", "running", "success", "failed", "canceled")
_BITBUCKET_STATES = ("SUCCESSFUL", "FAILED", "INPROGRESS", "STOPPED")
# GitLab's answer to a diff note it cannot place on a line of the named diff version.
_BAD_LINE_CODE = (
    '400 Bad request - Note {:line_code=>["can\'t be blank", "must be a valid line code"]}'
)

Answer = tuple[int, Any, dict[str, str]]


@dataclass(frozen=True)
class Call:
    """One request as the stand-in saw it."""

    kind: str | None
    method: str
    path: str  # below the API prefix, still percent-encoded, without the query
    query: str
    headers: dict[str, str]  # lower-case names; Authorization and PRIVATE-TOKEN left out
    json: Any  # the parsed body (the raw text if it was not JSON; None if empty)
    authorized: bool
    status: int  # what the stand-in answered


@dataclass
class _Canned:
    status: int
    body: Any
    headers: dict[str, str]
    delay_s: float


@dataclass
class _Repo:
    known_branches: dict[str, str]
    known_shas: set[str] = field(default_factory=set)
    next_number: int = 1
    # A real bare repository (the one ``git http-backend`` serves): its branches and
    # commits are read from it at each request, as the host would know them.
    git_dir: Path | None = None

    @property
    def branches(self) -> dict[str, str]:
        if self.git_dir is None:
            return self.known_branches
        listed = subprocess.run(
            ["git", "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads"],
            cwd=self.git_dir,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
        return {**self.known_branches, **dict(line.split(" ", 1) for line in listed if line)}

    @property
    def shas(self) -> set[str]:
        if self.git_dir is None:
            return self.known_shas
        listed = subprocess.run(
            ["git", "rev-list", "--all"], cwd=self.git_dir, capture_output=True, text=True
        ).stdout.split()
        return self.known_shas | set(listed)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected here, not a failure


class GitHostStandIn:
    """Serve the three hosts' routes on 127.0.0.1 (an ephemeral port).

    Parameters
    ----------
    token:
        The one token every host accepts (GitHub ``Bearer``/``token``, GitLab
        ``PRIVATE-TOKEN``/``Bearer``, Bitbucket ``Bearer``).
    """

    def __init__(self, *, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self._lock = threading.Lock()
        self._ids = 1000
        self._calls: list[Call] = []
        self._pull_requests: list[dict[str, Any]] = []
        self._comments: list[dict[str, Any]] = []
        self._statuses: list[dict[str, Any]] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._canned: dict[str, list[_Canned]] = {k: [] for k in KINDS}
        self._diff_delay = 0
        self._routes: dict[str, list[tuple[str, re.Pattern[str], Callable[..., Answer]]]] = {
            "github": [
                ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$"), self._gh_open),
                (
                    "POST",
                    re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)/reviews$"),
                    self._gh_review,
                ),
                ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/statuses/([^/]+)$"), self._gh_status),
            ],
            "gitlab": [
                ("POST", re.compile(r"^/projects/([^/]+)/merge_requests$"), self._gl_open),
                ("GET", re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)$"), self._gl_get),
                (
                    "POST",
                    re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/notes$"),
                    self._gl_note,
                ),
                (
                    "POST",
                    re.compile(r"^/projects/([^/]+)/merge_requests/(\d+)/discussions$"),
                    self._gl_discussion,
                ),
                ("POST", re.compile(r"^/projects/([^/]+)/statuses/([^/]+)$"), self._gl_status),
            ],
            "bitbucket": [
                (
                    "POST",
                    re.compile(r"^/repositories/([^/]+)/([^/]+)/pullrequests$"),
                    self._bb_open,
                ),
                (
                    "POST",
                    re.compile(r"^/repositories/([^/]+)/([^/]+)/pullrequests/(\d+)/comments$"),
                    self._bb_comment,
                ),
                (
                    "POST",
                    re.compile(r"^/repositories/([^/]+)/([^/]+)/commit/([^/]+)/statuses/build$"),
                    self._bb_status,
                ),
            ],
        }
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:
                pass

            def do_GET(self) -> None:
                stand_in._serve(self)

            def do_POST(self) -> None:
                stand_in._serve(self)

            def do_PUT(self) -> None:
                stand_in._serve(self)

            def do_DELETE(self) -> None:
                stand_in._serve(self)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        port = self._httpd.server_address[1]
        self.host = f"127.0.0.1:{port}"
        self.url = f"http://{self.host}"
        # A short poll: stop() waits for it, and tests start and stop servers of their own.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> GitHostStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> GitHostStandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- set-up --------------------------------------------------------------------------

    def api_url(self, kind: str) -> str:
        """The API base of ``kind`` (``api_url`` of ``host_repo``)."""
        return self.url + PREFIXES[kind]

    def remote_url(self, path: str) -> str:
        """A git remote on this host for repository ``path`` (only its host and path count)."""
        return f"{self.url}/{path}.git"

    def add_repo(
        self,
        kind: str,
        path: str,
        *,
        branches: dict[str, str] | None = None,
        git_dir: Path | None = None,
    ) -> None:
        """Make repository ``path`` exist on ``kind`` with these branch heads (name: sha),
        and with those of the bare repository ``git_dir`` as they are at each request."""
        branches = dict(branches or {})
        with self._lock:
            self._repos[(kind, path)] = _Repo(
                known_branches=branches, known_shas=set(branches.values()), git_dir=git_dir
            )

    def push(self, kind: str, path: str, branch: str, sha: str) -> None:
        """Move ``branch`` to ``sha``; open GitLab merge requests from it get the new head."""
        with self._lock:
            repo = self._repos[(kind, path)]
            repo.known_branches[branch] = sha
            repo.known_shas.add(sha)
            for pr in self._pull_requests:
                if (pr["kind"], pr["repo"], pr["head"]) == (kind, path, branch) and pr["open"]:
                    pr["head_sha"] = sha
                    if pr.get("diff_refs"):
                        pr["diff_refs"] = {**pr["diff_refs"], "head_sha": sha}

    def respond_next(
        self,
        kind: str,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        delay_s: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests to ``kind`` with this, whatever they ask
        (after ``delay_s``; the request is still recorded)."""
        with self._lock:
            for _ in range(times):
                self._canned[kind].append(_Canned(status, body, dict(headers or {}), delay_s))

    def delay_diff_refs(self, gets: int) -> None:
        """GitLab: the next ``gets`` reads of a merge request have ``diff_refs: null``, as
        while GitLab is still computing a new merge request's diff."""
        with self._lock:
            self._diff_delay = gets

    def reset(self) -> None:
        """Forget repositories, records and scripted answers."""
        with self._lock:
            self._calls.clear()
            self._pull_requests.clear()
            self._comments.clear()
            self._statuses.clear()
            self._repos.clear()
            for queue in self._canned.values():
                queue.clear()
            self._diff_delay = 0

    # -- records -------------------------------------------------------------------------

    def calls(
        self, kind: str | None = None, method: str | None = None, path: str | None = None
    ) -> list[Call]:
        """The recorded requests, oldest first, filtered by whatever is given."""
        with self._lock:
            return [
                c
                for c in self._calls
                if (kind is None or c.kind == kind)
                and (method is None or c.method == method)
                and (path is None or c.path == path)
            ]

    @property
    def pull_requests(self) -> list[dict[str, Any]]:
        """Opened requests: kind, repo, number, head, base, title, body, url, head_sha,
        diff_refs (GitLab), open."""
        with self._lock:
            return [dict(pr) for pr in self._pull_requests]

    @property
    def comments(self) -> list[dict[str, Any]]:
        """Posted comments: kind, repo, number, type ("summary" or "inline"), body, path,
        line, commit (GitHub review) and position (GitLab)."""
        with self._lock:
            return [dict(c) for c in self._comments]

    @property
    def statuses(self) -> list[dict[str, Any]]:
        """Accepted statuses, in the host's own words: kind, repo, sha, state, context,
        description, target_url."""
        with self._lock:
            return [dict(s) for s in self._statuses]

    # -- serving -------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        raw_path, _, query = handler.path.partition("?")
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any
        bad_json = False
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body, bad_json = raw.decode("utf-8", "replace"), True
        kind = next(
            (k for k, p in PREFIXES.items() if raw_path == p or raw_path.startswith(p + "/")),
            None,
        )
        rel = (raw_path[len(PREFIXES[kind]) :] or "/") if kind is not None else raw_path
        authorized = kind is not None and self._authorized(kind, handler)
        canned = None
        if kind is not None:
            with self._lock:
                if self._canned[kind]:
                    canned = self._canned[kind].pop(0)
        if canned is not None:
            time.sleep(canned.delay_s)
            status, payload, extra = canned.status, canned.body, canned.headers
        elif kind is None:
            status, payload, extra = 404, {"message": "Not Found"}, {}
        elif kind == "github" and not handler.headers.get("User-Agent"):
            status, payload, extra = _github(
                403,
                "Request forbidden by administrative rules. Please make sure your request"
                " has a User-Agent header",
            )
        elif not authorized:
            status, payload, extra = _unauthorized(kind)
        else:
            status, payload, extra = self._route(kind, handler.command, rel, body, bad_json)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        call = Call(
            kind=kind,
            method=handler.command,
            path=rel,
            query=query,
            headers={k: v for k, v in headers.items() if k not in _AUTH_HEADERS},
            json=body,
            authorized=authorized,
            status=status,
        )
        with self._lock:
            # Recorded before the answer goes out: the client sees nothing the test cannot.
            self._calls.append(call)
        data = b"" if payload is None else json.dumps(payload).encode()
        try:
            handler.send_response(status)
            if data:
                handler.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in extra.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _authorized(self, kind: str, handler: BaseHTTPRequestHandler) -> bool:
        auth = handler.headers.get("Authorization") or ""
        if kind == "github":
            return auth in (f"Bearer {self.token}", f"token {self.token}")
        if kind == "gitlab":
            return handler.headers.get("PRIVATE-TOKEN") == self.token or (
                auth == f"Bearer {self.token}"
            )
        return auth == f"Bearer {self.token}"

    def _route(self, kind: str, method: str, rel: str, body: Any, bad_json: bool) -> Answer:
        for route_method, pattern, action in self._routes[kind]:
            match = pattern.match(rel)
            if match is None or route_method != method:
                continue
            args = [unquote(g) for g in match.groups()]
            if method == "POST":
                if bad_json or not isinstance(body, dict):
                    return _bad_json(kind)
                with self._lock:
                    return action(*args, body)
            with self._lock:
                return action(*args)
        return _not_found(kind, "Not Found")

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _find_pr(self, kind: str, path: str, number: int) -> dict[str, Any] | None:
        return next(
            (
                pr
                for pr in self._pull_requests
                if (pr["kind"], pr["repo"], pr["number"]) == (kind, path, number)
            ),
            None,
        )

    def _open(self, kind: str, path: str, repo: _Repo, **fields: Any) -> dict[str, Any]:
        number = repo.next_number
        repo.next_number += 1
        pr = {
            "kind": kind,
            "repo": path,
            "number": number,
            "open": True,
            "head_sha": repo.branches[fields["head"]],
            "base_sha": repo.branches[fields["base"]],
            **fields,
        }
        self._pull_requests.append(pr)
        return pr

    def _duplicate(self, kind: str, path: str, head: str, base: str) -> dict[str, Any] | None:
        return next(
            (
                pr
                for pr in self._pull_requests
                if (pr["kind"], pr["repo"], pr["head"], pr["base"]) == (kind, path, head, base)
                and pr["open"]
            ),
            None,
        )

    # -- GitHub --------------------------------------------------------------------------

    def _gh_open(self, owner: str, name: str, body: dict[str, Any]) -> Answer:
        path = f"{owner}/{name}"
        repo = self._repos.get(("github", path))
        if repo is None:
            return _github(404, "Not Found")
        problem = _gh_types(body, required=("title", "head", "base"), optional=("body",))
        if problem:
            return problem
        head, base = body["head"], body["base"]
        head_branch = head.split(":", 1)[1] if ":" in head else head
        for fname, branch in (("head", head_branch), ("base", base)):
            if branch not in repo.branches:
                return _github_invalid(
                    {"resource": "PullRequest", "field": fname, "code": "invalid"}
                )
        if head_branch == base:
            return _github_invalid(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                }
            )
        if self._duplicate("github", path, head_branch, base):
            return _github_invalid(
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"A pull request already exists for {owner}:{head_branch}.",
                }
            )
        pr = self._open(
            "github",
            path,
            repo,
            head=head_branch,
            base=base,
            title=body["title"],
            body=body.get("body"),
        )
        pr["url"] = f"{self.url}/github/{path}/pull/{pr['number']}"
        return (
            201,
            {
                "id": self._next_id(),
                "number": pr["number"],
                "state": "open",
                "title": pr["title"],
                "body": pr["body"],
                "html_url": pr["url"],
                "url": f"{self.api_url('github')}/repos/{path}/pulls/{pr['number']}",
                "head": {"ref": head_branch, "sha": pr["head_sha"]},
                "base": {"ref": base, "sha": pr["base_sha"]},
            },
            {"Location": f"{self.api_url('github')}/repos/{path}/pulls/{pr['number']}"},
        )

    def _gh_review(self, owner: str, name: str, number: str, body: dict[str, Any]) -> Answer:
        path = f"{owner}/{name}"
        repo = self._repos.get(("github", path))
        pr = self._find_pr("github", path, int(number))
        if repo is None or pr is None:
            return _github(404, "Not Found")
        problem = _gh_types(body, required=(), optional=("commit_id", "body", "event"))
        if problem:
            return problem
        event = body.get("event")
        if event is not None and event not in ("APPROVE", "REQUEST_CHANGES", "COMMENT"):
            return _github(
                422,
                f"Invalid request.\n\nFor 'properties/event', {json.dumps(event)}"
                " is not a member of the enum.",
            )
        if event in ("COMMENT", "REQUEST_CHANGES") and not (body.get("body") or "").strip():
            return _github(
                422, "Unprocessable Entity", errors=[f"Body is required for {event} reviews"]
            )
        commit = body.get("commit_id")
        if commit is not None and commit not in repo.shas:
            return _github(
                422, "Unprocessable Entity", errors=["Commit SHA is not part of the pull request"]
            )
        comments = body.get("comments", [])
        if not isinstance(comments, list):
            return _github(
                422, "Invalid request.\n\nFor 'properties/comments', it is not an array."
            )
        for index, c in enumerate(comments):
            where = f"items/{index}"
            if not isinstance(c, dict):
                return _github(422, f"Invalid request.\n\nFor '{where}', it is not an object.")
            for key in ("path", "body"):
                if key not in c:
                    return _github(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
                if not isinstance(c[key], str):
                    return _github(
                        422, f"Invalid request.\n\nFor '{where}/{key}', it is not a string."
                    )
            line = c.get("line", c.get("position"))
            if not isinstance(line, int) or isinstance(line, bool):
                return _github(422, "Unprocessable Entity", errors=["Line could not be resolved"])
            if c.get("side", "RIGHT") not in ("LEFT", "RIGHT"):
                return _github(
                    422, f"Invalid request.\n\nFor '{where}/side', it is not LEFT or RIGHT."
                )
        review_id = self._next_id()
        self._comments.append(
            {
                "kind": "github",
                "repo": path,
                "number": pr["number"],
                "type": "summary",
                "body": body.get("body"),
                "path": None,
                "line": None,
                "commit": commit,
                "event": event,
            }
        )
        for c in comments:
            self._comments.append(
                {
                    "kind": "github",
                    "repo": path,
                    "number": pr["number"],
                    "type": "inline",
                    "body": c["body"],
                    "path": c["path"],
                    "line": c.get("line"),
                    "side": c.get("side"),
                    "commit": commit,
                }
            )
        return (
            200,
            {
                "id": review_id,
                "body": body.get("body"),
                "state": "COMMENTED" if event == "COMMENT" else "PENDING",
                "commit_id": commit,
                "html_url": f"{pr['url']}#pullrequestreview-{review_id}",
            },
            {},
        )

    def _gh_status(self, owner: str, name: str, sha: str, body: dict[str, Any]) -> Answer:
        path = f"{owner}/{name}"
        repo = self._repos.get(("github", path))
        if repo is None:
            return _github(404, "Not Found")
        problem = _gh_types(
            body, required=("state",), optional=("context", "description", "target_url")
        )
        if problem:
            return problem
        if sha not in repo.shas:
            return _github(422, f"No commit found for SHA: {sha}")
        if body["state"] not in ("error", "failure", "pending", "success"):
            return _github_invalid(
                {
                    "resource": "Status",
                    "code": "custom",
                    "field": "state",
                    "message": "state is not included in the list",
                }
            )
        description = body.get("description")
        if description is not None and len(description) > 140:
            return _github_invalid(
                {
                    "resource": "Status",
                    "code": "custom",
                    "field": "description",
                    "message": "description is too long (maximum is 140 characters)",
                }
            )
        status = {
            "kind": "github",
            "repo": path,
            "sha": sha,
            "state": body["state"],
            "context": body.get("context") or "default",
            "description": description,
            "target_url": body.get("target_url"),
        }
        self._statuses.append(status)
        return (
            201,
            {
                "id": self._next_id(),
                "url": f"{self.api_url('github')}/repos/{path}/statuses/{sha}",
                **{k: status[k] for k in ("state", "context", "description", "target_url")},
            },
            {},
        )

    # -- GitLab --------------------------------------------------------------------------

    def _gl_project(self, project_id: str) -> tuple[str, _Repo | None]:
        return project_id, self._repos.get(("gitlab", project_id))

    def _gl_open(self, project_id: str, body: dict[str, Any]) -> Answer:
        path, repo = self._gl_project(project_id)
        if repo is None:
            return 404, {"message": "404 Project Not Found"}, {}
        for key in ("source_branch", "target_branch", "title"):
            if key not in body:
                return 400, {"error": f"{key} is missing"}, {}
            if not isinstance(body[key], str) or not body[key]:
                return 400, {"error": f"{key} is invalid"}, {}
        if "description" in body and not isinstance(body["description"], str | None):
            return 400, {"error": "description is invalid"}, {}
        source, target = body["source_branch"], body["target_branch"]
        if source == target:
            return 422, {"message": ["You can't use same project/branch for source and target"]}, {}
        for label, branch in (("Source", source), ("Target", target)):
            if branch not in repo.branches:
                return 422, {"message": [f'{label} branch "{branch}" does not exist']}, {}
        existing = self._duplicate("gitlab", path, source, target)
        if existing:
            return (
                409,
                {
                    "message": [
                        "Another open merge request already exists for this source branch:"
                        f" !{existing['number']}"
                    ]
                },
                {},
            )
        pr = self._open(
            "gitlab",
            path,
            repo,
            head=source,
            base=target,
            title=body["title"],
            body=body.get("description"),
        )
        pr["url"] = f"{self.url}/gitlab/{path}/-/merge_requests/{pr['number']}"
        pr["diff_refs"] = {
            "base_sha": pr["base_sha"],
            "start_sha": pr["base_sha"],
            "head_sha": pr["head_sha"],
        }
        return 201, self._gl_mr(pr, refs=self._diff_delay == 0), {}

    def _gl_mr(self, pr: dict[str, Any], *, refs: bool) -> dict[str, Any]:
        return {
            "id": 50000 + pr["number"],
            "iid": pr["number"],
            "title": pr["title"],
            "description": pr["body"],
            "source_branch": pr["head"],
            "target_branch": pr["base"],
            "state": "opened" if pr["open"] else "closed",
            "web_url": pr["url"],
            "sha": pr["head_sha"],
            "diff_refs": dict(pr["diff_refs"]) if refs else None,
        }

    def _gl_get(self, project_id: str, iid: str) -> Answer:
        path, repo = self._gl_project(project_id)
        if repo is None:
            return 404, {"message": "404 Project Not Found"}, {}
        pr = self._find_pr("gitlab", path, int(iid))
        if pr is None:
            return 404, {"message": "404 Not found"}, {}
        ready = self._diff_delay == 0
        self._diff_delay = max(0, self._diff_delay - 1)
        return 200, self._gl_mr(pr, refs=ready), {}

    def _gl_note(self, project_id: str, iid: str, body: dict[str, Any]) -> Answer:
        path, repo = self._gl_project(project_id)
        if repo is None:
            return 404, {"message": "404 Project Not Found"}, {}
        pr = self._find_pr("gitlab", path, int(iid))
        if pr is None:
            return 404, {"message": "404 Not found"}, {}
        if "body" not in body:
            return 400, {"error": "body is missing"}, {}
        if not isinstance(body["body"], str) or not body["body"].strip():
            return 400, {"message": {"note": ["can't be blank"]}}, {}
        self._comments.append(
            {
                "kind": "gitlab",
                "repo": path,
                "number": pr["number"],
                "type": "summary",
                "body": body["body"],
                "path": None,
                "line": None,
            }
        )
        return (
            201,
            {
                "id": self._next_id(),
                "body": body["body"],
                "noteable_type": "MergeRequest",
                "noteable_iid": pr["number"],
                "system": False,
            },
            {},
        )

    def _gl_discussion(self, project_id: str, iid: str, body: dict[str, Any]) -> Answer:
        path, repo = self._gl_project(project_id)
        if repo is None:
            return 404, {"message": "404 Project Not Found"}, {}
        pr = self._find_pr("gitlab", path, int(iid))
        if pr is None:
            return 404, {"message": "404 Not found"}, {}
        if "body" not in body:
            return 400, {"error": "body is missing"}, {}
        if not isinstance(body["body"], str) or not body["body"].strip():
            return 400, {"message": {"note": ["can't be blank"]}}, {}
        position = body.get("position")
        if position is not None:
            if not isinstance(position, dict):
                return 400, {"error": "position is invalid"}, {}
            if position.get("position_type") not in ("text", "image", "file"):
                return 400, {"error": "position[position_type] does not have a valid value"}, {}
            for key in ("base_sha", "start_sha", "head_sha"):
                if not isinstance(position.get(key), str):
                    return 400, {"error": f"position[{key}] is missing"}, {}
            line = position.get("new_line", position.get("old_line"))
            if (
                not isinstance(line, int)
                or isinstance(line, bool)
                or not isinstance(position.get("new_path"), str)
            ):
                return (
                    400,
                    {"message": _BAD_LINE_CODE},
                    {},
                )
            refs = pr["diff_refs"]
            if any(position[k] != refs[k] for k in ("base_sha", "start_sha", "head_sha")):
                # The shas name a diff version; others place the note nowhere.
                return (
                    400,
                    {"message": _BAD_LINE_CODE},
                    {},
                )
        note_id = self._next_id()
        self._comments.append(
            {
                "kind": "gitlab",
                "repo": path,
                "number": pr["number"],
                "type": "inline" if position else "summary",
                "body": body["body"],
                "path": position.get("new_path") if position else None,
                "line": position.get("new_line") if position else None,
                "position": dict(position) if position else None,
            }
        )
        return (
            201,
            {
                "id": f"{note_id:040x}",
                "individual_note": position is None,
                "notes": [
                    {
                        "id": note_id,
                        "type": "DiffNote" if position else "DiscussionNote",
                        "body": body["body"],
                        "position": position,
                    }
                ],
            },
            {},
        )

    def _gl_status(self, project_id: str, sha: str, body: dict[str, Any]) -> Answer:
        path, repo = self._gl_project(project_id)
        if repo is None:
            return 404, {"message": "404 Project Not Found"}, {}
        if sha not in repo.shas:
            return 404, {"message": "404 References for commit Not Found"}, {}
        if "state" not in body:
            return 400, {"error": "state is missing"}, {}
        state = body["state"]
        if state not in _GITLAB_STATES:
            return 400, {"error": "state does not have a valid value"}, {}
        for key in ("name", "context", "description", "target_url"):
            if key in body and not isinstance(body[key], str | None):
                return 400, {"error": f"{key} is invalid"}, {}
        name = body.get("name") or body.get("context") or "default"
        last = next(
            (
                s
                for s in reversed(self._statuses)
                if (s["kind"], s["repo"], s["sha"], s["context"]) == ("gitlab", path, sha, name)
            ),
            None,
        )
        # A job that has not finished cannot be put back into the state it is in.
        if last is not None and last["state"] == state and state in ("pending", "running"):
            event = "enqueue" if state == "pending" else "run"
            return (
                400,
                {
                    "message": f"Cannot transition status via :{event} from :{state}"
                    f' (Reason(s): Status cannot transition via "{event}")'
                },
                {},
            )
        status = {
            "kind": "gitlab",
            "repo": path,
            "sha": sha,
            "state": state,
            "context": name,
            "description": body.get("description"),
            "target_url": body.get("target_url"),
        }
        self._statuses.append(status)
        return (
            201,
            {
                "id": self._next_id(),
                "sha": sha,
                "status": state,
                "name": name,
                "description": status["description"],
                "target_url": status["target_url"],
                "allow_failure": False,
            },
            {},
        )

    # -- Bitbucket -----------------------------------------------------------------------

    def _bb_repo(self, ws: str, slug: str) -> tuple[str, _Repo | None]:
        path = f"{ws}/{slug}"
        return path, self._repos.get(("bitbucket", path))

    def _bb_open(self, ws: str, slug: str, body: dict[str, Any]) -> Answer:
        path, repo = self._bb_repo(ws, slug)
        if repo is None:
            return _bitbucket(404, f"Repository {path} not found")
        if not isinstance(body.get("title"), str) or not body["title"]:
            return _bitbucket(400, "Bad request", fields={"title": ["This field is required."]})
        if "description" in body and not isinstance(body["description"], str | None):
            return _bitbucket(400, "Bad request", fields={"description": ["Not a valid string."]})
        source = _branch_name(body.get("source"))
        if source is None:
            return _bitbucket(400, "Bad request", fields={"source": ["This field is required."]})
        destination = _branch_name(body.get("destination")) if "destination" in body else "main"
        if destination is None:
            return _bitbucket(400, "Bad request", fields={"destination": ["Invalid branch."]})
        for label, branch in (("source", source), ("destination", destination)):
            if branch not in repo.branches:
                return _bitbucket(
                    400,
                    f"{label}: branch not found: {branch}",
                    fields={label: [f"branch not found: {branch}"]},
                )
        if source == destination:
            return _bitbucket(400, "source and destination branches must be different")
        if self._duplicate("bitbucket", path, source, destination):
            return _bitbucket(
                400, "Only one pull request may be open for a given source and target branch"
            )
        pr = self._open(
            "bitbucket",
            path,
            repo,
            head=source,
            base=destination,
            title=body["title"],
            body=body.get("description"),
        )
        pr["url"] = f"{self.url}/bitbucket/{path}/pull-requests/{pr['number']}"
        api = f"{self.api_url('bitbucket')}/repositories/{path}/pullrequests/{pr['number']}"
        return (
            201,
            {
                "type": "pullrequest",
                "id": pr["number"],
                "title": pr["title"],
                "description": pr["body"],
                "state": "OPEN",
                "source": {"branch": {"name": source}, "commit": {"hash": pr["head_sha"][:12]}},
                "destination": {
                    "branch": {"name": destination},
                    "commit": {"hash": pr["base_sha"][:12]},
                },
                "links": {"html": {"href": pr["url"]}, "self": {"href": api}},
            },
            {"Location": api},
        )

    def _bb_comment(self, ws: str, slug: str, number: str, body: dict[str, Any]) -> Answer:
        path, repo = self._bb_repo(ws, slug)
        if repo is None:
            return _bitbucket(404, f"Repository {path} not found")
        pr = self._find_pr("bitbucket", path, int(number))
        if pr is None:
            return _bitbucket(404, f"Pull request {number} not found")
        content = body.get("content")
        if (
            not isinstance(content, dict)
            or not isinstance(content.get("raw"), str)
            or not content["raw"].strip()
        ):
            return _bitbucket(400, "Bad request", fields={"content": ["This field is required."]})
        inline = body.get("inline")
        if inline is not None:
            if not isinstance(inline, dict) or not isinstance(inline.get("path"), str):
                return _bitbucket(
                    400, "Bad request", fields={"inline.path": ["This field is required."]}
                )
            lines = [inline.get(k) for k in ("to", "from") if inline.get(k) is not None]
            if not lines or not all(isinstance(n, int) and not isinstance(n, bool) for n in lines):
                return _bitbucket(
                    400, "Bad request", fields={"inline": ["One of from or to is required."]}
                )
        comment_id = self._next_id()
        self._comments.append(
            {
                "kind": "bitbucket",
                "repo": path,
                "number": pr["number"],
                "type": "inline" if inline else "summary",
                "body": content["raw"],
                "path": inline["path"] if inline else None,
                "line": inline.get("to") if inline else None,
                "inline": dict(inline) if inline else None,
            }
        )
        answer: dict[str, Any] = {
            "type": "pullrequest_comment",
            "id": comment_id,
            "content": {
                "raw": content["raw"],
                "markup": "markdown",
                "html": f"<p>{content['raw']}</p>",
            },
            "links": {"html": {"href": f"{pr['url']}#comment-{comment_id}"}},
        }
        if inline:
            answer["inline"] = inline
        return 201, answer, {}

    def _bb_status(self, ws: str, slug: str, sha: str, body: dict[str, Any]) -> Answer:
        path, repo = self._bb_repo(ws, slug)
        if repo is None:
            return _bitbucket(404, f"Repository {path} not found")
        if sha not in repo.shas:
            return _bitbucket(404, f"Commit not found: {sha}")
        fields: dict[str, list[str]] = {}
        for key in ("key", "state", "url"):
            if not isinstance(body.get(key), str) or not body[key]:
                fields[key] = ["This field is required."]
        if not fields and body["state"] not in _BITBUCKET_STATES:
            fields["state"] = [f"'{body['state']}' is not a valid choice."]
        if not fields and not re.match(r"^https?://", body["url"]):
            fields["url"] = ["Enter a valid URL."]
        for key in ("name", "description"):
            if key in body and not isinstance(body[key], str | None):
                fields[key] = ["Not a valid string."]
        if fields:
            return _bitbucket(400, "Bad request", fields=fields)
        updated = any(
            (s["kind"], s["repo"], s["sha"], s["context"]) == ("bitbucket", path, sha, body["key"])
            for s in self._statuses
        )
        status = {
            "kind": "bitbucket",
            "repo": path,
            "sha": sha,
            "state": body["state"],
            "context": body["key"],
            "name": body.get("name"),
            "description": body.get("description"),
            "target_url": body["url"],
        }
        self._statuses.append(status)
        return (
            200 if updated else 201,
            {
                "type": "commitstatus",
                "key": body["key"],
                "state": body["state"],
                "name": body.get("name"),
                "description": body.get("description"),
                "url": body["url"],
            },
            {},
        )


def _branch_name(value: Any) -> str | None:
    """``{"branch": {"name": ...}}`` -> the name, or None if it is not that shape."""
    branch = value.get("branch") if isinstance(value, dict) else None
    name = branch.get("name") if isinstance(branch, dict) else None
    return name if isinstance(name, str) and name else None


def _github(status: int, message: str, *, errors: list[Any] | None = None) -> Answer:
    body: dict[str, Any] = {
        "message": message,
        "documentation_url": _GITHUB_DOCS,
        "status": str(status),
    }
    if errors is not None:
        body["errors"] = errors
    return status, body, {}


def _github_invalid(error: dict[str, Any]) -> Answer:
    return _github(422, "Validation Failed", errors=[error])


def _gh_types(
    body: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...]
) -> Answer | None:
    for key in required:
        if key not in body:
            return _github(422, f'Invalid request.\n\n"{key}" wasn\'t supplied.')
    for key in (*required, *optional):
        value = body.get(key)
        if key in body and not (isinstance(value, str) or (value is None and key in optional)):
            return _github(
                422,
                f"Invalid request.\n\nFor 'properties/{key}', {json.dumps(value)} is not a string.",
            )
    return None


def _bitbucket(status: int, message: str, *, fields: dict[str, list[str]] | None = None) -> Answer:
    error: dict[str, Any] = {"message": message}
    if fields:
        error["fields"] = fields
    return status, {"type": "error", "error": error}, {}


def _unauthorized(kind: str) -> Answer:
    if kind == "github":
        return _github(401, "Bad credentials")
    if kind == "gitlab":
        return 401, {"message": "401 Unauthorized"}, {}
    return _bitbucket(401, "Token is invalid, expired, or not supported for this endpoint.")


def _not_found(kind: str, message: str) -> Answer:
    if kind == "github":
        return _github(404, message)
    if kind == "gitlab":
        return 404, {"error": "404 Not Found"}, {}
    return _bitbucket(404, message)


def _bad_json(kind: str) -> Answer:
    if kind == "github":
        return _github(400, "Problems parsing JSON")
    if kind == "gitlab":
        return 400, {"error": "The request body is not a JSON object"}, {}
    return _bitbucket(400, "Bad request: the body is not a JSON object")
