"""Learned scoring models: train a draft from the recorded outcomes, read versions,
sign them (both teams, as a contract) and activate one (issue #16, item 2).

**What is learned.** One example per lead (not merged) whose outcome is known:

- target ``won``: positive when the lead became a customer; negative when it was lost
  or disqualified (a rejection that disqualifies counts) or was handed off more than
  :data:`STALE_DAYS` days ago without a win. A lead still in play is no example.
- target ``accepted``: sales' verdicts: positive when sales accepted the lead (SAL,
  or an accepted handoff), negative when sales rejected it (the rejection reasons are
  counted in ``trained_on.rejected_by_reason``).
- target ``attributes.KEY``: an outcome column that came with imported data (X
  Education's ``Converted``): 1/yes/true positive, 0/no/false negative, anything else
  no example. That attribute is never a feature.

**Leakage guard.** Each lead's features are those it had at its first handoff
(``mql_at``), or at its capture when it was never handed off: activities after that
moment are never read (:func:`~baton.services.model_store.feature_rows_in`). Lead
fields that sales fills in after contact cannot be rewound and must be left out by
name (``exclude``); an attribute present on most positives and almost no negatives
(a deal's fields, written when it was won) is left out as well, and said so
(``trained_on.excluded_leaks``).

**Split.** ``auto``: the latest 30 % of the examples by moment are held out when the
moments spread over more than a week (the model is judged on what came after what it
learned from, as it will be used), else a stratified random 30 %; ``time`` and
``stratified`` force one. The stored model is the one fitted on the training part, so
the stored evaluation is honest for it.

**Versions.** A trained model is a ``draft``; a ``marketing`` user and a
``sales_manager`` (two people) sign it, as a contract
(:mod:`baton.services.signatures`); an admin activates it, superseding the previous
active one. The active model is the one new drafts and the scheduled retraining are
compared against; a contract names the version it scores with
(``scoring.predicted.model``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal, check_signer
from baton.domain.errors import Conflict, FieldProblem, NotFound, ValidationFailed
from baton.domain.reports import OUTCOME_BITS, STAGE_BITS
from baton.learn.features import (
    LEAD_FEATURE_FIELDS,
    FeatureRow,
    FeatureSpec,
    category,
    feature_label,
    is_identity,
    number,
    outcome_label,
)
from baton.learn.model import (
    MODEL_KINDS,
    Evaluation,
    LeadModel,
    ModelKind,
    NotEnoughOutcomes,
    check_outcomes,
    checksum,
    evaluate,
    stratified_holdout,
    time_holdout,
    train,
)
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.model_store import feature_rows_in
from baton.services.signatures import (
    ROLES,
    Role,
    approvals_of,
    check_role,
    may,
    sign_in,
    signable_sides,
    signatures_in,
)
from baton.store.tables import activities, handoffs, lead_model_approvals, lead_models, leads

log = logging.getLogger("baton.models")

Split = Literal["auto", "time", "stratified"]
SPLITS: tuple[Split, ...] = ("auto", "time", "stratified")
STALE_DAYS = 90
"""A lead handed off this many days ago without a win is a lost example."""
TIME_SPLIT_MIN_DAYS = 7
"""``auto`` splits by time when the examples' moments spread over more than this."""
MIN_ATTRIBUTE_SHARE = 0.02
"""An attribute becomes a feature when present on this share of the examples."""
MAX_CATEGORIES = 200
"""A text attribute with more distinct values than this is left out (an identifier)."""
UNIQUE_MIN_ROWS = 30
UNIQUE_SHARE = 0.9
"""Text with a different value on 90 % of at least 30 examples is an identifier too
(a name, a free-text note), even with fewer than 200 values."""
MIN_SHOWN_SUPPORT = 10
"""A category value is shown among a model's top features only when at least this
many training examples have it (a rare value could single out one lead)."""
NUMERIC_SHARE = 0.95
"""An attribute is a number when this share of its present values parse as numbers."""
LEAK_POSITIVE_SHARE = 0.5
LEAK_NEGATIVE_SHARE = 0.01
"""An attribute present on at least half the positives and at most 1 % of the
negatives was written with the outcome (a deal's fields): left out as a leak."""
TOP_FEATURES = 12
SUSPICIOUS_ROC_AUC = 0.97
"""A held-out ROC AUC this high on lead outcomes usually means a field was filled in
after the outcome (sales' tags, a lead quality): the evaluation carries a warning
naming the top features to check."""
MIN_HELD_OUT_CLASS = 10
"""Fewest examples of each outcome in the hold-out for a figure worth storing."""
FEATURE_CHUNK = 10_000

Progress = Callable[[str, int, int], None]
"""``progress(step, done, total)``: steps ``history``, ``features``, ``training``,
``evaluating``."""


@dataclass(frozen=True)
class TopFeature:
    """A feature (``name`` or ``name=value`` for a category) and its weight in log-odds
    in a logistic regression (the model itself, or one fitted beside it on the same
    rows for other kinds: ``source`` says which)."""

    feature: str
    weight: float
    label: str


