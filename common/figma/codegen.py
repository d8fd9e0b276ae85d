"""Components written by the model from the tokens, each checked before it is returned.

The model sees one component at a time: its properties and variants, size, auto
layout, text samples, the tokens its layers use and the others it may use. Its
answer goes through :func:`~common.agents.checked.ask_code`: it must parse (TSX
with tree-sitter's tsx grammar, HTML with its html grammar), and then pass the
design-system checks here, each failure sent back with its reason:

- every ``var(--name)`` names a variable the tokens define;
- no colour literal (``#1e66f5``) whose value a color token has;
- CSS styling uses at least one token variable; React code exports a component.

A component that never passes is listed in ``rejected`` with every attempt's
problems, and no code.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any

from common.code.checks import CheckResult
from common.figma.models import (
    AttemptSummary,
    ComponentEntry,
    ComponentsRequest,
    FigmaAnalysis,
    Generated,
    GeneratedComponent,
    RejectedComponent,
)
from common.models.base import ModelClient, Usage

Progress = Callable[[str, float, str], None]

# Lines of tokens shown to the model: the component's own first, then the most used.
MAX_TOKEN_LINES = 80
_VAR = re.compile(r"var\(\s*(--[A-Za-z0-9_-]+)")
_HEX = re.compile(r"(?<![\w&])#([0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3,4})(?![\w-])")
_CSS_VAR_DEF = re.compile(r"^\s*(--[A-Za-z0-9_-]+):\s*(.*);\s*$", re.M)
LANGUAGES = {"react": "tsx", "html": "html"}


# -- what the tokens define ------------------------------------------------------


def iter_tokens(tree: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """(path, token) for every token of a DTCG tree, in document order, without recursion."""
    stack: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), tree)]
    while stack:
        path, node = stack.pop()
        if path and "$value" in node:
            yield path, node
            continue
        children = [
            (name, child)
            for name, child in node.items()
            if not name.startswith("$") and isinstance(child, dict)
        ]
        stack.extend(((*path, name), child) for name, child in reversed(children))


def css_variables_of(analysis: FigmaAnalysis) -> dict[str, str]:
    """Every variable the analysis's CSS defines → its value."""
    return {m.group(1): m.group(2) for m in _CSS_VAR_DEF.finditer(analysis.css)}


def _normal_hex(text: str) -> str:
    text = text.lower().lstrip("#")
    if len(text) in (3, 4):
        text = "".join(c * 2 for c in text)
    if len(text) == 8 and text.endswith("ff"):
        text = text[:6]
    return "#" + text


def color_variables(analysis: FigmaAnalysis) -> dict[str, str]:
    """Colour value (normalised hex) → the variable of the first token that has it."""
    found: dict[str, str] = {}
    for path, token in iter_tokens(analysis.tokens):
        if token.get("$type") == "color" and isinstance(token.get("$value"), str):
            found.setdefault(_normal_hex(token["$value"]), "--" + "-".join(path))
    return found


# -- checks ------------------------------------------------------------------------


