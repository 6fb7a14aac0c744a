"""The one YAML config loader: every mistake is named by file, line and key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from features.errors import ChurnError
from features.yaml_config import ConfigFile, compose_yaml, keys_at


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Every(Strict):
    kind: Literal["every"]
    days: int = Field(ge=1)


class Once(Strict):
    kind: Literal["once"]
    on: str


class Step(Strict):
    name: str
    when: Annotated[Every | Once, Field(discriminator="kind")]


class Plan(Strict):
    owner: str
    levels: dict[Literal["gold", "silver"], int] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)


class PlanError(ChurnError):
    pass


PLAN = ConfigFile(Plan, "plan", "docs/plan.md", PlanError)


def problems_of(text: str) -> str:
    with pytest.raises(PlanError) as caught:
        PLAN.parse(text, "plan.yaml")
    return str(caught.value)


def test_a_misspelt_key_names_file_line_key_and_the_closest_known_key() -> None:
    message = problems_of("owner: cs\nsteps:\n  - name: a\n    when: {kind: every, dayz: 3}\n")
    assert "plan.yaml is not a valid plan:" in message
    assert "plan.yaml, line 4, key steps.0.when.dayz: Extra inputs are not permitted" in message
    assert "(did you mean 'days'?); valid keys here: kind, days" in message  # only 'every' keys
    assert "plan.yaml, line 4, key steps.0.when.days: Field required" in message
    assert message.endswith("See docs/plan.md for the keys.")


def test_a_bad_union_tag_points_at_the_tag_with_the_closest_tag() -> None:
    message = problems_of("owner: cs\nsteps:\n  - name: a\n    when:\n      kind: evry\n")
    assert "plan.yaml, line 5, key steps.0.when.kind: Input tag 'evry'" in message
    assert "(did you mean 'every'?)" in message


def test_a_bad_dict_key_gets_the_closest_allowed_key() -> None:
    message = problems_of("owner: cs\nlevels:\n  gld: 1\n")
    assert "line 3, key levels.gld.[key]: Input should be 'gold' or 'silver'" in message
    assert "(did you mean 'gold'?)" in message


def test_a_key_given_twice_is_an_error_not_silently_the_last() -> None:
    message = problems_of("owner: cs\nlevels:\n  gold: 1\n  gold: 2\n")
    assert "plan.yaml, line 4, key levels.gold: the key appears twice under levels" in message


def test_a_syntax_error_names_the_file_and_line() -> None:
    assert "plan.yaml is not valid YAML, line 2" in problems_of("owner: cs\nlevels: a: b\n")


def test_the_top_level_must_be_a_mapping_and_an_empty_file_is_empty() -> None:
    assert "the plan must be a mapping of keys to values, got a list" in problems_of("- a\n")
    assert "plan.yaml, key owner: Field required" in problems_of("")


def test_checks_beyond_the_schema_are_located_like_schema_errors() -> None:
    def no_gold(plan: Plan) -> list[tuple[tuple[str, ...], str]]:
        return [(("levels", "gold"), "gold is sold out")] if "gold" in plan.levels else []

    with pytest.raises(PlanError, match=r"plan.yaml, line 3, key levels.gold: gold is sold out"):
        PLAN.parse("owner: cs\nlevels:\n  gold: 1\n", "plan.yaml", checks=no_gold)


def test_merge_keys_and_key_text_follow_the_file() -> None:
    raw, lines = compose_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n1: yes\n", "f")
    assert raw["other"] == {"x": 1, "y": 3} and raw["1"] is True
    assert lines[("other", "y")] == ("f", 4) and lines[("1",)] == ("f", 5)


def test_reading_names_the_missing_file_and_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"plan file was not found: .*nope\.yaml\. Make one\."):
        PLAN.read(tmp_path / "nope.yaml", hint="Make one.")


@dataclass
class Inner:
    depth: int = 1


@dataclass
class Outer:
    inner: Inner = field(default_factory=Inner)
    width: int = 2


def test_dataclass_schemas_offer_their_fields() -> None:
    assert keys_at(Outer, ()) == ["inner", "width"]
    assert keys_at(Outer, ("inner",)) == ["depth"]
