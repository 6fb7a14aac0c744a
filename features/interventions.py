"""The true effects of retention actions on the synthetic world: the truth uplift is judged by.

The generator's churn process (:class:`features.generator.ChurnProcess`) draws each month's
churn from an *avoidable* hazard driven by the customer's states (health, a recent drop, a late
payer, the champion gone, ...) and a small unavoidable hazard (acquired, out of business). An
action taken at ``as_of`` shifts the log of the avoidable hazard of every month of the horizon
by an amount that depends on the action and on the driver states at ``as_of``
(:meth:`InterventionProcess.log_hazard_shift`). This gives the four kinds of customers a
campaign meets:

- persuadables: an action that addresses their driver (a call for a declining account, training
  for one using few features, an offer for a small late payer, an executive sponsor where the
  champion left or a severe ticket is stuck) lowers their hazard;
- sure things: a low hazard, so little to save whatever the action;
- lost causes: churn driven by what no action addresses (persistently poor health, unavoidable
  churn), or a customer who has already decided (a high avoidable hazard damps every shift);
- sleeping dogs: healthy but inert customers (using few of the core features of what they pay
  for, past onboarding) whom a contact reminds of the bill (Ascarza, Iyengar & Schleicher, JMR
  2016): their hazard rises.

Sign convention, stated once for the project: **effect = reduction in the churn probability
over the horizon, p0 - p1; positive = the action helps**.

:func:`simulate_campaign` assigns each flagged customer at random to an action or the hold-out
(as the workflows' seeded hold-out does) and draws outcomes coupled to the world's own churn:
the untreated outcome *is* the world's churn in the horizon; a treated churner is saved with
probability ``(p0 - p1) / p0``, a treated stayer lost with ``(p1 - p0) / (1 - p0)``, so the
treated outcome's marginal is exactly ``p1``. Nothing here reads features or models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.errors import ChurnError
from features.generator import World
from features.io import write_parquet

Array = npt.NDArray[np.float64]

CONTROL = "holdout"
"""The ``action`` of a customer drawn into the hold-out (no contact)."""


@dataclass(frozen=True)
class Action:
    """One retention action: its log-hazard shifts per driver state and its cost.

    A shift is added to ``log(avoidable hazard)`` when the driver condition holds (negative =
    the action lowers churn). ``cost`` = ``cost_fixed + cost_mrr_months x MRR`` in the export's
    currency (an offer's discount scales with what the customer pays).
    """

    declining: float = 0.0  # health dropped by more than 0.5 in 3 months, or a decline under way
    low_adoption: float = 0.0  # at most 2 core features past onboarding, or first 6 months
    small_late_payer: float = 0.0  # a late payer with a small account
    recent_downgrade: float = 0.0
    champion_left: float = 0.0
    unresolved_high_ticket: float = 0.0
    inert: float = 0.0  # healthy (health > 0), at most 3 core features, past the first 6 months
    cost_fixed: float = 0.0
    cost_mrr_months: float = 0.0


def _default_actions() -> dict[str, Action]:
    return {
        # a CSM check-in: catches a decline early, helps a little with a stuck ticket, and
        # reminds an inert customer of the bill
        "call": Action(declining=-0.7, unresolved_high_ticket=-0.3, inert=0.6, cost_fixed=50.0),
        # onboarding / training session: adoption; a softer reminder (it shows the value)
        "training": Action(low_adoption=-0.8, declining=-0.2, inert=0.3, cost_fixed=250.0),
        # a discount: price-sensitive small late payers and recent downgraders; costs a month
        "offer": Action(
            small_late_payer=-1.0, recent_downgrade=-0.6, inert=0.3, cost_mrr_months=1.0
        ),
        # an executive sponsor: replaces a lost champion, unblocks escalations; expensive
        "executive_sponsor": Action(
            champion_left=-1.0, unresolved_high_ticket=-0.9, inert=0.6, cost_fixed=600.0
        ),
    }


@dataclass(frozen=True)
class InterventionProcess:
    """The one definition of the true effects of retention actions (see the module docstring)."""

    actions: dict[str, Action] = field(default_factory=_default_actions)
    max_avoidable: float = 0.99  # a shifted avoidable hazard is capped below 1
    # A customer who has decided to leave is hard to move (Ascarza, JMR 2018: the riskiest were
    # not the most responsive): every shift is scaled by 1 / (1 + (a / decided) ** 2), a = the
    # avoidable monthly hazard at as_of; at a = decided the action has half its effect.
    decided: float = 0.15

    def __post_init__(self) -> None:
        if CONTROL in self.actions or not self.actions:
            raise ChurnError(
                f"InterventionProcess.actions needs at least one action and none named {CONTROL!r}"
            )

    def conditions(self, state: pd.DataFrame) -> dict[str, npt.NDArray[np.bool_]]:
        """The driver conditions an action may address, from truth columns (``truth_hazard``)."""

        def flag(name: str) -> npt.NDArray[np.bool_]:
            return state[name].to_numpy(np.float64) > 0

        early = flag("early_tenure")
        return {
            "declining": (state["health_drop"].to_numpy(np.float64) > 0.5) | flag("declining"),
            "low_adoption": flag("low_breadth") | early,
            "small_late_payer": flag("late_payer") & flag("small_account"),
            "recent_downgrade": flag("recent_downgrade"),
            "champion_left": flag("champion_left"),
            "unresolved_high_ticket": flag("unresolved_high_ticket"),
            "inert": (state["health"].to_numpy(np.float64) > 0)
            & (state["core_breadth"].to_numpy(np.float64) <= 3)
            & ~early,
        }

    def log_hazard_shift(self, action: str, state: pd.DataFrame) -> Array:
        """Shift of ``log(avoidable hazard)`` for ``action`` given each row's driver states and
        avoidable hazard (``truth_hazard`` columns at as_of)."""
        spec = self.actions[action]
        shift = np.zeros(len(state))
        for name, holds in self.conditions(state).items():
            shift += getattr(spec, name) * holds
        avoidable = state["avoidable_hazard"].to_numpy(np.float64)
        return shift / (1.0 + (avoidable / self.decided) ** 2)

    def cost(self, action: str, mrr: Array) -> Array:
        spec = self.actions[action]
        return spec.cost_fixed + spec.cost_mrr_months * np.asarray(mrr, dtype=np.float64)


DEFAULT_INTERVENTIONS = InterventionProcess()


def _horizon_months(as_of: date, horizon_months: int) -> list[date]:
    if as_of.day != 1:
        raise ChurnError(
            f"as_of must be the first day of a month (the truth is monthly), got {as_of}"
        )
    if horizon_months < 1:
        raise ChurnError(f"horizon_months must be >= 1, got {horizon_months}")
    first = pd.Timestamp(as_of)
    return [(first + pd.DateOffset(months=k)).date() for k in range(horizon_months)]


def _mrr_at(world: World, as_of: date, customer_ids: pd.Index) -> Array:
    """MRR of the subscription open on ``as_of`` (0 if none), from the export itself."""
    subs = world.tables.subscriptions
    start = pd.to_datetime(subs["start_date"])
    end = pd.to_datetime(subs["end_date"])
    day = pd.Timestamp(as_of)
    open_now = (start <= day) & (end.isna() | (end > day))
    mrr = subs.loc[open_now].groupby("customer_id")["mrr"].sum()
    return mrr.reindex(customer_ids).fillna(0.0).to_numpy(np.float64)


def true_effects(
    world: World,
    as_of: date,
    customer_ids: list[str],
    horizon_months: int = 3,
    process: InterventionProcess = DEFAULT_INTERVENTIONS,
) -> pd.DataFrame:
    """Every customer's true churn probability untreated and under every action.

    One row per customer and action: ``customer_id, as_of, action, p0, p1, true_effect
    (= p0 - p1), cost, mrr, churned`` where ``churned`` is the world's own churn in the horizon
    (the untreated outcome). p0 and p1 are ``1 - prod_m (1 - hazard_m)`` over the horizon's
    months, p1 with the avoidable hazard times ``exp(shift)``. The customers must be at risk
    (active) in the month starting ``as_of``.
    """
    months = _horizon_months(as_of, horizon_months)
    truth = world.truth_hazard
    ids = pd.Index(customer_ids, dtype=object)
    if ids.has_duplicates:
        raise ChurnError("true_effects: customer_ids holds duplicates; pass each customer once")
    rows = truth[truth["month"].isin(months) & truth["customer_id"].isin(ids)]
    if rows.empty or max(months) > max(truth["month"]):
        raise ChurnError(
            f"true_effects: the horizon {months[0]}..{months[-1]} is not inside the simulated "
            "period; pick an earlier as_of or a shorter horizon"
        )
    first = rows[rows["month"] == months[0]].set_index("customer_id").reindex(ids)
    inactive = ids[~first["at_risk"].fillna(False).astype(bool).to_numpy()]
    if len(inactive):
        raise ChurnError(
            f"true_effects: {len(inactive)} customers are not active on {as_of} "
            f"(e.g. {', '.join(map(str, inactive[:3]))}); flag active customers only"
        )
    row = ids.get_indexer(pd.Index(rows["customer_id"]))
    hazard = rows["hazard"].to_numpy(np.float64)
    avoidable = rows["avoidable_hazard"].to_numpy(np.float64)
    unavoidable = 1.0 - (1.0 - hazard) / (1.0 - avoidable)  # the process's unavoidable hazard
    churned = np.zeros(len(ids), dtype=bool)
    np.logical_or.at(churned, row, rows["churned"].to_numpy(bool) & rows["at_risk"].to_numpy(bool))
    log_keep0 = np.zeros(len(ids))
    np.add.at(log_keep0, row, np.log1p(-hazard))
    p0 = -np.expm1(log_keep0)
    mrr = _mrr_at(world, as_of, ids)
    frames = []
    for action in process.actions:
        shift = process.log_hazard_shift(action, first)  # decided on the states at as_of
        shifted = np.minimum(avoidable * np.exp(shift[row]), process.max_avoidable)
        log_keep1 = np.zeros(len(ids))
        np.add.at(log_keep1, row, np.log1p(-shifted) + np.log1p(-unavoidable))
        p1 = -np.expm1(log_keep1)
        frames.append(
            pd.DataFrame(
                {
                    "customer_id": ids.to_numpy(),
                    "as_of": as_of,
                    "action": action,
                    "p0": p0,
                    "p1": p1,
                    "true_effect": p0 - p1,
                    "cost": process.cost(action, mrr),
                    "mrr": mrr,
                    "churned": churned,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def assign_actions(
    customer_ids: list[str], actions: list[str], holdout_share: float, seed: int
) -> npt.NDArray[np.object_]:
    """A seeded random assignment: ``holdout_share`` to the hold-out, the rest evenly (in
    expectation) over ``actions``. Randomised, so every customer's propensity is known."""
    if not 0.0 < holdout_share < 1.0:
        raise ChurnError(f"holdout_share must lie in (0, 1), got {holdout_share}")
    rng = np.random.default_rng(seed)
    n = len(customer_ids)
    share = (1.0 - holdout_share) / len(actions)
    probs = np.array([holdout_share] + [share] * len(actions))
    arm = rng.choice(len(probs), size=n, p=probs)
    return np.asarray([CONTROL, *actions], dtype=object)[arm]


def simulate_campaign(
    world: World,
    as_of: date,
    flagged_ids: list[str],
    holdout_share: float,
    seed: int,
    horizon_months: int = 3,
    process: InterventionProcess = DEFAULT_INTERVENTIONS,
    effects: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Randomise the flagged customers over the actions and the hold-out; draw the outcomes.

    Returns one row per flagged customer: ``customer_id, as_of, action, treated, p0, p1,
    true_effect, cost, churned`` where p0/p1/true_effect/cost are those of the action received
    (for the hold-out p1 = p0, effect 0, cost 0) and ``churned`` is the observed outcome in the
    horizon. The untreated outcome equals the world's churn; a treated outcome is coupled to it
    (see the module docstring) so its marginal is exactly p1. ``effects`` (from
    :func:`true_effects`) may be passed to reuse it across replications of the assignment.
    """
    if effects is None:
        effects = true_effects(world, as_of, flagged_ids, horizon_months, process)
    actions = list(process.actions)
    arm = assign_actions(flagged_ids, actions, holdout_share, seed)
    wide = effects.set_index(["customer_id", "action"])
    ids = pd.Index(flagged_ids, dtype=object)
    base = effects[effects["action"] == actions[0]].set_index("customer_id").reindex(ids)
    p0 = base["p0"].to_numpy(np.float64)
    untreated = base["churned"].to_numpy(bool)
    treated = arm != CONTROL
    keys = pd.MultiIndex.from_arrays([ids.to_numpy()[treated], arm[treated]])
    p1 = p0.copy()
    cost = np.zeros(len(ids))
    p1[treated] = wide.loc[keys, "p1"].to_numpy(np.float64)
    cost[treated] = wide.loc[keys, "cost"].to_numpy(np.float64)
    u = np.random.default_rng([seed, 1]).random(len(ids))  # coupling draws, apart from the arms
    with np.errstate(divide="ignore", invalid="ignore"):
        saved = untreated & (p1 < p0) & (u < (p0 - p1) / p0)
        lost = ~untreated & (p1 > p0) & (u < (p1 - p0) / (1.0 - p0))
    outcome = np.where(treated, (untreated & ~saved) | lost, untreated)
    return pd.DataFrame(
        {
            "customer_id": ids.to_numpy(),
            "as_of": as_of,
            "action": pd.array(arm, dtype="string"),
            "treated": treated,
            "p0": p0,
            "p1": p1,
            "true_effect": p0 - p1,
            "cost": cost,
            "churned": outcome.astype(bool),
        }
    )


def write_interventions(campaign: pd.DataFrame, effects: pd.DataFrame, out: Path) -> Path:
    """Write ``out/truth/interventions.parquet`` (the campaign) and
    ``out/truth/intervention_effects.parquet`` (every action's true effect per customer)."""
    truth = Path(out) / "truth"
    truth.mkdir(parents=True, exist_ok=True)
    write_parquet(effects, truth / "intervention_effects.parquet")
    return write_parquet(campaign, truth / "interventions.parquet")
