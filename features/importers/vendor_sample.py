"""A small SaaS company's vendor exports (Stripe, Segment, Zendesk, HubSpot), with its truth.

Written by us from each vendor's documented object format (no real customer data): Stripe
Customer / Subscription / Invoice objects as JSON lines (Unix seconds, amounts in cents), Segment
track calls (ISO 8601, some with a UTC offset, plus identify calls to be skipped), Zendesk
Organization / Ticket objects (integer ids, good/bad satisfaction), and a HubSpot companies CSV
(domains written as ``www.`` or ``https://``). ``mapping.yaml`` beside the exports maps them with
the built-in presets; ``truth/`` holds what the import must recover: each subscription's MRR in
dollars, each customer's churn date and exit reason, every ticket's customer, times and CSAT.

Churn is driven by a hidden health score that also drives sign-ins and tickets, with usage fading
in the two months before a customer leaves, so a model has something to find. Seeded: the same
seed writes the same bytes.

    python -m features.importers.vendor_sample --out exports/acme --customers 400
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.io import atomic_path

PLANS = {  # name -> (monthly price per unit in cents, per seat)
    "starter": (2900, False),
    "pro": (1500, True),
    "business": (29900, False),
}
ADDON_CENTS = 2000  # "extra storage", a second subscription item on some business plans
FEEDBACK = {  # Stripe cancellation_details.feedback -> (share, contract category, avoidable)
    "too_expensive": (0.30, "price", True),
    "missing_features": (0.20, "product", True),
    "switched_service": (0.15, "competitor", True),
    "unused": (0.15, "product", True),
    "customer_service": (0.10, "service", True),
    "other": (0.10, "unavoidable", None),
}
INDUSTRIES = ("software", "retail", "health", "finance", "education", "media")
COUNTRIES = ("US", "GB", "DE", "FR", "CA", "AU")
PRIORITIES = ("low", "normal", "high", "urgent", None)  # Zendesk's, unset on some tickets
FREE_MAIL = "gmail.com"  # a few customers bill to a free-mail address: their domain links nothing
FEATURES = ("Reports", "Dashboards", "Exports", "Alerts")

MAPPING = """\
# Maps the sample exports onto the data contract with the built-in presets
# (docs/bring-your-own-data.md explains every key).
customer_key: stripe_customer      # customers.customer_id is the Stripe customer id
currency: usd
export_date: {export_date}
timezone: UTC                      # times without an offset are UTC
sign_in_events: ["Signed In"]      # these event names count as logins

sources:
  stripe_customers:
    preset: stripe.customers
    identity:
      account: metadata.account_id # the app's account id, which Segment sends as groupId
  stripe_subscriptions: {{preset: stripe.subscriptions}}
  stripe_invoices: {{preset: stripe.invoices}}
  stripe_exit_reasons: {{preset: stripe.exit_reasons}}
  segment:
    preset: segment.tracks
    columns:
      feature: properties.feature
  zendesk_organizations: {{preset: zendesk.organizations}}
  zendesk_tickets: {{preset: zendesk.tickets}}
  hubspot: {{preset: hubspot.companies}}
