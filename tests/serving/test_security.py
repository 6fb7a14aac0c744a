"""No public secret on a network, throttled guessing, sessions that end when they should."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from churn.cli import app as cli
from churn_settings import Settings
from serving.app import create_app
from serving.server import network_problems
from serving.ui.auth import SESSION_COOKIE, SIGNIN_COOKIE, SessionSigner
from tests.serving.conftest import HEADERS, KEY, Deployment, deployment_copy

pytestmark = pytest.mark.xdist_group("serving")

SECRET = "s" * 40
STRONG_KEY = "k" * 32


def test_serve_on_a_network_host_with_the_demo_key_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    monkeypatch.setenv("CHURN_API_KEYS", "demo-key")
    monkeypatch.delenv("CHURN_UI_SESSION_SECRET", raising=False)
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "Refusing to serve on 0.0.0.0" in text
    assert "CHURN_API_KEYS" in text and "CHURN_UI_SESSION_SECRET" in text


def test_a_network_host_needs_own_keys_and_a_configured_session_secret() -> None:
    demo = Settings(api_keys="demo-key", ui_session_secret=None)
    assert network_problems(demo, "127.0.0.1") == [] and network_problems(demo, "::1") == []
    assert len(network_problems(demo, "0.0.0.0")) == 2
    assert any("CHURN_UI_SESSION_SECRET" in p
               for p in network_problems(Settings(api_keys=STRONG_KEY), "10.0.0.5"))  # fmt: skip
    assert network_problems(Settings(api_keys="short", ui_session_secret=SECRET), "0.0.0.0")
    ready = Settings(api_keys=STRONG_KEY, ui_session_secret=SECRET)
    assert network_problems(ready, "0.0.0.0") == []


def test_the_configured_session_secret_signs_the_cookies() -> None:
    a = SessionSigner(Settings(api_keys="k1", ui_session_secret=SECRET))
    b = SessionSigner(Settings(api_keys="k1", ui_session_secret="t" * 40))
    cookie = a.issue(b"k1")
    assert a.read(cookie) is not None and b.read(cookie) is None


def throttled_copy(deployment: Deployment, tmp_path: Path) -> Settings:
    """A deployment with the default back-off (the shared fixtures turn it off)."""
    default = Settings.model_fields["auth_failures_before_backoff"].default
    return deployment_copy(deployment, tmp_path).model_copy(
        update={"auth_failures_before_backoff": default}
    )


def signin_token(client: TestClient) -> str:
    page = client.get("/ui/signin")
    assert page.status_code == 200
    return str(client.cookies.get(SIGNIN_COOKIE))


def metric(client: TestClient, name: str, surface: str) -> float:
    text = client.get("/metrics", headers=HEADERS).text
    found = re.search(rf'^{name}_total{{surface="{surface}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_100_wrong_sign_ins_from_one_client_are_throttled(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = throttled_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        signin_token(client)
        statuses = []
        for i in range(100):
            token = str(client.cookies.get(SIGNIN_COOKIE))  # each answer sets a fresh one
            form = {"api_key": f"guess-{i}", "csrf": token, "next": "/ui/"}
            response = client.post("/ui/signin", data=form, follow_redirects=False)
            statuses.append(response.status_code)
        assert statuses[:5] == [401] * 5
        assert statuses.count(429) >= 90, statuses
        token = str(client.cookies.get(SIGNIN_COOKIE))
        last = client.post("/ui/signin", data={"api_key": KEY, "csrf": token},
                           follow_redirects=False)  # fmt: skip
        assert last.status_code == 429, "even the right key waits out the back-off"
        assert int(last.headers["Retry-After"]) >= 1
        assert "Too many failed sign-ins" in last.text
        client.app.state.auth_throttle.succeeded("testclient")  # type: ignore[attr-defined]
        assert metric(client, "churn_auth_failures", "ui") == statuses.count(401)
        assert metric(client, "churn_auth_throttled", "ui") >= 90


def test_wrong_api_keys_are_throttled_with_retry_after_and_counted(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = throttled_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        statuses = [
            client.post("/score", json={"customer_id": "x"}, headers={"X-API-Key": "nope"})
            .status_code
            for _ in range(30)
        ]  # fmt: skip
        assert statuses[:5] == [401] * 5 and statuses.count(429) >= 20
        throttled = client.get("/metrics", headers=HEADERS)
        assert throttled.status_code == 429 and throttled.json()["error"] == "too_many_attempts"
        assert int(throttled.headers["Retry-After"]) >= 1
        client.app.state.auth_throttle.succeeded("testclient")  # type: ignore[attr-defined]
        assert metric(client, "churn_auth_failures", "api") == statuses.count(401)
        assert metric(client, "churn_auth_throttled", "api") >= 20


def signed_in(client: TestClient) -> str:
    token = signin_token(client)
    response = client.post("/ui/signin", data={"api_key": KEY, "csrf": token, "next": "/ui/"},
                           follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    return str(client.cookies.get(SESSION_COOKIE))


def test_sign_out_revokes_the_session_on_the_server(deployment: Deployment, tmp_path: Path) -> None:
    settings = deployment_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        cookie = signed_in(client)
        session = SessionSigner(settings).read(cookie)
        assert session is not None
        out = client.post("/ui/signout", data={"csrf": session.csrf}, follow_redirects=False)
        assert out.status_code == 303
        client.cookies.clear()
        replayed = client.get("/ui/", cookies={SESSION_COOKIE: cookie}, follow_redirects=False)
        assert replayed.status_code == 303 and "/ui/signin" in replayed.headers["location"]
        other_worker = SessionSigner(settings)  # reads the same revocation file
        assert other_worker.read(cookie) is None


def test_a_session_issued_in_the_future_is_refused() -> None:
    signer = SessionSigner(Settings(api_keys="k1", ui_session_secret=SECRET))
    now = time.time()
    assert signer.read(signer.issue(b"k1", now=now + 30), now=now) is not None  # clock skew
    assert signer.read(signer.issue(b"k1", now=now + 3600), now=now) is None
    assert signer.read(signer.issue(b"k1", now=now - signer.max_age - 1), now=now) is None


def test_a_non_ascii_session_or_csrf_cookie_is_not_a_server_error(
    deployment: Deployment, tmp_path: Path
) -> None:
    settings = deployment_copy(deployment, tmp_path)
    with TestClient(create_app(settings)) as client:
        cookie = f"{SESSION_COOKIE}=\u00e9t\u00e9.sig\u00e9".encode()
        page = client.get("/ui/", headers={"Cookie": cookie}, follow_redirects=False)
        assert page.status_code == 303
        signin = client.get("/ui/signin", headers={"Cookie": cookie})
        assert signin.status_code == 200
        form = {"api_key": KEY, "csrf": "\u00e9"}
        bad = f"{SIGNIN_COOKIE}=\u00e9".encode()
        posted = client.post("/ui/signin", data=form, headers={"Cookie": bad},
                             follow_redirects=False)  # fmt: skip
        assert posted.status_code == 400


def test_every_response_has_the_security_headers_and_a_csp_without_inline_script(
    client: TestClient,
) -> None:
    for response in (client.get("/healthz"), client.get("/ui/signin"),
                     client.post("/score", json={}, headers=HEADERS)):  # fmt: skip
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        csp = response.headers["content-security-policy"]
        script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
        assert script_src.split() == ["script-src", "'self'"]
        assert "frame-ancestors 'none'" in csp


def test_ui_pages_carry_no_inline_script(client: TestClient) -> None:
    cookie = signed_in(client)
    for path in ("/ui/signin", "/ui/", "/ui/analytics", "/ui/workflows/alerts"):
        html = client.get(path, cookies={SESSION_COOKIE: cookie}).text
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (path, tag)
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers


def test_a_cross_origin_state_change_is_refused_before_any_handler(client: TestClient) -> None:
    evil = client.post("/admin/reload", headers={**HEADERS, "Origin": "http://evil.test"})
    assert evil.status_code == 403 and evil.json()["error"] == "cross_origin"
    site = client.post("/admin/reload", headers={**HEADERS, "Sec-Fetch-Site": "cross-site"})
    assert site.status_code == 403
    own = client.post("/admin/reload", headers={**HEADERS, "Origin": "http://testserver"})
    assert own.status_code == 200
    assert client.post("/admin/reload", headers=HEADERS).status_code == 200  # a CRM: no Origin


def test_docs_and_openapi_can_be_turned_off_and_are_off_by_default_on_a_network(
    deployment: Deployment,
) -> None:
    from serving.server import is_loopback, served_settings

    with TestClient(create_app(deployment.with_settings(api_docs=False))) as closed:
        assert closed.get("/openapi.json").status_code == 404
        assert closed.get("/docs").status_code == 404
    with TestClient(create_app(deployment.settings)) as opened:
        assert opened.get("/openapi.json").status_code == 200
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    network = Settings(api_keys=STRONG_KEY, ui_session_secret=SECRET)
    assert served_settings(network, "0.0.0.0").api_docs is False
    assert served_settings(network, "127.0.0.1").api_docs is True
    asked = network.model_copy(update={"api_docs": True})
    assert served_settings(asked, "0.0.0.0").api_docs is True


def test_the_api_docs_pages_load_their_assets_locally_never_from_a_cdn(
    deployment: Deployment,
) -> None:
    import re

    with TestClient(create_app(deployment.settings)) as opened:
        for path in ("/docs", "/redoc"):
            page = opened.get(path)
            assert page.status_code == 200
            sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
            assert sources and all(s.startswith("/") for s in sources), (path, sources)
            for source in sources:
                assert opened.get(source).status_code == 200, source
