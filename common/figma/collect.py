"""What one node of a Figma file contributes: colors, gradients, type, shadows, spacing, radii.

Values are reduced to hashable keys as they are found, so that the same value met
on 40,000 nodes is one dictionary entry with a count, and the full file is never
kept. The shapes are those of Figma's REST API (``GET /v1/files/:key``): ``fills``
and ``strokes`` are lists of Paint, ``effects`` of Effect, a TEXT node's ``style``
is a TypeStyle, ``styles`` maps a style type to the id of a published style, and
auto layout is ``layoutMode`` with ``itemSpacing``, ``counterAxisSpacing`` and
``padding*``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Categories of values, and of the tokens made from them.
COLOR = "color"
GRADIENT = "gradient"
TYPOGRAPHY = "typography"
SHADOW = "shadow"
SPACING = "spacing"
RADIUS = "radius"

# (category, key): a value as it is counted and de-duplicated.
ValueRef = tuple[str, Any]

GRADIENT_KINDS = {
    "GRADIENT_LINEAR": "linear",
    "GRADIENT_RADIAL": "radial",
    "GRADIENT_ANGULAR": "angular",
    "GRADIENT_DIAMOND": "diamond",
}
SHADOW_TYPES = {"DROP_SHADOW": False, "INNER_SHADOW": True}
# A node's ``styles`` keys, singular and plural (the API has sent both).
STYLE_SLOTS = {
    "fill": "fill",
    "fills": "fill",
    "stroke": "stroke",
    "strokes": "stroke",
    "text": "text",
    "effect": "effect",
    "effects": "effect",
}
AUTO_LAYOUT_MODES = frozenset({"HORIZONTAL", "VERTICAL", "GRID"})
SPACING_KEYS = (
    "itemSpacing",
    "counterAxisSpacing",
    "paddingLeft",
    "paddingRight",
    "paddingTop",
    "paddingBottom",
)
# What a component remembers of its text layers for the model: a few short samples.
MAX_COMPONENT_TEXTS = 8
MAX_TEXT_CHARS = 80


def number(value: Any) -> float | int | None:
    """A finite number rounded to 2 decimals (an int when whole), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return None
    rounded = round(float(value), 2)
    return int(rounded) if rounded.is_integer() else rounded


