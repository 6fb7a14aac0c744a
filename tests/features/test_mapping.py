"""Mapping files: errors name file, line and key; times, money, MRR, identities come out right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from features.importers.mapped import import_mapped, read_manifest
from features.importers.plausibility import minor_units, plausibility_findings
from features.mapping import MappingError, load_mapping

NOW = pd.Timestamp("2030-01-01", tz="UTC")
CUSTOMERS_CSV = "customer_id,created,name\nc1,2024-01-01,One\nc2,2024-01-05,Two\n"
SUBSCRIPTIONS_CSV = (
    "id,customer,start,end,amount\ns1,c1,2024-01-01,,4900\ns2,c2,2024-01-05,2024-06-01,9900\n"
)
BASE = """\
customer_key: customer
currency: usd
export_date: 2024-12-31
timezone: {timezone}
sign_in_events: ["Signed In"]
sources:
  customers:
    path: customers.csv
    table: customers
    columns:
      customer_id: customer_id
      signup_date: created
      name: name
  subscriptions:
    path: subscriptions.csv
    table: subscriptions
    columns:
      subscription_id: id
      customer_id: customer
      start_date: start
      end_date: end
      mrr: {{from: amount, units: minor}}
"""


def write(folder: Path, files: dict[str, str | list[dict[str, Any]]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text("".join(json.dumps(row) + "\n" for row in content), encoding="utf-8")
    return folder


def base_export(tmp_path: Path, mapping: str | None = None, **files: Any) -> Path:
    return write(
        tmp_path / "src",
        {
            "customers.csv": CUSTOMERS_CSV,
            "subscriptions.csv": SUBSCRIPTIONS_CSV,
            "mapping.yaml": mapping or BASE.format(timezone="UTC"),
            **files,
        },
    )


def run(src: Path, out: Path | None = None) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    out = out or src.parent / "out"
    result = import_mapped(src / "mapping.yaml", src, out)
    tables = {p.stem: pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))}
    return tables, result.manifest


# ------------------------------------------------------------------ errors in the mapping file


def test_a_mapping_error_names_the_file_the_line_and_the_key(tmp_path: Path) -> None:
    text = BASE.format(timezone="UTC").replace(
        "    columns:\n      subscription_id", "    colums:\n      subscription_id"
    )
    path = write(tmp_path, {"mapping.yaml": text}) / "mapping.yaml"
    line = text.splitlines().index("    colums:") + 1
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    message = str(caught.value)
    assert f"mapping.yaml, line {line}, sources.subscriptions.colums" in message
    assert "did you mean 'columns'" in message


def test_money_without_a_unit_is_an_error_at_its_line(tmp_path: Path) -> None:
    text = BASE.format(timezone="UTC").replace("{from: amount, units: minor}", "amount")
    path = write(tmp_path, {"mapping.yaml": text}) / "mapping.yaml"
    line = text.splitlines().index("      mrr: amount") + 1
    with pytest.raises(
        MappingError, match=rf"line {line}, sources.subscriptions.columns.mrr: .*units: minor"
    ):
        load_mapping(path)


def test_a_bad_time_zone_and_an_unknown_preset_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, {"mapping.yaml": BASE.format(timezone="Mars/Olympus")}) / "mapping.yaml"
    with pytest.raises(MappingError, match=r"line 4, timezone: .*IANA time zone"):
        load_mapping(path)
    text = BASE.format(timezone="UTC") + "  more:\n    preset: stripe.subscription\n"
    path = write(tmp_path, {"mapping.yaml": text}) / "mapping.yaml"
    with pytest.raises(MappingError, match=r"did you mean 'stripe\.subscriptions'"):
        load_mapping(path)


def test_a_contract_column_that_does_not_exist_names_the_closest(tmp_path: Path) -> None:
    text = BASE.format(timezone="UTC").replace("      end_date: end", "      end_dat: end")
    path = write(tmp_path, {"mapping.yaml": text}) / "mapping.yaml"
    with pytest.raises(
        MappingError, match="has no column 'end_dat' \\(did you mean 'end_date'\\?\\)"
    ):
        load_mapping(path)


def test_an_unknown_source_column_names_the_closest_match(tmp_path: Path) -> None:
    mapping = BASE.format(timezone="UTC").replace("start_date: start", "start_date: strat")
    src = base_export(tmp_path, mapping)
    with pytest.raises(MappingError) as caught:
        run(src)
    message = str(caught.value)
    assert "sources.subscriptions.columns.start_date" in message
    assert "no column 'strat' (did you mean 'start'?)" in message
    assert not (tmp_path / "out").exists()


def test_an_unknown_nested_json_field_names_the_closest_match(tmp_path: Path) -> None:
    events = [{"type": "track", "event": "Signed In", "timestamp": "2024-02-01T10:00:00Z",
               "context": {"groupId": "c1"}}]  # fmt: skip
    mapping = BASE.format(timezone="UTC") + (
        "  events:\n    path: events.jsonl\n    table: events\n    columns:\n"
        "      customer_id: context.grupId\n      timestamp: timestamp\n      event_type: event\n"
    )
    src = base_export(tmp_path, mapping, **{"events.jsonl": events})
    with pytest.raises(
        MappingError, match=r"no field 'grupId' under context.*did you mean 'groupId'"
    ):
        run(src)


# ------------------------------------------------------------------ values


def test_times_with_offsets_unix_seconds_and_milliseconds_and_local_zone_are_utc(
    tmp_path: Path,
) -> None:
    instant = pd.Timestamp("2024-03-01 14:30:00", tz="UTC")
    seconds = int(instant.timestamp())
    events = (
        "account,at,what\n"
        "c1,2024-03-01T16:30:00+02:00,Signed In\n"
        f"c1,{seconds},Signed In\n"
        f"c1,{seconds * 1000},export\n"
        "c2,2024-03-01 15:30:00,export\n"  # no offset: the mapping's zone, Berlin (UTC+1 in March)
        "c2,2024-03-01T14:30:00Z,export\n"
    )
    mapping = BASE.format(timezone="Europe/Berlin") + (
        "  events:\n    path: events.csv\n    table: events\n    columns:\n"
        "      customer_id: account\n      timestamp: at\n      event_type: what\n"
    )
    tables, manifest = run(base_export(tmp_path, mapping, **{"events.csv": events}))
    assert (tables["events"]["timestamp"] == instant).all()
    assert tables["events"]["event_type"].tolist() == [
        "login",
        "login",
        "export",
        "export",
        "export",
    ]
    assert manifest["sign_in_rows"] == 2
    # a date without a time is that calendar day, in the zone of the mapping
    assert tables["customers"]["signup_date"].astype(str).tolist() == ["2024-01-01", "2024-01-05"]


def test_an_unreadable_time_stops_the_import_naming_source_field_and_value(tmp_path: Path) -> None:
    csv = SUBSCRIPTIONS_CSV.replace("2024-01-05,2024-06-01", "31/12/2024,2024-06-01")
    src = base_export(tmp_path, **{"subscriptions.csv": csv})
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(
        MappingError, match=r"subscriptions\.csv.*start -> subscriptions\.start_date.*'31/12/2024'"
    ):
        run(src, out)
    assert (out / "keep.txt").read_text() == "old"  # all or nothing


def test_minor_units_are_divided_by_the_currency_exponent(tmp_path: Path) -> None:
    tables, manifest = run(base_export(tmp_path))
    assert tables["subscriptions"]["mrr"].tolist() == [49.0, 99.0]
    assert manifest["money_units"] == "major" and manifest["currency"] == "usd"
    jpy = BASE.format(timezone="UTC").replace("currency: usd", "currency: jpy")
    tables, _ = run(base_export(tmp_path / "jpy", jpy))
    assert tables["subscriptions"]["mrr"].tolist() == [4900.0, 9900.0]  # yen have no minor unit


def stripe_subscription(**changes: Any) -> dict[str, Any]:
    sub = {
        "id": "sub_1", "customer": "cus_1", "status": "active", "start_date": 1704067200,
        "ended_at": None, "cancel_at": None, "currency": "usd",
        "items": {"data": [
            {"quantity": 2, "price": {"nickname": "pro", "unit_amount": 120000,
                                      "recurring": {"interval": "year", "interval_count": 1}}},
            {"quantity": 1, "price": {"nickname": None, "unit_amount": 1000,
                                      "recurring": {"interval": "month", "interval_count": 1}}},
        ]},
        "discount": {"coupon": {"percent_off": 10, "amount_off": None, "duration": "forever"}},
        "cancellation_details": {"feedback": None},
    }  # fmt: skip
    return {**sub, **changes}


STRIPE_MAPPING = """\
customer_key: stripe_customer
currency: usd
sources:
  customers: {preset: stripe.customers}
  subscriptions: {preset: stripe.subscriptions}
  exits: {preset: stripe.exit_reasons}
