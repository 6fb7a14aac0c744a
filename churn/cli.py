"""The ``churn`` command: thin shells over library functions (features -> training -> serving).

Each command reads the settings once, calls one library function and prints the result. Errors
of our own (``ChurnError``) print as one readable message and exit 1; nothing is half-written.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from churn_settings import Settings
from features.errors import ChurnError

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DataOpt = Annotated[Path | None, typer.Option("--data", help="Folder of contract tables.")]
# Spark reads any URI (s3a://...), which a Path would mangle: keep it a string on that path
DataUriOpt = Annotated[str | None, typer.Option("--data", help="Folder or URI of contract tables.")]
EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (default, in-process) or spark.")]


ObservedOpt = Annotated[
    str | None,
    typer.Option(
        "--observed-until",
        help="The export date (YYYY-MM-DD) when the last record is earlier than the day the "
        "export was taken; default: import.json, else the last record.",
    ),
]


def _day(text: str | None) -> date | None:
    """An optional YYYY-MM-DD option as a date, with a clear error."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ChurnError(f"Cannot read the date {text!r}: use YYYY-MM-DD.") from None


def _engine(engine: str) -> str:
    if engine not in ("duckdb", "spark"):
        raise ChurnError(f"--engine must be duckdb or spark, got {engine!r}")
    return engine


def _spark_export(data: str) -> tuple[Any, Any]:
    """A Spark engine and the export at ``data`` (any URI Spark reads), checked against the data
    contract first: an export with errors raises ``ContractError``, as on DuckDB."""
    try:
        from pyspark.sql import SparkSession

        from features.errors import ContractError
        from features.spark_engine import SparkEngine, read_export, validate_spark
    except ImportError:
        raise ChurnError(
            "--engine spark needs PySpark and Java 17: pip install '.[spark]'."
        ) from None
    spark = (
        SparkSession.builder.appName("churn")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    export = read_export(spark, data)
    report = validate_spark(export, pd.Timestamp.now(tz="UTC"))
    if not report.ok:
        raise ContractError(report.format_errors())
    return SparkEngine(spark), export


def friendly_errors(command: F) -> F:
    """Turn our own errors into a red message and exit code 1, never a traceback."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ChurnError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def parse_days(text: str) -> int:
    """'90d', '13w' or '90' -> days."""
    match = re.fullmatch(r"\s*(\d+)\s*([dw]?)\s*", text)
    if not match:
        raise ChurnError(f"Cannot read the duration {text!r}: write it like 90d or 13w.")
    number, unit = int(match.group(1)), match.group(2) or "d"
    return number * (7 if unit == "w" else 1)


def parse_dates(text: str) -> list[date]:
    """'2024-06-01,2024-07-01' -> dates, with a clear error for a bad one."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(date.fromisoformat(part))
        except ValueError:
            raise ChurnError(f"Cannot read the as-of date {part!r}: use YYYY-MM-DD.") from None
    return out


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console, transient=True,
    )  # fmt: skip