@dataclass(frozen=True)
class ModelVersion:
    """One stored model version with its signatures, evaluation and history."""

    version: int
    name: str
    kind: str
    target: str
    status: str
    created_by: str
    created_at: datetime
    activated_at: datetime | None
    activated_by: str | None
    superseded_at: datetime | None
    evaluation: Evaluation
    spec: FeatureSpec
    trained_on: dict[str, Any]
    approvals: dict[str, str] = field(default_factory=dict)
    top_features: tuple[TopFeature, ...] = ()
    top_features_source: str = ""


@dataclass(frozen=True)
class ModelActions:
    """What ``actor`` may do to one model version now (for offering buttons)."""

    sign: tuple[Role, ...] = ()
    activate: bool = False


@dataclass(frozen=True)
class ModelActivation:
    version: int
    previous: int | None


@dataclass(frozen=True)
class Examples:
    """The leads with a known outcome: id, label, moment of the features."""

    ids: list[int]
    labels: list[int]
    moments: list[datetime]
    attributes: list[dict[str, Any]]
    rejected_by_reason: dict[str, int]
    leads_total: int
    handed_off: int = 0
    """Examples whose moment is their first handoff (the others: their capture)."""


# --- storing and reading ------------------------------------------------------------


def store_model_in(
    connection: Connection,
    model: LeadModel,
    *,
    name: str,
    target: str,
    evaluation: Evaluation,
    trained_on: Mapping[str, Any],
    created_by: str,
    now: datetime,
    status: str = "draft",
) -> int:
    """Store ``model`` as the next version (``status`` draft unless told); its number."""
    latest = connection.execute(select(func.max(lead_models.c.version))).scalar()
    version = int(latest or 0) + 1
    artifact = model.to_bytes()
    connection.execute(
        insert(lead_models).values(
            version=version,
            name=name,
            kind=model.kind,
            target=target,
            status=status,
            features=model.spec.to_json(),
            artifact=artifact,
            artifact_sha256=checksum(artifact),
            evaluation=evaluation.to_json(),
            trained_on=dict(trained_on),
            created_by=created_by,
            created_at=now,
            activated_at=now if status == "active" else None,
            activated_by=created_by if status == "active" else None,
        )
    )
    return version


PUBLIC_COLUMNS = [c for c in lead_models.c if c.name != "artifact"]


def _row(connection: Connection, version: int, *, lock: bool = False) -> dict[str, Any]:
    query = select(*PUBLIC_COLUMNS).where(lead_models.c.version == version)
    if lock:
        query = query.with_for_update()
    row = connection.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"model version {version} does not exist")
    return dict(row)


def _approvals(connection: Connection, model_id: int) -> dict[str, str]:
    return approvals_of(
        signatures_in(connection, lead_model_approvals, lead_model_approvals.c.model_id, model_id)
    )


def _public(row: Mapping[str, Any], approvals: dict[str, str]) -> ModelVersion:
    trained_on = dict(row["trained_on"] or {})
    top = tuple(
        TopFeature(str(t["feature"]), float(t["weight"]), _label(str(t["feature"])))
        for t in trained_on.get("top_features", ())
    )
    return ModelVersion(
        version=int(row["version"]),
        name=str(row["name"]),
        kind=str(row["kind"]),
        target=str(row["target"]),
        status=str(row["status"]),
        created_by=str(row["created_by"]),
        created_at=row["created_at"],
        activated_at=row["activated_at"],
        activated_by=row["activated_by"],
        superseded_at=row["superseded_at"],
        evaluation=Evaluation.from_json(row["evaluation"]),
        spec=FeatureSpec.from_json(row["features"]),
        trained_on=trained_on,
        approvals=approvals,
        top_features=top,
        top_features_source=str(trained_on.get("top_features_source", "")),
    )


def _label(feature: str) -> str:
    name, sep, value = feature.partition("=")
    return feature_label(name, value) if sep else feature_label(name)


def features_as_of(trained_on: Mapping[str, Any]) -> str:
    """In words, the moment a model's examples were taken at and their period: each
    lead's first handoff, or its capture when it was never handed off."""
    start = str(trained_on.get("period_from") or "")[:10]
    end = str(trained_on.get("period_to") or "")[:10]
    rows = int(trained_on.get("rows", 0) or 0)
    handed = trained_on.get("handed_off")
    if not start:
        return "features as of each lead's first handoff, or its capture"
    if handed is None:
        moment = "features as of each lead's first handoff, or its capture when never handed off"
        what = "dated"
    elif int(handed) == 0:
        moment = "features as of each lead's capture (none was handed off)"
        what = "captured"
    elif int(handed) >= rows:
        moment = "features as of each lead's first handoff"
        what = "handed off"
    else:
        moment = (
            f"features as of each lead's first handoff ({rows - int(handed):,} never handed "
            "off: as of capture)"
        )
        what = "dated"
    period = f"on {start}" if start == end else f"from {start} to {end}"
    return f"{moment}; {what} {period}; nothing recorded after that moment is read"


