"""The manager web UI (``/ui``): at-risk list, customer pages, retention analytics.

``mount_ui(app, runtime_getter, settings)`` adds it to the API app; see ``docs/ui.md``.
"""

from serving.ui.routes import mount_ui

__all__ = ["mount_ui"]