"""


@dataclass(frozen=True)
class VendorSample:
    """The exports (one list of JSON objects or one frame per file) and the truth."""

    files: dict[str, list[dict[str, Any]] | pd.DataFrame]
    truth: dict[str, pd.DataFrame]
    export_date: date


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _iso(moment: datetime, offset_hours: int = 0) -> str:
    if offset_hours:
        local = moment.astimezone(timezone(timedelta(hours=offset_hours)))
        return local.isoformat(timespec="milliseconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _id(rng: np.random.Generator, prefix: str) -> str:
    return f"{prefix}{int(rng.integers(2**62)):016x}"


def generate_vendor_sample(
    customers: int = 400, months: int = 24, seed: int = 7, start: date = date(2024, 1, 1)
) -> VendorSample:
    """Simulate ``customers`` accounts over ``months`` months and write them as vendors would."""
    rng = np.random.default_rng(seed)
    t0 = datetime(start.year, start.month, start.day, tzinfo=UTC)
    end = t0 + timedelta(days=round(months * 30.44))
    export_date = end.date()
    stripe_customers, subscriptions, invoices, tracks = [], [], [], []
    organizations, tickets, companies = [], [], []
    truth_subs, truth_customers, truth_exits, truth_tickets = [], [], [], []
    ticket_id, org_base, company_base = 10_000, 360_000_000_000, 9_000_000_000
    for i in range(customers):
        health = float(rng.normal())
        account = f"acct_{i:04d}"
        cus = _id(rng, "cus_")
        domain = f"company-{i:04d}.com"
        free_mail = i % 97 == 5
        email = f"billing{i}@{FREE_MAIL}" if free_mail else f"billing@{domain}"
        created = t0 + timedelta(days=float(rng.uniform(-120, months * 30.44 * 0.75)))
        created = created.replace(microsecond=0)
        plan = str(rng.choice(list(PLANS), p=[0.45, 0.4, 0.15]))
        seats = int(rng.integers(2, 25)) if PLANS[plan][1] else 1
        yearly = bool(rng.random() < 0.25)
        addon = plan == "business" and bool(rng.random() < 0.5)
        coupon: dict[str, Any] | None = None
        roll = rng.random()
        if roll < 0.15:
            coupon = {
                "id": "LAUNCH20",
                "percent_off": 20.0,
                "amount_off": None,
                "duration": "forever",
            }
        elif roll < 0.2:
            coupon = {
                "id": "WELCOME10",
                "percent_off": None,
                "amount_off": 1000,
                "duration": "once",
            }
        # churn: monthly hazard from health; usage fades in the last two months
        hazard = 0.045 * float(np.exp(-0.9 * health))
        life_days = float(rng.exponential(30.44 / hazard))
        churned = created + timedelta(days=life_days)
        churn_at = churned.replace(microsecond=0) if churned < end else None
        stripe_customers.append(
            {
                "id": cus,
                "object": "customer",
                "created": _unix(created),
                "email": email,
                "name": f"Company {i:04d}",
                "currency": "usd",
                "livemode": False,
                "address": {"country": str(rng.choice(COUNTRIES)), "city": None},
                "metadata": {"account_id": account},
            }
        )
        # subscriptions: a monthly payer may move to yearly billing once (a new subscription)
        switch = None
        if not yearly and rng.random() < 0.12:
            candidate = created + timedelta(days=float(rng.uniform(60, 300)))
            if candidate < (churn_at or end):
                switch = candidate.replace(microsecond=0)
        periods = (
            [(created, switch, yearly)]
            if switch is None
            else [(created, switch, False), (switch, None, True)]
        )
        feedback = None
        if churn_at is not None:
            names = list(FEEDBACK)
            feedback = (
                str(rng.choice(names, p=[FEEDBACK[n][0] for n in names]))
                if rng.random() < 0.85
                else None
            )
        for k, (begin, stop, is_yearly) in enumerate(periods):
            last = k == len(periods) - 1
            ended = churn_at if last else stop
            sub_id = _id(rng, "sub_")
            unit, _ = PLANS[plan]
            interval = "year" if is_yearly else "month"
            price_unit = unit * 10 if is_yearly else unit  # two months free on yearly
            items = [
                {
                    "id": _id(rng, "si_"),
                    "object": "subscription_item",
                    "quantity": seats,
                    "price": {
                        "id": _id(rng, "price_"),
                        "object": "price",
                        "nickname": plan,
                        "unit_amount": price_unit,
                        "currency": "usd",
                        "recurring": {"interval": interval, "interval_count": 1},
                    },
                }
            ]
            monthly_cents = price_unit * seats / (12 if is_yearly else 1)
            if addon:
                addon_unit = ADDON_CENTS * 10 if is_yearly else ADDON_CENTS
                items.append(
                    {
                        "id": _id(rng, "si_"),
                        "object": "subscription_item",
                        "quantity": 1,
                        "price": {
                            "id": "price_storage",
                            "object": "price",
                            "nickname": None,
                            "unit_amount": addon_unit,
                            "currency": "usd",
                            "recurring": {"interval": interval, "interval_count": 1},
                        },
                    }
                )
                monthly_cents += addon_unit / (12 if is_yearly else 1)
            if coupon is not None and coupon["duration"] != "once" and coupon["percent_off"]:
                monthly_cents *= 1 - coupon["percent_off"] / 100
            status = "canceled" if ended is not None else "active"
            subscriptions.append(
                {
                    "id": sub_id,
                    "object": "subscription",
                    "customer": cus,
                    "status": status,
                    "created": _unix(begin),
                    "start_date": _unix(begin),
                    "ended_at": _unix(ended) if ended is not None else None,
                    "canceled_at": _unix(ended) if ended is not None else None,
                    "cancel_at": None,
                    "cancel_at_period_end": False,
                    "currency": "usd",
                    "items": {"object": "list", "data": items},
                    "discount": {"object": "discount", "coupon": coupon} if coupon else None,
                    "cancellation_details": {
                        "reason": "cancellation_requested" if ended is not None else None,
                        "feedback": feedback if last else None,
                        "comment": "Too pricey for our team"
                        if last and feedback == "too_expensive"
                        else None,
                    },
                    "metadata": {},
                }
            )
            truth_subs.append(
                {
                    "subscription_id": sub_id,
                    "customer_id": cus,
                    "mrr": monthly_cents / 100,
                    "start_date": begin.date(),
                    "end_date": ended.date() if ended else None,
                }
            )
            # invoices: one per billing period, paid a day later (late for unhealthy accounts)
            step = 365.25 if is_yearly else 30.44
            period_start, n = begin, 0
            while period_start < (ended or end) and period_start < end:
                total = round(monthly_cents * (12 if is_yearly else 1))
                late = rng.random() < 0.05 * np.exp(-health)
                paid = period_start + timedelta(days=float(rng.uniform(20, 60) if late else 1))
                invoices.append(
                    {
                        "id": _id(rng, "in_"),
                        "object": "invoice",
                        "customer": cus,
                        "subscription": sub_id,
                        "status": "paid" if paid < end else "open",
                        "created": _unix(period_start),
                        "due_date": _unix(period_start + timedelta(days=14)),
                        "total": total,
                        "amount_due": total,
                        "currency": "usd",
                        "status_transitions": {
                            "finalized_at": _unix(period_start + timedelta(hours=1)),
                            "paid_at": _unix(paid) if paid < end else None,
                        },
                    }
                )
                n += 1
                period_start = begin + timedelta(days=step * n)
        life_end = churn_at or end
        truth_customers.append(
            {
                "customer_id": cus,
                "account_id": account,
                "domain": domain,
                "health": health,
                "signup_date": created.date(),
                "churned_at": churn_at.date() if churn_at else None,
            }
        )
        if churn_at is not None and feedback is not None:
            _, category, avoidable = FEEDBACK[feedback]
            truth_exits.append(
                {
                    "customer_id": cus,
                    "churned_at": churn_at,
                    "category": category,
                    "avoidable": avoidable,
                    "main_reason": feedback,
                }
            )
        # Segment: weekly sign-ins per user, fading before churn; feature use after sign-ins
        users = [f"u_{i:04d}_{u}" for u in range(max(1, min(seats, 3)))]
        week = created
        while week < life_end:
            fade = 1.0
            if churn_at is not None:
                days_left = (churn_at - week).days
                fade = min(1.0, max(0.15, days_left / 60))
            rate = 0.9 * float(np.exp(0.45 * health)) * fade
            for user in users:
                for _ in range(int(rng.poisson(rate))):
                    moment = week + timedelta(seconds=float(rng.uniform(0, 7 * 86400)))
                    if moment >= life_end or moment >= end:
                        continue
                    offset = int(rng.choice([0, 0, 0, 0, 2, -5]))
                    tracks.append(_track(rng, "Signed In", user, account, moment, offset))
                    if rng.random() < 0.6:
                        used = moment + timedelta(minutes=float(rng.uniform(1, 50)))
                        track = _track(rng, "Feature Used", user, account, used, 0)
                        track["properties"]["feature"] = str(rng.choice(FEATURES))
                        tracks.append(track)
            week += timedelta(days=7)
        tracks.append(
            {
                "type": "identify",
                "userId": users[0],
                "messageId": _id(rng, "msg-"),
                "timestamp": _iso(created),
                "traits": {"email": email},
            }
        )
        # Zendesk: the organization, then tickets (more and angrier for unhealthy accounts)
        if not free_mail:
            org = org_base + i
            organizations.append(
                {
                    "id": org,
                    "name": f"Company {i:04d}",
                    "domain_names": [domain],
                    "external_id": None,
                    "created_at": _iso(created),
                }
            )
            month = created
            while month < min(life_end, end):
                for _ in range(int(rng.poisson(0.25 * np.exp(-0.6 * health)))):
                    opened = month + timedelta(seconds=float(rng.uniform(0, 30 * 86400)))
                    if opened >= min(life_end, end):
                        continue
                    ticket_id += 1
                    solved = opened + timedelta(hours=float(rng.exponential(20)))
                    rated = rng.random() < 0.6
                    good = rng.random() < 1 / (1 + np.exp(-(1.2 + health)))
                    score = ("good" if good else "bad") if rated else "unoffered"
                    truth_tickets.append(
                        {
                            "customer_id": cus,
                            "opened_at": opened,
                            "resolved_at": solved if solved < end else None,
                            "csat": (5.0 if good else 1.0) if rated else None,
                        }
                    )
                    tickets.append(
                        {
                            "id": ticket_id,
                            "organization_id": org,
                            "requester_id": 1000 + i,
                            "status": "solved" if solved < end else "open",
                            "priority": PRIORITIES[
                                int(rng.choice(5, p=[0.2, 0.4, 0.2, 0.05, 0.15]))
                            ],
                            "type": str(rng.choice(["question", "problem", "incident"])),
                            "subject": "Help needed",
                            "created_at": _iso(opened),
                            "satisfaction_rating": {"score": score},
                            "metric_set": {"solved_at": _iso(solved) if solved < end else None},
                        }
                    )
                month += timedelta(days=30.44)
            companies.append(
                {
                    "hs_object_id": company_base + i,
                    "name": f"Company {i:04d}",
                    "domain": str(rng.choice([f"www.{domain}", f"https://{domain}/", domain])),
                    "industry": str(rng.choice(INDUSTRIES)),
                    "numberofemployees": int(rng.integers(5, 800)),
                    "country": str(rng.choice(COUNTRIES)),
                    "hubspot_owner_id": int(rng.integers(1, 6)),
                }
            )
    for j in range(15):  # prospects in HubSpot that never became customers
        companies.append(
            {
                "hs_object_id": company_base + 50_000 + j,
                "name": f"Prospect {j}",
                "domain": f"prospect-{j}.io",
                "industry": "software",
                "numberofemployees": 40,
                "country": "US",
                "hubspot_owner_id": 1,
            }
        )
    for _ in range(5):  # an internal test account the app tracks but Stripe does not bill
        tracks.append(_track(rng, "Signed In", "u_internal", "acct_internal", t0, 0))
    tracks.sort(key=lambda t: t["timestamp"])
    return VendorSample(
        files={
            "stripe/customers.jsonl": stripe_customers,
            "stripe/subscriptions.jsonl": subscriptions,
            "stripe/invoices.jsonl": invoices,
            "segment/tracks.jsonl": tracks,
            "zendesk/organizations.jsonl": organizations,
            "zendesk/tickets.jsonl": tickets,
            "hubspot/companies.csv": pd.DataFrame(companies),
        },
        truth={
            "subscriptions": pd.DataFrame(truth_subs),
            "customers": pd.DataFrame(truth_customers),
            "exit_reasons": pd.DataFrame(truth_exits),
            "tickets": pd.DataFrame(truth_tickets),
        },
        export_date=export_date,
    )


def _track(
    rng: np.random.Generator, event: str, user: str, account: str, moment: datetime, offset: int
) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "userId": user,
        "anonymousId": None,
        "messageId": _id(rng, "msg-"),
        "timestamp": _iso(moment, offset),
        "receivedAt": _iso(moment + timedelta(seconds=2)),
        "properties": {},
        "context": {"groupId": account, "library": {"name": "analytics.js"}},
    }


def write_vendor_sample(sample: VendorSample, out: Path) -> Path:
    """Write the exports, ``mapping.yaml`` and ``truth/`` under ``out`` (all or nothing)."""
    with atomic_path(Path(out)) as tmp:
        for name, content in sample.files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, pd.DataFrame):
                content.to_csv(path, index=False)
            else:
                with path.open("w", encoding="utf-8") as handle:
                    for row in content:
                        handle.write(json.dumps(row, default=str) + "\n")
        (tmp / "mapping.yaml").write_text(
            MAPPING.format(export_date=sample.export_date.isoformat()), encoding="utf-8"
        )
        (tmp / "truth").mkdir()
        for name, frame in sample.truth.items():
            frame.to_parquet(tmp / "truth" / f"{name}.parquet", index=False)
    return Path(out)


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - command line
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sample = generate_vendor_sample(args.customers, args.months, args.seed)
    write_vendor_sample(sample, args.out)
    print(f"wrote {args.out}/ (exports, mapping.yaml, truth/)")


if __name__ == "__main__":  # pragma: no cover
    main()
