"""What "churned" means for a row (customer, as_of): the label options and their edge cases.

The SQL lives in ``definitions/labels_*.sql`` so that DuckDB and Spark compute the same labels.
Edge cases, all covered by tests:

- contractual: a customer churns when its last paid subscription ends and no new one starts within
  ``gap_days`` (a renewal a few days late is not churn). A subscription that starts after a longer
  gap begins a new life, with its own rows and labels. With ``free_is_churn`` a downgrade to a
  free plan (MRR 0) ends the paid life, i.e. counts as churn.
- non-contractual: a customer active before as_of churns when it shows no activity at all during
  the horizon.
- customers who join on or after as_of have no row for that as_of.
- ``lead_days`` shifts the horizon to ``[as_of + lead, as_of + lead + horizon)``, leaving time to
  act; customers who churn during the lead time are dropped (too late to act, not retained either).
- ``label_complete`` is false when the horizon runs past ``observed_until`` (the export date) and
  no churn was seen yet, or a churn was seen less than ``gap_days`` before ``observed_until`` (a
  late renewal could still undo it): such rows are kept for scoring but never used to train or
  evaluate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

LabelKind = Literal["contractual", "noncontractual"]


@dataclass(frozen=True)
class LabelSpec:
    """How to label a row; ``observed_until`` defaults to the latest timestamp in the export."""

    kind: LabelKind = "contractual"
    horizon_days: int = 90
    lead_days: int = 0
    gap_days: int = 7
    free_is_churn: bool = True
    observed_until: date | None = None

    def __post_init__(self) -> None:
        if self.horizon_days <= 0:
            raise ValueError(f"horizon_days must be positive, got {self.horizon_days}")
        if self.lead_days < 0 or self.gap_days < 0:
            raise ValueError("lead_days and gap_days must be >= 0")

    def describe(self) -> str:
        """One sentence for model cards and docs."""
        lead = f" starting {self.lead_days} days after the as-of date" if self.lead_days else ""
        if self.kind == "contractual":
            return (
                f"Churned = the customer's last paid subscription ends within {self.horizon_days} "
                f"days{lead}, with no new subscription within {self.gap_days} days"
                + (" (a downgrade to a free plan counts as churn)." if self.free_is_churn else ".")
            )
        return f"Churned = no activity at all within {self.horizon_days} days{lead}."
