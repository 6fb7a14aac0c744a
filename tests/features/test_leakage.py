"""The leakage guard: a feature for as-of date t reads only data stamped before t.

Property: changing, adding or deleting any raw row stamped on or after an as-of date — and moving
facts that become known only later (a subscription's end, a ticket's resolution, a payment) to
other dates on or after it — changes no feature of that as-of row, nor which rows exist.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.contract import RawTables
from features.engine import build_features, default_vocabulary

START = pd.Timestamp("2024-01-01", tz="UTC")
DAYS = 150
# table -> the column that stamps a row (when it became known)
STAMP = {
    "subscriptions": "start_date",
    "events": "timestamp",
    "tickets": "opened_at",
    "invoices": "issued_at",
    "nps": "responded_at",
    "marketing": "timestamp",
}
# facts stamped later than their row: (table, column) that may only move among dates >= as_of
LATER_FACTS = (
    ("subscriptions", "end_date"),
    ("tickets", "resolved_at"),
    ("invoices", "paid_at"),
)
DATE_COLUMNS = {"start_date", "end_date", "signup_date"}


def _times(rng: np.random.Generator, n: int, lo: int = 0, hi: int = DAYS) -> pd.Series:
    seconds = rng.integers(lo * 86400, hi * 86400, n)
    return pd.Series(START + pd.to_timedelta(seconds, unit="s"))


DEFAULT_TYPES = ("login", "report", "export")
DEFAULT_FEATURES = tuple(f"f{i}" for i in range(8))


def random_world(
    seed: int,
    customers: int = 12,
    event_types: Sequence[str] = DEFAULT_TYPES,
    product_features: Sequence[str] = DEFAULT_FEATURES,
) -> RawTables:
    """A tiny world with every table and every optional column, dense enough to hit edge cases.

    Customers carry typed attributes as a CSV would give them (text): a number, a flag, a date,
    a category and free text; the event vocabulary is whatever the caller names.
    """
    rng = np.random.default_rng(seed)
    ids = [f"c{i}" for i in range(customers)]
    born = _times(rng, customers, -20000, -7000).dt.strftime("%Y-%m-%d")
    cust = pd.DataFrame(
        {
            "customer_id": ids,
            "signup_date": _times(rng, customers, -200, 60).dt.normalize(),
            "industry": rng.choice(["retail", "saas"], customers),
            "csm_owner": "ann",
            "balance": [f"{v:.2f}" for v in rng.normal(1000, 300, customers)],
            "is_member": rng.choice(["yes", "no"], customers),
            "born_on": born.to_numpy(),
            "renewed_on": _times(rng, customers, 0, DAYS).dt.strftime("%Y-%m-%d").to_numpy(),
            "segment": rng.choice(["a", "b"], customers),
            "notes": [f"called on day {i} about the renewal plan" for i in range(customers)],
        }
    )
    n_sub = customers * 2
    start = _times(rng, n_sub, -200, DAYS).dt.normalize()
    end = start + pd.to_timedelta(rng.integers(5, 200, n_sub), unit="D")
    end = end.where(rng.random(n_sub) < 0.5)
    subs = pd.DataFrame(
        {
            "subscription_id": [f"s{i}" for i in range(n_sub)],
            "customer_id": rng.choice(ids, n_sub),
            "start_date": start,
            "end_date": end,
            "mrr": rng.choice([0.0, 50.0, 100.0, 250.0], n_sub),
            "plan": "pro",
            "seats": rng.integers(1, 6, n_sub).astype(float),
        }
    )
    n_ev = 600
    events = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, n_ev),
            "timestamp": _times(rng, n_ev),
            "event_type": rng.choice(list(event_types), n_ev),
            "user_id": rng.choice(["u1", "u2", "u3"], n_ev),
            "feature": rng.choice(list(product_features), n_ev),
            "value": rng.random(n_ev) * 10,
        }
    )
    n_t = 60
    opened = _times(rng, n_t)
    resolved = opened + pd.to_timedelta(rng.integers(1, 30 * 86400, n_t), unit="s")
    tickets = pd.DataFrame(
        {
            "ticket_id": [f"t{i}" for i in range(n_t)],
            "customer_id": rng.choice(ids, n_t),
            "opened_at": opened,
            "resolved_at": resolved.where(rng.random(n_t) < 0.8),
            "priority": rng.choice(["low", "medium", "high", "urgent"], n_t),
            "category": "bug",
            "csat": rng.choice([1.0, 3.0, 5.0, np.nan], n_t),
        }
    )
    n_i = 60
    issued = _times(rng, n_i)
    due = issued + pd.Timedelta(days=14)
    paid = issued + pd.to_timedelta(rng.integers(0, 40 * 86400, n_i), unit="s")
    invoices = pd.DataFrame(
        {
            "invoice_id": [f"i{i}" for i in range(n_i)],
            "customer_id": rng.choice(ids, n_i),
            "issued_at": issued,
            "due_at": due,
            "paid_at": paid.where(rng.random(n_i) < 0.85),
            "amount": rng.choice([50.0, 100.0], n_i),
        }
    )
    nps = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, 30),
            "responded_at": _times(rng, 30),
            "score": rng.integers(0, 11, 30).astype(float),
        }
    )
    marketing = pd.DataFrame(
        {
            "customer_id": rng.choice(ids, 80),
            "timestamp": _times(rng, 80),
            "channel": "email",
            "action": rng.choice(["sent", "open", "click", "attend"], 80),
        }
    )
    return RawTables(
        customers=cust,
        subscriptions=subs,
        events=events,
        tickets=tickets,
        invoices=invoices,
        nps=nps,
        marketing=marketing,
    )


def _stamp(frame: pd.DataFrame, column: str) -> pd.Series:
    values = pd.to_datetime(frame[column])
    return values if values.dt.tz is not None else values.dt.tz_localize("UTC")


def perturb_after(tables: RawTables, as_of: pd.Timestamp, seed: int) -> RawTables:
    """Delete, change and add rows stamped on or after ``as_of``; move later facts past it."""
    rng = np.random.default_rng(seed)
    changed: dict[str, pd.DataFrame] = {}
    for table, column in STAMP.items():
        frame = getattr(tables, table).copy()
        late = (_stamp(frame, column) >= as_of).to_numpy()
        # delete some late rows
        frame = frame[~(late & (rng.random(len(frame)) < 0.3))].reset_index(drop=True)
        late = (_stamp(frame, column) >= as_of).to_numpy()
        # change every column of some late rows (ids, values, and the stamp within [as_of, ...))
        edit = late & (rng.random(len(frame)) < 0.5)
        k = int(edit.sum())
        if k:
            for col in frame.columns:
                if col == column:
                    new = as_of + pd.to_timedelta(rng.integers(0, 60 * 86400, k), unit="s")
                    if col in DATE_COLUMNS:
                        new = new.normalize()
                        new = new.where(new >= as_of, new + pd.Timedelta(days=1))
                    frame.loc[edit, col] = (
                        new if frame[col].dt.tz is not None else new.tz_localize(None)
                    )
                elif pd.api.types.is_numeric_dtype(frame[col]):
                    frame.loc[edit, col] = rng.integers(0, 5, k).astype(float)
                elif col == "customer_id":
                    frame.loc[edit, col] = rng.choice(tables.customers["customer_id"], k)
        # add new late rows: copies of random rows re-stamped on or after as_of
        if len(frame):
            extra = frame.sample(n=min(5, len(frame)), random_state=seed % 2**31).copy()
            new = as_of + pd.to_timedelta(rng.integers(0, 60 * 86400, len(extra)), unit="s")
            if column in DATE_COLUMNS:
                new = new.normalize() + pd.Timedelta(days=1)
            extra[column] = new if extra[column].dt.tz is not None else new.tz_localize(None)
            id_col = f"{table.rstrip('s')}_id"
            if id_col in extra.columns:
                extra[id_col] = [f"new{i}" for i in range(len(extra))]
            frame = pd.concat([frame, extra], ignore_index=True)
        changed[table] = frame
    for table, column in LATER_FACTS:
        frame = changed[table]
        values = _stamp(frame, column)
        later = (values >= as_of).to_numpy() | values.isna().to_numpy()
        stamp_ok = (_stamp(frame, STAMP[table]) < as_of).to_numpy()
        move = later & stamp_ok & (rng.random(len(frame)) < 0.7)
        k = int(move.sum())
        if k:
            new = as_of + pd.to_timedelta(rng.integers(0, 90 * 86400, k), unit="s")
            if column in DATE_COLUMNS:
                new = new.normalize() + pd.Timedelta(days=1)
            new_values = pd.Series(new).where(rng.random(k) < 0.8)  # some become unknown (null)
            if frame[column].dt.tz is None:
                new_values = new_values.dt.tz_localize(None)
            frame.loc[move, column] = new_values.to_numpy()
    return RawTables(customers=tables.customers, **changed)


# arbitrary vocabularies: any text an export might use for its event types and features
NAMES = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=6, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world_seed=st.integers(0, 2**16),
    change_seed=st.integers(0, 2**16),
    as_of_day=st.integers(20, DAYS - 10),
    event_types=NAMES,
    product_features=NAMES,
)
def test_rows_stamped_on_or_after_as_of_change_no_feature(
    world_seed: int,
    change_seed: int,
    as_of_day: int,
    event_types: list[str],
    product_features: list[str],
) -> None:
    tables = random_world(world_seed, 12, event_types, product_features)
    as_of = START + pd.Timedelta(days=as_of_day)
    # the vocabulary (which terms get columns) is the export's schema, fixed like the as-of date
    vocabulary = default_vocabulary(tables)
    before = build_features(tables, [as_of.date()], vocabulary=vocabulary)
    after = build_features(
        perturb_after(tables, as_of, change_seed), [as_of.date()], vocabulary=vocabulary
    )
    pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-12)


def test_perturbation_really_changes_the_future() -> None:
    """Guard against a vacuous property: the same perturbation before as_of does change features."""
    tables = random_world(7)
    early = START + pd.Timedelta(days=30)
    late = START + pd.Timedelta(days=120)
    perturbed = perturb_after(tables, early, 3)
    before = build_features(tables, [late.date()])
    after = build_features(perturbed, [late.date()])
    assert not before.equals(after)


def test_every_contract_table_is_covered_by_the_property() -> None:
    tables = random_world(1)
    assert set(STAMP) | {"customers"} == set(tables.present())
    as_of = date(2024, 3, 1)
    built = build_features(tables, [as_of])
    assert len(built) > 0
