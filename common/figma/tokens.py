"""Counted values to named, de-duplicated design tokens in the W3C DTCG format.

The format is the Design Tokens Community Group's draft as tools read it today
(Style Dictionary 4, Tokens Studio): ``$value``/``$type``/``$description``/
``$extensions``; colors as hex strings (``#rrggbb``, or ``#rrggbbaa`` when not
opaque); dimensions as ``"16px"`` strings (not the 2025.10 ``{value, unit}``
objects); ``typography`` and ``shadow`` composites, a list of shadows for a
stacked effect; ``gradient`` as a list of ``{color, position}``.

Naming, in this order:

1. A published style names its token: ``"Brand/Primary 500"`` becomes
   ``color.brand.primary-500`` (each ``/`` a group, each part lower-cased with
   runs of other characters turned into ``-``; a first part that repeats the
   category, as in ``"Colors/Red"``, is dropped). A FILL style with a gradient
   goes under ``gradient``, TEXT under ``typography``, EFFECT under ``shadow``.
2. Any other value gets a name by rule (:data:`RULES`), most used first, so the
   most used value of a clash gets the bare name and the next ``-2``, ``-3``.

De-duplication: values are compared exactly (after rounding colors to 8 bits and
sizes to 0.01 px). A value that a style token has is that token (the style wins
and the node's use is counted under it); equal values found on many nodes are one
token. Two published styles with the same value stay two tokens: someone named
both. :class:`CategoryStats` says how many of each happened.
"""

from __future__ import annotations

import colorsys
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from common.figma.collect import (
    COLOR,
    GRADIENT,
    RADIUS,
    SHADOW,
    SPACING,
    TYPOGRAPHY,
    Collected,
    ValueRef,
)

FONT_FAMILY = "font-family"
CATEGORIES = (COLOR, GRADIENT, TYPOGRAPHY, FONT_FAMILY, SHADOW, SPACING, RADIUS)
DTCG_TYPES = {
    COLOR: "color",
    GRADIENT: "gradient",
    TYPOGRAPHY: "typography",
    FONT_FAMILY: "fontFamily",
    SHADOW: "shadow",
    SPACING: "dimension",
    RADIUS: "dimension",
}
# Rule-named tokens kept per category, most used first; the rest are counted as dropped.
MAX_DERIVED = {COLOR: 256, GRADIENT: 64, TYPOGRAPHY: 128, SHADOW: 64, SPACING: 64, RADIUS: 32}
# Style names whose first part only repeats the category.
_CATEGORY_WORDS = {
    COLOR: {"color", "colors", "colour", "colours"},
    GRADIENT: {"gradient", "gradients", "color", "colors"},
    TYPOGRAPHY: {"typography", "type", "text", "font", "fonts"},
    SHADOW: {"shadow", "shadows", "effect", "effects", "elevation"},
}
STYLE_CATEGORIES = {"FILL": (COLOR, GRADIENT), "TEXT": (TYPOGRAPHY,), "EFFECT": (SHADOW,)}

RULES = {
    COLOR: (
        "color.<hue>-<step>: hue by HSL angle (red <15°, orange <40°, yellow <65°, lime <90°,"
        " green <150°, teal <175°, cyan <200°, blue <240°, indigo <260°, violet <280°,"
        " purple <300°, fuchsia <325°, pink <345°, red again), gray below 12% saturation;"
        " step = round((1 - lightness) × 10) × 100, 50 for the lightest and 950 for the"
        " darkest; white and black at the ends; -a<alpha %> when not opaque"
    ),
    GRADIENT: "gradient.<linear|radial|angular|diamond>-<n>, n by uses",
    TYPOGRAPHY: "typography.<family>-<size px>-<weight>[-italic][-<text case>]",
    FONT_FAMILY: "font-family.<family>",
    SHADOW: "shadow.<drop|inner>-<n>, n by elevation (blur, then y offset), smallest first",
    SPACING: (
        "spacing.<px ÷ 4> on Tailwind's spacing scale (spacing.4 = 16px, class p-4);"
        " a fraction's point is written _ (spacing.0_5 = 2px)"
    ),
    RADIUS: "radius.<px> (radius.8 = 8px); a fraction's point is written _",
}
COLLISIONS = "a name already taken gets -2, -3, ...; the most used value keeps the bare name"

