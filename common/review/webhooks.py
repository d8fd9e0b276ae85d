"""Pull-request webhooks from GitHub, GitLab and Bitbucket Cloud.

Four steps, in this order, for every delivery:

1. :func:`verify_signature`: the delivery is from the host (an HMAC of the raw body
   under the project's secret, or GitLab's token). Nothing of an unverified body is
   acted on; :func:`repository_urls` only reads it to find which projects to try.
2. :func:`parse_event`: one :class:`PullRequestEvent` for a pull request opened,
   updated with new commits or reopened; None for every other event.
3. :meth:`WebhookStore.record_delivery`: True once per delivery, so a host's retry
   or a replayed request queues nothing twice.
4. :meth:`WebhookStore.attach_job`: the job the delivery queued, for the record.

The per-project secret is encrypted at rest under the same keys as Git tokens
(:func:`common.git.credentials.token_cipher`), and rotates with them
(:meth:`PostgresWebhookStore.ciphertexts`, :meth:`PostgresWebhookStore.replace_ciphertext`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from common.errors import BadRequest, InvalidInput, MalformedJson, NotFound
from common.errors import BadSignature as BadSignature

if TYPE_CHECKING:
    from common.git.credentials import TokenCipher
    from common.stores.postgres import PostgresStore

WebhookProvider = Literal["github", "gitlab", "bitbucket"]
PullRequestAction = Literal["opened", "updated", "reopened"]

PROVIDERS: tuple[WebhookProvider, ...] = ("github", "gitlab", "bitbucket")
_NAMES: dict[str, str] = {"github": "GitHub", "gitlab": "GitLab", "bitbucket": "Bitbucket"}

# The header that carries the proof, per host. GitHub's X-Hub-Signature (SHA-1) is
# not accepted: SHA-256 is sent beside it by every GitHub version that matters.
_SIGNATURE_HEADERS: dict[str, str] = {
    "github": "X-Hub-Signature-256",
    "gitlab": "X-Gitlab-Token",
    "bitbucket": "X-Hub-Signature",
}
# GitLab: Idempotency-Key (17.4+) is kept when GitLab retries or a user resends a
# delivery, which is what a replay is; X-Gitlab-Event-UUID is per event, made anew
# on a resend, so it is only the fallback for older servers.
_DELIVERY_HEADERS: dict[str, tuple[str, ...]] = {
    "github": ("X-GitHub-Delivery",),
    "gitlab": ("Idempotency-Key", "X-Gitlab-Event-UUID"),
    "bitbucket": ("X-Request-UUID",),
}
_EVENT_HEADERS: dict[str, str] = {
    "github": "X-GitHub-Event",
    "gitlab": "X-Gitlab-Event",
    "bitbucket": "X-Event-Key",
}
_GITHUB_ACTIONS: dict[str, PullRequestAction] = {
    "opened": "opened",
    "synchronize": "updated",
    "reopened": "reopened",
}
_GITLAB_ACTIONS: dict[str, PullRequestAction] = {
    "open": "opened",
    "update": "updated",
    "reopen": "reopened",
}
_BITBUCKET_EVENTS: dict[str, PullRequestAction] = {
    "pullrequest:created": "opened",
    "pullrequest:updated": "updated",
}

_MAX_TEXT = 1024
_MAX_URL = 2048
_MAX_DELIVERY_ID = 200
# JSON numbers past 2**53 are not exact in most hosts' clients, nor in our jobs' JSON.
_MAX_NUMBER = 2**53
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")
_DELIVERY_ID = re.compile(r"^[\x21-\x7e]+$")
_BITBUCKET_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
# git check-ref-format's forbidden characters, plus what a shell or an option parser
# would read specially: a ref from a payload reaches git commands.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
_SCP_LIKE = re.compile(r"^(?:[^@/\s]+@)?(?P<host>[^:/\s]+):(?P<path>[^\s]+)$")
_MISSING = object()


class PullRequestEvent(BaseModel):
    """A pull (merge) request opened, updated with new commits or reopened, as one shape
    for every host.

    ``remote_urls`` are the repository's URLs as the host gives them (https clone,
    ssh, web), to match a linked project's remote with :func:`same_repository`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: WebhookProvider
    delivery_id: str
    action: PullRequestAction
    number: int
    title: str
    remote_urls: tuple[str, ...]
    base_ref: str
    head_ref: str
    head_sha: str
    base_sha: str | None = None
    author: str
    url: str


