"""Webhooks against a real HTTP receiver on 127.0.0.1: signatures, retries with back-off,
idempotency keys, dead letters, and a sender that dies in the middle of sending."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.playbook import Playbook
from serving.workflows.config import RulesConfig, parse_rules
from serving.workflows.events import EVENTS
from serving.workflows.ledger import Ledger
from serving.workflows.run import run_rules
from serving.workflows.webhooks import WebhookSender, sign, verify_signature
from tests.serving.workflows.conftest import REPO, day, facts, history, scorings
from tests.serving.workflows.receiver import Receiver

SECRET = b"s3cret-shared-with-the-crm"


def hook_rules(
    url: str, max_attempts: int = 3, backoff: float = 0.05, events: tuple[str, ...] = ()
) -> RulesConfig:
    """One risk rule whose alerts open a task and call the ``crm`` endpoint at ``url``
    (subscribed to ``events``, default the endpoint's default)."""
    subscribed = f", events: [{', '.join(events)}]" if events else ""
    return parse_rules(
        f"""webhooks:
  crm: {{url: "{url}", secret_env: TEST_CRM_SECRET, max_attempts: {max_attempts},
        backoff_seconds: {backoff}, timeout_seconds: 5{subscribed}}}
rules:
  - id: low-health
    description: health below 60 today
    when: {{kind: health_below, threshold: 60, days: 1}}
    actions: [{{type: task, title: call}}, {{type: webhook, endpoint: crm}}]
""",
        "<test>",
    )


def alerts_for(ledger: Ledger, playbook: Playbook, config: RulesConfig, n: int) -> list[str]:
    ids = [f"c{i}" for i in range(n)]
    hist = history(*[scorings(c, [(0, 40)]) for c in ids])
    run_rules(config, ledger, hist, facts(*[{"customer_id": c} for c in ids]), playbook, day(0))
    return ids


def sender(ledger: Ledger, config: RulesConfig, **kwargs: object) -> WebhookSender:
    return WebhookSender(ledger, config.webhooks, {"crm": SECRET}, **kwargs)  # type: ignore[arg-type]


def test_signature_covers_timestamp_idempotency_key_and_body() -> None:
    body, stamp, key = b'{"a":1}', int(time.time()), "churn-" + "a" * 32
    signature = sign(SECRET, stamp, key, body)
    assert verify_signature(SECRET, body, str(stamp), signature, key)
    assert not verify_signature(SECRET, b'{"a":2}', str(stamp), signature, key)
    assert not verify_signature(b"other", body, str(stamp), signature, key)
    old = stamp - 3600
    assert not verify_signature(SECRET, body, str(old), sign(SECRET, old, key, body), key)
    assert not verify_signature(SECRET, body, str(stamp + 1), signature, key)


def test_a_replay_within_the_tolerance_under_a_new_idempotency_key_does_not_verify() -> None:
    body, stamp, key = b'{"alert":1}', int(time.time()), "churn-" + "a" * 32
    captured = sign(SECRET, stamp, key, body)
    assert not verify_signature(SECRET, body, str(stamp), captured, "churn-" + "b" * 32)
    assert not verify_signature(SECRET, body, str(stamp), captured, None)


def test_each_alert_is_delivered_signed_with_its_key(ledger: Ledger, playbook: Playbook) -> None:
    with Receiver(SECRET) as crm:
        config = hook_rules(crm.url)
        ids = alerts_for(ledger, playbook, config, 3)
        attempts = sender(ledger, config).drain(timeout_seconds=10)
    assert [a.outcome for a in attempts] == ["delivered"] * 3
    assert crm.bad_signatures == 0
    assert sorted(body["customer_id"] for body in crm.processed.values()) == ids
    body = next(iter(crm.processed.values()))
    assert body["event"] == "alert.opened" and body["task"]["owner"] == "alice"
    outbox = ledger.table("outbox")
    assert set(outbox["status"]) == {"delivered"}
    assert set(outbox["idempotency_key"]) == set(crm.processed)


def test_a_wrong_secret_is_rejected_by_the_receiver(ledger: Ledger, playbook: Playbook) -> None:
    with Receiver(b"the-crm-has-another-secret") as crm:
        config = hook_rules(crm.url, max_attempts=2)
        alerts_for(ledger, playbook, config, 1)
        sender(ledger, config).drain(timeout_seconds=10)
    assert crm.bad_signatures == 2 and not crm.processed
    assert ledger.table("outbox")["status"].tolist() == ["dead"]


def test_failures_are_retried_with_exponential_backoff(ledger: Ledger, playbook: Playbook) -> None:
    with Receiver(SECRET, script=[503, 500]) as crm:
        config = hook_rules(crm.url, max_attempts=5, backoff=0.2)
        alerts_for(ledger, playbook, config, 1)
        attempts = sender(ledger, config).drain(timeout_seconds=10)
    assert [a.outcome for a in attempts] == ["pending", "pending", "delivered"]
    log = ledger.table("deliveries", order="attempt")
    assert log["outcome"].tolist() == ["failed", "failed", "delivered"]
    assert log["status_code"].tolist() == [503, 500, 200]
    waits = log["started_at"].diff().dropna().tolist()
    assert waits[0] >= 0.2 and waits[1] >= 0.4  # 0.2 s, then doubled
    assert len(set(crm.keys_received())) == 1  # every retry carried the same key


def test_dead_letter_after_max_attempts_and_requeue(ledger: Ledger, playbook: Playbook) -> None:
    with Receiver(SECRET, script=[500] * 3) as crm:
        config = hook_rules(crm.url, max_attempts=3, backoff=0.01)
        alerts_for(ledger, playbook, config, 1)
        attempts = sender(ledger, config).drain(timeout_seconds=10)
        assert [a.outcome for a in attempts] == ["pending", "pending", "dead"]
        row = ledger.table("outbox").iloc[0]
        assert row["status"] == "dead" and "HTTP 500" in row["last_error"]
        ledger.requeue(int(row["outbox_id"]), time.time())
        assert [a.outcome for a in sender(ledger, config).drain(timeout_seconds=10)] == [
            "delivered"
        ]
    assert len(crm.processed) == 1


def test_an_unreachable_crm_is_retried_then_dead_lettered(
    ledger: Ledger, playbook: Playbook
) -> None:
    config = hook_rules("http://127.0.0.1:9/nothing-listens-here", max_attempts=2, backoff=0.01)
    alerts_for(ledger, playbook, config, 1)
    attempts = sender(ledger, config).drain(timeout_seconds=10)
    assert [a.outcome for a in attempts] == ["pending", "dead"]
    assert "ConnectError" in (attempts[0].error or "")


SENDER_SCRIPT = """
import os, sys
from serving.workflows.config import WebhookEndpoint
from serving.workflows.ledger import Ledger
from serving.workflows.webhooks import WebhookSender

db, url, crash_stage, crash_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
seen = []

def observer(stage, row):
    if stage == crash_stage:
        seen.append(row.outbox_id)
        if len(seen) == crash_at:
            os._exit(17)  # the process dies: no mark, no cleanup

endpoint = WebhookEndpoint(url=url, secret_env="UNUSED", max_attempts=5, backoff_seconds=0.01)
sender = WebhookSender(Ledger(db), {"crm": endpoint}, {"crm": os.environb[b"SECRET"]},
                       sender_id=f"proc-{os.getpid()}", lease_seconds=0.5, observer=observer)
sender.drain(timeout_seconds=20)
"""


def run_sender(db: Path, url: str, stage: str, crash_at: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SECRET": SECRET.decode(), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", SENDER_SCRIPT, str(db), url, stage, str(crash_at)], env=env, cwd=REPO
    )