@app.command()
@friendly_errors
def generate(
    customers: Annotated[int, typer.Option(help="Number of customer accounts.")] = 5000,
    months: Annotated[int, typer.Option(help="Months simulated.")] = 24,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 42,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("data/demo"),
    start: Annotated[str, typer.Option(help="First simulated month (YYYY-MM-01).")] = "2024-01-01",
) -> None:
    """Generate a synthetic SaaS company with known churn drivers (see docs/generator.md)."""
    from features.generator import generate_to_folder

    with _progress() as bar:
        task = bar.add_task(f"simulating {customers:,} customers", total=months)
        generate_to_folder(
            customers, months, seed, out, start=date.fromisoformat(start),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    console.print(f"[green]wrote[/] {out}/ (truth in {out}/truth/)")


PROFILED_EVENTS = 5_000_000
"""Up to this many events and marketing rows ``churn validate`` also reads them whole, for the
plausibility checks on events and the vocabulary table; above it those are left out."""


@app.command()
@friendly_errors
def validate(data: DataOpt = None) -> None:
    """Check a folder of raw tables against the data contract; exit 1 on errors.

    The contract is checked out of core (``validate_export``: events and marketing in chunks).
    """
    from features.contract import REQUIRED_TABLES, ValidationReport, print_report, read_raw_tables
    from features.contract_stream import STREAMED, read_per_customer_tables, validate_export
    from features.importers.plausibility import plausibility_findings

    folder = data or Settings().data_dir
    now = pd.Timestamp.now(tz="UTC")
    report = validate_export(folder, now)
    tables = None
    streamed_rows = sum(report.row_counts.get(table, 0) for table in STREAMED)
    profiled = streamed_rows <= PROFILED_EVENTS
    if all(table in report.row_counts for table in REQUIRED_TABLES):
        # the contract's report, then what looks implausible
        tables = read_raw_tables(folder) if profiled else read_per_customer_tables(folder)
        extra = tuple(plausibility_findings(tables, now))
        report = ValidationReport(report.findings + extra, report.row_counts)
    print_report(report, console)
    if tables is not None and not profiled:
        console.print(
            f"[dim]{streamed_rows:,} event and marketing rows: too many to read whole, so the "
            "plausibility checks of events and the vocabulary table are left out.[/]"
        )
    elif tables is not None and report.ok:
        _print_vocabulary(tables)
    if not report.ok:
        err_console.print(
            f"[bold red]{folder}: the data breaks the contract; see the errors above."
        )
        raise typer.Exit(1)
    console.print(f"[green]{folder}: valid[/] ({report.warning_count} warnings)")


def _print_vocabulary(tables: Any) -> None:
    """The attribute types and event vocabulary the features will be built from."""
    from features.attributes import render_attributes
    from features.engine import default_vocabulary
    from features.vocabulary import render_vocabulary

    console.print(render_attributes(tables.customers, tables.options.attributes))
    if tables.events is not None and len(tables.events):
        vocabulary = default_vocabulary(tables)
        console.print(render_vocabulary(vocabulary, tables.events))


def load_tables(folder: Path) -> Any:
    """Read and validate, raising ContractError on errors (nothing downstream runs)."""
    from features.contract import load_valid_tables

    tables, _ = load_valid_tables(folder, now=pd.Timestamp.now(tz="UTC"))
    return tables


@app.command()
@friendly_errors
def summary(data: DataOpt = None) -> None:
    """Row counts per table, the monthly churn rate and where the files are."""
    from features.metrics import retention_summary

    folder = data or Settings().data_dir
    tables = load_tables(folder)
    table = Table(title=f"Contract tables in {folder}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column("file")
    for name, frame in tables.present().items():
        files = sorted(folder.glob(f"{name}.*"))
        table.add_row(name, f"{len(frame):,}", str(files[0]) if files else "")
    console.print(table)
    print_metrics(retention_summary(tables, *_period(tables)))


def _period(tables: Any) -> tuple[date, date]:
    """The export's history: first day of product data to the day after its last record."""
    from features.engine import observed_until
    from features.pipeline import data_start

    return data_start(tables), observed_until(tables) + timedelta(days=1)


def print_metrics(metrics: dict[str, Any], title: str = "Retention metrics") -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        if isinstance(value, float):
            percent = any(w in key for w in ("rate", "retention", "churn"))
            shown = f"{value:.2%}" if percent else f"{value:,.2f}"
        else:
            shown = str(value)
        table.add_row(key, shown)
    console.print(table)


@app.command()
@friendly_errors
def features(
    data: DataUriOpt = None,
    as_of: Annotated[str | None, typer.Option(help="Comma-separated as-of dates.")] = None,
    monthly: Annotated[
        bool, typer.Option(help="Every month start with 90 days of history.")
    ] = False,
    horizon: Annotated[
        str | None, typer.Option(help="Churn horizon, e.g. 90d or 13w (default: settings).")
    ] = None,
    lead: Annotated[
        str | None, typer.Option(help="Lead time before the horizon, e.g. 14d (default: settings).")
    ] = None,
    label: Annotated[str, typer.Option(help="contractual or noncontractual.")] = "contractual",
    out: Annotated[
        str | None, typer.Option(help="Output Parquet file (with --engine spark: any URI).")
    ] = None,
    engine: EngineOpt = "duckdb",
    observed_until_opt: ObservedOpt = None,
) -> None:
    """Build the point-in-time labeled training set; its label spec travels in its metadata."""
    from features.engine import build, feature_columns
    from features.labels import LabelSpec
    from features.pipeline import (
        default_as_of,
        export_origin,
        resolve_observed_until,
        stream_labeled_set,
    )

    settings = Settings()
    if label not in ("contractual", "noncontractual"):
        raise ChurnError(f"--label must be contractual or noncontractual, got {label!r}")
    spec = LabelSpec(
        kind=label,  # type: ignore[arg-type]
        horizon_days=parse_days(horizon) if horizon else settings.horizon_days,
        lead_days=parse_days(lead) if lead else settings.lead_days,
        gap_days=settings.resubscribe_gap_days,
    )
    if _engine(engine) == "spark":
        spark_engine, export = _spark_export(data or str(settings.data_dir))
        spark_dates = parse_dates(as_of) if as_of else default_as_of(export) if monthly else []
        if not spark_dates:
            raise ChurnError("Pass --as-of YYYY-MM-DD[,...] or --monthly.")
        spark_target = str(out or settings.features_path)
        build(export, spark_dates, spec, spark_engine, labels=True).write_parquet(spark_target)
        console.print(f"[green]wrote[/] {spark_target} (Spark, {len(spark_dates)} as-of dates)")
        return
    folder = Path(data) if data else settings.data_dir
    export = file_export(folder, settings)
    until = resolve_observed_until(export, folder, _day(observed_until_opt))
    spec = replace(spec, observed_until=until)
    dates = parse_dates(as_of) if as_of else default_as_of(export, until=until) if monthly else []
    if not dates:
        raise ChurnError("Pass --as-of YYYY-MM-DD[,...] or --monthly.")
    labeled = build(export, dates, spec, labels=True).materialized()
    target = Path(out) if out else settings.features_path
    stream_labeled_set(labeled, spec, until, target, export_origin(folder))
    shape = labeled.engine.fetch(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT as_of) AS dates, MIN(as_of) AS first, "
        "MAX(as_of) AS last, COUNT(*) FILTER (WHERE label_complete) AS complete, "
        f"AVG(churned) FILTER (WHERE label_complete) AS rate FROM ({labeled.sql})"
    ).iloc[0]
    columns = labeled.engine.fetch(f"SELECT * FROM ({labeled.sql}) LIMIT 0")
    complete = int(shape["complete"])
    rate = f"{shape['rate']:.2%}" if complete else "n/a"
    console.print(
        f"[green]wrote[/] {target}: {int(shape['n']):,} rows, {len(feature_columns(columns))} "
        f"features, {int(shape['dates'])} as-of dates "
        f"({shape['first']:%Y-%m-%d} .. {shape['last']:%Y-%m-%d}), "
        f"{spec.horizon_days}-day horizon, export date {until}, "
        f"label rate {rate} on {complete:,} complete rows"
    )
    if not complete:
        err_console.print(
            f"[yellow]no label is complete: every horizon runs past the export date {until}. "
            "Use earlier --as-of dates, a shorter --horizon, or pass the real export date with "
            "--observed-until."
        )


def file_export(folder: Path, settings: Settings) -> Any:
    """Validate ``folder`` (raising ContractError on errors, nothing downstream runs) and read it
    as a :class:`features.files.FileExport`: DuckDB reads the tables from the files, within the
    settings' memory limit, spilling to their temporary folder."""
    from features.contract_stream import validate_export
    from features.errors import ContractError
    from features.files import read_file_export
    from features.sql import DuckDBLimits

    report = validate_export(folder, pd.Timestamp.now(tz="UTC"))
    if not report.ok:
        raise ContractError(report.format_errors())
    limits = DuckDBLimits(
        threads=settings.duckdb_threads or None,
        memory_limit=settings.duckdb_memory_limit,
        temp_directory=settings.duckdb_spill_path,
        preserve_order=False,
    )
    return read_file_export(folder, limits)


@app.command()
@friendly_errors
def snapshot(
    data: DataUriOpt = None,
    as_of: Annotated[
        str | None, typer.Option(help="As-of date; default the day after the export's last record.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Snapshot file (with --engine spark: any URI).")
    ] = None,
    engine: EngineOpt = "duckdb",
    observed_until_opt: ObservedOpt = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Build the columns this registered model reads, e.g. "
            "churn-model@champion (after the export's event types changed)."
        ),
    ] = None,
) -> None:
    """Write every active customer's features as of now to the feature store serving reads."""
    from features.pipeline import resolve_observed_until, snapshot_as_of, snapshot_set

    settings = Settings()
    day = parse_dates(as_of)[0] if as_of else None
    if _engine(engine) == "spark":
        from features.engine import build
        from features.labels import LabelSpec

        spark_engine, export = _spark_export(data or str(settings.data_dir))
        spark_target = str(out or settings.store_dir / "snapshot.parquet")
        snapshot_day = day or snapshot_as_of(export)
        build(export, [snapshot_day], LabelSpec(), spark_engine).write_parquet(spark_target)
        console.print(f"[green]wrote[/] {spark_target} (Spark)")
        return
    folder = Path(data) if data else settings.data_dir
    export = file_export(folder, settings)
    until = resolve_observed_until(export, folder, _day(observed_until_opt))
    snapshot_day = day or snapshot_as_of(export, until)
    snap = snapshot_set(export, snapshot_day, until, _model_vocabulary(settings, model))
    target = Path(out) if out else settings.store_dir / "snapshot.parquet"
    rows = snap.write_frame(target)
    console.print(
        f"[green]wrote[/] {target}: {rows:,} active customers as of {snapshot_day:%Y-%m-%d}"
        if rows
        else f"[yellow]{target}: no active customers"
    )


