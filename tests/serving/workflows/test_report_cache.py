"""The closed-loop report is computed once per input version, never once per caller."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from serving.workflows.service import ReportBusyError
from tests.serving.workflows.world import KEY, NOW, build_world

HEADERS = {"X-API-Key": KEY}


def record_intervention(world_wf: object, customer_id: str) -> None:
    world_wf.ledger.add_intervention(  # type: ignore[attr-defined]
        {"customer_id": customer_id, "type": "call", "date": (NOW - timedelta(days=1)).date(),
         "owner": "bob", "outcome": "saved"},
        NOW,
    )  # fmt: skip


def test_repeated_reports_share_one_computation_until_an_input_changes(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    first, _ = world.workflows.closed_loop()
    again, _ = world.workflows.closed_loop()
    assert again is first, "an unchanged input version reuses the computed loop"
    record_intervention(world.workflows, "cust-030")
    changed, _ = world.workflows.closed_loop()
    assert changed is not first, "a ledger write is a new input version"


def test_eight_parallel_report_clients_cost_one_computation(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    results: list[object] = []
    start = threading.Barrier(8)

    def pull() -> None:
        start.wait()
        results.append(world.workflows.closed_loop()[0])

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_a_report_that_waits_too_long_for_a_computation_gets_503(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    world.workflows.closed_loop()
    record_intervention(world.workflows, "cust-031")
    with world.workflows._loop_lock:  # a computation of the new version is in progress
        try:
            world.workflows.closed_loop(wait_seconds=0.05)
        except ReportBusyError as exc:
            assert "retry" in str(exc)
        else:
            raise AssertionError("a caller must not queue behind a computation forever")
    response = TestClient(world.app).get("/workflows/report", headers=HEADERS)
    assert response.status_code == 200


def test_memory_stays_flat_across_repeated_report_calls(tmp_path: Path) -> None:
    import gc
    import tracemalloc

    world = build_world(tmp_path)
    client = TestClient(world.app)
    for _ in range(5):  # warm: the first computation and the client's own buffers
        assert client.get("/workflows/report", headers=HEADERS).status_code == 200
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(200):
        client.get("/workflows/report", headers=HEADERS)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 2_000_000, f"{grown / 1e6:.1f} MB kept by 200 report calls"


def test_the_ledger_version_moves_on_a_commit_from_another_connection_only(
    tmp_path: Path,
) -> None:
    world = build_world(tmp_path)
    ledger = world.workflows.ledger
    before = ledger.version()
    assert ledger.version() == before, "reading changes nothing"
    other = sqlite3.connect(ledger.path, isolation_level=None)  # another process, say score-all
    try:
        other.execute("UPDATE tasks SET owner = owner")  # a commit, however small
    finally:
        other.close()
    assert ledger.version() != before
    moved = ledger.version()
    record_intervention(world.workflows, "cust-030")  # this process's own write
    assert ledger.version() != moved


PARENT = """
import multiprocessing as mp, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from serving.workflows.service import exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"),
                               initializer=exit_with_parent, initargs=(os.getpid(), 0.1))
    print(pool.submit(os.getpid).result(), flush=True)
    time.sleep(60)
"""


def test_the_report_worker_ends_when_its_server_is_killed(tmp_path: Path) -> None:
    """A server killed without its shutdown left its report worker running for an hour."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    root = Path(__file__).resolve().parents[3]
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive while the server is
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    raise AssertionError("the report worker outlived its server")
