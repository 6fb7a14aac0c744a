"""What the API serves, held in memory, and how it is replaced without downtime.

:class:`ServingState` is immutable once built: the champion model, the playbook, the snapshot's
encoded features and their scores as NumPy arrays, an id -> row dict, and each customer's
default-k response pre-rendered as JSON bytes around a hole for the deadline (which depends on
the request time). A ``/score`` by id is then a dict lookup and a byte concatenation.

:class:`Runtime` owns the current state. ``reload`` builds a complete new state off to the side
and swaps one reference; requests in flight keep the state they started with. If anything fails
(registry, model files, snapshot, score store, playbook) the old state keeps serving and
``/readyz`` and the log say why. Polling calls ``reload`` when the alias's version or a file's
modification time changes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from churn_settings import Settings
from features.errors import ChurnError
from features.tiers import TIER_NAMES
from serving.errors import NotReadyError, ReloadError, UnknownCustomerError
from serving.live import encode_checked, feature_warnings
from serving.playbook import Playbook, Recommendation, load_playbook
from serving.scoring import Explainer, ScoredBatch, from_contributions, score_matrix, top_drivers
from serving.store import (
    ModelRef,
    Snapshot,
    empty_snapshot,
    read_contributions,
    read_snapshot,
    read_survival,
)
from training.model import ChurnModel

log = logging.getLogger("churn.serving")

_HOLE = "\ue000deadline\ue000"  # private-use characters: cannot occur in catalog text
_HOLE_BYTES = orjson.dumps(_HOLE)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class SourceStamp:
    """What a state was built from; a poll reloads when the current stamp differs."""

    model_version: str
    snapshot: tuple[int, int] | None  # (mtime_ns, size) or None when absent
    score_store: tuple[int, int] | None
    playbook: tuple[int, int] | None


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class ServingState:
    """One model, one snapshot, one playbook: every number the API returns until the next swap."""

    def __init__(
        self,
        model: ChurnModel,
        ref: ModelRef,
        playbook: Playbook,
        snapshot: Snapshot,
        contributions: np.ndarray | None,
        k: int,
        stamp: SourceStamp,
        source_note: str,
        num_threads: int = 0,
        survival: list[dict[str, Any]] | None = None,
        currency: str = "USD",
    ) -> None:
        self.model, self.ref, self.playbook, self.k, self.stamp = model, ref, playbook, k, stamp
        self.model_info = ref.as_dict()
        self.explainer = Explainer(model)
        self.feature_count = len(model.features)
        self.customer_ids, self.as_of, self.X = snapshot.customer_ids, snapshot.as_of, snapshot.X
        self.scored: ScoredBatch = (
            score_matrix(model, snapshot.X, k, num_threads)
            if contributions is None
            else from_contributions(model, contributions, k, snapshot.X)
        )
        self.source_note = source_note
        self.currency = currency  # ISO code every amount is in (Settings.currency_code)
        self.survival = (  # precomputed time-to-churn blocks, row-aligned, or None
            None if survival is None else [block | {"currency": currency} for block in survival]
        )
        self.loaded_at = datetime.now(UTC)
        self.row_of: dict[str, int] = {cid: i for i, cid in enumerate(self.customer_ids)}
        order = np.argsort(self.customer_ids.astype(str), kind="stable")
        self.listing: dict[str | None, np.ndarray] = {None: order}
        for tier in TIER_NAMES:
            self.listing[tier] = order[self.scored.tier[order] == tier]
        self.recommendations = [
            self._recommend(str(self.scored.tier[i]), self.X[i], self.scored.contributions[i])
            for i in range(len(self.scored))
        ]
        self.templates = [self._template(i) for i in range(len(self.scored))]
        self.sorted_values = [
            None if model.categories.get(name) is not None else np.sort(col[~np.isnan(col)])
            for name, col in zip(model.features, self.X.T, strict=True)
        ]
        self._deadline_cache: tuple[int, dict[str, str]] = (-1, {})

    # ----- building blocks -----
    def _recommend(self, tier: str, x: np.ndarray, contributions: np.ndarray) -> Recommendation:
        risky = self.explainer.risk_drivers(x, contributions, self.playbook.refine_with_top_drivers)
        return self.playbook.recommend(tier, risky)

    def _result(
        self,
        customer_id: str | None,
        as_of: str | None,
        x: np.ndarray,
        scored: ScoredBatch,
        i: int,
        top: np.ndarray,
        recommendation: Recommendation,
        deadline: str,
        source: str,
        warnings: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        result = {
            "customer_id": customer_id,
            "churn_probability": float(scored.probability[i]),
            "horizon_days": self.model.horizon_days,
            "health_score": float(scored.health_score[i]),
            "tier": str(scored.tier[i]),
            "top_drivers": self.explainer.drivers(x, scored.contributions[i], top),
            "recommended_action": recommendation.as_dict(deadline),
            "model": self.model_info,
            "as_of": as_of,
            "source": source,
            "warnings": warnings or [],
        }
        if source == "store" and self.survival is not None:
            result["survival"] = self.survival[i]
        return result

    def _template(self, row: int) -> tuple[bytes, bytes]:
        result = self._result(
            str(self.customer_ids[row]), str(self.as_of[row]), self.X[row], self.scored,
            row, self.scored.top[row], self.recommendations[row], _HOLE, "store",
        )  # fmt: skip
        body = orjson.dumps(result)
        prefix, suffix = body.split(_HOLE_BYTES)
        return prefix, suffix

    def deadlines(self, now: datetime) -> dict[str, str]:
        """ISO deadline of each tier's action for a result delivered at ``now`` (cached per
        second: every request in the same second gets the same deadlines)."""
        second = int(now.timestamp())
        cached_second, cached = self._deadline_cache
        if cached_second == second:
            return cached
        moment = datetime.fromtimestamp(second, UTC)
        plays = self.playbook.tiers.items()
        fresh: dict[str, str] = {t: iso_utc(p.sla.deadline(moment)) for t, p in plays}
        self._deadline_cache = (second, fresh)
        return fresh

    # ----- lookups -----
    def row(self, customer_id: str) -> int:
        row = self.row_of.get(customer_id)
        if row is None:
            raise UnknownCustomerError(
                f"No customer '{customer_id}' in the snapshot as of "
                f"{self.as_of_label()}; list known ids with GET /customers."
            )
        return row

    def as_of_label(self) -> str:
        values = sorted(set(self.as_of.tolist()))
        return ", ".join(values[:3]) if values else "(no snapshot loaded)"

    def stored_bytes(self, row: int, k: int, deadlines: dict[str, str]) -> bytes:
        """One stored customer's result as JSON; the default k is pre-rendered."""
        tier = str(self.scored.tier[row])
        if min(k, self.feature_count) == min(self.k, self.feature_count):
            prefix, suffix = self.templates[row]
            return prefix + orjson.dumps(deadlines[tier]) + suffix
        return orjson.dumps(self.stored_result(row, k, deadlines))

    def stored_result(self, row: int, k: int, deadlines: dict[str, str]) -> dict[str, Any]:
        contributions = self.scored.contributions[row : row + 1, : self.feature_count]
        unknown = np.isnan(self.X[row : row + 1]) & self.explainer.silent
        top = top_drivers(contributions, k, unknown)[0]
        return self._result(
            str(self.customer_ids[row]), str(self.as_of[row]), self.X[row], self.scored, row,
            top, self.recommendations[row], deadlines[str(self.scored.tier[row])], "store",
        )  # fmt: skip

    def live_results(
        self,
        features: list[dict[str, Any]],
        customer_ids: list[str | None],
        as_of: list[str | None],
        k: int,
        deadlines: dict[str, str],
        num_threads: int = 1,
    ) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Score checked feature objects now: one matrix, one ``pred_contrib`` call; each
        result warns about the missing values and unseen levels it was scored with."""
        X = encode_checked(self.model, features)
        scored = score_matrix(self.model, X, k, num_threads)
        results = []
        for i in range(len(features)):
            tier = str(scored.tier[i])
            recommendation = self._recommend(tier, X[i], scored.contributions[i])
            result = self._result(
                customer_ids[i], as_of[i], X[i], scored, i, scored.top[i],
                recommendation, deadlines[tier], "live",
                feature_warnings(self.model, features[i]),
            )  # fmt: skip
            results.append(result)
        return results, scored.health_score

    def percentile(self, j: int, value: float) -> float | None:
        """Share of served customers (x 100) with a lower value, counting ties as half."""
        population = self.sorted_values[j]
        if population is None or value != value or population.size == 0:
            return None
        below = np.searchsorted(population, value, side="left")
        upto = np.searchsorted(population, value, side="right")
        return round(float(100.0 * (below + upto) / 2.0 / population.size), 1)

    def explanation(self, row: int) -> dict[str, Any]:
        """Every contribution of one stored customer, strongest first, with population
        percentiles of the values."""
        c = self.scored.contributions[row]
        order = top_drivers(c[None, : self.feature_count], self.feature_count)[0]
        items = []
        for j in order:
            item = self.explainer.driver(int(j), self.X[row, j], c[j])
            item["description"] = self.explainer.info[j].description
            item["percentile"] = self.percentile(int(j), float(self.X[row, j]))
            items.append(item)
        return {
            "customer_id": str(self.customer_ids[row]),
            "as_of": str(self.as_of[row]),
            "churn_probability": float(self.scored.probability[row]),
            "health_score": float(self.scored.health_score[row]),
            "tier": str(self.scored.tier[row]),
            "horizon_days": self.model.horizon_days,
            "calibrated_log_odds": float(c.sum()),
            "base_value": float(c[self.feature_count]),
            "contributions": items,
            "model": self.model_info,
        }

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model_info,
            "as_of": sorted(set(self.as_of.tolist())),
            "customers": len(self.customer_ids),
            "scores_from": self.source_note,
            "loaded_at": iso_utc(self.loaded_at),
        }


@dataclass
class ReloadOutcome:
    outcome: str  # reloaded | unchanged | failed
    detail: str
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def sqlite_identity(uri: str) -> tuple[int, int] | None:
    """(device, inode) of a ``sqlite:///`` registry file: it changes when the file is replaced
    (restored from a backup, copied in by a deploy), not when it is written to."""
    if not uri.startswith("sqlite:///"):
        return None
    try:
        stat = Path(uri.removeprefix("sqlite:///")).stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)


def reopen_registry(uri: str) -> None:
    """Forget MLflow's cached stores and pooled connections for ``uri``: they still read the
    replaced file's old inode, so the server would never see the new file's aliases."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore
    from mlflow.tracking._model_registry.registry import ModelRegistryStoreRegistry
    from mlflow.tracking._tracking_service.registry import TrackingStoreRegistry

    for store in (RegistryStore, TrackingStore):
        with store._engine_map_lock:
            engine = store._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()
    ModelRegistryStoreRegistry._get_store_with_resolved_uri.cache_clear()
    TrackingStoreRegistry._get_store_with_resolved_uri.cache_clear()


