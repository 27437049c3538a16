"""Validating many rows at once: every bad row is reported with where and why, and the
good rows go on. Used by the batch API and the CSV imports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RowError:
    """One rejected row: its position (0-based index in a batch, or the 1-based line in
    a file, as the caller numbers them), the field, and a readable message."""

    row: int
    field: str
    message: str


def describe(error: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) pairs from a Pydantic error, in words a user can act on."""
    found = []
    for item in error.errors(include_url=False):
        loc = ".".join(str(part) for part in item["loc"]) or "(row)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        found.append((loc, message))
    return found


def validate_many(
    model: type[M],
    rows: Sequence[tuple[int, Mapping[str, Any]]],
    context: Mapping[str, Any] | None = None,
) -> tuple[list[tuple[int, M]], list[RowError]]:
    """Like :func:`validate_rows`, but validates the whole list in one call into
    pydantic-core (several times faster for large batches). When some rows fail, their
    errors are reported and the remaining rows are validated again to keep them."""
    adapter = _adapter(model)
    try:
        models = adapter.validate_python([raw for _, raw in rows], context=context)
    except ValidationError as exc:
        bad_positions: set[int] = set()
        errors: list[RowError] = []
        for item in exc.errors(include_url=False):
            position = int(item["loc"][0])
            bad_positions.add(position)
            loc = ".".join(str(part) for part in item["loc"][1:]) or "(row)"
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field"
            errors.append(RowError(rows[position][0], loc, message))
        kept = [row for i, row in enumerate(rows) if i not in bad_positions]
        good, more = validate_many(model, kept, context) if kept else ([], [])
        return good, errors + more
    return [(number, m) for (number, _), m in zip(rows, models, strict=True)], []


_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {}


def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    if model not in _ADAPTERS:
        _ADAPTERS[model] = TypeAdapter(list[model])  # type: ignore[valid-type]
    return _ADAPTERS[model]


def validate_rows(
    model: type[M],
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    context: Mapping[str, Any] | None = None,
) -> tuple[list[tuple[int, M]], list[RowError]]:
    """Split numbered raw rows into validated models and row errors."""
    good: list[tuple[int, M]] = []
    bad: list[RowError] = []
    validate = model.model_validate
    for number, raw in rows:
        try:
            good.append((number, validate(raw, context=context)))
        except ValidationError as exc:
            bad.extend(RowError(number, loc, msg) for loc, msg in describe(exc))
    return good, bad