# -- verification ---------------------------------------------------------------------


def verify_signature(
    provider: WebhookProvider, *, secret: bytes, body: bytes, headers: Mapping[str, str]
) -> None:
    """Check that a delivery is from the host that holds ``secret``.

    GitHub: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``; Bitbucket
    Cloud: the same in ``X-Hub-Signature``; GitLab: ``X-Gitlab-Token`` is the secret.
    Compared in constant time; header names in any case.

    Parameters
    ----------
    provider:
        The host the delivery claims to come from.
    secret:
        The project's webhook secret.
    body:
        The raw request body, exactly as received (not re-serialised JSON).
    headers:
        The request's headers.

    Raises
    ------
    BadSignature
        No secret, no signature header, or a signature that does not match. The
        message names the header only: never the secret nor the expected digest.
    InvalidInput
        An unknown provider.
    """
    _check_provider(provider)
    name = _SIGNATURE_HEADERS[provider]
    if not secret:
        raise BadSignature("no webhook secret is set for this project")
    given = _header(headers, name)
    if given is None:
        raise BadSignature(f"the delivery has no {name} header")
    if provider == "gitlab":
        expected = secret
    else:
        expected = b"sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest().encode()
    # Bytes on both sides: compare_digest refuses a str with non-ASCII characters.
    if not hmac.compare_digest(expected, given.strip().encode("utf-8", "replace")):
        raise BadSignature(f"the delivery's {name} does not match its body")


def delivery_id(provider: WebhookProvider, headers: Mapping[str, str]) -> str:
    """The host's id of this delivery, the same when the host retries it.

    GitHub ``X-GitHub-Delivery``; GitLab ``Idempotency-Key`` (kept across retries and
    resends), else ``X-Gitlab-Event-UUID``; Bitbucket ``X-Request-UUID``.

    Raises
    ------
    BadRequest
        The header is missing, or not a short printable token; the message names it.
    InvalidInput
        An unknown provider.
    """
    _check_provider(provider)
    names = _DELIVERY_HEADERS[provider]
    for name in names:
        value = _header(headers, name)
        if value is None or not value.strip():
            continue
        value = value.strip()
        if len(value) > _MAX_DELIVERY_ID or not _DELIVERY_ID.match(value):
            raise BadRequest(f"the {name} header is not a delivery id")
        return value
    raise BadRequest(f"the delivery has no {' or '.join(names)} header")


# -- events ---------------------------------------------------------------------------


def parse_event(
    provider: WebhookProvider, headers: Mapping[str, str], body: bytes
) -> PullRequestEvent | None:
    """The pull request event of a (verified) delivery, or None when it asks for no review.

    None for every other event (GitHub ``ping``, a push, a comment), a pull request
    closed or merged, and a GitLab ``update`` without ``oldrev`` (a title, label or
    assignee change: no new commit, nothing new to review). Bitbucket sends no such
    hint: each ``pullrequest:updated`` is an event.

    Parameters
    ----------
    provider:
        The host.
    headers:
        The request's headers (the event name and the delivery id are read there).
    body:
        The raw request body.

    Returns
    -------
    PullRequestEvent | None
        The event, with ``delivery_id`` from :func:`delivery_id`.

    Raises
    ------
    BadRequest
        A pull request event without its event-name or delivery-id header.
    MalformedJson
        The body is not JSON.
    InvalidInput
        The body is JSON but not a pull request payload: the message names the first
        missing or mistyped field (never its value).
    """
    _check_provider(provider)
    name = _EVENT_HEADERS[provider]
    event_name = _header(headers, name)
    if event_name is None:
        raise BadRequest(f"the delivery has no {name} header")
    event_name = event_name.strip()
    if provider == "github":
        if event_name != "pull_request":
            return None
        fields = _github(_load(body))
    elif provider == "gitlab":
        if event_name != "Merge Request Hook":
            return None
        fields = _gitlab(_load(body))
    else:
        action = _BITBUCKET_EVENTS.get(event_name)
        if action is None:
            return None
        fields = _bitbucket(_load(body), action)
    if fields is None:
        return None
    try:
        return PullRequestEvent(
            provider=provider, delivery_id=delivery_id(provider, headers), **fields
        )
    except ValidationError as exc:  # the readers check every field; a last guard
        raise InvalidInput(f"the {_NAMES[provider]} payload is not a pull request") from exc


