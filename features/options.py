"""``features.yaml``: the optional file in an export folder that says how to read its vocabulary.

Nothing in it is required; every default is inferred from the export's own values. It exists for
the few things values cannot tell: which event types mean a sign-in, a column's real type, a
column that must never be a feature. A bad file is an error naming the file, line and key.

```yaml
sign_in_events: ["Signed In", "login"]   # default: types that read like a sign-in
max_event_types: 15                      # the most frequent types get features; the rest: other
max_product_features: 15
attributes:                              # customer columns: a type, or drop
  credit_score: number
  zip_code: category
  notes: drop
```
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from features.errors import ChurnError

OPTIONS_FILE = "features.yaml"

AttributeType = Literal[
    "integer", "number", "boolean", "date", "timestamp", "category", "text", "identifier"
]
Override = Literal[
    "integer", "number", "boolean", "date", "timestamp", "category", "text", "identifier", "drop"
]


class OptionsError(ChurnError):
    """``features.yaml`` (or another YAML settings file) is not valid; names the line and key."""


class FeatureOptions(BaseModel):
    """How to turn one export's vocabulary into features (``features.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sign_in_events: tuple[str, ...] | None = Field(
        None,
        description="Event types that mean a sign-in; default: types such as login, sign_in, "
        "'Signed In', session_start (case, spaces and separators ignored).",
    )
    max_event_types: int = Field(
        15, ge=0, le=200, description="Event types with their own features; the rest pool."
    )
    max_product_features: int = Field(
        15, ge=0, le=200, description="Product features with their own features; the rest pool."
    )
    attributes: dict[str, Override] = Field(
        default_factory=dict, description="Customer column -> type, or drop."
    )


def yaml_lines(
    node: yaml.Node, path: tuple[Any, ...] = (), out: dict[tuple[Any, ...], int] | None = None
) -> dict[tuple[Any, ...], int]:
    """Every key path of a composed YAML document -> its 1-based line (the YAML settings files
    of features and serving all name lines this way)."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            out[child] = key.start_mark.line + 1
            yaml_lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yaml_lines(item, (*path, i), out)
    return out


def yaml_where(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> str:
    """``line N, key a.b.c`` for the deepest located prefix of a pydantic error location."""
    keys = tuple(part if isinstance(part, int) else str(part) for part in loc)
    for end in range(len(keys), -1, -1):
        if keys[:end] in lines:
            dotted = ".".join(str(k) for k in keys) or "(top level)"
            return f"line {lines[keys[:end]]}, key {dotted}"
    return ".".join(str(k) for k in keys)


Model = TypeVar("Model", bound=BaseModel)


def parse_yaml_model(text: str, source: str, model: type[Model]) -> Model:
    """Validate YAML text against a pydantic model; each error names ``source``, line and key.

    An unknown key also gets the closest known one ("did you mean").
    """
    try:
        node = yaml.compose(text)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OptionsError(f"{source} is not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise OptionsError(f"{source}: expected a mapping of keys to values at the top level.")
    lines = yaml_lines(node) if node is not None else {}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = error["msg"]
            loc = tuple(error["loc"])
            if error["type"] == "extra_forbidden" and len(loc) == 1:
                close = difflib.get_close_matches(str(loc[0]), list(model.model_fields), n=1)
                if close:
                    message += f" (did you mean '{close[0]}'?)"
            problems.append(f"  - {yaml_where(lines, loc)}: {message}")
        raise OptionsError(
            f"{source} is not valid:\n" + "\n".join(problems) + "\nSee docs/data-contract.md."
        ) from None


def read_options(folder: Path) -> FeatureOptions:
    """The export's ``features.yaml``, or the defaults when the folder has none."""
    path = Path(folder) / OPTIONS_FILE
    if not path.is_file():
        return FeatureOptions()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OptionsError(f"Cannot read {path}: {exc}. Fix or remove the file.") from None
    return parse_yaml_model(text, str(path), FeatureOptions)