def design_checks(
    code: str, *, known: dict[str, str], colors: dict[str, str], framework: str, styling: str
) -> list[CheckResult]:
    """The design-system checks of one answer (after it parsed)."""
    results: list[CheckResult] = []
    used = _VAR.findall(code)
    unknown = sorted({v for v in used if v not in known})
    if unknown:
        hints = []
        for name in unknown[:5]:
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
            hints.append(f"{name}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
        results.append(
            CheckResult(
                "tokens",
                False,
                "unknown CSS variables, not design tokens: " + "; ".join(hints),
            )
        )
    literals = []
    for match in _HEX.finditer(code):
        variable = colors.get(_normal_hex(match.group(0)))
        if variable is not None:
            line = code.count("\n", 0, match.start()) + 1
            literals.append(f"line {line}: {match.group(0)} is var({variable})")
    if literals:
        results.append(
            CheckResult(
                "literal-colors",
                False,
                "colour literals where a token exists; use the variable: "
                + "; ".join(literals[:5]),
            )
        )
    if styling == "css" and not used:
        results.append(
            CheckResult("tokens", False, "it uses no design token: style it with var(--...)")
        )
    if framework == "react" and not re.search(r"\bexport\b", code):
        results.append(CheckResult("export", False, "no exported component"))
    if not results:
        results.append(CheckResult("tokens", True, f"{len(set(used))} token variables used"))
    return results


# -- the prompt --------------------------------------------------------------------


def pascal_name(name: str) -> str:
    parts = re.findall(r"[A-Za-z0-9]+", name)
    text = "".join(p[:1].upper() + p[1:] for p in parts) or "Component"
    return text if not text[0].isdigit() else f"C{text}"


def _prop_line(prop: Any) -> str:
    name = prop.name
    if prop.type == "VARIANT" and prop.options:
        kinds = " | ".join(f'"{o}"' for o in prop.options)
        return f"- {name}: {kinds} (default {prop.default!r})"
    if prop.type == "BOOLEAN":
        return f"- {name}: boolean (default {prop.default!r})"
    if prop.type == "TEXT":
        return f"- {name}: string (default {prop.default!r})"
    if prop.type == "INSTANCE_SWAP":
        return f"- {name}: a slot for another component (React node)"
    return f"- {name}: {prop.type.lower() or 'value'}"


def describe_component(entry: ComponentEntry) -> str:
    kind = "a set of variants" if entry.kind == "set" else "a component"
    lines = [f"Name: {entry.name} ({kind})"]
    if entry.description:
        lines.append(f"Description: {entry.description}")
    if entry.properties:
        lines.append("Properties:")
        lines.extend(_prop_line(p) for p in entry.properties)
    if entry.variants:
        names = ", ".join(v.name for v in entry.variants[:24])
        more = f" and {len(entry.variants) - 24} more" if len(entry.variants) > 24 else ""
        lines.append(f"Variants: {names}{more}")
    if entry.width and entry.height:
        lines.append(f"Size in the design: {entry.width:g} × {entry.height:g} px")
    if entry.layout:
        layout = entry.layout
        parts = [f"{layout.get('direction', '')} auto layout"]
        if layout.get("itemSpacing"):
            parts.append(f"gap {layout['itemSpacing']:g}px")
        sides = ("paddingTop", "paddingRight", "paddingBottom", "paddingLeft")
        paddings = [layout.get(k) for k in sides]
        if any(paddings):
            parts.append("padding " + " ".join(f"{p or 0:g}px" for p in paddings))
        lines.append("Layout: " + ", ".join(parts))
    if entry.texts:
        lines.append("Text in it: " + "; ".join(f'"{t}"' for t in entry.texts[:6]))
    return "\n".join(lines)


def tailwind_class(path: tuple[str, ...], token: dict[str, Any]) -> str:
    rest = "-".join(path[1:])
    kind = token.get("$type")
    category = path[0]
    if kind == "color":
        return f"bg-{rest} / text-{rest} / border-{rest}"
    if category == "spacing":
        scale = (token.get("$extensions") or {}).get("com.figma", {}).get("tailwind", rest)
        return f"p-{scale} / gap-{scale} / m-{scale}"
    if category == "radius":
        return f"rounded-{rest}"
    if category == "shadow":
        return f"shadow-{rest}"
    if category == "typography":
        return f"text-{rest}"
    if category == "font-family":
        return f"font-{rest}"
    if category == "gradient":
        return f"bg-gradient-{rest}"
    return ""


def token_lines(analysis: FigmaAnalysis, entry: ComponentEntry, *, styling: str) -> str:
    """The tokens the model may use: the component's own first, then the most used others."""
    own = set(entry.tokens)
    listed: list[tuple[int, int, tuple[str, ...], dict[str, Any]]] = []
    for index, (path, token) in enumerate(iter_tokens(analysis.tokens)):
        uses = int(((token.get("$extensions") or {}).get("com.figma") or {}).get("uses", 0))
        mine = ".".join(path) in own
        listed.append((0 if mine else 1, -uses if not mine else index, path, token))
    listed.sort(key=lambda item: (item[0], item[1]))
    lines = []
    for _, _, path, token in listed[:MAX_TOKEN_LINES]:
        var = "--" + "-".join(path)
        value = token["$value"]
        if token.get("$type") == "typography":
            shown = f"var({var}) (font shorthand; or var({var}-font-size) etc.)"
        else:
            shown = f"var({var}) = {value if isinstance(value, str) else 'composite'}"
        mark = " [used by this component]" if ".".join(path) in own else ""
        if styling == "tailwind":
            shown += f"; classes: {tailwind_class(path, token)}"
        lines.append(f"- {shown}{mark}")
    if len(listed) > MAX_TOKEN_LINES:
        lines.append(f"- ... {len(listed) - MAX_TOKEN_LINES} more not listed")
    return "\n".join(lines) or "- (the file defines no tokens)"


# -- the action ----------------------------------------------------------------------


def choose_components(
    analysis: FigmaAnalysis, request: ComponentsRequest
) -> tuple[list[ComponentEntry], list[str]]:
    """The components to write (asked for by name, else the most used), and unknown names."""
    local = [e for e in analysis.inventory.components if not e.remote]
    if not request.names:
        return local[: request.max], []
    chosen: list[ComponentEntry] = []
    missing: list[str] = []
    for wanted in request.names:
        key = wanted.strip().lower()
        match = next((e for e in local if e.name.lower() == key), None) or next(
            (e for e in local if pascal_name(e.name).lower() == pascal_name(wanted).lower()), None
        )
        if match is None:
            missing.append(wanted)
        elif match not in chosen:
            chosen.append(match)
    return chosen[: request.max], missing


def generate_components(
    analysis: FigmaAnalysis,
    request: ComponentsRequest,
    *,
    model: ModelClient,
    max_attempts: int,
    progress: Progress | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> Generated:
    """Ask the model for each chosen component; keep those that pass every check.

    A model server failure (unreachable, timed out) stops the loop and is reported
    in ``error``: the tokens are worth returning without the components.
    """
    from common.agents import prompts
    from common.agents.checked import ask_code
    from common.errors import AppError, ModelOutputInvalid

    chosen, missing = choose_components(analysis, request)
    known = css_variables_of(analysis)
    colors = color_variables(analysis)
    language = LANGUAGES[request.framework]
    styling_text = prompts.text(f"figma_styling_{request.styling}")
    out = Generated(
        framework=request.framework,
        styling=request.styling,
        components=[],
        rejected=[],
        not_found=missing,
        model=model.model,
        usage=Usage(),
    )

    def check(code: str) -> list[CheckResult]:
        return design_checks(
            code, known=known, colors=colors, framework=request.framework, styling=request.styling
        )

    for number, entry in enumerate(chosen, start=1):
        if checkpoint is not None:
            checkpoint()
        if progress is not None:
            progress("generate", 40 + 50 * (number - 1) / len(chosen), entry.name)
        messages = prompts.render(
            f"figma_{request.framework}",
            styling=styling_text,
            component=describe_component(entry),
            tokens=token_lines(analysis, entry, styling=request.styling),
        )
        try:
            checked = ask_code(
                model,
                messages,
                task="figma_component",
                language=language,
                max_attempts=max_attempts,
                extra_checks=check,
            )
        except ModelOutputInvalid as exc:
            out.rejected.append(
                RejectedComponent(
                    name=entry.name,
                    component_id=entry.id,
                    attempts=[
                        AttemptSummary(number=a["attempt"], ok=False, problems=a["problems"])
                        for a in exc.details.get("attempts", [])
                    ],
                )
            )
            continue
        except AppError as exc:
            out.error = {"code": exc.code, "message": exc.message}
            break
        out.usage = out.usage + checked.usage
        out.model = checked.model
        code = checked.value.code
        extension = ".tsx" if request.framework == "react" else ".html"
        out.components.append(
            GeneratedComponent(
                name=entry.name,
                component_id=entry.id,
                filename=pascal_name(entry.name) + extension,
                language=language,
                code=code,
                tokens_used=sorted(set(_VAR.findall(code))),
                checks=checked.value.checks,
                attempts=len(checked.attempts),
            )
        )
    return out
