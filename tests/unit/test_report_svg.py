"""Inline SVG charts: tick values, tick text, well-formed output, escaping, scaling."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from llm_energy_measure.results.report.svg import (
    Chart,
    Series,
    format_tick,
    nice_ticks,
    render_chart,
)

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0.0, 10.0, [0, 2, 4, 6, 8, 10]),
        (0.13, 0.91, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (3.0, 3.0, [2.6, 2.8, 3.0, 3.2, 3.4]),
        (-7.0, 12.0, [-10, -5, 0, 5, 10, 15]),
        (0.0, 2.3, [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]),
    ],
)
def test_nice_ticks(lo, hi, expected):
    assert nice_ticks(lo, hi) == pytest.approx(expected)


def test_format_tick():
    assert format_tick(2.5, 2.5) == "2.5"
    assert format_tick(0.6000000000000001, 0.2) == "0.6"
    assert format_tick(1500.0, 500.0) == "1500"
    assert format_tick(2.5e6, 5e5) == "2.5e+06"
    assert format_tick(0.0, 0.2) == "0"


def _chart(**kw):
    base = dict(
        title="T <&>", x_label="batch size", y_label="energy per output token (J)",
        series=[Series("s&1", [(1.0, 2.0), (2.0, 1.0)], errors=[(1.5, 2.5), None]),
                Series("s2", [(1.0, 3.0)], line=False, labels=["#1"])],
    )
    base.update(kw)
    return render_chart(Chart(**base))


def _coords(svg_text):
    root = ET.fromstring(svg_text)
    return root, [c for c in root.iter(f"{SVG}circle")]


def test_chart_is_well_formed_with_axes_legend_and_escaped_text():
    svg = _chart()
    root, circles = _coords(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "T <&>" in texts  # escaped in the source, parsed back to the original
    assert "batch size" in texts and "energy per output token (J)" in texts
    assert "s&1s&1" in texts  # legend entry: hover title + visible label
    assert "#1" in texts
    # Three data markers + two legend markers.
    assert len(circles) == 5
    assert len(list(root.iter(f"{SVG}polyline"))) == 1
    assert len(list(root.iter(f"{SVG}path"))) == 1  # one error bar


def test_points_are_placed_by_the_scales():
    svg = _chart(series=[Series("s", [(0.0, 0.0), (10.0, 10.0)], line=False)])
    _, circles = _coords(svg)
    (x0, y0), (x1, y1) = [(float(c.get("cx")), float(c.get("cy"))) for c in circles[:2]]
    # Left margin 78 px, top margin 40 px, plot height 400 - 40 - 62 = 298 px. Data 0..10
    # padded 5% -> 10.5 -> ticks 0, 2.5, ..., 12.5 (non-negative data stays at 0).
    assert x0 == pytest.approx(78.0)
    assert y0 == pytest.approx(338.0)
    assert y1 == pytest.approx(338.0 - 298.0 * 10 / 12.5)
    assert x1 > x0


def test_categorical_axis_and_empty_chart():
    svg = _chart(series=[Series("s", [(0.0, 1.0), (1.0, 2.0)])], categories=["fp32", "fp16"])
    root, _ = _coords(svg)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "fp32" in texts and "fp16" in texts
    empty = _chart(series=[Series("s", [])])
    assert "no data to plot" in empty
    ET.fromstring(empty)


def test_same_input_same_svg():
    assert _chart() == _chart()


def test_right_hand_axis_scales_its_own_series_and_dash_is_drawn():
    svg = _chart(series=[Series("power", [(0.0, 100.0), (10.0, 200.0)], marker=False),
                         Series("in flight", [(0.0, 0.0), (10.0, 4.0)], marker=False,
                                axis="y2", dash="6 4")],
                 y2_label="requests in flight", y_from_zero=True)
    root, _ = _coords(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert "requests in flight" in texts
    lines = list(root.iter(f"{SVG}polyline"))
    assert len(lines) == 2 and lines[1].get("stroke-dasharray") == "6 4"
    # Both series span the full plot height on their own axes: the right axis runs 0..5
    # (4 padded), the left one 0..250, so 200 W and 4 requests sit at different heights,
    # and the left axis ignores the y2 values.
    (_, p_end), (_, f_end) = [tuple(float(v) for v in line.get("points").split()[-1].split(","))
                              for line in lines]
    plot_bottom, plot_height = 338.0, 298.0
    assert p_end == pytest.approx(plot_bottom - plot_height * 200 / 250, abs=0.1)
    assert f_end == pytest.approx(plot_bottom - plot_height * 4 / 5, abs=0.1)
    assert "250" in texts and "5" in texts


def test_chart_without_right_axis_is_unchanged_by_it():
    plain = _chart()
    assert "stroke-dasharray" not in plain and 'rotate(90' not in plain


def test_right_hand_axis_of_counts_has_whole_ticks():
    svg = _chart(series=[Series("power", [(0.0, 100.0), (1.0, 120.0)]),
                         Series("in flight", [(0.0, 0.0), (1.0, 2.0)], axis="y2")],
                 y2_label="requests in flight")
    root, _ = _coords(svg)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    right = texts[texts.index("requests in flight") - 3:texts.index("requests in flight")]
    assert right == ["0", "1", "2"]
