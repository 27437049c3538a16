"""What the command modules share: the local operator, ``--actor``, the settings, the
database context that turns errors into one line, and option-named validation.

Nothing here imports SQLAlchemy, pydantic or the services at import time (they are
imported when a command runs), so that ``baton --help`` starts fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from baton.cli._output import fail, use_timezone
from baton.domain.access import operator

if TYPE_CHECKING:
    from pydantic import BaseModel

    from baton.config import Settings
    from baton.services.context import Context

ActorOption = Annotated[str, typer.Option("--actor", help="Who is acting (stored on changes).")]
LOCAL = operator()
"""The local operator: the CLI runs on the server, without signing in, with every
right (whoever runs it already holds the database); changes record ``--actor``."""
M = TypeVar("M", bound="BaseModel")

OPTION_OF: dict[str, str] = {
    "email": "EMAIL",
    "name": "--name",
    "display_name": "--name",
    "role": "--role",
    "rep_email": "--rep",
    "user_email": "--user",
    "team": "--team",
    "teams": "--team",
    "timezone": "--timezone",
    "working_hours": "--hours",
    "status": "--status",
    "active": "--active/--inactive",
    "capacity": "--capacity",
    "weight": "--weight",
    "tags": "--tag",
    "countries": "--country",
    "segments": "--segment",
    "manager_email": "--manager",
    "owner_email": "--owner",
    "domain": "DOMAIN",
    "starts_at": "--from",
    "ends_at": "--until",
    "note": "--note",
    "scopes": "--scope",
    "expires_at": "--expires-in-days",
    "source": "--source",
    "origins": "--origin",
    "rate_per_minute": "--rate",
    "url": "URL",
    "events": "--event",
    "secret": "--secret",
    "code": "CODE",
    "reason": "--reason",
    "amount": "--amount",
    "fields": "--field {key}",
    "to_email": "--to",
    "override_reason": "--override",
}
"""The option (or argument) a user types for each field of a use case's input, so that
an error names what they typed (``--until``), not the API's field (``ends_at``). A
command whose option differs (``NAME`` for a team's name) passes its own ``names``."""

_FIELD = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
"""A snake_case word in a message: a field name (``ends_at``), never an English word."""


def option_of(loc: str, names: Mapping[str, str] | None = None) -> str:
    """The option that gave the field at ``loc`` (``teams[1]`` → ``--team``,
    ``fields.budget`` → ``--field budget``); ``loc`` itself when no option did."""
    known = {**OPTION_OF, **(names or {})}
    head, _, rest = loc.partition(".")
    option = known.get(head.split("[", 1)[0])
    if option is None:
        return loc
    return option.format(key=rest) if "{key}" in option else option


def in_option_words(message: str, names: Mapping[str, str] | None = None) -> str:
    """``message`` with the field names it quotes replaced by their options
    (``ends_at must be after starts_at`` → ``--until must be after --from``)."""
    known = {**OPTION_OF, **(names or {})}
    return _FIELD.sub(lambda m: known.get(m.group(0), m.group(0)).split(" {", 1)[0], message)


def safe_url(url: str) -> str:
    """A database URL fit to print: the password masked (the one masking rule of
    :mod:`baton.redact`)."""
    from baton.redact import mask

    return mask(url)


_BACKGROUND = re.compile(r"\s*\(Background on this error at: [^)]*\)")


def database_reason(exc: BaseException) -> str:
    """An error opening the database as one line for an operator: SQLAlchemy's
    "(Background on this error at: …)" link dropped (a page about the error class,
    never about this database) and the driver's lines joined. Masked by ``fail``."""
    return " ".join(_BACKGROUND.sub("", str(exc)).split())


def load_settings() -> Settings:
    """The BATON_* settings, or a one-line error naming each bad one."""
    from pydantic import ValidationError

    from baton.config import Settings
    from baton.redact import install_log_masking, remember_settings

    install_log_masking()
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            # pydantic's "Value error, " says nothing to an operator; a check of the
            # whole settings (no field) already names its variable (BATON_SECRET_KEY).
            message = e["msg"].removeprefix("Value error, ")
            # The variable the operator set, not the field it fills.
            field = "BATON_" + ".".join(map(str, e["loc"])).upper() if e["loc"] else ""
            lines.append(f"{field}: {message}" if field else message)
        raise fail("invalid configuration: " + "; ".join(lines)) from None
    remember_settings(settings)
    use_timezone(settings.timezone)
    return settings


@contextmanager
def context() -> Iterator[Context]:
    """The database context of one command; Baton's and the database's errors become
    one ``error:`` line and exit 1."""
    from sqlalchemy.exc import DataError, IntegrityError, OperationalError

    from baton.domain.errors import BatonError
    from baton.services.context import open_context

    settings = load_settings()
    try:
        ctx = open_context(settings)
    except Exception as exc:
        # fail() masks the password wherever the message repeats it.
        raise fail(
            f"cannot open the database {safe_url(settings.database_url)}: {database_reason(exc)}"
        ) from None
    try:
        yield ctx
    except BatonError as exc:
        raise fail(exc.detail) from None
    except IntegrityError:
        raise fail(
            "another change touched the same records at the same moment; nothing was "
            "saved, run the command again"
        ) from None
    except DataError as exc:
        raise fail(f"a value cannot be stored; nothing was saved ({exc.orig})") from None
    except OperationalError as exc:
        raise fail(f"the database is busy or unreachable; nothing was saved ({exc.orig})") from None
    finally:
        ctx.engine.dispose()


@contextmanager
def work(names: Mapping[str, str] | None = None) -> Iterator[Context]:
    """Like :func:`context`, and an invalid-input error also says what each bad field
    needs (e.g. the rejection codes the contract knows), each field named by its option
    (``names`` adds or overrides :data:`OPTION_OF` for this command)."""
    from baton.domain.errors import ValidationFailed

    with context() as ctx:
        try:
            yield ctx
        except ValidationFailed as exc:
            detail = in_option_words(exc.detail, names)
            # A problem the detail already says is named once, by its option.
            fresh = [p for p in exc.problems if in_option_words(p.message, names) not in detail]
            if len(exc.problems) == 1 and not fresh:
                raise fail(f"{option_of(exc.problems[0].loc, names)}: {detail}") from None
            details = "; ".join(
                f"{option_of(p.loc, names)}: {in_option_words(p.message, names)}" for p in fresh
            )
            raise fail(f"{detail} ({details})" if details else detail) from None


def valid(model: type[M], data: dict[str, Any], names: Mapping[str, str] | None = None) -> M:
    """Validate command-line input; a problem becomes one line naming the option
    (``names`` adds or overrides :data:`OPTION_OF` for this command). Every command that
    builds a use case's input from its options goes through here."""
    from pydantic import ValidationError

    from baton.domain.batches import describe

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = []
        for loc, message in describe(exc):
            message = in_option_words(message, names)
            lines.append(message if loc == "(row)" else f"{option_of(loc, names)}: {message}")
        raise fail("; ".join(lines)) from None