def _model_vocabulary(settings: Settings, model: str | None) -> Any:
    """The vocabulary a registered model was trained with (None: the export's own)."""
    if model is None:
        return None
    from features.vocabulary import Vocabulary
    from training.registry import configure, load_registered

    name, _, ref = model.partition("@")
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    registered, version = load_registered(name, ref or settings.model_alias)
    if not registered.vocabulary:
        raise ChurnError(
            f"{name} v{version} was trained before models kept their vocabulary; retrain it, "
            "or build the snapshot without --model."
        )
    return Vocabulary.from_dict(registered.vocabulary)


@app.command()
@friendly_errors
def metrics(data: DataOpt = None) -> None:
    """Retention metrics: churn rate, MRR churn, NRR, cohorts, LTV, NPS."""
    from features.metrics import monthly_metrics, retention_summary

    tables = load_tables(data or Settings().data_dir)
    start, end = _period(tables)
    print_metrics(retention_summary(tables, start, end))
    monthly = monthly_metrics(tables, start, end)
    console.print(monthly.tail(12).to_string(float_format=lambda v: f"{v:,.4f}"))


def _labeled_set(
    settings: Settings, data: Path | None, features_file: Path | None, spec: Any
) -> tuple[pd.DataFrame, Path | None, str, dict[str, Any] | None]:
    """A labeled set and its label record: read from ``--features``, or built (monthly as-of
    dates, ``spec``) from a validated folder."""
    from features.engine import build_labeled_set
    from features.pipeline import (
        default_as_of,
        export_origin,
        label_record,
        read_labeled_set,
        resolve_observed_until,
    )

    folder = data or settings.data_dir
    truth = folder / "truth"
    if features_file is not None:
        labeled_set, record = read_labeled_set(features_file)
        if record is None:
            err_console.print(
                f"[yellow]{features_file} carries no label spec (written before it was "
                "recorded); assuming the training config's horizon. Rebuild it with `churn "
                "features` to be sure."
            )
        truth_dir = truth if data is not None and truth.exists() else None
        return labeled_set, truth_dir, f"labeled set {features_file}", record
    tables = load_tables(folder)
    until = resolve_observed_until(tables, folder)
    spec = replace(spec, observed_until=until)
    with console.status("building the point-in-time labeled set"):
        labeled = build_labeled_set(tables, default_as_of(tables, until=until), spec)
    record = label_record(spec, until, labeled, export_origin(folder))
    return labeled, (truth if truth.exists() else None), f"contract tables in {folder}", record


