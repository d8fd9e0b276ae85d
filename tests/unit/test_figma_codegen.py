"""Model-written components: parsed, held to the tokens, or rejected with their attempts."""

from __future__ import annotations

from typing import Any

import pytest

from common.figma.codegen import (
    choose_components,
    color_variables,
    css_variables_of,
    design_checks,
    generate_components,
)
from common.figma.models import ComponentsRequest, FigmaAnalysis
from tests.fakes.scripted_model import ScriptedModel
from tests.unit.test_figma_tokens import DESIGN_SYSTEM, analysed

GOOD_TSX = """\
import React from "react";

type Props = { size?: "Small" | "Large"; state?: "Default" | "Hover"; label?: string };

export default function Button({ size = "Small", state = "Default", label = "Sign in" }: Props) {
  const hover = state === "Hover";
  const small = size === "Small";
  const style = {
    background: hover ? "var(--color-brand-primary-700)" : "var(--color-brand-primary-500)",
    color: "var(--color-base-white)",
    font: "var(--typography-label-medium)",
    padding: small ? "var(--spacing-2) var(--spacing-3)" : "var(--spacing-3) var(--spacing-4)",
    borderRadius: "var(--radius-6)",
  };
  return <button style={style}>{label}</button>;
}
"""

UNKNOWN_VAR_TSX = GOOD_TSX.replace("var(--radius-6)", "var(--radius-medium)")
HEX_TSX = GOOD_TSX.replace('"var(--color-base-white)"', '"#FFFFFF"')
BROKEN_TSX = "export default function Button( {\n  return <button>;\n"

GOOD_HTML = """\
<style>
  .button { background: var(--color-brand-primary-500); color: var(--color-base-white);
            font: var(--typography-label-medium); padding: var(--spacing-2) var(--spacing-3);
            border-radius: var(--radius-6); }
  .button--hover { background: var(--color-brand-primary-700); }
</style>
<button class="button">Sign in</button>
<button class="button button--hover">Sign in</button>
"""


def fenced(code: str, language: str = "tsx") -> str:
    return f"Here it is:\n```{language}\n{code}```\n"


@pytest.fixture(scope="module")
def analysis() -> FigmaAnalysis:
    return analysed(DESIGN_SYSTEM)[0]


def generate(analysis: FigmaAnalysis, model: ScriptedModel, **request: Any) -> Any:
    return generate_components(analysis, ComponentsRequest(**request), model=model, max_attempts=3)


def test_a_component_that_uses_only_tokens_is_returned(analysis: FigmaAnalysis) -> None:
    model = ScriptedModel(fenced(GOOD_TSX))

    out = generate(analysis, model, names=["button"], max=1)

    [component] = out.components
    assert component.name == "Button" and component.filename == "Button.tsx"
    assert component.language == "tsx" and component.attempts == 1
    assert component.code == GOOD_TSX
    assert "--color-brand-primary-500" in component.tokens_used
    assert {c["name"]: c["ok"] for c in component.checks}["parse"] is True
    assert out.rejected == [] and out.error is None
    # The model was told the component's properties and the tokens it uses
    prompt = model.calls[0]["messages"][-1].content
    assert '- Size: "Small" | "Large"' in prompt and "- Label: string" in prompt
    assert "var(--color-brand-primary-500) = #1e66f5 [used by this component]" in prompt
    assert 'Text in it: "Sign in"' in prompt


def test_an_unknown_token_goes_back_to_the_model_with_a_hint(analysis: FigmaAnalysis) -> None:
    model = ScriptedModel(fenced(UNKNOWN_VAR_TSX), fenced(GOOD_TSX))

    out = generate(analysis, model, names=["Button"])

    assert out.components[0].attempts == 2
    said_back = model.calls[1]["messages"][-1].content
    assert "--radius-medium" in said_back and "unknown CSS variables" in said_back


def test_a_component_that_never_passes_is_rejected_with_its_attempts(
    analysis: FigmaAnalysis,
) -> None:
    model = ScriptedModel(fenced(HEX_TSX), fenced(BROKEN_TSX), fenced(HEX_TSX))

    out = generate(analysis, model, names=["Button", "Nope"])

    assert out.components == [] and out.not_found == ["Nope"]
    [rejected] = out.rejected
    assert rejected.name == "Button" and len(rejected.attempts) == 3
    assert "#FFFFFF is var(--color-base-white)" in rejected.attempts[0].problems[0]
    assert rejected.attempts[1].problems[0].startswith("parse:")


def test_html_components_are_parsed_as_html(analysis: FigmaAnalysis) -> None:
    model = ScriptedModel(fenced(GOOD_HTML, "html"))

    out = generate(analysis, model, framework="html", max=1)

    # No names: the most used component, Button (3 instances)
    [component] = out.components
    assert component.filename == "Button.html" and component.language == "html"


def test_a_model_server_failure_keeps_what_was_done(analysis: FigmaAnalysis) -> None:
    from common.errors import ModelUnavailable

    class Down(ScriptedModel):
        def chat(self, messages: Any, **kwargs: Any) -> Any:
            raise ModelUnavailable("the model server is unreachable")

    out = generate(analysis, Down(), max=2)

    assert out.components == [] and out.error is not None
    assert out.error["code"] == "model_unavailable"


def test_the_design_checks_one_by_one(analysis: FigmaAnalysis) -> None:
    known = css_variables_of(analysis)
    colors = color_variables(analysis)

    def problems(code: str, framework: str = "react", styling: str = "css") -> list[str]:
        results = design_checks(
            code, known=known, colors=colors, framework=framework, styling=styling
        )
        return [r.message for r in results if not r.ok]

    assert problems(GOOD_TSX) == []
    assert "did you mean --radius-6" in problems(UNKNOWN_VAR_TSX.replace("medium", "66"))[0]
    # a hex with no token is allowed; #1e66f5 (3- or 8-digit forms too) is not
    assert problems(GOOD_TSX.replace("var(--radius-6)", "#123456")) == []
    assert problems(GOOD_TSX + "// #1E66F5FF\n")[0].endswith("is var(--color-brand-primary-500)")
    assert problems("export const A = () => <div />;\n") == [
        "it uses no design token: style it with var(--...)"
    ]
    assert problems("<div class='p-4'></div>", framework="html", styling="tailwind") == []
    assert problems("const A = 1;\nvar(--spacing-4)", framework="react") == [
        "no exported component"
    ]
    assert choose_components(analysis, ComponentsRequest(max=5))[0][-1].name == "Avatar"