# Hue buckets: (upper bound in degrees, name).
_HUES = (
    (15, "red"),
    (40, "orange"),
    (65, "yellow"),
    (90, "lime"),
    (150, "green"),
    (175, "teal"),
    (200, "cyan"),
    (240, "blue"),
    (260, "indigo"),
    (280, "violet"),
    (300, "purple"),
    (325, "fuchsia"),
    (345, "pink"),
    (361, "red"),
)
# Suffixes of the extra CSS variables a typography token becomes.
TYPOGRAPHY_PARTS = ("font-family", "font-size", "font-weight", "line-height", "letter-spacing")


@dataclass
class Token:
    path: tuple[str, ...]
    category: str
    value: Any
    source: str  # "style" or "rule"
    uses: int = 0
    ref: ValueRef | None = None
    description: str = ""
    style: dict[str, str] | None = None
    node: str | None = None
    figma: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def css_var(self) -> str:
        return "--" + "-".join(self.path)

    def dtcg(self) -> dict[str, Any]:
        token: dict[str, Any] = {"$type": DTCG_TYPES[self.category], "$value": self.value}
        if self.description:
            token["$description"] = self.description
        extension: dict[str, Any] = {"source": self.source, "uses": self.uses}
        if self.style:
            extension["style"] = self.style
        if self.node:
            extension["node"] = self.node
        extension.update(self.figma)
        token["$extensions"] = {"com.figma": extension}
        return token


@dataclass
class CategoryStats:
    values: int = 0  # distinct values found on nodes
    uses: int = 0  # times they were used
    styles: int = 0  # tokens named from a published style
    derived: int = 0  # tokens named by rule
    merged: int = 0  # style values also found unbound on nodes (collapsed into the style)
    same_value_styles: int = 0  # style tokens whose value an earlier style token has
    dropped: int = 0  # rule-named values past MAX_DERIVED

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class TokenSet:
    tokens: list[Token]
    by_ref: dict[ValueRef, Token]
    stats: dict[str, CategoryStats]
    unused_styles: list[dict[str, str]]

    def tree(self) -> dict[str, Any]:
        """The DTCG document: groups nested by path."""
        root: dict[str, Any] = {}
        for token in self.tokens:
            group = root
            for part in token.path[:-1]:
                group = group.setdefault(part, {})
            group[token.path[-1]] = token.dtcg()
        return root

    def name_of(self, ref: ValueRef) -> str | None:
        token = self.by_ref.get(ref)
        return token.name if token else None


class Names:
    """Token paths already given out, checked as DTCG paths and as CSS variable names."""

    def __init__(self) -> None:
        self._tokens: set[tuple[str, ...]] = set()
        self._groups: set[tuple[str, ...]] = set()
        self._flat: set[str] = set()

    def _free(self, path: tuple[str, ...], extra: tuple[str, ...]) -> bool:
        if path in self._tokens or path in self._groups:
            return False
        if any(path[:i] in self._tokens for i in range(1, len(path))):
            return False
        flat = "-".join(path)
        return all(f not in self._flat for f in (flat, *(f"{flat}-{e}" for e in extra)))

    def claim(self, path: tuple[str, ...], extra: tuple[str, ...] = ()) -> tuple[str, ...]:
        """``path``, or ``path`` with ``-2``, ``-3``... on its last part, whichever is free.

        ``extra``: suffixes of further CSS variables the token becomes (typography).
        A path under an existing token (``color.brand`` then ``color.brand.dark``) is
        joined beside it (``color.brand-dark``): DTCG has no token that is a group.
        """
        for i in range(2, len(path)):
            if path[:i] in self._tokens:
                path = (*path[: i - 1], "-".join(path[i - 1 :]))
                break
        candidate, n = path, 1
        while not self._free(candidate, extra):
            n += 1
            candidate = (*path[:-1], f"{path[-1]}-{n}")
        self._tokens.add(candidate)
        self._groups.update(candidate[:i] for i in range(1, len(candidate)))
        flat = "-".join(candidate)
        self._flat.add(flat)
        self._flat.update(f"{flat}-{e}" for e in extra)
        return candidate


