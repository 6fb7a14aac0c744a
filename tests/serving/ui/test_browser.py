"""The manager's week in a real Chromium: sign in, triage by revenue at risk, open a customer,
export the view, read the retention analytics."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.serving.ui.conftest import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ui")]

ANALYTICS_CHARTS = (
    "churn_by_month", "nrr", "cohorts", "churn_by_industry", "churn_by_company_size",
    "churn_by_region", "churn_by_plan", "churn_by_acquisition_channel", "churn_by_lifecycle",
    "channel_mix", "churn_by_csm", "exit_reasons", "value_segments", "score_distribution",
    "calibration",
)  # fmt: skip


def revenue_cells(tab: Any) -> list[float]:
    values = tab.locator("tbody tr td[data-value]").evaluate_all(
        "cells => cells.map(c => Number(c.dataset.value))"
    )
    return [float(v) for v in values]


def test_pages_need_sign_in_and_a_wrong_key_is_refused(page: Any) -> None:
    page.goto("/ui/analytics")
    assert "/ui/signin" in page.url
    page.fill("#api_key", "not-a-key")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text().startswith("That key is not")
    page.fill("#api_key", "ui-test-key")
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/analytics")


def test_list_is_sorted_by_revenue_at_risk_and_re_sorts_on_click(page: Any) -> None:
    sign_in(page)
    values = revenue_cells(page)
    assert len(values) == 50 and values == sorted(values, reverse=True)
    page.click("th a[data-sort=churn_probability]")
    page.wait_for_url("**sort=churn_probability**")
    page.click("th a[data-sort=revenue_at_risk]")
    page.wait_for_url(lambda url: "sort=" not in url)  # the default sort leaves the URL bare
    values = revenue_cells(page)
    assert values == sorted(values, reverse=True) and values[0] > 0


def test_filter_to_high_risk_shows_only_high_risk_customers(page: Any) -> None:
    sign_in(page)
    chip = page.locator(".tier-filters a[data-tier=high]")
    expected = int(chip.locator("b").inner_text().replace(",", ""))
    assert expected > 0
    chip.click()
    page.wait_for_url("**tier=high**")
    tiers = page.locator("tbody tr").evaluate_all("rows => rows.map(r => r.dataset.tier)")
    assert tiers and set(tiers) == {"high"}
    assert f"{expected:,} customers in this view" in page.locator(".page-head").inner_text()


def test_customer_page_shows_the_waterfall_the_action_and_what_moved(page: Any) -> None:
    sign_in(page)
    first = page.locator("tbody tr").first
    customer_id = first.get_attribute("data-customer")
    first.locator("td.who a").click()
    page.wait_for_url(f"**/ui/customers/{customer_id}")
    waterfall = page.locator("#chart-waterfall[data-rendered=true]")
    waterfall.wait_for()
    assert int(waterfall.get_attribute("data-points") or 0) >= 4
    assert page.locator("#chart-waterfall .waterfalllayer .point").count() >= 4
    drivers = page.locator("ol.driver-list li")
    assert drivers.count() >= 3 and drivers.first.locator(".sentence").inner_text()
    action = page.locator("#action").inner_text()
    assert "Owner" in action and "Due by" in action and "UTC" in action
    assert page.locator("#moved .moved-headline").inner_text().startswith("Health score")
    page.locator("#chart-history[data-rendered=true]").wait_for()
    assert int(page.locator("#chart-history").get_attribute("data-points") or 0) >= 2
    assert page.locator("#trends .chart").count() == 4


def test_export_csv_holds_every_row_of_the_filtered_view_in_its_order(page: Any) -> None:
    sign_in(page)
    page.locator(".tier-filters a[data-tier=medium]").click()
    page.wait_for_url("**tier=medium**")
    head = page.locator(".page-head").inner_text()
    total = int(head.split(" customers in this view")[0].split()[-1].replace(",", ""))
    with page.expect_download() as download:
        page.click("#export-csv")
    path = download.value.path()
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert len(rows) == total
    assert {r["tier"] for r in rows} == {"medium"}
    assert {r["currency"] for r in rows} == {"USD"}  # the unit of every amount column
    risk = [float(r["revenue_at_risk"]) for r in rows]
    assert risk == sorted(risk, reverse=True)
    assert {"customer_id", "name", "health_score", "churn_probability", "top_driver",
            "csm_owner", "action", "value_segment"} <= set(rows[0])  # fmt: skip


def test_analytics_draws_every_chart_with_data(page: Any) -> None:
    sign_in(page)
    page.click("nav a[href='/ui/analytics']")
    page.wait_for_url("**/ui/analytics")
    page.wait_for_function(
        "() => [...document.querySelectorAll('div.chart')].every(c => c.dataset.rendered)",
        timeout=60_000,
    )
    drawn = page.locator("div.chart").evaluate_all(
        "els => Object.fromEntries(els.map(e => [e.dataset.chart, Number(e.dataset.points)]))"
    )
    missing = [key for key in ANALYTICS_CHARTS if key not in drawn]
    assert not missing, f"charts not on the page: {missing}"
    empty = [key for key, points in drawn.items() if points <= 0]
    assert not empty, f"charts without data: {empty}"
    assert page.locator(".kpi").count() >= 6
    assert page.locator(".card.warn").count() == 0


def test_sign_out_ends_the_session(page: Any) -> None:
    sign_in(page)
    page.click(".signout button")
    page.wait_for_url("**/ui/signin")
    page.goto("/ui/")
    assert "/ui/signin" in page.url
