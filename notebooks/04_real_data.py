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
# # 04 · Real data: Telco and CDNOW end to end (and RavenStack's validation report)
#
# The public data sets live in `../shared/data` beside the repository (`CHURN_SHARED_DATA`
# overrides). Each importer maps its data set to the raw-data contract; from there the normal
# pipeline runs unchanged. `docs/results.md` holds the full tables (`benchmarks/results.py`).

# %%
import os

import pandas as pd

from features.contract import print_report, validate
from features.engine import build_labeled_set
from features.importers import cdnow, import_cdnow, import_ravenstack, import_telco, telco
from features.importers import shared_data_dir
from features.importers.bgnbd import bgnbd_scores
from features.importers.ravenstack import source_inconsistencies
from training.evaluation import evaluate, metrics_table
from training.pipeline import TrainConfig, train

SMALL = os.environ.get("CHURN_NOTEBOOK_SMALL") == "1"
DATA = shared_data_dir()

# %% [markdown]
# ## Telco: one snapshot row per customer
#
# Fictional calendar: the one as-of date is the start of the churn month, so the contractual
# label over 30 days equals the data set's `Churn`. No history: usage, support and billing
# features are unavailable, and the split is stratified (stated below).

# %%
telco_tables = import_telco(DATA / "telco")
telco_labeled = build_labeled_set(telco_tables, [telco.AS_OF], telco.label_spec())
telco_result = train(telco_labeled, TrainConfig(horizon_days=telco.HORIZON_DAYS))
print(telco_result.split.description)
metrics_table(telco_result.metrics, title="Telco: held-out customers")

# %%
telco_result.importance.head(10)

# %% [markdown]
# ## CDNOW: non-contractual purchases, the classic calibration / holdout split
#
# Features from purchases before 1997-10-01; churned = no purchase in the 39-week holdout.
# BG/NBD is fitted on the calibration period only and scored on the same test customers.

# %%
cdnow_file = "CDNOW_sample.txt" if SMALL else "CDNOW_master.txt"
cdnow_tables = import_cdnow(DATA / "cdnow" / cdnow_file)
spec = cdnow.label_spec()
cdnow_labeled = build_labeled_set(cdnow_tables, [cdnow.HOLDOUT_START], spec)
cdnow_result = train(cdnow_labeled, TrainConfig(horizon_days=spec.horizon_days,
                                                label="noncontractual"))
scores, params = bgnbd_scores(cdnow_tables.events, cdnow.HOLDOUT_START, spec.horizon_days)
test = cdnow_result.test.merge(scores, on=["customer_id", "as_of"], validate="1:1")
print(cdnow_result.split.description, params, sep="\n")
metrics_table(
    {
        **cdnow_result.metrics,
        "bgnbd_p_churn": evaluate(test["churned"], test["bgnbd_p_churn"], None),
        "bgnbd_1_minus_p_alive": evaluate(test["churned"], 1 - test["bgnbd_p_alive"], None,
                                          probability=False),
    },
    title=f"CDNOW ({cdnow_file}): held-out customers",
)

# %% [markdown]
# ## RavenStack: what `churn validate` makes of a messy export (no model quality: labels are noise)

# %%
print_report(validate(import_ravenstack(DATA / "ravenstack"), pd.Timestamp("2026-01-01", tz="UTC")))

# %%
source_inconsistencies(DATA / "ravenstack")
