"""Activity features from the export's own vocabulary: its event types and product features.

A social app logs ``post``, ``like``, ``message``; a CRM logs ``add_contact``, ``cancel_meeting``.
The hand-written usage features pool all of them; here each of the most frequent event types and
product features (up to a cap, the rest pooled as ``other``) gets its own counts over 30 and 90
days, change against the previous 30 days, days since the last one, share of all activity and
count per active user. Every generated column gets a catalog entry from a template, so training,
``/score``, the UI and the docs read it like a hand-written one.

The vocabulary (which terms get columns) is a schema choice made once per export, over its whole
event log, so the labeled set and the snapshot of one export get the same columns; it can be
passed explicitly, like the as-of dates. The values at each as-of date read only events before
it (a term first used later has zero counts there), which the leakage property test proves for
arbitrary vocabularies.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
from rich.table import Table

from features.catalog import KEY_COLUMNS, Feature

SOURCES = ("event_type", "feature")
PREFIX = {"event_type": "type", "feature": "uses"}
"""Column prefixes; no hand-written catalog name starts with them, so no name can collide."""
NOUN = {"event_type": "events", "feature": "uses"}
METRICS = ("30d", "90d", "change_30d", "days_since", "share_90d", "per_user_30d")
SQL_METRIC = {
    "30d": "n_30d", "90d": "n_90d", "change_30d": "change_30d", "days_since": "days_since",
    "share_90d": "share_90d", "per_user_30d": "per_user_30d",
}  # fmt: skip
OTHER = "other"
_SIGN_IN = re.compile(
    r"^((user|account|member|customer) )?"
    r"(log ?in|logged ?in|sign ?in|signed ?in|session ?start(ed)?|app ?open(ed)?)$"
)


def _normal(name: str) -> str:
    """Lower case, separators as single spaces: ``Signed_In`` and ``signed-in`` read alike."""
    return re.sub(r"[\s_\-.:/]+", " ", name.strip().lower())


def is_sign_in(event_type: str) -> bool:
    """The default reading of a sign-in: login, log_in, 'Signed In', user_login, session_start,
    app_open (case and separators ignored); 'login_failed' is not one."""
    return bool(_SIGN_IN.match(_normal(event_type)))


def slug(value: str) -> str:
    """A column-name-safe version of a term: ASCII, lower case, underscores, at most 40 chars."""
    ascii_text = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "_", ascii_text.lower()).strip("_")[:40]


@dataclass(frozen=True)
class Term:
    """One vocabulary entry: an event type or product feature with its own columns."""

    source: str
    value: str
    """The export's own spelling (``None`` pools the rest: ``other``)."""
    key: str
    """Unique within its source; used in column names."""

    @property
    def term(self) -> str:
        return f"{self.source}:{self.key}"

    def column(self, metric: str) -> str:
        return f"{PREFIX[self.source]}_{self.key}_{metric}"

    def label(self) -> str:
        if self.key == OTHER and self.value == "":
            return f"other {'event types' if self.source == 'event_type' else 'features'}"
        return f"'{self.value}'"


@dataclass(frozen=True)
class Vocabulary:
    """The terms that get their own columns, and which event types mean a sign-in."""

    event_types: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    sign_in: tuple[str, ...] = ()

    def terms(self) -> tuple[Term, ...]:
        out: list[Term] = []
        for source, values in (("event_type", self.event_types), ("feature", self.features)):
            taken = {OTHER}
            for value in values:
                key = slug(value) or "term"
                base, n = key, 2
                while key in taken:
                    key, n = f"{base}_{n}", n + 1
                taken.add(key)
                out.append(Term(source, value, key))
            out.append(Term(source, "", OTHER))
        return tuple(out)

    def table(self) -> pd.DataFrame:
        """The ``vocabulary`` table the SQL joins on (pooled terms are implicit)."""
        named = [t for t in self.terms() if not (t.key == OTHER and t.value == "")]
        return pd.DataFrame(
            {
                "source": pd.Series([t.source for t in named], dtype="string"),
                "value": pd.Series([t.value for t in named], dtype="string"),
                "term": pd.Series([t.term for t in named], dtype="string"),
            }
        )

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "event_types": list(self.event_types),
            "features": list(self.features),
            "sign_in": list(self.sign_in),
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Iterable[str]]) -> Vocabulary:
        return cls(
            tuple(raw.get("event_types", ())),
            tuple(raw.get("features", ())),
            tuple(raw.get("sign_in", ())),
        )


def _most_frequent(values: pd.Series, cap: int) -> tuple[str, ...]:
    counts = values.dropna().astype("string").value_counts()
    counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
    return tuple(str(v) for v in counts.index[:cap])


def infer_vocabulary(
    events: pd.DataFrame | None,
    before: pd.Timestamp | None = None,
    max_event_types: int = 15,
    max_features: int = 15,
    sign_in: Sequence[str] | None = None,
) -> Vocabulary:
    """The most frequent event types and features among events before ``before``.

    ``sign_in``: the event types that mean a sign-in; None reads them from the names
    (:func:`is_sign_in`). Ties in frequency break by name, so the choice is reproducible.
    """
    if events is None or events.empty:
        return Vocabulary(sign_in=tuple(sign_in or ()))
    frame = events
    if before is not None:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="mixed")
        cut = pd.Timestamp(before)
        cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
        frame = frame[(stamps < cut).to_numpy()]
    types = _most_frequent(frame["event_type"], max_event_types)
    features = _most_frequent(frame["feature"], max_features) if "feature" in frame.columns else ()
    if sign_in is None:
        every = frame["event_type"].dropna().astype("string").unique()
        chosen = tuple(sorted(str(t) for t in every if is_sign_in(str(t))))
    else:
        chosen = tuple(sign_in)
    return Vocabulary(types, features, chosen)