@pytest.mark.parametrize("stage", ["claimed", "sent"])
def test_a_sender_crash_loses_no_alert_and_the_receiver_processes_none_twice(
    ledger: Ledger, playbook: Playbook, stage: str
) -> None:
    """Crash after claiming (nothing sent) or after sending (not marked): the next sender
    retries the row once the lease expires, with the same key; the receiver dedupes."""
    with Receiver(SECRET) as crm:
        config = hook_rules(crm.url)
        ids = alerts_for(ledger, playbook, config, 5)
        crashed = run_sender(ledger.path, crm.url, stage, crash_at=3)
        assert crashed.wait(timeout=30) == 17
        assert len(crm.processed) == (2 if stage == "claimed" else 3)
        restarted = run_sender(ledger.path, crm.url, "never", crash_at=0)
        assert restarted.wait(timeout=30) == 0
    assert sorted(b["customer_id"] for b in crm.processed.values()) == ids  # none lost
    received = crm.keys_received()
    duplicates = {k: n for k, n in received.items() if n > 1}
    assert len(duplicates) == (0 if stage == "claimed" else 1)  # resent once, same key
    assert set(ledger.table("outbox")["status"]) == {"delivered"}
    log = ledger.table("deliveries", order="delivery_id")
    assert "abandoned" in set(log["outcome"])


