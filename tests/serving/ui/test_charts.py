"""The UI's tier colours come from the tier table, and the stylesheet states none of its own."""

from __future__ import annotations

import re
from pathlib import Path

from features.tiers import TIER_TABLE
from serving.ui import charts
from serving.ui.render import environment

UI_CSS = Path(charts.__file__).with_name("static") / "ui.css"


def test_the_tier_stylesheet_has_every_tier_s_colours() -> None:
    css = charts.tier_stylesheet()
    for t in TIER_TABLE:
        assert f"--{t.name}: {t.colour};" in css and f"--{t.name}-bg: {t.background};" in css
        assert f".tier-{t.name} {{ background: var(--{t.name}-bg); color: {t.ink};" in css
        assert f".tier-text-{t.name} {{ color: {t.text}; }}" in css
    assert {t.name: t.colour for t in TIER_TABLE} == charts.TIER_COLOURS


def test_ui_css_defines_no_tier_colour_of_its_own() -> None:
    css = UI_CSS.read_text(encoding="utf-8")
    names = "|".join(t.name for t in TIER_TABLE)
    assert not re.search(rf"--({names})(-bg)?\s*:", css)  # uses the variables, defines none
    assert not re.search(rf"\.tier-(text-|edge-)?({names})\b", css)


def test_every_page_carries_the_tier_stylesheet() -> None:
    page = environment().get_template("error.html").render(prefix="/ui", title="x", status=500)
    assert f"<style>{charts.tier_stylesheet()}</style>" in page


def test_the_chart_bands_follow_the_tier_bounds() -> None:
    bands = [(b["y0"], b["y1"], b["fillcolor"]) for b in charts.tier_bands()]
    assert bands == [
        (80.0, 100.0, "#2da44e"),
        (60.0, 80.0, "#d4a72c"),
        (40.0, 60.0, "#e16f24"),
        (0.0, 40.0, "#cf222e"),
    ]
