"""Request and response bodies of the API, with the examples shown in the OpenAPI docs.

Responses of the hot paths are written as pre-rendered or orjson bytes, not through these models;
the models define the contract (``/openapi.json``) that tests and schemathesis hold the bytes to.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from features.tiers import TierName, tier_rule

EXAMPLE_FEATURES: dict[str, Any] = {
    "events_30d": 116, "active_days_30d": 19, "logins_change_30d": -0.42, "open_tickets": 3,
    "nps_last": None, "mrr": 540.0, "industry": "logistics", "plan": "growth",
    "...": "every other feature of the model, a value or null: GET /v1/model lists each "
           "with its type, unit and levels",
}  # fmt: skip

EXAMPLE_DRIVER: dict[str, Any] = {
    "feature": "logins_change_30d",
    "group": "usage",
    "value": -0.42,
    "contribution": 0.61,
    "direction": "raises risk",
    "sentence": "Logins down 42 % vs the previous 30 days",
}
EXAMPLE_ACTION: dict[str, Any] = {
    "action": "Call or meet the customer and offer one-to-one training; inform the CSM lead.",
    "owner": "CSM (CSM lead informed)",
    "sla": "24 h",
    "deadline": "2025-03-04T10:15:00Z",
    "refinement": {
        "driver_group": "usage_decline",
        "feature": "logins_change_30d",
        "step": "Run a re-onboarding session on the core features the team stopped using.",
        "owner": "CSM (CSM lead informed)",
    },
}
EXAMPLE_MODEL: dict[str, Any] = {"name": "churn-model", "version": "3", "alias": "champion"}
EXAMPLE_RESULT: dict[str, Any] = {
    "customer_id": "C000042",
    "churn_probability": 0.187,
    "horizon_days": 90,
    "health_score": 52.0,
    "tier": "medium",
    "top_drivers": [EXAMPLE_DRIVER],
    "recommended_action": EXAMPLE_ACTION,
    "model": EXAMPLE_MODEL,
    "as_of": "2025-03-01",
    "source": "store",
}


class ScoreRequest(BaseModel):
    """One customer: ``customer_id`` alone looks up the latest snapshot's precomputed score;
    ``features`` scores the values sent now (``customer_id`` is then only echoed back)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"customer_id": "C000042"},
                {"customer_id": "crm-981", "features": EXAMPLE_FEATURES},
            ],
            # the rules of ``_one_way`` in the schema: features, or an id without as_of
            "anyOf": [
                {"required": ["features"], "properties": {"features": {"type": "object"}}},
                {
                    "required": ["customer_id"],
                    "properties": {"customer_id": {"type": "string"}},
                    "not": {"required": ["as_of"], "properties": {"as_of": {"type": "string"}}},
                },
            ],
        },
    )

    customer_id: str | None = Field(
        None, min_length=1, max_length=200, description="Customer id as in the snapshot."
    )
    features: dict[str, Any] | None = Field(
        None,
        description=(
            "Every feature of the served model by name: numbers for numeric features, strings "
            "for categorical ones, null for a missing value. Extra, missing or mistyped fields, "
            "NaN and infinities are rejected with 422 naming each field."
        ),
        json_schema_extra={"additionalProperties": {"type": ["number", "string", "null"]}},
    )
    as_of: date | None = Field(
        None, description="Date the live features were computed for (echoed back)."
    )

    @model_validator(mode="after")
    def _one_way(self) -> ScoreRequest:
        if self.customer_id is None and self.features is None:
            raise ValueError("send 'customer_id' (stored score) or 'features' (live score)")
        if self.as_of is not None and self.features is None:
            raise ValueError("'as_of' goes with 'features'; a stored score has its own as_of")
        return self


