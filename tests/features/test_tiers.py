"""The tier table is the one definition: thresholds, order, and the docs that list the tiers."""

from __future__ import annotations

import re
from pathlib import Path

from features.tiers import RISK_TIERS, TIER_NAMES, TIER_RANK, TIER_TABLE, TIER_THRESHOLDS, tier_of

DOCS = Path(__file__).resolve().parents[2] / "docs"
README = DOCS.parent / "README.md"


def test_the_thresholds_are_the_floors_and_each_floor_is_in_its_tier() -> None:
    assert TIER_THRESHOLDS == (80.0, 60.0, 40.0)
    assert [tier_of(t.floor) for t in TIER_TABLE] == list(TIER_NAMES)
    assert [tier_of(t.floor - 0.01) for t in TIER_TABLE[:-1]] == list(TIER_NAMES[1:])
    assert TIER_NAMES[1:] == RISK_TIERS and sorted(TIER_RANK, key=TIER_RANK.get) == list(TIER_NAMES)


def test_the_health_score_page_lists_the_tiers_of_the_table() -> None:
    text = (DOCS / "health-score.md").read_text(encoding="utf-8")
    section = text[text.index("### Tiers") :].split("\n\n")[1]
    rows = re.findall(r"^\| (\w+)(?: \(risk\))? \| (\d+)(?:-| up to )(\d+) \|$", section, re.M)
    ceilings = (100.0, *TIER_THRESHOLDS)
    assert rows == [
        (t.name, f"{t.floor:g}", f"{top:g}") for t, top in zip(TIER_TABLE, ceilings, strict=True)
    ]


def test_the_scoring_page_and_the_readme_name_the_tiers_of_the_table() -> None:
    scoring = (DOCS / "scoring.md").read_text(encoding="utf-8")
    rule = " > ".join(f"`{t.name}` >= {t.floor:g}" for t in TIER_TABLE[:-1])
    assert f"From the health score: {rule} > `{TIER_TABLE[-1].name}`." in scoring
    readme = " ".join(README.read_text(encoding="utf-8").split())
    assert f"tiers {' / '.join(TIER_NAMES)} risk" in readme
