"""The backtest of a contract version (``/contract/{version}/backtest``): what it would
have done to the recorded history, side by side with the active version, with the
threshold sweep drawn as an inline SVG chart (server-rendered, no script).

A GET: the backtest only reads (:mod:`baton.services.backtest`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from baton.api.deps import Ctx
from baton.api.heavy import heavy_run
from baton.domain.backtest import SideReport
from baton.domain.errors import ValidationFailed
from baton.services import contracts as contract_service
from baton.services.backtest import backtest_contract
from baton.web.deps import PageUser
from baton.web.render import render

router = APIRouter(include_in_schema=False)

Version = Annotated[int, Path(ge=1, le=2**31)]

WIDTH, HEIGHT, PAD = 560, 240, 40
COLOURS = ("#1f5fa8", "#b5541c")


def sweep_chart(sides: list[SideReport]) -> dict[str, Any]:
    """Polylines (SVG coordinates) of precision and recall against the threshold for
    each side, on one shared threshold axis; shares on 0..100 %."""
    thresholds = [p.threshold for side in sides for p in side.sweep]
    if not thresholds:
        return {"lines": [], "ticks": []}
    low, high = min(thresholds), max(thresholds)
    span = (high - low) or 1.0

    def x(value: float) -> float:
        return round(PAD + (value - low) / span * (WIDTH - 2 * PAD), 1)

    def y(share: float) -> float:
        return round(HEIGHT - PAD - share * (HEIGHT - 2 * PAD), 1)

    lines: list[dict[str, Any]] = []
    for index, side in enumerate(sides):
        colour = COLOURS[index % len(COLOURS)]
        for metric, dash in (("precision", ""), ("recall", "6 4")):
            points = [
                (x(p.threshold), y(value))
                for p in side.sweep
                if (value := getattr(p, metric)) is not None
            ]
            if points:
                lines.append(
                    {
                        "label": f"{side.label}: {metric}",
                        "points": " ".join(f"{a},{b}" for a, b in points),
                        "colour": colour,
                        "dash": dash,
                        "marker": None,
                    }
                )
        lines.append(
            {
                "label": f"{side.label}: threshold {side.threshold}",
                "points": "",
                "marker": x(float(side.threshold)),
                "colour": colour,
                "dash": "",
            }
        )
    ticks = [{"x": x(low + span * i / 4), "label": f"{low + span * i / 4:g}"} for i in range(5)]
    return {
        "lines": lines,
        "ticks": ticks,
        "width": WIDTH,
        "height": HEIGHT,
        "pad": PAD,
        "shares": [{"y": y(s / 4), "label": f"{s * 25}%"} for s in range(5)],
    }


@router.get("/contract/{version}/backtest", response_model=None)
def backtest_page(request: Request, ctx: Ctx, user: PageUser, version: Version) -> HTMLResponse:
    """Backtest ``version`` against the active one (or alone) and show the figures."""
    found = contract_service.get_contract(ctx, version, actor=user.principal)
    try:
        with heavy_run("backtest"):
            report = backtest_contract(ctx, version, actor=user.principal, processes=1)
    except ValidationFailed as exc:
        return render(
            request,
            "contract/backtest.html",
            {"contract": found, "report": None, "error": exc.detail},
            status=422,
        )
    sides = [report.draft] + ([report.against] if report.against else [])
    return render(
        request,
        "contract/backtest.html",
        {
            "contract": found,
            "report": report,
            "sides": sides,
            "chart": sweep_chart(sides),
            "error": None,
        },
    )
