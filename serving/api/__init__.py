"""The HTTP API as routers, one module per resource (``scoring``, ``customers``, ``model``,
``operations``), with what they need declared as dependencies (``deps``); ``serving.app``
includes them. Adding a route: a module with ``router = APIRouter(...)`` and one
``include_router`` line (``docs/architecture.md``)."""
