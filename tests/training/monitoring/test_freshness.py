"""A source's silence is judged against its own rhythm."""

from __future__ import annotations

from datetime import date

import pandas as pd

from features.generator import generate_world, scenario
from training.monitoring.freshness import source_freshness


def test_a_stopped_event_type_is_stale_and_quiet_sources_are_not() -> None:
    world = generate_world(300, 6, 2, change=scenario("tracking_outage", 5))
    fresh = source_freshness(world.tables, date(2024, 6, 30)).set_index("source")
    assert fresh.loc["events[feature_use]", "stale"]
    assert fresh.loc["events[feature_use]", "silent_days"] == 30
    assert not fresh.loc["events[login]", "stale"] and not fresh.loc["events", "stale"]
    assert not fresh[fresh.index.isin(["exit_reasons", "nps", "tickets"])]["stale"].any()


def test_a_day_of_silence_is_news_only_for_a_busy_source() -> None:
    world = generate_world(300, 6, 2)
    late = source_freshness(world.tables, date(2024, 7, 3)).set_index("source")
    assert late.loc["events", "stale"]  # written every day, silent for 3
    assert not late.loc["exit_reasons", "stale"]
    assert isinstance(late.loc["events", "last_record"], date | pd.Timestamp)
