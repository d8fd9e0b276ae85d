"""Review on every pull request: a webhook's event becomes a review job whose result is
posted back as inline comments and a commit status, and kept as the project's review
history.

The webhook's work in the request is small and safe: the project is found (by
``?project=`` or by the repository's URL), the delivery is verified with that
project's secret before anything else happens, and recorded, so a replay queues
nothing twice. The job (kind ``pr_review``) fetches the pull request's head into the
project's checkout, reviews what it changed with the project's settings, stores the
report, and posts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from pydantic import BaseModel

from common.errors import AppError, InvalidInput, NotFound, Unauthorized
from common.logs import get_logger

if TYPE_CHECKING:
    from common.jobs import JobContext
    from common.review.service import ReviewComment, ReviewOutput

log = get_logger("review.pull_requests")

STATUS_CONTEXT = "ai-orchestrator/review"
# The refs a host keeps for a pull request's head (a fork's branch is not in the repo).
_PULL_REFS = {
    "github": "pull/{number}/head",
    "gitlab": "merge-requests/{number}/head",
}


class WebhookAnswer(BaseModel):
    """What a delivery did."""

    status: Literal["queued", "duplicate", "ignored"]
    reason: str | None = None
    project_id: UUID | None = None
    job_id: UUID | None = None


class WebhookSetup(BaseModel):
    """A project's webhook: where each host posts, and the secret (shown once)."""

    project_id: UUID
    secret: str
    urls: dict[str, str]


def setup_webhook(*, project_id: UUID, owner_key_id: UUID, base_url: str) -> WebhookSetup:
    """Make (or rotate) the project's webhook secret; the URLs to give each host.

    Raises
    ------
    NotFound
        Not the key's project.
    """
    from common.projects import get_project
    from common.review.webhooks import get_webhook_store
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=get_project_store())
    secret = get_webhook_store().create_or_rotate_secret(project_id, owner_key_id)
    root = base_url.rstrip("/")
    urls = {
        p: f"{root}/api/webhooks/{p}?project={project_id}"
        for p in ("github", "gitlab", "bitbucket")
    }
    return WebhookSetup(project_id=project_id, secret=secret, urls=urls)


def receive_webhook(
    provider: str, *, headers: Mapping[str, str], body: bytes, project: UUID | None
) -> WebhookAnswer:
    """Verify, map and record one delivery; queue its review.

    Raises
    ------
    NotFound
        An unknown provider.
    Unauthorized, BadSignature
        No project to verify against, or the signature does not verify: nothing runs.
    InvalidInput, BadRequest, MalformedJson
        A payload that is not usable (a verified one, with ``project``).
    """
    from common.jobs import submit_job
    from common.jobs.service import KeyRef
    from common.review import webhooks

    if provider not in ("github", "gitlab", "bitbucket"):
        raise NotFound(f"no webhook for {provider!r}: github, gitlab or bitbucket")
    kind: webhooks.WebhookProvider = provider  # type: ignore[assignment]
    store = webhooks.get_webhook_store()
    if project is not None:
        # The project is named: nothing of the payload is read before it verifies.
        row = _verified(kind, _linked_rows([project]), headers=headers, body=body, store=store)
        event = webhooks.parse_event(kind, headers, body)
    else:
        # Read only to find which projects to try; trusted once one's secret verifies.
        event = webhooks.parse_event(kind, headers, body)
        if event is None:
            return WebhookAnswer(
                status="ignored",
                reason="not a pull request opened or updated (add ?project= to have it checked)",
            )
        candidates = [
            r
            for r in _linked_rows(None)
            if webhooks.same_repository(str(r["git_remote"]), event.remote_urls)
        ]
        row = _verified(kind, candidates, headers=headers, body=body, store=store)
    if event is None:
        return WebhookAnswer(
            status="ignored", reason="not a pull request opened or updated", project_id=row["id"]
        )
    if not store.record_delivery(kind, event.delivery_id, row["id"]):
        return WebhookAnswer(status="duplicate", project_id=row["id"])
    try:
        accepted = submit_job(
            kind="pr_review",
            input={"project_id": str(row["id"]), "event": event.model_dump(mode="json")},
            principal=KeyRef(row["owner_key_id"]),
            project_id=row["id"],
        )
    except BaseException:
        # Not queued: the host's retry of this delivery must not be taken for a replay.
        store.forget_delivery(kind, event.delivery_id, row["id"])
        raise
    store.attach_job(kind, event.delivery_id, accepted.job_id)
    log.info(
        "pull request review queued",
        extra={"project_id": str(row["id"]), "provider": kind, "number": event.number},
    )
    return WebhookAnswer(status="queued", project_id=row["id"], job_id=accepted.job_id)