def list_models(ctx: Context, *, actor: Principal) -> list[ModelVersion]:
    """Every model version, newest first."""
    allowed(actor, Action.READ_MODELS)
    with ctx.read() as connection:
        rows = connection.execute(
            select(*PUBLIC_COLUMNS).order_by(lead_models.c.version.desc())
        ).mappings()
        return [_public(dict(r), _approvals(connection, int(r["id"]))) for r in rows.all()]


def get_model(ctx: Context, version: int, *, actor: Principal) -> ModelVersion:
    """One version: its evaluation (with the calibration bands), feature spec, the
    history it learned from and its top features."""
    allowed(actor, Action.READ_MODELS)
    with ctx.read() as connection:
        row = _row(connection, version)
        return _public(row, _approvals(connection, int(row["id"])))


def model_exists(ctx: Context, version: int, *, actor: Principal) -> bool:
    """Whether model ``version`` is stored (``baton contract validate`` checks the
    model a draft names)."""
    allowed(actor, Action.READ_MODELS)
    with ctx.read() as connection:
        found = connection.execute(
            select(lead_models.c.id).where(lead_models.c.version == version)
        ).first()
    return found is not None


def active_model_version(ctx: Context) -> int | None:
    """The active model's version, or None."""
    with ctx.read() as connection:
        found = connection.execute(
            select(lead_models.c.version).where(lead_models.c.status == "active")
        ).scalar()
    return None if found is None else int(found)


def model_actions(model: ModelVersion, *, actor: Principal) -> ModelActions:
    """The sides ``actor`` may still sign, and whether they may activate (signed by
    both, not active, an admin)."""
    sign = signable_sides(actor, model.status, model.approvals, Action.SIGN_MODEL)
    activate = (
        set(model.approvals) == set(ROLES)
        and model.status in ("approved", "superseded")
        and may(actor, Action.ACTIVATE_MODEL)
    )
    return ModelActions(sign=sign, activate=activate)


# --- signing and activating ------------------------------------------------------------


def approve_model(ctx: Context, version: int, *, role: Role, actor: Principal) -> ModelVersion:
    """Sign a draft model for one side, exactly as a contract is signed: a
    ``marketing`` user for marketing, a ``sales_manager`` for sales, two different
    people, never an admin. Signed by both, the version is ``approved``."""
    check_role(role)
    allowed(actor, Action.SIGN_MODEL)
    check_signer(actor, role)
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = _row(connection, version, lock=True)
        approvals = sign_in(
            connection,
            lead_models,
            lead_model_approvals,
            "model_id",
            row,
            role=role,
            actor=actor,
            now=now,
            subject=f"model version {version}",
        )
        return _public(row, approvals)


def activate_model(ctx: Context, version: int, *, actor: Principal) -> ModelActivation:
    """Make a model signed by both sides the active one (an admin); the previous active
    one is superseded in the same transaction. Nothing is re-scored: a contract names
    the model version it scores with."""
    allowed(actor, Action.ACTIVATE_MODEL)
    now = ctx.clock.now()
    with ctx.write() as connection:
        row = _row(connection, version, lock=True)
        if row["status"] == "active":
            raise Conflict(f"model version {version} is already active")
        approvals = _approvals(connection, int(row["id"]))
        if set(approvals) != set(ROLES):
            missing = [r for r in ROLES if r not in approvals]
            raise Conflict(
                f"model version {version} is {row['status']}: it needs approval by "
                f"{' and '.join(missing)} before activation"
            )
        previous = connection.execute(
            select(lead_models.c.version).where(lead_models.c.status == "active").with_for_update()
        ).scalar()
        connection.execute(
            update(lead_models)
            .where(lead_models.c.status == "active")
            .values(status="superseded", superseded_at=now)
        )
        connection.execute(
            update(lead_models)
            .where(lead_models.c.id == row["id"])
            .values(status="active", activated_at=now, activated_by=actor.name)
        )
    return ModelActivation(version=version, previous=None if previous is None else int(previous))


# --- examples -------------------------------------------------------------------------


def check_target(target: str) -> None:
    """Refuse a target that is not ``won``, ``accepted`` or ``attributes.KEY``."""
    if target in ("won", "accepted"):
        return
    key = target.removeprefix("attributes.")
    if target.startswith("attributes.") and key.strip() and len(target) <= 120:
        return
    raise ValidationFailed(
        "unknown target",
        [FieldProblem("target", "won, accepted or attributes.KEY (an imported outcome column)")],
    )


