"""The workflow ledger: every alert, task, tag, draft, webhook, intervention, exit interview and
verdict, in one SQLite file (``data/store/workflows.db``, WAL mode).

Why SQLite: the rules run, the webhook sender and the API are separate processes that must agree
on what was already done. One file with transactions gives that without a server: a rule run
writes its alerts *and* everything they trigger (tasks, tags, drafts, outbox rows) in one
transaction, so a crash leaves either the whole run or none of it (the outbox pattern).

Times: ISO 8601 UTC text for what people read (``opened_at``, ``due_at``); the outbox's
scheduling columns (``next_attempt_at``, ``claimed_at``) are Unix seconds (REAL) because the
sender compares them with sub-second back-offs.

Delivery guarantee (see ``docs/workflows.md``): an alert's outbox row is written with the alert,
so no alert is lost; a row is *claimed* (lease), *sent*, then *marked*. A sender that dies after
claiming leaves the claim to expire and the row is sent again **with the same idempotency key and
the same body**. We never send a row that is marked delivered or dead. A receiver that
deduplicates on ``Idempotency-Key`` therefore processes each alert exactly once; one that does
not may see a duplicate only after a crash between sending and marking (or a lost response).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.errors import FieldProblem
from serving.workflows.errors import (
    InvalidRecordError,
    RulesError,
    UnknownRecordError,
    WorkflowConflictError,
)

if TYPE_CHECKING:  # pandas is imported on first read: the sender process needs no pandas
    import pandas as pd

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id INTEGER PRIMARY KEY, now TEXT NOT NULL, started_at TEXT NOT NULL,
  rules_digest TEXT NOT NULL, evaluated INTEGER NOT NULL, opened INTEGER NOT NULL,
  cleared INTEGER NOT NULL, held_out INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
  alert_id INTEGER PRIMARY KEY, rule_id TEXT NOT NULL, customer_id TEXT NOT NULL,
  opened_at TEXT NOT NULL, since TEXT, detail TEXT NOT NULL, run_id INTEGER NOT NULL,
  cleared_at TEXT, holdout INTEGER NOT NULL DEFAULT 0,
  tier TEXT, health_score REAL, probability REAL, mrr REAL, customer_name TEXT, csm_owner TEXT,
  context TEXT NOT NULL DEFAULT '{}',
  UNIQUE (rule_id, customer_id, opened_at)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_episode ON alerts (rule_id, customer_id)
  WHERE cleared_at IS NULL;
CREATE INDEX IF NOT EXISTS alerts_customer ON alerts (customer_id);
CREATE TABLE IF NOT EXISTS tasks (
  task_id INTEGER PRIMARY KEY, alert_id INTEGER REFERENCES alerts, customer_id TEXT NOT NULL,
  title TEXT NOT NULL, owner TEXT NOT NULL, tier TEXT, sla TEXT, due_at TEXT NOT NULL,
  created_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open', closed_at TEXT,
  closed_by TEXT, outcome TEXT, play TEXT, revenue_at_risk REAL
);
CREATE TABLE IF NOT EXISTS task_alerts (
  task_id INTEGER NOT NULL REFERENCES tasks, alert_id INTEGER NOT NULL REFERENCES alerts,
  attached_at TEXT NOT NULL, PRIMARY KEY (task_id, alert_id)
);
CREATE INDEX IF NOT EXISTS task_alerts_alert ON task_alerts (alert_id);
CREATE TABLE IF NOT EXISTS reassignments (
  task_id INTEGER NOT NULL REFERENCES tasks, from_owner TEXT NOT NULL, to_owner TEXT NOT NULL,
  by TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
  alert_id INTEGER NOT NULL REFERENCES alerts, customer_id TEXT NOT NULL, tag TEXT NOT NULL,
  while_open INTEGER NOT NULL, added_at TEXT NOT NULL, removed_at TEXT,
  PRIMARY KEY (alert_id, tag)
);
CREATE TABLE IF NOT EXISTS drafts (
  draft_id INTEGER PRIMARY KEY, alert_id INTEGER REFERENCES alerts, customer_id TEXT NOT NULL,
  template TEXT NOT NULL, to_owner TEXT, subject TEXT NOT NULL, body TEXT NOT NULL,
  created_at TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'draft'
);
CREATE TABLE IF NOT EXISTS outbox (
  outbox_id INTEGER PRIMARY KEY, alert_id INTEGER REFERENCES alerts,
  endpoint TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, payload TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL, claimed_at REAL, claimed_by TEXT, delivered_at TEXT,
  last_error TEXT, created_at TEXT NOT NULL, event TEXT NOT NULL DEFAULT 'alert.opened'
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS deliveries (
  delivery_id INTEGER PRIMARY KEY, outbox_id INTEGER NOT NULL REFERENCES outbox,
  attempt INTEGER NOT NULL, sender TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL,
  status_code INTEGER, outcome TEXT NOT NULL, error TEXT
);
CREATE TABLE IF NOT EXISTS interventions (
  intervention_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL,
  alert_id INTEGER REFERENCES alerts, task_id INTEGER REFERENCES tasks, type TEXT NOT NULL,
  date TEXT NOT NULL, owner TEXT NOT NULL, outcome TEXT NOT NULL, notes TEXT,
  recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS interventions_customer ON interventions (customer_id);
CREATE TABLE IF NOT EXISTS exit_interviews (
  interview_id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL, churned_at TEXT NOT NULL,
  main_reason TEXT NOT NULL, asked_for_help TEXT NOT NULL, help_experience TEXT,
  improve TEXT NOT NULL, replacement TEXT NOT NULL, win_back TEXT NOT NULL,
  category TEXT NOT NULL, avoidable INTEGER NOT NULL, recorded_by TEXT NOT NULL,
  recorded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
  verdict_id INTEGER PRIMARY KEY, alert_id INTEGER NOT NULL REFERENCES alerts,
  useful INTEGER NOT NULL, comment TEXT, by TEXT NOT NULL, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS goals (
  goal_id INTEGER PRIMARY KEY, baseline REAL NOT NULL, target REAL NOT NULL, start TEXT NOT NULL,
  months INTEGER NOT NULL, set_by TEXT NOT NULL, set_at TEXT NOT NULL
);
"""
RULES_ACTOR = "rules"  # closed_by of a task the rules resolved
RESOLVED = "resolved: every alert of this task cleared"
# Ledgers written before tasks had a play: add the columns, link each old task to its alert,
# then guard "one open task per customer and play" (old rows have no play, so they never clash).
TASK_COLUMNS = {"play": "TEXT", "revenue_at_risk": "REAL"}
UPGRADE = """
INSERT OR IGNORE INTO task_alerts (task_id, alert_id, attached_at)
  SELECT task_id, alert_id, created_at FROM tasks WHERE alert_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS one_open_task ON tasks (customer_id, play)
  WHERE status = 'open' AND play IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (status, owner);
"""
# Ledgers written when only alerts were sent: every outbox row had an alert. Events about a
# customer's score (score.tier_changed) have none, so the table is rebuilt with a nullable
# alert_id and the event column (SQLite cannot drop a NOT NULL in place).
OUTBOX_UPGRADE = """
CREATE TABLE outbox_events (
  outbox_id INTEGER PRIMARY KEY, alert_id INTEGER REFERENCES alerts,
  endpoint TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE, payload TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL, claimed_at REAL, claimed_by TEXT, delivered_at TEXT,
  last_error TEXT, created_at TEXT NOT NULL, event TEXT NOT NULL DEFAULT 'alert.opened'
);
INSERT INTO outbox_events (outbox_id, alert_id, endpoint, idempotency_key, payload, status,
  attempts, next_attempt_at, claimed_at, claimed_by, delivered_at, last_error, created_at)
  SELECT outbox_id, alert_id, endpoint, idempotency_key, payload, status, attempts,
  next_attempt_at, claimed_at, claimed_by, delivered_at, last_error, created_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_events RENAME TO outbox;
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
"""