def _spec_for(settings: Settings, train_config: Any, explicit: set[str]) -> Any:
    """The label spec to build a set with: the config's fields where it sets them, else the
    settings (``CHURN_HORIZON_DAYS``, ``CHURN_LEAD_DAYS``)."""
    from features.labels import LabelSpec

    return LabelSpec(
        kind=train_config.label,
        horizon_days=train_config.horizon_days if "horizon_days" in explicit
        else settings.horizon_days,
        lead_days=train_config.lead_days if "lead_days" in explicit else settings.lead_days,
        gap_days=settings.resubscribe_gap_days,
    )  # fmt: skip


@app.command()
@friendly_errors
def train(
    data: DataOpt = None,
    config: Annotated[Path | None, typer.Option(help="YAML training config.")] = None,
    features_file: Annotated[
        Path | None, typer.Option("--features", help="Use this labeled set instead of --data.")
    ] = None,
    tune: Annotated[int, typer.Option(help="Optuna trials before the final fit (0 = off).")] = 0,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Registered model (default: settings, per export origin)."),
    ] = None,
) -> None:
    """Train, compare with the baselines, log to MLflow, register; the gate moves champion."""
    from training.config import read_train_config
    from training.evaluation import metrics_table
    from training.pipeline import resolve_label
    from training.workflow import train_and_register

    settings = Settings()
    train_config, explicit = read_train_config(config)
    labeled, truth, description, record = _labeled_set(
        settings, data, features_file, _spec_for(settings, train_config, explicit)
    )
    train_config = resolve_label(train_config, record, explicit)
    model_name = name or settings.model_name_for((record or {}).get("origin", "export"))
    if tune:
        from training.tune import tune_params

        with console.status(f"optuna: {tune} trials"):
            train_config.fit.params = tune_params(labeled, train_config, tune)
        train_config.capacity_search = False  # optuna's parameters replace the small search
    with console.status("training"):
        report = train_and_register(
            labeled,
            train_config,
            model_name=model_name,
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifact_root,
            truth_dir=truth,
            data_description=description,
            metrics_out=settings.store_dir.parent / "metrics.json",
            record=record,
        )
    result = report.result
    console.print(
        f"[bold]{result.split.description}[/]\n{train_config.label} labels, "
        f"{train_config.horizon_days}-day horizon"
        + (f", {train_config.lead_days}-day lead" if train_config.lead_days else "")
    )
    for candidate in result.candidates:
        console.print(f"  capacity candidate: {candidate.describe()}")
    console.print(
        f"capacity: {result.model.meta['trees']} trees of "
        f"{result.model.meta['params'].get('num_leaves')} leaves, TreeSHAP "
        f"{result.shap_ms:.3f} ms per customer "
        f"(budget {train_config.explain_budget_ms} ms); served model: "
        f"{result.model.meta['fitted_on']}"
    )
    console.print(metrics_table(result.metrics, title="Test window: model vs baselines"))
    if result.survival is not None:
        console.print(f"[bold]time to churn:[/] {result.survival.description}")
        title = "Time to churn: hazard model vs Kaplan–Meier and Cox"
        console.print(metrics_table(result.survival.metrics, title=title))
    elif result.survival_note:
        console.print(f"[yellow]{result.survival_note}[/]")
    top = ", ".join(result.importance["feature"].head(5))
    console.print(f"top drivers (mean |SHAP|): {top}")
    colour = "green" if report.decision.promoted else "yellow"
    verdict = "promoted to champion" if report.decision.promoted else "kept as challenger"
    console.print(
        f"[{colour}]{model_name} v{report.version} {verdict}:[/] {report.decision.reason}"
        f"\nrun {report.run_id}; metrics in {settings.store_dir.parent / 'metrics.json'}"
    )


@app.command()
@friendly_errors
def evaluate(
    data: DataOpt = None,
    model: Annotated[str, typer.Option(help="Registered model, e.g. churn-model@champion.")] = (
        "churn-model@champion"
    ),
    features_file: Annotated[
        Path | None, typer.Option("--features", help="Use this labeled set instead of --data.")
    ] = None,
    horizon: Annotated[
        str | None, typer.Option(help="Churn horizon, e.g. 90d (default: the model's).")
    ] = None,
) -> None:
    """Score a labeled data set with a registered model; print metrics against both baselines."""
    from features.labels import LabelSpec
    from training.evaluation import metrics_table
    from training.registry import configure, load_registered
    from training.workflow import evaluate_registered

    settings = Settings()
    name, _, ref = model.partition("@")
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    registered, _ = load_registered(name, ref or "champion")
    days = parse_days(horizon) if horizon else registered.horizon_days
    trained = registered.meta.get("label_spec", {})
    spec = LabelSpec(kind=registered.label,  # type: ignore[arg-type]
                     horizon_days=days, lead_days=int(trained.get("lead_days", 0)),
                     gap_days=settings.resubscribe_gap_days)  # fmt: skip
    labeled, _, _, record = _labeled_set(settings, data, features_file, spec)
    if record is not None and horizon and int(record["horizon_days"]) != days:
        raise ChurnError(
            f"--horizon {days}d contradicts the labeled set, built with horizon_days = "
            f"{record['horizon_days']}; drop --horizon or rebuild the set."
        )
    results = evaluate_registered(
        labeled, ref or "champion", model_name=name, tracking_uri=settings.mlflow_tracking_uri,
        record=record,
    )  # fmt: skip
    console.print(metrics_table(results, title=f"{model} on the latest complete as-of date"))


