"""The floor of the gateway bench: the least a FastAPI route can do to forward an explain.

One async route validates the same body, builds the same prompt, sends it to the
double with the ollama client in the thread pool (as the server does: the client
is blocking) and returns the answer as JSON. No auth, rate limit, cache, history,
checks or metrics: what is left is uvicorn, FastAPI and the ollama client, the parts
the project's shape fixes. Run by bench/gateway.py in a process of its own.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio.to_thread  # noqa: E402
import ollama  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402

from common.agents import prompts  # noqa: E402


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # As the local server does (local/app.py): AnyIO's default of 40 threads would make
    # the 41st of 50 concurrent calls wait for a whole answer.
    anyio.to_thread.current_default_thread_limiter().total_tokens = 200
    yield


app = FastAPI(lifespan=lifespan)
# A client per call, the warmest first, as the server pools them (one shared client
# would queue 50 threads on its connection pool's lock). The client as shipped: the
# server's also skips cookie parsing and reuses joined URLs (~10% of its CPU).
_clients: list[ollama.Client] = []


class Body(BaseModel):
    code: str
    language: str = "python"


def _forward(body: Body) -> str:
    try:
        client = _clients.pop()  # atomic under the GIL
    except IndexError:
        client = ollama.Client(host=os.environ["OLLAMA_HOST"])
    try:
        messages = [
            m.model_dump()
            for m in prompts.render(
                "explain",
                context="",
                task="Explain this code.",
                language=body.language,
                code=body.code,
            )
        ]
        answer = client.chat(
            model="qwen2.5-coder:7b",
            messages=messages,
            stream=False,
            options={"temperature": 0, "num_ctx": 4096},
            keep_alive="5m",
        )
        return answer.message.content or ""
    finally:
        _clients.append(client)


@app.post("/api/explain")
async def explain(body: Body) -> dict[str, str]:
    return {"explanation": await run_in_threadpool(_forward, body)}