def iso(moment: datetime | date | None) -> str | None:
    """UTC ISO 8601 text (seconds); a naive datetime is UTC; a date stays a date; NaT -> None."""
    if moment is None or moment != moment:  # None, NaN, NaT
        return None
    if not isinstance(moment, datetime):
        return moment.isoformat()
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return datetime(*aware.timetuple()[:6], tzinfo=UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class PlannedTask:
    """A task an alert asks for. ``play`` is the playbook tier play it resolves to (one open
    task per customer and play); ``revenue_at_risk`` (MRR x churn probability, currency per
    month) orders the run when owners are at capacity."""

    title: str
    owner: str
    tier: str
    sla: str
    due_at: datetime
    play: str = ""
    revenue_at_risk: float = 0.0


@dataclass(frozen=True)
class WaitingTask:
    """A task for an episode opened by an earlier run that got none (its owner was at
    capacity); created when capacity frees, due by the SLA from then."""

    alert_id: int
    customer_id: str
    task: PlannedTask


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one alert's task in a run: ``created``, ``attached`` to the open task
    of the same customer and play, or ``waiting`` for its owner's capacity."""

    alert_id: int
    status: str
    task_id: int | None
    owner: str
    title: str
    due_at: str | None


@dataclass(frozen=True)
class PlannedDraft:
    template: str
    to_owner: str
    subject: str
    body: str


@dataclass(frozen=True)
class PlannedAlert:
    """A new episode and everything it triggers, written in the run's one transaction."""

    rule_id: str
    customer_id: str
    since: datetime | None
    detail: str
    holdout: bool
    tier: str | None
    health_score: float | None
    probability: float | None
    mrr: float | None
    customer_name: str | None
    csm_owner: str | None
    context: dict[str, Any]
    tasks: list[PlannedTask] = field(default_factory=list)
    tags: list[tuple[str, bool]] = field(default_factory=list)
    drafts: list[PlannedDraft] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OutboxRow:
    """A webhook delivery as the sender sees it after claiming it."""

    outbox_id: int
    alert_id: int | None
    endpoint: str
    idempotency_key: str
    payload: str
    attempts: int


@dataclass(frozen=True)
class QueuedEvent:
    """A webhook to write to the outbox with what it reports (``serving.workflows.events``);
    ``alert_id`` is None for events about a customer's score."""

    alert_id: int | None
    endpoint: str
    event: str
    idempotency_key: str
    payload: str


def enqueue(con: sqlite3.Connection, event: QueuedEvent, at: str, next_attempt_at: float) -> None:
    """Write one event row; a row with the same key (a re-run) is kept, not doubled."""
    con.execute(
        "INSERT OR IGNORE INTO outbox (alert_id, endpoint, idempotency_key, payload, "
        "next_attempt_at, created_at, event) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (event.alert_id, event.endpoint, event.idempotency_key, event.payload,
         next_attempt_at, at, event.event),
    )  # fmt: skip


