"""Wiring for the CLI and the app: settings -> rules, ledger, playbook, history and facts.

The library functions (``run.run_rules``, ``loop.closed_loop``) take frames and an explicit
``now``; this module is the one place that reads files for them. The contract tables are read
once and kept until their folder changes, so the closed-loop page does not re-read an export on
every request.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from churn_settings import Settings
from features.contract import RawTables
from features.facts import customer_facts, day_of, facts_frame
from serving.errors import NotReadyError
from serving.playbook import Playbook, load_playbook
from serving.workflows.config import RulesConfig, load_rules
from serving.workflows.events import task_completed
from serving.workflows.inputs import daily_scores, read_score_history
from serving.workflows.ledger import Ledger
from serving.workflows.loop import ClosedLoop, LoopInputs, closed_loop
from serving.workflows.records import check_exit_interview, check_intervention
from serving.workflows.run import RunSummary, run_rules
from serving.workflows.webhooks import Attempt, WebhookSender

REPORT_WAIT_SECONDS = 20.0  # a caller waits this long for a report being computed, then 503
REPORT_COMPUTE_SECONDS = 60.0  # the caller computing waits this long for the worker, then 503


class ReportBusyError(NotReadyError):
    """The report is being computed for new inputs and did not finish within the wait."""

    code = "report_busy"


def default_now(
    history: pd.DataFrame, max_age_days: int, clock: datetime | None = None
) -> datetime:
    """``now`` when none is given: the wall clock for a live deployment; the latest ``as_of``
    (midnight UTC) when the history belongs to an older export (the demo world), so the rules
    see that world as of its last scoring instead of finding every score stale."""
    wall = clock or datetime.now(UTC)
    if history.empty:
        return wall
    latest = pd.Timestamp(history["as_of"].max()).to_pydatetime().replace(tzinfo=UTC)
    return wall if wall - latest <= timedelta(days=max_age_days + 1) else latest


@dataclass
class Workflows:
    """One deployment's workflows: where everything is, loaded once."""

    settings: Settings
    config: RulesConfig
    ledger: Ledger
    playbook: Playbook
    history_path: Path
    task_capacity: int | None = None  # open tasks per owner a rule run fills up to
    _tables: tuple[float, RawTables] | None = field(default=None, repr=False)
    _known: tuple[tuple[Any, ...], pd.DataFrame, frozenset[str]] | None = field(
        default=None, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _history: tuple[tuple[int, int, int], pd.DataFrame] | None = field(default=None, repr=False)
    _loop: tuple[tuple[Any, ...], tuple[ClosedLoop, LoopInputs]] | None = field(
        default=None, repr=False
    )
    _loop_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # set by ``use_worker``: compute the closed loop in a child process (see ``closed_loop``)
    worker_settings: Settings | None = field(default=None, repr=False)
    _pool: ProcessPoolExecutor | None = field(default=None, repr=False)
    _pending: tuple[tuple[Any, ...], Future[Any]] | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Workflows:
        return cls(
            settings=settings,
            config=load_rules(settings.workflows.rules_path),
            ledger=Ledger(settings.workflows_db_path),
            playbook=load_playbook(settings.playbook_path),
            history_path=settings.score_history_path,
            task_capacity=settings.workflows.task_capacity,
        )

    def use_worker(self) -> Workflows:
        """Compute the closed loop in one child process (the server's): seconds of pandas work
        then hold no GIL of the process that answers ``/score``."""
        self.worker_settings = self.settings
        return self

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _compute(self, key: tuple[Any, ...], moment: datetime) -> tuple[ClosedLoop, LoopInputs]:
        """The closed loop for ``moment``: in this thread, or in the worker process."""
        if self.worker_settings is None:
            inputs = self.loop_inputs(moment)
            return closed_loop(inputs), inputs
        pending = self._pending
        if pending is None or pending[0] != key:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    1,
                    mp_context=mp.get_context("spawn"),
                    initializer=exit_with_parent,
                    initargs=(os.getpid(),),
                )
            pending = (key, self._pool.submit(worker_closed_loop, self.worker_settings, moment))
            self._pending = pending
        try:
            result: tuple[ClosedLoop, LoopInputs] = pending[1].result(REPORT_COMPUTE_SECONDS)
        except FutureTimeout:
            raise ReportBusyError(
                "The closed-loop report is still being computed for new data; retry in a few "
                "seconds."
            ) from None
        except BrokenProcessPool:
            self._pool, self._pending = None, None
            raise
        self._pending = None
        return result

    def history(self) -> pd.DataFrame:
        """The score history, re-read only when its files change (callers must not mutate)."""
        stamp = tree_stamp(self.history_path)
        cached = self._history
        if cached is not None and cached[0] == stamp:
            return cached[1]
        frame = read_score_history(self.history_path)
        self._history = (stamp, frame)
        return frame

    def input_version(self, moment: datetime) -> tuple[Any, ...]:
        """Everything the closed loop reads: history files, ledger rows, export folder, score
        store and snapshot (who to contact), and the moment; equal versions give equal
        reports."""
        return (
            tree_stamp(self.history_path),
            self.ledger.version(),
            tree_stamp(self.settings.data_dir),
            tree_stamp(self.settings.score_store_path),
            tree_stamp(self.settings.snapshot_path),
            moment,
        )

    def tables(self) -> RawTables | None:
        """The contract tables of ``data_dir`` (cached by folder mtime); None if absent."""
        from features.contract import load_valid_tables

        folder = self.settings.data_dir
        if not folder.exists():
            return None
        stamp = max((p.stat().st_mtime for p in folder.iterdir()), default=0.0)
        with self._lock:
            if self._tables is None or self._tables[0] != stamp:
                tables, _ = load_valid_tables(folder, now=pd.Timestamp.now(tz="UTC"))
                self._tables = (stamp, tables)
            return self._tables[1]

    def facts(self, now: datetime) -> pd.DataFrame:
        tables = self.tables()
        return customer_facts(tables, now) if tables is not None else facts_frame([])

    def resolve_now(self, now: datetime | None, history: pd.DataFrame) -> datetime:
        return now or default_now(history, self.config.max_score_age_days)

    @property
    def currency(self) -> str:
        """ISO code of the amounts the workflows report (MRR, revenue at risk)."""
        return self.settings.currency_code()

    def run(self, now: datetime | None = None) -> RunSummary:
        """``churn rules run``: evaluate the rules and record the run (webhooks queued)."""
        history = self.history()
        moment = self.resolve_now(now, history)
        return run_rules(
            self.config,
            self.ledger,
            history,
            self.facts(moment),
            self.playbook,
            moment,
            capacity=self.task_capacity,
            currency=self.currency,
        )

    def known_customers(self, now: datetime) -> tuple[pd.DataFrame, frozenset[str]]:
        """Customer facts as of ``now``'s day and the scored ids, to check records against;
        kept until the export, the history or the day changes (one DuckDB pass, not one per
        request)."""
        key = (tree_stamp(self.settings.data_dir), tree_stamp(self.history_path), day_of(now))
        cached = self._known
        if cached is None or cached[0] != key:
            history = self.history()
            cached = (key, self.facts(now), frozenset(history["customer_id"].astype(str)))
            self._known = cached
        return cached[1], cached[2]

    def record_intervention(self, values: dict[str, Any], now: datetime) -> int:
        """Check an intervention against the facts and the ledger (422 naming the field),
        then record it."""
        facts, scored = self.known_customers(now)
        alert_id, task_id = values.get("alert_id"), values.get("task_id")
        task = self.ledger.task_owner(task_id) if task_id is not None else None
        check_intervention(
            values,
            facts,
            day_of(now).date(),
            scored,
            self.ledger.alert_customer(alert_id) if alert_id is not None else None,
            task[0] if task else None,
        )
        return self.ledger.add_intervention(values, now)

    def close_task(self, task_id: int, by: str, outcome: str, now: datetime) -> None:
        """Close a task; subscribed endpoints of its alert's rule get ``task.completed``."""

        config = self.config
        self.ledger.close_task(task_id, by, outcome, now, lambda t: task_completed(config, t))

    def record_exit_interview(self, values: dict[str, Any], now: datetime) -> int:
        """Check an exit interview (a churned, known customer; a plausible day), record it."""
        facts, scored = self.known_customers(now)
        check_exit_interview(values, facts, day_of(now).date(), scored)
        return self.ledger.add_exit_interview(values, now)

    def send(self, timeout_seconds: float = 60.0) -> list[Attempt]:
        """Deliver queued webhooks (needs each endpoint's secret in the environment)."""
        if not self.config.webhooks:
            return []
        return WebhookSender.from_config(self.ledger, self.config).drain(timeout_seconds)

    def contract_exits(self) -> pd.DataFrame | None:
        tables = self.tables()
        return tables.exit_reasons if tables is not None else None

    def monthly_churn(self) -> pd.DataFrame | None:
        tables = self.tables()
        return monthly_churn(tables) if tables is not None else None

    def goal(self) -> dict[str, Any] | None:
        """The goal set in the UI (latest), else the one in rules.yaml."""
        stored = self.ledger.latest_goal()
        if stored:
            return {k: stored[k] for k in ("baseline", "target", "start", "months")}
        return self.config.goal.model_dump() if self.config.goal else None

    def loop_inputs(self, now: datetime | None = None) -> LoopInputs:
        history = self.history()
        moment = self.resolve_now(now, history)
        ledger = self.ledger
        inputs = LoopInputs(
            config=self.config,
            now=moment,
            alerts=ledger.table("alerts", order="alert_id"),
            interventions=ledger.table("interventions", order="intervention_id"),
            verdicts=ledger.table("verdicts", order="verdict_id"),
            tasks=ledger.table("tasks", order="task_id"),
            outbox=ledger.table("outbox", order="outbox_id"),
            interviews=ledger.table("exit_interviews", order="interview_id"),
            contract_exits=self.contract_exits(),
            facts=self.facts(moment),
            daily=daily_scores(history, moment),
            goal=self.goal(),
            monthly_churn=self.monthly_churn(),
        )
        return self.with_contact_inputs(inputs)

    def with_contact_inputs(self, inputs: LoopInputs) -> LoopInputs:
        """Add who-to-contact's inputs: the current customers (the score store, with the
        snapshot's features once an action has enough hold-out data) and the point-in-time
        features of the randomised alerts' scorings (built only then: a young ledger costs a
        count). Missing store files leave the plan out, they never fail the report."""
        from features.engine import build_features
        from serving.workflows.effects import (
            ALL_PLAYS,
            arm_counts,
            campaign_rows,
            current_customers,
            ready_actions,
        )
        from serving.workflows.loop import alert_outcomes

        store_path = self.settings.score_store_path
        if not store_path.exists() or inputs.facts.empty:
            return inputs
        rows = campaign_rows(alert_outcomes(inputs), inputs.daily)
        ready = ready_actions(arm_counts(rows), ALL_PLAYS, self.config.contact)
        import pyarrow.parquet as pq

        # the plan needs three of the store's columns, not its drivers and contributions
        present = set(pq.read_schema(store_path).names)
        wanted = ["customer_id", "churn_probability", "expected_revenue_12m"]
        store = pd.read_parquet(store_path, columns=[c for c in wanted if c in present])
        snapshot_path = self.settings.snapshot_path
        tables = self.tables()
        if ready and tables is not None and snapshot_path.exists():
            days = sorted({d.date() for d in pd.to_datetime(rows["as_of"])})
            built = build_features(tables, days)
            keys = rows[["customer_id", "as_of"]].assign(
                as_of=pd.to_datetime(rows["as_of"]).astype("datetime64[ns]")
            )
            built = built.assign(as_of=pd.to_datetime(built["as_of"]).astype("datetime64[ns]"))
            inputs.campaign_features = built.merge(
                keys.drop_duplicates(), on=["customer_id", "as_of"]
            )
            snapshot = pd.read_parquet(snapshot_path)
        else:
            snapshot = store[["customer_id"]]
        inputs.current = current_customers(snapshot, store, inputs.facts)
        return inputs

    def closed_loop(
        self, now: datetime | None = None, wait_seconds: float = REPORT_WAIT_SECONDS
    ) -> tuple[ClosedLoop, LoopInputs]:
        """The closed loop (report, review, loop page) as of ``now``.

        Without ``now`` (the API and the UI) it is computed once per input version, the wall
        clock cut to the minute, and kept: repeated and parallel calls share one computation
        (single flight, one at a time, so eight report clients cost one CPU, not eight, and
        memory holds one result). A caller that waits longer than ``wait_seconds`` for a
        computation in progress gets :class:`ReportBusyError` (503) instead of a queue.
        """
        if now is not None:
            inputs = self.loop_inputs(now)
            return closed_loop(inputs), inputs
        moment = self.resolve_now(None, self.history()).replace(second=0, microsecond=0)
        key = self.input_version(moment)
        cached = self._loop
        if cached is not None and cached[0] == key:
            return cached[1]
        if not self._loop_lock.acquire(timeout=wait_seconds):
            raise ReportBusyError(
                "The closed-loop report is being computed for new data; retry in a few seconds."
            )
        try:
            cached = self._loop
            if cached is not None and cached[0] == key:
                return cached[1]
            result = self._compute(key, moment)
            self._loop = (key, result)
            return result
        finally:
            self._loop_lock.release()


