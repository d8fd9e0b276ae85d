"""The Ollama double in a process of its own, streaming every answer at a steady pace.

Prints its URL on the first line, then serves until stdin closes. A separate
process keeps the double's threads from competing with the client under test for
one interpreter's GIL.

    _fake_ollama.py TOKENS GAP_MS [EMBED_DIM]

With ``EMBED_DIM``, ``/api/embed`` answers at once: each text's vector (of that
length) is one of a pool of unit vectors made at start, picked by the text's hash,
and already in JSON, so an answer costs a hash and a join, not the double's
per-text Gaussian draw (about 1 ms a text at 768 dims).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
from typing import Any

from _harness import FakeOllama

from tests.fakes.ollama import Script

POOL = 1024


class InstantEmbeddings(FakeOllama):
    """:class:`FakeOllama` whose ``/api/embed`` costs nothing to speak of."""

    def __init__(self, dim: int) -> None:
        super().__init__(embedding_dim=dim)
        rng = random.Random(15)
        self._pool: list[str] = []
        for _ in range(POOL):
            vec = [rng.gauss(0.0, 1.0) for _ in range(dim)]
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            self._pool.append(json.dumps([round(v / norm, 6) for v in vec], separators=(",", ":")))

    def _embed(self, h: Any, body: dict[str, Any]) -> None:
        full = self._model_or_error(h, body)
        if full is None:
            return
        raw = body.get("input", [])
        texts = [raw] if isinstance(raw, str) else list(raw)
        picks = [
            self._pool[int.from_bytes(hashlib.blake2b(t.encode(), digest_size=4).digest()) % POOL]
            for t in texts
        ]
        model = json.dumps(str(body["model"]))
        tokens = sum(len(t) // 4 for t in texts)
        data = (
            f'{{"model":{model},"embeddings":[{",".join(picks)}],"total_duration":1000000,'
            f'"load_duration":1000000,"prompt_eval_count":{tokens}}}'
        )
        h.send_bytes(200, data.encode(), h.json_content_type)


def main() -> int:
    tokens, gap_ms = int(sys.argv[1]), float(sys.argv[2])
    fake = InstantEmbeddings(int(sys.argv[3])) if len(sys.argv) > 3 else FakeOllama()
    fake.start()
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
