"""The HTTP API through FastAPI's TestClient: what a CRM sends, what it gets back, every error."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.app import create_app
from tests.serving.conftest import HEADERS, Deployment, live_features

pytestmark = pytest.mark.xdist_group("serving")


def first_id(deployment: Deployment) -> str:
    return str(deployment.snapshot["customer_id"].iloc[0])


def without_deadline(result: dict[str, Any]) -> dict[str, Any]:
    """A result minus the deadline, which moves with the clock between two requests."""
    return {**result, "recommended_action": {**result["recommended_action"], "deadline": None}}


# ----- happy paths -----
def test_score_by_id_returns_a_scored_explained_customer_with_its_next_step(
    client: TestClient, deployment: Deployment
) -> None:
    cid = first_id(deployment)
    before = datetime.now(UTC).replace(microsecond=0)
    response = client.post("/score", json={"customer_id": cid}, headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customer_id"] == cid and body["source"] == "store"
    assert 0 < body["churn_probability"] < 1 and 0 <= body["health_score"] <= 100
    assert body["tier"] in ("healthy", "low", "medium", "high")
    assert body["horizon_days"] == 90
    assert body["as_of"] == deployment.snapshot["as_of"].iloc[0].strftime("%Y-%m-%d")
    assert body["model"] == {"name": "churn-model", "version": "1", "alias": "champion"}
    drivers = body["top_drivers"]
    assert len(drivers) == 5
    strengths = [abs(d["contribution"]) for d in drivers]
    assert strengths == sorted(strengths, reverse=True)
    assert all(d["sentence"] and d["direction"].endswith(("risk", "effect")) for d in drivers)
    action = body["recommended_action"]
    assert action["action"] and action["owner"] and action["sla"]
    assert datetime.fromisoformat(action["deadline"]) > before


def test_k_changes_the_number_of_drivers_only(client: TestClient, deployment: Deployment) -> None:
    cid = first_id(deployment)
    five = client.post("/score", json={"customer_id": cid}, headers=HEADERS).json()
    two = client.post("/score?k=2", json={"customer_id": cid}, headers=HEADERS).json()
    every = client.post("/score?k=100", json={"customer_id": cid}, headers=HEADERS).json()
    assert two["top_drivers"] == five["top_drivers"][:2]
    assert len(every["top_drivers"]) == min(100, len(deployment.model.features))
    assert two["recommended_action"]["refinement"] == five["recommended_action"]["refinement"]
    assert two["churn_probability"] == five["churn_probability"]


def test_live_features_score_like_the_stored_customer(
    client: TestClient, deployment: Deployment
) -> None:
    cid = first_id(deployment)
    stored = client.post("/score", json={"customer_id": cid}, headers=HEADERS).json()
    features = live_features(deployment.snapshot, deployment.model, 0)
    live = client.post(
        "/score",
        json={"customer_id": "crm-1", "features": features, "as_of": "2025-03-01"},
        headers=HEADERS,
    ).json()
    assert live["source"] == "live" and live["customer_id"] == "crm-1"
    assert live["as_of"] == "2025-03-01"
    for key in ("churn_probability", "health_score", "tier", "top_drivers"):
        assert live[key] == stored[key]


def test_null_means_missing_and_unseen_categories_are_treated_as_missing_with_warnings(
    client: TestClient, deployment: Deployment
) -> None:
    features = dict.fromkeys(deployment.model.features)
    every_null = client.post("/v1/score", json={"features": features}, headers=HEADERS)
    assert every_null.status_code == 200, every_null.text
    warned = {w["field"]: w["code"] for w in every_null.json()["warnings"]}
    assert warned == {f"features.{name}": "missing_value" for name in features}
    categorical = next(iter(deployment.model.categories))
    unseen = client.post(
        "/v1/score?k=100",
        json={"features": {**features, categorical: "Logistics-never-seen"}},
        headers=HEADERS,
    )
    assert unseen.status_code == 200
    assert unseen.json()["churn_probability"] == every_null.json()["churn_probability"]
    warning = next(w for w in unseen.json()["warnings"] if w["code"] == "unseen_level")
    assert warning["field"] == f"features.{categorical}"
    assert "'Logistics-never-seen'" in warning["message"] and "Known levels" in warning["message"]
    assert all(d["feature"] != categorical for d in unseen.json()["top_drivers"])


def test_null_inputs_never_rank_among_the_top_drivers(
    client: TestClient, deployment: Deployment
) -> None:
    """A CRM that sends null for what it does not hold must see reasons, not its own gaps
    (a missing value whose catalog entry gives it a meaning, "never logged in", still may)."""
    model = deployment.model
    features = live_features(deployment.snapshot, model, 0)
    silent = [n for n in model.features if n not in model.categories and not model.info(n).missing]
    blanked = silent[:6]
    sent = {**features, **dict.fromkeys(blanked)}
    body = client.post("/v1/score?k=100", json={"features": sent}, headers=HEADERS).json()
    drivers = [d["feature"] for d in body["top_drivers"]]
    assert drivers and not set(drivers) & set(blanked)
    silent_set = set(silent)
    assert all(d["value"] is not None for d in body["top_drivers"] if d["feature"] in silent_set)
    assert {f"features.{n}" for n in blanked} <= {w["field"] for w in body["warnings"]}
    stored = client.post("/v1/score", json={"customer_id": first_id(deployment)}, headers=HEADERS)
    assert stored.json()["warnings"] == []


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    picks=st.lists(st.tuples(st.integers(0, 200), st.booleans()), min_size=1, max_size=12),
    k=st.integers(0, 8),
)
def test_batch_equals_singles(
    client: TestClient, deployment: Deployment, picks: list[tuple[int, bool]], k: int
) -> None:
    items = []
    for row, live in picks:
        cid = str(deployment.snapshot["customer_id"].iloc[row])
        if live:
            items.append(
                {
                    "customer_id": cid,
                    "features": live_features(deployment.snapshot, deployment.model, row),
                }
            )
        else:
            items.append({"customer_id": cid})
    batch = client.post(f"/score/batch?k={k}", json={"items": items}, headers=HEADERS)
    assert batch.status_code == 200, batch.text
    body = batch.json()
    assert body["count"] == len(items)
    for item, result in zip(items, body["results"], strict=True):
        single = client.post(f"/score?k={k}", json=item, headers=HEADERS).json()
        assert without_deadline(result) == without_deadline(single)


def test_customers_pages_through_the_latest_scores_by_tier(
    client: TestClient, deployment: Deployment
) -> None:
    everyone = client.get("/customers?limit=1000", headers=HEADERS).json()
    assert everyone["total"] == len(deployment.snapshot)
    ids = [item["customer_id"] for item in everyone["items"]]
    assert ids == sorted(ids)
    page = client.get("/customers?limit=3&offset=2&k=1", headers=HEADERS).json()
    assert [i["customer_id"] for i in page["items"]] == ids[2:5]
    assert all(len(i["top_drivers"]) == 1 for i in page["items"])
    tiers = {}
    for tier in ("healthy", "low", "medium", "high"):
        listed = client.get(f"/customers?tier={tier}&limit=1000", headers=HEADERS).json()
        assert all(item["tier"] == tier for item in listed["items"])
        tiers[tier] = listed["total"]
    assert sum(tiers.values()) == everyone["total"]


def test_explanation_lists_every_contribution_and_adds_up(
    client: TestClient, deployment: Deployment
) -> None:
    cid = first_id(deployment)
    body = client.get(f"/customers/{cid}/explanation", headers=HEADERS).json()
    contributions = body["contributions"]
    assert len(contributions) == len(deployment.model.features)
    total = body["base_value"] + sum(c["contribution"] for c in contributions)
    assert math.isclose(total, body["calibrated_log_odds"], abs_tol=1e-9)
    assert math.isclose(1 / (1 + math.exp(-total)), body["churn_probability"], rel_tol=1e-9)
    X = deployment.model.encode(deployment.snapshot.head(1))
    margin = deployment.model.calibrated_logit(deployment.model.margin(X))[0]
    assert math.isclose(total, margin, abs_tol=1e-9)
    numeric = [c for c in contributions if c["feature"] not in deployment.model.categories]
    assert all(c["percentile"] is None or 0 <= c["percentile"] <= 100 for c in numeric)
    assert any(c["percentile"] is not None for c in numeric)


def test_health_and_readiness_are_open_and_say_what_is_served(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] and body["status"] == "ready" and body["customers"] > 0
    assert body["model"]["version"] == "1"


def test_metrics_count_requests_by_route_and_show_the_model_and_scores(
    client: TestClient, deployment: Deployment
) -> None:
    client.post("/score", json={"customer_id": first_id(deployment)}, headers=HEADERS)
    client.post("/score", json={"customer_id": "nobody"}, headers=HEADERS)
    text = client.get("/metrics", headers=HEADERS).text
    assert 'churn_http_requests_total{method="POST",route="/score",status="200"}' in text
    assert 'churn_http_requests_total{method="POST",route="/score",status="404"}' in text
    assert 'churn_http_request_seconds_bucket{le="0.005",route="/score"}' in text
    assert 'churn_model_info{alias="champion",name="churn-model",version="1"} 1.0' in text
    assert 'churn_health_score_count{source="store"}' in text


# ----- errors -----
def test_unknown_customer_is_404_naming_the_id(client: TestClient) -> None:
    response = client.post("/score", json={"customer_id": "C-nope"}, headers=HEADERS)
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_customer"
    assert "'C-nope'" in response.json()["message"]
    explanation = client.get("/customers/C-nope/explanation", headers=HEADERS)
    assert explanation.status_code == 404 and "'C-nope'" in explanation.json()["message"]


def test_a_batch_with_3_unknown_ids_among_100_returns_97_scores_and_3_item_errors(
    client: TestClient, deployment: Deployment
) -> None:
    ids = [str(c) for c in deployment.snapshot["customer_id"].iloc[:97]]
    unknown = {10: "X1", 50: "C0024955", 99: "NOPE"}
    items = [{"customer_id": cid} for cid in ids]
    for index, cid in sorted(unknown.items()):
        items.insert(index, {"customer_id": cid})
    response = client.post("/v1/score/batch", json={"items": items}, headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["count"], body["scored"], body["failed"]) == (100, 97, 3)
    errors = [r for r in body["results"] if "error" in r]
    assert [(e["index"], e["customer_id"]) for e in errors] == sorted(unknown.items())
    for e in errors:
        assert e["error"]["code"] == "unknown_customer"
        field = f"items.{e['index']}.customer_id"
        assert e["error"]["fields"] == [{"field": field, "problem": "unknown customer id"}]
        assert (
            e["error"]["message"].startswith(field)
            and repr(e["customer_id"]) in e["error"]["message"]
        )
    scored = [r["customer_id"] for r in body["results"] if "error" not in r]
    assert scored == ids


def test_missing_extra_and_mistyped_features_are_422_naming_each_field(
    client: TestClient, deployment: Deployment
) -> None:
    model = deployment.model
    features = live_features(deployment.snapshot, model, 0)
    numeric = next(n for n in model.features if n not in model.categories)
    categorical = next(iter(model.categories))
    dropped = model.features[1]
    features.pop(dropped)
    features |= {"colour": "blue", numeric: "12", categorical: 3}
    response = client.post("/score", json={"features": features}, headers=HEADERS)
    assert response.status_code == 422
    problems = {f["field"]: f["problem"] for f in response.json()["fields"]}
    assert problems == {
        "features.colour": "not a feature of the served model",
        f"features.{dropped}": "missing; send null if the value is unknown",
        f"features.{numeric}": "expected a number or null, got str '12'",
        f"features.{categorical}": "expected a string or null, got int 3",
    }


@pytest.mark.parametrize("bad", ["NaN", "inf", True, [1], {"a": 1}])
def test_nan_strings_booleans_and_containers_are_rejected(
    client: TestClient, deployment: Deployment, bad: object
) -> None:
    numeric = next(n for n in deployment.model.features if n not in deployment.model.categories)
    features = {**dict.fromkeys(deployment.model.features), numeric: bad}
    response = client.post("/score", json={"features": features}, headers=HEADERS)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == [f"features.{numeric}"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_numbers_are_rejected(
    client: TestClient, deployment: Deployment, literal: str
) -> None:
    numeric = next(n for n in deployment.model.features if n not in deployment.model.categories)
    others = ",".join(f'"{n}": null' for n in deployment.model.features if n != numeric)
    body = f'{{"features": {{{others}, "{numeric}": {literal}}}}}'
    response = client.post(
        "/score", content=body, headers={**HEADERS, "content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["fields"] == [
        {
            "field": f"features.{numeric}",
            "problem": "must be a finite number; send null for a missing value",
        }
    ]


def test_batch_feature_errors_fail_only_their_item_and_name_it(
    client: TestClient, deployment: Deployment
) -> None:
    good = live_features(deployment.snapshot, deployment.model, 0)
    items = [{"features": good}, {"features": {**good, "extra": 1}}]
    response = client.post("/score/batch", json={"items": items}, headers=HEADERS)
    assert response.status_code == 200
    first, second = response.json()["results"]
    assert first["source"] == "live"
    assert second["index"] == 1 and second["error"]["code"] == "invalid_features"
    assert second["error"]["fields"][0]["field"] == "items.1.features.extra"
    assert "items.1.features.extra" in second["error"]["message"]


def test_request_shape_errors_are_422_naming_the_field(client: TestClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "body"),
        ({"customer_id": "C1", "colour": 1}, "colour"),
        ({"customer_id": 7}, "customer_id"),
        ({"customer_id": "C1", "as_of": "2025-03-01"}, "body"),
        ({"items": "C1"}, "items"),
    ]
    for body, field in cases:
        path = "/score/batch" if "items" in body else "/score"
        response = client.post(path, json=body, headers=HEADERS)
        assert response.status_code == 422, (body, response.text)
        assert any(f["field"] == field for f in response.json()["fields"]), response.json()
    bad_k = client.post("/score?k=-1", json={"customer_id": "C1"}, headers=HEADERS)
    assert bad_k.status_code == 422 and bad_k.json()["fields"][0]["field"] == "query.k"


def test_a_body_that_is_not_json_is_a_4xx_with_a_message(client: TestClient) -> None:
    broken = client.post(
        "/score", content=b"{customer_id:", headers={**HEADERS, "content-type": "application/json"}
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["message"]
    text = client.post("/score", content=b"C1", headers={**HEADERS, "content-type": "text/plain"})
    assert text.status_code == 422 and "JSON object" in text.json()["message"]


def test_a_batch_over_the_limit_is_413(deployment: Deployment) -> None:
    app = create_app(deployment.with_settings(batch_limit=3, max_body_bytes=2_000))
    with TestClient(app) as small:
        items = [{"customer_id": "C1"}] * 4
        over = small.post("/score/batch", json={"items": items}, headers=HEADERS)
        assert over.status_code == 413 and "limit is 3" in over.json()["message"]
        huge = small.post(
            "/score/batch", json={"items": [{"customer_id": "C" * 3000}]}, headers=HEADERS
        )
        assert huge.status_code == 413 and huge.json()["error"] == "body_too_large"

        def chunks() -> Iterator[bytes]:
            yield b'{"items": ['
            for _ in range(200):
                yield b'{"customer_id": "C000001"},'
            yield b'{"customer_id": "C000001"}]}'

        streamed = small.post("/score/batch", content=chunks(), headers=HEADERS)
        assert streamed.status_code == 413


def test_api_keys_are_required_except_for_health_and_readiness(
    client: TestClient, deployment: Deployment
) -> None:
    body = {"customer_id": first_id(deployment)}
    assert client.post("/score", json=body).status_code == 401
    wrong = client.post("/score", json=body, headers={"X-API-Key": "guess"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
    assert client.post("/score", json=body, headers={"X-API-Key": "other-key"}).status_code == 200
    for path in ("/customers", f"/customers/{body['customer_id']}/explanation", "/metrics"):
        assert client.get(path).status_code == 401
    assert client.post("/admin/reload").status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_no_configured_key_refuses_everyone(deployment: Deployment) -> None:
    with TestClient(create_app(deployment.with_settings(api_keys=" , "))) as locked:
        response = locked.post("/score", json={"customer_id": "C1"}, headers={"X-API-Key": ""})
        assert response.status_code == 401 and "CHURN_API_KEYS" in response.json()["message"]


def test_unknown_routes_and_methods_answer_in_the_error_shape(client: TestClient) -> None:
    missing = client.get("/nowhere", headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = client.get("/score", headers=HEADERS)
    assert wrong_method.status_code == 405


def test_stored_scores_match_a_fresh_computation(
    client: TestClient, deployment: Deployment
) -> None:
    page = client.get("/customers?limit=50&k=0", headers=HEADERS).json()["items"]
    model = deployment.model
    frame = deployment.snapshot.set_index("customer_id").loc[[i["customer_id"] for i in page]]
    expected = model.probability(model.encode(frame))
    np.testing.assert_allclose([i["churn_probability"] for i in page], expected, atol=1e-12)


def test_a_huge_offset_is_a_422_not_a_500(client: TestClient) -> None:
    """Found by schemathesis: an offset beyond 64 bits broke the JSON writer."""
    response = client.get(f"/customers?offset={2**70}", headers=HEADERS)
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "query.offset"
    empty = client.get("/customers?offset=1000000000", headers=HEADERS).json()
    assert empty["items"] == [] and empty["total"] > 0


def test_monitoring_before_any_score_all_reports_on_the_snapshot_the_service_scores(
    client: TestClient, deployment: Deployment
) -> None:
    """A deployment with a snapshot but no score store serves (it scores the snapshot), so its
    monitoring report must not be a 503 either (schemathesis found it)."""
    assert not deployment.settings.score_store_path.exists()
    response = client.get("/v1/monitoring", headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["as_of"] and body["features"] and body["estimate"] is not None


# ----- the integrator contract -----
def test_every_operation_is_under_v1_and_the_old_paths_are_undocumented_aliases(
    client: TestClient, deployment: Deployment
) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert {"/v1/score", "/v1/score/batch", "/v1/customers", "/v1/model", "/v1/admin/reload",
            "/v1/monitoring", "/v1/workflows/tasks"} <= paths  # fmt: skip
    assert not {
        p for p in paths if p.startswith(("/score", "/customers", "/workflows", "/monitoring"))
    }
    webhooks = set(client.get("/openapi.json").json()["webhooks"])
    assert webhooks == {"alert.opened", "alert.cleared", "task.created", "task.completed",
                        "score.tier_changed"}  # fmt: skip
    cid = first_id(deployment)
    versioned = client.post("/v1/score", json={"customer_id": cid}, headers=HEADERS).json()
    alias = client.post("/score", json={"customer_id": cid}, headers=HEADERS).json()
    assert without_deadline(versioned) == without_deadline(alias)
    assert client.get("/workflows/tasks", headers=HEADERS).status_code == 200
    assert client.get("/v1/workflows/tasks", headers=HEADERS).status_code == 200


def test_the_model_lists_exactly_the_champions_inputs_with_types_units_and_levels(
    client: TestClient, deployment: Deployment
) -> None:
    body = client.get("/v1/model", headers=HEADERS).json()
    model = deployment.model
    assert [f["name"] for f in body["features"]] == list(model.features)
    for feature in body["features"]:
        levels = model.categories.get(feature["name"])
        assert feature["type"] == ("number" if levels is None else "category")
        assert feature["levels"] == levels and feature["description"]
        unit = model.info(feature["name"]).unit.replace("currency", "USD")
        assert feature["unit"] == (unit or None)
    mrr = next((f for f in body["features"] if f["name"] == "mrr"), None)
    assert mrr is None or mrr["unit"] == "USD / month"
    assert body["horizon_days"] == model.horizon_days
    assert body["model"] == {"name": "churn-model", "version": "1", "alias": "champion"}
    assert body["currency"] == "USD" and body["trained_on"]["until"]


def test_a_client_written_only_from_the_model_description_scores_live(
    client: TestClient,
) -> None:
    """Build the request from GET /v1/model alone: a typical value per type, a known level."""
    description = client.get("/v1/model", headers=HEADERS).json()
    features: dict[str, object] = {}
    for feature in description["features"]:
        if feature["type"] == "category":
            features[feature["name"]] = feature["levels"][0]
        else:
            features[feature["name"]] = 1.0
    response = client.post("/v1/score", json={"features": features}, headers=HEADERS)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "live" and body["warnings"] == []
    assert body["horizon_days"] == description["horizon_days"]
    assert body["model"] == description["model"]


def test_updated_since_lists_only_customers_scored_after_that_date(
    client: TestClient, deployment: Deployment
) -> None:
    as_of = deployment.snapshot["as_of"].max().date()
    before = client.get(f"/v1/customers?updated_since={as_of - timedelta(days=1)}",
                        headers=HEADERS).json()  # fmt: skip
    assert before["total"] == len(deployment.snapshot) and before["updated_since"]
    after = client.get(f"/v1/customers?updated_since={as_of}", headers=HEADERS).json()
    assert after["total"] == 0 and after["items"] == []


def test_the_currency_setting_labels_every_amount(deployment: Deployment) -> None:
    with TestClient(create_app(deployment.with_settings(currency="eur"))) as eur:
        model = eur.get("/v1/model", headers=HEADERS).json()
        assert model["currency"] == "EUR"
        mrr = next((f for f in model["features"] if f["name"] == "mrr"), None)
        assert mrr is None or mrr["unit"] == "EUR / month"
        page = eur.get("/v1/customers?limit=5", headers=HEADERS).json()["items"]
        assert all(i.get("survival") is None or i["survival"]["currency"] == "EUR" for i in page)
