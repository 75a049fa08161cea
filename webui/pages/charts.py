"""The Statistics page's charts, as numbers for the template to write out as inline SVG.

Narrow drawings (420 units wide, text at 11) so that they stay readable on a 390 px phone;
the figures themselves come from ``ledger.stats``, these only place them. Titles and series
names are in the request's language (issue 19); the figures are written as recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import ngettext

from ledger.stats import Half, ZoneMonth

CHART_W, CHART_H, LEFT, TOP, BOTTOM, RIGHT = 420.0, 230.0, 46.0, 10.0, 28.0, 8.0
PLOT_W, PLOT_H = CHART_W - LEFT - RIGHT, CHART_H - TOP - BOTTOM


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    title: str
    anomalous: bool = False


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: int
    title: str


@dataclass(frozen=True)
class BandChart:
    """USD per carat by month on a log scale: the footprint band (polygons), its median
    (polylines), the month's median price (a polyline and a mark per month)."""

    width: float
    height: float
    bands: list[str]
    medians: list[str]
    line: str
    marks: list[Mark]
    ticks: list[tuple[float, str]]  # (y, value)
    labels: list[tuple[float, str]]  # (x, year)
    baseline: float


@dataclass(frozen=True)
class BarChart:
    width: float
    height: float
    bars: list[Bar]
    ticks: list[tuple[float, str]]
    labels: list[tuple[float, str]]
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


def _year_labels(xs: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """One label per year, every second or fifth year when they would crowd (30 units each)."""
    years = sorted({y for _, y in xs})
    step = next((s for s in (1, 2, 5, 10) if PLOT_W / max(1, len(years) / s) >= 30), 20)
    keep = set(years[::step])
    seen: set[str] = set()
    out = []
    for x, year in xs:
        if year in keep and year not in seen:
            seen.add(year)
            out.append((round(x, 1), year))
    return out


def band_chart(months: Sequence[ZoneMonth]) -> BandChart:
    values = [float(v) for m in months for v in (m.usd_per_ct, m.low, m.high) if v is not None]
    lo = 10 ** math.floor(math.log10(min(values))) if values else 1.0
    hi = 10 ** math.ceil(math.log10(max(values))) if values else 10.0
    hi = max(hi, lo * 10)
    span = math.log10(hi) - math.log10(lo)
    step = PLOT_W / max(1, len(months))

    def x(i: int) -> float:
        return round(LEFT + step * (i + 0.5), 1)

    def y(v: float) -> float:
        return round(TOP + PLOT_H - (math.log10(v) - math.log10(lo)) / span * PLOT_H, 1)

    bands: list[str] = []
    medians: list[str] = []
    run: list[int] = []
    for i, m in enumerate([*months, None]):
        if m is not None and m.low is not None and m.high is not None and m.median is not None:
            run.append(i)
            continue
        if run:
            top = [f"{x(j)},{y(float(months[j].high or 0))}" for j in run]
            bottom = [f"{x(j)},{y(float(months[j].low or 0))}" for j in reversed(run)]
            bands.append(" ".join(top + bottom))
            medians.append(" ".join(f"{x(j)},{y(float(months[j].median or 0))}" for j in run))
            run = []
    marks = [Mark(x(i), y(float(m.usd_per_ct)), _month_title(m), m.anomalies > 0)
             for i, m in enumerate(months) if m.usd_per_ct is not None]
    line = " ".join(f"{mk.x},{mk.y}" for mk in marks)
    ticks = []
    decade = lo
    while decade <= hi * 1.0001:
        for k in (1, 2, 5):
            if lo <= decade * k <= hi:
                ticks.append((y(decade * k), _short(decade * k)))
        decade *= 10
    labels = _year_labels([(x(i), m.month[:4]) for i, m in enumerate(months)])
    return BandChart(CHART_W, CHART_H, bands, medians, line, marks, ticks, labels,
                     TOP + PLOT_H)


def _month_title(m: ZoneMonth) -> str:
    """A month's mark: its median price, over how many purchases, how many flagged.
    (English has always said "1 purchases"; ngettext gives French its singular.)"""
    values = {"month": m.month, "price": f"{m.usd_per_ct:,}", "anomalies": m.anomalies}
    if m.anomalies:
        return ngettext("%(month)s: %(price)s USD/ct over %(num)d purchases, %(anomalies)d "
                        "flagged FOOTPRINT_ANOMALY", "%(month)s: %(price)s USD/ct over "
                        "%(num)d purchases, %(anomalies)d flagged FOOTPRINT_ANOMALY",
                        m.purchases, **values)
    return ngettext("%(month)s: %(price)s USD/ct over %(num)d purchases",
                    "%(month)s: %(price)s USD/ct over %(num)d purchases", m.purchases, **values)


def pair_chart(halves: Sequence[Half]) -> BarChart:
    """Carats produced (first sales) beside carats exported, per half-year."""
    top = _nice(max((float(v) for h in halves for v in (h.produced, h.exported)), default=0))
    slot = PLOT_W / max(1, len(halves))
    w = max(1.0, (slot - 2) / 2)
    bars = []
    for i, h in enumerate(halves):
        produced, exported = f"{h.produced:,}", f"{h.exported:,}"
        titles = (_("%(period)s: %(carats)s ct produced", period=h.period, carats=produced),
                  _("%(period)s: %(carats)s ct exported", period=h.period, carats=exported))
        for s, value in enumerate((h.produced, h.exported)):
            height = float(value) / top * PLOT_H
            bars.append(Bar(round(LEFT + i * slot + 1 + s * w, 1),
                            round(TOP + PLOT_H - height, 1), round(w, 1), round(height, 1), s,
                            titles[s]))
    ticks = [(round(TOP + PLOT_H - PLOT_H * i / 4, 1), _short(top * i / 4)) for i in range(5)]
    labels = _year_labels([(LEFT + i * slot + slot, h.period[:4]) for i, h in enumerate(halves)])
    return BarChart(CHART_W, CHART_H, bars, ticks, labels,
                    [_("carats produced"), _("carats exported")], TOP + PLOT_H)
