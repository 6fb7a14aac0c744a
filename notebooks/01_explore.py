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
# # 01 · Explore: data checks, churn rate, cohorts, churned vs retained
#
# A generated company (`features.generator`, known churn drivers) stands in for an export; point
# `load_valid_tables` at a real folder to explore your own. Set `CHURN_NOTEBOOK_SMALL=1` for the
# small world `make test` executes.

# %%
import os

import pandas as pd

from features.contract import parse_tables, print_report, validate
from features.engine import build_labeled_set, observed_until
from features.generator import generate_world
from features.labels import LabelSpec
from features.metrics import cohort_retention, monthly_metrics, retention_summary
from features.pipeline import data_start, default_as_of

SMALL = os.environ.get("CHURN_NOTEBOOK_SMALL") == "1"
CUSTOMERS, MONTHS = (600, 18) if SMALL else (5000, 24)
world = generate_world(CUSTOMERS, MONTHS, seed=42)
tables = parse_tables(world.tables)
start, end = data_start(tables), observed_until(tables)

# %% [markdown]
# ## Data checks: the contract report (errors block every pipeline, warnings do not)

# %%
print_report(validate(tables, now=pd.Timestamp(end) + pd.Timedelta(days=1)))

# %% [markdown]
# ## Churn rate and revenue, monthly

# %%
retention_summary(tables, start, end)

# %%
monthly_metrics(tables, start, end)[
    ["customers_start", "churn_rate", "gross_mrr_churn", "net_revenue_retention", "arpa"]
].round(3)

# %% [markdown]
# ## Cohorts: share of each signup month still active k months later

# %%
cohort_retention(tables, start, end).round(2).iloc[-12:, :12]

# %% [markdown]
# ## Profile of churned vs retained customers (90-day horizon, monthly as-of dates)

# %%
labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec(horizon_days=90))
complete = labeled[labeled["label_complete"]]
complete.groupby("churned").mean(numeric_only=True).T.round(2)
