"""Input, output and stored models of /api/figma/analyze."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from common.models.base import Usage

FILE_KEY_PATTERN = r"^[A-Za-z0-9]{1,128}$"
MAX_GENERATED = 10


# -- input ------------------------------------------------------------------------


class ComponentsRequest(BaseModel):
    """Which components the model writes, and how."""

    model_config = ConfigDict(extra="forbid")

    framework: Literal["react", "html"] = Field(
        "react", description="`react`: a TSX function component; `html`: markup and a <style>."
    )
    styling: Literal["css", "tailwind"] = Field(
        "css", description="`css`: the tokens' CSS variables; `tailwind`: the theme's classes."
    )
    names: list[str] = Field(
        [],
        max_length=50,
        description="Component or component set names; empty: the most used ones.",
    )
    max: int = Field(3, ge=1, le=MAX_GENERATED, description="At most this many components.")


class FigmaOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    run_async: bool = Field(
        False, alias="async", description="Answer 202 with a job instead of waiting."
    )
    components: ComponentsRequest | None = Field(
        None, description="Have the model write components that use the tokens."
    )
    max_attempts: int | None = Field(
        None, ge=1, le=10, description="Model attempts per component (default MAX_ATTEMPTS)."
    )


class FigmaAnalyzeInput(BaseModel):
    """The body (documentation only: the endpoint reads the body as a stream).

    Give one of: the file JSON of ``GET /v1/files/:key`` itself (its top-level
    ``document``, ``styles``, ``components``, ``componentSets``...), that JSON as
    ``file``, or ``file_key`` and ``token`` to fetch it from Figma. ``options`` may
    go with any of them.
    """

    model_config = ConfigDict(extra="allow")

    file: dict[str, Any] | None = Field(None, description="The JSON of GET /v1/files/:key.")
    file_key: str | None = Field(
        None, pattern=FILE_KEY_PATTERN, description="Fetch this file from Figma's API."
    )
    token: str | None = Field(
        None,
        description="A Figma access token for `file_key`: used for that one request, never"
        " stored or logged.",
    )
    options: FigmaOptions = Field(default_factory=FigmaOptions)


class FigmaJobInput(BaseModel):
    """What a "figma" job carries: the stored document's id, never the document or a token."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    document_id: str = Field(max_length=64)
    options: FigmaOptions = Field(default_factory=FigmaOptions)


# -- the inventory ----------------------------------------------------------------


class ComponentProperty(BaseModel):
    name: str = Field(description="As shown in Figma (without the `#id` suffix).")
    key: str = Field(description="The property's key in componentPropertyDefinitions.")
    type: str = Field(description="VARIANT, BOOLEAN, TEXT or INSTANCE_SWAP.")
    default: Any = None
    options: list[str] | None = Field(None, description="A variant property's values.")


class Variant(BaseModel):
    id: str
    name: str
    values: dict[str, str] = Field(description='"Size=Large, State=Hover" as a mapping.')
    instances: int = 0


class ComponentEntry(BaseModel):
    """A component set (with variants) or a component on its own."""

    id: str
    key: str | None = None
    name: str
    kind: Literal["set", "component"]
    description: str = ""
    page: str | None = None
    remote: bool = Field(False, description="From a library: used here, defined elsewhere.")
    properties: list[ComponentProperty] = []
    variants: list[Variant] = []
    instances: int = Field(0, description="INSTANCE nodes of it (of any variant) in the file.")
    width: float | None = None
    height: float | None = None
    layout: dict[str, Any] = Field({}, description="Auto layout: direction, gap and padding.")
    tokens: list[str] = Field([], description="Tokens its layers use, most used first.")
    texts: list[str] = Field([], description="Samples of its text layers.")


class InventoryCounts(BaseModel):
    sets: int
    variants: int
    components: int = Field(description="Components outside any set.")
    remote: int
    instances: int
    listed_limit_reached: bool = False


class Inventory(BaseModel):
    components: list[ComponentEntry] = Field(description="Sets and components, most used first.")
    counts: InventoryCounts


# -- the analysis (deterministic) ------------------------------------------------


class StoredDocument(BaseModel):
    id: str = Field(description="The figma_documents id.")
    source: Literal["upload", "figma"]
    file_key: str | None = None
    name: str | None = None
    last_modified: str | None = None
    version: str | None = None
    bytes: int
    gridfs_id: str = Field(description='The raw JSON in GridFS (bucket "figma").')
    root: str = Field("", description='Where the file sits in the stored JSON: "" or "file".')


class AnalysisStats(BaseModel):
    nodes: int
    hidden_nodes: int
    max_depth: int
    node_types: dict[str, int]
    tokens: dict[str, dict[str, int]] = Field(
        description="Per category: values, uses, styles, derived, merged, same_value_styles,"
        " dropped."
    )
    token_count: int
    unused_styles: list[dict[str, str]] = Field(
        description="Published styles no node in the file uses: their values are not in the file."
    )
    parser: str = Field(description="ijson's backend (yajl2_c is the C one).")
    parse_ms: int


class FigmaAnalysis(BaseModel):
    """Everything computed from the file without a model."""

    tokens: dict[str, Any] = Field(description="W3C Design Tokens (DTCG draft) document.")
    css: str = Field(description="The tokens as CSS custom properties in :root.")
    tailwind: dict[str, Any] = Field(description="A tailwind.config.js object (theme.extend).")
    tailwind_config: str = Field(description="The same as the text of tailwind.config.js.")
    inventory: Inventory
    naming: dict[str, str] = Field(description="How tokens without a style name were named.")
    stats: AnalysisStats


# -- model-written components ------------------------------------------------------


class AttemptSummary(BaseModel):
    number: int
    ok: bool
    problems: list[str]


class GeneratedComponent(BaseModel):
    name: str
    component_id: str
    filename: str
    language: str
    code: str
    tokens_used: list[str] = Field(description="CSS variables the code uses.")
    checks: list[dict[str, Any]]
    attempts: int


class RejectedComponent(BaseModel):
    name: str
    component_id: str
    attempts: list[AttemptSummary] = Field(description="Why each answer was refused.")


class Generated(BaseModel):
    framework: str
    styling: str
    components: list[GeneratedComponent]
    rejected: list[RejectedComponent] = Field(
        description="Never passed its checks: not returned as code."
    )
    not_found: list[str] = Field([], description="Asked-for names with no such component.")
    model: str
    usage: Usage
    error: dict[str, str] | None = Field(
        None, description="The model server failed: what is listed is what was done before."
    )


class FigmaAnalyzeOutput(FigmaAnalysis):
    report_id: str
    report_url: str
    kind: Literal["figma"] = "figma"
    created_at: datetime
    document: StoredDocument
    generated: Generated | None = None
    duration_ms: int


def request_body_schema() -> dict[str, Any]:
    """:class:`FigmaAnalyzeInput`'s JSON schema with its ``$defs`` inlined.

    The route reads its body as a stream, so FastAPI never sees the model; the schema
    goes into ``openapi_extra``, where a ``$ref`` into ``$defs`` would point nowhere.
    """
    schema = FigmaAnalyzeInput.model_json_schema()
    defs = schema.pop("$defs", {})
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.pop("$ref", None)
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node.update(defs[ref.removeprefix("#/$defs/")])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema
