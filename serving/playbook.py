"""The playbook: which intervention a customer-success team runs for a tier and its top drivers.

``playbook.yaml`` (repository root, ``CHURN_PLAYBOOK_PATH``) is edited by the CS team without
code: each tier has an action, an owner and an SLA; driver groups (support, payment, usage
decline, key user left) map catalog features to a focus step that refines the tier's action when
one of the customer's strongest risk-raising drivers belongs to the group.

Deadlines are computed from an explicit ``now`` (UTC): ``hours`` are clock hours, round the clock;
``working_days`` skip Saturdays and Sundays and keep the time of day (Friday 10:00 + 3 working
days = Wednesday 10:00). Public holidays are not known here. See ``docs/scoring.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from features.catalog import BY_NAME
from features.tiers import RISK_TIERS, TIER_NAMES, TierName
from features.yaml_config import ConfigFile, first_repeat
from serving.errors import PlaybookError


def _catalog_feature(name: str) -> str:
    if name not in BY_NAME:
        raise ValueError(f"{name!r} not in features/catalog.py; use a catalog feature name")
    return name


CatalogFeature = Annotated[str, AfterValidator(_catalog_feature)]


class Sla(BaseModel):
    """How soon the action is due: ``hours`` (clock) or ``working_days`` (Mon-Fri), not both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hours: int | None = Field(None, gt=0)
    working_days: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _exactly_one(self) -> Sla:
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("give exactly one of 'hours' or 'working_days'")
        return self

    def describe(self) -> str:
        if self.hours is not None:
            return f"{self.hours} h"
        days = self.working_days or 0
        return f"{days} working day{'s' if days != 1 else ''}"

    def deadline(self, now: datetime) -> datetime:
        """When the action is due if the score is delivered at ``now``."""
        if self.hours is not None:
            return now + timedelta(hours=self.hours)
        due, left = now, self.working_days or 0
        while left:
            due += timedelta(days=1)
            if due.weekday() < 5:
                left -= 1
        return due


class TierPlay(BaseModel):
    """What the team does for every customer of one tier."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    sla: Sla


class DriverGroupPlay(BaseModel):
    """A focus step for customers whose strongest risk drivers include one of ``features``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(min_length=1)
    owner: str | None = None
    features: list[CatalogFeature] = Field(min_length=1)
    tiers: list[TierName] = Field(default_factory=lambda: list(RISK_TIERS))


class Playbook(BaseModel):
    """The whole intervention matrix, validated when loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    refine_with_top_drivers: int = Field(
        3, ge=1, description="How many of the strongest risk-raising drivers may pick a focus."
    )
    tiers: dict[TierName, TierPlay]
    driver_groups: dict[str, DriverGroupPlay] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete(self) -> Playbook:
        missing = [t for t in TIER_NAMES if t not in self.tiers]
        if missing:
            raise ValueError(f"tiers: add an entry for {', '.join(missing)}")
        repeat = first_repeat({g: p.features for g, p in self.driver_groups.items()})
        if repeat is not None:
            name, first, second = repeat
            raise ValueError(
                f"feature '{name}' is in driver groups '{first}' and '{second}'; "
                "list it in one only"
            )
        return self

    def group_of(self) -> dict[str, str]:
        """Catalog feature -> playbook driver group."""
        return {name: group for group, p in self.driver_groups.items() for name in p.features}

    def recommend(self, tier: str, risk_drivers: list[str]) -> Recommendation:
        """The action for ``tier``, refined by the first of ``risk_drivers`` (strongest first,
        risk-raising only) within ``refine_with_top_drivers`` that maps to a driver group."""
        play = self.tiers[tier]  # type: ignore[index]
        groups = self.group_of()
        for name in risk_drivers[: self.refine_with_top_drivers]:
            group = groups.get(name)
            if group is not None and tier in self.driver_groups[group].tiers:
                focus = self.driver_groups[group]
                return Recommendation(tier, play, group, name, focus.step, focus.owner)
        return Recommendation(tier, play, None, None, None, None)


@dataclass(frozen=True)
class Recommendation:
    """A tier's play plus the focus step a driver group adds (``None`` when none applies)."""

    tier: str
    play: TierPlay
    driver_group: str | None
    driver: str | None
    focus: str | None
    focus_owner: str | None

    def as_dict(self, deadline: str) -> dict[str, Any]:
        """The ``recommended_action`` object of a response; ``deadline`` is ISO 8601 UTC."""
        refinement = (
            None
            if self.driver_group is None
            else {
                "driver_group": self.driver_group,
                "feature": self.driver,
                "step": self.focus,
                "owner": self.focus_owner or self.play.owner,
            }
        )
        return {
            "action": self.play.action,
            "owner": self.play.owner,
            "sla": self.play.sla.describe(),
            "deadline": deadline,
            "refinement": refinement,
        }


PLAYBOOK = ConfigFile(Playbook, "playbook", "docs/scoring.md", PlaybookError)


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    """Validate playbook YAML; each error names ``source``, the line and the key."""
    return PLAYBOOK.parse(text, source)


def load_playbook(path: Path) -> Playbook:
    """Read and validate ``playbook.yaml``."""
    return PLAYBOOK.read(
        path, hint="Set CHURN_PLAYBOOK_PATH to the playbook.yaml of the repository."
    )
