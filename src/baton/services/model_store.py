"""Reading learned models and the features they score, inside the caller's
transaction: the shared ground of training (:mod:`baton.services.models`), scoring
with a ``predicted`` component and the backtest.

:func:`load_model_in` returns a model only as Baton saved it (checksum verified) and
keeps the few recently used ones in memory (a model version never changes once
stored). :func:`feature_rows_in` builds each lead's features as of a moment, from the
lead's stored fields and the activities up to that moment: the leakage guard holds in
SQL (nothing after the moment is read) and again in
:func:`baton.learn.features.lead_features`.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from threading import Lock

from sqlalchemy import select
from sqlalchemy.engine import Connection

from baton.domain.errors import NotFound
from baton.heap import freeze_startup_heap
from baton.learn.features import FeatureRow, FeatureSpec, TimedEvent, lead_features
from baton.learn.model import LeadModel, ModelFileError, import_libraries
from baton.services.context import Context
from baton.services.contract_rules import active_contract
from baton.services.queries import chunks
from baton.store.bulk import read_datetime, sqlite_datetime
from baton.store.tables import lead_models, leads

FEATURE_COLUMNS = (
    leads.c.id,
    leads.c.email,
    leads.c.phone,
    leads.c.title,
    leads.c.country,
    leads.c.region,
    leads.c.source,
    leads.c.campaign,
    leads.c.utm_source,
    leads.c.utm_medium,
    leads.c.utm_campaign,
    leads.c.attributes,
    leads.c.created_at,
)

log = logging.getLogger(__name__)

_CACHE: OrderedDict[tuple[int, str], LeadModel] = OrderedDict()
_CACHE_LOCK = Lock()
_CACHE_SIZE = 4


def load_model_in(connection: Connection, version: int) -> LeadModel:
    """Model ``version`` as stored (any status), or :class:`NotFound`."""
    row = connection.execute(
        select(lead_models.c.artifact_sha256).where(lead_models.c.version == version)
    ).first()
    if row is None:
        raise NotFound(f"model version {version} does not exist")
    key = (version, str(row[0]))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            _CACHE.move_to_end(key)
            return cached
    data = connection.execute(
        select(lead_models.c.artifact).where(lead_models.c.version == version)
    ).scalar_one()
    modules = len(sys.modules)
    model = LeadModel.from_bytes(bytes(data), sha256=key[1])
    if gc.get_freeze_count() and len(sys.modules) > modules:
        # A server or worker froze its start-up heap (baton.heap) before its first model:
        # the libraries the bytes imported live as long as the process, so they join the
        # frozen heap rather than be walked by every full collection (collected first, so
        # no garbage is frozen with them). Once per process at most.
        freeze_startup_heap()
    with _CACHE_LOCK:
        _CACHE[key] = model
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return model


def preload_scoring_model(ctx: Context) -> bool:
    """Start-up of a server or worker: when the active contract scores with a model,
    import scikit-learn (:func:`import_libraries`) and load that model into the cache,
    before the start-up heap is frozen; whether it did. The first score then neither
    imports the libraries inside its write transaction (about 1 s of CPU) nor unpickles
    the model (60-80 ms). A contract that gains a model while the process runs has its
    first score do both, once per process."""
    found = active_contract(ctx)
    if found is None or found[1].scoring.predicted is None:
        return False
    import_libraries()
    try:
        with ctx.read() as connection:
            load_model_in(connection, found[1].scoring.predicted.model)
    except (NotFound, ModelFileError) as problem:
        # Scoring says so at each score and carries on without the model; start-up too.
        log.warning("the active contract's model cannot be loaded: %s", problem)
    return True


def _as_of(moments: datetime | Mapping[int, datetime], lead_id: int) -> datetime | None:
    if isinstance(moments, datetime):
        return moments
    return moments.get(lead_id)


def feature_rows_in(
    connection: Connection,
    spec: FeatureSpec,
    lead_ids: Sequence[int],
    as_of: datetime | Mapping[int, datetime],
    *,
    numeric_attributes: Sequence[str] = (),
) -> dict[int, FeatureRow]:
    """Each lead's features as of ``as_of`` (one moment for all, or one per lead: a
    lead missing from the mapping is left out). Reads leads and their activities in
    chunks of ids; activities after a lead's moment are never read."""
    found: dict[int, FeatureRow] = {}
    postgres = connection.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    ordered = sorted({int(i) for i in lead_ids if _as_of(as_of, int(i)) is not None})
    for part in chunks(ordered):
        rows = {
            int(r["id"]): dict(r)
            for r in connection.execute(select(*FEATURE_COLUMNS).where(leads.c.id.in_(part)))
            .mappings()
            .all()
        }
        moments = [m for m in (_as_of(as_of, i) for i in rows) if m is not None]
        latest = max(moments) if moments else None
        events: dict[int, list[TimedEvent]] = {}
        if rows and latest is not None:
            # Every type is read (the first touch counts whatever its type); the
            # features count the wanted ones. The bound is the latest moment of the chunk;
            # each lead's own moment is applied below and in lead_features.
            for lead_id, kind, at in connection.exec_driver_sql(
                "SELECT lead_id, type, occurred_at FROM activities WHERE lead_id IN "
                f"({', '.join([mark] * len(rows))}) AND occurred_at <= {mark}",
                (*rows, latest if postgres else sqlite_datetime(latest)),
            ):
                moment = read_datetime(at)
                limit = _as_of(as_of, int(lead_id))
                if limit is not None and moment <= limit:
                    events.setdefault(int(lead_id), []).append(TimedEvent(str(kind), moment))
        for lead_id, lead in rows.items():
            cutoff = _as_of(as_of, lead_id)
            if cutoff is None:
                continue
            lead["created_at"] = read_datetime(lead["created_at"])
            found[lead_id] = lead_features(
                spec,
                lead,
                events.get(lead_id, ()),
                cutoff,
                numeric_attributes=numeric_attributes,
            )
    return found
