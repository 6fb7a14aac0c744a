"""Training configuration from YAML (``churn train --config FILE``), validated with clear errors.

The keys are the fields of :class:`~training.pipeline.TrainConfig` and its ``fit``
(:class:`~training.fit.FitConfig`): one definition, the dataclasses, documented in
``docs/training.md``. ``fit.params`` are merged over the default LightGBM parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from features.errors import ChurnError
from features.yaml_config import ConfigFile
from training.fit import DEFAULT_PARAMS
from training.pipeline import TrainConfig

TRAIN_CONFIG_FILE = ConfigFile(TrainConfig, "training config", "docs/training.md", ChurnError)


def _with_default_params(raw: dict[str, Any]) -> dict[str, Any]:
    """An empty ``fit:`` or ``params:`` means the defaults; given params override the default
    parameters one by one."""
    fit = raw.get("fit")
    if fit is None:
        return {k: v for k, v in raw.items() if k != "fit"}
    if isinstance(fit, dict):
        params = fit.get("params") or {}
        if isinstance(params, dict):
            fit = {**fit, "params": {**DEFAULT_PARAMS, **params}}
        return {**raw, "fit": fit}
    return raw


def load_train_config(path: Path | None) -> TrainConfig:
    """Defaults, overridden by the keys of ``path``; unknown keys are errors, not ignored."""
    return read_train_config(path)[0]


def read_train_config(path: Path | None) -> tuple[TrainConfig, set[str]]:
    """The config of ``path`` and the top-level keys it sets (to check them against the data)."""
    if path is None:
        return TrainConfig(), set()
    explicit: set[str] = set()

    def note_keys(raw: dict[str, Any]) -> dict[str, Any]:
        explicit.update(key for key in raw if key != "fit")
        return _with_default_params(raw)

    return TRAIN_CONFIG_FILE.read(Path(path), prepare=note_keys), explicit
