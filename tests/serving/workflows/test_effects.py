"""Who to contact from the ledger: effects per play from randomised hold-outs, and targeting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from serving.workflows.config import RulesConfig, load_rules
from serving.workflows.effects import (
    ALL_PLAYS,
    RISK_FALLBACK,
    campaign_rows,
    contact_plan,
    fit_contact_model,
    play_effects,
    targeting_comparison,
)
from tests.serving.workflows.world import build_world

REPO = Path(__file__).resolve().parents[3]
N, HOLDOUT = 1600, 0.3
BASE_CHURN = 0.30
HELPS, HURTS = 0.18, -0.08  # churn reduction of a call for engaged / for inert customers


def config(**contact: object) -> RulesConfig:
    base = load_rules(REPO / "rules.yaml")
    return base.model_copy(update={"contact": base.contact.model_copy(update=contact)})


def campaign(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A randomised hold-out over N decided alerts of one play: a call lowers churn for
    engaged customers (``logins`` > 10) and raises it for inert ones (sleeping dogs)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"c{i:05d}" for i in range(N)])
    logins = rng.uniform(0, 20, N)
    held = rng.random(N) < HOLDOUT
    effect = np.where(logins > 10, HELPS, HURTS)
    p_churn = BASE_CHURN - np.where(held, 0.0, effect)
    churned = rng.random(N) < p_churn
    opened = pd.Timestamp("2025-03-10")
    outcomes = pd.DataFrame({
        "alert_id": np.arange(N), "rule_id": "health-below-60-7d", "customer_id": ids,
        "opened": opened, "tier": "medium", "holdout": held, "mrr": 100.0,
        "action_type": np.where(held, "none", "call"), "risk_rule": True,
        "outcome": np.where(churned, "churned", "retained"),
    })  # fmt: skip
    daily = pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp("2025-03-01"),
                          "churn_probability": BASE_CHURN})  # fmt: skip
    features = pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp("2025-03-01"),
                             "logins": logins, "plan": np.where(logins > 5, "pro", "starter"),
                             "noise": rng.normal(size=N)})  # fmt: skip
    return outcomes, daily, features, effect


def test_the_hold_out_effect_of_a_play_has_an_interval_around_the_true_effect() -> None:
    outcomes, daily, features, effect = campaign()
    rows = campaign_rows(outcomes, daily)
    assert set(rows["action"]) == {"holdout", "call"} and len(rows) == N
    assert (rows["revenue_12m"] == 1200.0).all(), "a year of the MRR at the alert"
    table = play_effects(rows, features, config())
    call = table[(table["play"] == ALL_PLAYS) & (table["action"] == "call")].iloc[0]
    assert call["status"] == "ok", call["message"]
    assert call["ci_low"] <= effect.mean() <= call["ci_high"]
    assert call["ci_low"] > 0, "a clear average effect is told from zero"


def test_too_few_hold_outs_give_no_figure_and_say_so() -> None:
    outcomes, daily, features, _ = campaign()
    rows = campaign_rows(outcomes, daily)
    table = play_effects(rows, features, config(min_per_arm=N))
    assert (table["status"] == "not_enough_holdout_data").all()
    assert table["effect"].isna().all() and table["ci_low"].isna().all()
    assert table["message"].str.contains("Rank by risk").all()


def test_alerts_nobody_acted_on_are_not_in_the_randomised_campaign() -> None:
    outcomes, daily, _, _ = campaign()
    outcomes.loc[:99, ["holdout", "action_type"]] = [False, "none"]
    rows = campaign_rows(outcomes, daily)
    assert len(rows) == N - 100
    assert not rows["alert_id"].isin(range(100)).any()


def current(features: pd.DataFrame) -> pd.DataFrame:
    return features.drop(columns="as_of").assign(
        churn_probability=BASE_CHURN, mrr=100.0, revenue_12m=1200.0,
        csm_owner=np.where(np.arange(len(features)) % 2, "alice", "bob"),
    )  # fmt: skip


def test_targeting_contacts_the_persuadable_and_never_a_predicted_sleeping_dog() -> None:
    outcomes, daily, features, effect = campaign()
    rows = campaign_rows(outcomes, daily)
    rules = config(budget_per_csm_week=200)
    model = fit_contact_model(rows, features, rules)
    assert model is not None
    plan, note = contact_plan(model, current(features), rules)
    assert "expected revenue saved" in note
    truth = pd.Series(effect, index=features["customer_id"])
    contacted = plan[plan["contact"]]
    assert len(contacted) > 0
    assert (truth[contacted["customer_id"]] > 0).mean() > 0.8, "contacts go to persuadables"
    dogs = plan[plan["reason"].str.startswith("predicted sleeping dog")]
    assert not dogs["contact"].any()
    assert truth[dogs["customer_id"]].mean() < 0, "predicted sleeping dogs are hurt by contact"
    per_csm = plan[plan["contact"] | plan["reason"].str.contains("hold-out")].groupby("csm_owner")
    assert (per_csm.size() <= 200).all(), "the budget holds per CSM"
    compared = targeting_comparison(plan, 200).set_index("ranking")["expected_revenue_saved"]
    assert compared["by revenue saved"] > compared["by risk"]


def test_without_an_effect_model_the_plan_is_the_risk_ranking_and_says_so() -> None:
    _, _, features, _ = campaign()
    people = current(features).assign(churn_probability=np.linspace(0.9, 0.1, N))
    plan, note = contact_plan(None, people, config())
    assert note == RISK_FALLBACK
    assert list(plan["risk_rank"]) == list(range(1, N + 1))
    assert plan["effect"].isna().all() and not plan["contact"].any()
    assert targeting_comparison(plan, 10).empty, "no comparison without effects"


def test_a_young_ledger_reports_not_enough_data_without_building_features(
    tmp_path: Path,
) -> None:
    world = build_world(tmp_path)
    loop, inputs = world.workflows.closed_loop()
    assert inputs.campaign_features is None, "no features are built for a few alerts"
    assert len(loop.play_effects) > 0, "the acted-on alerts' action is listed"
    assert (loop.play_effects["status"] == "not_enough_holdout_data").all()
    assert loop.play_effects["effect"].isna().all(), "never a figure without enough data"


def test_the_contact_page_falls_back_to_risk_and_says_so(tmp_path: Path) -> None:
    from tests.serving.workflows.test_api_ui import signed_in
    from tests.serving.workflows.world import KEY

    world = build_world(tmp_path)
    ids = [f"cust-{i:03d}" for i in range(40)]
    risk = np.linspace(0.9, 0.05, 40)
    store = world.workflows.settings.score_store_path
    pd.DataFrame({"customer_id": ids, "churn_probability": risk}).to_parquet(store)
    loop, _ = world.workflows.closed_loop()
    assert loop.contact_note == RISK_FALLBACK
    active = loop.contact["customer_id"].tolist()
    assert active == [c for c in ids if c in active], "riskiest first"
    client, _ = signed_in(world)
    page = client.get("/ui/workflows/contact")
    assert page.status_code == 200
    assert "Ranked by risk" in page.text and "cust-000" in page.text
    report = client.get("/workflows/report", headers={"X-API-Key": KEY}).json()
    assert report["contact_note"] == RISK_FALLBACK and "contact" not in report
    plan = client.get("/workflows/contact", headers={"X-API-Key": KEY}).json()
    assert plan["note"] == RISK_FALLBACK and plan["count"] == len(active)
    assert [r["customer_id"] for r in plan["items"]] == active
    bob = client.get("/workflows/contact?owner=bob", headers={"X-API-Key": KEY}).json()
    assert bob["count"] > 0 and {r["csm_owner"] for r in bob["items"]} == {"bob"}


def test_costs_given_override_the_defaults_and_an_unknown_action_is_refused() -> None:
    from serving.workflows.config import DEFAULT_COSTS, parse_rules
    from serving.workflows.errors import RulesError

    text = (REPO / "rules.yaml").read_text()
    start = text.index("  costs:\n")
    end = text.index("\n\n", start)
    partial = parse_rules(text[:start] + "  costs:\n    call: {fixed: 80}" + text[end:])
    assert partial.contact.costs["call"].fixed == 80
    assert partial.contact.costs["training"] == DEFAULT_COSTS["training"]
    try:
        parse_rules(text[:start] + "  costs:\n    cal: {fixed: 80}" + text[end:])
    except RulesError as exc:
        assert "cal is not an intervention type" in str(exc) and "line" in str(exc)
    else:
        raise AssertionError("a misspelt action was accepted")
