"""``python -m local``: check the configuration, then serve on HOST:PORT."""

from __future__ import annotations

import sys


def main() -> int:
    from common.config import get_settings
    from common.errors import ConfigError

    try:
        settings = get_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from common.logs import set_level

    set_level(settings.LOG_LEVEL)
    uvicorn.run(
        "local.app:app",
        host=settings.HOST,
        port=settings.PORT,
        access_log=False,  # our middleware logs each request, scrubbed
        log_level=settings.LOG_LEVEL.lower(),
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
