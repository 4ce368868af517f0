"""Small inline-SVG charts for the HTML report: axes, ticks, legend, lines, markers, error bars.

No plotting library and nothing external: each chart is one ``<svg>`` string. Output is
deterministic (coordinates rounded to 0.1 px, fixed palette, no ids from counters), and every
text passes through ``html.escape``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Literal

#: Colour-blind friendly palette (Okabe-Ito, then Tableau), cycled by series index.
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#8C564B", "#F0E442",
    "#7F7F7F", "#17BECF",
)
MUTED = "#9AA0A6"
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif"
_LEGEND_LABEL_CHARS = 30


@dataclass(frozen=True)
class Series:
    """One data series. ``errors`` holds (low, high) y bounds per point (None: no bar);
    ``labels`` short annotations drawn next to each marker; ``dash`` an SVG dash pattern
    for the line (e.g. ``"6 4"``); ``axis`` ``"y2"`` plots it against the right-hand axis."""

    name: str
    points: Sequence[tuple[float, float]]
    color: str = PALETTE[0]
    line: bool = True
    marker: bool = True
    errors: Sequence[tuple[float, float] | None] = ()
    labels: Sequence[str] = ()
    marker_radius: float = 4.0
    line_width: float = 2.0
    dash: str = ""
    axis: Literal["y", "y2"] = "y"


@dataclass(frozen=True)
class Chart:
    """A chart: titles with units in the axis labels, series, optional categorical x axis.
    ``y2_label`` names the right-hand axis of the series with ``axis="y2"`` (drawn from 0)."""

    title: str
    x_label: str
    y_label: str
    series: Sequence[Series]
    categories: Sequence[str] | None = None
    width: int = 760
    height: int = 400
    note: str = ""
    y_from_zero: bool = False
    extra_legend: Sequence[tuple[str, str]] = field(default_factory=tuple)
    y2_label: str = ""


def _n(value: float) -> str:
    """A coordinate rounded to 0.1 px, without a trailing ``.0``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]; at least two ticks."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("tick range must be finite")
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw_step = (hi - lo) / max(max_ticks - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = magnitude * 10
    for multiple in (1, 2, 2.5, 5, 10):
        if multiple * magnitude >= raw_step:
            step = multiple * magnitude
            break
    first = math.floor(lo / step + 1e-9) * step
    last = math.ceil(hi / step - 1e-9) * step
    count = round((last - first) / step)
    return [first + i * step for i in range(count + 1)]


def format_tick(value: float, step: float) -> str:
    """Tick text with as many decimals as the step needs; 3 significant digits when the
    numbers are very large or very small."""
    if value == 0 or abs(value) < step * 1e-6:
        return "0"
    if abs(value) >= 1e5 or step < 1e-3:
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step * 10**decimals) != step * 10**decimals:
        decimals += 1
    return f"{value:.{decimals}f}"


class _Scale:
    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float) -> None:
        self.lo, self.hi, self.px_lo, self.px_hi = lo, hi, px_lo, px_hi

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        return self.px_lo + (value - self.lo) / span * (self.px_hi - self.px_lo)