def exit_with_parent(parent: int, every_seconds: float = 2.0) -> None:
    """Worker initializer: end this process when the server that started it is gone. A pool
    worker waits on its queue forever, so a server killed without its shutdown (SIGKILL, OOM)
    left a 500 MB report worker behind (seen after a soak: alive an hour later)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_seconds)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


_WORKER: Workflows | None = None  # the worker process's own Workflows, built on first use


def worker_closed_loop(settings: Settings, moment: datetime) -> tuple[ClosedLoop, LoopInputs]:
    """Entry point in the report worker process."""
    global _WORKER
    if _WORKER is None or _WORKER.settings != settings:
        _WORKER = Workflows.from_settings(settings)
    inputs = _WORKER.loop_inputs(moment)
    return closed_loop(inputs), inputs


PENDING_RULES = "rules-pending"


def mark_rules_pending(store_dir: Path) -> Path:
    """``score-all``'s promise to run the rules, written before the store so that a crash
    anywhere between the scoring and the recorded rule run is finished at the next start
    (:func:`recover_rules_run`). Nothing else records that a run is owed."""
    store_dir.mkdir(parents=True, exist_ok=True)
    marker = store_dir / PENDING_RULES
    marker.write_text(datetime.now(UTC).isoformat() + "\n")
    return marker


def clear_rules_pending(store_dir: Path) -> None:
    (store_dir / PENDING_RULES).unlink(missing_ok=True)


def recover_rules_run(settings: Settings) -> RunSummary | None:
    """Run the rules a ``score-all`` was interrupted before running; None when none is owed.

    A run repeated for the same scoring opens nothing twice (open episodes are kept), so
    recovering after a run that was recorded but not yet marked done is harmless.
    """
    if not (settings.store_dir / PENDING_RULES).exists():
        return None
    workflows = Workflows.from_settings(settings)
    try:
        summary = workflows.run()
    finally:
        workflows.close()
    clear_rules_pending(settings.store_dir)
    return summary


def tree_stamp(path: Path) -> tuple[int, int, int]:
    """(files, newest mtime in ns, total bytes) of a file or a folder tree; zeros if absent."""
    try:
        if path.is_file():
            stat = path.stat()
            return (1, stat.st_mtime_ns, stat.st_size)
        files = [p.stat() for p in path.rglob("*") if p.is_file()] if path.is_dir() else []
    except OSError:  # a file replaced while listing: a version no cache will match
        return (-1, time.time_ns(), 0)
    return (len(files), max((f.st_mtime_ns for f in files), default=0),
            sum(f.st_size for f in files))  # fmt: skip


def monthly_churn(tables: RawTables) -> pd.DataFrame | None:
    """Monthly customer churn over the export's full months (``features.metrics``)."""
    from features.engine import observed_until
    from features.metrics import churn_rates
    from features.pipeline import data_start

    start, end = data_start(tables), observed_until(tables) + timedelta(days=1)
    try:
        return churn_rates(tables, start, end)
    except Exception:  # too short an export has no full month: the goal shows no figures
        return None
