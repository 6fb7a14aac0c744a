"""A real CRM stand-in: a stdlib HTTP server on 127.0.0.1 that verifies signatures and
deduplicates on Idempotency-Key, as docs/workflows.md asks a receiver to do."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from serving.workflows.webhooks import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    verify_signature,
)


class Receiver:
    """Start with ``with Receiver(secret) as r:``; ``r.url`` takes POSTs.

    ``script`` is a list of status codes answered to the first requests in order (then 200);
    ``hold`` makes the handler wait (a slow CRM) until ``release`` is set.
    """

    def __init__(self, secret: bytes, script: list[int] | None = None) -> None:
        self.secret = secret
        self.script = list(script or [])
        self.requests: list[dict[str, Any]] = []
        self.processed: dict[str, dict[str, Any]] = {}  # key -> body, first time only
        self.bad_signatures = 0
        self.hold = threading.Event()
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrived.set()
                if receiver.hold.is_set():
                    receiver.release.wait(10)
                ok = verify_signature(
                    receiver.secret,
                    body,
                    self.headers.get(TIMESTAMP_HEADER),
                    self.headers.get(SIGNATURE_HEADER),
                    self.headers.get(KEY_HEADER),
                )
                key = self.headers.get(KEY_HEADER, "")
                with receiver.lock:
                    receiver.requests.append(
                        {"key": key, "signed": ok, "body": body, "headers": dict(self.headers)}
                    )
                    status = receiver.script.pop(0) if receiver.script else 200
                    if not ok:
                        receiver.bad_signatures += 1
                        status = 401
                    elif status < 300 and key not in receiver.processed:
                        receiver.processed[key] = json.loads(body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/churn"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def keys_received(self) -> Counter[str]:
        return Counter(r["key"] for r in self.requests)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