_NOT_WORD = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """``"Primary 500"`` → ``primary-500``; ``"Café/Crème"`` → ``cafe-creme``."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return _NOT_WORD.sub("-", text).strip("-")


def style_path(category: str, name: str) -> tuple[str, ...]:
    parts = [slug(part) for part in name.split("/")]
    parts = [p for p in parts if p]
    if parts and parts[0] in _CATEGORY_WORDS.get(category, set()):
        parts = parts[1:]
    return (category, *(parts or ["style"]))


def number_name(value: float) -> str:
    text = f"{round(value, 3):g}"
    return text.replace(".", "_").replace("-", "minus-")


def px(value: float | int) -> str:
    return f"{value:g}px"


# -- names by rule ------------------------------------------------------------


def color_rule_name(hex_value: str) -> str:
    red, green, blue = (int(hex_value[i : i + 2], 16) / 255 for i in (1, 3, 5))
    alpha = int(hex_value[7:9], 16) if len(hex_value) == 9 else 255
    hue, lightness, saturation = colorsys.rgb_to_hls(red, green, blue)
    if lightness >= 0.98:
        name = "white"
    elif lightness <= 0.02:
        name = "black"
    else:
        if saturation < 0.12:
            family = "gray"
        else:
            degrees = hue * 360
            family = next(n for bound, n in _HUES if degrees < bound)
        step = round((1 - lightness) * 10) * 100
        name = f"{family}-{min(950, max(50, step))}"
    if alpha < 255:
        name += f"-a{round(alpha / 255 * 100)}"
    return name


def typography_rule_name(key: tuple[Any, ...]) -> str:
    family, weight, size, _lh, _ls, italic, case, _decoration = key
    name = f"{slug(family) or 'font'}-{number_name(size)}-{weight}"
    if italic:
        name += "-italic"
    if case:
        name += f"-{slug(str(case))}"
    return name


# -- DTCG values ----------------------------------------------------------------


def dtcg_value(category: str, key: Any) -> tuple[Any, dict[str, Any]]:
    """The ``$value`` of a counted value, and what Figma adds that DTCG has no field for."""
    if category == COLOR:
        return key, {}
    if category == GRADIENT:
        kind, angle, stops = key
        figma: dict[str, Any] = {"gradient": kind}
        if angle is not None:
            figma["angle"] = angle
        return [{"color": c, "position": p} for c, p in stops], figma
    if category == TYPOGRAPHY:
        family, weight, size, line_height, letter_spacing, italic, case, decoration = key
        value: dict[str, Any] = {
            "fontFamily": family,
            "fontSize": px(size),
            "fontWeight": weight,
            "letterSpacing": px(letter_spacing),
        }
        if line_height:
            value["lineHeight"] = round(line_height / size, 4)
        figma = {}
        if line_height:
            figma["lineHeightPx"] = line_height
        if italic:
            figma["fontStyle"] = "italic"
        if case:
            figma["textCase"] = case
        if decoration:
            figma["textDecoration"] = decoration
        return value, figma
    if category == SHADOW:
        shadows = [
            {
                "color": color,
                "offsetX": px(x),
                "offsetY": px(y),
                "blur": px(blur),
                "spread": px(spread),
                "inset": inset,
            }
            for inset, x, y, blur, spread, color in key
        ]
        return (shadows[0] if len(shadows) == 1 else shadows), {}
    if category in (SPACING, RADIUS):
        return px(key), {}
    if category == FONT_FAMILY:
        return key, {}
    raise ValueError(f"unknown category {category}")


# -- building -------------------------------------------------------------------


def build_tokens(found: Collected, styles: dict[str, Any]) -> TokenSet:
    """Name and de-duplicate every value of ``found``.

    Parameters
    ----------
    found:
        What the walk counted.
    styles:
        The file's top-level ``styles`` map: ``{style id: {key, name, styleType, description}}``.
    """
    names = Names()
    tokens: list[Token] = []
    by_ref: dict[ValueRef, Token] = {}
    stats = {c: CategoryStats() for c in CATEGORIES}
    for category, counter in found.values.items():
        stats[category].values = len(counter)
        stats[category].uses = sum(counter.values())
    unused: list[dict[str, str]] = []

    # 1. Published styles, in a stable order: type, name, id.
    ordered = sorted(
        ((sid, s) for sid, s in styles.items() if isinstance(s, dict)),
        key=lambda item: (str(item[1].get("styleType")), str(item[1].get("name")), item[0]),
    )
    for style_id, style in ordered:
        name = str(style.get("name") or "")
        ref = found.style_values.get(style_id)
        allowed = STYLE_CATEGORIES.get(str(style.get("styleType")), ())
        if ref is None or ref[0] not in allowed:
            if str(style.get("styleType")) in STYLE_CATEGORIES:
                unused.append({"id": style_id, "name": name, "type": str(style.get("styleType"))})
            continue
        category, key = ref
        extra = TYPOGRAPHY_PARTS if category == TYPOGRAPHY else ()
        path = names.claim(style_path(category, name), extra)
        value, figma = dtcg_value(category, key)
        token = Token(
            path=path,
            category=category,
            value=value,
            source="style",
            uses=found.values[category].get(key, 0),
            ref=ref,
            description=str(style.get("description") or "").strip(),
            style={"id": style_id, "key": str(style.get("key") or ""), "name": name},
            node=found.first_node.get(ref),
            figma=figma,
        )
        tokens.append(token)
        stats[category].styles += 1
        if ref in by_ref:
            stats[category].same_value_styles += 1
        else:
            by_ref[ref] = token
            if found.values[category].get(key, 0) > found.bound.get(ref, 0):
                # The same value on nodes not bound to the style: one token, not two.
                stats[category].merged += 1

    # 2. Everything else, by rule, most used first.
    for category in (COLOR, GRADIENT, TYPOGRAPHY, SHADOW, SPACING, RADIUS):
        counter = found.values[category]
        rest = [(k, n) for k, n in counter.items() if (category, k) not in by_ref]
        rest.sort(key=lambda kn: (-kn[1], repr(kn[0])))
        kept = rest[: MAX_DERIVED[category]]
        stats[category].dropped = len(rest) - len(kept)
        for path, key, uses, figma_extra in _rule_names(category, kept):
            extra = TYPOGRAPHY_PARTS if category == TYPOGRAPHY else ()
            value, figma = dtcg_value(category, key)
            ref = (category, key)
            token = Token(
                path=names.claim(path, extra),
                category=category,
                value=value,
                source="rule",
                uses=uses,
                ref=ref,
                node=found.first_node.get(ref),
                figma={**figma, **figma_extra},
            )
            tokens.append(token)
            by_ref[ref] = token
            stats[category].derived += 1

    # 3. Font families, from every typography token.
    families: dict[str, int] = {}
    for token in tokens:
        if token.category == TYPOGRAPHY and token.ref is not None:
            family = token.ref[1][0]
            families[family] = families.get(family, 0) + token.uses
    for family, uses in sorted(families.items(), key=lambda fu: (-fu[1], fu[0])):
        ref = (FONT_FAMILY, family)
        token = Token(
            path=names.claim((FONT_FAMILY, slug(family) or "font")),
            category=FONT_FAMILY,
            value=family,
            source="rule",
            uses=uses,
            ref=ref,
        )
        tokens.append(token)
        by_ref[ref] = token
        stats[FONT_FAMILY].derived += 1
        stats[FONT_FAMILY].values += 1
        stats[FONT_FAMILY].uses += uses

    order = {c: i for i, c in enumerate(CATEGORIES)}
    tokens.sort(key=lambda t: (order[t.category], t.source != "style"))
    return TokenSet(tokens=tokens, by_ref=by_ref, stats=stats, unused_styles=unused)


def _rule_names(
    category: str, kept: list[tuple[Any, int]]
) -> list[tuple[tuple[str, ...], Any, int, dict[str, Any]]]:
    """(path, key, uses, extra Figma facts) for rule-named values, in naming order."""
    named: list[tuple[tuple[str, ...], Any, int, dict[str, Any]]] = []
    if category == COLOR:
        return [((COLOR, color_rule_name(k)), k, n, {}) for k, n in kept]
    if category == TYPOGRAPHY:
        return [((TYPOGRAPHY, typography_rule_name(k)), k, n, {}) for k, n in kept]
    if category == SPACING:
        for key, uses in sorted(kept, key=lambda kn: kn[0]):
            scale = round(key / 4, 3)
            name = number_name(scale)
            named.append(((SPACING, name), key, uses, {"tailwind": f"{scale:g}"}))
        return named
    if category == RADIUS:
        return [((RADIUS, number_name(k)), k, n, {}) for k, n in sorted(kept)]
    if category == GRADIENT:
        seen: dict[str, int] = {}
        for key, uses in kept:
            seen[key[0]] = seen.get(key[0], 0) + 1
            named.append(((GRADIENT, f"{key[0]}-{seen[key[0]]}"), key, uses, {}))
        return named
    if category == SHADOW:

        def elevation(kn: tuple[Any, int]) -> tuple[float, float]:
            return (max(s[3] for s in kn[0]), max(abs(s[2]) for s in kn[0]))

        by_size = sorted(kept, key=elevation)
        seen = {}
        for key, uses in by_size:
            kind = "inner" if all(s[0] for s in key) else "drop"
            seen[kind] = seen.get(kind, 0) + 1
            named.append(((SHADOW, f"{kind}-{seen[kind]}"), key, uses, {}))
        return named
    raise ValueError(f"unknown category {category}")
