"""Plotly figures as plain JSON-ready dicts, drawn in the browser by the bundled plotly.js.

Plain dicts rather than ``plotly.graph_objects``: building a validated ``Figure`` costs
milliseconds per chart on every page view, and the browser needs only the JSON. One look for
every chart: the page's font, light grid, no mode bar, the tier colours of the list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from features.tiers import TIER_TABLE

Figure = dict[str, Any]

FONT = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"
INK, MUTED, GRID = "#1f2328", "#656d76", "#eaeef2"
BLUE, TEAL, PURPLE, GREY = "#0969da", "#1b998b", "#8250df", "#8c959f"
RISK_UP, RISK_DOWN = "#cf222e", "#1a7f37"
TIER_COLOURS: dict[str, str] = {t.name: t.colour for t in TIER_TABLE}
TIER_LABELS: dict[str, str] = {t.name: t.label for t in TIER_TABLE}
TIERS_RISKIEST_FIRST = tuple(t.name for t in reversed(TIER_TABLE))  # the list's filter order
SERIES = (BLUE, "#e16f24", TEAL, PURPLE, "#bf3989", GREY)


def tier_stylesheet() -> str:
    """The tiers' CSS (colour variables, chips, coloured text, card edges) from
    ``features/tiers.py``, inlined by ``base.html`` so ``ui.css`` states no tier colour."""
    rules = [":root { " + " ".join(f"--{t.name}: {t.colour}; --{t.name}-bg: {t.background};"
                                   for t in TIER_TABLE) + " }"]  # fmt: skip
    for t in TIER_TABLE:
        rules += [
            f".tier-{t.name} {{ background: var(--{t.name}-bg); color: {t.ink}; "
            f"border-color: {t.border}; }}",
            f".tier-text-{t.name} {{ color: {t.text}; }}",
            f".tier-edge-{t.name} {{ border-left-color: var(--{t.name}); }}",
        ]
    return "\n".join(rules)


def finite(values: Sequence[Any]) -> list[Any]:
    """JSON-safe values: NaN and infinities become null (a gap in the chart)."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            out.append(None)
        else:
            out.append(v)
    return out


def layout(height: int = 280, legend: bool = False, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "height": height,
        "margin": {"l": 56, "r": 16, "t": 28 if legend else 12, "b": 44},
        "font": {"family": FONT, "size": 12, "color": INK},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "showlegend": legend,
        "legend": {"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        "xaxis": {"gridcolor": GRID, "linecolor": "#d0d7de", "automargin": True},
        "yaxis": {"gridcolor": GRID, "zerolinecolor": "#d0d7de", "automargin": True},
        "hoverlabel": {"font": {"family": FONT}},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def waterfall(labels: list[str], points: list[float], hover: list[str], base: float) -> Figure:
    """Horizontal waterfall of churn probability in percentage points: the average customer,
    each driver's step, the customer's probability (top to bottom)."""
    measures = ["absolute", *["relative"] * (len(points) - 2), "total"]
    text = [f"{base:.1f} %"] + [f"{p:+.1f}" for p in points[1:-1]] + [f"{points[-1]:.1f} %"]
    trace = {
        "type": "waterfall",
        "orientation": "h",
        "y": labels,
        "x": points,
        "measure": measures,
        "text": text,
        "textposition": "outside",
        "cliponaxis": False,
        "hovertext": hover,
        "hoverinfo": "text",
        "increasing": {"marker": {"color": RISK_UP}},
        "decreasing": {"marker": {"color": RISK_DOWN}},
        "totals": {"marker": {"color": BLUE}},
        "connector": {"line": {"color": "#d0d7de", "width": 1}},
    }
    height = 90 + 30 * len(labels)
    return {
        "data": [trace],
        "layout": layout(
            height=height,
            margin={"l": 8, "r": 48, "t": 8, "b": 40},
            yaxis={"autorange": "reversed", "automargin": True, "gridcolor": "rgba(0,0,0,0)"},
            xaxis={"title": {"text": "churn probability (%)"}, "ticksuffix": ""},
        ),
    }


def tier_bands(y0: float = 0, y1: float = 100) -> list[dict[str, Any]]:
    """Faint horizontal bands of the four tiers behind a health-score chart."""
    ceilings = (100.0, *(t.floor for t in TIER_TABLE[:-1]))
    bands = [(t.floor, top, t.name) for t, top in zip(TIER_TABLE, ceilings, strict=True)]
    return [
        {
            "type": "rect",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": max(lo, y0),
            "y1": min(hi, y1),
            "fillcolor": TIER_COLOURS[tier],
            "opacity": 0.08,
            "line": {"width": 0},
            "layer": "below",
        }
        for lo, hi, tier in bands
    ]


def score_history(dates: list[str], health: list[float], hover: list[str]) -> Figure:
    trace = {
        "type": "scatter",
        "mode": "lines+markers",
        "x": dates,
        "y": finite(health),
        "line": {"color": BLUE, "width": 2},
        "marker": {"size": 8},
        "hovertext": hover,
        "hoverinfo": "text",
    }
    return {
        "data": [trace],
        "layout": layout(
            height=240,
            yaxis={"range": [0, 100], "title": {"text": "health score"}},
            xaxis={"type": "date"},
            shapes=tier_bands(),
        ),
    }


def line(
    x: list[Any],
    series: dict[str, list[float]],
    height: int = 260,
    percent: bool = False,
    y_title: str = "",
    dashed_from: int | None = None,
) -> Figure:
    """One line per series; ``percent`` formats the axis as %; points from ``dashed_from`` on are
    drawn with hollow markers (not final yet)."""
    data = []
    for i, (name, values) in enumerate(series.items()):
        symbols = [
            "circle-open" if dashed_from is not None and k >= dashed_from else "circle"
            for k in range(len(values))
        ]
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": x,
                "y": finite(values),
                "line": {"color": SERIES[i % len(SERIES)], "width": 2},
                "marker": {"size": 6, "symbol": symbols},
            }
        )
    yaxis: dict[str, Any] = {"title": {"text": y_title}}
    if percent:
        yaxis["tickformat"] = ".1%"
    return {"data": data, "layout": layout(height=height, legend=len(series) > 1, yaxis=yaxis)}