@app.command("import")
@friendly_errors
def import_data(
    dataset: Annotated[
        str | None,
        typer.Argument(help="Data set: telco, cdnow, ravenstack or churnsim (or use --map)."),
    ] = None,
    src: Annotated[
        Path, typer.Option(help="Source file or folder, e.g. ../shared/data/telco.")
    ] = Path("."),
    out: Annotated[Path, typer.Option(help="Contract folder to write (atomically).")] = Path(
        "data/imported"
    ),
    mapping: Annotated[
        Path | None,
        typer.Option("--map", help="Mapping file (docs/bring-your-own-data.md) for --src DIR."),
    ] = None,
    observed_until_opt: ObservedOpt = None,
) -> None:
    """Map a public data set, or your exports with --map, onto the contract; then validate."""
    if mapping is not None:
        if dataset is not None:
            raise ChurnError("Pass either a data set name or --map, not both.")
        from features.importers.mapped import import_mapped

        result = import_mapped(mapping, src, out)
        counts = ", ".join(f"{t} {n:,}" for t, n in result.manifest["row_counts"].items())
        console.print(
            f"[green]wrote[/] {result.folder}/: {counts} (manifest: {result.folder}/import.json)"
        )
        for warning in result.warnings:
            err_console.print(f"[yellow]warning:[/] {warning}")
        return
    if dataset is None:
        raise ChurnError(
            "Name a data set (telco, cdnow, ravenstack, churnsim) or pass --map mapping.yaml."
        )
    from features.importers import import_to_folder
    from features.pipeline import record_observed_until

    folder = import_to_folder(dataset, src, out)
    day = _day(observed_until_opt)
    if day is not None:
        record_observed_until(folder, load_tables(folder), day)
    console.print(f"[green]wrote[/] {folder}/ (source, checksums, labeling: {folder}/import.json)")


@app.command("score-all")
@friendly_errors
def score_all(
    snapshot_file: Annotated[
        str | None,
        typer.Option("--snapshot", help="Feature snapshot (default: store dir; spark: any URI)."),
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Score store (default: store dir; spark: any URI).")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Registered model, e.g. churn-model@champion.")
    ] = None,
    rules: Annotated[bool, typer.Option("--rules/--no-rules", help="Run rules.yaml after.")] = True,
    engine: EngineOpt = "duckdb",
) -> None:
    """Score every snapshot customer with the champion into the score store serving loads."""
    from serving.history import append_store
    from serving.store import ModelRef
    from serving.store import score_all as write_score_store
    from serving.workflows.service import clear_rules_pending, mark_rules_pending
    from training.registry import configure, load_registered

    settings = Settings()
    name, _, alias = (model or f"{settings.model_name}@{settings.model_alias}").partition("@")
    alias = alias or settings.model_alias
    configure(settings.mlflow_tracking_uri, settings.mlflow_artifact_root)
    churn_model, version = load_registered(name, alias)
    if _engine(engine) == "spark":
        from pyspark.sql import SparkSession

        from features.spark_engine import write_frame
        from serving.spark_scoring import score_spark

        spark = (
            SparkSession.builder.appName("churn")
            .config("spark.sql.session.timeZone", "UTC")
            .getOrCreate()
        )
        source = str(snapshot_file or settings.snapshot_path)
        spark_out = str(out or settings.store_dir / "scores_spark.parquet")
        scored = score_spark(spark.read.parquet(source), churn_model, settings.top_k)
        write_frame(scored, spark_out)
        console.print(f"[green]wrote[/] {spark_out} (Spark; scored by {name} v{version})")
        return
    if rules:  # before the store: a crash from here to the recorded run is finished on start
        mark_rules_pending(settings.store_dir)
    target, customers = write_score_store(
        churn_model, ModelRef(name, version, alias), Path(snapshot_file or settings.snapshot_path),
        Path(out) if out else settings.score_store_path, settings.top_k, settings.scoring_threads,
        settings.gross_margin, settings.annual_discount_rate,
    )  # fmt: skip
    console.print(f"[green]wrote[/] {target}: {customers:,} customers scored by {name} v{version}")
    append_store(settings.store_dir, target, version, datetime.now(UTC))
    console.print(f"appended to the score history in {settings.store_dir / 'history'}")
    if rules:
        from serving.workflows.service import Workflows

        workflows = Workflows.from_settings(settings)
        console.print(workflows.run().line())
        clear_rules_pending(settings.store_dir)
        _send_webhooks(workflows)


