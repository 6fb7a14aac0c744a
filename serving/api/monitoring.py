"""``GET /v1/monitoring`` (and ``/monitoring``): is the champion still what training promised.

Drift per feature, of the scores and of the tier mix; freshness per source; the estimated
ROC-AUC of the current scores and the realised quality of closed scorings (``docs/monitoring.md``).
The report is cached per app (:class:`serving.monitoring.MonitorCache`) and recomputed when the
snapshot, the score store or the history change; each answer also refreshes the
``churn_monitoring_*`` gauges on ``/metrics``.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from serving.api.deps import ApiKeyRequired, MetricsDep, MonitoringDep
from serving.api.responses import ERRORS, JSON
from serving.schemas import ErrorBody

router = APIRouter(tags=["operations"], dependencies=[ApiKeyRequired])
RESPONSES = {
    **ERRORS,
    503: {"model": ErrorBody, "description": "No champion, snapshot or score store."},
}
SUMMARY = "Drift, freshness, estimated and realised quality of the champion"


@router.get("/monitoring", responses=RESPONSES, summary=SUMMARY)
def monitoring_report(monitoring: MonitoringDep, metrics: MetricsDep) -> Response:
    """Plain ``def``: a run that is not cached reads the registry, the export and the history
    (seconds), so FastAPI runs it in the thread pool, off the scoring API's event loop."""
    report = monitoring.report()
    metrics.monitored(report)
    return Response(orjson.dumps(report.as_dict()), media_type=JSON)
