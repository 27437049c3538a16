"""/api/v1/status: how the deployment is doing, for an admin or a monitor's token
(``status:read``): each worker queue's depth and lateness, the workers' heartbeats, and
the verdict ``baton status`` prints. Never a secret: queue names, counts, times, host
names and process ids.

The models live here rather than in ``schemas.py``: nothing else uses them. The public,
unauthenticated probes are ``/healthz`` (liveness) and ``/readyz`` (readiness), which
tell no queue's depth.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from baton.api.deps import Actor, Authenticated, Ctx
from baton.domain.rescores import rescore_document
from baton.services import status as status_service

router = APIRouter(prefix="/api/v1", tags=["operations"], dependencies=[Authenticated])


class QueueStatusPublic(BaseModel):
    """One queue a worker lane drains."""

    key: str = Field(description="Stable name: sla_steps, handoff_queue, duplicate_checks, ...")
    name: str
    lane: str = Field(description="The worker lane that drains it")
    waiting: int = Field(
        description="Items due now and not yet done, and every item that failed in its "
        "current series of attempts, whenever its next try is"
    )
    retrying: int = Field(description="Of those, items that failed at least once")
    oldest_due_at: datetime | None
    age_seconds: float | None = Field(
        description="Since the oldest waiting item became due (a retrying one: since its "
        "series of attempts first fell due)"
    )
    allowance_seconds: float = Field(
        description="Lateness expected by design (nurture's send rate; the duplicate "
        "lane's wait between batches)"
    )
    judged: bool = Field(description="Whether its lateness counts towards the verdict")
    behind: bool
    note: str
    paused: list[str] = Field(
        description="Destinations a running worker does not try for now (it could not reach "
        "them): their messages wait untried; one answering with errors shows as retrying"
    )


class LaneBeatPublic(BaseModel):
    name: str
    last_pass_at: datetime | None
    failures: int = Field(description="Passes in a row that failed (the lane backs off)")
    paused: list[str] = Field(description="Destinations its courier does not try for now")


class WorkerPublic(BaseModel):
    """A worker process, as its heartbeat row tells it."""

    id: int
    host: str
    pid: int
    started_at: datetime
    last_tick_at: datetime
    stopped_at: datetime | None
    state: Literal["running", "silent", "stopped", "replaced"] = Field(
        description="replaced: its process is gone (killed) and a worker started since on "
        "the same host"
    )
    silent_seconds: float
    lanes: list[LaneBeatPublic]
    replaced_by: int | None = Field(description="The id of the worker that replaced it")
    one_pass: bool = Field(
        description="A one-off pass (`baton worker --once`), stopped when it was written; "
        "only the latest is kept"
    )


class UnfinishedRescorePublic(BaseModel):
    """The active contract version's re-score of every lead, begun and not finished:
    the leads after ``scored`` are still scored by an older version until ``baton
    contract rescore`` finishes it."""

    version: int
    scored: int = Field(description="Leads re-scored when its progress was last noted")
    total: int = Field(description="Leads to re-score, counted as it began")
    started_at: datetime
    noted_at: datetime = Field(description="When its progress was last noted")
    noted_seconds: float
    may_be_running: bool = Field(
        description="Its progress was noted within the last minute: it may still be running"
    )
    text: str = Field(description="The sentence `baton status` prints")


class DeploymentStatusPublic(BaseModel):
    """The verdict and what it rests on."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "verdict": "behind",
                    "reasons": [
                        "email to send: 114 waiting, the oldest due 3 min 12 s ago "
                        "(lane email delivery)"
                    ],
                    "checked_at": "2026-03-02T10:15:00Z",
                    "behind_after_seconds": 120.0,
                    "silent_after_seconds": 60.0,
                    "last_tick_at": "2026-03-02T10:14:55Z",
                    "queues": [
                        {
                            "key": "outbox_email",
                            "name": "email to send",
                            "lane": "email delivery",
                            "waiting": 114,
                            "retrying": 3,
                            "oldest_due_at": "2026-03-02T10:11:48Z",
                            "age_seconds": 192.0,
                            "allowance_seconds": 0.0,
                            "judged": True,
                            "behind": True,
                            "note": "",
                            "paused": [],
                        }
                    ],
                    "workers": [
                        {
                            "id": 7,
                            "host": "app-1",
                            "pid": 4182,
                            "started_at": "2026-03-02T08:00:03Z",
                            "last_tick_at": "2026-03-02T10:14:55Z",
                            "stopped_at": None,
                            "state": "running",
                            "silent_seconds": 5.0,
                            "lanes": [
                                {
                                    "name": "email delivery",
                                    "last_pass_at": "2026-03-02T10:14:58Z",
                                    "failures": 4,
                                    "paused": [],
                                }
                            ],
                            "replaced_by": None,
                            "one_pass": False,
                        }
                    ],
                    "rescore": None,
                }
            ]
        }
    }

    verdict: Literal["ok", "behind", "worker_silent"] = Field(
        description="ok; behind (a queue's oldest due item waited longer than "
        "behind_after_seconds); worker_silent (no worker beat within silent_after_seconds)"
    )
    reasons: list[str] = Field(description="One sentence per problem; empty when ok")
    checked_at: datetime
    behind_after_seconds: float = Field(description="BATON_STATUS_BEHIND_SECONDS")
    silent_after_seconds: float
    last_tick_at: datetime | None = Field(description="The latest heartbeat of any worker")
    queues: list[QueueStatusPublic]
    workers: list[WorkerPublic] = Field(description="Workers that beat in the last day")
    rescore: UnfinishedRescorePublic | None = Field(
        description="The active contract version's re-score when it has not finished "
        "(stopped half way, or running); null otherwise. Not part of the verdict"
    )


@router.get("/status", operation_id="get_status", response_model=DeploymentStatusPublic)
def get_status(ctx: Ctx, actor: Actor) -> DeploymentStatusPublic:
    """How the deployment is doing (admins, or a token with ``status:read``). Always
    200 when the answer could be read: the verdict is in the body, so a monitor tells
    "behind" from "cannot ask"."""
    found = status_service.deployment_status(ctx, actor=actor)
    answer = asdict(found)
    if found.rescore is not None:
        answer["rescore"] = rescore_document(found.rescore)
    return DeploymentStatusPublic.model_validate(answer)
