"""A Figma file (documented REST shapes) to DTCG tokens, CSS, a Tailwind theme, an inventory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.figma.collect import color_hex, gradient_key, typography_key
from common.figma.intake import Intake
from common.figma.models import FigmaAnalysis
from common.figma.service import analyse
from common.figma.tokens import Names, color_rule_name, slug, style_path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "figma"
DESIGN_SYSTEM = (FIXTURES / "design_system.json").read_bytes()


class MemorySink:
    """The GridFS stand-in: what would have been stored."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.data += data

    def close(self) -> str:
        self.closed = True
        return "memory"

    def abort(self) -> None:
        self.aborted = True


def analysed(body: bytes, *, slice_bytes: int | None = None) -> tuple[FigmaAnalysis, MemorySink]:
    sink = MemorySink()
    intake = Intake(open_sink=lambda: sink)
    step = slice_bytes or len(body)
    for start in range(0, len(body), step):
        intake.feed(body[start : start + step])
    intake.finish()
    return analyse(intake), sink


@pytest.fixture(scope="module")
def analysis() -> FigmaAnalysis:
    return analysed(DESIGN_SYSTEM)[0]


def token(analysis: FigmaAnalysis, name: str) -> dict[str, Any]:
    node: Any = analysis.tokens
    for part in name.split("."):
        node = node[part]
    assert "$value" in node, name
    return dict(node)


def names_of(tree: dict[str, Any], prefix: str = "") -> list[str]:
    found = []
    for key, value in tree.items():
        if isinstance(value, dict) and "$value" in value:
            found.append(prefix + key)
        elif isinstance(value, dict):
            found += names_of(value, prefix + key + ".")
    return found


# -- tokens ----------------------------------------------------------------------


def test_published_styles_name_their_tokens(analysis: FigmaAnalysis) -> None:
    # Given "Brand/Primary 500", "Colors/Surface", "Heading/H1", "Elevation/Card" styles
    brand = token(analysis, "color.brand.primary-500")
    # Then each is a token at the path of its name, with its value from the nodes using it
    assert brand["$type"] == "color" and brand["$value"] == "#1e66f5"
    assert brand["$description"] == "Primary actions and links."
    figma = brand["$extensions"]["com.figma"]
    assert figma["source"] == "style" and figma["style"]["name"] == "Brand/Primary 500"
    assert figma["style"]["key"] == "k-brand" and figma["uses"] == 5
    # And a first part repeating the category is dropped ("Colors/Surface")
    assert token(analysis, "color.surface")["$value"] == "#f8f9fa"
    assert token(analysis, "color.text.primary")["$value"] == "#111214"
    assert token(analysis, "gradient.hero")["$type"] == "gradient"
    h1 = token(analysis, "typography.heading.h1")
    assert h1["$value"] == {
        "fontFamily": "Inter",
        "fontSize": "32px",
        "fontWeight": 700,
        "letterSpacing": "-0.5px",
        "lineHeight": 1.25,
    }
    card = token(analysis, "shadow.card")
    assert card["$type"] == "shadow"
    assert card["$value"] == [
        {
            "color": "#0000001a",
            "offsetX": "0px",
            "offsetY": "4px",
            "blur": "12px",
            "spread": "0px",
            "inset": False,
        },
        {
            "color": "#0000000d",
            "offsetX": "0px",
            "offsetY": "1px",
            "blur": "2px",
            "spread": "0px",
            "inset": False,
        },
    ]


def test_other_values_are_named_by_the_stated_rule(analysis: FigmaAnalysis) -> None:
    assert token(analysis, "color.gray-500")["$value"] == "#6a7280"
    assert token(analysis, "color.red-500")["$value"] == "#dc2626"
    # a translucent value says so
    assert token(analysis, "color.red-500-a10")["$value"] == "#dc26261a"
    assert token(analysis, "typography.inter-16-400")["$value"]["lineHeight"] == 1.5
    caption = token(analysis, "typography.inter-12-500-italic-upper")
    assert caption["$extensions"]["com.figma"]["textCase"] == "UPPER"
    assert caption["$extensions"]["com.figma"]["fontStyle"] == "italic"
    # spacing on Tailwind's 4px scale, radii by their px
    assert token(analysis, "spacing.4")["$value"] == "16px"
    assert token(analysis, "spacing.1_5")["$value"] == "6px"
    assert token(analysis, "radius.12")["$value"] == "12px"
    inner = token(analysis, "shadow.inner-1")
    assert inner["$value"]["inset"] is True and inner["$value"]["color"] == "#ffffff33"
    radial = token(analysis, "gradient.radial-1")
    assert radial["$value"] == [
        {"color": "#ffffff", "position": 0.0},
        {"color": "#ffffff00", "position": 1.0},
    ]
    assert token(analysis, "font-family.jetbrains-mono")["$value"] == "JetBrains Mono"
    assert set(analysis.naming) >= {"styles", "color", "spacing", "radius", "collisions"}