def repository_urls(provider: WebhookProvider, body: bytes) -> list[str]:
    """The repository URLs a delivery's body names, to find the projects to verify it with.

    The body is not verified yet: nothing here is trusted beyond choosing which
    projects' secrets to try. Never raises; an unusable body names no URL.
    """
    try:
        payload = _load(body)
    except (MalformedJson, InvalidInput):
        return []
    if provider == "github":
        paths = ("repository.clone_url", "repository.ssh_url", "repository.html_url")
    elif provider == "gitlab":
        paths = ("project.git_http_url", "project.git_ssh_url", "project.web_url")
    elif provider == "bitbucket":
        full_name = _at(payload, "repository.full_name")
        if not isinstance(full_name, str) or not _BITBUCKET_FULL_NAME.match(full_name):
            return []
        return _bitbucket_urls(full_name, _at(payload, "repository.links.html.href"))
    else:
        return []
    return [u for u in (_at(payload, p) for p in paths) if isinstance(u, str) and _is_url(u)]


def _github(payload: dict[str, Any]) -> dict[str, Any] | None:
    read = _Reader("GitHub", payload)
    action = _GITHUB_ACTIONS.get(read.text("action"))
    if action is None:
        return None
    number = read.number("number")
    urls = [read.url("repository.clone_url"), read.url("repository.html_url", web=True)]
    ssh = read.url("repository.ssh_url", required=False)
    return {
        "action": action,
        "number": number,
        "title": read.text("pull_request.title"),
        "remote_urls": tuple(urls[:1] + ([ssh] if ssh else []) + urls[1:]),
        "base_ref": read.ref("pull_request.base.ref"),
        "head_ref": read.ref("pull_request.head.ref"),
        "head_sha": read.sha("pull_request.head.sha"),
        "base_sha": read.sha("pull_request.base.sha", required=False),
        "author": read.text("pull_request.user.login"),
        "url": read.url("pull_request.html_url", web=True),
    }


def _gitlab(payload: dict[str, Any]) -> dict[str, Any] | None:
    read = _Reader("GitLab", payload)
    action = _GITLAB_ACTIONS.get(read.text("object_attributes.action"))
    if action is None:
        return None
    if action == "updated" and not read.text("object_attributes.oldrev", required=False):
        return None
    urls = [read.url("project.git_http_url"), read.url("project.web_url", web=True)]
    ssh = read.url("project.git_ssh_url", required=False)
    return {
        "action": action,
        "number": read.number("object_attributes.iid"),
        "title": read.text("object_attributes.title"),
        "remote_urls": tuple(urls[:1] + ([ssh] if ssh else []) + urls[1:]),
        "base_ref": read.ref("object_attributes.target_branch"),
        "head_ref": read.ref("object_attributes.source_branch"),
        "head_sha": read.sha("object_attributes.last_commit.id"),
        "base_sha": None,
        "author": read.text("user.username"),
        "url": read.url("object_attributes.url", web=True),
    }


