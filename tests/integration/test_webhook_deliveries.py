"""Webhook secrets and deliveries against the run's real PostgreSQL (embedded, or the
server DATABASE_URL names): secrets stored encrypted and rotated, a delivery recorded
once however many times, or however concurrently, it arrives."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID, uuid4

import pytest

from common.errors import BadSignature, NotFound

KEY_A = "webhooks-key-a-" + "a" * 32
KEY_B = "webhooks-key-b-" + "b" * 32


@pytest.fixture
def owner(api_key: str) -> UUID:
    """The key id of a fresh API key."""
    from common.auth import authenticate
    from common.stores.postgres import get_postgres

    return UUID(str(authenticate(api_key, store=get_postgres()).key_id))


@pytest.fixture
def new_project(owner: UUID) -> Iterator[Callable[[], UUID]]:
    """Makes projects of ``owner``; deletes them (and, by cascade, their webhook rows)."""
    from common.stores.postgres import get_postgres
    from common.stores.projects_store import PostgresProjectStore

    made: list[UUID] = []

    def make() -> UUID:
        row = PostgresProjectStore(get_postgres()).insert_project(
            name=f"webhooks-{len(made)}", owner_key_id=owner
        )
        made.append(UUID(str(row["id"])))
        return made[-1]

    yield make
    with get_postgres().connection() as conn:
        conn.execute("DELETE FROM projects WHERE id = ANY(%s)", (made,))


def webhook_row(project_id: UUID) -> dict[str, Any] | None:
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        row: dict[str, Any] | None = conn.execute(
            "SELECT * FROM project_webhooks WHERE project_id = %s", (project_id,)
        ).fetchone()
    return row


def delivery_rows(delivery: str) -> list[dict[str, Any]]:
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        rows: list[dict[str, Any]] = conn.execute(
            "SELECT * FROM webhook_deliveries WHERE delivery_id = %s ORDER BY project_id",
            (delivery,),
        ).fetchall()
    return rows


def inert_job(owner: UUID, project_id: UUID) -> UUID:
    """A finished job row: something to attach, that no worker or sweeper picks up."""
    from common.stores.postgres import get_postgres

    with get_postgres().connection() as conn:
        row = conn.execute(
            "INSERT INTO jobs (kind, key_id, project_id, status, finished_at)"
            " VALUES ('pr_review', %s, %s, 'cancelled', now()) RETURNING id",
            (owner, project_id),
        ).fetchone()
    assert row is not None
    return UUID(str(row["id"]))


def github_signature(secret: bytes, body: bytes) -> dict[str, str]:
    return {"X-Hub-Signature-256": "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()}


def test_a_secret_is_shown_once_stored_encrypted_and_verifies_deliveries(
    set_env: Callable[..., None], owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.git.credentials import TokenCipher
    from common.review.webhooks import get_webhook_store, verify_signature

    set_env(SECRET_KEY=KEY_A, SECRET_KEY_PREVIOUS=None, GIT_TOKENS_KMS_KEY_ID=None)
    project = new_project()
    store = get_webhook_store()
    # Given a new secret
    secret = store.create_or_rotate_secret(project, owner)
    assert len(secret) >= 43  # 32 random bytes, URL-safe base64
    # Then the row holds only its ciphertext, under the configured key
    row = webhook_row(project)
    assert row is not None and row["owner_key_id"] == owner and row["rotated_at"] is None
    blob = bytes(row["secret_ciphertext"])
    kid = TokenCipher(KEY_A.encode()).key_id
    assert kid is not None and blob.startswith(b"f1:" + kid + b":")
    assert secret.encode() not in blob and secret not in blob.decode()
    # And it reads back, and verifies what the host signs with it
    assert store.secret_for(project) == secret.encode()
    body = b'{"zen": "Keep it logically awesome."}'
    headers = github_signature(secret.encode(), body)
    verify_signature("github", secret=store.secret_for(project) or b"", body=body, headers=headers)


def test_rotation_replaces_the_secret_and_the_old_one_stops_verifying(
    set_env: Callable[..., None], owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store, verify_signature

    set_env(SECRET_KEY=KEY_A, SECRET_KEY_PREVIOUS=None)
    project = new_project()
    store = get_webhook_store()
    old = store.create_or_rotate_secret(project, owner)
    before = webhook_row(project)
    # When it is rotated
    new = store.create_or_rotate_secret(project, owner)
    # Then there is one row, with the new secret only
    assert new != old and store.secret_for(project) == new.encode()
    after = webhook_row(project)
    assert before is not None and after is not None
    assert after["created_at"] == before["created_at"] and after["rotated_at"] is not None
    assert after["secret_ciphertext"] != before["secret_ciphertext"]
    body = b'{"action": "opened"}'
    with pytest.raises(BadSignature):
        verify_signature(
            "github",
            secret=store.secret_for(project) or b"",
            body=body,
            headers=github_signature(old.encode(), body),
        )


def test_only_the_projects_owner_sets_its_secret_and_delete_forgets_it(
    stores: None, owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store

    project = new_project()
    store = get_webhook_store()
    with pytest.raises(NotFound):
        store.create_or_rotate_secret(project, uuid4())
    with pytest.raises(NotFound):
        store.create_or_rotate_secret(uuid4(), owner)
    assert webhook_row(project) is None and store.secret_for(project) is None
    # Given a secret, another key cannot rotate it
    secret = store.create_or_rotate_secret(project, owner)
    with pytest.raises(NotFound):
        store.create_or_rotate_secret(project, uuid4())
    assert store.secret_for(project) == secret.encode()
    assert store.delete(project) is True
    assert store.secret_for(project) is None and store.delete(project) is False


def test_a_delivery_is_recorded_once_per_project(
    stores: None, owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store

    first, second = new_project(), new_project()
    store = get_webhook_store()
    delivery = str(uuid4())
    assert store.record_delivery("github", delivery, first) is True
    # A retry, or a replay of the same request: nothing to do
    assert store.record_delivery("github", delivery, first) is False
    assert store.record_delivery("github", delivery, first) is False
    # GitHub's delivery id is per event: the same event to another project's hook is new,
    # and another host's id space is its own
    assert store.record_delivery("github", delivery, second) is True
    assert store.record_delivery("gitlab", delivery, first) is True
    rows = delivery_rows(delivery)
    assert len(rows) == 3 and all(r["received_at"] is not None for r in rows)
    with pytest.raises(NotFound):
        store.record_delivery("github", str(uuid4()), uuid4())


def test_two_racing_deliveries_of_one_id_give_exactly_one_true(
    stores: None, owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store

    project = new_project()
    store = get_webhook_store()
    threads, rounds = 4, 25
    deliveries = [str(uuid4()) for _ in range(rounds)]
    barrier = threading.Barrier(threads)

    def deliver(delivery: str) -> bool:
        barrier.wait(timeout=10)  # all threads send this id at the same moment
        return store.record_delivery("bitbucket", delivery, project)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for delivery in deliveries:
            answers = list(pool.map(deliver, [delivery] * threads))
            assert answers.count(True) == 1, (delivery, answers)
            assert len(delivery_rows(delivery)) == 1


def test_the_queued_job_is_attached_to_its_projects_delivery_only(
    stores: None, owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store

    first, second = new_project(), new_project()
    store = get_webhook_store()
    delivery = str(uuid4())
    store.record_delivery("github", delivery, first)
    store.record_delivery("github", delivery, second)
    job = inert_job(owner, first)
    assert store.attach_job("github", delivery, job) is True
    by_project = {r["project_id"]: r["job_id"] for r in delivery_rows(delivery)}
    assert by_project == {first: job, second: None}
    # No such job, or a delivery its project never recorded: nothing changes
    assert store.attach_job("github", delivery, uuid4()) is False
    assert store.attach_job("gitlab", delivery, job) is False


def test_a_delivery_whose_job_was_not_queued_can_be_forgotten_and_retried(
    stores: None, owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store

    project = new_project()
    store = get_webhook_store()
    delivery = str(uuid4())
    assert store.record_delivery("gitlab", delivery, project) is True
    # When queuing failed, the host's retry must be taken as new
    store.forget_delivery("gitlab", delivery, project)
    assert store.record_delivery("gitlab", delivery, project) is True
    # Once a job is attached, forgetting does nothing: the delivery was acted on
    store.attach_job("gitlab", delivery, inert_job(owner, project))
    store.forget_delivery("gitlab", delivery, project)
    assert store.record_delivery("gitlab", delivery, project) is False


def test_secrets_rotate_with_the_git_token_keys(
    set_env: Callable[..., None],
    owner: UUID,
    new_project: Callable[[], UUID],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from common.config import get_settings
    from common.git.credentials import TokenCipher, rotate_tokens, token_cipher
    from common.review.webhooks import get_webhook_store

    # Given a secret stored under key A
    set_env(SECRET_KEY=KEY_A, SECRET_KEY_PREVIOUS=None, GIT_TOKENS_KMS_KEY_ID=None)
    project = new_project()
    secret = get_webhook_store().create_or_rotate_secret(project, owner)
    # When SECRET_KEY becomes B (A kept as previous) and every stored secret is rotated
    set_env(SECRET_KEY=KEY_B, SECRET_KEY_PREVIOUS=KEY_A)
    assert get_webhook_store().secret_for(project) == secret.encode()
    result = rotate_tokens(store=get_webhook_store(), cipher=token_cipher(get_settings()))
    assert project not in result.failed and result.rotated >= 1
    # (the operator's command rotates them too, beside the Git tokens; its exit code
    # also counts other tests' tokens, sealed under keys this test does not know)
    from common.cli import main

    main(["git-credentials", "rotate"])
    out, err = capsys.readouterr()
    assert "webhook secret(s) under the current key" in out and str(project) not in err
    # Then with A dropped the secret still opens, and its row is under B
    set_env(SECRET_KEY=KEY_B, SECRET_KEY_PREVIOUS=None)
    assert get_webhook_store().secret_for(project) == secret.encode()
    row = webhook_row(project)
    kid = TokenCipher(KEY_B.encode()).key_id
    assert row is not None and kid is not None
    assert bytes(row["secret_ciphertext"]).startswith(b"f1:" + kid + b":")


def test_deleting_a_project_removes_its_secret_and_deliveries(
    stores: None, owner: UUID, new_project: Callable[[], UUID]
) -> None:
    from common.review.webhooks import get_webhook_store
    from common.stores.postgres import get_postgres

    project = new_project()
    store = get_webhook_store()
    store.create_or_rotate_secret(project, owner)
    delivery = str(uuid4())
    store.record_delivery("github", delivery, project)
    with get_postgres().connection() as conn:
        conn.execute("DELETE FROM projects WHERE id = %s", (project,))
    assert webhook_row(project) is None and delivery_rows(delivery) == []
