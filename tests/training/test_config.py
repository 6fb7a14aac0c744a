"""Every training config key is documented in docs/training.md, and misspelt keys are refused."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from features.errors import ChurnError
from training.config import load_train_config, read_train_config
from training.fit import DEFAULT_PARAMS, FitConfig
from training.pipeline import TrainConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def documented_keys() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## 8. Training config keys") :]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", table, flags=re.MULTILINE))


def test_the_page_documents_exactly_the_config_keys() -> None:
    keys = {f.name for f in fields(TrainConfig) if f.name != "fit"}
    keys |= {f"fit.{f.name}" for f in fields(FitConfig)}
    assert documented_keys() == keys


def test_a_misspelt_key_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("horizon_dayz: 30\n")
    with pytest.raises(ChurnError, match="horizon_dayz"):
        load_train_config(path)
    path.write_text("fit:\n  max_tree: 10\n")
    with pytest.raises(ChurnError, match="max_tree"):
        load_train_config(path)


def test_the_keys_a_file_sets_are_reported_for_the_label_check(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("horizon_days: 30\nexplain_budget_ms: 0.5\nfit:\n  max_trees: 10\n")
    config, explicit = read_train_config(path)
    assert explicit == {"horizon_days", "explain_budget_ms"}
    assert config.horizon_days == 30 and config.fit.max_trees == 10


def test_an_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("horizon_days: 30\nfit:\n  seed: 1\n  imbalance: half\n")
    with pytest.raises(ChurnError) as caught:
        load_train_config(path)
    message = str(caught.value)
    assert f"{path}, line 4, key fit.imbalance: Input should be 'none', 'sqrt' or 'balanced'" in (
        message
    )
    path.write_text("fit:\n  max_tree: 10\n")
    with pytest.raises(ChurnError, match=r"line 2, key fit.max_tree: .*did you mean 'max_trees'"):
        load_train_config(path)


def test_given_params_override_the_defaults_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("fit:\n  params: {num_leaves: 15}\n")
    params = load_train_config(path).fit.params
    assert params["num_leaves"] == 15 and params["learning_rate"] == DEFAULT_PARAMS["learning_rate"]
    path.write_text("fit:\n")
    assert load_train_config(path).fit.params == DEFAULT_PARAMS