def _bitbucket(payload: dict[str, Any], action: PullRequestAction) -> dict[str, Any] | None:
    read = _Reader("Bitbucket", payload)
    state = read.text("pullrequest.state", required=False)
    if state and state != "OPEN":
        return None
    full_name = read.text("repository.full_name")
    if not _BITBUCKET_FULL_NAME.match(full_name):
        raise read.invalid("repository.full_name", "a workspace/repository name")
    web = read.url("repository.links.html.href", required=False, web=True)
    return {
        "action": action,
        "number": read.number("pullrequest.id"),
        "title": read.text("pullrequest.title"),
        "remote_urls": tuple(_bitbucket_urls(full_name, web)),
        "base_ref": read.ref("pullrequest.destination.branch.name"),
        "head_ref": read.ref("pullrequest.source.branch.name"),
        "head_sha": read.sha("pullrequest.source.commit.hash"),
        "base_sha": read.sha("pullrequest.destination.commit.hash", required=False),
        "author": read.text("pullrequest.author.display_name"),
        "url": read.url("pullrequest.links.html.href", web=True),
    }


def _bitbucket_urls(full_name: str, web: Any) -> list[str]:
    # Bitbucket's payloads carry no clone URL; these are the forms Bitbucket shows.
    web_url = (
        web if isinstance(web, str) and _is_web_url(web) else f"https://bitbucket.org/{full_name}"
    )
    return [
        f"https://bitbucket.org/{full_name}.git",
        f"git@bitbucket.org:{full_name}.git",
        web_url,
    ]


def _load(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body, parse_constant=_no_constant)
    # RecursionError: "[[[[..." a few thousand deep; ValueError covers bad UTF-8,
    # bad JSON and integers past Python's digit limit.
    except (ValueError, RecursionError, TypeError):
        raise MalformedJson("the webhook body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the webhook body must be one JSON object")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _at(payload: Any, path: str) -> Any:
    value = payload
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


