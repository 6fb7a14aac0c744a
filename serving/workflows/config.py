"""``rules.yaml``: which conditions open an alert, and what each alert does.

The CS team edits ``rules.yaml`` (repository root, ``CHURN_RULES_PATH``) without code: a rule is
a condition ``kind`` from :data:`CONDITION_KINDS` with its parameters, optional filters and a
list of actions. Adding a rule, changing a threshold or a webhook is a YAML change. The file is
validated when it is loaded; every problem names the file, the line and the key, so a typo is
rejected before a single alert is opened. Keys and examples: ``docs/workflows.md``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from features.catalog import Group
from features.tiers import TIER_NAMES, TierName
from features.yaml_config import ConfigFile, Problem
from serving.workflows.errors import RulesError

RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
DEFAULT_TEMPLATES = Path(__file__).with_name("emails")


# ----- conditions --------------------------------------------------------------------------


class _Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthBelow(_Condition):
    """Health score below ``threshold`` on every day of the last ``days`` days (inclusive).

    Between two scorings the last known score holds; a gap longer than ``max_gap_days`` (if set)
    breaks the run, because nobody knows what the score did in between.
    """

    kind: Literal["health_below"]
    threshold: float = Field(ge=0, le=100)
    days: int = Field(ge=1)
    max_gap_days: int | None = Field(None, ge=1)


class TierDropped(_Condition):
    """Latest tier at least ``min_steps`` riskier than the best tier of the last ``window_days``."""

    kind: Literal["tier_dropped"]
    window_days: int = Field(30, ge=1)
    min_steps: int = Field(1, ge=1, le=len(TIER_NAMES) - 1)
    to: list[TierName] | None = Field(None, description="Only drops into these tiers.")


class ScoreDrop(_Condition):
    """Health score at least ``points`` below its highest value of the last ``days`` days."""

    kind: Literal["score_drop"]
    points: float = Field(gt=0, le=100)
    days: int = Field(ge=1)


class ValueAtRisk(_Condition):
    """A customer in the top ``top_share`` by MRR whose latest tier is one of ``tiers``."""

    kind: Literal["value_at_risk"]
    top_share: float = Field(0.1, gt=0, le=1)
    tiers: list[TierName] = Field(default_factory=lambda: _tiers("medium"), min_length=1)


class DaysSinceSignup(_Condition):
    """A lifecycle touch: ``days`` after signup, open for ``window_days`` so a missed daily run
    still catches it; it fires once per customer because signup never moves."""

    kind: Literal["days_since_signup"]
    days: int = Field(ge=0)
    window_days: int = Field(7, ge=1)


class Inactive(_Condition):
    """No product activity, no purchase (paid invoice or new subscription), or neither, for
    ``days`` days; a customer who never had one counts from signup."""

    kind: Literal["inactive"]
    days: int = Field(ge=1)
    source: Literal["activity", "purchase", "any"] = "activity"


Condition = Annotated[
    HealthBelow | TierDropped | ScoreDrop | ValueAtRisk | DaysSinceSignup | Inactive,
    Field(discriminator="kind"),
]
CONDITION_KINDS = (
    "health_below",
    "tier_dropped",
    "score_drop",
    "value_at_risk",
    "days_since_signup",
    "inactive",
)
RISK_KINDS = frozenset({"health_below", "tier_dropped", "score_drop", "value_at_risk"})


def _tiers(*names: TierName) -> list[TierName]:
    return list(names)


# Stated exit category -> the catalog groups whose drivers tell the same story (rules.yaml may
# override): "product" problems show as usage decline, "price" as commercial signals, ...
EXIT_GROUPS: dict[str, list[Group]] = {
    "product": ["usage"],
    "price": ["commercial"],
    "service": ["support"],
    "competitor": ["usage", "marketing"],
    "unavoidable": [],
}


class Only(BaseModel):
    """Filters every rule may add: the customer's latest tier, MRR and segment attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: list[TierName] | None = None
    min_mrr: float | None = Field(None, ge=0)
    segments: dict[
        Literal["industry", "company_size", "region", "plan", "acquisition_channel", "csm_owner"],
        list[str],
    ] = Field(default_factory=dict)


# ----- actions -----------------------------------------------------------------------------


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskAction(_Action):
    """A task for the customer's ``csm_owner``, due by the playbook SLA of its tier."""

    type: Literal["task"]
    title: str = Field(min_length=1, description="Jinja text; sees the alert's fields.")
    sla_tier: TierName | None = Field(None, description="Use this tier's SLA, not the customer's.")


class WebhookAction(_Action):
    """A signed JSON POST to one of the ``webhooks`` endpoints, through the outbox."""

    type: Literal["webhook"]
    endpoint: str


