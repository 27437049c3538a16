"""Two-team signatures, shared by everything that is signed like a contract (contract
versions, learned scoring model versions).

A ``marketing`` user signs for marketing and a ``sales_manager`` for sales
(:func:`~baton.domain.access.check_signer`); the two sides need two different people
(the same user id, or for the local operator the same name, cannot sign both); an admin
never signs. Each signature keeps the signer's text name and, for a user or their
token, their user id. A version signed by both sides is ``approved``.

The callers keep their own tables (``contract_approvals``, ``lead_model_approvals``):
each function takes the approvals table and the column naming the signed row.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Column, Table, insert, select, update
from sqlalchemy.engine import Connection

from baton.domain.access import Action, Principal, check_signer, reach
from baton.domain.errors import Conflict, FieldProblem, Forbidden, ValidationFailed

Role = Literal["marketing", "sales"]
ROLES: tuple[Role, ...] = ("marketing", "sales")

Signatures = dict[str, tuple[str, int | None]]
"""Side -> (signer's name, signer's user id or None)."""


def check_role(role: str) -> None:
    """Refuse a side that is neither marketing nor sales (422 on ``role``)."""
    if role not in ROLES:
        raise ValidationFailed("unknown role", [FieldProblem("role", "marketing or sales")])


def signatures_in(
    connection: Connection, table: Table, owner: Column[int], owner_id: int
) -> Signatures:
    """The signatures of one signed row: ``owner`` is ``table``'s column naming it."""
    rows = connection.execute(
        select(table.c.role, table.c.approver, table.c.actor_user_id).where(owner == owner_id)
    )
    return {
        str(role): (str(approver), None if user_id is None else int(user_id))
        for role, approver, user_id in rows
    }


def approvals_of(signatures: Signatures) -> dict[str, str]:
    """Side -> signer's name."""
    return {role: name for role, (name, _) in signatures.items()}


def same_signer(actor: Principal, name: str, user_id: int | None) -> bool:
    """Whether a stored signature is ``actor``'s: by user id when both sides have one
    (names can repeat, and a token's name differs from its owner's), otherwise by the
    stored name against the actor's name or email (an operator signs by name)."""
    if actor.user_id is not None and user_id is not None:
        return actor.user_id == user_id
    mine = {actor.name.lower()} | ({actor.email.lower()} if actor.email else set())
    return name.lower() in mine


def check_new_signature(
    actor: Principal, role: Role, signatures: Signatures, *, subject: str
) -> None:
    """Refuse a side already signed, or a second signature by the person who signed
    the other side (:class:`Conflict`); ``subject`` names the signed thing in the
    message ("version 3", "model version 3")."""
    if role in signatures:
        raise Conflict(f"{subject} is already approved for {role} by {signatures[role][0]}")
    other = signatures.get("sales" if role == "marketing" else "marketing")
    if other is not None and same_signer(actor, *other):
        raise Conflict(
            f"{actor.name} already signed for the other side; marketing and sales need "
            "two different approvers"
        )


def add_signature_in(
    connection: Connection,
    table: Table,
    owner: str,
    owner_id: int,
    *,
    role: Role,
    actor: Principal,
    now: datetime,
) -> None:
    """Store ``actor``'s signature for ``role`` (``owner`` is the name of the column
    naming the signed row)."""
    connection.execute(
        insert(table).values(
            {
                owner: owner_id,
                "role": role,
                "approver": actor.name,
                "actor_user_id": actor.user_id,
                "approved_at": now,
            }
        )
    )


def sign_in(
    connection: Connection,
    signed: Table,
    approvals: Table,
    owner: str,
    row: dict[str, Any],
    *,
    role: Role,
    actor: Principal,
    now: datetime,
    subject: str,
) -> dict[str, str]:
    """Sign ``row`` (a row of ``signed``, locked by the caller) for ``role`` in the
    caller's transaction: only a draft (or an approved version still missing a side)
    is signed, a side once, by two different people; signed by both, the row becomes
    ``approved`` (``row["status"]`` too). Returns side -> signer's name. ``owner`` is
    the column of ``approvals`` naming the signed row; ``subject`` names it in the
    messages ("version 3", "model version 3")."""
    if row["status"] not in ("draft", "approved"):
        raise Conflict(f"{subject} is {row['status']}; only drafts are signed")
    signatures = signatures_in(connection, approvals, approvals.c[owner], int(row["id"]))
    check_new_signature(actor, role, signatures, subject=subject)
    add_signature_in(connection, approvals, owner, int(row["id"]), role=role, actor=actor, now=now)
    names = approvals_of(signatures)
    names[role] = actor.name
    if set(names) == set(ROLES):
        connection.execute(update(signed).where(signed.c.id == row["id"]).values(status="approved"))
        row["status"] = "approved"
    return names


def may(actor: Principal, action: Action) -> bool:
    """Whether ``actor`` may take ``action`` at all (no logging: for offering buttons)."""
    try:
        reach(actor, action)
    except Forbidden:
        return False
    return True


def signable_sides(
    actor: Principal, status: str, approvals: dict[str, str], action: Action
) -> tuple[Role, ...]:
    """The sides ``actor`` may still sign a version in ``status`` for (drafts and
    half-approved versions; the use case still refuses a second signature by the same
    person)."""
    sides: list[Role] = []
    if status in ("draft", "approved") and may(actor, action):
        for side in ROLES:
            if side in approvals:
                continue
            try:
                check_signer(actor, side)
            except Forbidden:
                continue
            sides.append(side)
    return tuple(sides)
