"""The mapping file: YAML that says how a folder of vendor exports becomes the data contract.

Loaded with line numbers (``yaml.compose``), merged with the built-in presets it names
(``features/presets/<vendor>.yaml``) and validated with pydantic, so every mistake is reported
as ``mapping.yaml, line 12, sources.stripe.columns.mrr: ...`` instead of a traceback at run
time. docs/bring-your-own-data.md is the user-facing description of every key.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.contract import COLUMN_ORDER, TABLE_COLUMNS
from features.errors import ChurnError
from features.yaml_config import KeyPath, Location, closest, compose_yaml

PRESET_DIR = Path(__file__).resolve().parent / "presets"
MONEY_COLUMNS = frozenset({("subscriptions", "mrr"), ("invoices", "amount")})


class MappingError(ChurnError):
    """The mapping file (or a preset it names) is malformed: the message names file, line, key."""


def load_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, Location]]:
    """Parse YAML keeping the line of every key; a syntax error names the line."""
    raw, lines = compose_yaml(text, file, MappingError)
    return ({} if raw is None else raw), lines


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# --------------------------------------------------------------------------------------------
# The schema

Units = Literal["minor", "major"]
TimeFormat = Literal["auto", "unix_s", "unix_ms", "iso"]
Transform = Literal["lower", "domain", "email_domain"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FieldSpec(_Strict):
    """Where one output value comes from: a source field (dotted for nested JSON), or a value."""

    from_: str | list[str] | None = Field(None, alias="from")
    value: str | int | float | bool | None = None
    join: list[str] | None = Field(
        None, description="Fields joined with '-' into one id, for sources without one."
    )
    map: dict[str, str | int | float | bool | None] | None = None
    other: str | int | float | bool | None = None
    default: str | int | float | bool | None = None
    time: TimeFormat = "auto"
    timezone: str | None = None
    units: Units | None = None
    currency: str | None = Field(
        None, description="Source field holding each row's currency; must equal the mapping's."
    )
    transform: Transform | None = None
    identity: str | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> FieldSpec:
        if sum(x is not None for x in (self.from_, self.value, self.join)) != 1:
            raise ValueError(
                "give exactly one of 'from' (a source field), 'value' (a constant) or 'join' "
                "(fields joined into an id)"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str | None) -> str | None:
        return _zone(zone) if zone is not None else None

    @property
    def fields(self) -> list[str]:
        """Source field paths read (several: the first filled one wins)."""
        if self.join is not None:
            return list(self.join)
        if self.from_ is None:
            return []
        return [self.from_] if isinstance(self.from_, str) else list(self.from_)


FieldLike = Annotated[str | FieldSpec, Field(union_mode="left_to_right")]


def as_field(spec: FieldLike) -> FieldSpec:
    return FieldSpec(**{"from": spec}) if isinstance(spec, str) else spec


class MrrSpec(_Strict):
    """Monthly recurring revenue from prices: sum over items of amount x quantity per month.

    ``items`` names a list (Stripe ``items.data``); the other paths are then read per item,
    except ``discount_*`` and ``currency``, which are read on the row. ``interval`` is day,
    week, month or year, ``interval_count`` how many of them one billing period lasts.
    A discount whose ``discount_duration`` is ``once`` does not recur and is not applied.
    """

    items: str | None = None
    amount: str
    units: Units
    quantity: str | None = None
    interval: str | None = None
    interval_count: str | None = None
    discount_percent: str | None = None
    discount_amount: str | None = None
    discount_duration: str | None = None
    currency: str | None = None


class SourceSpec(_Strict):
    """One source file (or glob) and the contract table it feeds."""

    preset: str | None = None
    path: str | list[str]
    format: Literal["csv", "parquet", "jsonl"] | None = None
    table: str | None = None
    columns: dict[str, FieldLike] = Field(default_factory=dict)
    mrr: MrrSpec | None = None
    identity: dict[str, FieldLike] = Field(default_factory=dict)
    include: dict[str, list[str | int | float | bool | None]] = Field(default_factory=dict)
    exclude: dict[str, list[str | int | float | bool | None]] = Field(default_factory=dict)
    require: list[str] = Field(default_factory=list)
    description: str | None = None

    @field_validator("table")
    @classmethod
    def _known_table(cls, table: str | None) -> str | None:
        if table is not None and table not in TABLE_COLUMNS:
            raise ValueError(
                f"{table!r} is not a contract table{closest(table, TABLE_COLUMNS)}; "
                f"choose one of {', '.join(TABLE_COLUMNS)}"
            )
        return table

    @model_validator(mode="after")
    def _columns_fit_the_table(self) -> SourceSpec:
        if self.table is None:
            if self.columns or self.mrr:
                raise ValueError("a source with 'columns' or 'mrr' needs a 'table'")
            if not self.identity:
                raise ValueError("a source needs a 'table' to feed, or an 'identity' to link")
            return self
        known = COLUMN_ORDER[self.table]
        for name, spec in self.columns.items():
            if name not in known and self.table != "customers":
                raise ValueError(
                    f"columns.{name}: {self.table} has no column {name!r}"
                    f"{closest(name, known)}; its columns are {', '.join(known)}"
                )
            field = as_field(spec)
            if (self.table, name) in MONEY_COLUMNS and field.value is None and field.units is None:
                raise ValueError(
                    f"columns.{name}: say whether the amounts are in minor units (cents) "
                    "or major units: add 'units: minor' or 'units: major'"
                )
        if self.mrr is not None and self.table != "subscriptions":
            raise ValueError("'mrr' builds subscriptions.mrr; this source feeds " + self.table)
        if self.mrr is not None and "mrr" in self.columns:
            raise ValueError("give subscriptions.mrr either under 'columns' or as 'mrr', not both")
        # several sources may describe customers: only the id is needed from each
        required = ("customer_id",) if self.table == "customers" else TABLE_COLUMNS[self.table][0]
        given = set(self.columns) | ({"mrr"} if self.mrr else set())
        optional_empty = {"end_date", "plan", "resolved_at", "due_at", "paid_at", "avoidable",
                          "channel"}  # fmt: skip
        missing = [c for c in required if c not in given and c not in optional_empty]
        if missing:
            raise ValueError(
                f"the contract table {self.table} needs {', '.join(missing)}: add "
                + ", ".join(f"columns.{c}" for c in missing)
            )
        return self


class MappingSpec(_Strict):
    """The whole mapping file."""

    customer_key: str = Field(description="The identity that becomes customers.customer_id.")
    currency: str = Field(description="ISO 4217 code of every amount, e.g. usd.")
    export_date: date | None = None
    timezone: str = "UTC"
    sign_in_events: list[str] = Field(default_factory=list)
    sources: dict[str, SourceSpec]

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, code: str) -> str:
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"{code!r} is not an ISO 4217 currency code such as usd or eur")
        return code.lower()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        return _zone(zone)

    @model_validator(mode="after")
    def _identities_are_linked(self) -> MappingSpec:
        kinds = {kind for s in self.sources.values() for kind in s.identity}
        kinds.add(self.customer_key)
        for name, source in self.sources.items():
            for column, spec in source.columns.items():
                identity = as_field(spec).identity
                if identity is not None and identity not in kinds:
                    raise ValueError(
                        f"sources.{name}.columns.{column}: no source declares the identity "
                        f"{identity!r}{closest(identity, kinds)}; add it under some source's "
                        f"'identity' (known: {', '.join(sorted(kinds))})"
                    )
        if not any(s.table == "customers" for s in self.sources.values()):
            raise ValueError("no source feeds the customers table")
        if not any(s.table == "subscriptions" for s in self.sources.values()):
            raise ValueError("no source feeds the subscriptions table")
        return self


def _zone(zone: str) -> str:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{zone!r} is not an IANA time zone such as UTC or Europe/Berlin"
        ) from None
    return zone


# --------------------------------------------------------------------------------------------
# Presets and loading


def preset_names() -> dict[str, Path]:
    """``vendor.source`` -> the preset file that defines it."""
    names: dict[str, Path] = {}
    for path in sorted(PRESET_DIR.glob("*.yaml")):
        raw, _ = load_yaml(path.read_text(encoding="utf-8"), path.name)
        for source in raw.get("sources", {}):
            names[f"{path.stem}.{source}"] = path
    return names


def _merge(base: Any, override: Any) -> Any:
    """``override`` on top of ``base``: dicts merge key by key, anything else is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            out[key] = _merge(base[key], value) if key in base else value
        return out
    return override


