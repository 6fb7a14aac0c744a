"""The HTTP API as routers, one module per resource (``scoring``, ``customers``, ``model``,
``operations``), with what they need declared as dependencies (``deps``); ``serving.app``
includes them. Adding a route: a module with ``router = APIRouter(...)`` and one
``include_versioned`` line (``docs/architecture.md``).

Every operation a client integrates with lives under :data:`VERSION` (``/v1/score``, ...); the
unversioned paths of before stay as aliases of the same routes, left out of the OpenAPI schema.
A breaking change gets ``/v2`` beside ``/v1``, never a silent change of ``/v1``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, params

VERSION = "/v1"


def include_versioned(
    app: FastAPI, router: APIRouter, dependencies: Sequence[params.Depends] | None = None
) -> None:
    """``router`` under ``/v1`` (documented) and at its old unversioned paths (an alias, hidden
    from the schema): one implementation, two mounts, the same ``dependencies`` (scopes)."""
    app.include_router(router, prefix=VERSION, dependencies=dependencies)
    app.include_router(router, include_in_schema=False, dependencies=dependencies)
