"""``python -m common.cli``: manage API keys, apply migrations, load the security
scan's advisory database and re-encrypt stored Git tokens after a key rotation, from
a shell.

With ``DATABASE_URL`` unset it uses the embedded PostgreSQL under ``DATA_DIR``,
the same one ``make run`` uses: started for the command if the server is not up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from common.auth import create_key, list_keys, revoke_key
from common.config import get_settings
from common.errors import AppError, ConfigError
from common.logs import logger
from common.stores import reset_stores
from common.stores.postgres import PostgresStore, get_postgres


@contextmanager
def _postgres() -> Iterator[PostgresStore]:
    settings = get_settings()
    embedded = None
    if not settings.DATABASE_URL:
        # A running local server's stores first: its PostgreSQL, and its Redis, where a
        # revoke tells the server to stop trusting the key it remembers.
        from common.worker import use_local_store_urls

        if use_local_store_urls() is None:
            settings = get_settings()
    if not settings.DATABASE_URL:
        from common.stores.embedded import start_embedded

        embedded = start_embedded(settings, only=("postgres",))
        os.environ.update(embedded.urls)
        reset_stores()
    try:
        yield get_postgres()
    finally:
        reset_stores()
        if embedded is not None:
            embedded.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m common.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    create = key_commands.add_parser("create", help="create a key; it is printed once")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--user", default="local", help="owner (created if new)")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = key_commands.add_parser("list", help="list keys (never the secret part)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = key_commands.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix", help="the 8 characters after 'ao_'")
    commands.add_parser("migrate", help="apply database migrations")
    advisories = commands.add_parser(
        "advisories", help="the offline advisory database of the security scan"
    )
    advisory_commands = advisories.add_subparsers(dest="action", required=True)
    load = advisory_commands.add_parser(
        "load",
        help="load advisories: an OSV export (zip, folder or JSON file), 'safety-db'"
        " (the installed safety_db package) or 'snapshot' (the one shipped here)",
    )
    load.add_argument("source", help="PATH | safety-db | snapshot")
    advisory_commands.add_parser("count", help="how many advisories are loaded")
    credentials = commands.add_parser("git-credentials", help="the stored Git tokens")
    credential_commands = credentials.add_subparsers(dest="action", required=True)
    credential_commands.add_parser(
        "rotate",
        help="re-encrypt every stored Git token under the current SECRET_KEY (or KMS key);"
        " old keys must still be listed in SECRET_KEY_PREVIOUS while it runs",
    )
    return parser


def _rotate_git_tokens(store: PostgresStore) -> int:
    from common.git.credentials import PostgresGitCredentialStore, rotate_tokens, token_cipher
    from common.review.webhooks import PostgresWebhookStore

    cipher = token_cipher(get_settings())
    failed = 0
    # Webhook secrets are sealed with the same key as Git tokens: they rotate together.
    for what, sealed in (
        ("Git token", PostgresGitCredentialStore(store)),
        ("webhook secret", PostgresWebhookStore(store, cipher=cipher)),
    ):
        result = rotate_tokens(store=sealed, cipher=cipher)
        print(
            f"re-encrypted {result.rotated} {what}(s) under the current key"
            f" ({result.changed_meanwhile} replaced by their owner meanwhile)"
        )
        if result.failed:
            # Ids only: never a secret. Dropping the old keys now would lose these for good.
            print(
                f"error: {len(result.failed)} {what}(s) open with no configured key; keep the"
                " old keys in SECRET_KEY_PREVIOUS: " + ", ".join(str(i) for i in result.failed),
                file=sys.stderr,
            )
            failed += len(result.failed)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # stdout is for what the command prints (a key can be captured with $(...)).
    level = logger.log_level
    logger.setLevel("WARNING")
    try:
        with _postgres() as store:
            if args.command == "migrate":
                applied = store.migrate()
                print("applied: " + (", ".join(applied) or "nothing, up to date"))
            elif args.command == "git-credentials":
                return _rotate_git_tokens(store)
            elif args.command == "advisories":
                from common.security.advisories import PostgresAdvisoryStore, load_source

                advisory_store = PostgresAdvisoryStore(store)
                if args.action == "load":
                    try:
                        loaded = load_source(args.source, advisory_store)
                    except (FileNotFoundError, ValueError) as exc:
                        print(f"error: cannot load {args.source}: {exc}", file=sys.stderr)
                        return 1
                    print(
                        f"loaded {loaded} advisories from {args.source};"
                        f" {advisory_store.count()} in the database"
                    )
                else:
                    print(advisory_store.count())
            elif args.action == "create":
                created = create_key(store=store, name=args.name, user=args.user)
                if args.json:
                    print(created.model_dump_json())
                else:
                    print(created.key)
                    print(
                        f"created key {created.prefix} ({created.name}) for {created.user};"
                        " it is shown only this once",
                        file=sys.stderr,
                    )
            elif args.action == "list":
                keys = list_keys(store=store)
                if args.json:
                    print(json.dumps([k.model_dump(mode="json") for k in keys]))
                else:
                    print(f"{'PREFIX':10} {'NAME':24} {'USER':12} {'CREATED':20} STATUS")
                    for k in keys:
                        status = (
                            f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
                        )
                        print(
                            f"{k.prefix:10} {k.name[:24]:24} {k.user[:12]:12}"
                            f" {k.created_at:%Y-%m-%d %H:%M:%S}  {status}"
                        )
            elif args.action == "revoke":
                when = revoke_key(store=store, prefix=args.prefix)
                print(f"revoked {args.prefix} at {when:%Y-%m-%d %H:%M:%S %Z}")
    except (ConfigError, AppError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, AppError) else 2
    finally:
        logger.setLevel(level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