@app.command()
@friendly_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind; default CHURN_HOST, 127.0.0.1.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port; default CHURN_PORT, 8000.")] = None,
    free_port: Annotated[
        bool, typer.Option("--free-port", help="If the port is taken, take any free one.")
    ] = False,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve the scoring API (docs/crm-integration.md) with uvicorn until interrupted."""
    from serving.server import check_exposure, listen_port
    from serving.server import serve as run_server
    from serving.store import example_customer_id

    settings = Settings()
    host = host or settings.host
    check_exposure(settings, host)
    wanted = port or settings.port
    port = listen_port(host, wanted, free_port)
    cid = example_customer_id(settings.snapshot_path) or "C000001"
    key = "demo-key" if settings.api_key_list() == ["demo-key"] else "$CHURN_KEY"
    where = f"[{host}]" if ":" in host else host
    if port != wanted:
        console.print(f"port {wanted} is taken; serving on port {port}")
    console.print(
        f"Manager UI: http://{where}:{port}/ui/  (sign in with your name and password, or the "
        f"key: {key})"
    )
    console.print(
        f"try: curl -s -X POST http://{where}:{port}/v1/score -H 'X-API-Key: {key}' "
        f"-H 'Content-Type: application/json' -d '{{\"customer_id\": \"{cid}\"}}'"
    )
    run_server(settings, host, port, workers)


@app.command("demo-world")
@friendly_errors
def demo_world(
    out: Annotated[Path, typer.Option(help="Folder for data, model, store.")] = Path("data/ui"),
    customers: Annotated[int, typer.Option(help="Simulated customer accounts.")] = 900,
    months: Annotated[int, typer.Option(help="Months simulated.")] = 14,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    replicate: Annotated[int, typer.Option(min=1, help="Tile the customers this often.")] = 1,
) -> None:
    """Build a scored deployment with two scorings in the history: what the UI demo, its browser
    tests, screenshots and benchmark read (make demo + two weekly score-all runs, in one go)."""
    from churn.demo import build_scored_world

    world = build_scored_world(out, customers, months, seed, replicate)
    settings = world.settings
    console.print(
        f"[green]wrote[/] {out}/: {world.customers:,} customers scored by model "
        f"v{world.model_version} as of {world.previous_as_of} and {world.as_of}"
    )
    env = {
        "CHURN_DATA_DIR": settings.data_dir,
        "CHURN_FEATURES_PATH": settings.features_path,
        "CHURN_STORE_DIR": settings.store_dir,
        "CHURN_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "CHURN_MLFLOW_ARTIFACT_ROOT": settings.mlflow_artifact_root,
    }
    console.print("serve it: " + " ".join(f"{k}={v}" for k, v in env.items()) + " churn serve")
    if not world.promoted:
        err_console.print(
            f"[yellow]the model is not the champion, so nothing is served:[/] {world.gate}"
        )


map_app = typer.Typer(no_args_is_help=True, help="Mapping files for your own exports.")
app.add_typer(map_app, name="map")


@map_app.command("suggest")
@friendly_errors
def map_suggest(
    src: Annotated[Path, typer.Option(help="Folder of exports (CSV, Parquet, JSON lines).")],
    out: Annotated[Path | None, typer.Option(help="Write the mapping here, else print it.")] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217 currency of the amounts.")] = "usd",
) -> None:
    """Propose a mapping file from the headers and sample values of the files under --src."""
    from features.importers.suggest import suggest, suggestion_yaml

    if not src.is_dir():
        raise ChurnError(f"The source folder {src} does not exist; pass --src DIR.")
    text = suggestion_yaml(suggest(src), currency)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(f"[green]wrote[/] {out}: read it, then churn import --map {out} --src {src}")


users_app = typer.Typer(no_args_is_help=True, help="UI users: name, role, password (argon2).")
app.add_typer(users_app, name="users")
keys_app = typer.Typer(no_args_is_help=True, help="Named API keys with scopes.")
app.add_typer(keys_app, name="keys")


def _password(name: str) -> str:
    """From a hidden prompt (asked twice) on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        return str(typer.prompt(f"Password for {name}", hide_input=True,
                                confirmation_prompt=True))  # fmt: skip
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("add")
@friendly_errors
def users_add(
    name: Annotated[str, typer.Option(help="Full name, as the data names the CSM (csm_owner).")],
    role: Annotated[str, typer.Option(help="csm, manager or admin.")] = "csm",
) -> None:
    """Add a user; the password comes from a prompt (or stdin when piped)."""
    from serving.users import directory_of

    settings = Settings()
    user = directory_of(settings).add_user(name, role, _password(name), datetime.now(UTC))
    console.print(f"added {user.name} ({user.role}) to {settings.users_db_path}")


@users_app.command("password")
@friendly_errors
def users_password(name: Annotated[str, typer.Option(help="The user's name.")]) -> None:
    """Set a new password (signs the user out everywhere)."""
    from serving.users import directory_of

    user = directory_of(Settings()).set_password(name, _password(name), datetime.now(UTC))
    console.print(f"new password for {user.name}; their sessions are signed out")


@users_app.command("remove")
@friendly_errors
def users_remove(name: Annotated[str, typer.Option(help="The user's name.")]) -> None:
    """Remove a user (their sessions stop working)."""
    from serving.users import directory_of

    directory_of(Settings()).remove_user(name)
    console.print(f"removed {name}")


@users_app.command("list")
@friendly_errors
def users_list() -> None:
    """Users and their roles (never a password or hash)."""
    from serving.users import directory_of

    table = Table(title="Users")
    for column in ("name", "role", "demo"):
        table.add_column(column)
    for user in directory_of(Settings()).users():
        table.add_row(user.name, user.role, "yes" if user.demo else "")
    console.print(table)


