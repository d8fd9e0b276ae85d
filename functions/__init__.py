"""One folder per endpoint. Each ``handler.py`` exposes ``router`` (the local server
mounts it) and ``handler(event, context)`` (the Lambda entry point)."""
