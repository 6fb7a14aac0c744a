"""Running the API under uvicorn (``churn serve``): httptools + uvloop, one or several workers.

TCP_NODELAY: uvicorn's HTTP protocol writes the status line and headers and then the body in
separate ``transport.write`` calls. With Nagle's algorithm on, the second small segment waits for
the client's delayed ACK, about 40 ms per keep-alive request at concurrency 1. The event loop sets
TCP_NODELAY on the sockets it accepts itself, but in ``--workers`` mode the listening socket is
bound by the supervisor and handed to each worker, and those accepted connections can come
without it. :class:`NoDelayHttpToolsProtocol` therefore sets TCP_NODELAY on every accepted
connection in ``connection_made``, whatever the worker mode, loop or platform (it is a cheap,
idempotent ``setsockopt``). ``tests/serving/test_server.py`` checks sequential keep-alive latency
with two workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from churn_settings import Settings
from features.errors import ChurnError

log = logging.getLogger("churn.serving")


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # e.g. the peer already closed
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with TCP_NODELAY forced on each connection."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)


DEMO_KEYS = frozenset({"demo-key"})
MIN_SECRET_CHARS = 32
MIN_KEY_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for hosts only this machine can reach (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a hostname: it may resolve to any interface


def network_problems(settings: Settings, host: str) -> list[str]:
    """What makes ``settings`` unsafe to expose on ``host``; empty on loopback.

    On a network the demo key (published in the README) and a session secret derived from the
    keys are refused: anyone who read the docs could sign in or forge a session.
    """
    if is_loopback(host):
        return []
    problems = []
    keys = settings.api_key_list()
    if not keys:
        problems.append("no API keys are configured: set CHURN_API_KEYS")
    if DEMO_KEYS & set(keys):
        problems.append(
            "the public demo key 'demo-key' is configured: set CHURN_API_KEYS to your own keys "
            '(e.g. `python -c "import secrets; print(secrets.token_urlsafe(32))"`)'
        )
    short = [k for k in keys if k not in DEMO_KEYS and len(k) < MIN_KEY_CHARS]
    if short:
        problems.append(
            f"{len(short)} API key(s) in CHURN_API_KEYS are shorter than {MIN_KEY_CHARS} "
            "characters: use long random keys"
        )
    secret = settings.ui_session_secret
    if not secret:
        problems.append(
            "no UI session secret is configured: set CHURN_UI_SESSION_SECRET to a random value "
            f"of {MIN_SECRET_CHARS}+ characters (e.g. `openssl rand -base64 32`)"
        )
    elif len(secret) < MIN_SECRET_CHARS:
        problems.append(
            f"CHURN_UI_SESSION_SECRET has {len(secret)} characters; use {MIN_SECRET_CHARS} or more"
        )
    return problems


def listen_port(host: str, port: int, any_free: bool = False) -> int:
    """The port to serve on: ``port`` when it is free on ``host``; else, with ``any_free``, a
    free one the operating system picks (``make demo`` beside another server), else an error
    naming the port and how to choose another (uvicorn's own message comes after the model has
    loaded and names neither)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
            return port
        except OSError as exc:
            if not any_free:
                raise ChurnError(
                    f"Cannot listen on {host}:{port} ({exc.strerror}): set CHURN_PORT or pass "
                    "--port, or --free-port to take any free port."
                ) from exc
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to listen on a non-loopback ``host`` with public or missing secrets."""
    problems = network_problems(settings, host)
    if problems:
        raise ChurnError(
            f"Refusing to serve on {host}, which other machines can reach: "
            + "; ".join(problems)
            + ". Or serve on 127.0.0.1 (the default) behind your own proxy."
        )


def served_settings(settings: Settings, host: str) -> Settings:
    """``settings`` as served on ``host``: checked (:func:`check_exposure`), and with the API's
    docs open only on loopback unless ``CHURN_API_DOCS`` says otherwise."""
    check_exposure(settings, host)
    if settings.api_docs is None:
        return settings.model_copy(update={"api_docs": is_loopback(host)})
    return settings


def app_from_env() -> FastAPI:
    """App factory for uvicorn workers: each worker reads the settings (env, ``.env``) once."""
    from serving.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(Settings())
    app.state.freeze_gc = True  # a long-lived server process (serving.app.freeze_startup_heap)
    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve until interrupted. With ``workers > 1`` each worker process loads its own copy of
    the model and store and polls for reloads itself; ``/metrics`` sums all workers.
    Refuses a non-loopback ``host`` with the demo key or no session secret
    (:func:`check_exposure`)."""
    settings = served_settings(settings, host)
    # Workers are fresh processes: hand them this deployment's settings through the environment
    # (a section such as ``workflows`` as JSON, which pydantic-settings reads back)
    os.environ.update(
        {
            f"CHURN_{k.upper()}": json.dumps(v) if isinstance(v, dict) else str(v)
            for k, v in settings.model_dump(mode="json").items()
            if v is not None
        }
    )
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="churn-metrics-")
    if multiproc := os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(multiproc).mkdir(parents=True, exist_ok=True)
        for stale in Path(multiproc).glob("*.db"):
            stale.unlink()
    uvicorn.run(
        "serving.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        http=NoDelayHttpToolsProtocol,
        loop="uvloop",
        access_log=False,
        log_level="info",
        timeout_keep_alive=30,
    )