def test_a_sender_killed_while_waiting_for_the_crm(ledger: Ledger, playbook: Playbook) -> None:
    """SIGKILL while the request is in flight: the CRM may or may not have processed it; the
    retry carries the same key so it is processed once either way."""
    with Receiver(SECRET) as crm:
        config = hook_rules(crm.url)
        ids = alerts_for(ledger, playbook, config, 3)
        crm.hold.set()
        victim = run_sender(ledger.path, crm.url, "never", crash_at=0)
        assert crm.arrived.wait(20)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        crm.hold.clear()
        crm.release.set()
        time.sleep(0.2)
        restarted = run_sender(ledger.path, crm.url, "never", crash_at=0)
        assert restarted.wait(timeout=30) == 0
    assert sorted(b["customer_id"] for b in crm.processed.values()) == ids
    assert set(ledger.table("outbox")["status"]) == {"delivered"}


def event_rules(url: str) -> RulesConfig:
    """The low-health rule, its endpoint subscribed to every event."""
    return hook_rules(url, events=EVENTS)


def test_alert_task_and_tier_events_are_delivered_signed_once_each(
    ledger: Ledger, playbook: Playbook
) -> None:
    """Day 0: two customers drop below 60 (alert.opened, task.created, score.tier_changed from
    their healthy day before). A CSM closes one task (task.completed); day 1 the other customer
    recovers (alert.cleared, score.tier_changed back). A re-run queues nothing twice."""
    from serving.workflows.events import BODIES, task_completed

    with Receiver(SECRET) as crm:
        config = event_rules(crm.url)
        hist = history(scorings("c0", [(-1, 90), (0, 40), (1, 40)]),
                       scorings("c1", [(-1, 90), (0, 40), (1, 90)]))  # fmt: skip
        people = facts({"customer_id": "c0"}, {"customer_id": "c1"})
        run_rules(config, ledger, hist, people, playbook, day(0))
        task = ledger.table("tasks").query("customer_id == 'c0'").iloc[0]
        ledger.close_task(int(task["task_id"]), "alice", "called, saved", day(0),
                          lambda t: task_completed(config, t))  # fmt: skip
        run_rules(config, ledger, hist, people, playbook, day(1))
        run_rules(config, ledger, hist, people, playbook, day(1))
        attempts = sender(ledger, config).drain(timeout_seconds=10)
    assert crm.bad_signatures == 0 and all(a.outcome == "delivered" for a in attempts)
    received = sorted((b["event"], b["customer_id"]) for b in crm.processed.values())
    assert received == [
        ("alert.cleared", "c1"),
        ("alert.opened", "c0"), ("alert.opened", "c1"),
        ("score.tier_changed", "c0"), ("score.tier_changed", "c1"), ("score.tier_changed", "c1"),
        ("task.completed", "c0"),
        ("task.created", "c0"), ("task.created", "c1"),
    ]  # fmt: skip
    assert len(crm.requests) == len(crm.processed)  # one delivery per event
    done = next(b for b in crm.processed.values() if b["event"] == "task.completed")
    assert done["task"]["outcome"] == "called, saved" and done["task"]["closed_by"] == "alice"
    moved = sorted(
        (b for b in crm.processed.values() if b["event"] == "score.tier_changed"),
        key=lambda b: (b["customer_id"], b["as_of"]),
    )
    worse, back = moved[1], moved[2]  # c1: down on day 0, back up on day 1
    assert (worse["previous_tier"], worse["tier"]) == (back["tier"], back["previous_tier"])
    assert worse["tier"] != worse["previous_tier"]
    assert all(b["occurred_at"] and b["endpoint"] == "crm" for b in crm.processed.values())
    for b in crm.processed.values():  # every body is what the OpenAPI webhooks document
        BODIES[b["event"]].model_validate(b)


