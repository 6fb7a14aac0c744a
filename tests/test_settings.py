"""``churn_settings``: one object, the environment names it reads, one MLflow precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from churn_settings import DEFAULT_TRACKING_URI, Settings, resolve_tracking_uri


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No variable or ``.env`` of the machine running the tests leaks in."""
    monkeypatch.chdir(tmp_path)
    for name in ("MLFLOW_TRACKING_URI", "CHURN_MLFLOW_TRACKING_URI", "CHURN_RULES_PATH",
                 "CHURN_WORKFLOWS_DB", "CHURN_SCORE_HISTORY", "CHURN_WORKFLOWS__RULES_PATH",
                 "CHURN_STORE_DIR", "CHURN_TASK_CAPACITY",
                 "CHURN_WORKFLOWS__TASK_CAPACITY", "CHURN_HOST", "CHURN_PORT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


def test_the_churn_variable_names_the_mlflow_store_before_mlflows_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().mlflow_tracking_uri == DEFAULT_TRACKING_URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow-own.db")
    assert Settings().mlflow_tracking_uri == "sqlite:///mlflow-own.db"
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", "sqlite:///ours.db")
    assert Settings().mlflow_tracking_uri == "sqlite:///ours.db"
    assert resolve_tracking_uri("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_the_store_is_resolved_when_the_settings_are_read_not_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///at-start.db")
    settings = Settings()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///rewritten-by-mlflow.db")
    assert settings.mlflow_tracking_uri == "sqlite:///at-start.db"


def test_workflow_paths_are_a_section_read_by_nested_or_earlier_flat_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHURN_STORE_DIR", "store")
    settings = Settings()
    assert settings.workflows.rules_path == Path("rules.yaml")
    assert settings.workflows_db_path == Path("store/workflows.db")
    assert settings.score_history_path == Path("store/history")
    monkeypatch.setenv("CHURN_RULES_PATH", "flat.yaml")
    monkeypatch.setenv("CHURN_SCORE_HISTORY", "elsewhere/history")
    assert Settings().workflows.rules_path == Path("flat.yaml")
    monkeypatch.setenv("CHURN_WORKFLOWS__RULES_PATH", "nested.yaml")
    settings = Settings()
    assert settings.workflows.rules_path == Path("nested.yaml")  # the nested name wins
    assert settings.score_history_path == Path("elsewhere/history")  # the flat one still counts


def test_a_dotenv_file_sets_the_workflow_section_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHURN_WORKFLOWS_DB=ledger.db\nCHURN_TOP_K=3\n")
    settings = Settings()
    assert settings.workflows_db_path == Path("ledger.db") and settings.top_k == 3


def test_the_task_capacity_is_in_the_workflow_section_and_none_means_no_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().workflows.task_capacity == 25
    monkeypatch.setenv("CHURN_TASK_CAPACITY", "12")
    assert Settings().workflows.task_capacity == 12  # the name the tasks work documented
    monkeypatch.setenv("CHURN_WORKFLOWS__TASK_CAPACITY", "none")
    assert Settings().workflows.task_capacity is None  # the nested name wins; no limit
    monkeypatch.setenv("CHURN_WORKFLOWS__TASK_CAPACITY", "0")
    with pytest.raises(ValueError, match="task_capacity"):
        Settings()


def test_churn_serve_reads_its_host_and_port_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert (Settings().host, Settings().port) == ("127.0.0.1", 8000)
    monkeypatch.setenv("CHURN_HOST", "::1")
    monkeypatch.setenv("CHURN_PORT", "8123")
    assert (Settings().host, Settings().port) == ("::1", 8123)
    monkeypatch.setenv("CHURN_PORT", "70000")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_the_currency_is_the_setting_else_the_imported_exports_else_usd(tmp_path: Path) -> None:
    import json

    from churn_settings import Settings

    assert Settings(data_dir=tmp_path).currency_code() == "USD"
    (tmp_path / "import.json").write_text(json.dumps({"currency": "gbp"}))
    assert Settings(data_dir=tmp_path).currency_code() == "GBP"
    assert Settings(data_dir=tmp_path, currency="chf").currency_code() == "CHF"


def test_the_feature_builds_duckdb_limits_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings()
    assert settings.duckdb_memory_limit == "1GB"
    assert settings.duckdb_spill_path == Path("data/store/duckdb-spill")  # beside the store
    monkeypatch.setenv("CHURN_DUCKDB_MEMORY_LIMIT", "1.5GB")
    monkeypatch.setenv("CHURN_DUCKDB_TEMP_DIRECTORY", "/scratch/spill")
    monkeypatch.setenv("CHURN_DUCKDB_THREADS", "2")
    settings = Settings()
    assert (settings.duckdb_memory_limit, settings.duckdb_threads) == ("1.5GB", 2)
    assert settings.duckdb_spill_path == Path("/scratch/spill")
    monkeypatch.setenv("CHURN_DUCKDB_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="duckdb_memory_limit"):
        Settings()
