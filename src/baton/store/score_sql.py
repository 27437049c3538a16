"""A contract's fit rules as SQL ``CASE`` expressions, for re-scoring every lead in one
statement per chunk instead of one Python call per lead.

:func:`compile_fit` is a pure translation of the contract (no database is touched). It
translates only the rule kinds whose SQL gives exactly the answer of
:func:`baton.domain.scoring.condition_holds` on every value a lead can hold:

* ``exists`` on a text column: blank means empty after stripping Python's whitespace
  (the very character set of :meth:`str.strip`, not just spaces);
* ``equals`` / ``in`` with text options (ASCII after stripping and lower-casing) on a
  text column: compared lower-cased, where the only non-ASCII character Python lowers
  to ASCII (the Kelvin sign) is mapped first, and PostgreSQL lowers ASCII only
  (collation ``C``), as SQLite does;
* ``email_domain`` classes (free mail, disposable, role, competitor, corporate) when the
  contract's domain lists are ASCII: the address is split at its last ``@`` like
  :meth:`str.rpartition`.

Every other rule (``regex``, numeric ``min``/``max`` or ``equals``, attributes, the
``email_domain`` field with its fall-back to the address, ``consent``) is returned in
:attr:`FitPlan.fallback`: the caller evaluates it in Python with ``condition_holds``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String, and_, case, false, func, literal, not_, or_
from sqlalchemy.sql.elements import ColumnElement

from baton.domain.contact import FREE_MAIL_DOMAINS
from baton.domain.contract import EmailCondition, FieldCondition, FitRule, HandoffContract
from baton.domain.scoring import DISPOSABLE_DOMAINS, ROLE_LOCAL_PARTS
from baton.store.tables import leads

WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
"""What :meth:`str.strip` removes: every character for which :meth:`str.isspace` is
true, written out (a test checks it against all of Unicode) rather than found by
scanning the 1,114,112 code points at every start of the command line, which cost
70 ms of CPU before each import."""

KELVIN = "\u212a"
"""The one non-ASCII character whose Python lower case is ASCII (``k``)."""


@dataclass(frozen=True)
class FitPlan:
    """``points``: the sum of the translated rules' points for a row of ``leads``
    (an integer expression; 0 when none holds); ``fallback``: the rules left to Python,
    with their index in the contract."""

    points: ColumnElement[Any]
    fallback: tuple[tuple[int, FitRule], ...] = field(default_factory=tuple)


def _text_column(name: str) -> ColumnElement[Any] | None:
    if name.startswith("attributes.") or name == "email_domain":
        return None
    column = leads.c.get(name)
    if column is None or not isinstance(column.type, String):
        return None
    return column


def _stripped(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.btrim(expr, literal(WHITESPACE))
    return func.trim(expr, literal(WHITESPACE))


def _lowered(expr: ColumnElement[Any], dialect: str) -> ColumnElement[Any]:
    """Python's ``lower()`` as far as a comparison with ASCII text can tell."""
    mapped = func.replace(expr, literal(KELVIN), literal("k"))
    if dialect == "postgresql":
        return func.lower(mapped.collate("C"))
    return func.lower(mapped)


def _ascii_lower(values: Iterable[Any]) -> list[str] | None:
    """The options stripped and lower-cased, or ``None`` when one is not ASCII text."""
    found: list[str] = []
    for value in values:
        if not isinstance(value, str):
            return None
        wanted = value.strip().lower()
        if not wanted.isascii():
            return None
        found.append(wanted)
    return found


def field_condition(condition: FieldCondition, dialect: str) -> ColumnElement[bool] | None:
    """The SQL of a field condition, or ``None`` when it does not translate exactly:
    true where the condition holds, else false or NULL (a ``CASE WHEN`` test, as
    :func:`compile_fit` uses it; not to be negated)."""
    column = _text_column(condition.field)
    if column is None:
        return None
    stripped = _stripped(column, dialect)
    present = and_(column.is_not(None), stripped != "")
    if condition.exists is not None:
        return present if condition.exists else not_(present)
    options: list[Any] | None = None
    if condition.equals is not None:
        options = [condition.equals]
    elif condition.in_ is not None:
        options = list(condition.in_)
    if options is None:
        return None
    wanted = _ascii_lower(options)
    if wanted is None:
        return None
    # A blank value never equals an option, nor does any value a blank option. With
    # the blank options left out, the comparison alone says it (NULL and '' are in no
    # list of non-blank texts): the column is stripped once per row, not twice (SQLite
    # computes each occurrence; 7 ms of CPU of a chunk's read of 10,000 leads).
    filled = sorted({option for option in wanted if option})
    if not filled:
        return false()
    return _lowered(stripped, dialect).in_(filled)


