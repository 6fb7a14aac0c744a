"""Retention workflows: rules over the score history open alerts, alerts run actions (tasks,
signed webhooks, tags, email drafts), people record what they did, and the closed loop measures
what worked. Walk-through: ``docs/workflows.md``.

Modules, in the order data flows: ``config`` (rules.yaml), ``inputs`` (score history, customer
facts), ``conditions`` (vectorised rule conditions), ``run`` (episodes and actions),
``ledger`` (SQLite), ``webhooks`` (outbox sender), ``loop`` (closed-loop analytics and the
quarterly review), ``api`` and ``ui`` (FastAPI routers), ``service`` (wiring for CLI and app).
"""