def test_values_are_deduplicated_and_the_counts_say_how(analysis: FigmaAnalysis) -> None:
    colors = [
        token(analysis, n)["$value"] for n in names_of(analysis.tokens) if n.startswith("color.")
    ]
    assert len(colors) == len(set(colors))
    stats = analysis.stats.tokens["color"]
    # #111214 is also used unbound (the "Code" text): one token, the style's
    assert stats["merged"] == 1 and stats["styles"] == 5 and stats["derived"] == 4
    assert stats["values"] == 9 and stats["dropped"] == 0
    assert token(analysis, "color.text.primary")["$extensions"]["com.figma"]["uses"] == 3
    # published but unused in the file: no value to take, so listed, not invented
    assert analysis.stats.unused_styles == [
        {"id": "S:unused", "name": "Brand/Secondary", "type": "FILL"}
    ]


def test_what_is_not_a_design_decision_is_left_out(analysis: FigmaAnalysis) -> None:
    values = json.dumps(analysis.tokens)
    assert "#00ff00" not in values  # the hidden node's fill
    assert "#9747ff" not in values  # the purple frame Figma draws around a component set
    assert "radius.5" not in names_of(analysis.tokens)  # ...and its radius
    assert "imageRef" not in values and "LAYER_BLUR" not in values
    assert analysis.stats.hidden_nodes == 1 and analysis.stats.nodes == 30
    assert analysis.stats.parser == "yajl2_c"


# -- CSS and Tailwind ----------------------------------------------------------------


def test_css_custom_properties_carry_every_token(analysis: FigmaAnalysis) -> None:
    css = analysis.css
    assert "--color-brand-primary-500: #1e66f5;" in css
    assert '--typography-heading-h1: 700 32px/1.25 "Inter", sans-serif;' in css
    assert "--typography-heading-h1-letter-spacing: -0.5px;" in css
    assert "--shadow-card: 0px 4px 12px 0px #0000001a, 0px 1px 2px 0px #0000000d;" in css
    assert "--gradient-hero: linear-gradient(90deg, #1e66f5 0%, #8033e6 100%);" in css
    assert "--spacing-1_5: 6px;" in css
    assert '--font-family-jetbrains-mono: "JetBrains Mono", monospace;' in css
    from common.code.checks import check_parse

    assert check_parse(css, "css").ok


def test_the_tailwind_theme_has_the_same_tokens(analysis: FigmaAnalysis) -> None:
    extend = analysis.tailwind["theme"]["extend"]
    assert extend["colors"]["brand"]["primary-500"] == "#1e66f5"
    assert extend["colors"]["gray-500"] == "#6a7280"
    assert extend["fontFamily"]["inter"] == ["Inter", "sans-serif"]
    assert extend["fontSize"]["heading-h1"] == [
        "32px",
        {"lineHeight": "40px", "letterSpacing": "-0.5px", "fontWeight": "700"},
    ]
    assert extend["spacing"]["4"] == "16px" and extend["spacing"]["1.5"] == "6px"
    assert extend["borderRadius"]["12"] == "12px"
    assert extend["boxShadow"]["card"].startswith("0px 4px 12px")
    assert extend["backgroundImage"]["gradient-hero"].startswith("linear-gradient(90deg")
    config = analysis.tailwind_config
    assert config.startswith("/** @type {import('tailwindcss').Config} */\nmodule.exports = {")
    from common.code.checks import check_parse

    assert check_parse(config, "javascript").ok
    assert json.loads(config.split("= ", 1)[1].rstrip().rstrip(";")) == analysis.tailwind


# -- the inventory ---------------------------------------------------------------


