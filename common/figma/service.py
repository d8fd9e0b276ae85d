"""/api/figma/analyze: receive (or fetch) a Figma file, analyse it, write components, report.

Two steps, so that a job never carries a document or a token:

1. :func:`receive_figma` (in the request): the body is read as a stream; each
   slice is parsed and written to GridFS from the same bytes (or, for
   ``{file_key, token}``, Figma's answer is); the tokens, CSS, Tailwind theme and
   inventory are computed from what the walk counted, and a ``figma_documents``
   entry is stored (with the analysis itself when a job will finish it).
2. :func:`finish_figma` (in the request, or in the "figma" job): the model's
   components when asked for, the report, the history entry.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import ValidationError

from common.errors import AppError, InvalidInput
from common.figma.models import (
    AnalysisStats,
    FigmaAnalysis,
    FigmaAnalyzeOutput,
    FigmaJobInput,
    FigmaOptions,
    StoredDocument,
)
from common.logs import get_logger

if TYPE_CHECKING:
    from common.figma.collect import Collected
    from common.figma.intake import Intake
    from common.jobs import JobContext
    from common.models.base import ModelClient

log = get_logger("figma")

# Bytes handed to the parsing thread at a time: big enough that the hops to the
# thread pool cost nothing, small enough that memory stays flat.
FEED_BYTES = 1024 * 1024
NODE_TYPES_LISTED = 30

Progress = Callable[[str, float, str], None]


@dataclass
class Received:
    """A stored document and its analysis, ready for :func:`finish_figma` (or a job)."""

    document: StoredDocument
    analysis: FigmaAnalysis
    options: FigmaOptions
    started: float

    def job_input(self) -> FigmaJobInput:
        return FigmaJobInput(document_id=self.document.id, options=self.options)


# -- step 1: the document -------------------------------------------------------


async def receive_figma(chunks: AsyncIterator[bytes], *, owner_key_id: UUID) -> Received:
    """Read the body as it arrives and do everything that needs no model.

    Parameters
    ----------
    chunks:
        The request body (``Request.stream()``): the file, ``{"file": ...}``, or
        ``{"file_key", "token"}``, with optional ``options``.

    Raises
    ------
    MalformedJson
        The body is not JSON.
    InvalidInput
        Not a Figma file, a file and a token together, bad ``options``.
    PayloadTooLarge
        Over FIGMA_MAX_BODY_BYTES (raised by the body-limit middleware as it streams).
    FigmaForbidden, FigmaNotFound, FigmaRateLimited, FigmaUnavailable, FigmaTimeout
        Fetching ``file_key`` failed.
    StoreUnavailable
        MongoDB did not take the document.
    """
    from common.figma.intake import Intake
    from common.figma.store import gridfs_sink, new_document_id
    from common.web.deps import run_blocking

    started = time.monotonic()
    document_id = new_document_id()
    intake = Intake(
        open_sink=lambda: gridfs_sink(filename=f"{document_id}.json", key_id=owner_key_id)
    )
    pending = bytearray()
    try:
        async for chunk in chunks:
            pending += chunk
            if len(pending) >= FEED_BYTES:
                data = bytes(pending)
                pending.clear()
                await run_blocking(intake.feed, data)
        if pending:
            data = bytes(pending)
            pending.clear()
            await run_blocking(intake.feed, data)
        return await run_blocking(
            complete_intake,
            intake,
            document_id=document_id,
            owner_key_id=owner_key_id,
            started=started,
        )
    except BaseException:
        import anyio

        # Shielded: when the client went away the request is being cancelled, and the
        # partial upload must still be removed.
        with anyio.CancelScope(shield=True):
            await run_blocking(intake.abort)
        raise


def complete_intake(
    intake: Intake, *, document_id: str, owner_key_id: UUID, started: float
) -> Received:
    """The body is in: fetch the file if it named one, analyse, store the entry.

    Anything stored for a request that fails here is removed again.
    """
    from common.figma.store import delete_gridfs

    intake.finish()
    source = intake
    try:
        options = parse_options(intake.options)
        if intake.form == "key":
            source = fetch_into_intake(intake, document_id=document_id, owner_key_id=owner_key_id)
        analysis = analyse(source)
        walker = source.walker
        meta = walker.meta
        request = intake.walker.request
        file_key = request.get("file_key")
        document = StoredDocument(
            id=document_id,
            source="figma" if source is not intake else "upload",
            file_key=file_key if isinstance(file_key, str) else None,
            name=_text(meta.get("name")),
            last_modified=_text(meta.get("lastModified")),
            version=_text(meta.get("version")),
            bytes=source.size,
            gridfs_id=str(source.gridfs_id),
            root="file" if source is intake and "file" in walker.top_keys else "",
        )
        save_entry(document, analysis, options, owner_key_id=owner_key_id)
    except BaseException:
        # The bytes were stored before the request could fail (bad options at the end
        # of the body, a failed fetch or write): remove them again.
        for stored in {intake.gridfs_id, source.gridfs_id}:
            if stored is not None:
                delete_gridfs(stored)
        raise
    log.info(
        "figma document received",
        extra={
            "document_id": document_id,
            "source": document.source,
            "bytes": document.bytes,
            "nodes": analysis.stats.nodes,
            "tokens": analysis.stats.token_count,
            "parse_ms": analysis.stats.parse_ms,
        },
    )
    return Received(document=document, analysis=analysis, options=options, started=started)


def fetch_into_intake(intake: Intake, *, document_id: str, owner_key_id: UUID) -> Intake:
    """The file named by the body, from Figma, through a second intake to GridFS.

    The token is taken out of the body's intake, sent once, and dropped.
    """
    from common.figma.fetch import fetch_file
    from common.figma.intake import Intake, as_figma_error
    from common.figma.models import FILE_KEY_PATTERN
    from common.figma.store import gridfs_sink

    file_key, token = intake.take_key_and_token()
    if not re.fullmatch(FILE_KEY_PATTERN, file_key):
        raise InvalidInput(
            "`file_key` is a Figma file key: letters and digits, as in figma.com/file/<key>/",
            details={"fields": [{"path": "body.file_key", "type": "string_pattern_mismatch"}]},
        )
    fetched = Intake(
        open_sink=lambda: gridfs_sink(filename=f"{document_id}.json", key_id=owner_key_id),
        request_body=False,
    )
    try:
        try:
            fetch_file(file_key, token, on_bytes=fetched.feed)
        finally:
            del token
        fetched.finish()
    except AppError as exc:
        fetched.abort()
        raise as_figma_error(exc) from None
    except BaseException:
        fetched.abort()
        raise
    return fetched


def parse_options(raw: Any) -> FigmaOptions:
    """``options`` of the body, validated; errors name the field, never its value.

    Raises
    ------
    InvalidInput
        With ``fields`` as every other 422 has them.
    """
    try:
        return FigmaOptions.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        fields = [
            {
                "path": ".".join(["body", "options", *(str(p) for p in err["loc"])]),
                "type": err["type"],
                "message": err["msg"],
            }
            for err in exc.errors(include_input=False, include_url=False)
        ]
        summary = "; ".join(f"{f['path']}: {f['message']}" for f in fields[:5])
        raise InvalidInput(
            f"the request does not match the schema: {summary}", details={"fields": fields}
        ) from None


def analyse(intake: Intake) -> FigmaAnalysis:
    """Tokens, CSS, Tailwind theme and inventory from what the walk of ``intake`` found."""
    return build_analysis(
        intake.found,
        intake.walker.meta,
        parser=intake.walker.backend,
        parse_ms=round(intake.parse_s * 1000),
    )


def build_analysis(
    found: Collected, meta: dict[str, Any], *, parser: str, parse_ms: int
) -> FigmaAnalysis:
    """Everything deterministic, from the counted values and the file's top-level maps."""
    from common.figma.inventory import build_inventory
    from common.figma.render import css_variables, tailwind_config_js, tailwind_theme
    from common.figma.tokens import COLLISIONS, RULES, build_tokens

    styles = meta.get("styles")
    tokens = build_tokens(found, styles if isinstance(styles, dict) else {})
    inventory = build_inventory(found, meta, tokens)
    theme = tailwind_theme(tokens)
    return FigmaAnalysis(
        tokens=tokens.tree(),
        css=css_variables(tokens),
        tailwind=theme,
        tailwind_config=tailwind_config_js(theme),
        inventory=inventory,
        naming={
            "styles": "a published style names its token: 'Brand/Primary 500' →"
            " color.brand.primary-500",
            **RULES,
            "collisions": COLLISIONS,
        },
        stats=AnalysisStats(
            nodes=found.nodes,
            hidden_nodes=found.hidden_nodes,
            max_depth=found.max_depth,
            node_types=dict(found.node_types.most_common(NODE_TYPES_LISTED)),
            tokens={c: s.as_dict() for c, s in tokens.stats.items()},
            token_count=len(tokens.tokens),
            unused_styles=tokens.unused_styles,
            parser=parser,
            parse_ms=parse_ms,
        ),
    )