def _rejections_in(connection: Connection) -> dict[int, str]:
    """Each rejected lead's latest rejection reason code."""
    rows = connection.execute(
        select(handoffs.c.lead_id, handoffs.c.rejection_code)
        .where(handoffs.c.status == "rejected")
        .order_by(handoffs.c.lead_id, handoffs.c.closed_at, handoffs.c.id)
    )
    return {int(lead_id): str(code or "unknown") for lead_id, code in rows}


def _accepted_in(connection: Connection) -> set[int]:
    rows = connection.execute(
        select(handoffs.c.lead_id).where(handoffs.c.accepted_at.is_not(None)).distinct()
    )
    return {int(r[0]) for r in rows}


def examples_in(connection: Connection, target: str, now: datetime) -> Examples:
    """The leads with a known outcome for ``target``, with their label and the moment
    their features are taken at (first handoff, else capture), in a stable order: by
    the lead's identity in its source system (external id, else email), then by id, so
    that the same history imported twice gives the same stratified hold-out even when
    the import numbered its leads in another order."""
    columns = [
        leads.c.id,
        leads.c.external_system,
        leads.c.external_id,
        leads.c.email_key,
        leads.c.created_at,
        leads.c.mql_at,
        leads.c.sal_at,
        leads.c.customer_at,
        leads.c.stage,
        leads.c.reached_stages,
        leads.c.handoff_outcomes,
        leads.c.attributes,
    ]
    query = select(*columns).where(leads.c.merged_into_id.is_(None))
    stale = now - timedelta(days=STALE_DAYS)
    closed = STAGE_BITS["lost"] | STAGE_BITS["disqualified"]
    rejected = OUTCOME_BITS["rejected"]
    accepted: set[int] = set()
    reasons: dict[int, str] = {}
    if target == "won":
        query = query.where(
            or_(
                leads.c.customer_at.is_not(None),
                leads.c.stage.in_(("lost", "disqualified")),
                leads.c.reached_stages.op("&")(closed) != 0,
                and_(leads.c.mql_at.is_not(None), leads.c.mql_at <= stale),
            )
        )
    elif target == "accepted":
        accepted = _accepted_in(connection)
        reasons = _rejections_in(connection)
        query = query.where(
            or_(
                leads.c.sal_at.is_not(None),
                leads.c.handoff_outcomes.op("&")(rejected) != 0,
                leads.c.id.in_(
                    select(handoffs.c.lead_id).where(handoffs.c.accepted_at.is_not(None))
                ),
            )
        )
    total = int(
        connection.execute(
            select(func.count()).select_from(leads).where(leads.c.merged_into_id.is_(None))
        ).scalar()
        or 0
    )
    ids: list[int] = []
    labels: list[int] = []
    moments: list[datetime] = []
    attributes: list[dict[str, Any]] = []
    by_reason: Counter[str] = Counter()
    handed_off = 0
    key = target.removeprefix("attributes.")
    rows = connection.execute(query).mappings().all()
    rows = sorted(
        rows,
        key=lambda r: (
            str(r["external_system"] or ""),
            str(r["external_id"] or ""),
            str(r["email_key"] or ""),
            int(r["id"]),
        ),
    )
    for row in rows:
        lead_id = int(row["id"])
        attrs = dict(row["attributes"] or {})
        label: int | None
        if target == "won":
            label = 1 if row["customer_at"] is not None else 0
        elif target == "accepted":
            if row["sal_at"] is not None or lead_id in accepted:
                label = 1
            elif int(row["handoff_outcomes"] or 0) & rejected:
                label = 0
                by_reason[reasons.get(lead_id, "unknown")] += 1
            else:
                label = None
        else:
            label = outcome_label(attrs.get(key))
        if label is None:
            continue
        ids.append(lead_id)
        labels.append(label)
        moments.append(row["mql_at"] or row["created_at"])
        handed_off += row["mql_at"] is not None
        attributes.append(attrs)
    return Examples(
        ids, labels, moments, attributes, dict(sorted(by_reason.items())), total, handed_off
    )


def count_examples(ctx: Context, target: str) -> int:
    """How many leads have a known outcome for ``target`` now (the retraining lane
    compares it with what the active model learned from)."""
    with ctx.read() as connection:
        return len(examples_in(connection, target, ctx.clock.now()).ids)


# --- the feature spec -------------------------------------------------------------------


@dataclass(frozen=True)
class SpecChoice:
    spec: FeatureSpec
    numeric: tuple[str, ...]
    leaks: tuple[str, ...]
    identifiers: tuple[str, ...]
    unmatched_exclude: tuple[str, ...]
    unmatched_keep: tuple[str, ...] = ()
    keepable: tuple[str, ...] = ()
    """The identifiers left out for their many values only (``keep`` may use them)."""


def _event_types_in(connection: Connection, ids: Sequence[int]) -> list[str]:
    """Activity types recorded before their lead's moment (first handoff, else capture)."""
    if not ids:
        return []
    moment = func.coalesce(leads.c.mql_at, leads.c.created_at)
    query = (
        select(activities.c.type)
        .select_from(activities.join(leads, leads.c.id == activities.c.lead_id))
        .where(leads.c.merged_into_id.is_(None), activities.c.occurred_at <= moment)
        .distinct()
    )
    return sorted(str(r[0]) for r in connection.execute(query))


