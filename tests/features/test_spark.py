"""Spark runs the same definitions as DuckDB and gives the same tables (``features/spark_engine``).

Local mode (``local[2]``), small data, one session for every Spark test module of a pytest
process (they share an xdist group). Without Java the Spark tests skip with the reason; without
PySpark (the optional ``spark`` extra) this module skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("pyspark", reason="PySpark not installed: uv sync --extra spark")

from pyspark.sql import SparkSession
from typer.testing import CliRunner

from churn.cli import app
from features.catalog import KEY_COLUMNS
from features.contract import RawTables, parse_tables, validate_folder
from features.engine import (
    build,
    build_features,
    build_labeled_set,
    default_vocabulary,
    definition,
)
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import default_as_of, snapshot_as_of
from features.spark_engine import (
    SparkDialectError,
    SparkEngine,
    local_session,
    read_export,
    to_spark_sql,
    validate_spark,
)
from tests.features.test_contract import NOW, event, linked_export, with_rows
from tests.features.test_leakage import DAYS, START, perturb_after, random_world

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

DEFINITIONS = sorted(
    p.stem for p in (Path(__file__).parents[2] / "features/definitions").glob("*.sql")
)


def java_problem() -> str | None:
    """Why Spark cannot start here, or None: PySpark needs a Java runtime (17+)."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no `java` on PATH, no JAVA_HOME"
        return f"{where}; install OpenJDK 17 to run the Spark tests"
    try:
        subprocess.run([java, "-version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{java} -version` failed: {exc}"
    return None


def spark_session() -> SparkSession:
    """The shared local session, or a skip that says why Java is missing."""
    problem = java_problem()
    if problem:
        pytest.skip(f"Java not found: {problem}")
    return local_session(cores=2, memory="1g", shuffle_partitions=2, tiny_data=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Not stopped at module end: the serving Spark tests in the same process reuse it.
    yield spark_session()


def assert_same_table(duck: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Same columns in the same order, same rows; numbers within 1e-9; categories equal."""
    assert list(spark.columns) == list(duck.columns)
    keys = list(KEY_COLUMNS)
    duck = duck.sort_values(keys, ignore_index=True)
    spark = spark.sort_values(keys, ignore_index=True)
    assert len(spark) == len(duck)
    for column in duck.columns:
        left, right = duck[column], spark[column]
        if column == "as_of":
            assert (pd.to_datetime(left).to_numpy() == pd.to_datetime(right).to_numpy()).all()
        elif pd.api.types.is_numeric_dtype(left) and not pd.api.types.is_bool_dtype(left):
            np.testing.assert_allclose(
                right.to_numpy(np.float64), left.to_numpy(np.float64),
                rtol=1e-9, atol=1e-9, err_msg=column,
            )  # fmt: skip
        else:
            as_text = [s.astype(object).where(s.notna(), None).tolist() for s in (left, right)]
            assert as_text[0] == as_text[1], column


# ----- transpiling (no Spark needed) -----


@pytest.mark.parametrize("name", DEFINITIONS)
def test_transpiled_definitions_avoid_lossy_spark_functions(name: str) -> None:
    sql = to_spark_sql(definition(name)).upper()
    assert "UNIX_TIMESTAMP" not in sql  # drops fractional seconds
    assert "DATEDIFF(DAY" not in sql  # whole 24 h periods, not midnights crossed
    assert "TIMESTAMP_NTZ" not in sql  # one timestamp type: UTC instants


def test_decimal_literals_become_doubles_so_division_is_not_rounded() -> None:
    assert "CAST(86400.0 AS DOUBLE)" in to_spark_sql("SELECT x / 86400.0 FROM t")


def test_date_diff_in_units_with_other_semantics_is_refused() -> None:
    with pytest.raises(SparkDialectError, match="boundaries"):
        to_spark_sql("SELECT DATE_DIFF('second', a, b) FROM t")


# ----- identical tables -----


@pytest.mark.parametrize(
    "spec",
    [LabelSpec(), LabelSpec(kind="noncontractual", lead_days=7, horizon_days=7)],
    ids=["contractual", "noncontractual"],
)
def test_spark_and_duckdb_give_identical_labeled_sets_on_a_random_world(
    spark: SparkSession, spec: LabelSpec
) -> None:
    tables = random_world(11)
    as_of = [(START + pd.Timedelta(days=d)).date() for d in (40, 90, 130)]
    duck = build_labeled_set(tables, as_of, spec)
    engine = SparkEngine(spark)
    on_spark = build_labeled_set(tables, as_of, spec, engine=engine)
    engine.close()
    assert len(duck) > 10 and duck["churned"].nunique() == 2
    assert_same_table(duck, on_spark)


def test_spark_reads_contract_parquet_and_matches_duckdb_on_a_generated_world(
    spark: SparkSession, tmp_path: Path
) -> None:
    """The scale path: Parquet -> Spark-side preparation -> labeled set, no pandas on the way."""
    world = generate_world(300, 8, seed=1)
    rng = np.random.default_rng(0)
    n = len(world.tables.customers)
    customers = world.tables.customers.assign(  # typed attributes as text, as from a CSV
        balance=[f"{v:.2f}" for v in rng.normal(900, 200, n)],
        born_on=pd.to_datetime(rng.integers(-9000, -4000, n), unit="D").strftime("%Y-%m-%d"),
        notes=[f"note number {i} about this account" for i in range(n)],
    )
    world_tables = replace(world.tables, customers=customers)
    (tmp_path / "export").mkdir()
    for name, frame in world_tables.present().items():  # as exported, with pandas' types
        frame.to_parquet(tmp_path / "export" / f"{name}.parquet", index=False)
    tables = parse_tables(world_tables)
    spec = LabelSpec(horizon_days=60)
    export = read_export(spark, str(tmp_path / "export"))
    as_of = default_as_of(export)
    assert as_of == default_as_of(tables)
    assert snapshot_as_of(export) == snapshot_as_of(tables)
    engine = SparkEngine(spark)
    on_spark = build_labeled_set(export, as_of, spec, engine=engine)
    engine.close()
    duck = build_labeled_set(tables, as_of, spec)
    assert len(duck) > 500 and duck["churned"].nunique() == 2
    assert {"balance", "years_since_born_on", "type_login_30d"} <= set(duck.columns)
    assert_same_table(duck, on_spark)


def test_a_labeled_set_written_by_spark_equals_duckdb(spark: SparkSession, tmp_path: Path) -> None:
    """The one build, written from inside Spark (``FeatureSet.write_parquet``), never via pandas."""
    tables = random_world(5)
    as_of = [(START + pd.Timedelta(days=d)).date() for d in (60, 120)]
    spec = LabelSpec(horizon_days=30)
    engine = SparkEngine(spark)
    written = build(tables, as_of, spec, engine, labels=True).write_parquet(str(tmp_path / "set"))
    engine.close()
    assert (tmp_path / "set" / "_SUCCESS").exists()
    assert_same_table(build_labeled_set(tables, as_of, spec), pd.read_parquet(written))


def test_absent_required_table_is_a_clear_error(spark: SparkSession, tmp_path: Path) -> None:
    from features.errors import ChurnError

    pd.DataFrame({"customer_id": ["c1"]}).to_parquet(tmp_path / "customers.parquet")
    with pytest.raises(ChurnError, match=r"subscriptions\.parquet"):
        read_export(spark, str(tmp_path))


def test_spark_validates_an_export_with_the_findings_of_validate_folder(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Typed Parquet (nanosecond timestamps, categoricals) with row findings in several chunks."""
    frames = linked_export()
    rows = [event(f"x{i}", "c1", "s1", "2024-03-01T00:00:00Z") for i in range(12)]
    rows[2]["subscription_id"], rows[7]["customer_id"], rows[9]["event_id"] = "s404", "zz", "x1"
    with_rows(frames, "events", *rows, frames["events"].iloc[0].to_dict())
    frames["marketing"].loc[0, "action"] = "shouted"
    for name, frame in parse_tables(RawTables(**frames)).present().items():  # type: ignore[arg-type]
        typed = frame.astype({"event_type": "category"}) if name == "events" else frame
        typed.to_parquet(tmp_path / f"{name}.parquet", index=False)
    expected = validate_folder(tmp_path, NOW)[1]
    assert {"duplicate_event_id", "unknown_subscription", "unknown_category"} <= {
        f.rule for f in expected.findings
    }
    assert validate_spark(read_export(spark, str(tmp_path)), NOW, chunk_rows=4) == expected
    # marketing.action is an error: the Spark build refuses the export, as the DuckDB build does
    out = tmp_path / "labeled"
    args = [
        "features",
        "--engine",
        "spark",
        "--data",
        str(tmp_path),
        "--monthly",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "marketing.action" in result.output
    assert not out.exists()


# ----- the leakage guard holds on Spark too -----


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    world_seed=st.integers(0, 2**16),
    change_seed=st.integers(0, 2**16),
    as_of_day=st.integers(20, DAYS - 10),
)
def test_rows_stamped_on_or_after_as_of_change_no_feature_on_spark(
    spark: SparkSession, world_seed: int, change_seed: int, as_of_day: int
) -> None:
    tables = random_world(world_seed)
    as_of = START + pd.Timedelta(days=as_of_day)
    day: list[date] = [as_of.date()]
    engine = SparkEngine(spark)
    vocabulary = default_vocabulary(tables)  # the export's schema, fixed like the as-of date
    before = build_features(tables, day, engine=engine, vocabulary=vocabulary)
    after = build_features(
        perturb_after(tables, as_of, change_seed), day, engine=engine, vocabulary=vocabulary
    )
    engine.close()
    assert_same_table(before, after)


# ----- writes: the previous output survives a failed job -----


def test_a_job_failing_mid_write_leaves_the_previous_output(
    spark: SparkSession, tmp_path: Path
) -> None:
    from pyspark.sql import functions as F

    from features.spark_engine import write_frame

    out = str(tmp_path / "scores")
    write_frame(spark.range(0, 50, numPartitions=2).withColumn("x", F.col("id") * 2), out)
    before = pd.read_parquet(out).sort_values("id", ignore_index=True)

    @F.udf("long")
    def fail_on_row_150(value: int) -> int:
        if value == 150:
            raise ValueError("a bad row in the last partition")
        return value

    failing = spark.range(0, 160, numPartitions=4).select(fail_on_row_150("id").alias("id"))
    with pytest.raises(Exception, match="a bad row"):
        write_frame(failing, out)
    after = pd.read_parquet(out).sort_values("id", ignore_index=True)
    pd.testing.assert_frame_equal(after, before)
    assert (tmp_path / "scores" / "_SUCCESS").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"], "no temporary left"
    write_frame(spark.range(3), out)  # and a good job replaces it whole
    assert sorted(pd.read_parquet(out)["id"]) == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores"]


def test_spark_parses_and_cleans_a_messy_export_as_the_duckdb_file_build_does(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Warnings that pass the contract are treated alike on both engines: events of customers
    the export does not hold dropped (a frequent type of theirs must not enter the vocabulary),
    text trimmed, categories lower-cased, a resolution before its opening blanked."""
    world = generate_world(300, 8, seed=1)
    tables = world.tables
    rng = np.random.default_rng(3)
    events, tickets = tables.events, tables.tickets
    assert events is not None and tickets is not None
    start, span = events["timestamp"].min(), events["timestamp"].max() - events["timestamp"].min()
    ghosts = pd.DataFrame(
        {
            "customer_id": "ghost",
            "timestamp": start + span * rng.random(3000),
            "event_type": "ghost_ping",
        }
    )
    events = pd.concat([events.astype({"event_type": str, "customer_id": str}), ghosts])
    events.loc[events.index[:50], "event_type"] = " login "
    tickets = tickets.astype({"priority": str}).copy()
    tickets.loc[tickets.index[:20], "priority"] = " HIGH "
    early = tickets.index[20:30]
    tickets.loc[early, "resolved_at"] = tickets.loc[early, "opened_at"] - pd.Timedelta(days=1)
    messy = replace(tables, events=events.reset_index(drop=True), tickets=tickets)
    folder = tmp_path / "export"
    folder.mkdir()
    for name, frame in messy.present().items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    _, report = validate_folder(folder, NOW)
    assert report.ok and {"unknown_customer", "resolved_before_opened"} <= {
        f.rule for f in report.findings
    }
    spec = LabelSpec(horizon_days=60)
    from features.files import read_file_export

    files = read_file_export(folder)
    as_of = default_as_of(files)
    duck = build_labeled_set(files, as_of, spec)
    engine = SparkEngine(spark)
    on_spark = build_labeled_set(read_export(spark, str(folder)), as_of, spec, engine=engine)
    engine.close()
    assert not any("ghost" in c for c in duck.columns)
    assert_same_table(duck, on_spark)