class TagAction(_Action):
    """Segment membership: ``tag`` on the customer; removed when the episode clears if
    ``while_open``."""

    type: Literal["tag"]
    tag: str = Field(pattern=r"^[a-z0-9][a-z0-9_:-]{0,63}$")
    while_open: bool = True


class EmailDraftAction(_Action):
    """An email draft for the CSM from a template in ``email_templates``; never sent by us."""

    type: Literal["email_draft"]
    template: str = Field(pattern=r"^[a-z0-9_-]+$")


Action = Annotated[
    TaskAction | WebhookAction | TagAction | EmailDraftAction, Field(discriminator="type")
]


class RuleSpec(BaseModel):
    """One rule: a condition, optional filters, and what an alert of it does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RuleId
    description: str = Field(min_length=1)
    when: Condition
    only: Only = Field(default_factory=Only)
    holdout: bool = Field(True, description="May this rule's alerts be drawn into the hold-out?")
    enabled: bool = True
    actions: list[Action] = Field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.when.kind

    @property
    def is_risk(self) -> bool:
        """Risk rules (not lifecycle touches) are the ones whose outcome precision means
        'did the customer churn'."""
        return self.when.kind in RISK_KINDS


# ----- deployment-wide sections ------------------------------------------------------------


class WebhookEndpoint(BaseModel):
    """A CRM endpoint; the HMAC secret comes from the environment variable ``secret_env``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrl
    secret_env: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    max_attempts: int = Field(6, ge=1, le=50, description="Dead-letter after this many failures.")
    backoff_seconds: float = Field(30.0, ge=0, description="Wait after the 1st failure; x2 each.")
    max_backoff_seconds: float = Field(3600.0, ge=0)
    timeout_seconds: float = Field(10.0, gt=0)
    events: tuple[
        Literal[
            "alert.opened", "alert.cleared", "task.created", "task.completed",
            "score.tier_changed",
        ],
        ...,
    ] = Field(
        ("alert.opened",),
        description="Events this endpoint receives (serving.workflows.events); alert and task "
        "events only for rules with a webhook action to it.",
    )  # fmt: skip

    def backoff(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based), capped."""
        return min(self.backoff_seconds * 2 ** max(failures - 1, 0), self.max_backoff_seconds)

    def secret(self, environ: dict[str, str] | None = None) -> bytes:
        """The signing secret; an error names the variable to set."""
        value = (os.environ if environ is None else environ).get(self.secret_env, "")
        if not value:
            raise RulesError(
                f"The webhook secret is not set: export {self.secret_env}=<shared secret> "
                "(the same value the receiving CRM verifies with)."
            )
        return value.encode()


class Holdout(BaseModel):
    """A random share of new alerts gets no action, so the effect of acting can be measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(0.0, ge=0, lt=1)
    seed: int = 0


class ActionCost(BaseModel):
    """What one action costs, in the export's currency: ``fixed`` (a CSM's hour, a session)
    plus ``mrr_months`` x the customer's MRR (an offer's discount scales with the bill)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fixed: float = Field(0.0, ge=0)
    mrr_months: float = Field(0.0, ge=0)


DEFAULT_COSTS: dict[str, ActionCost] = {
    "call": ActionCost(fixed=50),
    "meeting": ActionCost(fixed=100),
    "email": ActionCost(fixed=5),
    "training": ActionCost(fixed=250),
    "offer": ActionCost(mrr_months=1),
    "escalation": ActionCost(fixed=150),
    "executive_sponsor": ActionCost(fixed=600),
    "re_onboarding": ActionCost(fixed=300),
    "other": ActionCost(fixed=50),
}


def _default_costs() -> dict[str, ActionCost]:
    return dict(DEFAULT_COSTS)


class Contact(BaseModel):
    """Who to contact: targeting by expected revenue saved from the hold-outs' effects
    (``serving.workflows.effects``). Below ``min_per_arm`` decided alerts, or
    ``min_churners_per_arm`` churners, in an action's arm or the hold-out, an action has no
    effect figure and the list falls back to risk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_per_csm_week: int = Field(10, ge=0, description="Contacts per CSM per week.")
    costs: dict[str, ActionCost] = Field(default_factory=_default_costs)
    min_per_arm: int = Field(100, ge=2)
    min_churners_per_arm: int = Field(10, ge=1)

    @field_validator("costs", mode="after")
    @classmethod
    def _known_actions(cls, costs: dict[str, ActionCost]) -> dict[str, ActionCost]:
        """Costs given override the defaults one action at a time; an unknown action is a typo
        that would price a real action at 0."""
        known = _default_costs()
        unknown = sorted(set(costs) - set(known))
        if unknown:
            raise ValueError(
                f"contact.costs: {', '.join(unknown)} is not an intervention type; use "
                f"{', '.join(known)}"
            )
        return {**known, **costs}


