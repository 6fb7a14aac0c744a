"""The UI's monitoring page ``/ui/monitoring`` and its charts, from one
:class:`training.monitoring.report.MonitoringReport` (the app's cached one, as
``GET /v1/monitoring`` serves it): drift per feature, estimated vs realised ROC-AUC over time,
calibration by tier, freshness."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter
from fastapi.responses import Response

from features.errors import ChurnError
from serving.api.deps import MetricsDep, MonitoringDep
from serving.ui import charts
from serving.ui.render import PREFIX, PageDep
from training.monitoring.report import MonitoringReport

DRIFT_ROWS = 15
router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/monitoring")
def monitoring_page(page: PageDep, monitoring: MonitoringDep, metrics: MetricsDep) -> Response:
    """Plain ``def`` (the thread pool): an uncached run takes seconds."""
    try:
        report = monitoring.report()
    except ChurnError as exc:
        return page.unavailable(exc)
    metrics.monitored(report)
    return page("monitoring.html", title="Model monitoring", report=report,
                figures=monitoring_charts(report))  # fmt: skip


def monitoring_charts(report: MonitoringReport) -> dict[str, charts.Figure]:
    """Chart key -> plotly figure (plain dicts, drawn by the bundled plotly.js)."""
    out: dict[str, charts.Figure] = {}
    frame = report.features
    shown = pd.concat([frame.head(DRIFT_ROWS), frame[frame["significant"]]])
    shown = shown.drop_duplicates("feature")
    if len(shown):
        out["drift"] = charts.bars(
            shown["feature"].tolist(),
            {
                "PSI": shown["psi"].tolist(),
                "natural change (tolerance)": shown["tolerance"].tolist(),
            },
            height=max(260, 22 * len(shown)),
            horizontal=True,
            y_title="PSI, reference window vs snapshot",
        )
    real = report.realised.sort_values("as_of") if len(report.realised) else pd.DataFrame()
    x: list[Any] = [str(d) for d in real["as_of"]] if len(real) else []
    series: dict[str, list[float]] = {
        "realised": real["roc_auc"].tolist() if len(real) else [],
        "estimated (CBPE)": real["estimated_roc_auc"].tolist() if len(real) else [],
    }
    if report.estimate is not None and report.as_of is not None:
        x.append(str(report.as_of))
        series["realised"].append(float("nan"))  # not known yet
        series["estimated (CBPE)"].append(report.estimate.roc_auc)
    if "roc_auc" in report.promised:
        series["promised (model card)"] = [report.promised["roc_auc"]] * len(x)
    if x:
        out["auc"] = charts.line(x, series, y_title="ROC-AUC")
    tiers = report.realised_tiers
    if len(tiers):
        latest = tiers[tiers["as_of"] == tiers["as_of"].max()].sort_values("predicted_rate")
        out["calibration"] = charts.reliability(
            latest["predicted_rate"].tolist(),
            latest["churn_rate"].tolist(),
            [int(n) for n in latest["rows"]],
        )
    fresh = report.freshness
    if len(fresh):
        colours = [charts.RISK_UP if s else charts.BLUE for s in fresh["stale"]]
        out["freshness"] = charts.bars(
            fresh["source"].tolist(),
            {"days silent": fresh["silent_days"].fillna(0).tolist()},
            horizontal=True,
            colours=colours,
            y_title="days since the last record",
        )
    return out
