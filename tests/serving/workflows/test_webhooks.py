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
from serving.workflows.ledger import Ledger
from serving.workflows.run import run_rules
from serving.workflows.webhooks import WebhookSender, sign, verify_signature
from tests.serving.workflows.conftest import REPO, day, facts, history, scorings
from tests.serving.workflows.receiver import Receiver

SECRET = b"s3cret-shared-with-the-crm"


def hook_rules(url: str, max_attempts: int = 3, backoff: float = 0.05) -> RulesConfig:
    """One risk rule whose alerts open a task and call the ``crm`` endpoint at ``url``."""
    return parse_rules(
        f"""webhooks:
  crm: {{url: "{url}", secret_env: TEST_CRM_SECRET, max_attempts: {max_attempts},
        backoff_seconds: {backoff}, timeout_seconds: 5}}
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
    assert body["event"] == "churn.alert.opened" and body["task"]["owner"] == "alice"
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
