"""The playbook: tiers map to actions with deadlines; driver groups refine; errors name the line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from serving.errors import PlaybookError
from serving.playbook import Sla, load_playbook, parse_playbook
from tests.serving.conftest import REPO_PLAYBOOK

FRIDAY_10 = datetime(2025, 3, 7, 10, 0, tzinfo=UTC)


def test_the_repository_playbook_follows_the_intervention_matrix() -> None:
    playbook = load_playbook(REPO_PLAYBOOK)
    assert playbook.tiers["low"].sla.describe() == "3 working days"
    assert playbook.tiers["medium"].sla.describe() == "24 h"
    assert playbook.tiers["high"].sla.describe() == "4 h"
    assert "expansion" in playbook.tiers["healthy"].action
    assert set(playbook.driver_groups) == {"support", "payment", "usage_decline", "key_user_left"}


def test_working_days_skip_the_weekend_and_keep_the_time_of_day() -> None:
    assert Sla(working_days=3).deadline(FRIDAY_10) == datetime(2025, 3, 12, 10, tzinfo=UTC)
    saturday = datetime(2025, 3, 8, 9, tzinfo=UTC)
    assert Sla(working_days=1).deadline(saturday) == datetime(2025, 3, 10, 9, tzinfo=UTC)


def test_hours_count_round_the_clock() -> None:
    assert Sla(hours=4).deadline(FRIDAY_10) == datetime(2025, 3, 7, 14, tzinfo=UTC)
    assert Sla(hours=24).deadline(FRIDAY_10) == datetime(2025, 3, 8, 10, tzinfo=UTC)


def test_a_risk_raising_support_driver_escalates_the_tickets() -> None:
    playbook = load_playbook(REPO_PLAYBOOK)
    advice = playbook.recommend("high", ["mrr", "open_tickets", "unpaid_invoices"])
    assert advice.driver_group == "support" and advice.driver == "open_tickets"
    body = advice.as_dict("2025-03-07T14:00:00Z")
    assert body["refinement"]["owner"] == "Support lead"
    assert body["sla"] == "4 h"


def test_only_the_strongest_drivers_refine_and_healthy_customers_get_no_focus() -> None:
    playbook = load_playbook(REPO_PLAYBOOK)
    far_down = ["mrr", "seats", "tenure_days", "unpaid_invoices"]
    assert playbook.recommend("medium", far_down).driver_group is None
    assert playbook.recommend("healthy", ["unpaid_invoices"]).driver_group is None
    assert playbook.recommend("low", ["unpaid_invoices"]).driver_group == "payment"


def test_errors_name_the_line_and_key() -> None:
    text = REPO_PLAYBOOK.read_text().replace("sla: {hours: 4}", "sla: {hours: 4, days: 2}")
    text = text.replace("      - overdue_amount", "      - overdue_amt")
    with pytest.raises(PlaybookError) as error:
        parse_playbook(text, "playbook.yaml")
    message = str(error.value)
    lines = text.splitlines()
    line_of = {
        n: i + 1 for i, line in enumerate(lines) for n in ("days: 2", "overdue_amt") if n in line
    }
    assert f"line {line_of['days: 2']}, key tiers.high.sla.days" in message
    assert f"line {line_of['overdue_amt']}, key driver_groups.payment.features.2" in message
    assert "'overdue_amt' not in features/catalog.py" in message


def test_a_missing_tier_or_a_feature_in_two_groups_is_refused() -> None:
    text = REPO_PLAYBOOK.read_text()
    with pytest.raises(PlaybookError, match=r"key tiers.healthy_.\[key\]: Input should be"):
        parse_playbook(text.replace("  healthy:", "  healthy_:"), "p.yaml")
    with pytest.raises(PlaybookError, match="'tickets_30d' is in driver groups"):
        parse_playbook(text.replace("      - overdue_amount", "      - tickets_30d"), "p.yaml")
    with pytest.raises(PlaybookError, match="not valid YAML"):
        parse_playbook("tiers: [", "p.yaml")


def test_an_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "playbook.yaml"
    text = REPO_PLAYBOOK.read_text().replace("sla: {hours: 4}", "sla: {hours: -4}")
    path.write_text(text)
    line = next(i + 1 for i, row in enumerate(text.splitlines()) if "hours: -4" in row)
    with pytest.raises(PlaybookError) as error:
        load_playbook(path)
    assert f"{path}, line {line}, key tiers.high.sla.hours: Input should be greater" in str(
        error.value
    )