class BatchRequest(BaseModel):
    """Up to ``batch_limit`` (default 10 000) requests, each as for ``POST /score``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"items": [{"customer_id": "C000042"}, {"customer_id": "C000043"}]}]
        },
    )

    items: list[ScoreRequest] = Field(description="Results come back in the same order.")


def limited_batch(limit: int) -> type[BatchRequest]:
    """``BatchRequest`` for one deployment's ``batch_limit``: the item count is checked on the
    raw JSON list, before any item is validated (a million items get their 413 at once, not
    after seconds of validation), and declared in the schema as ``maxItems``."""
    from serving.errors import BatchTooLargeError

    def count_first(cls: type[BatchRequest], data: Any) -> Any:
        items = data.get("items") if isinstance(data, dict) else None
        if isinstance(items, list) and len(items) > limit:
            raise BatchTooLargeError(
                f"{len(items):,} items in one batch; the limit is {limit:,}. "
                "Split it into smaller batches."
            )
        return data

    return create_model(
        "BatchRequest",  # the schema keeps its public name
        __base__=BatchRequest,
        __doc__=BatchRequest.__doc__,
        __validators__={
            "count_first": model_validator(mode="before")(classmethod(count_first))  # type: ignore[arg-type,dict-item]
        },
        items=(
            list[ScoreRequest],
            Field(description="Results come back in the same order.", max_length=limit),
        ),
    )


class Driver(BaseModel):
    """One reason behind the score, in the feature catalog's words."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_DRIVER]})

    feature: str
    group: str = Field(description="usage, support, commercial, marketing or profile")
    value: float | str | None = Field(description="The value the model saw; null = missing.")
    contribution: float = Field(
        description="Change of the calibrated log-odds of churning due to this value (TreeSHAP)."
    )
    direction: Literal["raises risk", "lowers risk", "no effect"]
    sentence: str


class Refinement(BaseModel):
    driver_group: str = Field(description="Playbook driver group: support, payment, ...")
    feature: str = Field(description="The risk-raising driver that selected the group.")
    step: str
    owner: str


class RecommendedAction(BaseModel):
    """The playbook's next step for this tier, refined by the strongest drivers."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_ACTION]})

    action: str
    owner: str
    sla: str = Field(description="'4 h', '24 h', '3 working days', ...")
    deadline: datetime = Field(description="UTC; the SLA counted from the time of the response.")
    refinement: Refinement | None


class ModelInfo(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_MODEL]})

    name: str
    version: str
    alias: str


class SurvivalBlock(BaseModel):
    """Time to churn from the hazard model fitted beside the classifier (docs/scoring.md):
    precomputed at ``churn score-all``, so only stored results carry it."""

    survival: dict[str, float] = Field(
        description="Chance of still being a customer after 30, 60, 90, 180 and 365 days "
        "(keys '30d', ...)."
    )
    median_days_to_churn: float | None = Field(
        description="Days until S(t) = 1/2; null when it stays above within the year."
    )
    expected_days_to_churn: float = Field(
        description="Expected days as a customer within the next 365 (restricted mean)."
    )
    p_renew_next: float | None = Field(
        description="Chance of renewing at the next renewal, given the customer reaches it."
    )
    expected_revenue_12m: float = Field(description="MRR x expected months of service in 12.")
    revenue_at_risk_12m: float = Field(description="12 x MRR minus the expected revenue.")
    expected_ltv: float = Field(description="Discounted expected margin, settings' margin/rate.")
    currency: str = Field(description="ISO 4217 code of the amounts above (CHURN_CURRENCY).")


class ScoreResult(BaseModel):
    """A scored customer."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_RESULT]})

    customer_id: str | None
    churn_probability: float = Field(
        ge=0,
        le=1,
        description=(
            "Calibrated probability that the customer churns within `horizon_days` days after "
            "`as_of` (90 for the default model)."
        ),
    )
    horizon_days: int = Field(description="The horizon of churn_probability, in days.")
    health_score: float = Field(
        ge=0, le=100, description="0-100, higher = healthier; see docs/scoring.md."
    )
    tier: TierName = Field(description=tier_rule())
    top_drivers: list[Driver] = Field(description="The k strongest drivers, strongest first.")
    recommended_action: RecommendedAction
    model: ModelInfo
    as_of: date | None = Field(description="Date of the features used (null: live, not given).")
    source: Literal["store", "live"] = Field(
        description="store = precomputed from the latest snapshot; live = the features sent."
    )
    survival: SurvivalBlock | None = Field(
        None, description="Time to churn (stored results of a model with a survival model)."
    )
    warnings: list[ScoreWarning] = Field(
        default_factory=list,
        description="What the live score was computed with that a client should know: each "
        "null input and each categorical level the model never saw (both scored as missing). "
        "Empty for stored scores.",
    )


class ItemError(BaseModel):
    """Why one batch item was not scored; the other items are."""

    code: str = Field(description="unknown_customer, invalid_features, ...")
    message: str = Field(description="What is wrong with the item, naming the field.")
    fields: list[FieldError] = Field(default_factory=list)


