"""ChurnSim crm6 end to end: import -> validate -> features -> train, with time and memory.

    .venv/bin/python benchmarks/churnsim.py [--data ../shared/data] [--out DIR]

An independent simulator's B2B CRM export (``shared/data/churnsim_crm6/SOURCE.md``): 12.2 M events
of 28 types, multi-user accounts, add-ons. Its churn is mostly random by design, so the table is a
test of import, vocabulary and scale; ROC-AUC far above ~0.65 would point to leakage, not skill.

Two labelings, both split out of time with the training pipeline's own embargoes:

- the book's observation rows (``observations.csv``): features as of each ``observation_date``,
  ``is_churn`` as the label. The dates are daily, so the split is fixed by counts before any
  result is seen: the test set is the latest observation dates holding ``MIN_CHURNERS``
  churners, validation likewise before the test's embargo, training everything before
  validation's embargo (``observation_config``).
- the contract's own labels: weekly as-of dates from the first with 90 days of history, 30-day
  contractual horizon (``label_spec``), split by the same rule (one month holds about 19
  churners, fewer than a set needs, so monthly dates cannot be split three ways).

About 3 minutes and 5 GB on 2 cores.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import math
import resource
import tempfile
import time
from collections.abc import Callable
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from features.contract import load_valid_tables
from features.engine import build_labeled_set, feature_columns
from features.importers import import_to_folder, shared_data_dir
from features.importers.churnsim import (
    LAST_DAY,
    label_spec,
    observation_labeled_set,
    read_observations,
)
from features.pipeline import default_as_of
from training.evaluation import evaluate
from training.fit import FitConfig
from training.pipeline import TrainConfig, TrainResult, train
from training.split import MIN_CHURNERS, Split

METHODS = {
    "model": "Our model (LightGBM, Platt-calibrated)",
    "health_score": "Hand-weighted health score (default config)",
    "logistic": "Logistic regression (same features)",
}
REFERENCE = "SOURCE.md reference: logistic, log(1 + 28-day count) per event type"
SOURCE_TRAIN_END, SOURCE_TEST_START = "2022-06-10", "2022-07-10"  # SOURCE.md's split
SOURCE_REFERENCE_AUC = 0.573  # SOURCE.md, L2 logistic on 28-day counts, that split
SEEDS = (0, 1, 2, 3, 4)
VALIDATION_NOW = pd.Timestamp("2026-01-01", tz="UTC")  # fixed, so the run is reproducible
T = TypeVar("T")


def peak_rss_gb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def timed(step: str, log: list[tuple[str, float, float]], run: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = run()
    log.append((step, time.perf_counter() - start, peak_rss_gb()))
    return result


def observation_config(
    labeled: pd.DataFrame, horizon_days: int, min_churners: int = MIN_CHURNERS
) -> TrainConfig:
    """Test and validation sets as the latest observation dates holding ``min_churners`` each.

    Walks back over the distinct dates: the test set grows until it has enough churners; the
    validation set starts one horizon before the test (the pipeline's embargo) and grows the
    same way. Only label counts decide, never a model's score.
    """
    by_date = labeled.groupby("as_of")["churned"].sum().sort_index()
    dates, churners = by_date.index.to_numpy(), by_date.to_numpy()
    reach = np.timedelta64(horizon_days, "D")

    def window(last: int) -> int:
        """How many dates, counted back from index ``last``, hold ``min_churners`` churners."""
        reached = np.flatnonzero(np.cumsum(churners[last::-1]) >= min_churners)
        if len(reached) == 0:
            raise ValueError("too few churners for an out-of-time split")
        return int(reached[0]) + 1

    test_dates = window(len(dates) - 1)
    before_test = np.flatnonzero(dates + reach <= dates[len(dates) - test_dates])
    valid_dates = window(int(before_test[-1]))
    return TrainConfig(
        horizon_days=horizon_days, label="contractual", test_dates=test_dates,
        valid_dates=valid_dates,
    )  # fmt: skip


def closed_dates(labeled: pd.DataFrame) -> np.ndarray:
    """As-of dates whose every label is complete: the only ones a split may use."""
    closed = labeled.groupby("as_of")["label_complete"].all()
    return closed.index[closed.to_numpy()].to_numpy()


def event_type_reference(folder: Path, labeled: pd.DataFrame, split: Split) -> dict[str, float]:
    """``SOURCE.md``'s reference model on our split and rows: L2 logistic regression on
    log(1 + count) of each event type in the 28 days before the observation date (events
    strictly before it). It reads the imported ``events.parquet``, so it checks the import too."""
    keys = ["customer_id", "as_of"]
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        con.register("obs", labeled[keys])
        counts = con.execute(
            """
            SELECT o.customer_id, o.as_of, e.event_type, COUNT(*) AS n
            FROM obs AS o
            JOIN read_parquet(?) AS e
              ON e.customer_id = o.customer_id
             AND e."timestamp" < CAST(o.as_of AS TIMESTAMPTZ)
             AND e."timestamp" >= CAST(o.as_of AS TIMESTAMPTZ) - INTERVAL 28 DAY
            GROUP BY ALL
            """,
            [str(folder / "events.parquet")],
        ).df()
    finally:
        con.close()
    counts["customer_id"] = counts["customer_id"].astype("string")
    counts["as_of"] = pd.to_datetime(counts["as_of"]).astype("datetime64[us]")
    wide = counts.pivot_table(index=keys, columns="event_type", values="n", fill_value=0)
    rows = labeled[keys].merge(wide.reset_index(), on=keys, how="left").drop(columns=keys)
    x = np.log1p(rows.fillna(0).to_numpy(dtype=float))
    y = labeled["churned"].to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(x[split.train], y[split.train])
    return evaluate(y[split.test], model.predict_proba(x[split.test])[:, 1], None)


def _with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    return TrainConfig(
        horizon_days=config.horizon_days, label=config.label, test_dates=config.test_dates,
        valid_dates=config.valid_dates, fit=FitConfig(seed=seed),
    )  # fmt: skip


def run(data: Path, out: Path) -> dict[str, Any]:
    """Every step once, timed; both labelings trained at the default seed and at ``SEEDS``."""
    log: list[tuple[str, float, float]] = []
    src = data / "churnsim_crm6"
    folder = timed("import (churn import churnsim)", log,
                   lambda: import_to_folder("churnsim", src, out))  # fmt: skip
    tables, report = timed("validate + load (churn validate)", log,
                           lambda: load_valid_tables(folder, VALIDATION_NOW))  # fmt: skip
    observations = read_observations(folder)
    obs_labeled = timed("features at 183 observation dates", log,
                        lambda: observation_labeled_set(tables, observations))  # fmt: skip
    spec = label_spec()
    weekly = pd.date_range(default_as_of(tables)[0], LAST_DAY, freq="7D").date
    contract = timed(f"features + labels, {len(weekly)} weekly as-of dates", log,
                     lambda: build_labeled_set(tables, list(weekly), spec))  # fmt: skip
    obs_config = observation_config(obs_labeled, spec.horizon_days)
    contract_config = observation_config(
        contract[contract["as_of"].isin(closed_dates(contract))], spec.horizon_days
    )
    obs_result = timed("train (observation rows)", log, lambda: train(obs_labeled, obs_config))
    contract_result = timed("train (weekly contract labels)", log,
                            lambda: train(contract, contract_config))  # fmt: skip
    spread = {
        "observations": [train(obs_labeled, _with_seed(obs_config, s)).metrics for s in SEEDS],
        "contract": [train(contract, _with_seed(contract_config, s)).metrics for s in SEEDS],
    }
    reference = event_type_reference(folder, obs_labeled, obs_result.split)
    as_of = obs_labeled["as_of"]
    train_rows, test_rows = (
        (as_of < SOURCE_TRAIN_END).to_numpy(),
        (as_of >= SOURCE_TEST_START).to_numpy(),
    )
    source_split = Split(
        "out-of-time", train_rows, ~train_rows & ~test_rows, test_rows, "SOURCE.md"
    )
    reference_source = event_type_reference(folder, obs_labeled, source_split)
    events = tables.events
    return {
        "reference": reference,
        "reference_source_split": reference_source,
        "log": log,
        "report": report,
        "events": 0 if events is None else len(events),
        "event_types": 0 if events is None else int(events["event_type"].nunique()),
        "observations": (obs_labeled, obs_result),
        "contract": (contract[contract["as_of"].isin(closed_dates(contract))], contract_result),
        "spread": spread,
    }


def _source_check(measured: dict[str, Any]) -> str:
    auc = measured["reference_source_split"]["roc_auc"]
    return (
        f"Import check: the reference model on SOURCE.md's own split (train observations before "
        f"{SOURCE_TRAIN_END}, test from {SOURCE_TEST_START}) reaches ROC-AUC {auc:.3f}; "
        f"SOURCE.md reports {SOURCE_REFERENCE_AUC}."
    )


def _cell(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"


def _summary(labeled: pd.DataFrame, result: TrainResult) -> str:
    test = result.test
    return (
        f"{len(labeled):,} rows, {int(labeled['churned'].sum()):,} churners "
        f"({labeled['churned'].mean():.1%}); test {len(test):,} rows, "
        f"{int(test['churned'].sum())} churners"
    )


def _spread(runs: list[dict[str, dict[str, float]]], key: str) -> str:
    aucs = pd.Series([r[key]["roc_auc"] for r in runs])
    return f"{aucs.mean():.3f} ({aucs.min():.3f}-{aucs.max():.3f})"


def churnsim_rows(data: Path | None = None) -> list[str]:
    """The ChurnSim section of ``docs/results.md`` as Markdown lines (for benchmarks/results.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        measured = run(data or shared_data_dir(), Path(tmp) / "churnsim")
    return markdown(measured)


def markdown(measured: dict[str, Any]) -> list[str]:
    lines = [
        "## ChurnSim crm6 (independent simulator's B2B CRM export): import, vocabulary, scale",
        "",
        f"`churn import churnsim` (`features/importers/churnsim.py`): {measured['events']:,} "
        f"events before the export date, of {measured['event_types']} types, multi-user accounts, "
        "base plans with add-ons summed per billing period. `churn validate`: "
        f"{measured['report'].summary()}. Churn is mostly random by design (`SOURCE.md`: about "
        "0.55-0.58 ROC-AUC for its reference models, ±0.13 on one month of observations); a "
        "figure far above 0.65 would suggest leakage.",
        "",
    ]
    titles = {
        "observations": "The book's observation rows (`is_churn`)",
        "contract": "Weekly as-of dates, contract labels (30-day horizon)",
    }
    for key, title in titles.items():
        labeled, result = measured[key]
        lines += [
            f"### {title}",
            "",
            f"**Split:** {result.split.description}. {_summary(labeled, result)}.",
            "",
            "| method | ROC-AUC | PR-AUC | ROC-AUC over LightGBM seeds 0-4: mean (min-max) |",
            "|---|---:|---:|---:|",
        ]
        for method, name in METHODS.items():
            m = result.metrics[method]
            spread = _spread(measured["spread"][key], method) if method == "model" else "-"
            lines.append(f"| {name} | {_cell(m['roc_auc'])} | {_cell(m['pr_auc'])} | {spread} |")
        if key == "observations":
            ref = measured["reference"]
            lines.append(f"| {REFERENCE} | {_cell(ref['roc_auc'])} | {_cell(ref['pr_auc'])} | - |")
        lines.append("")
    lines += [_source_check(measured), ""]
    lines += ["| step | seconds | peak RSS (GB) |", "|---|---:|---:|"]
    lines += [f"| {step} | {seconds:.1f} | {rss:.2f} |" for step, seconds, rss in measured["log"]]
    return [*lines, ""]


def print_tables(measured: dict[str, Any], console: Console) -> None:
    for key in ("observations", "contract"):
        labeled, result = measured[key]
        table = Table(title=f"ChurnSim crm6, {key}: {result.split.description}")
        for column in ("method", "rows", "churners", "test rows", "test churners", "ROC-AUC",
                       "PR-AUC", "model ROC-AUC, seeds 0-4"):  # fmt: skip
            table.add_column(column, justify="left" if column == "method" else "right")
        test = result.test
        for method, name in METHODS.items():
            m = result.metrics[method]
            spread = _spread(measured["spread"][key], method) if method == "model" else "-"
            table.add_row(
                name, f"{len(labeled):,}", f"{int(labeled['churned'].sum()):,}",
                f"{len(test):,}", f"{int(test['churned'].sum())}", _cell(m["roc_auc"]),
                _cell(m["pr_auc"]), spread,
            )  # fmt: skip
        if key == "observations":
            ref = measured["reference"]
            table.add_row(
                REFERENCE, "", "", "", "", _cell(ref["roc_auc"]), _cell(ref["pr_auc"]), "-"
            )
        console.print(table)
        used = len(result.model.features)
        console.print(f"{used} features used of {len(feature_columns(labeled))} built")
    steps = Table(title="ChurnSim crm6: time and memory")
    for column in ("step", "seconds", "peak RSS (GB)"):
        steps.add_column(column, justify="left" if column == "step" else "right")
    for step, seconds, rss in measured["log"]:
        steps.add_row(step, f"{seconds:.1f}", f"{rss:.2f}")
    console.print(steps)
    console.print(f"validate: {measured['report'].summary()}")
    console.print(_source_check(measured))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=shared_data_dir())
    parser.add_argument("--out", type=Path, default=None, help="Keep the imported folder here.")
    args = parser.parse_args()
    console = Console(width=140)
    if args.out is not None:
        print_tables(run(args.data, args.out), console)
        return
    with tempfile.TemporaryDirectory() as tmp:
        print_tables(run(args.data, Path(tmp) / "churnsim"), console)


if __name__ == "__main__":
    main()
