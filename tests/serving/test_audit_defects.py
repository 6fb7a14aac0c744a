"""The security and reliability audit's API defects (issue 16), one test each."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from features.io import write_parquet
from serving.app import create_app
from serving.ui.auth import SESSION_COOKIE, SessionSigner
from tests.serving.conftest import HEADERS, KEY, Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")
JSON_HEADERS = {**HEADERS, "Content-Type": "application/json"}


def test_an_empty_object_is_told_what_to_send_not_that_it_is_no_object(
    client: TestClient,
) -> None:
    response = client.post("/score", content=b"{}", headers=JSON_HEADERS)
    assert response.status_code == 422
    message = response.json()["message"]
    assert "customer_id" in message and "features" in message
    assert "must be a JSON object" not in message


def test_json_nested_1000_deep_gets_the_documented_error_shape(client: TestClient) -> None:
    for body in (b"[" * 1000 + b"]" * 1000, b'{"a":' * 1000 + b"1" + b"}" * 1000):
        response = client.post("/score", content=body, headers=JSON_HEADERS)
        assert response.status_code == 400
        assert set(response.json()) == {"error", "message", "fields"}
        assert response.json()["error"] == "invalid_json"


def test_the_batch_limit_is_checked_before_the_items_are_validated(client: TestClient) -> None:
    limit = client.app.state.runtime.settings.batch_limit  # type: ignore[attr-defined]
    items = [{"customer_id": None, "features": "not an object"}] * (limit + 1)  # all invalid
    response = client.post("/score/batch", content=orjson.dumps({"items": items}),
                           headers=JSON_HEADERS)  # fmt: skip
    assert response.status_code == 413, "the count is refused before any item is validated"
    assert response.json()["error"] == "batch_too_large"
    schema = client.get("/openapi.json").json()["components"]["schemas"]["BatchRequest"]
    assert schema["properties"]["items"]["maxItems"] == limit


def test_ids_with_a_slash_can_be_opened(deployment: Deployment, tmp_path: Path) -> None:
    settings = deployment_copy(deployment, tmp_path)
    snapshot = deployment.snapshot.copy()
    snapshot.loc[snapshot.index[0], "customer_id"] = "acme/emea"
    write_parquet(snapshot, settings.snapshot_path)
    with TestClient(create_app(settings)) as client:
        explanation = client.get("/customers/acme%2Femea/explanation", headers=HEADERS)
        assert explanation.status_code == 200, explanation.text
        assert explanation.json()["customer_id"] == "acme/emea"
        signer = SessionSigner(settings)
        cookie = signer.issue(KEY.encode())
        page = client.get("/ui/customers/acme%2Femea", cookies={SESSION_COOKIE: cookie})
        assert page.status_code == 200 and "acme/emea" in page.text
        metrics = client.get("/metrics", headers=HEADERS).text
        assert 'route="/customers/{customer_id}/explanation"' in metrics
