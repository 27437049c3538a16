"""Tags: how people write them and how Baton keeps them.

A tag is matched case- and space-insensitively (``Cold``, `` cold `` and ``COLD`` are one
tag), so it is kept lower-cased with single spaces; what a tag may contain is checked
here, once, for every path that adds, removes, maps or filters by one."""

from __future__ import annotations

import re

from baton.domain.errors import FieldProblem, ValidationFailed

_TAG = re.compile(r"[a-z0-9][a-z0-9 _:./-]{0,99}")


def normalize_tag(raw: str) -> str:
    """The kept form of a tag, or :class:`ValidationFailed` naming the rule."""
    tag = " ".join(raw.strip().lower().split())
    if not _TAG.fullmatch(tag):
        raise ValidationFailed(
            "invalid tag",
            [
                FieldProblem(
                    "tag",
                    "1-100 characters: letters, digits, space, and _ : . / - "
                    "(starting with a letter or digit)",
                )
            ],
        )
    return tag
