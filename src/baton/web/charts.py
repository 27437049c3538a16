"""Charts as server-side SVG: pure functions from numbers to an SVG string.

No dependency and no JavaScript: each function returns one ``<svg>`` element to place
in a page next to the table that holds the same numbers (a chart never replaces its
table). The rules every chart follows:

* accessible: ``role="img"`` with ``aria-labelledby`` pointing at its ``<title>`` and
  ``<desc>``; every bar or point carries its value as a direct text label, so nothing
  is told by colour alone;
* colours from the Okabe-Ito palette (distinguishable with the common colour-vision
  deficiencies), and the series after the first also get a pattern (stripes, dots,
  cross-hatch), so a printout in grey still tells them apart; text is near-black on
  white (contrast far above AA);
* scalable: a ``viewBox`` and no fixed size, so a chart shrinks to a 375-px screen;
* safe: every label is XML-escaped, and the ids inside a chart (patterns, title) are
  prefixed with the chart's own ``uid`` so that several charts live in one page;
* honest about missing data: no values (or all zero/``None``) give a clear "No data"
  chart; ``None`` is drawn as no bar with a "–" label; a negative value (which none of
  the reports should give) is drawn as an empty bar with its true value as the label.

Bars carry ``class="bar"`` and ``data-value`` so tests (and the browser test) can read
what was drawn.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from xml.sax.saxutils import escape

Number = float | int | None
Formatter = Callable[[float], str]

PALETTE: tuple[str, ...] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
"""Okabe-Ito colours (yellow left out: too light for a white page)."""
PATTERNS: tuple[str, ...] = ("solid", "stripes", "dots", "cross")
TEXT = "#1a1a1a"
MUTED = "#595959"
GRID = "#d0d0d0"
FONT = 'font-family="system-ui, sans-serif"'
NO_DATA = "No data for this period"

_uids = itertools.count(1)


def _esc(text: object) -> str:
    """XML-escape text for an element or an attribute value."""
    return escape(str(text), {'"': "&quot;", "'": "&#39;"})


def _uid(uid: str | None) -> str:
    if uid is None:
        return f"chart{next(_uids)}"
    return re.sub(r"[^A-Za-z0-9_-]", "-", uid) or "chart"


def plain(value: float) -> str:
    """A number as a label: whole numbers without decimals, others to 1 decimal."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def percent(value: float) -> str:
    """A share (0..1) as ``42%`` (``42.5%`` when it is not whole)."""
    shown = value * 100
    return f"{shown:.0f}%" if round(shown, 1).is_integer() else f"{shown:.1f}%"


def _label(value: Number, fmt: Formatter) -> str:
    return "–" if value is None else fmt(float(value))


def _positive(value: Number) -> float:
    """The length a value is drawn with: ``None`` and negatives draw nothing."""
    if value is None:
        return 0.0
    return max(0.0, float(value))


def _has_data(values: Sequence[Number]) -> bool:
    return any(v is not None and float(v) != 0 for v in values)


def _fill(uid: str, index: int) -> str:
    """The fill of series ``index``: its colour, or its pattern after the first."""
    if index % len(PATTERNS) == 0:
        return PALETTE[index % len(PALETTE)]
    return f"url(#{uid}-p{index})"


def _defs(uid: str, count: int) -> str:
    """Patterns for ``count`` series (the first is a plain colour)."""
    parts = []
    for index in range(1, count):
        colour = PALETTE[index % len(PALETTE)]
        kind = PATTERNS[index % len(PATTERNS)]
        if kind == "stripes":
            mark = '<path d="M0 6 L6 0" stroke="#fff" stroke-width="1.5"/>'
        elif kind == "dots":
            mark = '<circle cx="3" cy="3" r="1.3" fill="#fff"/>'
        elif kind == "cross":
            mark = '<path d="M0 0 L6 6 M6 0 L0 6" stroke="#fff" stroke-width="1"/>'
        else:
            mark = ""
        parts.append(
            f'<pattern id="{uid}-p{index}" width="6" height="6" patternUnits="userSpaceOnUse">'
            f'<rect width="6" height="6" fill="{colour}"/>{mark}</pattern>'
        )
    return f"<defs>{''.join(parts)}</defs>" if parts else ""


def _open(uid: str, width: int, height: int, title: str, desc: str, kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'viewBox="0 0 {width} {height}" preserveAspectRatio="xMinYMin meet" '
        f'role="img" aria-labelledby="{uid}-t {uid}-d" {FONT} font-size="13">'
        f'<title id="{uid}-t">{_esc(title)}</title><desc id="{uid}-d">{_esc(desc)}</desc>'
    )


def _text(
    x: float, y: float, text: str, *, anchor: str = "start", fill: str = TEXT, **attrs: str
) -> str:
    extra = "".join(f' {k.rstrip("_").replace("_", "-")}="{_esc(v)}"' for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}"{extra}>'
        f"{_esc(text)}</text>"
    )