def _extent(values: Sequence[float], *, from_zero: bool = False) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if from_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        return lo - pad, hi + pad
    pad = (hi - lo) * 0.05
    # Non-negative data (times, energies, rates) never gets a negative axis from padding.
    return (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_chart(chart: Chart) -> str:
    """The chart as one ``<svg>`` element (an empty-data message when nothing to plot)."""
    names = [s.name for s in chart.series] + [name for name, _ in chart.extra_legend]
    legend_w = 0 if not names else min(
        240, 34 + 7 * max(len(_truncate(n, _LEGEND_LABEL_CHARS)) for n in names)
    )
    second = [s for s in chart.series if s.axis == "y2"]
    y2_w = 56.0 if second else 0.0
    left, right, top, bottom = 78.0, 20.0 + legend_w + y2_w, 40.0, 62.0
    if chart.note:
        bottom += 18
    w, h = chart.width, chart.height
    x0, x1, y0, y1 = left, w - right, h - bottom, top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" '
        f'height="{h}" role="img" aria-label="{escape(chart.title)}" style="{_FONT}">',
        f"<title>{escape(chart.title)}</title>",
        f'<rect x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>',
        f'<text x="{_n(w / 2)}" y="22" text-anchor="middle" font-size="15" '
        f'font-weight="600" fill="#202124">{escape(chart.title)}</text>',
    ]
    first = [s for s in chart.series if s.axis == "y"]
    xs = [p[0] for s in chart.series for p in s.points]
    ys = [p[1] for s in first for p in s.points]
    ys += [b for s in first for e in s.errors if e is not None for b in e]
    xs = [x for x in xs if math.isfinite(x)]
    ys = [y for y in ys if math.isfinite(y)]
    y2s = [p[1] for s in second for p in s.points if math.isfinite(p[1])]
    if not xs or not ys:
        out.append(f'<text x="{_n(w / 2)}" y="{_n(h / 2)}" text-anchor="middle" '
                   f'font-size="13" fill="#5f6368">no data to plot</text></svg>')
        return "".join(out)
    if chart.categories is not None:
        x_lo, x_hi = -0.5, len(chart.categories) - 0.5
        x_ticks: list[float] = list(range(len(chart.categories)))
        x_text = [_truncate(c, 18) for c in chart.categories]
    else:
        x_ticks = nice_ticks(*_extent(xs))
        x_lo, x_hi = x_ticks[0], x_ticks[-1]
        step = x_ticks[1] - x_ticks[0]
        x_text = [format_tick(t, step) for t in x_ticks]
    y_ticks = nice_ticks(*_extent(ys, from_zero=chart.y_from_zero))
    y_step = y_ticks[1] - y_ticks[0]
    sx = _Scale(x_lo, x_hi, x0, x1)
    sy = _Scale(y_ticks[0], y_ticks[-1], y0, y1)
    # Grid, ticks and tick labels.
    for t, text in zip(x_ticks, x_text, strict=True):
        px = sx(t)
        out.append(f'<line x1="{_n(px)}" y1="{_n(y0)}" x2="{_n(px)}" y2="{_n(y1)}" '
                   f'stroke="#eceff1"/>')
        out.append(f'<line x1="{_n(px)}" y1="{_n(y0)}" x2="{_n(px)}" y2="{_n(y0 + 5)}" '
                   f'stroke="#5f6368"/>')
        out.append(f'<text x="{_n(px)}" y="{_n(y0 + 19)}" text-anchor="middle" font-size="12" '
                   f'fill="#3c4043">{escape(text)}</text>')
    for t in y_ticks:
        py = sy(t)
        out.append(f'<line x1="{_n(x0)}" y1="{_n(py)}" x2="{_n(x1)}" y2="{_n(py)}" '
                   f'stroke="#eceff1"/>')
        out.append(f'<line x1="{_n(x0 - 5)}" y1="{_n(py)}" x2="{_n(x0)}" y2="{_n(py)}" '
                   f'stroke="#5f6368"/>')
        out.append(f'<text x="{_n(x0 - 8)}" y="{_n(py + 4)}" text-anchor="end" font-size="12" '
                   f'fill="#3c4043">{escape(format_tick(t, y_step))}</text>')
    # Axes and axis labels (the labels carry the units).
    out.append(f'<line x1="{_n(x0)}" y1="{_n(y0)}" x2="{_n(x1)}" y2="{_n(y0)}" '
               f'stroke="#3c4043"/>')
    out.append(f'<line x1="{_n(x0)}" y1="{_n(y0)}" x2="{_n(x0)}" y2="{_n(y1)}" '
               f'stroke="#3c4043"/>')
    out.append(f'<text x="{_n((x0 + x1) / 2)}" y="{_n(y0 + 42)}" text-anchor="middle" '
               f'font-size="13" fill="#202124">{escape(chart.x_label)}</text>')
    out.append(f'<text x="18" y="{_n((y0 + y1) / 2)}" text-anchor="middle" font-size="13" '
               f'fill="#202124" transform="rotate(-90 18 {_n((y0 + y1) / 2)})">'
               f'{escape(chart.y_label)}</text>')
    if chart.note:
        out.append(f'<text x="{_n(x0)}" y="{_n(h - 10)}" font-size="11" fill="#5f6368">'
                   f'{escape(chart.note)}</text>')
    sy2 = _right_axis(out, chart.y2_label, y2s, x1, y0, y1) if y2s else sy
    for s in chart.series:
        out.extend(_series(s, sx, sy2 if s.axis == "y2" else sy))
    # Legend, right of the plot area (and of the right-hand axis).
    lx, ly = x1 + 16 + y2_w, y1 + 6
    entries = [(s.name, s.color, s.line, s.marker, s.dash) for s in chart.series]
    entries += [(name, color, False, True, "") for name, color in chart.extra_legend]
    for i, (name, color, line, marker, dash) in enumerate(entries):
        cy = ly + i * 20
        if line:
            out.append(f'<line x1="{_n(lx)}" y1="{_n(cy)}" x2="{_n(lx + 18)}" y2="{_n(cy)}" '
                       f'stroke="{color}" stroke-width="2"{_dash(dash)}/>')
        if marker:
            out.append(f'<circle cx="{_n(lx + 9)}" cy="{_n(cy)}" r="4" fill="{color}"/>')
        out.append(f'<text x="{_n(lx + 24)}" y="{_n(cy + 4)}" font-size="12" fill="#3c4043">'
                   f"<title>{escape(name)}</title>"
                   f"{escape(_truncate(name, _LEGEND_LABEL_CHARS))}</text>")
    out.append("</svg>")
    return "".join(out)