def _channel(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0
    return int(min(1.0, max(0.0, float(value))) * 255 + 0.5)


def color_hex(color: Any, opacity: Any = 1.0) -> str | None:
    """Figma's ``{r, g, b, a}`` (0..1) times a paint's ``opacity`` as ``#rrggbb[aa]``.

    The alpha byte is written only when it is not opaque, so the common case reads
    as every CSS author writes it.
    """
    if not isinstance(color, dict):
        return None
    alpha = color.get("a", 1.0)
    if not isinstance(alpha, int | float) or isinstance(alpha, bool):
        alpha = 1.0
    if isinstance(opacity, int | float) and not isinstance(opacity, bool):
        alpha = alpha * opacity
    red, green, blue = (_channel(color.get(c)) for c in "rgb")
    a = _channel(alpha)
    text = f"#{red:02x}{green:02x}{blue:02x}"
    return text if a == 255 else f"{text}{a:02x}"


def gradient_key(paint: dict[str, Any]) -> tuple[Any, ...] | None:
    """(kind, angle in degrees or None, ((hex, position), ...)) of a gradient paint.

    The angle is CSS's (0 = to top, 90 = to right), from the first two handle
    positions in the node's normalised space: exact for squares, an approximation
    for other aspect ratios (the box's size is not part of the paint).
    """
    kind = GRADIENT_KINDS.get(str(paint.get("type")))
    stops = paint.get("gradientStops")
    if kind is None or not isinstance(stops, list) or not stops:
        return None
    opacity = paint.get("opacity", 1.0)
    parts = []
    for stop in stops:
        if not isinstance(stop, dict):
            continue
        hex_value = color_hex(stop.get("color"), opacity)
        position = number(stop.get("position"))
        if hex_value is None or position is None:
            continue
        parts.append((hex_value, round(min(1.0, max(0.0, float(position))), 4)))
    if not parts:
        return None
    angle: int | None = None
    if kind == "linear":
        angle = 180  # Figma's default handles run top to bottom
        handles = paint.get("gradientHandlePositions")
        if isinstance(handles, list) and len(handles) >= 2:
            start, end = handles[0], handles[1]
            if isinstance(start, dict) and isinstance(end, dict):
                dx = _float(end.get("x")) - _float(start.get("x"))
                dy = _float(end.get("y")) - _float(start.get("y"))
                if dx or dy:
                    angle = round(math.degrees(math.atan2(dx, -dy))) % 360
    return (kind, angle, tuple(parts))


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def paint_value(paint: Any) -> ValueRef | None:
    """A visible SOLID or gradient paint as a value; images, videos and hidden paints: None."""
    if not isinstance(paint, dict) or paint.get("visible") is False:
        return None
    kind = paint.get("type")
    if kind == "SOLID":
        hex_value = color_hex(paint.get("color"), paint.get("opacity", 1.0))
        return (COLOR, hex_value) if hex_value else None
    gradient = gradient_key(paint)
    return (GRADIENT, gradient) if gradient else None


def typography_key(style: Any) -> tuple[Any, ...] | None:
    """(family, weight, size, line height px, letter spacing px, italic, case, decoration)."""
    if not isinstance(style, dict):
        return None
    family = style.get("fontFamily")
    size = number(style.get("fontSize"))
    if not isinstance(family, str) or not family or size is None or size <= 0:
        return None
    weight = number(style.get("fontWeight"))
    line_height = number(style.get("lineHeightPx"))
    letter_spacing = number(style.get("letterSpacing")) or 0
    text_case = style.get("textCase")
    decoration = style.get("textDecoration")
    return (
        family,
        int(weight) if weight else 400,
        size,
        line_height if line_height and line_height > 0 else None,
        letter_spacing,
        bool(style.get("italic")),
        text_case if isinstance(text_case, str) and text_case != "ORIGINAL" else None,
        decoration if isinstance(decoration, str) and decoration != "NONE" else None,
    )


def shadow_key(effects: Any) -> tuple[Any, ...] | None:
    """The visible drop and inner shadows of ``effects``: ((inset, x, y, blur, spread, hex), ...).

    Blurs (LAYER_BLUR, BACKGROUND_BLUR) are not shadows and are left out.
    """
    if not isinstance(effects, list):
        return None
    shadows = []
    for effect in effects:
        if not isinstance(effect, dict) or effect.get("visible") is False:
            continue
        inset = SHADOW_TYPES.get(str(effect.get("type")))
        if inset is None:
            continue
        offset = effect.get("offset")
        if not isinstance(offset, dict):
            offset = {}
        shadows.append(
            (
                inset,
                number(offset.get("x")) or 0,
                number(offset.get("y")) or 0,
                number(effect.get("radius")) or 0,
                number(effect.get("spread")) or 0,
                color_hex(effect.get("color")) or "#000000",
            )
        )
    return tuple(shadows) if shadows else None


@dataclass
class ComponentRecord:
    """A COMPONENT or COMPONENT_SET node as found in the tree (names, props, what it uses)."""

    id: str
    name: str
    type: str
    page: str | None
    set_id: str | None = None
    definitions: dict[str, Any] = field(default_factory=dict)
    width: float | int | None = None
    height: float | int | None = None
    layout: dict[str, Any] = field(default_factory=dict)
    uses: Counter[ValueRef] = field(default_factory=Counter)
    texts: list[str] = field(default_factory=list)
    nodes: int = 0


class NodeFrame:
    """A node being read: its kept properties and where it sits in the tree.

    The walker (:mod:`.walk`) makes one per node and drops it when the node ends,
    so at any time only the open path from the root is in memory.
    """

    __slots__ = ("props", "parent", "owner", "hidden", "page", "record")

    def __init__(
        self,
        parent: NodeFrame | None,
        owner: NodeFrame | None,
        hidden: bool,
        page: str | None,
    ) -> None:
        self.props: dict[str, Any] = {}
        self.parent = parent
        # The nearest COMPONENT at or above this node: what it uses is the component's.
        self.owner = owner
        self.hidden = hidden
        self.page = page
        self.record: ComponentRecord | None = None


@dataclass
class Collected:
    """Everything the walk found, as counts of values, and the file's small maps."""

    values: dict[str, Counter[Any]] = field(
        default_factory=lambda: {
            c: Counter() for c in (COLOR, GRADIENT, TYPOGRAPHY, SHADOW, SPACING, RADIUS)
        }
    )
    # The first node id each value was found on: where to look in Figma.
    first_node: dict[ValueRef, str] = field(default_factory=dict)
    # A published style's value (from the first node that uses it) and its uses.
    style_values: dict[str, ValueRef] = field(default_factory=dict)
    style_uses: Counter[str] = field(default_factory=Counter)
    # Uses of each value on nodes bound to a style (the rest are the same value unbound).
    bound: Counter[ValueRef] = field(default_factory=Counter)
    components: list[ComponentRecord] = field(default_factory=list)
    instances: Counter[str] = field(default_factory=Counter)
    node_types: Counter[str] = field(default_factory=Counter)
    nodes: int = 0
    hidden_nodes: int = 0
    max_depth: int = 0


class Collector:
    """Receives each node as it ends (children first) and counts what it uses."""

    def __init__(self) -> None:
        self.found = Collected()

    def node(self, frame: NodeFrame, depth: int) -> None:
        found = self.found
        props = frame.props
        kind = props.get("type")
        kind = kind if isinstance(kind, str) else "UNKNOWN"
        found.nodes += 1
        found.node_types[kind] += 1
        if depth > found.max_depth:
            found.max_depth = depth
        if kind == "INSTANCE":
            component_id = props.get("componentId")
            if isinstance(component_id, str):
                found.instances[component_id] += 1
        hidden = frame.hidden or props.get("visible") is False
        used: list[ValueRef] = []
        if hidden:
            found.hidden_nodes += 1
        elif kind != "COMPONENT_SET":
            # A set's own frame is the canvas Figma draws around its variants (a dashed
            # purple stroke, radius 5, the variants' arrangement), not a design decision.
            used = self._values(props, kind, _node_id(props))
        owner = frame.owner
        if kind == "COMPONENT":
            owner = frame
        if owner is not None:
            record = _record_of(owner)
            record.nodes += 1
            record.uses.update(used)
            characters = props.get("characters")
            if (
                kind == "TEXT"
                and isinstance(characters, str)
                and characters.strip()
                and len(record.texts) < MAX_COMPONENT_TEXTS
            ):
                record.texts.append(characters.strip()[:MAX_TEXT_CHARS])
        if kind in ("COMPONENT", "COMPONENT_SET"):
            record = finish_record(frame)
            parent = frame.parent
            if kind == "COMPONENT" and parent is not None:
                if parent.props.get("type") == "COMPONENT_SET":
                    record.set_id = _node_id(parent.props)
            self.found.components.append(record)

    def _values(self, props: dict[str, Any], kind: str, node_id: str) -> list[ValueRef]:
        found = self.found
        values = found.values
        used: list[ValueRef] = []
        styles = props.get("styles")
        bound: dict[str, str] = {}
        if isinstance(styles, dict):
            for slot, style_id in styles.items():
                name = STYLE_SLOTS.get(slot)
                if name is not None and isinstance(style_id, str):
                    bound[name] = style_id
        for slot, key in (("fill", "fills"), ("stroke", "strokes")):
            paints = props.get(key)
            if not isinstance(paints, list):
                continue
            top: ValueRef | None = None
            for paint in paints:
                value = paint_value(paint)
                if value is not None:
                    used.append(value)
                    top = value  # paints are listed bottom to top
            if top is not None and slot in bound:
                self._bind(bound[slot], top)
        if kind == "TEXT":
            typography = typography_key(props.get("style"))
            if typography is not None:
                used.append((TYPOGRAPHY, typography))
                if "text" in bound:
                    self._bind(bound["text"], (TYPOGRAPHY, typography))
        shadow = shadow_key(props.get("effects"))
        if shadow is not None:
            used.append((SHADOW, shadow))
            if "effect" in bound:
                self._bind(bound["effect"], (SHADOW, shadow))
        if props.get("layoutMode") in AUTO_LAYOUT_MODES:
            spacings = {number(props.get(k)) for k in SPACING_KEYS}
            used.extend((SPACING, s) for s in spacings if s is not None and s > 0)
        radii = {number(props.get("cornerRadius"))}
        corners = props.get("rectangleCornerRadii")
        if isinstance(corners, list):
            radii.update(number(c) for c in corners)
        used.extend((RADIUS, r) for r in radii if r is not None and r > 0)
        first = found.first_node
        for ref in used:
            values[ref[0]][ref[1]] += 1
            if ref not in first:
                first[ref] = node_id
        return used

    def _bind(self, style_id: str, value: ValueRef) -> None:
        self.found.style_uses[style_id] += 1
        self.found.bound[value] += 1
        self.found.style_values.setdefault(style_id, value)


def _node_id(props: dict[str, Any]) -> str:
    node_id = props.get("id")
    return node_id if isinstance(node_id, str) else ""


def _record_of(frame: NodeFrame) -> ComponentRecord:
    record = frame.record
    if record is None:
        props = frame.props
        name = props.get("name")
        record = frame.record = ComponentRecord(
            id=_node_id(props),
            name=name if isinstance(name, str) else "",
            type=str(props.get("type") or "COMPONENT"),
            page=frame.page,
        )
    if not record.id:
        # The owner's record may have been made before its id was read (a child came
        # first in the stream): fill in what is known by now.
        props = frame.props
        record.id = _node_id(props)
        name = props.get("name")
        record.name = name if isinstance(name, str) else record.name
        record.type = str(props.get("type") or record.type)
    return record


def finish_record(frame: NodeFrame) -> ComponentRecord:
    """Copy a component node's own properties into its record (called as it ends)."""
    record = _record_of(frame)
    props = frame.props
    record.id = _node_id(props) or record.id
    name = props.get("name")
    record.name = name if isinstance(name, str) else record.name
    record.type = str(props.get("type") or record.type)
    definitions = props.get("componentPropertyDefinitions")
    if isinstance(definitions, dict):
        record.definitions = definitions
    box = props.get("absoluteBoundingBox")
    if isinstance(box, dict):
        record.width, record.height = number(box.get("width")), number(box.get("height"))
    if props.get("layoutMode") in AUTO_LAYOUT_MODES:
        record.layout = {
            "direction": str(props["layoutMode"]).lower(),
            **{k: number(props.get(k)) for k in SPACING_KEYS if number(props.get(k))},
        }
    return record