class Goal(BaseModel):
    """A retention goal: monthly customer churn from ``baseline`` to ``target`` in ``months``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Literal["monthly_churn_rate"] = "monthly_churn_rate"
    baseline: float = Field(gt=0, lt=1)
    target: float = Field(gt=0, lt=1)
    start: date
    months: int = Field(ge=1, le=60)


class RulesConfig(BaseModel):
    """The whole ``rules.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_score_age_days: int = Field(
        7, ge=0, description="Risk rules ignore customers not scored for longer than this."
    )
    outcome_days: int = Field(
        90, ge=1, description="An alert's outcome (retained or churned) is read this long after."
    )
    holdout: Holdout = Field(default_factory=Holdout)
    contact: Contact = Field(default_factory=Contact)
    goal: Goal | None = None
    email_templates: Path = DEFAULT_TEMPLATES
    exit_reason_groups: dict[str, list[Group]] = Field(default_factory=lambda: dict(EXIT_GROUPS))
    webhooks: dict[str, WebhookEndpoint] = Field(default_factory=dict)
    rules: list[RuleSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _categories(self) -> RulesConfig:
        # imported here: features.contract pulls in pandera, and the webhook sender process
        # that imports this module should start in well under a second
        from features.contract import EXIT_CATEGORIES

        unknown = sorted(set(self.exit_reason_groups) - set(EXIT_CATEGORIES))
        if unknown:
            raise ValueError(
                f"exit_reason_groups: {', '.join(unknown)} not an exit category; "
                f"use {', '.join(EXIT_CATEGORIES)}"
            )
        return self

    def rule(self, rule_id: str) -> RuleSpec | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def active_rules(self) -> list[RuleSpec]:
        return [r for r in self.rules if r.enabled]


# ----- loading with line numbers -----------------------------------------------------------

RULES = ConfigFile(RulesConfig, "rules file", "docs/workflows.md", RulesError)


def _cross_checks(config: RulesConfig) -> list[Problem]:
    """Problems pydantic cannot see alone: duplicate ids, unknown endpoints and templates."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for i, rule in enumerate(config.rules):
        if rule.id in seen:
            problems.append(
                (("rules", i, "id"), f"duplicate rule id '{rule.id}' (also rule {seen[rule.id]})")
            )
        seen.setdefault(rule.id, i)
        for j, action in enumerate(rule.actions):
            where = ("rules", i, "actions", j)
            if isinstance(action, WebhookAction) and action.endpoint not in config.webhooks:
                known = ", ".join(sorted(config.webhooks)) or "none defined"
                problems.append(
                    (
                        (*where, "endpoint"),
                        f"unknown webhook endpoint '{action.endpoint}' (known: {known}); "
                        "add it under 'webhooks'",
                    )
                )
            if isinstance(action, EmailDraftAction):
                template = config.email_templates / f"{action.template}.txt.j2"
                if not template.is_file():
                    names = sorted(
                        p.name.removesuffix(".txt.j2")
                        for p in config.email_templates.glob("*.txt.j2")
                    )
                    problems.append(
                        (
                            (*where, "template"),
                            f"no template {template}; add the file or use one of "
                            f"{', '.join(names)}",
                        )
                    )
    if config.goal is not None and config.goal.target >= config.goal.baseline:
        problems.append(
            (("goal", "target"), "target must be below baseline (a churn rate to reduce)")
        )
    return problems


def _templates_under(base_dir: Path | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A relative ``email_templates`` is relative to the folder of the rules file."""

    def resolve(raw: dict[str, Any]) -> dict[str, Any]:
        if base_dir is not None and "email_templates" in raw:
            templates = Path(str(raw["email_templates"]))
            raw["email_templates"] = templates if templates.is_absolute() else base_dir / templates
        return raw

    return resolve


def parse_rules(text: str, source: str = "<rules>", base_dir: Path | None = None) -> RulesConfig:
    """Validate rules YAML; every problem names ``source``, the line, the key and the reason.

    ``email_templates`` is resolved against ``base_dir`` (the folder of the file) when relative.
    """
    return RULES.parse(text, source, prepare=_templates_under(base_dir), checks=_cross_checks)


def load_rules(path: Path) -> RulesConfig:
    """Read and validate ``rules.yaml``."""
    path = Path(path)
    return RULES.read(
        path,
        hint="Set CHURN_RULES_PATH to the rules.yaml of the repository.",
        prepare=_templates_under(path.parent),
        checks=_cross_checks,
    )
