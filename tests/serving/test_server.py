"""A real uvicorn with two workers: it serves, and keep-alive requests do not stall on Nagle."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from serving.server import set_nodelay
from tests.serving.conftest import HEADERS, Deployment

pytestmark = [pytest.mark.xdist_group("serving"), pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def two_workers(deployment: Deployment) -> Iterator[str]:
    port = free_port()
    s = deployment.settings
    env = {
        **os.environ,
        "CHURN_MLFLOW_TRACKING_URI": str(s.mlflow_tracking_uri),
        "CHURN_STORE_DIR": str(s.store_dir),
        "CHURN_PLAYBOOK_PATH": str(s.playbook_path),
        "CHURN_API_KEYS": s.api_keys,
        "CHURN_RELOAD_POLL_SECONDS": "0",
        "PYTHONPATH": str(REPO),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    code = (
        "from churn_settings import Settings; from serving.server import serve; "
        f"serve(Settings(), '127.0.0.1', {port}, workers=2)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "uvicorn exited"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "uvicorn did not become ready"
            time.sleep(0.3)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_two_workers_serve_keep_alive_requests_without_a_nagle_stall(
    two_workers: str, deployment: Deployment
) -> None:
    cid = str(deployment.snapshot["customer_id"].iloc[0])
    with httpx.Client(base_url=two_workers, headers=HEADERS) as client:
        for _ in range(20):  # both workers warm and ready
            assert client.post("/score", json={"customer_id": cid}).status_code in (200, 503)
        times = []
        for _ in range(60):
            started = time.perf_counter()
            response = client.post("/score", json={"customer_id": cid})
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    # a lost TCP_NODELAY costs ~40 ms per keep-alive request (delayed ACK); allow a loaded CI box
    assert statistics.median(times) < 0.02, f"median {statistics.median(times) * 1000:.1f} ms"
    metrics = httpx.get(f"{two_workers}/metrics", headers=HEADERS).text
    assert 'route="/score"' in metrics  # summed over workers (prometheus multiprocess mode)


def test_accepted_connections_get_tcp_nodelay() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as _, server.accept()[0] as accepted:

            class Transport:
                def get_extra_info(self, name: str) -> object:
                    return accepted if name == "socket" else None

            accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
            set_nodelay(Transport())  # type: ignore[arg-type]
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_a_taken_port_is_named_or_with_free_port_another_is_taken() -> None:
    from features.errors import ChurnError
    from serving.server import listen_port

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        with pytest.raises(ChurnError, match=f"127.0.0.1:{port}.*CHURN_PORT.*--free-port"):
            listen_port("127.0.0.1", port)
        other = listen_port("127.0.0.1", port, any_free=True)
        assert other != port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", other))  # really free
    assert listen_port("127.0.0.1", port) == port  # free again once the other server stops