def test_the_inventory_lists_sets_variants_properties_and_instances(
    analysis: FigmaAnalysis,
) -> None:
    inventory = analysis.inventory
    assert inventory.counts.model_dump() == {
        "sets": 1,
        "variants": 4,
        "components": 1,
        "remote": 1,
        "instances": 5,
        "listed_limit_reached": False,
    }
    button, avatar, icon = inventory.components
    assert (button.name, button.kind, button.key, button.page) == (
        "Button",
        "set",
        "s-button",
        "Components",
    )
    assert button.description == "Buttons for actions." and button.instances == 3
    props = {p.name: (p.type, p.default, p.options) for p in button.properties}
    assert props == {
        "Size": ("VARIANT", "Small", ["Small", "Large"]),
        "State": ("VARIANT", "Default", ["Default", "Hover"]),
        "Label": ("TEXT", "Sign in", None),
        "Show icon": ("BOOLEAN", False, None),
    }
    assert [(v.values, v.instances) for v in button.variants] == [
        ({"Size": "Small", "State": "Default"}, 1),
        ({"Size": "Small", "State": "Hover"}, 0),
        ({"Size": "Large", "State": "Default"}, 2),
        ({"Size": "Large", "State": "Hover"}, 0),
    ]
    # The variants' own layout (not the set's canvas), and the tokens their layers use
    assert button.layout["direction"] == "horizontal" and button.layout["itemSpacing"] == 8
    assert "color.brand.primary-500" in button.tokens and "radius.5" not in button.tokens
    assert button.texts == ["Sign in"]
    assert (avatar.name, avatar.kind, avatar.instances, avatar.description) == (
        "Avatar",
        "component",
        1,
        "A round user picture.",
    )
    assert (icon.name, icon.remote, icon.instances) == ("Icon/Check", True, 1)


def test_variant_properties_come_from_names_when_a_set_has_no_definitions() -> None:
    from common.figma.inventory import properties_of, variant_values
    from common.figma.models import Variant

    variants = [
        Variant(
            id="1", name="Size=Small, State=Hover", values=variant_values("Size=Small, State=Hover")
        ),
        Variant(
            id="2", name="Size=Large, State=Hover", values=variant_values("Size=Large, State=Hover")
        ),
    ]
    props = properties_of({}, variants)
    assert [(p.name, p.options) for p in props] == [
        ("Size", ["Small", "Large"]),
        ("State", ["Hover"]),
    ]


# -- the rules one by one ----------------------------------------------------------


@pytest.mark.parametrize(
    ("hex_value", "name"),
    [
        ("#ffffff", "white"),
        ("#000000", "black"),
        ("#1e66f5", "blue-500"),
        ("#dbeafe", "blue-100"),
        ("#6a7280", "gray-500"),
        ("#dc2626", "red-500"),
        ("#f97316", "orange-500"),
        ("#16a34a", "green-600"),
        ("#fefce8", "yellow-50"),
        ("#1e66f580", "blue-500-a50"),
    ],
)
def test_color_names_by_hue_and_lightness(hex_value: str, name: str) -> None:
    assert color_rule_name(hex_value) == name


def test_style_names_become_paths() -> None:
    assert style_path("color", "Brand/Primary 500") == ("color", "brand", "primary-500")
    assert style_path("color", "Colors / Surface") == ("color", "surface")
    assert style_path("typography", "Text/Body (large)") == ("typography", "body-large")
    assert style_path("color", "///") == ("color", "style")
    assert slug("Café Crème") == "cafe-creme"


def test_a_taken_name_gets_a_number_and_groups_never_clash_with_tokens() -> None:
    names = Names()
    assert names.claim(("color", "brand")) == ("color", "brand")
    assert names.claim(("color", "brand")) == ("color", "brand-2")
    # "color.brand" is a token: it cannot also be a group
    assert names.claim(("color", "brand", "dark")) == ("color", "brand-dark")
    assert names.claim(("color", "brand", "dark")) == ("color", "brand-dark-2")
    assert names.claim(("color", "a", "b")) == ("color", "a", "b")
    # the same CSS variable from another path
    assert names.claim(("color", "a-b")) == ("color", "a-b-2")


def test_figma_values_are_read_as_documented() -> None:
    assert color_hex({"r": 1, "g": 0.5, "b": 0, "a": 1}) == "#ff8000"
    assert color_hex({"r": 0, "g": 0, "b": 0, "a": 1}, 0.5) == "#00000080"
    # handles from top to bottom: CSS 180deg
    key = gradient_key(
        {
            "type": "GRADIENT_LINEAR",
            "gradientHandlePositions": [{"x": 0.5, "y": 0}, {"x": 0.5, "y": 1}, {"x": 0, "y": 0}],
            "gradientStops": [
                {"position": 0, "color": {"r": 1, "g": 1, "b": 1, "a": 1}},
                {"position": 1, "color": {"r": 0, "g": 0, "b": 0, "a": 1}},
            ],
        }
    )
    assert key == ("linear", 180, (("#ffffff", 0.0), ("#000000", 1.0)))
    assert typography_key({"fontFamily": "Inter"}) is None  # no size: not a text style
