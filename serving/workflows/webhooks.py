"""Signed webhooks to CRMs, delivered from the ledger's outbox.

Each request is a JSON POST with three headers a receiver checks:

- ``Idempotency-Key``: one per alert episode and endpoint (``churn-<32 hex>``); a retry of the
  same row carries the same key and the same body. The receiver must treat a key it has already
  processed as done (and answer 2xx), which turns our at-least-once sending into exactly-once
  processing.
- ``X-Churn-Timestamp``: Unix seconds when this attempt was signed.
- ``X-Churn-Signature``: ``v2=`` + hex HMAC-SHA256 over ``"{timestamp}.{idempotency key}.{body}"``
  with the endpoint's shared secret. Signing the timestamp lets a receiver reject replays older
  than a tolerance; signing the key stops a captured request from being replayed under a fresh
  key, which a deduplicating receiver would process again (:func:`verify_signature` checks all
  three). (``v1`` signed only timestamp and body.)

The sender claims one due row at a time (a lease, so a crashed sender's row is retried by the
next one), POSTs it, and marks it delivered (any 2xx) or failed. A failed row waits
``backoff_seconds * 2**(failures-1)`` (capped) and is dead-lettered after ``max_attempts``
failures; every attempt is in the ``deliveries`` log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from serving.workflows.config import RulesConfig, WebhookEndpoint
from serving.workflows.ledger import Ledger, OutboxRow

SIGNATURE_HEADER = "X-Churn-Signature"
TIMESTAMP_HEADER = "X-Churn-Timestamp"
KEY_HEADER = "Idempotency-Key"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: bytes, timestamp: int, idempotency_key: str, body: bytes) -> str:
    """``v2=<hex>``: HMAC-SHA256 of ``"{timestamp}.{idempotency_key}.{body}"``."""
    signed = f"{timestamp}.{idempotency_key}.".encode() + body
    return "v2=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    idempotency_key: str | None,
    now: float | None = None,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a receiver runs: the signature over timestamp, key and body matches (constant
    time) and the timestamp is recent enough."""
    if not timestamp or not signature or not timestamp.isdigit() or not idempotency_key:
        return False
    moment = time.time() if now is None else now
    if abs(moment - int(timestamp)) > tolerance_seconds:
        return False
    expected = sign(secret, int(timestamp), idempotency_key, body).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", "surrogateescape"))


@dataclass(frozen=True)
class Attempt:
    outbox_id: int
    endpoint: str
    attempt: int
    outcome: str  # delivered / pending (will retry) / dead / lost (claim taken over)
    status_code: int | None
    error: str | None


Observer = Callable[[str, OutboxRow], None]


class WebhookSender:
    """Delivers due outbox rows; safe to run in several processes at once (claims + leases).

    ``observer(stage, row)`` is called at ``claimed`` and ``sent`` (after the response, before
    the row is marked): operations hooks and crash tests use it.
    """

    def __init__(
        self,
        ledger: Ledger,
        endpoints: Mapping[str, WebhookEndpoint],
        secrets: Mapping[str, bytes],
        sender_id: str | None = None,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.ledger = ledger
        self.endpoints = dict(endpoints)
        self.secrets = dict(secrets)
        self.sender_id = sender_id or f"{socket.gethostname()}:{os.getpid()}"
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.client = client or httpx.Client(follow_redirects=False)
        self.observer = observer

    @classmethod
    def from_config(cls, ledger: Ledger, config: RulesConfig, **kwargs: object) -> WebhookSender:
        """A sender for every endpoint of ``rules.yaml``; secrets from the environment."""
        secrets = {name: ep.secret() for name, ep in config.webhooks.items()}
        return cls(ledger, config.webhooks, secrets, **kwargs)  # type: ignore[arg-type]

    def _notify(self, stage: str, row: OutboxRow) -> None:
        if self.observer is not None:
            self.observer(stage, row)

    def deliver(self, row: OutboxRow) -> Attempt:
        """POST one claimed row and record the outcome."""
        endpoint = self.endpoints[row.endpoint]
        body = row.payload.encode()
        stamp = int(self.clock())
        headers = {
            "Content-Type": "application/json",
            KEY_HEADER: row.idempotency_key,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: sign(self.secrets[row.endpoint], stamp, row.idempotency_key, body),
            "User-Agent": "churn-workflows/1",
        }
        code: int | None = None
        error: str | None = None
        try:
            response = self.client.post(
                str(endpoint.url), content=body, headers=headers, timeout=endpoint.timeout_seconds
            )
            code = response.status_code
            if not 200 <= code < 300:
                error = f"HTTP {code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self._notify("sent", row)
        now = self.clock()
        if error is None and code is not None:
            kept = self.ledger.mark_delivered(row, self.sender_id, now, code)
            return Attempt(
                row.outbox_id,
                row.endpoint,
                row.attempts,
                "delivered" if kept else "lost",
                code,
                None,
            )
        retry_at = (
            None if row.attempts >= endpoint.max_attempts else now + endpoint.backoff(row.attempts)
        )
        status = self.ledger.mark_failed(row, self.sender_id, now, code, error or "", retry_at)
        return Attempt(row.outbox_id, row.endpoint, row.attempts, status, code, error)

    def run_once(self, limit: int | None = None) -> list[Attempt]:
        """Deliver every row due now (up to ``limit``); returns the attempts made."""
        attempts: list[Attempt] = []
        names = list(self.endpoints)
        while names and (limit is None or len(attempts) < limit):
            row = self.ledger.claim_next(self.sender_id, self.clock(), self.lease_seconds, names)
            if row is None:
                break
            self._notify("claimed", row)
            attempts.append(self.deliver(row))
        return attempts

    def drain(self, timeout_seconds: float = 60.0, poll_seconds: float = 0.05) -> list[Attempt]:
        """Keep delivering, waiting out back-offs, until nothing is pending or claimed (or the
        timeout passes): ``churn rules run`` calls this after the run."""
        deadline = time.monotonic() + timeout_seconds
        attempts: list[Attempt] = []
        while True:
            attempts += self.run_once()
            if not self.ledger.busy(list(self.endpoints)):
                return attempts
            if time.monotonic() >= deadline:
                return attempts
            time.sleep(poll_seconds)