def _bar(x: float, y: float, w: float, h: float, fill: str, value: Number, label: str) -> str:
    data = "" if value is None else f"{float(value):g}"
    return (
        f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" '
        f'fill="{fill}" stroke="{TEXT}" stroke-width="0.5" data-value="{data}">'
        f"<title>{_esc(label)}</title></rect>"
    )


def no_data(title: str, *, desc: str | None = None, uid: str | None = None) -> str:
    """The chart of nothing: a framed message, still an image with a title."""
    u = _uid(uid)
    return (
        _open(u, 360, 80, title, desc or NO_DATA, "empty")
        + f'<rect x="0.5" y="0.5" width="359" height="79" fill="#fff" stroke="{GRID}"/>'
        + _text(180, 45, NO_DATA, anchor="middle", font_size="15", class_="no-data")
        + "</svg>"
    )


def _legend(uid: str, names: Sequence[str], x: float, y: float) -> str:
    """Swatches with the series' names, one per line (they also name the patterns)."""
    parts = []
    for index, name in enumerate(names):
        top = y + index * 20
        parts.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="14" height="14" fill="{_fill(uid, index)}" '
            f'stroke="{TEXT}" stroke-width="0.5"/>' + _text(x + 20, top + 12, name)
        )
    return f'<g class="legend">{"".join(parts)}</g>'


def bar_chart(
    title: str,
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number]]],
    *,
    desc: str | None = None,
    fmt: Formatter = plain,
    max_value: float | None = None,
    uid: str | None = None,
) -> str:
    """Horizontal bars, one group per category and one bar per series (a single
    series is a plain bar chart), each labelled with its value. ``max_value`` fixes
    the scale (1.0 for shares); otherwise the largest value fills the width."""
    values = [v for _, vs in series for v in vs]
    if not categories or not series or not _has_data(values):
        return no_data(title, desc=desc, uid=uid)
    u = _uid(uid)
    width, label_w, value_w = 360, 130, 60
    bar_h, gap = 16, 10
    n = len(series)
    legend_h = 20 * n + 6 if n > 1 else 0
    group_h = bar_h * n + gap
    height = legend_h + group_h * len(categories) + 6
    scale = max_value or max(_positive(v) for v in values) or 1.0
    room = width - label_w - value_w
    body = [_legend(u, [name for name, _ in series], 0, 2) if n > 1 else ""]
    for row, category in enumerate(categories):
        top = legend_h + row * group_h
        body.append(_text(label_w - 6, top + bar_h * n / 2 + 4, _short(category, 17), anchor="end"))
        for index, (name, vs) in enumerate(series):
            value = vs[row] if row < len(vs) else None
            w = room * min(_positive(value), scale) / scale
            y = top + index * bar_h
            shown = _label(value, fmt)
            tip = f"{category}: {shown}" if n == 1 else f"{category}, {name}: {shown}"
            body.append(_bar(label_w, y + 1, w, bar_h - 2, _fill(u, index), value, tip))
            body.append(_text(label_w + w + 4, y + bar_h - 4, shown, class_="value"))
    return (
        _open(u, width, height, title, desc or title, "bar")
        + _defs(u, n)
        + f'<line x1="{label_w}" y1="{legend_h}" x2="{label_w}" y2="{height - 4}" '
        f'stroke="{MUTED}"/>' + "".join(body) + "</svg>"
    )


def _short(text: str, limit: int = 20) -> str:
    """A category label cut to fit the label column (the table has it whole)."""
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stacked_bar_chart(
    title: str,
    categories: Sequence[str],
    parts: Sequence[tuple[str, Sequence[Number]]],
    *,
    desc: str | None = None,
    fmt: Formatter = plain,
    uid: str | None = None,
) -> str:
    """One horizontal bar per category made of ``parts`` laid end to end (e.g. the
    system delay then the rep delay), each segment labelled with its value below the
    bar; the scale is the longest bar."""
    values = [v for _, vs in parts for v in vs]
    if not categories or not parts or not _has_data(values):
        return no_data(title, desc=desc, uid=uid)
    u = _uid(uid)
    width, label_w = 360, 90
    bar_h, row_h = 20, 46
    legend_h = 20 * len(parts) + 6
    height = legend_h + row_h * len(categories) + 4
    totals = [
        sum(_positive(vs[row] if row < len(vs) else None) for _, vs in parts)
        for row in range(len(categories))
    ]
    scale = max(totals) or 1.0
    room = width - label_w - 10
    body = [_legend(u, [name for name, _ in parts], 0, 2)]
    for row, category in enumerate(categories):
        top = legend_h + row * row_h
        body.append(_text(label_w - 6, top + bar_h - 5, _short(category, 12), anchor="end"))
        x = float(label_w)
        labels = []
        for index, (name, vs) in enumerate(parts):
            value = vs[row] if row < len(vs) else None
            w = room * _positive(value) / scale
            shown = _label(value, fmt)
            body.append(
                _bar(x, top, w, bar_h, _fill(u, index), value, f"{category}, {name}: {shown}")
            )
            labels.append(f"{name} {shown}")
            x += w
        body.append(_text(label_w, top + bar_h + 15, " · ".join(labels), class_="value"))
    return (
        _open(u, width, height, title, desc or title, "stacked")
        + _defs(u, len(parts))
        + "".join(body)
        + "</svg>"
    )