class Runtime:
    """Holds the current :class:`ServingState`; reloads are serialised, reads never wait."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tracking_uri = settings.mlflow_tracking_uri
        self.state: ServingState | None = None
        self.last: ReloadOutcome | None = None
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._failed_stamp: SourceStamp | None = None
        self._registry_identity = sqlite_identity(self.tracking_uri)

    def current(self) -> ServingState:
        state = self.state
        if state is None:
            raise NotReadyError(
                "No model is loaded yet"
                + (f": {self.last_error}" if self.last_error else "; try again in a few seconds.")
            )
        return state

    def stamp(self) -> SourceStamp:
        """The alias's current version and the files' modification stamps."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        s = self.settings
        identity = sqlite_identity(self.tracking_uri)
        if identity != self._registry_identity:
            log.info("the registry file %s was replaced: reopening it", self.tracking_uri)
            reopen_registry(self.tracking_uri)
            self._registry_identity = identity
        try:
            version = MlflowClient(tracking_uri=self.tracking_uri).get_model_version_by_alias(
                s.model_name, s.model_alias
            )
        except MlflowException as exc:
            raise ReloadError(
                f"No model '{s.model_name}@{s.model_alias}' in the registry at "
                f"{self.tracking_uri}: train one with `churn train`. ({str(exc)[:200]})"
            ) from None
        return SourceStamp(
            str(version.version),
            file_stamp(s.snapshot_path),
            file_stamp(s.score_store_path),
            file_stamp(s.playbook_path),
        )

    def _load_model(self, version: str) -> tuple[ChurnModel, str]:
        """The registry's model ``version``; the served one is reused if the version is equal."""
        import mlflow

        from training.registry import load_registered

        old = self.state
        if old is not None and old.ref.version == version:
            return old.model, version  # same champion: only the files changed
        mlflow.set_tracking_uri(self.tracking_uri)
        return load_registered(self.settings.model_name, version)

    def build(self, stamp: SourceStamp) -> ServingState:
        s = self.settings
        started = time.perf_counter()
        model, version = self._load_model(stamp.model_version)
        ref = ModelRef(s.model_name, version, s.model_alias)
        playbook = load_playbook(s.playbook_path)
        survival: list[dict[str, Any]] | None = None
        if stamp.snapshot is None:
            snapshot, contributions = empty_snapshot(model), None
            note = f"no snapshot at {s.snapshot_path} (missing): live features only"
        else:
            snapshot = read_snapshot(s.snapshot_path, model)
            contributions, note = read_contributions(s.score_store_path, model, ref, snapshot)
            if contributions is None:
                note = f"scored at load ({note})"
            else:
                survival = read_survival(s.score_store_path, snapshot)
        state = ServingState(
            model, ref, playbook, snapshot, contributions, s.top_k, stamp, note,
            s.scoring_threads, survival, s.currency_code(),
        )  # fmt: skip
        log.info(
            "serving %s v%s (@%s): %d customers as of %s, %s; built in %.1f s",
            ref.name, ref.version, ref.alias, len(snapshot.customer_ids), state.as_of_label(),
            note, time.perf_counter() - started,
        )  # fmt: skip
        return state

    def shrink_problem(self, new: ServingState) -> str | None:
        """Why ``new`` must not replace the served state: it would serve no customers, or
        lose more than ``reload_max_shrink`` of them (a deleted or truncated snapshot looks
        exactly like that); None when the swap is safe."""
        old = self.state
        before, after = (0 if old is None else len(old.customer_ids)), len(new.customer_ids)
        if before == 0 or after >= before:
            return None
        snapshot = self.settings.snapshot_path
        if after == 0:
            why = (
                f"the snapshot {snapshot} is missing"
                if new.stamp.snapshot is None
                else f"the snapshot {snapshot} has no customers"
            )
            return f"{why}; refused to drop all {before:,} served customers"
        share = 1 - after / before
        if share <= self.settings.reload_max_shrink:
            return None
        return (
            f"the snapshot {snapshot} has {after:,} customers, {share:.0%} fewer than the "
            f"{before:,} served (limit CHURN_RELOAD_MAX_SHRINK={self.settings.reload_max_shrink})"
            "; refused"
        )

    def reload(self, force: bool = False, allow_shrink: bool = False) -> ReloadOutcome:
        """Build and swap in a new state if a source changed (or ``force``); never raises.

        A state that would serve no customers, or far fewer (:meth:`shrink_problem`), is not
        swapped in unless ``allow_shrink``. A poll does not rebuild sources that already failed
        with the same stamps: the failure stays reported until a file or the alias changes.
        """
        with self._lock:
            stamp: SourceStamp | None = None
            try:
                stamp = self.stamp()
                if not force and self.state is not None and stamp == self.state.stamp:
                    return ReloadOutcome("unchanged", "model and files unchanged")
                if not force and stamp == self._failed_stamp and self.last is not None:
                    return self.last
                new = self.build(stamp)
                problem = None if allow_shrink else self.shrink_problem(new)
                if problem is not None:
                    raise ReloadError(
                        f"{problem}. Restore the file, or reload with "
                        "POST /admin/reload?allow_shrink=true if the drop is intended."
                    )
                self.state = new
                self.last_error = None
                self._failed_stamp = None
                self.last = ReloadOutcome("reloaded", "; ".join(self._describe()))
            except Exception as exc:  # any failure leaves the old state serving
                message = (
                    str(exc) if isinstance(exc, ChurnError) else f"{type(exc).__name__}: {exc}"
                )
                old = self.state
                keep = (
                    f"still serving {old.ref.name} v{old.ref.version} "
                    f"({len(old.customer_ids):,} customers)"
                    if old is not None
                    else "nothing is served"
                )
                # data problems repeat until a file changes; anything else may be transient
                self._failed_stamp = stamp if isinstance(exc, ChurnError) else None
                self.last_error = f"{message} ({keep})"
                self.last = ReloadOutcome("failed", self.last_error)
                log.error("reload failed, %s: %s", keep, message)
            return self.last

    def readiness_problem(self, today: date) -> str | None:
        """Why the served state must not take traffic that expects stored scores: no customers,
        or a snapshot older than ``ready_max_age_days``; None when ready."""
        state = self.state
        if state is None:
            return None
        if len(state.customer_ids) == 0:
            return (
                f"no customers are served ({state.source_note}): build the snapshot with "
                "`churn snapshot` and the store with `churn score-all`, then reload"
            )
        limit = self.settings.ready_max_age_days
        newest = date.fromisoformat(max(state.as_of.tolist()))
        age = (today - newest).days
        if limit and age > limit:
            return (
                f"the snapshot is {age} days old (as of {newest}; limit "
                f"CHURN_READY_MAX_AGE_DAYS={limit}): refresh it with `churn snapshot` and "
                "`churn score-all`"
            )
        return None

    def _describe(self) -> list[str]:
        state = self.current()
        return [
            f"{state.ref.name} v{state.ref.version} (@{state.ref.alias})",
            f"{len(state.customer_ids)} customers as of {state.as_of_label()}",
            state.source_note,
        ]
