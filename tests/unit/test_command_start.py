"""What ``baton import leads`` loads before it reads its file (issue 17: the command's
start-up was about a second of imports on a 2-core machine).

The scoring service imports numpy and the re-score's event pass only when a re-score
uses them (:mod:`baton.lazy`), and a database already at the head revision is opened
without Alembic (:func:`baton.store.migrate.upgrade`). Each check runs in a fresh
interpreter, since this one has imported everything already."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from baton.lazy import lazy_module
from baton.store.migrate import alembic_config, head_revisions

NOT_AT_START = ("numpy", "baton.store.event_pass", "alembic")
"""Modules the lead import's start-up leaves out (the re-score's, the migrations')."""


def _loaded_after(code: str, *, env: dict[str, str] | None = None) -> set[str]:
    """The modules of :data:`NOT_AT_START` that a fresh interpreter has loaded after
    running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {NOT_AT_START!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    return set(done.stdout.split())


def test_the_import_commands_modules_load_without_numpy_the_event_pass_or_alembic() -> None:
    assert _loaded_after("import baton.cli.imports, baton.services.imports") == set()


def test_a_database_at_the_head_revision_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'baton.db'}"
    opening = (
        "from baton.config import Settings\n"
        "from baton.services.context import open_context\n"
        f"open_context(Settings(database_url={url!r}, env='test')).engine.dispose()"
    )
    assert _loaded_after(opening) == {"alembic"}  # a fresh file: migrated by Alembic
    assert _loaded_after(opening) == set()  # at head: one read of alembic_version


def test_the_head_revisions_read_from_the_files_are_alembics() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert head_revisions() == frozenset(heads)


def test_a_lazy_module_is_the_module_once_used() -> None:
    assert lazy_module("json") is sys.modules["json"]  # imported already: itself
    stand_in = lazy_module("baton_no_such_module_for_sure")
    assert stand_in.__name__ == "baton_no_such_module_for_sure"
    try:
        stand_in.anything  # noqa: B018 - the look-up is the test
    except ModuleNotFoundError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a missing module is found missing at its first use")
    code = (
        "from baton.lazy import lazy_module\nimport sys\n"
        "np = lazy_module('numpy')\nassert 'numpy' not in sys.modules\n"
        "assert np.array([1, 2]).sum() == 3 and 'numpy' in sys.modules\n"
        "assert np.zeros is sys.modules['numpy'].zeros"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