@users_app.command("seed-demo")
@friendly_errors
def users_seed_demo(
    csms: Annotated[int, typer.Option(help="CSMs to create: the owners of most open tasks.")] = 3,
) -> None:
    """Demo users: a manager and the CSMs who own the demo's open tasks; prints their sign-in."""
    from serving.users import directory_of, seed_demo_users
    from serving.workflows.ledger import Ledger

    settings = Settings()
    owners: list[str] = []
    if settings.workflows_db_path.exists():
        frame = Ledger(settings.workflows_db_path).frame(
            "SELECT owner FROM tasks WHERE status = 'open' GROUP BY owner "
            "ORDER BY COUNT(*) DESC, owner LIMIT ?",
            [csms],
        )
        owners = [str(o) for o in frame["owner"]]
    if not owners:
        raise ChurnError("No open tasks to take CSM names from: run `churn score-all` first.")
    seeded = seed_demo_users(directory_of(settings), owners, datetime.now(UTC))
    table = Table(title="Demo sign-in (passwords are new each time; local use only)")
    for column in ("name", "role", "password"):
        table.add_column(column)
    for name, role, password in seeded:
        table.add_row(name, role, password)
    console.print(table)


@keys_app.command("add")
@friendly_errors
def keys_add(
    name: Annotated[str, typer.Option(help="What uses the key, e.g. crm-sync.")],
    scope: Annotated[
        list[str],
        typer.Option(help="score:read, workflows:read, workflows:write or admin (repeatable)."),
    ],
) -> None:
    """Create an API key with scopes; it is printed once (only its SHA-256 is stored)."""
    from serving.users import directory_of

    key = directory_of(Settings()).add_key(name, scope, datetime.now(UTC))
    console.print(f"key {name} ({', '.join(sorted(set(scope)))}); send it as X-API-Key:")
    print(key)


@keys_app.command("list")
@friendly_errors
def keys_list() -> None:
    """Named keys and their scopes (the keys of CHURN_API_KEYS have every scope)."""
    from serving.users import directory_of

    table = Table(title="API keys")
    for column in ("name", "scopes", "created"):
        table.add_column(column)
    for name, scopes, created in directory_of(Settings()).key_list():
        table.add_row(name, " ".join(scopes), created[:19])
    console.print(table)


@keys_app.command("remove")
@friendly_errors
def keys_remove(name: Annotated[str, typer.Option(help="The key's name.")]) -> None:
    """Revoke a named key (refused from the next request on)."""
    from serving.users import directory_of

    directory_of(Settings()).remove_key(name)
    console.print(f"removed key {name}")


rules_app = typer.Typer(no_args_is_help=True, help="Retention workflow rules (rules.yaml).")
app.add_typer(rules_app, name="rules")

NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now",
        help="Evaluate as of this UTC time (ISO 8601). Default: the clock, or the latest "
        "as_of of the score history when it belongs to an older export (the demo).",
    ),
]


