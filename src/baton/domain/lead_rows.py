"""Rows of a lead or activity CSV file turned into validated inputs: the part of an
import that needs no database, so that it can run in worker processes
(:func:`validate_records`) as well as in the importing one, with the same result.

Everything here is importable without the services, the store or the web layers: a
worker process started by ``spawn`` imports this module and the models, not the whole
application. The file reading, the writing and the pool itself are in
:mod:`baton.services.imports`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar, cast

from pydantic import BaseModel, ValidationError

from baton.domain.batches import RowError, describe
from baton.domain.cells import GUARD, unguard
from baton.domain.contact import (
    InvalidContact,
    email_key,
    normalize_email,
    normalize_phone,
    simple_email,
)
from baton.domain.dates import read_instant
from baton.domain.leads import NOT_COLUMNS, LeadCreate
from baton.domain.privacy import ConsentBasis
from baton.domain.scans import split_name

_TRUE = frozenset({"1", "true", "yes", "y", "opt-in", "opted in", "subscribed"})
_FALSE = frozenset({"0", "false", "no", "n", "opt-out", "opted out", "unsubscribed"})


def _parse_bool(value: str) -> bool | str:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return value


@dataclass(frozen=True)
class Columns:
    """Where each cell of a row goes: by position, a field name, an extras key
    (``<extras_key>.<name>``) or ``None`` (dropped)."""

    targets: list[str | None]
    extras_key: str
    blanks: frozenset[str]
    external_system: str | None = None

    @functools.cached_property
    def plan(self) -> list[tuple[int, int, str]]:
        """``(position, kind, name)`` of each column kept, in order, worked out once for
        the file rather than once per cell: kind :data:`_FIELD` (``name`` is the field),
        :data:`_EXTRA` (``name`` is the extras key), :data:`_CONSENT`,
        :data:`_JSON_OBJECT` or :data:`_FULL_NAME`."""
        prefix = self.extras_key + "."
        plan = []
        for position, target in enumerate(self.targets):
            if target is None:
                continue
            if target == prefix + JSON_EXTRAS:
                plan.append((position, _JSON_OBJECT, ""))
            elif target.startswith(prefix):
                plan.append((position, _EXTRA, target[len(prefix) :]))
            elif target == "consent":
                plan.append((position, _CONSENT, target))
            elif target == FULL_NAME:
                plan.append((position, _FULL_NAME, target))
            else:
                plan.append((position, _FIELD, target))
        return plan


_FIELD, _EXTRA, _CONSENT, _JSON_OBJECT, _FULL_NAME = range(5)

FULL_NAME = "full_name"
"""The import target of a column holding the whole name (``Name``, ``Contact Name``):
not a field of a lead, it is split into ``first_name`` and ``last_name`` the way badge
scans split theirs (:func:`baton.domain.scans.split_name`), unless the row gives a first
or last name of its own."""

JSON_EXTRAS = "*"
"""The ``--map`` target ``attributes.*``: the column holds a JSON object whose keys are
attributes (the ``attributes`` column of a Baton lead export)."""


def _merge_json(extras: dict[str, Any], value: str, extras_key: str) -> None:
    """Add the keys of a JSON object cell to ``extras`` (a column of the row with the
    same key wins); a cell that is not a JSON object is kept as it is, under
    ``extras_key``."""
    try:
        found = json.loads(value)
    except ValueError:
        found = None
    if not isinstance(found, dict):
        extras.setdefault(extras_key, value)
        return
    for key, item in found.items():
        extras.setdefault(str(key), item)


def payload(cells: Sequence[str], columns: Columns) -> dict[str, Any]:
    """One CSV row as model input: mapped columns by field name, ``consent`` read as a
    yes/no answer, declared blanks (``--blank Select``) left out, and every other column
    kept under the extras key. A cell guarded against formulas (``'=x``, see
    :func:`baton.domain.cells.unguard`) is read without its guard. Raises ``ValueError``
    for a row with more cells than the header has columns. A :data:`FULL_NAME` cell
    becomes ``first_name`` and ``last_name`` when the row has neither."""
    if len(cells) > len(columns.targets):
        raise ValueError(
            f"the row has {len(cells)} cells but the header has {len(columns.targets)} columns"
        )
    payload: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    full_name = None
    blanks = columns.blanks
    width = len(cells)
    for position, kind, name in columns.plan:
        if position >= width:
            break
        value = cells[position]
        if not value or value.isspace():
            continue
        if blanks and value.strip().casefold() in blanks:
            continue
        if value[0] == GUARD:
            value = unguard(value)  # a cell a Baton export guarded against formulas
        if kind == _FIELD:
            payload[name] = value
        elif kind == _EXTRA:
            extras[name] = value
        elif kind == _CONSENT:
            payload["consent"] = _parse_bool(value)
        elif kind == _FULL_NAME:
            full_name = value
        else:
            _merge_json(extras, value, columns.extras_key)
    if extras:
        payload[columns.extras_key] = extras
    if full_name is not None and "first_name" not in payload and "last_name" not in payload:
        first, last = split_name(full_name)
        if first:
            payload["first_name"] = first
        if last:
            payload["last_name"] = last
    if columns.external_system and "external_id" in payload:
        payload.setdefault("external_system", columns.external_system)
    return payload


M = TypeVar("M", bound=BaseModel)

Validate = Callable[..., tuple[list[tuple[int, M]], list[RowError], list[RowError]]]


IDENTITY_PROBLEM = "a lead needs an email or a phone number"
_ALWAYS_KEPT = frozenset({"external_id", "external_system", "(row)"})


def validate_lead_rows(
    model: type[LeadCreate],
    rows: Sequence[tuple[int, Mapping[str, Any]]],
    context: Mapping[str, Any] | None = None,
) -> tuple[list[tuple[int, LeadCreate]], list[RowError], list[RowError]]:
    """Validate lead rows, keeping a row whose only problems are optional fields.

    A bad optional value (a country nobody can read, a consent that is not yes or no,
    a phone number beside a good email) is left out and reported as a warning; the row
    is imported without it. A row is rejected only when it cannot be identified: no
    usable email, phone or external id, or a bad email (it would be stored as another
    person), unless an external id identifies it. Every problem of a rejected row is
    reported, including those found once its bad values are left out."""
    good: list[tuple[int, LeadCreate]] = []
    errors: list[RowError] = []
    warnings: list[RowError] = []
    for number, raw in rows:
        try:
            good.append((number, model.model_validate(raw, context=context)))
            continue
        except ValidationError as exc:
            problems = describe(exc)
        bad = {loc.partition(".")[0] for loc, _ in problems}
        fatal = bad & _ALWAYS_KEPT or ("email" in bad and not raw.get("external_id"))
        reduced = {k: v for k, v in raw.items() if k not in bad}
        try:
            lead = model.model_validate(reduced, context=context)
        except ValidationError as again:
            more = [p for p in describe(again) if p not in problems]
            errors.extend(RowError(number, loc, msg) for loc, msg in [*problems, *more])
            continue
        if fatal:
            errors.extend(RowError(number, loc, msg) for loc, msg in problems)
            continue
        good.append((number, lead))
        warnings.extend(RowError(number, loc, msg) for loc, msg in problems)
    return good, errors, warnings


@dataclass
class DatedLeads:
    """:func:`validate_lead_rows` after taking each row's ``created_at`` out of it (not a
    field of a capture): read into ``dates`` (line -> moment), or reported like any bad
    optional value, a warning of a kept row or one more error of a rejected one.

    A plain object rather than a closure so that it pickles: a worker process fills its
    own copy's ``dates``, which :func:`validate_records` hands back to be merged."""

    zone: str
    day_first: bool
    now: datetime
    future_skew: timedelta
    dates: dict[int, datetime] = field(default_factory=dict)

    def __call__(
        self,
        model: type[LeadCreate],
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        context: Mapping[str, Any],
    ) -> tuple[list[tuple[int, LeadCreate]], list[RowError], list[RowError]]:
        kept: list[tuple[int, Mapping[str, Any]]] = []
        problems: list[RowError] = []
        latest = self.now + self.future_skew
        for number, raw in rows:
            text = raw.get("created_at")
            if text is not None:
                raw = {k: v for k, v in raw.items() if k != "created_at"}
                try:
                    at = read_instant(str(text), zone=self.zone, day_first=self.day_first)
                except ValueError as exc:
                    problems.append(RowError(number, "created_at", str(exc)))
                else:
                    if at > latest:
                        problems.append(
                            RowError(number, "created_at", f"'{text}' is in the future")
                        )
                    else:
                        self.dates[number] = at
            kept.append((number, raw))
        good, errors, warnings = validate_lead_rows(model, kept, context)
        rejected = {e.row for e in errors}
        errors.extend(p for p in problems if p.row in rejected)
        warnings.extend(p for p in problems if p.row not in rejected)
        return good, errors, warnings