def choose_spec(
    examples: Examples,
    event_types: Sequence[str],
    *,
    exclude: Sequence[str],
    attributes: Sequence[str] | None,
    keep: Sequence[str] = (),
) -> SpecChoice:
    """The default lead fields, the attribute keys present on at least 2 % of the
    examples (numbers when 95 % of their values parse; leaks left out) or exactly
    ``attributes`` when given, and the activity types seen; minus ``exclude``.
    Identifiers are always left out, given or not: keys naming a person's identity or
    contact data (:func:`~baton.learn.features.is_identity`), text with more than 200
    distinct values or a different value on nearly every example, whole numbers
    nearly all distinct like a lead number. ``keep`` names attributes to use even so
    when they only look like identifiers by their many values (Olist's
    ``landing_page_id``: 200+ pages, a real signal); a key naming a person's identity
    or contact data is never kept."""
    kept = {k.removeprefix("attributes.") for k in keep}
    n = len(examples.ids)
    present: Counter[str] = Counter()
    present_positive: Counter[str] = Counter()
    numeric_count: Counter[str] = Counter()
    values: dict[str, set[str]] = {}
    numbers: dict[str, set[float]] = {}
    positives = sum(examples.labels)
    negatives = n - positives
    for attrs, label in zip(examples.attributes, examples.labels, strict=True):
        for key, raw in attrs.items():
            folded = category(raw) if not isinstance(raw, int | float) else str(raw)
            if folded is None:
                continue
            present[key] += 1
            if label:
                present_positive[key] += 1
            parsed = number(raw)
            if parsed is not None:
                numeric_count[key] += 1
                numbers.setdefault(key, set()).add(parsed)
            seen = values.setdefault(key, set())
            if len(seen) <= MAX_CATEGORIES:
                seen.add(folded)
    gone = set(exclude)
    numeric: list[str] = []
    leaks: list[str] = []
    identifiers: list[str] = []
    keepable: list[str] = []
    chosen: list[str] = []
    candidates = (
        list(dict.fromkeys(a.removeprefix("attributes.") for a in attributes))
        if attributes is not None
        else sorted(k for k, c in present.items() if c >= MIN_ATTRIBUTE_SHARE * max(n, 1))
    )
    for key in candidates:
        if key in gone or f"attributes.{key}" in gone:
            continue
        if is_identity(key):
            identifiers.append(f"attributes.{key}")
            continue
        count = present.get(key, 0)
        is_number = count > 0 and numeric_count[key] >= NUMERIC_SHARE * count
        on_positives = present_positive[key] / positives if positives else 0.0
        on_negatives = (count - present_positive[key]) / negatives if negatives else 0.0
        if (
            attributes is None
            and on_positives >= LEAK_POSITIVE_SHARE
            and on_negatives <= LEAK_NEGATIVE_SHARE
        ):
            leaks.append(f"attributes.{key}")
            continue
        distinct_numbers = numbers.get(key, set())
        serial = (
            is_number
            and len(distinct_numbers) > MAX_CATEGORIES
            and len(distinct_numbers) >= 0.99 * count
            and all(v.is_integer() for v in distinct_numbers)
        )
        distinct_texts = len(values.get(key, ()))
        unique_text = not is_number and (
            distinct_texts > MAX_CATEGORIES
            or (count >= UNIQUE_MIN_ROWS and distinct_texts >= UNIQUE_SHARE * count)
        )
        if (serial or unique_text) and key not in kept:
            identifiers.append(f"attributes.{key}")
            keepable.append(f"attributes.{key}")
            continue
        chosen.append(key)
        if is_number:
            numeric.append(key)
    known = (
        set(LEAD_FEATURE_FIELDS)
        | {"email", "phone", "days_known"}
        | {f"attributes.{k}" for k in present}
        | set(present)
        | {f"events.{t}" for t in event_types}
    )
    unmatched = tuple(name for name in exclude if name not in known)
    unmatched_keep = tuple(name for name in keep if name.removeprefix("attributes.") not in present)
    spec = FeatureSpec(
        fields=LEAD_FEATURE_FIELDS,
        attributes=tuple(chosen),
        event_types=tuple(event_types),
        exclude=tuple(dict.fromkeys([*exclude, *leaks])),
    )
    return SpecChoice(
        spec,
        tuple(numeric),
        tuple(leaks),
        tuple(identifiers),
        unmatched,
        unmatched_keep,
        tuple(keepable),
    )


# --- training -------------------------------------------------------------------------


def _problem(message: str) -> ValidationFailed:
    return ValidationFailed(message, [FieldProblem("target", message)])


