"""The manager web UI (``/ui``): at-risk list, customer pages, retention analytics.

``serving.ui.routes.mount_ui(app)`` adds it to the API app; see ``docs/ui.md``.
"""