def identity_groups(
    records: Sequence[tuple[int, Sequence[str]]], columns: Columns, default_region: str
) -> list[int]:
    """A group number for each record (by position), such that any two records that
    validation will find to be about one person share one: the rows of a person are
    then all in one group, whatever the rest of the row turns out to be, so that a
    writer can take a group's people once the records up to its last one are validated,
    before the rest of the file is.

    A row's candidate identities are read as validation reads them (:func:`payload` of
    the identifying columns, then trimmed and normalized by the same functions as
    :class:`~baton.domain.leads.LeadCreate`'s): its external id (any system), its email
    key, and, only when no email is read, its phone number. Rows sharing any candidate
    are in one group, transitively. A candidate that validation later refuses only
    joins groups that did not need joining (a coarser grouping is still right); a
    person's identity (:func:`~baton.services.imports._identity`, and the email that
    joins a row to the external id given with it) is always among a row's candidates."""
    # The identifying cells read as :func:`payload` reads them, without building the
    # row (this runs over the whole file in the writing process, before it writes).
    spots = [
        (position, target)
        for position, target in enumerate(columns.targets)
        if target in ("email", "phone", "external_id")
    ]
    width, blanks = len(columns.targets), columns.blanks
    parent = list(range(len(records)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[str, int] = {}
    for index, (_, cells) in enumerate(records):
        if len(cells) > width:
            continue  # a row that cannot be built is rejected: in no one's group
        raw: dict[str, str] = {}
        for position, target in spots:
            if position >= len(cells):
                break
            value = cells[position]
            if not value or value.isspace():
                continue
            if blanks and value.strip().casefold() in blanks:
                continue
            raw[target] = unguard(value) if value[0] == GUARD else value
        if not raw:
            continue
        candidates = []
        if (external_id := _trimmed(raw.get("external_id"))) is not None:
            candidates.append("x\x1f" + external_id)
        if (email := _trimmed(raw.get("email"))) is not None:
            # A row with an email that validation refuses is rejected (or identified
            # by its external id): its phone never identifies it. A plain address is
            # normalized without the cache (every address of a file is new to it).
            plain = simple_email(email) if len(email) <= 254 else None
            if plain is not None:
                candidates.append("e\x1f" + email_key(plain))
            else:
                with contextlib.suppress(InvalidContact):
                    candidates.append("e\x1f" + email_key(normalize_email(email)))
        elif (phone := _trimmed(raw.get("phone"))) is not None:
            with contextlib.suppress(InvalidContact):
                candidates.append("p\x1f" + normalize_phone(phone, default_region))
        for candidate in candidates:
            other = first.setdefault(candidate, index)
            if other != index:
                parent[root(index)] = root(other)
    return [i if parent[i] == i else root(i) for i in range(len(records))]


def _trimmed(value: Any) -> str | None:
    """A text cell as a model field reads it (trimmed, blank as none); ``None`` also for
    text the model refuses whatever it says (a NUL character)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if value and "\x00" not in value else None


def with_consent(lead: LeadCreate, basis: ConsentBasis | None, where: str) -> LeadCreate:
    """A row with the file's default lawful ``basis`` (unless it refuses or names its
    own) and, when it answers about consent, where the answer was given."""
    update: dict[str, Any] = {}
    if basis is not None and lead.consent is not False and lead.consent_basis is None:
        update.update(consent=True, consent_basis=basis)
    if (lead.consent is not None or update) and lead.consent_source is None:
        update["consent_source"] = where[:300]
    return lead.model_copy(update=update) if update else lead


def stored_columns(lead: LeadCreate) -> dict[str, Any]:
    """``lead.fields()`` (its non-empty stored columns) read straight from the validated
    model: every such field is a plain string, so the dump adds nothing but its cost."""
    return {k: v for k, v in lead.__dict__.items() if v is not None and k not in NOT_COLUMNS}


def capture_values(lead: LeadCreate) -> dict[str, Any]:
    """A validated capture as the writing reads it: :func:`stored_columns`, then
    ``attributes`` and the consent answer (:meth:`LeadCreate.consent_answer`). Plain
    values pickle several times faster than the model (a worker process hands them
    back to the writing one)."""
    values = stored_columns(lead)
    values["attributes"] = lead.attributes
    values.update(lead.consent_answer())
    return values


@dataclass(frozen=True)
class CaptureValues:
    """:func:`capture_values` of a file's row after :func:`with_consent` (the file's
    default lawful basis, and where its answers were given): what a lead import writes,
    worked out in the process that validates the row. A plain object, so that it
    pickles."""

    basis: ConsentBasis | None
    where: str

    def __call__(self, lead: LeadCreate) -> dict[str, Any]:
        return capture_values(with_consent(lead, self.basis, self.where))


class Checked(NamedTuple):
    """What :func:`validate_records` found in a run of records: the valid inputs (line,
    model), the rows that cannot be built (more cells than columns), the rejected rows'
    problems, the warnings (values left out of kept rows), and the lines'
    ``created_at`` moments read by a :class:`DatedLeads` validator (empty for any
    other)."""

    good: list[tuple[int, Any]]
    unbuilt: list[RowError]
    errors: list[RowError]
    warnings: list[RowError]
    dates: dict[int, datetime]


def ready() -> None:
    """Nothing: a first task for a new validating worker process, which imports this
    module (the models and their validators) to run it, before its first part comes."""


def validate_records(
    records: Sequence[tuple[int, Sequence[str]]],
    columns: Columns,
    model: type[M],
    context: Mapping[str, Any],
    validate: Validate[M],
    values: Callable[[Any], Any] | None = None,
) -> Checked:
    """Build each record's (line, cells) input (:func:`payload`; a malformed row is a
    ``(row)`` error) and validate them with ``validate``: the same work whether run in
    the importing process or in a worker process (all arguments pickle when
    ``validate`` is a :class:`DatedLeads`), rows in the order given. With ``values``
    (a :class:`CaptureValues`), the valid rows are given as ``values`` of each model."""
    payloads: list[tuple[int, dict[str, Any]]] = []
    unbuilt: list[RowError] = []
    for line, cells in records:
        try:
            payloads.append((line, payload(cells, columns)))
        except ValueError as exc:
            unbuilt.append(RowError(line, "(row)", str(exc)))
    if isinstance(validate, DatedLeads):
        dated = dataclasses.replace(validate, dates={})  # the caller merges them
        kept, errors, warnings = dated(cast(type[LeadCreate], model), payloads, context)
        if values is not None:
            return Checked(
                [(n, values(lead)) for n, lead in kept], unbuilt, errors, warnings, dated.dates
            )
        return Checked(list(kept), unbuilt, errors, warnings, dated.dates)
    good, errors, warnings = validate(model, payloads, context)
    return Checked(list(good), unbuilt, errors, warnings, {})
