"""What every command prints with: the two consoles, one-line errors, plain lines,
the progress bar and the time format.

Only Typer and Rich are imported here (and lazily the masking of :mod:`baton.redact`),
so that ``baton --help`` and ``baton --version`` start without the database stack.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence
from datetime import UTC, datetime, tzinfo

import typer
from rich.cells import cell_len
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from baton.domain.local_time import zone_label


class _Console(Console):
    """Rich's console, except that on a pipe or a file (cron, grep, a log alert) a
    line is never broken at Rich's default 80 columns: a line broken in two no longer
    matches what is grepped for. On a terminal lines still wrap at its width."""

    @property
    def soft_wrap(self) -> bool:
        return self._soft_wrap or not self.is_terminal

    @soft_wrap.setter
    def soft_wrap(self, value: bool) -> None:
        self._soft_wrap = value


console = _Console()
errors = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr and return the exit to raise."""
    from rich.markup import escape

    from baton.redact import mask

    # Every error line is masked: a driver's message may quote the database URL. And
    # escaped: a message is text, so "baton-handoff[postgres]" keeps its brackets.
    errors.print(f"[bold red]error:[/] {escape(mask(message))}")
    return typer.Exit(code)


def say(text: str) -> None:
    """Output as is (no markup: names and URLs are shown verbatim), never wrapped, so
    it can be grepped and copied."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def heading(text: str) -> None:
    """A title line, as is (no markup), broken between words at the console's width."""
    console.print(text, markup=False, highlight=False)


def on_terminal() -> bool:
    """Whether stdout is a terminal, where a progress bar is shown (elsewhere Rich hides
    it: a log or a pipe gets plain lines or nothing)."""
    return sys.stdout.isatty() or console.is_terminal


def progress() -> Progress:
    """A progress bar on stdout, shown only on a terminal (:func:`on_terminal`)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not on_terminal(),
    )


class _Reader:
    """The operator's time zone: ``BATON_TIMEZONE``, or ``None`` for the machine's."""

    zone: tzinfo | None = None
    name: str | None = None


def use_timezone(name: str | None) -> None:
    """Show times in the IANA zone ``name`` from now on (``None``: the machine's local
    zone). Set from the settings by every command that opens the database."""
    from zoneinfo import ZoneInfo

    _Reader.zone = ZoneInfo(name) if name else None
    _Reader.name = name or None


def reader_zone_name() -> str | None:
    """The IANA name of the zone times are shown in (for what formats times itself,
    like the packet), or ``None`` when the machine's zone has no name we can find."""
    import os
    from pathlib import Path
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if _Reader.name:
        return _Reader.name
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    # /etc/localtime -> /usr/share/zoneinfo/Europe/Paris (resolve() does not raise)
    candidates.append(str(Path("/etc/localtime").resolve()).partition("zoneinfo/")[2])
    for name in filter(None, candidates):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            continue
        return name
    return None


def local(value: datetime) -> datetime:
    """``value`` in the reader's zone (a naive value is taken as UTC, as Baton stores)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(_Reader.zone)  # None: the machine's zone


def when(value: datetime | None) -> str:
    """A time as the CLI prints it, in the reader's zone with its label
    (``2026-03-02 10:00 CET``), or a dash. Each time gets its own label: summer and
    winter times differ. The one format of every time the CLI shows."""
    if value is None:
        return "—"
    shown = local(value)
    return f"{shown:%Y-%m-%d %H:%M} {zone_label(shown)}"


def day(value: datetime) -> str:
    """The reader's date of a time (where a table shows only the day)."""
    return f"{local(value):%Y-%m-%d}"


def _stacked(header: str, width: int) -> str:
    """``header`` broken between words into lines of at most ``width`` cells."""
    lines: list[str] = []
    for word in header.split():
        if lines and cell_len(lines[-1]) + 1 + cell_len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "\n".join(lines)


def fit_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    left: Collection[int] = (0,),
    width: int | None = None,
) -> Table | None:
    """A table in which every cell stays on one line (headers break between words,
    never inside one), or ``None`` when it would not fit in ``width`` (the console's)
    and the caller should choose another layout. Cells are plain text, not markup."""
    widths = [
        max(
            [max((cell_len(w) for w in header.split()), default=0)]
            + [cell_len(row[i]) for row in rows]
        )
        for i, header in enumerate(headers)
    ]
    # Each column has one cell of padding either side and a rule on its left, plus the
    # table's right edge.
    if sum(widths) + 3 * len(widths) + 1 > (width or console.width):
        return None
    table = Table()
    for i, header in enumerate(headers):
        table.add_column(
            Text(_stacked(header, widths[i])),
            justify="left" if i in left else "right",
            width=widths[i],
            no_wrap=True,
        )
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def print_records(records: Sequence[tuple[str, Sequence[tuple[str, str]]]]) -> None:
    """The vertical layout for what no table fits: per record a heading line, then one
    ``key: value`` line per field, keys aligned."""
    for heading, fields in records:
        if heading:
            say(heading)
        pad = max((cell_len(key) for key, _ in fields), default=0) + 1
        for key, value in fields:
            say(f"  {key + ':':<{pad}} {value}")


WRAP_MIN = 10
"""The narrowest a column of free text (an error, an address) gets in a list."""


def show_list(
    title: str,
    columns: Sequence[tuple[str, bool]],
    rows: Sequence[Sequence[str]],
    *,
    record: str,
) -> None:
    """A list as a table when its unbreakable columns (ids, states, times) fit the
    console whole, the free-text ones (``wraps``) folding in what is left; else one
    ``key: value`` block per row, headed ``RECORD FIRST-CELL``. A time is never cut
    to ``2026-03-02 10:00 CE…``. Cells are Rich markup (escape what is not)."""
    plain = [[Text.from_markup(cell) for cell in row] for row in rows]
    widths = [
        max([cell_len(header)] + [cell.cell_len for cell in (r[i] for r in plain)])
        if not wraps
        else max(WRAP_MIN, max((cell_len(w) for w in header.split()), default=0))
        for i, (header, wraps) in enumerate(columns)
    ]
    if sum(widths) + 3 * len(widths) + 1 <= console.width:
        table = Table(title=title)
        for (header, wraps), width in zip(columns, widths, strict=True):
            if wraps:
                table.add_column(header, overflow="fold", min_width=width)
            else:
                table.add_column(header, no_wrap=True, width=width)
        for cells in plain:
            table.add_row(*cells)
        console.print(table)
        return
    heading(title)
    pad = max(cell_len(header) for header, _ in columns[1:]) + 1 if len(columns) > 1 else 0
    for cells in plain:
        console.print(Text(f"{record} {cells[0].plain}"), soft_wrap=True)
        for (header, _), cell in zip(columns[1:], cells[1:], strict=True):
            if cell.plain:  # an empty cell reads better left out than as "error: "
                label = Text(f"  {header + ':':<{pad}} ")
                # A cell of several lines (a rep's absences) goes on under its first.
                for index, line in enumerate(cell.split("\n")):
                    lead = label if index == 0 else Text(" " * label.cell_len)
                    console.print(lead + line, soft_wrap=True)
