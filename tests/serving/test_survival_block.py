"""The time-to-churn block: precomputed by score-all into the store, served with stored scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.store import ModelRef, score_all
from tests.serving.conftest import HEADERS, Deployment, deployment_copy


def test_score_all_stores_survival_and_score_by_id_serves_it(
    deployment: Deployment, tmp_path: Path
) -> None:
    model = deployment.model
    assert model.survival is not None, "the deployment's training fits the survival model"
    settings = deployment_copy(deployment, tmp_path / "copy")
    ref = ModelRef(settings.model_name, "1", settings.model_alias)
    score_all(model, ref, settings.snapshot_path, settings.score_store_path, settings.top_k,
              gross_margin=0.7, annual_discount_rate=0.1)  # fmt: skip
    store = pd.read_parquet(settings.score_store_path)
    curve = store[[f"survival.survival_{d}d" for d in (30, 60, 90, 180, 365)]].to_numpy()
    assert (np.diff(curve, axis=1) <= 1e-12).all()  # survival never rises
    mrr = pd.read_parquet(settings.snapshot_path, columns=["customer_id", "mrr"])
    revenue = store.merge(mrr, on="customer_id", how="left", validate="1:1")
    assert (revenue["survival.expected_revenue_12m"] <= 12 * revenue["mrr"].fillna(0) + 1e-6).all()
    with TestClient(create_app(settings)) as client:
        cid = str(store["customer_id"].iloc[0])
        result = client.post("/score", json={"customer_id": cid}, headers=HEADERS).json()
        assert result["source"] == "store"
        block = result["survival"]
        assert set(block["survival"]) == {"30d", "60d", "90d", "180d", "365d"}
        assert block["survival"]["90d"] == round(float(store["survival.survival_90d"].iloc[0]), 6)
        assert block["currency"] == "USD"  # of expected_revenue_12m, revenue_at_risk_12m, LTV
        live = client.post(
            "/score",
            json={"customer_id": cid, "features": {"mrr": 100.0}},
            headers=HEADERS,
        ).json()
        assert live.get("survival") is None  # only precomputed results carry it
