"""Checks of what people record (interventions, exit interviews) against what is known.

The request models (``serving.workflows.api``) check shapes; these check facts: the customer
exists, the day is neither in the future nor before signup, an exit interview is for a customer
who has left, and an outcome does not contradict the customer's state. Every problem names its
field, all problems of a request are reported at once (422), and nothing is written.

Pure functions of the record, the customer facts (``inputs.customer_facts`` as of ``today``)
and, for linked alerts and tasks, their customers.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date
from typing import Any, cast

import pandas as pd

from serving.errors import FieldProblem
from serving.workflows.errors import InvalidRecordError

# the outcome that says the customer stayed, and the one that says they left ("improving"
# may follow a churn: a win-back conversation)
STAYED = frozenset({"saved"})
LEFT = "churned"


def _day(value: Any) -> date | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).date()


def _customer(
    customer_id: str, facts: pd.DataFrame, known_ids: Collection[str]
) -> tuple[list[FieldProblem], pd.Series | None]:
    if customer_id in facts.index:
        return [], cast(pd.Series, facts.loc[customer_id])
    if customer_id in known_ids:
        return [], None  # scored, but no export loaded to check its dates against
    return [
        FieldProblem(
            "customer_id",
            f"unknown customer id {customer_id!r}; use an id from GET /customers or the export",
        )
    ], None


def _dated(
    name: str, day: date, today: date, fact: pd.Series | None, what: str
) -> list[FieldProblem]:
    problems = []
    if day > today:
        problems.append(FieldProblem(name, f"{day} is in the future (today is {today}, UTC)"))
    signup = _day(fact["signup_date"]) if fact is not None else None
    if signup is not None and day < signup:
        problems.append(
            FieldProblem(name, f"{day} is before the customer signed up ({signup}); {what}")
        )
    return problems


def check_intervention(
    values: dict[str, Any],
    facts: pd.DataFrame,
    today: date,
    known_ids: Collection[str] = (),
    alert_customer: str | None = None,
    task_customer: str | None = None,
) -> None:
    """Refuse an intervention that cannot have happened (see module doc); ``alert_customer``
    and ``task_customer`` are the customers of the linked alert and task, if any."""
    cid = str(values["customer_id"])
    problems, fact = _customer(cid, facts, known_ids)
    day = _day(values["date"])
    assert day is not None
    problems += _dated("date", day, today, fact, "check the date")
    outcome = values["outcome"]
    if fact is not None:
        churned = _day(fact["churned_at"])
        if outcome == LEFT and bool(fact["active"]):
            problems.append(
                FieldProblem(
                    "outcome",
                    "'churned' but the customer is active (a paid subscription covers today); "
                    "record 'no_change' or 'no_response', or wait for the churn",
                )
            )
        if outcome in STAYED and churned is not None and churned <= day:
            problems.append(
                FieldProblem(
                    "outcome",
                    f"{outcome!r} but the customer churned on {churned}, before {day}; "
                    "record 'churned' or 'no_response'",
                )
            )
    for name, owner in (("alert_id", alert_customer), ("task_id", task_customer)):
        if owner is not None and owner != cid:
            problems.append(FieldProblem(name, f"belongs to customer {owner!r}, not {cid!r}"))
    if problems:
        raise InvalidRecordError(_message("intervention", problems), problems)


def check_exit_interview(
    values: dict[str, Any], facts: pd.DataFrame, today: date, known_ids: Collection[str] = ()
) -> None:
    """Refuse an exit interview for an unknown or still-active customer, or dated in the future
    or before signup."""
    cid = str(values["customer_id"])
    problems, fact = _customer(cid, facts, known_ids)
    if fact is not None and bool(fact["active"]):
        problems.append(
            FieldProblem(
                "customer_id",
                f"{cid!r} is an active customer (a paid subscription covers today); record an "
                "exit interview once they have churned",
            )
        )
    day = _day(values["churned_at"])
    assert day is not None
    problems += _dated("churned_at", day, today, fact, "use the day they left")
    if problems:
        raise InvalidRecordError(_message("exit interview", problems), problems)


def _message(what: str, problems: list[FieldProblem]) -> str:
    listed = "; ".join(f"{p.field}: {p.problem}" for p in problems)
    return f"The {what} was not recorded: {listed}."