def _moment(text: str | None) -> datetime | None:
    """'2025-06-02' or '2025-06-02T06:00' (UTC) -> datetime; a clear error otherwise."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ChurnError(
            f"Cannot read --now {text!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _send_webhooks(workflows: Any) -> None:
    """Deliver queued webhooks; a missing secret leaves them queued (the run is recorded)."""
    try:
        attempts = workflows.send(timeout_seconds=30)
    except ChurnError as exc:
        err_console.print(f"[yellow]webhooks stay queued:[/] {exc}")
        return
    outcomes = Counter(a.outcome for a in attempts)
    console.print(
        f"webhooks: {outcomes['delivered']} delivered, {outcomes['pending']} to retry, "
        f"{outcomes['dead']} dead-lettered"
    )


@rules_app.command("run")
@friendly_errors
def rules_run(
    now: NowOpt = None,
    send: Annotated[bool, typer.Option(help="Deliver queued webhooks after the run.")] = True,
) -> None:
    """Evaluate rules.yaml over the score history: open and clear alerts, queue their actions."""
    from serving.workflows.service import Workflows

    workflows = Workflows.from_settings(Settings())
    summary = workflows.run(_moment(now))
    console.print(f"[green]{summary.line()}[/]")
    if send:
        _send_webhooks(workflows)


@rules_app.command("send")
@friendly_errors
def rules_send() -> None:
    """Deliver queued webhooks (retries, back-off, dead letters); run it from cron or a loop."""
    from serving.workflows.service import Workflows

    _send_webhooks(Workflows.from_settings(Settings()))


@rules_app.command("check")
@friendly_errors
def rules_check() -> None:
    """Validate rules.yaml; exit 1 naming the line and the reason of each problem."""
    from serving.workflows.config import load_rules

    path = Settings().workflows.rules_path
    config = load_rules(path)
    console.print(f"[green]{path}: valid[/] ({len(config.rules)} rules)")


@app.command()
@friendly_errors
def report(
    quarter: Annotated[
        str | None, typer.Option(help="Quarterly review of this quarter, e.g. 2025Q1.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the markdown here.")] = None,
    now: NowOpt = None,
) -> None:
    """The closed loop (effect of actions, exits, rule precision, goal) or a quarterly review."""
    from serving.workflows.loop import quarterly_review
    from serving.workflows.review import loop_markdown, review_markdown
    from serving.workflows.service import Workflows

    settings = Settings()
    loop, inputs = Workflows.from_settings(settings).closed_loop(_moment(now))
    text = (
        review_markdown(quarterly_review(loop, inputs, quarter), _monitoring_or_why(settings))
        if quarter
        else loop_markdown(loop)
    )
    if out is None:
        typer.echo(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        console.print(f"[green]wrote[/] {out}")


@app.command()
@friendly_errors
def monitor(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    rows: Annotated[int, typer.Option(help="Features shown, most important first.")] = 12,
) -> None:
    """Drift, freshness, estimated and realised quality of the champion; exit 1 on an alarm."""
    from serving.monitoring import monitor as run_monitor
    from serving.monitoring import monitor_config

    settings = Settings()
    with console.status("monitoring"):
        report = run_monitor(settings, monitor_config(settings))
    if as_json:
        import json

        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_monitoring(report, rows)
    if report.alarmed:
        raise typer.Exit(1)


def _print_monitoring(report: Any, rows: int) -> None:
    """The report as rich tables: alarms, features, outputs, freshness, quality."""
    console.print(
        f"[bold]{report.model_name} v{report.model_version}[/]: snapshot as of {report.as_of}, "
        f"export date {report.export_date}, model data {report.model_age_days} days old"
    )
    alarms = Table(title="Alarms")
    for column in ("kind", "subject", "message"):
        alarms.add_column(column)
    for alarm in report.alarms:
        alarms.add_row(alarm.kind, alarm.subject, alarm.message)
    console.print(alarms if report.alarms else "[green]no alarm[/]")
    frame = report.features
    shown = pd.concat([frame.head(rows), frame[frame["significant"]]]).drop_duplicates("feature")
    table = Table(title="Feature drift (most important first; level set by the sample sizes)")
    for column in ("feature", "share", "PSI", "tolerance", "p-value", "level", "finding"):
        table.add_column(column, justify="left" if column in ("feature", "finding") else "right")
    for row in shown.itertuples():
        finding = (f"[red]{row.kind}[/]" if row.alarm else row.kind) + (
            f" new: {row.new_levels}" if row.new_levels else ""
        )
        table.add_row(str(row.feature), f"{row.share:.1%}", f"{row.psi:.3f}",
                      f"{row.tolerance:.3f}", f"{row.p_value:.2g}", f"{row.level:.2g}",
                      finding)  # fmt: skip
    console.print(table)
    outputs = Table(title="Model outputs: reference vs now")
    for column in ("output", "PSI", "p-value", "level", "drifted"):
        outputs.add_column(column)
    for output in report.outputs:
        outputs.add_row(str(output["output"]), f"{output['psi']:.3f}",
                        f"{output['p_value']:.2g}", f"{output['level']:.2g}",
                        "yes" if output["significant"] else "no")  # fmt: skip
    console.print(outputs)
    if len(report.freshness):
        fresh = Table(title="Freshness per source")
        for column in ("source", "last record", "silent days", "active days", "stale"):
            fresh.add_column(column)
        for row in report.freshness.itertuples():
            fresh.add_row(str(row.source), str(row.last_record), str(row.silent_days),
                          f"{row.active_day_share:.0%}",
                          "[red]yes[/]" if row.stale else "no")  # fmt: skip
        console.print(fresh)
    if report.estimate is not None:
        e = report.estimate
        promised = report.promised.get("roc_auc")
        console.print(
            f"estimated ROC-AUC {e.roc_auc:.3f} (95 % {e.roc_auc_low:.3f} to {e.roc_auc_high:.3f})"
            + (f", promised {promised:.3f}" if promised is not None else "")
            + f"; expected churn rate {e.churn_rate:.2%}; estimate {report.trust}: "
            + "; ".join(report.trust_reasons)
        )
    if len(report.realised):
        real = Table(title="Realised quality of closed scorings")
        for column in ("as_of", "version", "rows", "ROC-AUC", "95 % interval", "estimated",
                       "PR-AUC", "Brier", "ECE", "lift top 10 %"):  # fmt: skip
            real.add_column(column)
        for row in report.realised.itertuples():
            real.add_row(str(row.as_of), str(row.model_version), f"{row.rows:,}",
                         f"{row.roc_auc:.3f}", f"{row.roc_auc_low:.3f}-{row.roc_auc_high:.3f}",
                         f"{row.estimated_roc_auc:.3f}", f"{row.pr_auc:.3f}", f"{row.brier:.4f}",
                         f"{row.ece:.4f}", f"{row.lift_top10:.2f}")  # fmt: skip
        console.print(real)


def _monitoring_or_why(settings: Settings) -> Any:
    """The champion's monitoring report for the quarterly review, or why there is none."""
    from serving.monitoring import monitor as run_monitor
    from serving.monitoring import monitor_config

    try:
        return run_monitor(settings, monitor_config(settings))
    except Exception as exc:  # the review is written anyway; its section says what failed
        return f"{type(exc).__name__}: {exc}" if not isinstance(exc, ChurnError) else str(exc)


@app.command()
@friendly_errors
def retrain(
    config: Annotated[Path | None, typer.Option(help="YAML training config.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain whatever the trigger says.")] = False,
) -> None:
    """Monitor, and retrain through the gate when the trigger fires (cron-suitable)."""
    from serving.retrain import RETRAIN_LOG
    from serving.retrain import retrain as run_retrain
    from training.config import read_train_config

    settings = Settings()
    train_config, _ = read_train_config(config)
    with console.status("monitoring, then retraining if the trigger fires"):
        outcome = run_retrain(settings, train_config, force=force)
    for line in outcome.lines():
        console.print(line)
    console.print(f"logged to {settings.store_dir / RETRAIN_LOG}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