def _check_options(kind: str, target: str, holdout: float, split: str) -> None:
    problems: list[FieldProblem] = []
    if kind not in MODEL_KINDS:
        problems.append(FieldProblem("kind", f"one of {', '.join(MODEL_KINDS)}"))
    if split not in SPLITS:
        problems.append(FieldProblem("split", f"one of {', '.join(SPLITS)}"))
    if not 0.05 <= holdout <= 0.5:
        problems.append(FieldProblem("holdout", "a share between 0.05 and 0.5"))
    if problems:
        raise ValidationFailed("the training options are not valid", problems)
    check_target(target)


def _top_features(
    model: LeadModel, rows: Sequence[FeatureRow], labels: Sequence[int]
) -> tuple[list[dict[str, Any]], str]:
    ranked, source = _ranked_weights(model, rows, labels)
    return [{"feature": k, "weight": round(v, 4)} for k, v in ranked[:TOP_FEATURES]], source


def _ranked_weights(
    model: LeadModel, rows: Sequence[FeatureRow], labels: Sequence[int]
) -> tuple[list[tuple[str, float]], str]:
    """Every weight that may be shown, the largest |weight| first, and its source."""
    if model.kind == "logistic_regression":
        weights, source = model.weights(), "the model itself (a logistic regression)"
    else:
        companion = train("logistic_regression", model.spec, rows, labels)
        weights = companion.weights()
        source = (
            "a logistic regression fitted beside it on the same rows (the model's own "
            "ranking may differ)"
        )
    support: Counter[str] = Counter()
    for row in rows:
        for name, value in row.items():
            if isinstance(value, str):
                support[f"{name}={value}"] += 1
    shown = {k: v for k, v in weights.items() if "=" not in k or support[k] >= MIN_SHOWN_SUPPORT}
    return sorted(shown.items(), key=lambda kv: (-abs(kv[1]), kv[0])), source


def _outcome_words(target: str, positive: bool) -> str:
    if target == "won":
        return "won leads" if positive else "leads not won"
    if target == "accepted":
        return "accepted leads" if positive else "rejected leads"
    return f"leads with {target} = {1 if positive else 0}"


def _check_held_out(target: str, positives: int, negatives: int, holdout: float) -> None:
    """Refuse a hold-out too small to measure (see :func:`train_model`)."""
    for count, positive in ((positives, True), (negatives, False)):
        if count < MIN_HELD_OUT_CLASS:
            larger = (
                "hold out a larger share (--holdout 0.5)"
                if holdout < 0.5
                else "the hold-out is already half the examples"
            )
            raise NotEnoughOutcomes(
                f"the hold-out holds {count} {_outcome_words(target, positive)}; a ROC AUC "
                f"on fewer than {MIN_HELD_OUT_CLASS} is noise: record more outcomes or "
                f"{larger}"
            )


def _evaluation_warnings(
    evaluation: Evaluation, ranked: Sequence[tuple[str, float]]
) -> tuple[str, ...]:
    """A held-out ROC AUC too good to be true, with the three features (not values)
    of largest weight to check."""
    if evaluation.roc_auc < SUSPICIOUS_ROC_AUC:
        return ()
    features = list(dict.fromkeys(name.partition("=")[0] for name, _ in ranked))
    names = ", ".join(features[:3]) or "none shown"
    return (
        f"suspiciously good: held-out ROC AUC {evaluation.roc_auc:.3f} (>= "
        f"{SUSPICIOUS_ROC_AUC}); a field may be filled after the outcome; check the top "
        f"features ({names}) and --exclude them",
    )


def _empty_history_message(target: str, examples: Examples) -> str:
    if examples.leads_total == 0:
        return "the history is empty: no leads are recorded, so there is nothing to learn from"
    if target == "won":
        what = (
            "no lead has a known outcome yet (won, lost or disqualified, or handed off "
            f"more than {STALE_DAYS} days ago)"
        )
    elif target == "accepted":
        what = "sales has accepted or rejected no lead yet"
    else:
        what = f"no lead has {target} set to 1/yes/true or 0/no/false"
    return f"{what}: {examples.leads_total} leads, 0 examples for target '{target}'"


