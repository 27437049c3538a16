"""Named errors that every shell (API, CLI, worker) maps to a user-facing message.

A caller may rely on these being the only exceptions a use case raises for a user's
mistake; anything else is a bug and is reported as such (without a stack trace to the
user).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class BatonError(Exception):
    """Base of every error a user can cause."""

    title = "Request cannot be processed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(BatonError):
    """The thing asked for does not exist."""

    title = "Not found"


class Conflict(BatonError):
    """The request is valid but clashes with the current state."""

    title = "Conflict"


class Forbidden(BatonError):
    """The actor may not do this (e.g. a verdict on someone else's handoff)."""

    title = "Forbidden"


class Unauthorized(BatonError):
    """No valid credentials: missing, malformed, wrong, expired or revoked. The detail
    never says whether an account exists."""

    title = "Unauthorized"


class TooManyRequests(BatonError):
    """Too many attempts; ``retry_after`` says in how many seconds to try again."""

    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)


@dataclass(frozen=True)
class FieldProblem:
    """One invalid field: where it is (a path such as ``email`` or ``rows[3].type``),
    what is wrong, and the offending value when it is safe to echo."""

    loc: str
    message: str


class ValidationFailed(BatonError):
    """Input that broke a rule, with one :class:`FieldProblem` per bad field."""

    title = "Invalid input"

    def __init__(self, detail: str, problems: Sequence[FieldProblem] = ()) -> None:
        super().__init__(detail)
        self.problems = list(problems)


class InvalidTransitionError(Conflict):
    """A stage change that the lifecycle does not allow; names the allowed ones."""

    title = "Transition not allowed"

    def __init__(self, current: str, requested: str, allowed: Sequence[str]) -> None:
        self.current = current
        self.requested = requested
        self.allowed = list(allowed)
        listed = ", ".join(self.allowed) if self.allowed else "none (final stage)"
        super().__init__(
            f"cannot move a lead from '{current}' to '{requested}'; "
            f"allowed from '{current}': {listed}"
        )