def pivot(long: pd.DataFrame, vocabulary: Vocabulary, keys: pd.DataFrame) -> pd.DataFrame:
    """``vocabulary.sql``'s long rows as one column per term and metric, aligned with ``keys``.

    Counts are 0 where a customer never used a term; share and per-user figures are 0 where the
    customer had other activity in the window and missing where it had none; change and days
    since stay missing (no previous period, never used).
    """
    out = keys[list(KEY_COLUMNS)].reset_index(drop=True)
    index = pd.MultiIndex.from_frame(out)
    terms = vocabulary.terms()
    frame = long.set_index(["customer_id", "as_of", "term"])
    columns: dict[str, pd.Series] = {}
    for term in terms:
        try:
            rows = frame.xs(term.term, level="term")
        except KeyError:
            rows = frame.iloc[:0].droplevel("term")
        rows = rows.reindex(index)
        for metric in METRICS:
            columns[term.column(metric)] = rows[SQL_METRIC[metric]].astype("float64")
    for source in SOURCES:
        mine = [t for t in terms if t.source == source]
        for metric in ("30d", "90d"):
            for t in mine:
                columns[t.column(metric)] = columns[t.column(metric)].fillna(0.0)
        for metric in ("share_90d", "per_user_30d"):
            block = pd.concat([columns[t.column(metric)] for t in mine], axis=1)
            known = block.notna().any(axis=1)
            for t in mine:
                name = t.column(metric)
                columns[name] = columns[name].where(~(known & columns[name].isna()), 0.0)
    wide = pd.DataFrame({k: v.to_numpy() for k, v in columns.items()})
    return pd.concat([out, wide], axis=1)


def vocabulary_catalog(vocabulary: Vocabulary, with_users: bool) -> tuple[Feature, ...]:
    """Catalog entries of the generated columns, from one template per metric."""
    out: list[Feature] = []
    for term in vocabulary.terms():
        label, noun = term.label(), NOUN[term.source]
        src = "events.timestamp" if term.source == "event_type" else "events.feature"
        requires: tuple[str, ...] = (src,)
        entries = [
            ("30d", noun, f"{label} {noun} in the last 30 days",
             f"{{value:.0f}} {label} {noun} in the last 30 days"),
            ("90d", noun, f"{label} {noun} in the last 90 days",
             f"{{value:.0f}} {label} {noun} in the last 90 days"),
            ("change_30d", "ratio", f"Change in {label} {noun}, last 30 days vs the previous 30",
             f"{label.capitalize()} {noun} {{up_down}} {{abs_pct:.0f}} % vs the previous 30 days"),
            ("days_since", "days", f"Days since the last {label} {noun[:-1]}",
             f"Last {label} {noun[:-1]} {{value:.0f}} days ago"),
            ("share_90d", "share", f"Share of activity that is {label}, last 90 days",
             f"{{pct:.0f}} % of activity was {label} in the last 90 days"),
        ]  # fmt: skip
        if with_users:
            entries.append(
                ("per_user_30d", f"{noun} per user", f"{label} {noun} per active user, 30 days",
                 f"{{value:.1f}} {label} {noun} per active user in the last 30 days")
            )  # fmt: skip
        for metric, unit, description, sentence in entries:
            needs = requires + (("events.user_id",) if metric == "per_user_30d" else ())
            title = description[0].upper() + description[1:]
            never = f"No {label} {noun[:-1]} yet" if metric == "days_since" else ""
            out.append(
                Feature(term.column(metric), "usage", unit, title, sentence, needs, missing=never)
            )
    return tuple(out)


def drop_unavailable(frame: pd.DataFrame, vocabulary: Vocabulary, with_users: bool) -> pd.DataFrame:
    """Without ``events.user_id`` the per-user columns are absent, never zero."""
    if with_users:
        return frame
    return frame.drop(columns=[t.column("per_user_30d") for t in vocabulary.terms()])


def render_vocabulary(vocabulary: Vocabulary, events: pd.DataFrame) -> Table:
    """What ``churn validate`` shows: the event types and features with their own columns."""
    table = Table(title="Event vocabulary (the most frequent get their own features)")
    for name in ("source", "value", "events", "columns"):
        table.add_column(name, overflow="fold")
    for source, values in (
        ("event_type", vocabulary.event_types),
        ("feature", vocabulary.features),
    ):
        if source not in events.columns:
            continue
        counts = events[source].astype("string").value_counts()
        for term in vocabulary.terms():
            if term.source != source:
                continue
            if term.value == "" and term.key == OTHER:
                n = int(counts[~counts.index.isin(values)].sum())
                shown = f"{len(counts) - len(values)} others"
            else:
                n, shown = int(counts.get(term.value, 0)), term.value
                if source == "event_type" and term.value in vocabulary.sign_in:
                    shown += " (sign-in)"
            table.add_row(source, shown, f"{n:,}", f"{term.column('*')}")
    if not vocabulary.sign_in:
        table.caption = (
            "No event type reads as a sign-in, so login features are absent; name them with "
            "sign_in_events in features.yaml."
        )
    return table
