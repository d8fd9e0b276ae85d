"""The same tokens as CSS custom properties and as a Tailwind theme.

CSS: one ``:root`` block; a token's variable is its path joined with ``-``
(``color.brand.primary-500`` → ``--color-brand-primary-500``). A typography token
is five variables (``-font-family``, ``-font-size``, ``-font-weight``,
``-line-height``, ``-letter-spacing``) plus the ``font`` shorthand under its own
name. Tailwind: a ``theme.extend`` object (colors nested by path, so the class is
the path: ``bg-brand-primary-500``), with literal values rather than ``var()``,
so the theme works without the CSS file and opacity modifiers (``bg-x/50``) work.
"""

from __future__ import annotations

import json
from typing import Any

from common.figma.collect import COLOR, GRADIENT, RADIUS, SHADOW, SPACING, TYPOGRAPHY
from common.figma.tokens import FONT_FAMILY, Token, TokenSet, px

CSS_HEADER = "/* Design tokens from Figma (generated; edit the file in Figma, not here). */"
JS_HEADER = "/** @type {import('tailwindcss').Config} */"


def font_stack(family: str) -> str:
    """A CSS font-family list: the family quoted, then a generic fallback."""
    lowered = family.lower()
    generic = "sans-serif"
    if "mono" in lowered or "code" in lowered:
        generic = "monospace"
    elif "serif" in lowered and "sans" not in lowered:
        generic = "serif"
    return f"{json.dumps(family)}, {generic}"


def _generic(family: str) -> str:
    return font_stack(family).rsplit(", ", 1)[1]


def shadow_css(value: Any) -> str:
    shadows = value if isinstance(value, list) else [value]
    return ", ".join(
        ("inset " if s.get("inset") else "")
        + f"{s['offsetX']} {s['offsetY']} {s['blur']} {s['spread']} {s['color']}"
        for s in shadows
    )


def gradient_css(token: Token) -> str:
    stops = ", ".join(f"{s['color']} {round(s['position'] * 100, 2):g}%" for s in token.value)
    kind = token.figma.get("gradient", "linear")
    if kind == "linear":
        return f"linear-gradient({token.figma.get('angle', 180)}deg, {stops})"
    if kind == "angular":
        return f"conic-gradient({stops})"
    # Radial and diamond: CSS has no diamond; a radial gradient is the closest.
    return f"radial-gradient(circle, {stops})"


def font_shorthand(value: dict[str, Any], figma: dict[str, Any]) -> str:
    style = "italic " if figma.get("fontStyle") == "italic" else ""
    line_height = value.get("lineHeight")
    size = value["fontSize"] + (f"/{line_height:g}" if line_height else "")
    return f"{style}{value['fontWeight']} {size} {font_stack(value['fontFamily'])}"


def css_declarations(token: Token) -> list[tuple[str, str]]:
    """(variable, value) pairs of one token."""
    name = token.css_var
    category = token.category
    if category == TYPOGRAPHY:
        value = token.value
        pairs = [
            (f"{name}-font-family", font_stack(value["fontFamily"])),
            (f"{name}-font-size", value["fontSize"]),
            (f"{name}-font-weight", str(value["fontWeight"])),
        ]
        if "lineHeight" in value:
            pairs.append((f"{name}-line-height", f"{value['lineHeight']:g}"))
        pairs.append((f"{name}-letter-spacing", value["letterSpacing"]))
        pairs.append((name, font_shorthand(value, token.figma)))
        return pairs
    if category == SHADOW:
        return [(name, shadow_css(token.value))]
    if category == GRADIENT:
        return [(name, gradient_css(token))]
    if category == FONT_FAMILY:
        return [(name, font_stack(token.value))]
    return [(name, str(token.value))]


def css_variables(tokens: TokenSet) -> str:
    """Every token as custom properties of ``:root``, grouped by category."""
    lines = [CSS_HEADER, ":root {"]
    current = None
    for token in tokens.tokens:
        if token.category != current:
            current = token.category
            lines.append(f"  /* {current} */")
        lines.extend(f"  {var}: {value};" for var, value in css_declarations(token))
    lines.append("}")
    return "\n".join(lines) + "\n"


def css_variable_names(tokens: TokenSet) -> dict[str, str]:
    """Every CSS variable the tokens define → its value (what generated code may use)."""
    return {var: value for t in tokens.tokens for var, value in css_declarations(t)}


def tailwind_theme(tokens: TokenSet) -> dict[str, Any]:
    """A ``tailwind.config.js`` object: ``{"theme": {"extend": {...}}}``."""
    colors: dict[str, Any] = {}
    extend: dict[str, dict[str, Any]] = {
        "colors": colors,
        "backgroundImage": {},
        "fontFamily": {},
        "fontSize": {},
        "spacing": {},
        "borderRadius": {},
        "boxShadow": {},
    }
    for token in tokens.tokens:
        rest = "-".join(token.path[1:])
        category = token.category
        if category == COLOR:
            group = colors
            for part in token.path[1:-1]:
                group = group.setdefault(part, {})
            group[token.path[-1]] = token.value
        elif category == GRADIENT:
            extend["backgroundImage"][f"gradient-{rest}"] = gradient_css(token)
        elif category == FONT_FAMILY:
            extend["fontFamily"][rest] = [token.value, _generic(token.value)]
        elif category == TYPOGRAPHY:
            value = token.value
            options: dict[str, str] = {}
            line_height = token.figma.get("lineHeightPx")
            if line_height:
                options["lineHeight"] = px(line_height)
            options["letterSpacing"] = value["letterSpacing"]
            options["fontWeight"] = str(value["fontWeight"])
            extend["fontSize"][rest] = [value["fontSize"], options]
        elif category == SPACING:
            extend["spacing"][str(token.figma.get("tailwind", rest))] = token.value
        elif category == RADIUS:
            extend["borderRadius"][rest] = token.value
        elif category == SHADOW:
            extend["boxShadow"][rest] = shadow_css(token.value)
    return {"theme": {"extend": {k: v for k, v in extend.items() if v}}}


def tailwind_config_js(theme: dict[str, Any]) -> str:
    """The theme as the text of a ``tailwind.config.js`` (JSON is valid JavaScript)."""
    return f"{JS_HEADER}\nmodule.exports = {json.dumps(theme, indent=2, ensure_ascii=False)};\n"