def test_the_verification_example_in_the_crm_docs_accepts_a_real_delivery(
    ledger: Ledger, playbook: Playbook
) -> None:
    """The Python block of docs/crm-integration.md, run as a receiver would run it."""
    text = (REPO / "docs" / "crm-integration.md").read_text()
    block = text.split("<!-- webhook-verification -->", 1)[1].split("```python", 1)[1]
    code = block.split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "docs/crm-integration.md", "exec"), namespace)
    verify = namespace["verify"]
    with Receiver(SECRET) as crm:
        config = hook_rules(crm.url)
        alerts_for(ledger, playbook, config, 1)
        sender(ledger, config).drain(timeout_seconds=10)
    delivery = crm.requests[0]
    assert verify(SECRET, delivery["headers"], delivery["body"])  # type: ignore[operator]
    assert not verify(b"wrong", delivery["headers"], delivery["body"])  # type: ignore[operator]
    tampered = delivery["body"].replace(b'"c0"', b'"c9"')
    assert tampered != delivery["body"]
    assert not verify(SECRET, delivery["headers"], tampered)  # type: ignore[operator]


def test_an_outbox_of_an_older_ledger_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    """Ledgers from before score events required an alert on every outbox row; opening one
    rebuilds the table with a nullable alert_id and the event column, rows intact."""
    import sqlite3

    from serving.workflows.ledger import QueuedEvent, enqueue

    path = tmp_path / "workflows.db"
    Ledger(path)  # today's schema, then the outbox put back as it was
    con = sqlite3.connect(path)
    con.executescript(
        "DROP TABLE deliveries; DROP TABLE outbox;"
        "CREATE TABLE outbox (outbox_id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL "
        "REFERENCES alerts, endpoint TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, "
        "payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT "
        "NULL DEFAULT 0, next_attempt_at REAL NOT NULL, claimed_at REAL, claimed_by TEXT, "
        "delivered_at TEXT, last_error TEXT, created_at TEXT NOT NULL);"
        "INSERT INTO outbox (alert_id, endpoint, idempotency_key, payload, next_attempt_at, "
        "created_at) VALUES (7, 'crm', 'churn-old', '{}', 0, '2025-03-01T06:00:00Z');"
    )
    con.close()
    ledger = Ledger(path)
    with ledger.connect() as db:
        enqueue(db, QueuedEvent(None, "crm", "score.tier_changed", "churn-new", "{}"), "t", 0.0)
    rows = ledger.table("outbox").sort_values("outbox_id")
    assert rows["idempotency_key"].tolist() == ["churn-old", "churn-new"]
    assert rows["event"].tolist() == ["alert.opened", "score.tier_changed"]
    assert ledger.claim_next("s", 1.0, 60, ["crm"]) is not None