def idempotency_key(rule_id: str, customer_id: str, opened_at: str, endpoint: str) -> str:
    """Stable per alert episode and endpoint: a CRM that dedups on it never books twice."""
    raw = f"{rule_id}|{customer_id}|{opened_at}|{endpoint}".encode()
    return "churn-" + hashlib.sha256(raw).hexdigest()[:32]


class Ledger:
    """Access to ``workflows.db``; one short connection per operation (threads, processes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._watch: sqlite3.Connection | None = None  # see :meth:`version`
        self._watch_lock = threading.Lock()
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the rule run or sender
            con.executescript(SCHEMA)
            have = {r[1] for r in con.execute("PRAGMA table_info(tasks)")}
            for column, kind in TASK_COLUMNS.items():
                if column not in have:
                    con.execute(f"ALTER TABLE tasks ADD COLUMN {column} {kind}")
            con.executescript(UPGRADE)
            outbox = {r[1]: r for r in con.execute("PRAGMA table_info(outbox)")}
            if "event" not in outbox:
                con.executescript("BEGIN IMMEDIATE;" + OUTBOX_UPGRADE + "COMMIT;")
        finally:
            con.close()

    def __getstate__(self) -> dict[str, Any]:  # a thread-local does not pickle
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._local = threading.local()
        self._watch, self._watch_lock = None, threading.Lock()

    @contextmanager
    def connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection in one transaction: committed on success, rolled back on error.

        ``immediate`` takes the write lock at the start (claims, runs), so two writers never
        both read the same 'pending' row before either updates it. Inside :meth:`idempotent`
        the thread's open transaction is reused, so a write and its stored response commit
        together.
        """
        outer = getattr(self._local, "con", None)
        if outer is not None:
            yield outer
            return
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA busy_timeout=30000")
            con.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")
        finally:
            con.close()

    def idempotent(
        self,
        key: str | None,
        fingerprint: str,
        act: Callable[[], tuple[int, dict[str, Any]]],
        now: datetime,
    ) -> tuple[int, dict[str, Any], bool]:
        """Run ``act`` (a write returning its HTTP status and body) once per ``key``.

        The key, the request's ``fingerprint`` and the response are stored in the same
        transaction as the write, so a retry after a timeout, a crash or a server restart gets
        the first response and writes nothing (third value True). The same key with another
        request is refused: that is a client bug, not a retry.
        """
        if key is None:
            status, body = act()
            return status, body, False
        with self.connect(immediate=True) as con:
            row = con.execute(
                "SELECT fingerprint, status, body FROM idempotency_keys WHERE key = ?", (key,)
            ).fetchone()
            if row is not None:
                if row["fingerprint"] != fingerprint:
                    raise InvalidRecordError(
                        "This Idempotency-Key was used for a different request; send a new key "
                        "for a new request, the same body for a retry.",
                        [FieldProblem("Idempotency-Key", "already used for another request")],
                    )
                return int(row["status"]), json.loads(row["body"]), True
            self._local.con = con
            try:
                status, body = act()
            finally:
                self._local.con = None
            con.execute(
                "INSERT INTO idempotency_keys (key, fingerprint, status, body, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, fingerprint, status, json.dumps(body, default=str), iso(now)),
            )
        return status, body, False

    def version(self) -> tuple[Any, ...]:
        """Changes whenever anything was committed, by this process or another: SQLite's
        ``PRAGMA data_version`` on a connection that never writes moves on every commit of any
        other connection. It costs microseconds, so a cached report is checked on every call
        (a fingerprint query on a new connection took 0.6 ms, most of a cached report's cost
        under load). File stamps would not do: a reader's WAL checkpoint changes the files
        without changing the data. Values are only comparable within one process."""
        with self._watch_lock:
            if self._watch is None:
                self._watch = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
            return (self._watch.execute("PRAGMA data_version").fetchone()[0],)

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        import pandas as pd

        with self.connect() as con:
            cursor = con.execute(sql, params)
            columns = [c[0] for c in cursor.description]
            return pd.DataFrame([tuple(r) for r in cursor.fetchall()], columns=columns)

    # ----- rule runs ---------------------------------------------------------------------

    def last_run_now(self) -> str | None:
        with self.connect() as con:
            row = con.execute("SELECT MAX(now) FROM runs").fetchone()
        return row[0] if row else None

    def open_episodes(self) -> pd.DataFrame:
        """(alert_id, rule_id, customer_id, held_out) of every episode not cleared yet."""
        return self.frame(
            "SELECT alert_id, rule_id, customer_id, holdout AS held_out FROM alerts "
            "WHERE cleared_at IS NULL"
        )

    def waiting_episodes(self) -> pd.DataFrame:
        """Open, acted-on episodes no task was ever created or attached for (their owner was
        at capacity): (alert_id, rule_id, customer_id, context)."""
        return self.frame(
            "SELECT a.alert_id, a.rule_id, a.customer_id, a.context FROM alerts a "
            "WHERE a.cleared_at IS NULL AND a.holdout = 0 AND NOT EXISTS "
            "(SELECT 1 FROM task_alerts ta WHERE ta.alert_id = a.alert_id) ORDER BY a.alert_id"
        )

    def record_run(
        self,
        now: datetime,
        rules_digest: str,
        evaluated: int,
        planned: list[PlannedAlert],
        cleared: list[int],
        payload_of: Any,
        next_attempt_at: float,
        waiting: Sequence[WaitingTask] = (),
        capacity: int | None = None,
        events: Sequence[QueuedEvent] = (),
        task_events: Callable[[TaskOutcome, str, str], Sequence[QueuedEvent]] | None = None,
    ) -> tuple[int, list[TaskOutcome]]:
        """Write one rule run: new alerts with their tasks, tags, drafts and outbox rows, and
        the end of cleared episodes, all or nothing. ``payload_of(alert_id, planned, endpoint,
        task)`` builds a webhook body once the alert has its id and its task outcome.

        Tasks (new alerts' and the ``waiting`` ones of earlier runs) are placed highest revenue
        at risk first: one that matches the open task of its customer and play is attached to
        it; otherwise it is created while its owner has fewer than ``capacity`` open tasks
        (None: no limit), else it waits for a later run. Returns the run id and the outcomes.

        ``events`` (cleared alerts, tier changes) and ``task_events(outcome, rule_id,
        customer_id)`` of each created task are written to the outbox in the same transaction.
        """
        at = iso(now)
        assert at is not None
        with self.connect(immediate=True) as con:
            last = con.execute("SELECT MAX(now) FROM runs").fetchone()[0]
            if last is not None and at < last:
                raise RulesError(
                    f"A rule run for {at} is older than the last run ({last}); episodes only "
                    "move forward in time. Pass --now at or after the last run."
                )
            run_id = con.execute(
                "INSERT INTO runs (now, started_at, rules_digest, evaluated, opened, cleared, "
                "held_out) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    at,
                    iso(datetime.now(UTC)),
                    rules_digest,
                    evaluated,
                    len(planned),
                    len(cleared),
                    sum(p.holdout for p in planned),
                ),
            ).lastrowid
            for alert_id in cleared:
                con.execute("UPDATE alerts SET cleared_at = ? WHERE alert_id = ?", (at, alert_id))
                con.execute(
                    "UPDATE tags SET removed_at = ? WHERE alert_id = ? AND while_open = 1 "
                    "AND removed_at IS NULL",
                    (at, alert_id),
                )
            if cleared:
                # a task whose every alert cleared is resolved: the customer recovered, and a
                # later episode gets a fresh task with its own SLA instead of an old one
                marks = ",".join("?" * len(cleared))
                con.execute(
                    "UPDATE tasks SET status = 'closed', closed_at = ?, closed_by = ?, "
                    "outcome = ? WHERE status = 'open' AND task_id IN (SELECT task_id FROM "
                    f"task_alerts WHERE alert_id IN ({marks})) AND NOT EXISTS (SELECT 1 FROM "
                    "task_alerts ta JOIN alerts a USING (alert_id) "
                    "WHERE ta.task_id = tasks.task_id AND a.cleared_at IS NULL)",
                    (at, RULES_ACTOR, RESOLVED, *cleared),
                )
            ids: list[int] = []
            for p in planned:
                new_id = con.execute(
                    "INSERT INTO alerts (rule_id, customer_id, opened_at, since, detail, run_id, "
                    "holdout, tier, health_score, probability, mrr, customer_name, csm_owner, "
                    "context) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        p.rule_id,
                        p.customer_id,
                        at,
                        iso(p.since),
                        p.detail,
                        run_id,
                        int(p.holdout),
                        p.tier,
                        p.health_score,
                        p.probability,
                        p.mrr,
                        p.customer_name,
                        p.csm_owner,
                        json.dumps(p.context, default=str),
                    ),
                ).lastrowid
                ids.append(int(new_id or 0))
            dropped = set(cleared)
            wanted = [
                WaitingTask(alert_id, p.customer_id, t)
                for alert_id, p in zip(ids, planned, strict=True)
                for t in p.tasks
            ] + [w for w in waiting if w.alert_id not in dropped]
            outcomes = self._place_tasks(con, wanted, at, capacity)
            first: dict[int, TaskOutcome] = {}
            for o in outcomes:
                first.setdefault(o.alert_id, o)
            for alert_id, p in zip(ids, planned, strict=True):
                for tag, while_open in p.tags:
                    con.execute(
                        "INSERT INTO tags (alert_id, customer_id, tag, while_open, added_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (alert_id, p.customer_id, tag, int(while_open), at),
                    )
                for d in p.drafts:
                    con.execute(
                        "INSERT INTO drafts (alert_id, customer_id, template, to_owner, subject, "
                        "body, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (alert_id, p.customer_id, d.template, d.to_owner, d.subject, d.body, at),
                    )
                for endpoint in p.webhooks:
                    con.execute(
                        "INSERT INTO outbox (alert_id, endpoint, idempotency_key, payload, "
                        "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                        (
                            alert_id,
                            endpoint,
                            idempotency_key(p.rule_id, p.customer_id, at, endpoint),
                            payload_of(alert_id, p, endpoint, first.get(alert_id)),
                            next_attempt_at,
                            at,
                        ),
                    )
            for event in events:
                enqueue(con, event, at, next_attempt_at)
            for o in outcomes:
                if o.status == "created" and task_events is not None:
                    alert = con.execute(
                        "SELECT rule_id, customer_id FROM alerts WHERE alert_id = ?",
                        (o.alert_id,),
                    ).fetchone()
                    for event in task_events(o, str(alert[0]), str(alert[1])):
                        enqueue(con, event, at, next_attempt_at)
        return int(run_id or 0), outcomes

    @staticmethod
    def _place_tasks(
        con: sqlite3.Connection, wanted: list[WaitingTask], at: str, capacity: int | None
    ) -> list[TaskOutcome]:
        """Attach, create or defer each wanted task (see :meth:`record_run`), richest first;
        ties by customer and alert id so a replay places the same tasks."""
        order = sorted(wanted, key=lambda w: (-w.task.revenue_at_risk, w.customer_id, w.alert_id))
        load = {
            str(r[0]): int(r[1])
            for r in con.execute(
                "SELECT owner, COUNT(*) FROM tasks WHERE status = 'open' GROUP BY owner"
            )
        }
        outcomes = []
        for w in order:
            t = w.task
            found = con.execute(
                "SELECT task_id, owner, title, due_at FROM tasks WHERE customer_id = ? "
                "AND play = ? AND status = 'open'",
                (w.customer_id, t.play),
            ).fetchone()
            if found is not None:
                con.execute(
                    "INSERT OR IGNORE INTO task_alerts (task_id, alert_id, attached_at) "
                    "VALUES (?, ?, ?)",
                    (found["task_id"], w.alert_id, at),
                )
                outcomes.append(
                    TaskOutcome(
                        w.alert_id,
                        "attached",
                        int(found["task_id"]),
                        str(found["owner"]),
                        str(found["title"]),
                        str(found["due_at"]),
                    )
                )
                continue
            if capacity is not None and load.get(t.owner, 0) >= capacity:
                outcomes.append(TaskOutcome(w.alert_id, "waiting", None, t.owner, t.title, None))
                continue
            due = iso(t.due_at)
            task_id = int(
                con.execute(
                    "INSERT INTO tasks (alert_id, customer_id, title, owner, tier, sla, due_at, "
                    "created_at, play, revenue_at_risk) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        w.alert_id,
                        w.customer_id,
                        t.title,
                        t.owner,
                        t.tier,
                        t.sla,
                        due,
                        at,
                        t.play,
                        t.revenue_at_risk,
                    ),
                ).lastrowid
                or 0
            )
            con.execute(
                "INSERT INTO task_alerts (task_id, alert_id, attached_at) VALUES (?, ?, ?)",
                (task_id, w.alert_id, at),
            )
            load[t.owner] = load.get(t.owner, 0) + 1
            outcomes.append(TaskOutcome(w.alert_id, "created", task_id, t.owner, t.title, due))
        return outcomes

    # ----- outbox ------------------------------------------------------------------------

    def claim_next(
        self, sender: str, now: float, lease_seconds: float, endpoints: Sequence[str]
    ) -> OutboxRow | None:
        """Claim the oldest due row: pending and due, or claimed by a sender whose lease ran
        out (it crashed or hung). The attempt counter and the log are written with the claim."""
        marks = ",".join("?" * len(endpoints))
        with self.connect(immediate=True) as con:
            row = con.execute(
                f"SELECT * FROM outbox WHERE endpoint IN ({marks}) AND ("
                "(status = 'pending' AND next_attempt_at <= ?) OR "
                "(status = 'claimed' AND claimed_at + ? <= ?)) "
                "ORDER BY next_attempt_at, outbox_id LIMIT 1",
                (*endpoints, now, lease_seconds, now),
            ).fetchone()
            if row is None:
                return None
            attempts = int(row["attempts"]) + 1
            con.execute(
                "UPDATE outbox SET status = 'claimed', claimed_at = ?, claimed_by = ?, "
                "attempts = ? WHERE outbox_id = ?",
                (now, sender, attempts, row["outbox_id"]),
            )
            if row["status"] == "claimed":
                con.execute(
                    "UPDATE deliveries SET outcome = 'abandoned', error = 'claim expired' "
                    "WHERE outbox_id = ? AND outcome = 'in_flight'",
                    (row["outbox_id"],),
                )
            con.execute(
                "INSERT INTO deliveries (outbox_id, attempt, sender, started_at, outcome) "
                "VALUES (?, ?, ?, ?, 'in_flight')",
                (row["outbox_id"], attempts, sender, now),
            )
        return OutboxRow(
            int(row["outbox_id"]),
            None if row["alert_id"] is None else int(row["alert_id"]),
            str(row["endpoint"]),
            str(row["idempotency_key"]),
            str(row["payload"]),
            attempts,
        )

    def mark_delivered(self, row: OutboxRow, sender: str, now: float, status_code: int) -> bool:
        """Mark a claimed row delivered; False if the claim was lost to another sender."""
        with self.connect(immediate=True) as con:
            updated = con.execute(
                "UPDATE outbox SET status = 'delivered', delivered_at = ?, last_error = NULL "
                "WHERE outbox_id = ? AND status = 'claimed' AND claimed_by = ? AND attempts = ?",
                (iso(datetime.fromtimestamp(now, UTC)), row.outbox_id, sender, row.attempts),
            ).rowcount
            self._log(con, row, now, status_code, "delivered", None)
        return bool(updated)

    def mark_failed(
        self,
        row: OutboxRow,
        sender: str,
        now: float,
        status_code: int | None,
        error: str,
        retry_at: float | None,
    ) -> str:
        """Record a failed attempt: back to pending at ``retry_at``, or dead when None."""
        status = "dead" if retry_at is None else "pending"
        with self.connect(immediate=True) as con:
            con.execute(
                "UPDATE outbox SET status = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                "claimed_at = NULL, claimed_by = NULL, last_error = ? "
                "WHERE outbox_id = ? AND status = 'claimed' AND claimed_by = ? AND attempts = ?",
                (status, retry_at, error, row.outbox_id, sender, row.attempts),
            )
            self._log(con, row, now, status_code, "dead" if retry_at is None else "failed", error)
        return status

    @staticmethod
    def _log(
        con: sqlite3.Connection,
        row: OutboxRow,
        now: float,
        code: int | None,
        outcome: str,
        error: str | None,
    ) -> None:
        con.execute(
            "UPDATE deliveries SET finished_at = ?, status_code = ?, outcome = ?, error = ? "
            "WHERE outbox_id = ? AND attempt = ? AND outcome = 'in_flight'",
            (now, code, outcome, error, row.outbox_id, row.attempts),
        )

    def busy(self, endpoints: Sequence[str]) -> bool:
        """Any row of these endpoints still pending or claimed?"""
        marks = ",".join("?" * len(endpoints))
        with self.connect() as con:
            row = con.execute(
                f"SELECT 1 FROM outbox WHERE status IN ('pending', 'claimed') "
                f"AND endpoint IN ({marks}) LIMIT 1",
                tuple(endpoints),
            ).fetchone()
        return row is not None

    def requeue(self, outbox_id: int, now: float) -> None:
        """Send a dead letter again (after the CRM is fixed), same key, attempts reset."""
        with self.connect(immediate=True) as con:
            updated = con.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ? "
                "WHERE outbox_id = ? AND status = 'dead'",
                (now, outbox_id),
            ).rowcount
        if not updated:
            raise UnknownRecordError(f"No dead-lettered webhook with outbox_id {outbox_id}.")

    # ----- what people record ------------------------------------------------------------

    def close_task(
        self,
        task_id: int,
        by: str,
        outcome: str,
        now: datetime,
        events: Callable[[dict[str, Any]], Sequence[QueuedEvent]] | None = None,
    ) -> None:
        """Close an open task; ``events(task)`` (``task.completed``) are written with it."""
        with self.connect(immediate=True) as con:
            row = con.execute(
                "SELECT t.*, a.rule_id FROM tasks t LEFT JOIN alerts a USING (alert_id) "
                "WHERE t.task_id = ?",
                (task_id,),
            ).fetchone()
            if row is None:
                raise UnknownRecordError(
                    f"No task {task_id}; list open tasks at GET /workflows/tasks."
                )
            if row["status"] != "open":
                raise WorkflowConflictError(
                    f"Task {task_id} is already closed; list open tasks at GET /workflows/tasks."
                )
            con.execute(
                "UPDATE tasks SET status = 'closed', closed_at = ?, closed_by = ?, outcome = ? "
                "WHERE task_id = ?",
                (iso(now), by, outcome, task_id),
            )
            closed = dict(row) | {"status": "closed", "closed_at": iso(now), "closed_by": by,
                                  "outcome": outcome}  # fmt: skip
            at = iso(now) or ""
            for event in events(closed) if events is not None else []:
                enqueue(con, event, at, 0.0)

    def tasks(
        self,
        now: datetime,
        status: str | None = "open",
        owner: str | None = None,
        tier: str | None = None,
        overdue: bool | None = None,
        customer_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        revenue_first: bool = False,
    ) -> tuple[pd.DataFrame, int]:
        """A page of tasks and the total that match: soonest due first, then highest revenue at
        risk (``revenue_first``: highest revenue at risk first, a CSM's worklist). ``overdue``
        compares the stored ``due_at`` with ``now`` (open tasks only are ever overdue); each row
        counts the alerts attached to it."""
        where, params = _task_filter(iso(now) or "", status, owner, tier, overdue, customer_id)
        with self.connect() as con:
            total = int(con.execute(f"SELECT COUNT(*) FROM tasks WHERE {where}", params)
                        .fetchone()[0])  # fmt: skip
        frame = self.frame(
            f"SELECT tasks.*, (status = 'open' AND due_at < ?) AS overdue, "
            "(SELECT COUNT(*) FROM task_alerts ta WHERE ta.task_id = tasks.task_id) AS alerts "
            f"FROM tasks WHERE {where} "
            + (
                "ORDER BY revenue_at_risk DESC NULLS LAST, due_at, task_id "
                if revenue_first
                else "ORDER BY due_at, revenue_at_risk DESC, task_id "
            )
            + "LIMIT ? OFFSET ?",
            [iso(now), *params, limit, offset],
        )
        frame["overdue"] = frame["overdue"].astype(bool)
        return frame, total

    def work_by_person(self) -> pd.DataFrame:
        """Per person who acted: tasks they completed, interventions they logged, exit
        interviews they recorded, and when they last did any of it (the closed loop's "who
        did the work"; the rules' own task resolutions are not a person's work)."""
        return self.frame(
            "SELECT person, SUM(kind = 'task') AS tasks_completed, "
            "SUM(kind = 'intervention') AS interventions, SUM(kind = 'exit') AS exit_interviews, "
            "MAX(at) AS last_action FROM ("
            "  SELECT closed_by AS person, 'task' AS kind, closed_at AS at FROM tasks "
            "    WHERE status = 'closed' AND closed_by IS NOT NULL AND closed_by != ?"
            "  UNION ALL SELECT owner, 'intervention', recorded_at FROM interventions"
            "  UNION ALL SELECT recorded_by, 'exit', recorded_at FROM exit_interviews"
            ") GROUP BY person ORDER BY last_action DESC",
            [RULES_ACTOR],
        )

    def recent_work(self, limit: int = 30) -> pd.DataFrame:
        """The latest completed tasks and logged interventions, newest first, with who."""
        return self.frame(
            "SELECT * FROM ("
            "  SELECT closed_at AS at, closed_by AS person, 'completed task' AS action, "
            "    customer_id, title || ': ' || COALESCE(outcome, '') AS detail FROM tasks "
            "    WHERE status = 'closed' AND closed_by != ?"
            "  UNION ALL SELECT recorded_at, owner, 'logged ' || type, customer_id, "
            "    outcome || COALESCE(': ' || notes, '') FROM interventions"
            ") ORDER BY at DESC LIMIT ?",
            [RULES_ACTOR, limit],
        )

    def reassign_tasks(
        self, task_ids: Sequence[int], owner: str, by: str, now: datetime
    ) -> list[int]:
        """Give open tasks to ``owner`` (all or nothing); each move is recorded with who made
        it. Unknown or closed ids are refused by name. Returns the ids moved (already owned
        ones are left as they are)."""
        ids = sorted(set(task_ids))
        marks = ",".join("?" * len(ids))
        with self.connect(immediate=True) as con:
            rows = {
                int(r["task_id"]): r
                for r in con.execute(
                    f"SELECT task_id, owner, status FROM tasks WHERE task_id IN ({marks})", ids
                )
            }
            missing = [i for i in ids if i not in rows]
            if missing:
                raise UnknownRecordError(
                    f"No task {', '.join(map(str, missing))}; list tasks at GET /workflows/tasks."
                )
            closed = [i for i in ids if rows[i]["status"] != "open"]
            if closed:
                raise WorkflowConflictError(
                    f"Task {', '.join(map(str, closed))} is closed; only open tasks are reassigned."
                )
            moved = [i for i in ids if rows[i]["owner"] != owner]
            for task_id in moved:
                con.execute("UPDATE tasks SET owner = ? WHERE task_id = ?", (owner, task_id))
                con.execute(
                    "INSERT INTO reassignments (task_id, from_owner, to_owner, by, at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (task_id, rows[task_id]["owner"], owner, by, iso(now)),
                )
        return moved

    def add_intervention(self, values: dict[str, Any], now: datetime) -> int:
        with self.connect(immediate=True) as con:
            self._check_refs(con, values.get("alert_id"), values.get("task_id"))
            return int(
                con.execute(
                    "INSERT INTO interventions (customer_id, alert_id, task_id, type, date, owner, "
                    "outcome, notes, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        values["customer_id"],
                        values.get("alert_id"),
                        values.get("task_id"),
                        values["type"],
                        iso(values["date"]),
                        values["owner"],
                        values["outcome"],
                        values.get("notes"),
                        iso(now),
                    ),
                ).lastrowid
                or 0
            )

    @staticmethod
    def _check_refs(con: sqlite3.Connection, alert_id: int | None, task_id: int | None) -> None:
        if (
            alert_id is not None
            and not con.execute("SELECT 1 FROM alerts WHERE alert_id = ?", (alert_id,)).fetchone()
        ):
            raise UnknownRecordError(f"No alert {alert_id}.")
        if (
            task_id is not None
            and not con.execute("SELECT 1 FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        ):
            raise UnknownRecordError(f"No task {task_id}.")

    def add_exit_interview(self, values: dict[str, Any], now: datetime) -> int:
        with self.connect(immediate=True) as con:
            return int(
                con.execute(
                    "INSERT INTO exit_interviews (customer_id, churned_at, main_reason, "
                    "asked_for_help, help_experience, improve, replacement, win_back, category, "
                    "avoidable, recorded_by, recorded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        values["customer_id"],
                        iso(values["churned_at"]),
                        values["main_reason"],
                        values["asked_for_help"],
                        values.get("help_experience"),
                        values["improve"],
                        values["replacement"],
                        values["win_back"],
                        values["category"],
                        int(values["avoidable"]),
                        values["recorded_by"],
                        iso(now),
                    ),
                ).lastrowid
                or 0
            )

    def add_verdict(
        self, alert_id: int, useful: bool, comment: str | None, by: str, now: datetime
    ) -> int:
        with self.connect(immediate=True) as con:
            self._check_refs(con, alert_id, None)
            return int(
                con.execute(
                    "INSERT INTO verdicts (alert_id, useful, comment, by, at) VALUES (?,?,?,?,?)",
                    (alert_id, int(useful), comment, by, iso(now)),
                ).lastrowid
                or 0
            )

    def set_goal(
        self, baseline: float, target: float, start: date, months: int, by: str, now: datetime
    ) -> None:
        with self.connect(immediate=True) as con:
            con.execute(
                "INSERT INTO goals (baseline, target, start, months, set_by, set_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (baseline, target, start.isoformat(), months, by, iso(now)),
            )

    def latest_goal(self) -> dict[str, Any] | None:
        with self.connect() as con:
            row = con.execute("SELECT * FROM goals ORDER BY goal_id DESC LIMIT 1").fetchone()
        return dict(row) if row else None

    # ----- reading -----------------------------------------------------------------------

    def alerts(
        self,
        status: str | None = None,
        rule_id: str | None = None,
        customer_id: str | None = None,
        limit: int = 500,
        offset: int = 0,
        csm_owner: str | None = None,
    ) -> pd.DataFrame:
        """Alerts, newest first, with their open task, latest verdict and outbox state
        (``csm_owner``: only the alerts of that CSM's customers)."""
        where, params = ["1 = 1"], []
        if csm_owner:
            where.append("a.csm_owner = ?")
            params.append(csm_owner)
        if status == "open":
            where.append("a.cleared_at IS NULL")
        elif status == "cleared":
            where.append("a.cleared_at IS NOT NULL")
        if rule_id:
            where.append("a.rule_id = ?")
            params.append(rule_id)
        if customer_id:
            where.append("a.customer_id = ?")
            params.append(customer_id)
        sql = f"""
            SELECT a.*,
              (SELECT ta.task_id FROM task_alerts ta WHERE ta.alert_id = a.alert_id
                 ORDER BY ta.task_id LIMIT 1) AS task_id,
              (SELECT t.status FROM task_alerts ta JOIN tasks t USING (task_id)
                 WHERE ta.alert_id = a.alert_id ORDER BY ta.task_id LIMIT 1) AS task_status,
              (SELECT t.due_at FROM task_alerts ta JOIN tasks t USING (task_id)
                 WHERE ta.alert_id = a.alert_id ORDER BY ta.task_id LIMIT 1) AS due_at,
              (SELECT useful FROM verdicts v WHERE v.alert_id = a.alert_id
                 ORDER BY verdict_id DESC LIMIT 1) AS verdict_useful,
              (SELECT comment FROM verdicts v WHERE v.alert_id = a.alert_id
                 ORDER BY verdict_id DESC LIMIT 1) AS verdict_comment,
              (SELECT group_concat(endpoint || ':' || status) FROM outbox o
                 WHERE o.alert_id = a.alert_id) AS webhooks,
              (SELECT COUNT(*) FROM interventions i WHERE i.customer_id = a.customer_id
                 AND i.date >= substr(a.opened_at, 1, 10)) AS interventions
            FROM alerts a WHERE {" AND ".join(where)}
            ORDER BY a.opened_at DESC, a.alert_id DESC LIMIT ? OFFSET ?
        """
        return self.frame(sql, [*params, limit, offset])

    def alert(self, alert_id: int) -> dict[str, Any]:
        found = self.alerts_by_id([alert_id])
        if not found:
            raise UnknownRecordError(f"No alert {alert_id}; list alerts at GET /workflows/alerts.")
        return found[0]

    def alerts_by_id(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        marks = ",".join("?" * len(ids)) or "NULL"
        with self.connect() as con:
            rows = con.execute(f"SELECT * FROM alerts WHERE alert_id IN ({marks})", tuple(ids))
            return [dict(r) for r in rows.fetchall()]

    def table(
        self, name: str, order: str = "1", where: str = "1 = 1", params: Sequence[Any] = ()
    ) -> pd.DataFrame:
        """A whole workflow table (fixed names only) for reports and listings."""
        if name not in {
            "runs",
            "alerts",
            "tasks",
            "tags",
            "drafts",
            "outbox",
            "deliveries",
            "interventions",
            "exit_interviews",
            "verdicts",
            "goals",
            "task_alerts",
            "reassignments",
        }:
            raise ValueError(f"no table {name}")
        return self.frame(f"SELECT * FROM {name} WHERE {where} ORDER BY {order}", params)

    def task_owner(self, task_id: int) -> tuple[str, str] | None:
        """(customer_id, status) of a task, None if there is none."""
        with self.connect() as con:
            row = con.execute(
                "SELECT customer_id, status FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def alert_customer(self, alert_id: int) -> str | None:
        with self.connect() as con:
            row = con.execute(
                "SELECT customer_id FROM alerts WHERE alert_id = ?", (alert_id,)
            ).fetchone()
        return str(row[0]) if row else None

    def segment(self, tag: str) -> list[str]:
        """Customers currently in the segment ``tag`` (any open membership row)."""
        frame = self.frame(
            "SELECT DISTINCT customer_id FROM tags WHERE tag = ? AND removed_at IS NULL "
            "ORDER BY customer_id",
            (tag,),
        )
        return [str(c) for c in frame["customer_id"]]


def _task_filter(
    now: str,
    status: str | None,
    owner: str | None,
    tier: str | None,
    overdue: bool | None,
    customer_id: str | None,
) -> tuple[str, list[Any]]:
    """The WHERE clause (with parameters) of a task listing; None means any."""
    where, params = ["1 = 1"], []
    for column, value in (
        ("status", status),
        ("owner", owner),
        ("tier", tier),
        ("customer_id", customer_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if overdue is True:
        where.append("status = 'open' AND due_at < ?")
        params.append(now)
    elif overdue is False:
        where.append("NOT (status = 'open' AND due_at < ?)")
        params.append(now)
    return " AND ".join(where), params


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """What makes two requests the same for ``Idempotency-Key``: method, path and JSON body."""
    raw = json.dumps([method, path, body], sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()
