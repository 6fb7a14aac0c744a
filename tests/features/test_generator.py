"""The synthetic world: reproducible, contract-shaped, and churning for the documented reasons."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from features.catalog import BY_NAME
from features.contract import (
    EXIT_CATEGORIES,
    MARKETING_ACTIONS,
    TABLE_COLUMNS,
    TICKET_PRIORITIES,
    RawTables,
    validate_folder,
)
from features.errors import ChurnError
from features.generator import (
    DEFAULT_PROCESS,
    HAZARD_DRIVERS,
    LAUNCHED_FEATURES,
    PLANS,
    World,
    futures,
    generate_to_folder,
    generate_world,
    oracle_scores,
    oracle_survival,
    point_in_time_survival,
    survival_table,
    write_world,
)

START = date(2024, 1, 1)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(customers=1500, months=24, seed=7, start=START)


@pytest.fixture(scope="module")
def written(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_world(world, tmp_path_factory.mktemp("world") / "demo")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _churn_month_at_risk(world: World) -> pd.DataFrame:
    truth = world.truth_hazard
    return truth[truth["at_risk"]]


def test_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    first = write_world(generate_world(300, 6, seed=11), tmp_path / "a")
    second = write_world(generate_world(300, 6, seed=11), tmp_path / "b")
    assert _files(first) == _files(second)


def test_different_seeds_give_different_worlds(tmp_path: Path) -> None:
    one = write_world(generate_world(300, 6, seed=1), tmp_path / "a")
    two = write_world(generate_world(300, 6, seed=2), tmp_path / "b")
    assert _files(one)["events.parquet"] != _files(two)["events.parquet"]


def test_written_tables_have_the_required_columns_in_contract_order(written: Path) -> None:
    for table, (required, optional) in TABLE_COLUMNS.items():
        columns = tuple(pd.read_parquet(written / f"{table}.parquet").columns)
        assert set(required) <= set(columns), table
        assert columns == tuple(c for c in required + optional if c in columns), table


def test_customer_status_flags_exactly_the_churned_customers(world: World) -> None:
    customers, exits = world.tables.customers, world.tables.exit_reasons
    assert exits is not None
    churned = customers["customer_id"].isin(exits["customer_id"])
    assert (customers["status"] == np.where(churned, "churned", "active")).all()


def test_tables_round_trip_through_parquet_unchanged(world: World, written: Path) -> None:
    for table, frame in world.tables.present().items():
        pd.testing.assert_frame_equal(pd.read_parquet(written / f"{table}.parquet"), frame)


def test_categorical_values_come_from_the_contract(world: World) -> None:
    tables = world.tables
    assert tables.tickets is not None and tables.marketing is not None
    assert tables.exit_reasons is not None
    assert set(tables.tickets["priority"]) == set(TICKET_PRIORITIES)
    assert set(tables.marketing["action"]) == set(MARKETING_ACTIONS)
    assert set(tables.exit_reasons["category"]) == set(EXIT_CATEGORIES)
    assert set(tables.subscriptions["plan"]) <= set(PLANS)
    assert tables.customers["customer_id"].str.fullmatch(r"C\d{6}").all()


def test_timestamps_are_utc_and_dates_are_calendar_days(world: World) -> None:
    events, subs = world.tables.events, world.tables.subscriptions
    assert events is not None
    assert str(events["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(isinstance(d, date) for d in subs["start_date"])


def test_no_events_on_or_after_a_churned_customers_end_date(world: World) -> None:
    events, exits = world.tables.events, world.tables.exit_reasons
    assert events is not None and exits is not None
    churned_at = events["customer_id"].astype(str).map(exits.set_index("customer_id")["churned_at"])
    assert not (events["timestamp"] >= churned_at).any()
    signup = pd.to_datetime(
        events["customer_id"]
        .astype(str)
        .map(world.tables.customers.set_index("customer_id")["signup_date"])
    ).dt.tz_localize("UTC")
    assert not (events["timestamp"] < signup).any()


def test_a_churned_customers_last_subscription_ends_and_active_ones_stay_open(
    world: World,
) -> None:
    subs, exits = world.tables.subscriptions, world.tables.exit_reasons
    assert exits is not None
    last = subs.groupby("customer_id").tail(1).set_index("customer_id")
    churned = last.index.isin(exits["customer_id"])
    assert last.loc[churned, "end_date"].notna().all()
    assert last.loc[~churned, "end_date"].isna().all()
    ends = exits.set_index("customer_id")["churned_at"].dt.date
    assert (last.loc[churned, "end_date"] == ends.reindex(last.index[churned])).all()
    follow_on = subs.groupby("customer_id")["start_date"].shift(-1).dropna()
    assert (subs.loc[follow_on.index, "end_date"] == follow_on).all()  # consecutive periods


def test_monthly_churn_rate_is_within_the_documented_range(world: World) -> None:
    rate = _churn_month_at_risk(world)["churned"].mean()
    assert 0.01 <= rate <= 0.03
    assert world.drivers["measured"]["monthly_churn_rate"] == pytest.approx(rate, abs=1e-4)


def test_unavoidable_churn_is_a_small_share_of_all_churn(world: World) -> None:
    churners = _churn_month_at_risk(world).query("churned")
    assert 0.03 <= churners["unavoidable"].mean() <= 0.12  # docs/generator.md: about 6 %


def test_hazard_spreads_from_healthy_to_deteriorating_customers(world: World) -> None:
    truth = _churn_month_at_risk(world)
    quiet = ~truth[["late_payer", "champion_left", "unresolved_high_ticket", "low_breadth"]].any(
        axis=1
    )
    healthy = truth.loc[quiet & (truth["health"] > 0.5), "avoidable_hazard"].median()
    declining = truth.loc[truth["declining"], "hazard"]
    assert healthy < 0.004  # docs: about 0.25 % a month
    assert 0.07 <= declining.median() <= 0.25  # docs: about 12 % a month, a quarter above 30 %


def test_realised_churn_recovers_the_documented_driver_effects(world: World) -> None:
    truth = _churn_month_at_risk(world)
    truth = truth[~truth["unavoidable"]]  # unavoidable churn is independent of the drivers
    drivers = {
        "health": truth["health"],
        "health_drop": truth["health_drop"],
        "late_payer": truth["late_payer"],
        "late_payer_x_small": truth["late_payer"] & truth["small_account"],
        "champion_left": truth["champion_left"],
        "champion_left_x_unhealthy": truth["champion_left"] & (truth["health"] < 0),
        "unresolved_high_ticket": truth["unresolved_high_ticket"],
        "low_breadth": truth["low_breadth"],
        "recent_downgrade": truth["recent_downgrade"],
        "early_tenure": truth["early_tenure"],
    }
    plans = {plan: truth["plan"] == plan for plan in PLANS if plan != "growth"}
    design = pd.DataFrame(drivers | plans).astype(float)
    fit = LogisticRegression(C=1e6, max_iter=5000).fit(design, truth["churned"])
    estimated = dict(zip(design.columns, fit.coef_[0], strict=True))
    loose = ("champion", "late_payer", "recent_downgrade")  # rarer states: larger standard errors
    for name in drivers:
        tolerance = 0.7 if name.startswith(loose) else 0.4  # about 2.5 standard errors
        assert estimated[name] == pytest.approx(getattr(DEFAULT_PROCESS, name), abs=tolerance)
    assert world.drivers["drivers"]["late_payer"]["coefficient"] == DEFAULT_PROCESS.late_payer


def test_every_true_driver_names_catalog_features_that_observe_it(world: World) -> None:
    drivers = world.drivers["drivers"]
    assert set(drivers) == set(HAZARD_DRIVERS)
    for name, driver in drivers.items():
        assert driver["features"], name
        assert set(driver["features"]) <= set(BY_NAME), name


def test_late_payments_hurt_small_accounts_more_than_big_ones(world: World) -> None:
    truth = _churn_month_at_risk(world)
    small, late = truth["small_account"], truth["late_payer"]

    def ratio(size: pd.Series) -> float:
        return float(
            truth.loc[size & late, "churned"].mean() / truth.loc[size & ~late, "churned"].mean()
        )

    assert ratio(small) > 2 * ratio(~small)


def test_a_champion_leaving_hurts_mostly_when_health_is_already_low(world: World) -> None:
    truth = _churn_month_at_risk(world)
    gone, low = truth["champion_left"], truth["health"] < 0

    def ratio(health: pd.Series) -> float:
        return float(
            truth.loc[health & gone, "churned"].mean() / truth.loc[health & ~gone, "churned"].mean()
        )

    assert ratio(low) > 1.5 * ratio(~low)


def test_late_payers_churn_several_times_as_often_as_the_docs_say(world: World) -> None:
    truth = _churn_month_at_risk(world)
    late = truth["late_payer"]
    ratio = truth.loc[late, "churned"].mean() / truth.loc[~late, "churned"].mean()
    assert 2.0 <= ratio <= 5.0  # docs/generator.md: about 3x


def test_late_payers_show_late_or_unpaid_invoices(world: World) -> None:
    invoices = world.tables.invoices
    assert invoices is not None
    truth = _churn_month_at_risk(world)
    late_ids = set(truth.loc[truth["late_payer"], "customer_id"])
    late = invoices["paid_at"].isna() | (invoices["paid_at"] > invoices["due_at"])
    share_late = late.groupby(invoices["customer_id"].isin(late_ids)).mean()
    assert share_late[True] > 3 * share_late[False]


def test_churners_activity_declines_in_the_three_months_before_churn(world: World) -> None:
    events, exits = world.tables.events, world.tables.exit_reasons
    assert events is not None and exits is not None
    month = events["timestamp"].dt.tz_localize(None).dt.to_period("M")
    counts = events.groupby([events["customer_id"].astype(str), month]).size()
    per_month = counts.rename("events").reset_index()
    churn_month = exits.set_index("customer_id")["churned_at"].dt.tz_localize(None)
    offset = per_month["timestamp"] - per_month["customer_id"].map(churn_month.dt.to_period("M"))
    months_before = offset.map(lambda delta: -delta.n if pd.notna(delta) else np.nan)
    before = per_month.groupby(months_before)["events"].mean()
    assert before[1] < before[4]
    assert before[1] < 0.75 * before[6]  # decline against the account's own past


def test_the_champions_events_stop_after_they_leave(world: World) -> None:
    events = world.tables.events
    assert events is not None
    truth = _churn_month_at_risk(world)
    departed = truth[truth["champion_left"]].groupby("customer_id")["month"].min()
    champion = events[events["user_id"].astype(str).str.endswith("-U000")]
    since = champion["customer_id"].astype(str).map(departed)
    after = champion["timestamp"].dt.date >= since.where(since.notna(), date.max)
    assert not after.any()


def test_a_launched_feature_first_appears_at_its_launch_date(world: World) -> None:
    events = world.tables.events
    assert events is not None
    for feature, launched in world.drivers["world"]["feature_launches"].items():
        assert feature in LAUNCHED_FEATURES
        first_use = events.loc[events["feature"] == feature, "timestamp"].min()
        assert first_use.date() >= date.fromisoformat(launched)
        assert first_use.date() < date.fromisoformat(launched) + timedelta(days=7)


def test_truth_is_written_apart_from_the_contract_tables(written: Path) -> None:
    assert {p.name for p in (written / "truth").iterdir()} == {
        "hazard.parquet", "drivers.json", "survival.parquet",
    }  # fmt: skip
    hazard = pd.read_parquet(written / "truth" / "hazard.parquet")
    assert {"customer_id", "month", "hazard", "health", "late_payer", "champion_left"} <= set(
        hazard.columns
    )
    drivers = json.loads((written / "truth" / "drivers.json").read_text())
    odds_ratio = np.exp(DEFAULT_PROCESS.late_payer)
    assert drivers["drivers"]["late_payer"]["odds_ratio"] == pytest.approx(odds_ratio, rel=1e-3)


def test_true_survival_curve_is_the_product_of_earlier_months_hazards(written: Path) -> None:
    curves = pd.read_parquet(written / "truth" / "survival.parquet")
    one = curves[curves["customer_id"] == curves["customer_id"].iloc[0]].sort_values("month")
    expected = np.r_[1.0, np.cumprod(1 - one["hazard"].to_numpy())[:-1]]
    assert one["survival"].to_numpy() == pytest.approx(expected)


def test_oracle_survival_between_month_starts_is_the_ratio_of_the_curve(world: World) -> None:
    curves = survival_table(world.truth_hazard)
    start, end = date(2024, 6, 1), date(2024, 9, 1)
    month = pd.to_datetime(curves["month"]).dt.date
    ids = sorted(set(curves.loc[month == start, "customer_id"]))[:20]
    at = curves.assign(month=month).set_index(["customer_id", "month"])["survival"]
    ratio = [at[(c, end)] / at[(c, start)] for c in ids]
    got = oracle_survival(world.truth_hazard, start, [float((end - start).days)], ids)[:, 0]
    assert got == pytest.approx(ratio)


def test_oracle_score_is_one_minus_survival_over_the_window(world: World) -> None:
    truth = world.truth_hazard
    as_of = date(2024, 6, 1)
    window = truth[truth["month"].isin([date(2024, 6, 1), date(2024, 7, 1)])]
    expected = 1 - (1 - window["hazard"]).groupby(window["customer_id"]).prod()
    ids = [*expected.index[:50], "C999999"]
    scores = oracle_scores(truth, as_of, horizon_days=61, customer_ids=ids)  # June + July
    assert scores.iloc[:-1].to_numpy() == pytest.approx(expected.iloc[:50].to_numpy())
    assert scores["C999999"] == 0.0


def test_the_oracle_ranks_next_quarters_churners_first(world: World) -> None:
    exits = world.tables.exit_reasons
    assert exits is not None
    as_of = date(2025, 1, 1)
    truth = world.truth_hazard
    active = truth.loc[(truth["month"] == as_of) & truth["at_risk"], "customer_id"]
    churned_at = active.map(exits.set_index("customer_id")["churned_at"])
    label = churned_at < pd.Timestamp(as_of, tz="UTC") + pd.Timedelta(days=90)
    scores = oracle_scores(truth, as_of, 90, list(active))
    assert roc_auc_score(label, scores) > 0.8  # docs/generator.md: about 0.87-0.9 at 5,000 x 24


def test_the_oracle_refuses_a_window_past_the_simulated_period(world: World) -> None:
    with pytest.raises(ChurnError, match="runs past the simulated period"):
        oracle_scores(world.truth_hazard, date(2025, 11, 1), 90, ["C000001"])


def test_progress_is_reported_once_per_month() -> None:
    calls: list[tuple[int, int]] = []
    generate_world(50, 5, seed=0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 5), (2, 5), (3, 5), (4, 5), (5, 5)]


def test_a_failed_write_leaves_the_previous_output_untouched(world: World, tmp_path: Path) -> None:
    out = write_world(generate_world(50, 3, seed=0), tmp_path / "world")
    before = _files(out)
    columns = [column for group in TABLE_COLUMNS["events"] for column in group]
    unwritable = pd.DataFrame({column: [object()] for column in columns})
    broken = replace(
        world,
        tables=RawTables(world.tables.customers, world.tables.subscriptions, events=unwritable),
    )
    with pytest.raises(Exception, match="object"):
        write_world(broken, out)
    assert _files(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["world"]


def test_start_must_be_the_first_of_a_month() -> None:
    with pytest.raises(ChurnError, match="first day of a month"):
        generate_world(10, 2, seed=0, start=date(2024, 1, 15))


def test_a_fork_is_the_same_world_before_its_month_and_another_future_after() -> None:
    base = generate_world(300, 10, seed=4)
    fork = generate_world(300, 10, seed=4, fork=(5, 0))
    cut = pd.Timestamp(START + timedelta(days=151))  # 2024-06-01, simulated month 5
    before = [w.truth_hazard[pd.to_datetime(w.truth_hazard["month"]) < cut].reset_index(drop=True)
              for w in (base, fork)]  # fmt: skip
    pd.testing.assert_frame_equal(*before)
    after = [w.truth_hazard.loc[pd.to_datetime(w.truth_hazard["month"]) >= cut, "hazard"]
             for w in (base, fork)]  # fmt: skip
    assert not np.allclose(after[0].to_numpy()[:100], after[1].to_numpy()[:100])


def test_the_point_in_time_oracle_knows_the_past_not_the_future() -> None:
    """Its curves average the futures: on average they match what the world drew, but per
    customer they are less extreme than the realised hazards (which know the future)."""
    as_of = date(2024, 6, 1)
    world = generate_world(600, 12, seed=9)
    truth = world.truth_hazard
    months = pd.to_datetime(truth["month"])
    ids = truth.loc[(months == pd.Timestamp(as_of)) & truth["at_risk"], "customer_id"].tolist()
    days = [90.0, 180.0]
    fair = point_in_time_survival(futures(600, 12, 9, as_of, paths=8), as_of, days, ids)
    drawn = oracle_survival(truth, as_of, days, ids)
    assert np.abs(fair.mean(axis=0) - drawn.mean(axis=0)).max() < 0.02
    assert fair[:, 1].std() < drawn[:, 1].std()
    with pytest.raises(ChurnError, match="first of month"):
        futures(600, 12, 9, date(2024, 6, 2))


def test_a_world_within_one_block_is_generated_to_a_folder_exactly_as_before(
    tmp_path: Path,
) -> None:
    folder = generate_to_folder(300, 6, 11, tmp_path / "one-block", block=300)
    assert _files(folder) == _files(write_world(generate_world(300, 6, seed=11), tmp_path / "w"))


def test_a_world_in_blocks_is_reproducible_and_its_ids_never_repeat(tmp_path: Path) -> None:
    first = generate_to_folder(130, 6, 5, tmp_path / "a", block=50)
    assert _files(first) == _files(generate_to_folder(130, 6, 5, tmp_path / "b", block=50))
    assert _files(first) != _files(generate_to_folder(130, 6, 6, tmp_path / "c", block=50))
    customers = pd.read_parquet(first / "customers.parquet")
    assert customers["customer_id"].is_unique
    assert customers["customer_id"].max() > "C000100"  # the third block's customers
    for name, column in (("subscriptions", "subscription_id"), ("tickets", "ticket_id"),
                         ("invoices", "invoice_id")):  # fmt: skip
        assert pd.read_parquet(first / f"{name}.parquet")[column].is_unique
    events = pd.read_parquet(first / "events.parquet")
    assert events["customer_id"].isin(customers["customer_id"]).all()
    assert (events["user_id"].str.split("-U").str[0] == events["customer_id"]).all()
    truth = pd.read_parquet(first / "truth" / "hazard.parquet")
    assert truth["customer_id"].isin(customers["customer_id"]).all()
    assert truth["customer_id"].max() > "C000100"
    drivers = json.loads((first / "truth" / "drivers.json").read_text())
    assert drivers["blocks"] == {"customers": 50, "count": 3}
    assert pq.ParquetFile(first / "events.parquet").num_row_groups == 3  # one per block
    assert validate_folder(first, pd.Timestamp("2030-01-01", tz="UTC"))[1].ok
