"""docs/scale.md's cluster recipe works as written: its local ``spark-submit`` command builds the
labeled set on ``local-cluster[2,1,1024]``, and its Databricks job calls the package's console
script with commands and options the CLI has. The commands are read out of the page, so the
docs and this test cannot drift apart."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import typer

pytest.importorskip("pyspark", reason="PySpark not installed: uv sync --extra spark")

from churn.cli import app
from features.generator import generate_world, write_world
from tests.features.test_spark import java_problem

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark-submit")]

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "scale.md").read_text()
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# only for the test's tiny world: interpreted, non-adaptive (features.spark_engine.local_session)
TINY_DATA = ["spark.sql.adaptive.enabled=false", "spark.sql.codegen.wholeStage=false",
             "spark.sql.codegen.factoryMode=NO_CODEGEN", "spark.sql.shuffle.partitions=2",
             "spark.locality.wait=0s", "spark.ui.enabled=false"]  # fmt: skip


def fenced(language: str, containing: str) -> str:
    """The one fenced ``language`` block of docs/scale.md that contains ``containing``."""
    blocks = [b for b in re.findall(rf"```{language}\n(.*?)```", DOC, re.S) if containing in b]
    assert len(blocks) == 1, f"expected one ```{language} block with {containing!r}"
    return blocks[0]


def test_the_local_spark_submit_command_builds_the_labeled_set_on_a_local_cluster(
    tmp_path: Path,
) -> None:
    problem = java_problem()
    if problem:
        pytest.skip(f"Java not found: {problem}")
    import pyspark

    words = shlex.split(fenced("bash", "local-cluster").replace("\\\n", " "))
    assert words[:3] == ["spark-submit", "--master", "local-cluster[2,1,1024]"]
    (tmp_path / "run_churn.py").write_text(fenced("python", "from churn.cli import app"))
    write_world(generate_world(80, 6, seed=2), tmp_path / "data" / "demo")
    words = [w.replace(".venv/bin/python", sys.executable) for w in words]
    tiny = [part for conf in TINY_DATA for part in ("--conf", conf)]
    spark_home = Path(pyspark.__file__).parent
    command = [str(spark_home / "bin" / "spark-submit"), *tiny, *words[1:]]
    env = {**os.environ, "SPARK_HOME": str(spark_home), "PYSPARK_PYTHON": sys.executable}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "data" / "features" / "labeled_spark"
    assert (out / "_SUCCESS").exists()
    labeled = pd.read_parquet(out)
    assert len(labeled) > 50 and labeled["as_of"].nunique() > 1
    assert {"customer_id", "churned", "events_30d"} <= set(labeled.columns)


def test_the_databricks_job_calls_the_churn_script_with_real_commands_and_options() -> None:
    job = json.loads(fenced("json", "python_wheel_task"))
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    wheel_file = f"{PROJECT['name'].replace('-', '_')}-{PROJECT['version']}-py3-none-any.whl"
    clusters = {c["job_cluster_key"] for c in job["job_clusters"]}
    keys = [task["task_key"] for task in job["tasks"]]
    for task in job["tasks"]:
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == PROJECT["name"]
        assert wheel["entry_point"] in PROJECT["scripts"]
        assert [lib["whl"].rsplit("/", 1)[-1] for lib in task["libraries"]] == [wheel_file]
        assert task["job_cluster_key"] in clusters
        assert all(dep["task_key"] in keys for dep in task.get("depends_on", []))
        name, *arguments = wheel["parameters"]
        options = {opt for param in commands[name].params for opt in param.opts}
        assert {a for a in arguments if a.startswith("--")} <= options, name