def _with_presets(raw: dict[str, Any], lines: dict[KeyPath, Location], file: str) -> dict[str, Any]:
    """Each source's ``preset`` merged under the user's keys (the user's win)."""
    sources = raw.get("sources")
    if not isinstance(sources, dict):
        return raw
    known = preset_names()
    merged: dict[str, Any] = {}
    for name, source in sources.items():
        preset = source.get("preset") if isinstance(source, dict) else None
        if preset is None:
            merged[name] = source
            continue
        if preset not in known:
            line = lines.get(("sources", name, "preset"), (file, 0))[1]
            raise MappingError(
                f"{file}, line {line}, sources.{name}.preset: there is no preset {preset!r}"
                f"{closest(preset, known)}. Built-in presets: {', '.join(known)}."
            )
        path = known[preset]
        preset_raw, preset_lines = load_yaml(path.read_text(encoding="utf-8"), path.name)
        vendor_source = preset.split(".", 1)[1]
        base = preset_raw["sources"][vendor_source]
        prefix = ("sources", vendor_source)
        for key, location in preset_lines.items():
            if key[:2] == prefix:
                rooted = ("sources", name, *key[2:])
                lines.setdefault(rooted, (f"presets/{location[0]}", location[1]))
        merged[name] = _merge(base, source)
    return {**raw, "sources": merged}


