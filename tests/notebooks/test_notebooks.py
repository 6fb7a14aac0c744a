"""Every notebook executes top to bottom on small data, so notebooks never rot.

The percent scripts in ``notebooks/`` are the source; each is converted with jupytext and run
in a fresh kernel with ``CHURN_NOTEBOOK_SMALL=1``, a temporary working folder and a temporary
MLflow store (nothing is written into the repository).
"""

from __future__ import annotations

from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 300  # per cell; the whole set takes well under a minute on an idle machine


def test_all_four_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01_explore", "02_features", "03_train_compare", "04_real_data",
    ]  # fmt: skip


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_on_small_data(
    script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("CHURN_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("CHURN_MLFLOW_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = jupytext.read(script)
    client = NotebookClient(
        notebook,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError with the failing cell and its traceback
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if script.stem == "03_train_compare":  # it trained into the CLI's store, nowhere else
        from mlflow.tracking import MlflowClient

        client_ = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
        assert client_.get_model_version_by_alias("churn-model", "champion") is not None
        assert (tmp_path / "artifacts").is_dir()
        assert not (tmp_path / "mlruns").exists()