class BatchItemError(BaseModel):
    """A batch item that failed, at its place in ``results``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "index": 3,
                    "customer_id": "C999999",
                    "error": {
                        "code": "unknown_customer",
                        "message": "items.3.customer_id: no customer 'C999999' in the snapshot "
                        "as of 2025-03-01",
                        "fields": [{"field": "items.3.customer_id", "problem": "unknown id"}],
                    },
                }
            ]
        }
    )

    index: int = Field(description="Position of the item in the request.")
    customer_id: str | None
    error: ItemError


class BatchResponse(BaseModel):
    """One entry per item, in request order: a score, or an ``error`` object for an item that
    failed (a bad id or bad features never fail the other items)."""

    count: int = Field(description="Items in the request.")
    scored: int = Field(description="Items scored.")
    failed: int = Field(description="Items with an error.")
    results: list[ScoreResult | BatchItemError]


class CustomerPage(BaseModel):
    """A page of the latest scores, ordered by customer id."""

    total: int = Field(description="Customers matching the filter.")
    limit: int
    offset: int
    tier: TierName | None
    updated_since: date | None = Field(None, description="The filter, as sent.")
    items: list[ScoreResult]


class FeatureContribution(Driver):
    description: str
    percentile: float | None = Field(
        description="Share of served customers (0-100) with a lower value; null if categorical "
        "or missing."
    )


class Explanation(BaseModel):
    """Every feature's contribution: ``base_value + sum(contribution) = calibrated_log_odds``
    and ``churn_probability = 1 / (1 + exp(-calibrated_log_odds))``."""

    customer_id: str
    as_of: date
    churn_probability: float = Field(ge=0, le=1)
    health_score: float = Field(ge=0, le=100)
    tier: TierName
    horizon_days: int
    calibrated_log_odds: float
    base_value: float = Field(description="Calibrated log-odds of the average customer.")
    contributions: list[FeatureContribution]
    model: ModelInfo


class ScoreWarning(BaseModel):
    """Scored, but worth knowing: a null input or an unseen categorical level."""

    field: str = Field(description="Dotted path, e.g. features.industry")
    code: Literal["missing_value", "unseen_level"]
    message: str


class FieldError(BaseModel):
    field: str = Field(description="Dotted path, e.g. items.3.features.mrr")
    problem: str


class ErrorBody(BaseModel):
    """Every error: a machine code, a sentence saying what to do, and the bad fields if any."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_features",
                    "message": "1 invalid feature field(s): features.mrr: missing; send null "
                    "if the value is unknown",
                    "fields": [
                        {
                            "field": "features.mrr",
                            "problem": "missing; send null if the value is unknown",
                        }
                    ],
                }
            ]
        }
    )

    error: str
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["ok"]


class LastReload(BaseModel):
    outcome: Literal["reloaded", "unchanged", "failed"]
    detail: str
    at: datetime


class Readiness(BaseModel):
    """ready: a model and a fresh snapshot are served; degraded: they are, but the last reload
    failed or was refused (see ``problem``); not ready: nothing to serve, or it is stale."""

    ready: bool
    status: Literal["ready", "degraded", "not ready"]
    model: ModelInfo | None = None
    as_of: list[date] = Field(default_factory=list)
    customers: int = 0
    scores_from: str | None = None
    loaded_at: datetime | None = None
    last_reload: LastReload | None = None
    problem: str | None = None


class ModelFeature(BaseModel):
    """One input of the served model, as a live request sends it."""

    name: str
    type: Literal["number", "category"] = Field(
        description="number: a JSON number; category: one of `levels` as a string."
    )
    unit: str | None = Field(
        description="From the feature catalog: days, ratio, count, currency / month, ...; null "
        "where the catalog gives none (categories)."
    )
    group: str
    description: str
    levels: list[str] | None = Field(
        description="The levels the model knows (category only); any other is scored as missing "
        "and warned about."
    )
    nullable: bool = Field(True, description="null = unknown: scored as missing, with a warning.")


class TrainedOn(BaseModel):
    until: date | None = Field(description="Last as-of date of the rows the model was fitted on.")
    description: str | None = Field(description="Rows, dates and how the model was fitted.")
    split: str | None = Field(description="How training, validation and test were split.")


class ModelDescription(BaseModel):
    """What a client needs to score live: send `features` with every name below, each a value
    of its type or null (``POST /v1/score``)."""

    model: ModelInfo
    horizon_days: int = Field(description="churn_probability is the chance of churning within it.")
    label: str = Field(description="What counts as churn.")
    trained_on: TrainedOn
    currency: str = Field(description="ISO 4217 code of every amount (MRR, revenue at risk).")
    features: list[ModelFeature] = Field(description="Exactly the inputs the model needs.")
    top_k: int = Field(description="Drivers per result unless ?k= says otherwise.")


class ReloadResult(BaseModel):
    outcome: Literal["reloaded", "unchanged"]
    detail: str
    model: ModelInfo
    as_of: list[date]
    customers: int
