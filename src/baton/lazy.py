"""Modules imported when first used, for start-up paths that rarely need them.

``baton import leads`` imports the scoring service (a lead import scores its leads),
which imports numpy and the re-score's event pass at the top for the re-score alone:
about a tenth of the command's start-up for code an import never runs. A module that
binds such a module with :func:`lazy_module` (and imports it for real under
``TYPE_CHECKING``, for the types) loads it at its first attribute look-up instead.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any


class _Lazy(types.ModuleType):
    """Stands for the module of its name: each attribute look-up is the module's own,
    imported at the first. Nothing is copied, so a test that patches the module (or a
    name in it) patches what the stand-in's callers get."""

    def __getattr__(self, name: str) -> Any:
        # import_module, not sys.modules: a module another thread is importing is in
        # sys.modules half made, and import_module waits for it.
        return getattr(importlib.import_module(self.__name__), name)


def lazy_module(name: str) -> Any:
    """The module ``name`` if it is imported already, else a stand-in that imports it
    at its first attribute look-up (``np.array`` in a function body)."""
    return sys.modules.get(name) or _Lazy(name)