def train_model(
    ctx: Context,
    *,
    actor: Principal,
    kind: str = "gradient_boosting",
    target: str = "won",
    name: str | None = None,
    exclude: Sequence[str] = (),
    attributes: Sequence[str] | None = None,
    keep: Sequence[str] = (),
    holdout: float = 0.3,
    split: str = "auto",
    progress: Progress | None = None,
    retrained_from: int | None = None,
) -> ModelVersion:
    """Train a model of ``kind`` on the recorded outcomes for ``target`` and store it
    as a draft (see the module docstring). A history that cannot teach (empty, one
    class, fewer than 20 of a class, a hold-out with one class) is refused with a
    :class:`ValidationFailed` on ``target`` saying what is missing.

    A hold-out with fewer than :data:`MIN_HELD_OUT_CLASS` examples of either outcome
    is refused too, rather than stored with a warning: the stored ROC AUC is what both
    teams read before they sign, and on five winners it swings by ±0.1 from one
    random split to the next (noise a draft would carry into the signing), while the
    fix is one command away (more outcomes, or ``holdout`` 0.5).

    ``keep`` names attributes the identifier rule would leave out for their many
    values (see :func:`choose_spec`); identity and contact keys are refused. A
    held-out ROC AUC of :data:`SUSPICIOUS_ROC_AUC` or more is stored with a warning in
    the evaluation naming the top three features (a field filled in after the
    outcome is the usual cause)."""
    allowed(actor, Action.TRAIN_MODEL)
    _check_options(kind, target, holdout, split)
    personal = [k for k in keep if is_identity(k.removeprefix("attributes."))]
    if personal:
        message = (
            f"{', '.join(personal)} names a person's identity or contact data: never a "
            "feature, so it cannot be kept"
        )
        raise ValidationFailed(message, [FieldProblem("keep", message)])
    model_kind: ModelKind = kind  # type: ignore[assignment]
    report = progress or (lambda step, done, total: None)
    now = ctx.clock.now()
    excluded = tuple(
        dict.fromkeys([*exclude, *([target] if target.startswith("attributes.") else [])])
    )
    with ctx.read() as connection:
        report("history", 0, 1)
        examples = examples_in(connection, target, now)
        report("history", 1, 1)
        if not examples.ids:
            raise _problem(_empty_history_message(target, examples))
        try:
            check_outcomes(examples.labels, what=f"'{target}' outcomes")
        except NotEnoughOutcomes as exc:
            raise _problem(str(exc)) from None
        choice = choose_spec(
            examples,
            _event_types_in(connection, examples.ids),
            exclude=excluded,
            attributes=attributes,
            keep=keep,
        )
        moments = dict(zip(examples.ids, examples.moments, strict=True))
        rows: dict[int, FeatureRow] = {}
        total = len(examples.ids)
        for start in range(0, total, FEATURE_CHUNK):
            part = examples.ids[start : start + FEATURE_CHUNK]
            rows.update(
                feature_rows_in(
                    connection, choice.spec, part, moments, numeric_attributes=choice.numeric
                )
            )
            report("features", min(start + FEATURE_CHUNK, total), total)
    feature_rows = [rows.get(i, {}) for i in examples.ids]
    if not any(feature_rows):
        message = (
            "the examples have no feature to learn from (no field, attribute or activity "
            "before their handoff is left)"
        )
        raise ValidationFailed(message, [FieldProblem("exclude", message)])
    spread = max(examples.moments) - min(examples.moments)
    chosen_split = split
    if split == "auto":
        chosen_split = "time" if spread > timedelta(days=TIME_SPLIT_MIN_DAYS) else "stratified"
    held = (
        time_holdout(examples.moments, share=holdout)
        if chosen_split == "time"
        else stratified_holdout(examples.labels, share=holdout)
    )
    fit_rows = [r for r, h in zip(feature_rows, held, strict=True) if not h]
    fit_labels = [y for y, h in zip(examples.labels, held, strict=True) if not h]
    test_rows = [r for r, h in zip(feature_rows, held, strict=True) if h]
    test_labels = [y for y, h in zip(examples.labels, held, strict=True) if h]
    try:
        check_outcomes(fit_labels, what=f"'{target}' outcomes in the training part")
        if len(set(test_labels)) < 2:
            raise NotEnoughOutcomes(
                f"the held-out part ({chosen_split} split, {len(test_labels)} rows) holds "
                "one outcome only, so the model cannot be measured; try --split stratified"
            )
        held_positives = sum(test_labels)
        _check_held_out(target, held_positives, len(test_labels) - held_positives, holdout)
        report("training", 0, 1)
        model = train(
            model_kind, choice.spec, fit_rows, fit_labels, numeric_attributes=choice.numeric
        )
        report("training", 1, 1)
        report("evaluating", 0, 1)
        evaluation = evaluate(model, test_rows, test_labels)
        ranked, top_source = _ranked_weights(model, fit_rows, fit_labels)
        top = [{"feature": k, "weight": round(v, 4)} for k, v in ranked[:TOP_FEATURES]]
        evaluation = replace(evaluation, warnings=_evaluation_warnings(evaluation, ranked))
        report("evaluating", 1, 1)
    except NotEnoughOutcomes as exc:
        raise _problem(str(exc)) from None
    fit_moments = [m for m, h in zip(examples.moments, held, strict=True) if not h]
    test_moments = [m for m, h in zip(examples.moments, held, strict=True) if h]
    positives = sum(examples.labels)
    trained_on: dict[str, Any] = {
        "target": target,
        "rows": len(examples.ids),
        "positives": positives,
        "negatives": len(examples.ids) - positives,
        "training_rows": len(fit_rows),
        "held_out_rows": len(test_rows),
        "split": chosen_split,
        "holdout": holdout,
        "period_from": min(examples.moments).isoformat(),
        "period_to": max(examples.moments).isoformat(),
        "handed_off": examples.handed_off,
        "training_to": max(fit_moments).isoformat() if fit_moments else None,
        "held_out_from": min(test_moments).isoformat() if test_moments else None,
        "excluded": list(excluded),
        "excluded_leaks": list(choice.leaks),
        "excluded_identifiers": list(choice.identifiers),
        "exclude_unmatched": list(choice.unmatched_exclude),
        "keepable_identifiers": list(choice.keepable),
        "kept": list(dict.fromkeys(keep)),
        "keep_unmatched": list(choice.unmatched_keep),
        "numeric_attributes": list(choice.numeric),
        "rejected_by_reason": examples.rejected_by_reason,
        "top_features": top,
        "top_features_source": top_source,
    }
    if retrained_from is not None:
        trained_on["retrained_from"] = retrained_from
    title = name or f"{kind.replace('_', ' ')} on {target}"
    with ctx.write() as connection:
        version = store_model_in(
            connection,
            model,
            name=title[:200],
            target=target,
            evaluation=evaluation,
            trained_on=trained_on,
            created_by=actor.name,
            now=now,
        )
        row = _row(connection, version)
        return _public(row, {})


