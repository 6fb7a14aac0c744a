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
# everything to MLflow and applies the promotion gate. The MLflow store comes from the settings
# (`CHURN_MLFLOW_TRACKING_URI`).

# %%
import os

from churn.settings import Settings
from features.contract import parse_tables
from features.engine import build_labeled_set
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import default_as_of
from training.evaluation import metrics_table
from training.pipeline import TrainConfig
from training.workflow import figures, train_and_register

SMALL = os.environ.get("CHURN_NOTEBOOK_SMALL") == "1"
CUSTOMERS, MONTHS = (600, 18) if SMALL else (5000, 24)
settings = Settings()
tables = parse_tables(generate_world(CUSTOMERS, MONTHS, seed=42).tables)
config = TrainConfig(horizon_days=90)
labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec(horizon_days=90))

# %%
report = train_and_register(labeled, config, model_name=settings.model_name,
                            tracking_uri=settings.mlflow_tracking_uri,
                            data_description=f"generated: {CUSTOMERS} customers, {MONTHS} months")
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