def _dash(pattern: str) -> str:
    return f' stroke-dasharray="{escape(pattern)}"' if pattern else ""


def _right_axis(out: list[str], label: str, values: Sequence[float], x1: float, y0: float,
                y1: float) -> _Scale:
    """Draw the right-hand axis (from 0) for ``values``; returns its scale. Counts (every
    value whole) get whole ticks."""
    ticks = nice_ticks(*_extent(values, from_zero=True))
    if ticks[1] - ticks[0] < 1 and all(float(v).is_integer() for v in values):
        ticks = [float(i) for i in range(max(math.ceil(max(values)), 1) + 1)]
    step = ticks[1] - ticks[0]
    scale = _Scale(ticks[0], ticks[-1], y0, y1)
    out.append(f'<line x1="{_n(x1)}" y1="{_n(y0)}" x2="{_n(x1)}" y2="{_n(y1)}" '
               f'stroke="#3c4043"/>')
    for t in ticks:
        py = scale(t)
        out.append(f'<line x1="{_n(x1)}" y1="{_n(py)}" x2="{_n(x1 + 5)}" y2="{_n(py)}" '
                   f'stroke="#5f6368"/>')
        out.append(f'<text x="{_n(x1 + 8)}" y="{_n(py + 4)}" font-size="12" '
                   f'fill="#3c4043">{escape(format_tick(t, step))}</text>')
    mid, lx = (y0 + y1) / 2, x1 + 46
    out.append(f'<text x="{_n(lx)}" y="{_n(mid)}" text-anchor="middle" font-size="13" '
               f'fill="#202124" transform="rotate(90 {_n(lx)} {_n(mid)})">{escape(label)}</text>')
    return scale


def _series(s: Series, sx: _Scale, sy: _Scale) -> list[str]:
    out: list[str] = []
    pts = [(x, y) for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
    for i, err in enumerate(s.errors):
        if err is None or i >= len(s.points):
            continue
        px = sx(s.points[i][0])
        lo, hi = sy(err[0]), sy(err[1])
        out.append(
            f'<path d="M{_n(px)} {_n(lo)}V{_n(hi)}M{_n(px - 4)} {_n(lo)}H{_n(px + 4)}'
            f'M{_n(px - 4)} {_n(hi)}H{_n(px + 4)}" stroke="{s.color}" stroke-width="1.5" '
            f'fill="none"/>'
        )
    if s.line and len(pts) > 1:
        coords = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in pts)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{s.color}" '
                   f'stroke-width="{s.line_width}" stroke-linejoin="round"{_dash(s.dash)}/>')
    if s.marker:
        for x, y in pts:
            out.append(f'<circle cx="{_n(sx(x))}" cy="{_n(sy(y))}" r="{s.marker_radius}" '
                       f'fill="{s.color}" stroke="#ffffff" stroke-width="1"/>')
    for (x, y), label in zip(s.points, s.labels, strict=False):
        if label and math.isfinite(x) and math.isfinite(y):
            out.append(f'<text x="{_n(sx(x) + 7)}" y="{_n(sy(y) - 7)}" font-size="11" '
                       f'fill="#202124">{escape(label)}</text>')
    return out
