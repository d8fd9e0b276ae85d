"""The Ollama double in a process of its own, streaming every answer at a steady pace.

Prints its URL on the first line, then serves until stdin closes. A separate
process keeps the double's threads from competing with the client under test for
one interpreter's GIL.
"""

from __future__ import annotations

import sys

from _harness import FakeOllama

from tests.fakes.ollama import Script


def main() -> int:
    tokens, gap_ms = int(sys.argv[1]), float(sys.argv[2])
    fake = FakeOllama().start()
    fake.default_script = Script(
        pieces=[f"word{i} " for i in range(tokens)],
        delay_between_s=gap_ms / 1000,
        prompt_eval_count=40,
        eval_count=tokens,
    )
    print(fake.url, flush=True)
    sys.stdin.read()
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