def _linked_rows(ids: list[UUID] | None) -> list[dict[str, Any]]:
    from common.git.store import get_git_sync_store

    git = get_git_sync_store()
    if ids is None:
        return git.linked_projects()
    rows = [git.find_link(project_id=i, owner_key_id=None) for i in ids]
    return [r for r in rows if r is not None and r["git_remote"]]


def _verified(
    provider: Any,
    candidates: list[dict[str, Any]],
    *,
    headers: Mapping[str, str],
    body: bytes,
    store: Any,
) -> dict[str, Any]:
    """The first candidate whose webhook secret verifies the delivery."""
    from common.review import webhooks

    failure: AppError | None = None
    for row in candidates:
        secret = store.secret_for(row["id"])
        if secret is None:
            continue
        try:
            webhooks.verify_signature(provider, secret=secret, body=body, headers=headers)
        except AppError as exc:
            failure = exc
            continue
        return row
    if failure is not None:
        raise failure
    raise Unauthorized(
        "no project with a webhook secret matches this delivery: set one up with"
        " POST /api/projects/{id}/webhook and pass ?project=<id>"
    )


# -- the job ----------------------------------------------------------------------------


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Job kind ``pr_review``: review the pull request's change, keep it, post it back."""
    from common.config import get_settings
    from common.git.credentials import get_credential_manager
    from common.git.service import GitCheckout, linked_row
    from common.git.store import get_git_sync_store
    from common.git.sync import GitError
    from common.models import get_model_client
    from common.review.service import diff_between, review_change, review_settings
    from common.review.webhooks import PullRequestEvent

    project_id = UUID(str(input["project_id"]))
    event = PullRequestEvent.model_validate(input["event"])
    store = get_git_sync_store()
    row = linked_row(store, project_id, ctx.key_id)
    settings = review_settings(project_id)
    repo = GitCheckout(row=row, settings=get_settings(), credentials=get_credential_manager())
    ctx.progress("fetch", 10, f"fetching pull request {event.number}")
    with store.project_lock(project_id) as got:
        if not got:
            raise InvalidInput("another git operation is running on this project; try again")
        repo.update()
        pull_ref = _PULL_REFS.get(event.provider, "{head_ref}").format(
            number=event.number, head_ref=event.head_ref
        )
        change = diff_between(
            repo, event.base_ref, event.head_sha, fetch=(pull_ref, event.head_ref), error=GitError
        )
    ctx.progress("review", 40, f"reviewing {len(change.added)} changed file(s)")
    out = review_change(
        change,
        checks=settings.checks,
        fail_on=settings.fail_on,
        model=get_model_client(),
        max_attempts=get_settings().MAX_ATTEMPTS,
    )
    report_id = _keep(project_id, ctx.key_id, event, out)
    ctx.progress("post", 80, "posting the review and the status")
    posted = _post(row, repo.token, event, out, report_id)
    return {
        "report_id": report_id,
        "verdict": out.verdict,
        "comments": len(out.comments),
        "posted": posted,
        "number": event.number,
        "head_sha": event.head_sha,
    }


