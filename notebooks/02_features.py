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
# # 02 · Features: catalog, distributions, churn rate by decile, leakage check
#
# Every feature is defined once (`features/definitions/*.sql`) and described in the catalog
# (`features/catalog.py`); here we look at their values on a generated company.

# %%
import os
from dataclasses import replace

import pandas as pd
from IPython.display import Markdown

from features.catalog import catalog_markdown
from features.contract import parse_tables
from features.engine import (
    build_features,
    build_labeled_set,
    default_vocabulary,
    feature_columns,
)
from features.generator import generate_world
from features.labels import LabelSpec
from features.pipeline import default_as_of

SMALL = os.environ.get("CHURN_NOTEBOOK_SMALL") == "1"
CUSTOMERS, MONTHS = (600, 18) if SMALL else (5000, 24)
tables = parse_tables(generate_world(CUSTOMERS, MONTHS, seed=42).tables)
labeled = build_labeled_set(tables, default_as_of(tables), LabelSpec(horizon_days=90))
complete = labeled[labeled["label_complete"]]

# %% [markdown]
# ## The catalog (name, group, unit, description, the sentence a CSM reads)

# %%
Markdown(catalog_markdown())

# %% [markdown]
# ## Distributions

# %%
complete[feature_columns(complete)].describe().T.round(2)

# %% [markdown]
# ## Churn rate by feature decile (a monotone trend = a leading indicator)

# %%
pd.DataFrame(
    {
        name: complete.groupby(pd.qcut(complete[name], 10, labels=False, duplicates="drop"))[
            "churned"
        ].mean()
        for name in (
            "active_days_30d",
            "activity_change_30d",
            "days_since_last_activity",
            "open_tickets",
            "tenure_days",
        )
        if name in complete
    }
).round(3)

# %% [markdown]
# ## Leakage check
#
# Features for an as-of date may only read rows stamped before it. Deleting every event on or
# after the as-of date must change nothing (the property test `tests/features/test_leakage.py`
# checks every table and every kind of change). The vocabulary (which event types and product
# features get their own columns) is the export's schema, chosen once over the whole log, so it
# is held fixed here like the as-of date.

# %%
as_of = default_as_of(tables)[len(default_as_of(tables)) // 2]
events_before = tables.events[tables.events["timestamp"] < pd.Timestamp(as_of, tz="UTC")]
vocabulary = default_vocabulary(tables)
full = build_features(tables, [as_of], vocabulary=vocabulary)
truncated = build_features(replace(tables, events=events_before), [as_of], vocabulary=vocabulary)
pd.testing.assert_frame_equal(full, truncated)
f"{len(full):,} customers as of {as_of}: identical features with and without later events"
