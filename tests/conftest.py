"""Shared, seeded fixtures: one small generated company and its labeled set per test session."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.contract import RawTables, load_valid_tables
from features.engine import build_labeled_set
from features.generator import generate_world, write_world
from features.labels import LabelSpec
from features.pipeline import default_as_of

SMALL_CUSTOMERS = 1500
SMALL_MONTHS = 18


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("world") / "data"
    write_world(generate_world(SMALL_CUSTOMERS, SMALL_MONTHS, seed=3), folder)
    return folder


@pytest.fixture(scope="session")
def small_tables(small_world_dir: Path) -> RawTables:
    tables, _ = load_valid_tables(small_world_dir, now=pd.Timestamp("2030-01-01", tz="UTC"))
    return tables


@pytest.fixture(scope="session")
def small_labeled(small_tables: RawTables) -> pd.DataFrame:
    return build_labeled_set(small_tables, default_as_of(small_tables), LabelSpec())
