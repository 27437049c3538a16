"""Percentiles in the database: SQLite's registered ``baton_percentiles`` aggregate and
PostgreSQL's ``percentile_disc`` give the nearest-rank values a person would pick by
hand from the sorted list, group by group, with NULLs left out."""

from __future__ import annotations

import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, insert, select

from baton.services.context import Context
from baton.services.reports import _spread_of, _spreads

values = st.lists(
    st.one_of(st.none(), st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)),
    max_size=60,
)


def by_hand(found: list[float | None], p: int) -> float | None:
    ordered = sorted(v for v in found if v is not None)
    if not ordered:
        return None
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(groups=st.dictionaries(st.sampled_from("abc"), st.tuples(values, values), min_size=1))
def test_percentiles_are_the_nearest_rank_values_of_each_group(
    ctx: Context, groups: dict[str, tuple[list[float | None], list[float | None]]]
) -> None:
    table = Table(
        "percentile_probe",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("grp", String(1)),
        Column("x", Float),
        Column("y", Float),
    )
    rows = [
        {"grp": g, "x": x, "y": y}
        for g, (xs, ys) in groups.items()
        for x, y in zip(xs + [None] * len(ys), ys + [None] * len(xs), strict=False)
    ]
    with ctx.engine.begin() as connection:
        table.drop(connection, checkfirst=True)
        table.create(connection)
        if rows:
            connection.execute(insert(table), rows)
        query = select(table.c.grp, *_spreads(ctx.dialect, {"x": table.c.x, "y": table.c.y}))
        found = {
            r["grp"]: _spread_of(r, ["x", "y"])
            for r in connection.execute(query.group_by(table.c.grp)).mappings()
        }
        table.drop(connection)
    for group, (xs, ys) in groups.items():
        if not xs and not ys:
            continue
        column_x = [r["x"] for r in rows if r["grp"] == group]
        column_y = [r["y"] for r in rows if r["grp"] == group]
        for name, column in (("x", column_x), ("y", column_y)):
            assert found[group][name].n == sum(v is not None for v in column)
            for p in (50, 90):
                assert found[group][name].at[p] == by_hand(column, p)


def test_sqlite_aggregate_says_null_for_a_column_without_values(sqlite_ctx: Context) -> None:
    with sqlite_ctx.engine.connect() as connection:
        raw = connection.exec_driver_sql(
            "SELECT baton_percentiles(v, w) FROM (SELECT 3.0 AS v, NULL AS w"
            " UNION ALL SELECT 1.0, NULL UNION ALL SELECT 2.0, NULL)"
        ).scalar()
    assert json.loads(raw) == [[3, 2.0, 3.0], [0, None, None]]
