"""Bar charts of the public statistics, for the templates to write out as inline SVG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CHART_W, CHART_H, AXIS = 900.0, 260.0, 48.0


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: int
    title: str


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, value)
    years: list[tuple[float, str]]  # (x, year)
    series: list[str]
    baseline: float


def _short(value: float) -> str:
    """An axis label: 2,500 as 2.5k, 1,200,000 as 1.2M."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _nice(top: float) -> float:
    if top <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(top))
    return float(next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= top))


def bar_chart(rows: Sequence[dict[str, Any]], value: str, unit: str) -> Chart:
    """Bars of ``value`` by year, one bar per country in each year."""
    series = sorted({str(r["country"] or "unknown") for r in rows})
    years = sorted({int(r["year"]) for r in rows})
    top = _nice(max((float(r[value]) for r in rows), default=0.0))
    plot_w, plot_h = CHART_W - AXIS - 8, CHART_H - 30
    slot = plot_w / max(1, len(years))
    bar_w = max(1.0, (slot - 4) / max(1, len(series)))
    bars = []
    for r in rows:
        si = series.index(str(r["country"] or "unknown"))
        h = float(r[value]) / top * plot_h
        x = AXIS + years.index(int(r["year"])) * slot + 2 + si * bar_w
        bars.append(Bar(round(x, 1), round(10 + plot_h - h, 1), round(bar_w, 1), round(h, 1), si,
                        f"{r['country'] or 'unknown'} {r['year']}: {r[value]:,} {unit}"))
    ticks = [(round(10 + plot_h - plot_h * i / 4, 1), _short(top * i / 4)) for i in range(5)]
    labels = [(round(AXIS + i * slot + slot / 2, 1), str(y)) for i, y in enumerate(years)]
    return Chart(CHART_W, CHART_H, bars, ticks, labels, series, 10 + plot_h)