def save_entry(
    document: StoredDocument,
    analysis: FigmaAnalysis,
    options: FigmaOptions,
    *,
    owner_key_id: UUID,
) -> None:
    """The ``figma_documents`` entry; with the analysis when a job will finish it."""
    from common.figma.store import save_document

    entry: dict[str, Any] = {
        **document.model_dump(),
        "nodes": analysis.stats.nodes,
        "token_counts": {c: s["styles"] + s["derived"] for c, s in analysis.stats.tokens.items()},
        "components": analysis.inventory.counts.model_dump(),
    }
    if options.run_async:
        entry["analysis"] = analysis.model_dump(mode="json")
    save_document(entry, key_id=owner_key_id)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# -- step 2: components and the report ---------------------------------------------


def finish_figma(
    received: Received,
    *,
    owner_key_id: UUID,
    model: ModelClient | None,
    max_attempts: int,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> FigmaAnalyzeOutput:
    """The model's components (when asked for), then the stored report; the answer.

    Parameters
    ----------
    model:
        Needed only when ``options.components`` asks for code.
    max_attempts:
        Model attempts per component when ``options.max_attempts`` does not say.

    Raises
    ------
    StoreUnavailable
        MongoDB did not take the report.
    """
    from common.actions.base import record_action
    from common.reports import new_report_id, report_url, save_report

    step = progress or (lambda _step, _percent, _message: None)
    options = received.options
    generated = None
    if options.components is not None and model is not None:
        from common.figma.codegen import generate_components

        step("generate", 40, "asking the model for components")
        generated = generate_components(
            received.analysis,
            options.components,
            model=model,
            max_attempts=options.max_attempts or max_attempts,
            progress=progress,
            checkpoint=checkpoint,
        )
    if checkpoint is not None:
        checkpoint()
    step("store", 95, "storing the report")
    report_id = new_report_id()
    output = FigmaAnalyzeOutput(
        **received.analysis.model_dump(),
        report_id=report_id,
        report_url=report_url(report_id),
        created_at=datetime.now(UTC),
        document=received.document,
        generated=generated,
        duration_ms=round((time.monotonic() - received.started) * 1000),
    )
    job_input = received.job_input()
    body = output.model_dump(mode="json")
    save_report("figma", key_id=owner_key_id, body=body, report_id=report_id)
    stats = received.analysis.stats
    record_action(
        "figma",
        job_input,
        {
            "kind": "result",
            "key_id": str(owner_key_id),
            "ok": generated is None or (not generated.rejected and generated.error is None),
            "report_id": report_id,
            "document_id": received.document.id,
            "result": {
                "bytes": received.document.bytes,
                "nodes": stats.nodes,
                "tokens": stats.token_count,
                "components": received.analysis.inventory.counts.model_dump(),
                "generated": len(generated.components) if generated else 0,
                "rejected": len(generated.rejected) if generated else 0,
            },
        },
    )
    step("done", 100, f"report {report_id}")
    return output


def run_job(input: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """The "figma" job: the stored analysis of ``document_id``, finished as a request would be."""
    from common.config import get_settings
    from common.figma.store import load_document
    from common.models import get_model_client

    request = FigmaJobInput.model_validate(input)
    if ctx.key_id is None:
        raise InvalidInput("a Figma job needs the key that asked for it (documents are per key)")
    ctx.progress("load", 5, "reading the stored analysis")
    entry = load_document(request.document_id, key_id=ctx.key_id)
    if not isinstance(entry.get("analysis"), dict):
        raise InvalidInput(f"Figma document {request.document_id} was stored without a job")
    document = StoredDocument.model_validate(
        {**{k: v for k, v in entry.items() if k in StoredDocument.model_fields}, "id": entry["_id"]}
    )
    received = Received(
        document=document,
        analysis=FigmaAnalysis.model_validate(entry["analysis"]),
        options=request.options,
        started=time.monotonic(),
    )
    output = finish_figma(
        received,
        owner_key_id=ctx.key_id,
        model=get_model_client() if request.options.components is not None else None,
        max_attempts=get_settings().MAX_ATTEMPTS,
        progress=ctx.progress,
        checkpoint=ctx.raise_if_cancelled,
    )
    return output.model_dump(mode="json")
