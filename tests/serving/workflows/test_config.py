"""``rules.yaml``: a mistake is named by the file, the line and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.workflows.config import load_rules
from serving.workflows.errors import RulesError

RULES = """\
rules:
  - id: low-health
    description: health below 50
    when: {kind: health_below, threshold: 50, days: 7}
    only:
      tiers: [high, critical]
"""


def test_an_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    assert f"{path}, line 6, key rules.0.only.tiers.1: Input should be 'healthy'" in str(
        raised.value
    )


def test_a_misspelt_condition_key_gets_the_closest_key_of_that_kind(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("threshold: 50", "treshold: 50").replace(", critical", ""))
    with pytest.raises(RulesError) as raised:
        load_rules(path)
    message = str(raised.value)
    assert f"{path}, line 4, key rules.0.when.treshold" in message
    assert "(did you mean 'threshold'?)" in message
