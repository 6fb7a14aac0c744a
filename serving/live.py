"""Checking live features for ``/score``: every model feature present, nothing else, right types.

How values are read (also in ``docs/crm-integration.md``):

- ``null`` means *missing*: LightGBM sends it down the branch it learned for missing values, as
  it does for a customer without, say, an NPS answer. Every feature must still be present, as a
  value or ``null``, so that a typo in a name cannot silently become "missing".
- numeric features take JSON numbers; booleans, strings (including ``"NaN"`` or ``"inf"``) and
  non-finite numbers (``NaN``/``Infinity`` literals, overflowing values) are rejected with 422.
- categorical features take strings; a level the model never saw is treated as missing, exactly
  as in training. Numbers are rejected.

What is scored but worth knowing comes back in the result's ``warnings``
(:func:`feature_warnings`): each ``null`` (``missing_value``) and each unseen level
(``unseen_level``, with the known levels), so a CRM sees that ``"Logistics"`` was read as missing
instead of learning it from a strange score. Missing values never appear among the top drivers
(:func:`serving.scoring.top_drivers`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from serving.errors import FeatureValidationError, FieldProblem
from training.model import ChurnModel

MAX_PROBLEMS = 50  # per request: enough to fix a payload, short enough to read


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def feature_problems(model: ChurnModel, features: Any, where: str) -> list[FieldProblem]:
    """Every problem of one ``features`` object; empty when the model can score it."""
    if not isinstance(features, dict):
        problem = f"must be an object of feature values, got {_describe(features)}"
        return [FieldProblem(where, problem)]
    problems = []
    expected = set(model.features)
    for name in features:
        if name not in expected:
            problems.append(FieldProblem(f"{where}.{name}", "not a feature of the served model"))
    for name in model.features:
        path = f"{where}.{name}"
        if name not in features:
            problems.append(FieldProblem(path, "missing; send null if the value is unknown"))
            continue
        value = features[name]
        if value is None:
            continue
        if name in model.categories:
            if not isinstance(value, str):
                problem = f"expected a string or null, got {_describe(value)}"
                problems.append(FieldProblem(path, problem))
        elif isinstance(value, bool) or not isinstance(value, int | float):
            problem = f"expected a number or null, got {_describe(value)}"
            problems.append(FieldProblem(path, problem))
        else:
            try:
                finite = math.isfinite(float(value))
            except OverflowError:
                finite = False
            if not finite:
                problems.append(
                    FieldProblem(path, "must be a finite number; send null for a missing value")
                )
    return problems


def feature_warnings(
    model: ChurnModel, features: dict[str, Any], where: str = "features"
) -> list[dict[str, str]]:
    """The ``warnings`` of one checked ``features`` object: missing values and unseen levels,
    in the model's feature order."""
    warnings = []
    for name in model.features:
        value = features.get(name)
        path = f"{where}.{name}"
        if value is None:
            message = f"{name} is null: scored as missing, and left out of the top drivers"
            warnings.append({"field": path, "code": "missing_value", "message": message})
            continue
        levels = model.categories.get(name)
        if levels is not None and value not in levels:
            known = ", ".join(repr(level) for level in levels[:12])
            more = f" (and {len(levels) - 12} more)" if len(levels) > 12 else ""
            message = (
                f"{name} {value!r} is a level the model never saw: scored as missing. "
                f"Known levels: {known}{more} (GET /v1/model)"
            )
            warnings.append({"field": path, "code": "unseen_level", "message": message})
    return warnings


def check_features(model: ChurnModel, features: Any, where: str = "features") -> None:
    """Raise 422 naming each bad field."""
    problems = feature_problems(model, features, where)
    if problems:
        raise FeatureValidationError(invalid_message(problems), problems[:MAX_PROBLEMS])


def invalid_message(problems: list[FieldProblem]) -> str:
    shown = "; ".join(f"{p.field}: {p.problem}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{len(problems)} invalid feature field(s): {shown}{more}"


def encode_checked(model: ChurnModel, rows: list[dict[str, Any]]) -> np.ndarray:
    """Already-checked feature objects as the n x f matrix the booster reads (no DataFrame)."""
    return model.encode_rows(rows)
