"""One base for our errors, so the CLI and the API map them to exit and HTTP codes in one place."""

from __future__ import annotations


class ChurnError(Exception):
    """An error a user can act on: the message says what is wrong, where, and what to do."""


class ContractError(ChurnError):
    """Raw data breaks the data contract (see docs/data-contract.md)."""


class InsufficientDataError(ChurnError):
    """The data is too small or has too few churners for the requested step."""