def _keep(project_id: UUID, key_id: UUID | None, event: Any, out: ReviewOutput) -> str:
    from common.reports import new_report_id, report_url, save_report

    report_id = new_report_id()
    if key_id is None:
        return report_id
    sarif_id = None
    if out.sarif is not None:
        # Its own report, so a CI or code-scanning upload downloads the SARIF as is.
        sarif_id = save_report("sarif", key_id=key_id, body=out.sarif)
    body = {
        "report_id": report_id,
        "report_url": report_url(report_id),
        "kind": "review",
        "project_id": str(project_id),
        "created_at": datetime.now(UTC).isoformat(),
        "pull_request": {
            "provider": event.provider,
            "number": event.number,
            "title": event.title,
            "url": event.url,
            "head_sha": event.head_sha,
            "base_ref": event.base_ref,
            "head_ref": event.head_ref,
        },
        **out.model_dump(mode="json", exclude={"sarif"}),
        "sarif_report_id": sarif_id,
        "sarif_url": report_url(sarif_id) if sarif_id else None,
    }
    save_report("review", key_id=key_id, body=body, report_id=report_id)
    return report_id


def comment_body(comment: ReviewComment, provider: str) -> str:
    """One inline comment: the finding and, when checked, the suggested line in the
    host's suggestion syntax (Bitbucket has none: a code block)."""
    text = f"**{comment.severity}** `{comment.rule}` ({comment.tool}): {comment.message}"
    if comment.suggestion:
        fence = {"github": "suggestion", "gitlab": "suggestion:-0+0"}.get(provider, "")
        text += f"\n\n```{fence}\n{comment.suggestion}\n```"
    return text


def _post(
    row: dict[str, Any], token: str | None, event: Any, out: ReviewOutput, report_id: str
) -> bool:
    from common.config import get_settings
    from common.git.hosts import HostClient, InlineComment, host_repo

    if token is None:
        log.warning("no token to post the review with", extra={"project_id": str(row["id"])})
        return False
    repo = host_repo(
        str(row["git_remote"]),
        kind=row.get("git_host_kind"),
        api_url=row.get("git_api_url"),
        allow_private=get_settings().ALLOW_PRIVATE_GIT_HOSTS,
    )
    verdict = "passes" if out.verdict == "pass" else "fails"
    summary = (
        f"**AI Orchestrator review: {verdict}** (fails at {out.fail_on} or above)\n\n"
        f"{out.summary}\n\nReport: `{report_id}`"
    )
    with HostClient(repo, token) as client:
        client.post_review(
            number=event.number,
            commit=event.head_sha,
            summary=summary,
            comments=[
                InlineComment(c.path, c.line, comment_body(c, event.provider)) for c in out.comments
            ],
        )
        counts = ", ".join(f"{n} {s}" for s, n in out.counts.items() if n)
        client.set_status(
            commit=event.head_sha,
            state="success" if out.verdict == "pass" else "failure",
            context=STATUS_CONTEXT,
            description=f"{verdict}: {counts or 'no findings on changed lines'}"[:140],
        )
    return True


def review_history(
    *, project_id: UUID, owner_key_id: UUID, limit: int = 20
) -> list[dict[str, Any]]:
    """The project's pull request reviews, newest first (verdict, PR, counts).

    Raises
    ------
    NotFound
        Not the key's project.
    """
    from common.projects import get_project
    from common.stores.mongo import get_mongo
    from common.stores.projects_store import get_project_store

    get_project(project_id=project_id, owner_key_id=owner_key_id, store=get_project_store())
    cursor = (
        get_mongo()["reports"]
        .find(
            {"key_id": str(owner_key_id), "kind": "review", "body.project_id": str(project_id)},
            {"_id": 0, "body.comments": 0, "body.usage": 0, "body.sarif": 0},
        )
        .sort("created_at", -1)
        .limit(limit)
    )
    return [doc["body"] for doc in cursor]