class _Reader:
    """Typed reads of one payload; the first missing or mistyped field is an InvalidInput."""

    def __init__(self, host: str, payload: dict[str, Any]) -> None:
        self.host = host
        self.payload = payload

    def invalid(self, path: str, expected: str) -> InvalidInput:
        return InvalidInput(
            f"the {self.host} payload has no usable {path} ({expected})",
            details={"fields": [{"path": path, "message": f"expected {expected}"}]},
        )

    def text(self, path: str, *, required: bool = True) -> str:
        value = _at(self.payload, path)
        if value is _MISSING or value is None or value == "":
            if required:
                raise self.invalid(path, "a string")
            return ""
        # NUL and lone surrogates: PostgreSQL's text and jsonb refuse them, later, as a 500.
        if not isinstance(value, str) or len(value) > _MAX_TEXT or "\x00" in value:
            raise self.invalid(path, f"a string of at most {_MAX_TEXT} characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.invalid(path, "a string of valid Unicode") from None
        return value

    def number(self, path: str) -> int:
        value = _at(self.payload, path)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < _MAX_NUMBER:
            raise self.invalid(path, "a positive integer")
        return value

    def url(self, path: str, *, required: bool = True, web: bool = False) -> str:
        value = self.text(path, required=required)
        if value and not (_is_web_url(value) if web else _is_url(value)):
            raise self.invalid(path, "an http(s) URL" if web else "a URL")
        return value

    def ref(self, path: str) -> str:
        value = self.text(path)
        if (
            len(value) > 255
            or value.startswith(("-", "/", "."))
            or value.endswith(("/", ".", ".lock"))
            or _REF_FORBIDDEN.search(value)
        ):
            raise self.invalid(path, "a branch name")
        return value

    def sha(self, path: str, *, required: bool = True) -> str | None:
        value = self.text(path, required=required)
        if not value:
            return None
        if not _SHA.match(value):
            raise self.invalid(path, "a commit hash")
        return value.lower()


def _is_url(value: str) -> bool:
    return 0 < len(value) <= _MAX_URL and not re.search(r"[\x00-\x20\x7f]", value)


def _is_web_url(value: str) -> bool:
    # A web URL ends up as a link in reports and the console: no javascript: or data:.
    return _is_url(value) and value.lower().startswith(("https://", "http://"))


# -- repositories ---------------------------------------------------------------------


def same_repository(remote_url: str, candidates: Iterable[str]) -> bool:
    """Whether ``remote_url`` names the same repository as any of ``candidates``.

    https, ssh and scp-like forms compare equal: ``git@github.com:o/r.git`` is
    ``https://github.com/o/r``. Credentials, ports, a trailing slash and ``.git`` are
    ignored, and host and path compare case-insensitively (GitHub, GitLab and
    Bitbucket all resolve owner and name so). Ports go too: a self-hosted GitLab's
    ssh port is not its https port, yet both reach one repository.
    """
    key = _repository_key(remote_url)
    if key is None:
        return False
    return any(_repository_key(candidate) == key for candidate in candidates)


def _repository_key(url: str) -> str | None:
    if not isinstance(url, str):
        return None
    text = url.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname
        except ValueError:
            return None
        path = parts.path
    else:
        match = _SCP_LIKE.match(text)
        if match is None:
            return None
        host, path = match["host"].lower(), match["path"]
    path = path.strip("/")
    if path.lower().endswith(".git"):
        path = path[:-4].rstrip("/")
    if not host or not path:
        return None
    return f"{host}/{path.lower()}"


# -- storage --------------------------------------------------------------------------


class WebhookStore(Protocol):
    """What the webhook flow needs from storage (migration 0007)."""

    def create_or_rotate_secret(self, project_id: UUID, owner_key_id: UUID) -> str: ...

    def secret_for(self, project_id: UUID) -> bytes | None: ...

    def delete(self, project_id: UUID) -> bool: ...

    def record_delivery(
        self, provider: WebhookProvider, delivery_id: str, project_id: UUID
    ) -> bool: ...

    def forget_delivery(
        self, provider: WebhookProvider, delivery_id: str, project_id: UUID
    ) -> None: ...

    def attach_job(self, provider: WebhookProvider, delivery_id: str, job_id: UUID) -> bool: ...


class PostgresWebhookStore:
    """:class:`WebhookStore` on ``project_webhooks`` and ``webhook_deliveries`` (0007).

    Parameters
    ----------
    postgres:
        The PostgreSQL pool.
    cipher:
        Encrypts the secrets (the Git tokens' cipher, so they rotate with them).
    """

    def __init__(self, postgres: PostgresStore, *, cipher: TokenCipher) -> None:
        self.postgres = postgres
        self._cipher = cipher

    def create_or_rotate_secret(self, project_id: UUID, owner_key_id: UUID) -> str:
        """A new random secret for the project, replacing any old one.

        Returns
        -------
        str
            The secret, to show its owner once: only its ciphertext is stored.

        Raises
        ------
        NotFound
            No such project of ``owner_key_id``.
        """
        secret = secrets.token_urlsafe(32)
        ciphertext = self._cipher.encrypt(secret)
        # The project's row supplies the owner: a key cannot set another key's secret.
        with self.postgres.connection() as conn:
            row = conn.execute(
                "INSERT INTO project_webhooks (project_id, owner_key_id, secret_ciphertext)"
                " SELECT id, owner_key_id, %s FROM projects WHERE id = %s AND owner_key_id = %s"
                " ON CONFLICT (project_id) DO UPDATE"
                " SET secret_ciphertext = EXCLUDED.secret_ciphertext, rotated_at = now()"
                " WHERE project_webhooks.owner_key_id = EXCLUDED.owner_key_id"
                " RETURNING project_id",
                (ciphertext, project_id, owner_key_id),
            ).fetchone()
        if row is None:
            raise NotFound(f"no project {project_id}")
        return secret

    def secret_for(self, project_id: UUID) -> bytes | None:
        """The project's secret, decrypted; None when it has none.

        Raises
        ------
        ConfigError
            It was encrypted under a key that is no longer configured.
        """
        with self.postgres.connection() as conn:
            row = conn.execute(
                "SELECT secret_ciphertext FROM project_webhooks WHERE project_id = %s",
                (project_id,),
            ).fetchone()
        if row is None:
            return None
        return self._cipher.decrypt(bytes(row["secret_ciphertext"])).encode()

    def delete(self, project_id: UUID) -> bool:
        """Forget the project's secret (every delivery then fails to verify).

        Returns
        -------
        bool
            Whether it had one.
        """
        with self.postgres.connection() as conn:
            cursor = conn.execute(
                "DELETE FROM project_webhooks WHERE project_id = %s", (project_id,)
            )
            return bool(cursor.rowcount)

    def record_delivery(
        self, provider: WebhookProvider, delivery_id: str, project_id: UUID
    ) -> bool:
        """Remember a delivery for a project.

        One statement (``ON CONFLICT DO NOTHING``): of two requests racing with the same
        delivery, the second waits for the first's row and inserts nothing, so exactly
        one gets True. The key includes the project: a host sends one event to each of
        its hooks under one id (GitHub's ``X-GitHub-Delivery`` is per event), and two
        projects linked to one repository each get their delivery.

        Returns
        -------
        bool
            True the first time, False for a replay.

        Raises
        ------
        NotFound
            No such project.
        """
        import psycopg

        try:
            with self.postgres.connection() as conn:
                row = conn.execute(
                    "INSERT INTO webhook_deliveries (project_id, provider, delivery_id)"
                    " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING received_at",
                    (project_id, provider, delivery_id),
                ).fetchone()
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound(f"no project {project_id}") from exc
        return row is not None

    def forget_delivery(
        self, provider: WebhookProvider, delivery_id: str, project_id: UUID
    ) -> None:
        """Undo :meth:`record_delivery` when queuing its job failed, so that the host's
        retry is not taken for a replay."""
        with self.postgres.connection() as conn:
            conn.execute(
                "DELETE FROM webhook_deliveries"
                " WHERE project_id = %s AND provider = %s AND delivery_id = %s AND job_id IS NULL",
                (project_id, provider, delivery_id),
            )

    def attach_job(self, provider: WebhookProvider, delivery_id: str, job_id: UUID) -> bool:
        """Note the job a delivery queued.

        The delivery is the one of the job's project (``jobs.project_id``): no
        other project's delivery of the same id is touched.

        Returns
        -------
        bool
            False when there is no such job, or its project recorded no such delivery.
        """
        with self.postgres.connection() as conn:
            cursor = conn.execute(
                "UPDATE webhook_deliveries d SET job_id = j.id FROM jobs j"
                " WHERE j.id = %s AND d.project_id = j.project_id"
                " AND d.provider = %s AND d.delivery_id = %s",
                (job_id, provider, delivery_id),
            )
            return bool(cursor.rowcount)

    # -- key rotation (common.git.credentials.TokenRotationStore) ---------------------

    def ciphertexts(self) -> Sequence[tuple[UUID, bytes]]:
        """Every stored secret's ciphertext, by project, for :func:`rotate_tokens`."""
        with self.postgres.connection() as conn:
            rows = conn.execute(
                "SELECT project_id, secret_ciphertext FROM project_webhooks ORDER BY project_id"
            ).fetchall()
        return [(UUID(str(r["project_id"])), bytes(r["secret_ciphertext"])) for r in rows]

    def replace_ciphertext(self, project_id: UUID, *, old: bytes, new: bytes) -> bool:
        """Compare-and-set: a secret rotated meanwhile is left as it is."""
        # rotated_at stays: it tells the owner when the secret changed, and it did not.
        with self.postgres.connection() as conn:
            cursor = conn.execute(
                "UPDATE project_webhooks SET secret_ciphertext = %s"
                " WHERE project_id = %s AND secret_ciphertext = %s",
                (new, project_id, old),
            )
            return bool(cursor.rowcount)


def get_webhook_store() -> PostgresWebhookStore:
    """The webhook store on the process-wide PostgreSQL pool, with the configured keys."""
    from common.config import get_settings
    from common.git.credentials import token_cipher
    from common.stores.postgres import get_postgres

    return PostgresWebhookStore(get_postgres(), cipher=token_cipher(get_settings()))


# -- helpers --------------------------------------------------------------------------


def _check_provider(provider: str) -> None:
    if provider not in PROVIDERS:
        raise InvalidInput("the webhook provider must be github, gitlab or bitbucket")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if isinstance(key, str) and key.lower() == wanted:
            return value if isinstance(value, str) else None
    return None
