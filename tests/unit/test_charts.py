"""Server-side SVG charts: well-formed, accessible images whose bars are as long as
their values, with every label escaped, and a clear "no data" state."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from baton.web import charts

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("viewBox")
    assert root.get("width") is None  # scales to its container
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and title.text
    assert desc is not None and desc.text
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]


def texts(root: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]


EVIL = '<script>alert("x")</script> & =1+2'


def every_chart(label: str, values: list[float | None]) -> list[str]:
    cats = [label, "b", "c"][: len(values)]
    return [
        charts.bar_chart(label, cats, [("n", values)], desc=label),
        charts.bar_chart(label, cats, [("n", values), (label, values)]),
        charts.stacked_bar_chart(label, cats, [("system", values), (label, values)]),
        charts.funnel_chart(label, list(zip(cats, values, strict=True)), conversions=[0.5, None]),
        charts.column_chart(label, cats, [(label, values)], max_value=None),
        charts.histogram(label, list(zip(cats, values, strict=True))),
    ]


def test_labels_are_escaped() -> None:
    for svg in every_chart(EVIL, [3, 1, 2]):
        assert "<script>" not in svg
        root = parse(svg)
        assert root.find(f"{SVG}title").text == EVIL  # type: ignore[union-attr]
        assert any(EVIL[:19] in t for t in texts(root)) or any(
            EVIL in ("".join(b.itertext())) for b in bars(root)
        )


def test_horizontal_bars_are_proportional() -> None:
    root = parse(charts.bar_chart("Leads", ["a", "b", "c"], [("leads", [10, 5, 0])]))
    widths = [float(b.get("width") or 0) for b in bars(root)]
    assert widths[0] > 0
    assert widths[1] == pytest.approx(widths[0] / 2, abs=0.1)
    assert widths[2] == 0
    assert [b.get("data-value") for b in bars(root)] == ["10", "5", "0"]
    assert {"10", "5", "0"} <= set(texts(root))  # direct labels


def test_columns_and_histogram_are_proportional() -> None:
    root = parse(charts.histogram("Speed", [("≤ 5 min", 8), ("5–60 min", 2), ("later", 4)]))
    heights = [float(b.get("height") or 0) for b in bars(root)]
    assert heights[1] == pytest.approx(heights[0] / 4, abs=0.1)
    assert heights[2] == pytest.approx(heights[0] / 2, abs=0.1)
    shares = parse(
        charts.column_chart(
            "SLA", ["w1", "w2"], [("accepted", [1.0, 0.25])], fmt=charts.percent, max_value=1.0
        )
    )
    h = [float(b.get("height") or 0) for b in bars(shares)]
    assert h[1] == pytest.approx(h[0] / 4, abs=0.1)
    assert "25%" in texts(shares) and "100%" in texts(shares)


def test_stacked_segments_and_funnel_widths() -> None:
    root = parse(charts.stacked_bar_chart("Delay", ["median"], [("system", [1]), ("rep", [3])]))
    system, rep = (float(b.get("width") or 0) for b in bars(root))
    assert rep == pytest.approx(system * 3, abs=0.1)
    assert float(bars(root)[1].get("x") or 0) == pytest.approx(
        float(bars(root)[0].get("x") or 0) + system, abs=0.1
    )
    funnel = parse(charts.funnel_chart("Funnel", [("lead", 100), ("mql", 40)], conversions=[0.4]))
    lead, mql = (float(b.get("width") or 0) for b in bars(funnel))
    assert mql == pytest.approx(lead * 0.4, abs=0.1)
    assert "↓ 40%" in texts(funnel)


@pytest.mark.parametrize("values", [[], [0, 0], [None, None]])
def test_empty_or_zero_data_says_so(values: list[float | None]) -> None:
    cats = ["a", "b"][: len(values)]
    for svg in (
        charts.bar_chart("Nothing", cats, [("n", values)]),
        charts.stacked_bar_chart("Nothing", cats, [("n", values)]),
        charts.funnel_chart("Nothing", list(zip(cats, values, strict=True))),
        charts.column_chart("Nothing", cats, [("n", values)]),
        charts.histogram("Nothing", list(zip(cats, values, strict=True))),
    ):
        root = parse(svg)
        assert bars(root) == []
        assert charts.NO_DATA in texts(root)


def test_none_and_negative_values_draw_no_bar_but_say_their_value() -> None:
    root = parse(charts.bar_chart("Mixed", ["a", "b", "c"], [("n", [4, None, -2])]))
    widths = [float(b.get("width") or 0) for b in bars(root)]
    assert widths[0] > 0 and widths[1] == 0 and widths[2] == 0
    assert {"4", "–", "-2"} <= set(texts(root))
    cols = parse(charts.column_chart("Mixed", ["a", "b"], [("n", [-1, 3])]))
    assert float(bars(cols)[0].get("height") or 0) == 0


def test_series_after_the_first_get_patterns_and_ids_are_unique() -> None:
    one = charts.bar_chart("A", ["x"], [("a", [1]), ("b", [2])], uid="one")
    two = charts.bar_chart("A", ["x"], [("a", [1]), ("b", [2])], uid="two")
    assert 'id="one-p1"' in one and 'fill="url(#one-p1)"' in one
    assert 'id="two-p1"' in two and "one-" not in two
    assert 'id="x-y--t"' in charts.no_data("t", uid='x"y<')  # ids are sanitised
    assert "legend" in one
