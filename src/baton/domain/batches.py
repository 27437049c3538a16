"""Validating many rows at once: every bad row is reported with where and why, and the
good rows go on. Used by the batch API and the CSV imports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

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