"""


def stripe_export(tmp_path: Path, subscriptions: list[dict[str, Any]]) -> Path:
    customer = {"id": "cus_1", "created": 1704067200, "email": "a@acme.com", "name": "Acme"}
    return write(tmp_path / "src", {
        "mapping.yaml": STRIPE_MAPPING,
        "stripe/customers.jsonl": [customer],
        "stripe/subscriptions.jsonl": subscriptions,
    })  # fmt: skip


def test_mrr_sums_items_per_month_times_quantity_less_a_recurring_discount(tmp_path: Path) -> None:
    once = stripe_subscription(
        id="sub_2", discount={"coupon": {"percent_off": 50, "duration": "once"}},
        items={"data": [{"quantity": 3, "price": {"unit_amount": 700, "recurring": {
            "interval": "week", "interval_count": 2}}}]},
    )  # fmt: skip
    draft = stripe_subscription(id="sub_3", status="incomplete_expired")
    tables, _ = run(stripe_export(tmp_path, [stripe_subscription(), once, draft]))
    subs = tables["subscriptions"].set_index("subscription_id")
    # yearly 1,200.00 x 2 seats = 200.00 a month, plus 10.00 monthly, less 10 % forever
    assert subs.loc["sub_1", "mrr"] == pytest.approx((200.0 + 10.0) * 0.9)
    assert subs.loc["sub_1", "plan"] == "pro" and subs.loc["sub_1", "seats"] == 2
    # 7.00 every two weeks x 3, a one-off coupon does not recur
    assert subs.loc["sub_2", "mrr"] == pytest.approx(21.0 / (2 * 12 / 52))
    assert "sub_3" not in subs.index  # never started


def test_a_row_in_another_currency_stops_the_import(tmp_path: Path) -> None:
    src = stripe_export(tmp_path, [stripe_subscription(currency="eur")])
    with pytest.raises(MappingError, match="a row in eur, but the mapping says currency: usd"):
        run(src)


def test_stripe_feedback_becomes_an_exit_reason_with_category_and_avoidable(tmp_path: Path) -> None:
    ended = stripe_subscription(
        ended_at=1717200000,
        cancellation_details={"feedback": "switched_service", "comment": "Went to X"},
    )
    unexplained = stripe_subscription(id="sub_9", ended_at=1717200000)
    tables, _ = run(stripe_export(tmp_path, [ended, unexplained]))
    exits = tables["exit_reasons"]
    assert len(exits) == 1
    row = exits.iloc[0]
    assert (row["category"], row["avoidable"], row["main_reason"], row["improve"]) == (
        "competitor", True, "switched_service", "Went to X")  # fmt: skip
    assert row["churned_at"] == pd.Timestamp(1717200000, unit="s", tz="UTC")
    assert (
        str(tables["subscriptions"].set_index("subscription_id").loc["sub_1", "end_date"])[:10]
        == "2024-06-01"
    )


def test_identities_link_through_a_domain_and_an_ambiguous_one_links_nothing(
    tmp_path: Path,
) -> None:
    mapping = STRIPE_MAPPING + (
        "  orgs: {preset: zendesk.organizations}\n  tickets: {preset: zendesk.tickets}\n"
    )
    customers = [
        {"id": "cus_1", "created": 1704067200, "email": "a@acme.com"},
        {"id": "cus_2", "created": 1704067200, "email": "x@gmail.com"},
        {"id": "cus_3", "created": 1704067200, "email": "y@gmail.com"},
    ]
    orgs = [{"id": 11, "domain_names": ["WWW.Acme.com"]}, {"id": 12, "domain_names": ["gmail.com"]}]
    tickets = [
        {"id": 1, "organization_id": 11, "created_at": "2024-02-01T00:00:00Z", "priority": None,
         "satisfaction_rating": {"score": "bad"}, "metric_set": {"solved_at": None}},
        {"id": 2, "organization_id": 12, "created_at": "2024-02-01T00:00:00Z", "priority": "normal",
         "satisfaction_rating": {"score": "good"}, "metric_set": {"solved_at": None}},
    ]  # fmt: skip
    src = write(tmp_path / "src", {
        "mapping.yaml": mapping, "stripe/customers.jsonl": customers,
        "stripe/subscriptions.jsonl": [stripe_subscription()],
        "zendesk/organizations.jsonl": orgs, "zendesk/tickets.jsonl": tickets,
    })  # fmt: skip
    tables, manifest = run(src)
    ticket = tables["tickets"].iloc[0]
    assert len(tables["tickets"]) == 1
    assert (ticket["customer_id"], ticket["priority"], ticket["csat"]) == ("cus_1", "medium", 1.0)
    assert manifest["ambiguous_identities"][0] == {
        "identity": "domain",
        "value": "gmail.com",
        "customers": 2,
    }
    assert manifest["unmatched_rows"]["tickets"]["rows"] == 1
    assert read_manifest(tmp_path / "out") == manifest


def test_no_sign_in_event_is_warned_with_the_names_that_look_like_one(tmp_path: Path) -> None:
    events = "account,at,what\n" + "".join(
        f"c1,2024-03-0{d}T10:00:00Z,User Logged In\n" for d in range(1, 10)
    )
    mapping = BASE.format(timezone="UTC").replace('["Signed In"]', "[]") + (
        "  events:\n    path: events.csv\n    table: events\n    columns:\n"
        "      customer_id: account\n      timestamp: at\n      event_type: what\n"
    )
    _, manifest = run(base_export(tmp_path, mapping, **{"events.csv": events}))
    assert any("sign_in_events" in w and "'User Logged In'" in w for w in manifest["warnings"])


# ------------------------------------------------------------------ plausibility


def test_cents_look_like_minor_units_and_dollars_do_not() -> None:
    cents = pd.Series([2900.0, 9900, 4900, 19900, 2900] * 5)
    assert minor_units(cents)
    assert not minor_units(cents / 100)
    assert not minor_units(pd.Series([1000.0, 1250, 3333, 1999, 2100] * 5))


def contract_tables(**changes: Any) -> Any:
    """A small valid export: 30 customers, one subscription each, 40 events each."""
    from features.contract import RawTables, parse_tables

    ids = [f"c{i}" for i in range(30)]
    customers = pd.DataFrame({"customer_id": ids, "signup_date": ["2024-01-01"] * 30})
    subscriptions = pd.DataFrame({
        "subscription_id": [f"s{i}" for i in range(30)], "customer_id": ids,
        "start_date": ["2024-01-01"] * 30, "end_date": [None] * 30,
        "mrr": [49.0, 99.0, 199.5] * 10, "plan": ["pro"] * 30,
    })  # fmt: skip
    stamps = pd.date_range("2024-01-01 09:15", "2024-06-30", periods=40, tz="UTC")
    events = pd.DataFrame({
        "customer_id": [c for c in ids for _ in range(40)],
        "timestamp": list(stamps) * 30, "event_type": ["login", "export"] * 600,
    })  # fmt: skip
    frames = {"customers": customers, "subscriptions": subscriptions, "events": events, **changes}
    return parse_tables(RawTables(**frames))


def rules(tables: Any) -> set[str]:
    return {f.rule for f in plausibility_findings(tables, pd.Timestamp("2024-07-01", tz="UTC"))}


def test_a_plausible_export_has_no_plausibility_warning() -> None:
    assert rules(contract_tables()) == set()


def test_implausible_exports_are_warned_about_each_for_its_reason() -> None:
    base = contract_tables()
    subs, events = base.subscriptions, base.events
    cents = subs.assign(mrr=[2900.0, 9900.0, 19900.0] * 10)
    assert rules(contract_tables(subscriptions=cents)) == {"mrr_in_minor_units"}
    huge = subs.assign(mrr=[60_123.5, 75_000.25, 99_999.9] * 10)
    assert rules(contract_tables(subscriptions=huge)) == {"median_mrr_above_bound"}
    midnight = events.assign(timestamp=events["timestamp"].dt.normalize())
    assert rules(contract_tables(events=midnight)) == {"timestamps_all_midnight"}
    later = subs.assign(start_date=["2024-01-01"] * 29 + ["2024-06-20"])
    early = events[events["timestamp"] < "2024-04-01"]
    assert rules(contract_tables(subscriptions=later, events=early)) == {"events_stop_early"}
    one = events.assign(customer_id=["c0"] * 1000 + list(events["customer_id"][1000:]))
    assert rules(contract_tables(events=one)) == {"one_customer_most_events"}
    signed = events.assign(event_type="Signed In")
    assert rules(contract_tables(events=signed)) == {"no_sign_in_events"}


# ------------------------------------------------------------------ churn map suggest


def test_suggest_proposes_presets_and_near_miss_columns(tmp_path: Path) -> None:
    from features.importers.suggest import suggest, suggestion_yaml

    customer = {"id": "cus_1", "created": 1704067200, "email": "a@acme.com", "name": "Acme",
                "address": {"country": "US"}}  # fmt: skip
    src = write(tmp_path / "src", {
        "stripe/customers.jsonl": [customer],
        "stripe/subscriptions.jsonl": [
            stripe_subscription(cancellation_details={"feedback": None, "comment": None})
        ],
        "crm/accounts.csv": "customer_id,signup_dt,plan\nc1,2024-01-01,pro\n",
        "billing/subs.csv": "subscription_id,customer_id,start_date,end_date,mrr,plan\n"
        + "".join(f"s{i},c1,2024-01-01,,{4900 + 100 * (i % 3)},pro\n" for i in range(30)),
    })  # fmt: skip
    guesses = {(g.path, g.preset) for g in suggest(src)}
    assert {("stripe/customers.jsonl", "stripe.customers"),
            ("stripe/subscriptions.jsonl", "stripe.subscriptions"),
            ("stripe/subscriptions.jsonl", "stripe.exit_reasons")} <= guesses  # fmt: skip
    text = suggestion_yaml(suggest(src))
    assert "signup_date: signup_dt   # did you mean this?" in text
    assert "mrr: {from: mrr, units: minor}   # units: minor, from the sample" in text


def test_the_churnsim_preset_maps_its_accounts_and_subscriptions(tmp_path: Path) -> None:
    from features.importers import shared_data_dir

    src = shared_data_dir() / "churnsim_crm6"
    if not (src / "subscriptions.csv").is_file():
        pytest.skip("the shared ChurnSim export is not here")
    mapping = write(tmp_path, {"mapping.yaml": (
        "customer_key: account\ncurrency: usd\nsources:\n"
        "  accounts: {preset: churnsim.accounts}\n"
        "  subscriptions: {preset: churnsim.subscriptions}\n"
    )}) / "mapping.yaml"  # fmt: skip
    result = import_mapped(mapping, src, tmp_path / "out")
    assert result.manifest["row_counts"] == {"customers": 1377, "subscriptions": 24675}
    from features.contract import validate_folder

    _, report = validate_folder(tmp_path / "out", NOW)
    assert report.ok, report.format_errors()


def test_validate_reports_the_other_tables_problems_when_a_required_table_is_missing(
    tmp_path: Path,
) -> None:
    from features.contract import validate_folder

    folder = write(tmp_path / "export", {
        "subscriptions.csv": "subscription_id,customer_id,start_date,end_date,plan\n"
        "s1,c1,2024-01-01,,pro\ns1,c1,2024-02-01,,pro\n",
        "tickets.csv": "ticket_id,customer_id,opened_at,resolved_at,priority\n"
        "t1,c1,2024-01-01T00:00:00Z,,blocker\n",
    })  # fmt: skip
    tables, report = validate_folder(folder, NOW)
    assert tables is None
    rules = {(f.rule, f.table) for f in report.errors}
    expected = {("missing_table", "customers"), ("missing_column", "subscriptions"),
                ("duplicate_id", "subscriptions"), ("unknown_category", "tickets")}  # fmt: skip
    assert expected <= rules