def _email_parts(dialect: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """(local part, domain) of ``leads.email`` split at the last ``@``."""
    email = leads.c.email
    if dialect == "postgresql":
        domain = func.substring(email, literal("[^@]*$"))
        local = case(
            (
                func.strpos(email, "@") > 0,
                func.left(email, func.length(email) - func.length(domain) - 1),
            ),
            else_=literal(""),
        )
        return local, domain
    # The general split (rtrim by every character but "@") costs time quadratic in the
    # address; an address with exactly one "@" (nearly all) is split by position.
    at = func.instr(email, "@")
    after = func.substr(email, at + 1)
    single = and_(at > 0, func.instr(after, "@") == 0)
    head = func.rtrim(email, func.replace(email, "@", ""))
    local = case(
        (single, func.substr(email, 1, at - 1)),
        else_=func.substr(head, 1, func.length(head) - 1),
    )
    return local, case((single, after), else_=func.substr(email, func.length(head) + 1))


def _suffix(expr: ColumnElement[Any], length: int, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.right(expr, length)
    return func.substr(expr, -length)


def email_domain(dialect: str) -> ColumnElement[Any]:
    """The domain of ``leads.email`` (split at its last ``@``) lower-cased, as the
    email-class conditions compare it."""
    return _lowered(_email_parts(dialect)[1], dialect)


def email_condition(
    condition: EmailCondition,
    contract: HandoffContract,
    dialect: str,
    domain: ColumnElement[Any] | None = None,
) -> ColumnElement[bool] | None:
    """The SQL of an email-class condition (see :func:`baton.domain.scoring.email_classes`),
    or ``None`` when the contract's domain lists are not ASCII. ``domain``: what stands
    for :func:`email_domain` (a column computed once per row), else that expression."""
    competitors = contract.scoring.competitors
    disposable = sorted(DISPOSABLE_DOMAINS | set(contract.scoring.disposable_domains))
    if not all(d.isascii() for d in (*competitors, *disposable)):
        return None
    local, _ = _email_parts(dialect)
    if domain is None:
        domain = email_domain(dialect)
    has_email = and_(leads.c.email.is_not(None), leads.c.email != "")
    free = domain.in_(sorted(FREE_MAIL_DOMAINS))
    throwaway = domain.in_(disposable)
    classes: dict[str, ColumnElement[bool]] = {
        "free_mail": free,
        "disposable": throwaway,
        "role": _lowered(local, dialect).in_(sorted(ROLE_LOCAL_PARTS)),
        # domain == c or domain ends with "." + c: "." + domain ends with "." + c, one
        # suffix test per distinct length (the domain expression is costly).
        "competitor": or_(
            literal(False),
            *(
                _suffix(literal(".") + domain, length, dialect).in_(
                    sorted("." + c for c in competitors if len(c) + 1 == length)
                )
                for length in sorted({len(c) + 1 for c in competitors})
            ),
        ),
        "corporate": not_(or_(free, throwaway)),
    }
    return and_(has_email, classes[condition.email_domain])


def compile_fit(
    contract: HandoffContract, dialect: str, *, domain: ColumnElement[Any] | None = None
) -> FitPlan:
    """The contract's fit rules for ``dialect`` (``sqlite`` or ``postgresql``): the SQL
    sum of the rules that translate exactly, and the others left to Python. ``domain``:
    what the email-class rules read in place of :func:`email_domain` (SQLite does not
    share the expression between rules: computed in a subquery, it is split once per
    lead instead of once per rule)."""
    terms: list[ColumnElement[Any]] = []
    fallback: list[tuple[int, FitRule]] = []
    for index, rule in enumerate(contract.scoring.fit):
        when = rule.when
        sql = (
            email_condition(when, contract, dialect, domain)
            if isinstance(when, EmailCondition)
            else field_condition(when, dialect)
        )
        if sql is None:
            fallback.append((index, rule))
            continue
        terms.append(case((sql, literal(int(rule.points))), else_=literal(0)))
    points: ColumnElement[Any] = literal(0)
    for term in terms:
        points = points + term
    return FitPlan(points, tuple(fallback))