_BRANCHES = ("str", "FieldSpec")


def _describe(exc: ValidationError, lines: dict[KeyPath, Location], file: str) -> str:
    """Each pydantic error as ``file, line N, dotted.key: message``."""
    errors = exc.errors()
    branches = {
        tuple(e["loc"]) for e in errors if any("FieldSpec" in str(part) for part in e["loc"])
    }
    problems = []
    for error in errors:
        loc = tuple(error["loc"])
        if "str" in loc and any(b[: loc.index("str")] == loc[: loc.index("str")] for b in branches):
            continue  # the plain-name shorthand failed too: report only why the long form did
        path = tuple(
            p
            for p in loc
            if p not in _BRANCHES and not (isinstance(p, str) and p.startswith("function-"))
        )
        known = path
        while known and known not in lines:
            known = known[:-1]
        where, line = lines.get(known, (file, 1))
        message = error["msg"].removeprefix("Value error, ")
        head, sep, rest = message.partition(": ")
        if sep and " " not in head and "." in head:  # "columns.mrr: ..." from a model check
            deeper = (*path, *head.split("."))
            if deeper in lines:
                path, (where, line), message = deeper, lines[deeper], rest
        if error["type"] == "extra_forbidden":
            message = f"unknown key{_sibling_hint(str(path[-1]), path[:-1])}"
        elif error["type"] == "missing":
            message = "this key is required"
        problems.append(f"{where}, line {line}, {_dotted(path) or 'top level'}: {message}")
    unique = list(dict.fromkeys(problems))
    return "The mapping file is not valid:\n" + "\n".join(f"- {p}" for p in unique)


def _sibling_hint(key: str, parent: KeyPath) -> str:
    """The closest valid key at the place of an unknown key."""
    depth = len(parent)
    if depth == 0:
        choices: Any = MappingSpec.model_fields
    elif parent[0] == "sources" and depth == 2:
        choices = SourceSpec.model_fields
    elif parent[0] == "sources" and depth >= 3 and parent[2] == "mrr":
        choices = MrrSpec.model_fields
    else:
        choices = [f if f != "from_" else "from" for f in FieldSpec.model_fields]
    choices = [c if c != "from_" else "from" for c in choices]
    return f" {key!r}{closest(key, choices)}; valid keys here: {', '.join(choices)}"


def load_mapping(path: Path) -> tuple[MappingSpec, str]:
    """Read, merge presets into, and validate a mapping file; returns it and its SHA-256."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"The mapping file {path} does not exist.")
    text = path.read_text(encoding="utf-8")
    raw, lines = load_yaml(text, path.name)
    if not isinstance(raw, dict):
        raise MappingError(f"{path.name}, line 1: the mapping file must be a YAML mapping of keys.")
    merged = _with_presets(raw, lines, path.name)
    try:
        spec = MappingSpec.model_validate(merged)
    except ValidationError as exc:
        raise MappingError(_describe(exc, lines, path.name)) from None
    return spec, hashlib.sha256(text.encode("utf-8")).hexdigest()


def preset_catalog() -> dict[str, dict[str, Any]]:
    """Every preset's description, table and columns, for docs and ``churn map presets``."""
    out: dict[str, dict[str, Any]] = {}
    for name, path in preset_names().items():
        raw, _ = load_yaml(path.read_text(encoding="utf-8"), path.name)
        out[name] = raw["sources"][name.split(".", 1)[1]]
    return out
