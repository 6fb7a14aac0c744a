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
from sqlglot import exp

from features.catalog import KEY_COLUMNS, Feature
from features.sql import (
    DuckDBEngine,
    SqlEngine,
    alias,
    column,
    double,
    literal,
    on_keys,
    to_sql,
)

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


def ranked_vocabulary(
    engine: SqlEngine,
    max_event_types: int = 15,
    max_features: int = 15,
    sign_in: Sequence[str] | None = None,
) -> Vocabulary:
    """The most frequent event types and features of the engine's ``events`` table.

    ``sign_in``: the event types that mean a sign-in; None reads them from the names
    (:func:`is_sign_in`). Ties in frequency break by name, so the choice is reproducible.
    """

    def ranked(source: str, cap: int) -> tuple[str, ...]:
        if cap == 0:
            return ()
        value = exp.cast(column(source), exp.DataType.build("VARCHAR"))
        query = (
            exp.select(alias(value, "value"), alias(exp.Count(this=exp.Star()), "n"))
            .from_("events")
            .where(column(source).is_(exp.null()).not_())
            .group_by(value)
            .order_by(exp.Ordered(this=column("n"), desc=True), column("value"))
            .limit(cap)
        )
        return tuple(str(v) for v in engine.fetch(to_sql(query))["value"])

    if sign_in is None:
        kinds = engine.fetch("SELECT DISTINCT CAST(event_type AS VARCHAR) AS t FROM events")["t"]
        chosen = tuple(sorted(str(t) for t in kinds.dropna() if is_sign_in(str(t))))
    else:
        chosen = tuple(sign_in)
    return Vocabulary(
        ranked("event_type", max_event_types), ranked("feature", max_features), chosen
    )


def infer_vocabulary(
    events: pd.DataFrame | None,
    before: pd.Timestamp | None = None,
    max_event_types: int = 15,
    max_features: int = 15,
    sign_in: Sequence[str] | None = None,
) -> Vocabulary:
    """:func:`ranked_vocabulary` of a pandas event log, counting only events before ``before``."""
    if events is None or events.empty:
        return Vocabulary(sign_in=tuple(sign_in or ()))
    frame = events
    if before is not None:
        stamps = pd.to_datetime(frame["timestamp"], utc=True, format="mixed")
        cut = pd.Timestamp(before)
        cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
        frame = frame[(stamps < cut).to_numpy()]
    engine = DuckDBEngine()
    missing = pd.Series(pd.NA, index=frame.index, dtype="string")
    engine.register(
        "events",
        pd.DataFrame(
            {s: frame[s].astype("string") if s in frame.columns else missing for s in SOURCES}
        ),
    )
    return ranked_vocabulary(engine, max_event_types, max_features, sign_in)


def vocabulary_query(vocabulary: Vocabulary, with_users: bool, long: str) -> str:
    """One column per term and metric for every spine row, from ``vocabulary.sql``'s long rows
    (materialised as ``long``).

    Counts are 0 where a customer never used a term; share and per-user figures are 0 where the
    customer had other activity in the window and missing where it had none; change and days
    since stay missing (no previous period, never used). Without ``events.user_id`` the
    per-user columns are absent, never zero.
    """
    terms = vocabulary.terms()
    metrics = [m for m in METRICS if with_users or m != "per_user_30d"]
    wide = (
        exp.select(
            "customer_id",
            "as_of",
            *[
                alias(
                    exp.Max(
                        this=exp.case()
                        .when(exp.EQ(this=column("term"), expression=literal(t.term)),
                              column(SQL_METRIC[m]))
                    ),
                    t.column(m),
                )
                for t in terms
                for m in metrics
            ],
        )
        .from_(long)
        .group_by("customer_id", "as_of")
    )  # fmt: skip

    def filled(term: Term, metric: str) -> exp.Expr:
        value = column(term.column(metric), "w")
        if metric in ("30d", "90d"):
            return exp.func("COALESCE", value, literal(0.0))
        if metric in ("share_90d", "per_user_30d"):
            mine = [t for t in terms if t.source == term.source]
            known = exp.or_(*[column(t.column(metric), "w").is_(exp.null()).not_() for t in mine])
            unused = exp.and_(value.is_(exp.null()), known)
            return exp.case().when(unused, literal(0.0)).else_(value)
        return value

    query = (
        exp.select(
            column("customer_id", "s"),
            column("as_of", "s"),
            *[alias(double(filled(t, m)), t.column(m)) for t in terms for m in metrics],
        )
        .from_(exp.to_table("spine").as_("s"))
        .join(wide.subquery("w"), on=on_keys("s", "w", KEY_COLUMNS), join_type="left")
    )
    return to_sql(query)


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