# --- scheduled retraining (the worker) ---------------------------------------------------

RETRAIN_MIN_NEW_OUTCOMES = 50
"""New outcomes needed since the last model before the worker trains another."""
RETRAINER = "baton (scheduled retraining)"


@dataclass(frozen=True)
class RetrainCheck:
    """Whether a retraining is due now, and why (or why not)."""

    due: bool
    reason: str
    active: int | None = None
    new_outcomes: int = 0


def retrain_check(ctx: Context) -> RetrainCheck:
    """Due when ``retrain_model_days`` is on, a model is active, the newest of it and
    the drafts retrained from it is older than that many days, and at least
    :data:`RETRAIN_MIN_NEW_OUTCOMES` more leads have an outcome than it learned from."""
    days = ctx.settings.retrain_model_days
    if days <= 0:
        return RetrainCheck(False, "scheduled retraining is off")
    now = ctx.clock.now()
    with ctx.read() as connection:
        active = (
            connection.execute(select(*PUBLIC_COLUMNS).where(lead_models.c.status == "active"))
            .mappings()
            .first()
        )
        if active is None:
            return RetrainCheck(False, "no model is active")
        newest = dict(active)
        for row in connection.execute(
            select(lead_models.c.created_at, lead_models.c.trained_on).where(
                lead_models.c.created_by == RETRAINER,
                lead_models.c.created_at >= active["created_at"],
            )
        ).mappings():
            if (row["trained_on"] or {}).get("retrained_from") == active["version"] and row[
                "created_at"
            ] > newest["created_at"]:
                newest = {**newest, **dict(row)}
        version = int(active["version"])
        if now - newest["created_at"] < timedelta(days=days):
            return RetrainCheck(False, f"the last model is younger than {days} days", version)
        known = len(examples_in(connection, str(active["target"]), now).ids)
    learned = int((newest["trained_on"] or {}).get("rows", 0))
    new = known - learned
    if new < RETRAIN_MIN_NEW_OUTCOMES:
        return RetrainCheck(
            False, f"{new} new outcomes (needs {RETRAIN_MIN_NEW_OUTCOMES})", version, new
        )
    return RetrainCheck(True, f"{new} new outcomes in {days}+ days", version, new)


def retrain_if_due(ctx: Context) -> ModelVersion | None:
    """The worker's retraining pass: when :func:`retrain_check` says so, train a draft
    with the active model's kind, target and exclusions and store it with its
    evaluation; never activate it. A history that no longer teaches is logged, not
    raised (the next pass tries again)."""
    check = retrain_check(ctx)
    if not check.due or check.active is None:
        return None
    from baton.domain.access import system

    with ctx.read() as connection:
        active = _row(connection, check.active)
    spec = FeatureSpec.from_json(active["features"])
    trained_on = dict(active["trained_on"] or {})
    leaks = set(trained_on.get("excluded_leaks", ()))
    exclude = [n for n in spec.exclude if n not in leaks]
    try:
        draft = train_model(
            ctx,
            actor=system(RETRAINER),
            kind=str(active["kind"]),
            target=str(active["target"]),
            name=f"{active['name']} (retrained)"[:200],
            exclude=exclude,
            keep=[str(k) for k in trained_on.get("kept", ())],
            holdout=float(trained_on.get("holdout", 0.3)),
            split="auto",
            retrained_from=check.active,
        )
    except ValidationFailed as refused:
        log.warning("scheduled retraining of model %s: %s", check.active, refused.detail)
        return None
    log.info(
        "scheduled retraining: draft model %s from active %s (ROC AUC %.3f, was %.3f)",
        draft.version,
        check.active,
        draft.evaluation.roc_auc,
        float(active["evaluation"]["roc_auc"]),
    )
    return draft
