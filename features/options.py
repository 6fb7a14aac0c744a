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

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from features.errors import ChurnError
from features.yaml_config import ConfigFile

OPTIONS_FILE = "features.yaml"

AttributeType = Literal[
    "integer", "number", "boolean", "date", "timestamp", "category", "text", "identifier"
]
Override = Literal[
    "integer", "number", "boolean", "date", "timestamp", "category", "text", "identifier", "drop"
]


class OptionsError(ChurnError):
    """``features.yaml`` is not valid; the message names the file, line and key."""


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


OPTIONS = ConfigFile(FeatureOptions, "features.yaml", "docs/data-contract.md", OptionsError)


def read_options(folder: Path) -> FeatureOptions:
    """The export's ``features.yaml``, or the defaults when the folder has none."""
    path = Path(folder) / OPTIONS_FILE
    if not path.is_file():
        return FeatureOptions()
    return OPTIONS.read(path, hint="Fix or remove the file.")
