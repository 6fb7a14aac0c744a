# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Train, compare with the baselines, calibration, SHAP, register
#
# One call trains the calibrated LightGBM model on an out-of-time split, scores it and both
# baselines (hand-weighted health score, logistic regression) on the test window, logs
# everything to MLflow and applies the promotion gate: the same call, settings and MLflow store
# as `churn train` (the working folder moves to the checkout's root, like the command line's,
# so `mlruns/` is the one the CLI and `mlflow ui` read; `CHURN_*` variables override it).

# %%
import os

from churn_settings import Settings, project_root
from features.contract import parse_tables
from features.engine import build_labeled_set, observed_until
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import default_as_of, label_record
from training.config import load_train_config
from training.evaluation import metrics_table
from training.workflow import figures, train_and_register

os.chdir(project_root())
SMALL = os.environ.get("CHURN_NOTEBOOK_SMALL") == "1"
CUSTOMERS, MONTHS = (600, 18) if SMALL else (5000, 24)
settings = Settings()
config = load_train_config(None)  # or a YAML file: the same keys as `churn train --config`
tables = parse_tables(generate_world(CUSTOMERS, MONTHS, seed=42).tables)
spec = LabelSpec(
    horizon_days=settings.horizon_days,
    lead_days=settings.lead_days,
    gap_days=settings.resubscribe_gap_days,
)
labeled = build_labeled_set(tables, default_as_of(tables), spec)
record = label_record(spec, observed_until(tables), labeled)

# %%
report = train_and_register(
    labeled,
    config,
    model_name=settings.model_name_for("export"),
    tracking_uri=settings.mlflow_tracking_uri,
    artifact_root=settings.mlflow_artifact_root,
    record=record,
    data_description=f"generated: {CUSTOMERS} customers, {MONTHS} months",
)
result = report.result
print(result.split.description)
metrics_table(result.metrics, title="Test window: model vs baselines")

# %% [markdown]
# ## Ranking, calibration and lift

# %%
plots = figures(result)
plots["roc"]

# %%
plots["calibration"]

# %%
plots["lift"]

# %% [markdown]
# ## What drives the scores (SHAP, calibrated log-odds)

# %%
result.importance.head(15)

# %%
plots["shap_beeswarm"]

# %% [markdown]
# ## Registered

# %%
f"{settings.model_name} v{report.version}: {report.decision.reason}"
