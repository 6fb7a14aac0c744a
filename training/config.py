"""Training configuration from YAML (``churn train --config FILE``), validated with clear errors."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from features.errors import ChurnError
from training.fit import DEFAULT_PARAMS, FitConfig
from training.pipeline import TrainConfig

TOP_LEVEL = {f.name for f in fields(TrainConfig)}  # one definition: the dataclasses
FIT_KEYS = {f.name for f in fields(FitConfig)}


def load_train_config(path: Path | None) -> TrainConfig:
    """Defaults, overridden by the keys of ``path``; unknown keys are errors, not ignored."""
    return read_train_config(path)[0]


def read_train_config(path: Path | None) -> tuple[TrainConfig, set[str]]:
    """The config of ``path`` and the top-level keys it sets (to check them against the data)."""
    if path is None:
        return TrainConfig(), set()
    if not Path(path).exists():
        raise ChurnError(f"Training config {path} does not exist.")
    try:
        raw: Any = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ChurnError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ChurnError(f"{path} must hold a mapping of options, got {type(raw).__name__}.")
    unknown = set(raw) - TOP_LEVEL
    if unknown:
        raise ChurnError(
            f"{path}: unknown option(s) {sorted(unknown)}; allowed: {sorted(TOP_LEVEL)}"
        )
    fit_raw = raw.pop("fit", {}) or {}
    unknown = set(fit_raw) - FIT_KEYS
    if unknown:
        raise ChurnError(
            f"{path}: unknown fit option(s) {sorted(unknown)}; allowed: {sorted(FIT_KEYS)}"
        )
    params = {**DEFAULT_PARAMS, **(fit_raw.pop("params", {}) or {})}
    if fit_raw.get("imbalance", "none") not in ("none", "sqrt", "balanced"):
        raise ChurnError(f"{path}: fit.imbalance must be none, sqrt or balanced.")
    try:
        fit = FitConfig(params=params, **fit_raw)
        if "health_score_config" in raw:
            raw["health_score_config"] = Path(raw["health_score_config"])
        return TrainConfig(fit=fit, **raw), set(raw)
    except (TypeError, ValueError) as exc:
        raise ChurnError(f"{path}: {exc}") from None