def funnel_chart(
    title: str,
    stages: Sequence[tuple[str, Number]],
    *,
    conversions: Sequence[float | None] | None = None,
    desc: str | None = None,
    fmt: Formatter = plain,
    uid: str | None = None,
) -> str:
    """Centred bars for the stages of a funnel, widest first as counted, with the
    conversion from each stage to the next written between them (``conversions[i]``
    is stage i → stage i+1, as the report gives it; ``None`` shows "–")."""
    values = [v for _, v in stages]
    if not stages or not _has_data(values):
        return no_data(title, desc=desc, uid=uid)
    u = _uid(uid)
    width, label_w, bar_h, step = 360, 90, 22, 40
    height = step * len(stages) + 4
    scale = max(_positive(v) for v in values) or 1.0
    room = width - label_w - 10
    middle = label_w + room / 2
    body = []
    for index, (name, value) in enumerate(stages):
        top = index * step
        w = max(room * _positive(value) / scale, 0.0)
        shown = _label(value, fmt)
        body.append(_text(label_w - 6, top + bar_h - 6, _short(name, 12), anchor="end"))
        body.append(_bar(middle - w / 2, top, w, bar_h, PALETTE[0], value, f"{name}: {shown}"))
        # the count sits on a white plate in the middle, readable on any bar width
        body.append(
            f'<rect x="{middle - 28:.1f}" y="{top + 4:.1f}" width="56" height="14" rx="3" '
            f'fill="#fff" opacity="0.9"/>'
        )
        body.append(_text(middle, top + bar_h - 7, shown, anchor="middle", class_="value"))
        if conversions is not None and index < len(stages) - 1:
            rate = conversions[index] if index < len(conversions) else None
            text = f"↓ {'–' if rate is None else percent(rate)}"
            body.append(
                _text(middle, top + bar_h + 14, text, anchor="middle", fill=MUTED, class_="rate")
            )
    return _open(u, width, height, title, desc or title, "funnel") + "".join(body) + "</svg>"


def column_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[Number]]],
    *,
    desc: str | None = None,
    fmt: Formatter = plain,
    max_value: float | None = None,
    uid: str | None = None,
    kind: str = "columns",
) -> str:
    """Vertical columns along an axis (weeks, buckets), one per series side by side,
    each labelled with its value above it. ``max_value`` fixes the scale (1.0 for
    shares). ``kind="histogram"`` draws one series with touching columns."""
    values = [v for _, vs in series for v in vs]
    if not x_labels or not series or not _has_data(values):
        return no_data(title, desc=desc, uid=uid)
    u = _uid(uid)
    n = len(series)
    legend_h = 20 * n + 6 if n > 1 else 0
    width, left, bottom, plot_h = 360, 8, 34, 150
    height = legend_h + 18 + plot_h + bottom
    base = legend_h + 18 + plot_h
    slot = (width - left * 2) / len(x_labels)
    gap = 0.0 if kind == "histogram" else min(10.0, slot * 0.2)
    col_w = (slot - gap) / n
    scale = max_value or max(_positive(v) for v in values) or 1.0
    body = [_legend(u, [name for name, _ in series], 0, 2) if n > 1 else ""]
    body.append(
        f'<line x1="{left}" y1="{base:.1f}" x2="{width - left}" y2="{base:.1f}" stroke="{MUTED}"/>'
    )
    font = "11" if len(x_labels) * n > 8 else "13"
    for column, x_label in enumerate(x_labels):
        x0 = left + column * slot + gap / 2
        for index, (name, vs) in enumerate(series):
            value = vs[column] if column < len(vs) else None
            h = plot_h * min(_positive(value), scale) / scale
            x = x0 + index * col_w
            shown = _label(value, fmt)
            tip = f"{x_label}: {shown}" if n == 1 else f"{x_label}, {name}: {shown}"
            body.append(_bar(x, base - h, col_w, h, _fill(u, index), value, tip))
            body.append(
                _text(
                    x + col_w / 2,
                    base - h - 4,
                    shown,
                    anchor="middle",
                    font_size=font,
                    class_="value",
                )
            )
        body.append(
            _text(
                x0 + (slot - gap) / 2,
                base + 16,
                _short(x_label, 12),
                anchor="middle",
                font_size=font,
            )
        )
    return (
        _open(u, width, height, title, desc or title, kind) + _defs(u, n) + "".join(body) + "</svg>"
    )


def histogram(
    title: str,
    buckets: Sequence[tuple[str, Number]],
    *,
    desc: str | None = None,
    fmt: Formatter = plain,
    uid: str | None = None,
) -> str:
    """A distribution: counts per bucket (``"≤ 5 min"``, ``"5–60 min"``…) as touching
    columns, in the order given."""
    return column_chart(
        title,
        [label for label, _ in buckets],
        [("count", [v for _, v in buckets])],
        desc=desc,
        fmt=fmt,
        uid=uid,
        kind="histogram",
    )