def bars(
    labels: list[str],
    series: dict[str, list[float]],
    height: int = 260,
    percent: bool = False,
    horizontal: bool = False,
    stacked: bool = False,
    colours: list[str] | None = None,
    y_title: str = "",
    hover: list[str] | None = None,
) -> Figure:
    data = []
    for i, (name, values) in enumerate(series.items()):
        trace: dict[str, Any] = {
            "type": "bar",
            "name": name,
            "orientation": "h" if horizontal else "v",
            "marker": {"color": colours if colours and len(series) == 1 else SERIES[i % 6]},
        }
        if horizontal:
            trace |= {"y": labels, "x": finite(values)}
        else:
            trace |= {"x": labels, "y": finite(values)}
        if hover is not None and len(series) == 1:
            trace |= {"hovertext": hover, "hoverinfo": "text"}
        data.append(trace)
    value_axis: dict[str, Any] = {"title": {"text": y_title}}
    if percent:
        value_axis["tickformat"] = ".0%"
    axes = (
        {"xaxis": value_axis, "yaxis": {"autorange": "reversed", "automargin": True}}
        if horizontal
        else {"yaxis": value_axis}
    )
    return {
        "data": data,
        "layout": layout(
            height=height,
            legend=len(series) > 1,
            barmode="stack" if stacked else "group",
            bargap=0.3,
            **axes,
        ),
    }


def heatmap(x: list[Any], y: list[str], z: list[list[float | None]], height: int = 360) -> Figure:
    text = [[("" if v is None else f"{v:.0%}") for v in row] for row in z]
    trace = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": z,
        "text": text,
        "texttemplate": "%{text}",
        "textfont": {"size": 10},
        "colorscale": [[0, "#fff1e5"], [0.5, "#f6b26b"], [0.75, "#5fa8d3"], [1, "#0b4f8a"]],
        "zmin": 0,
        "zmax": 1,
        "hoverongaps": False,
        "colorbar": {"tickformat": ".0%", "thickness": 12},
        "hovertemplate": "cohort %{y}, month %{x}: %{z:.1%} active<extra></extra>",
    }
    return {
        "data": [trace],
        "layout": layout(
            height=height,
            xaxis={"title": {"text": "months since first subscription"}, "dtick": 1},
            yaxis={"autorange": "reversed", "type": "category"},
        ),
    }


def histogram_by_tier(health: dict[str, list[float]]) -> Figure:
    data = [
        {
            "type": "histogram",
            "name": TIER_LABELS.get(tier, tier),
            "x": values,
            "xbins": {"start": 0, "end": 100, "size": 2.5},
            "marker": {"color": TIER_COLOURS.get(tier, GREY)},
        }
        for tier, values in health.items()
        if values
    ]
    return {
        "data": data,
        "layout": layout(
            height=260,
            legend=True,
            barmode="stack",
            xaxis={"title": {"text": "health score"}, "range": [0, 100]},
            yaxis={"title": {"text": "customers"}},
        ),
    }


def reliability(predicted: list[float], observed: list[float], rows: list[int]) -> Figure:
    top = max([*predicted, *observed, 0.05]) * 1.1
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "perfect calibration",
                "x": [0, top],
                "y": [0, top],
                "line": {"color": GREY, "dash": "dot"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "model",
                "x": finite(predicted),
                "y": finite(observed),
                "text": [f"{n:,} customers" for n in rows],
                "line": {"color": BLUE, "width": 2},
                "marker": {"size": 8},
                "hovertemplate": "predicted %{x:.1%}, observed %{y:.1%} (%{text})<extra></extra>",
            },
        ],
        "layout": layout(
            height=260,
            legend=True,
            xaxis={
                "title": {"text": "predicted churn probability"},
                "tickformat": ".0%",
                "range": [0, top],
            },
            yaxis={
                "title": {"text": "observed churn rate"},
                "tickformat": ".0%",
                "range": [0, top],
            },
        ),
    }
