"""One version number: ``baton.__version__``, read by the package metadata
(``pyproject.toml``'s dynamic version), said by ``/healthz`` and the User-Agents, and
the newest release in the CHANGELOG (an ``(unreleased)`` heading may sit above it).

A second copy in ``pyproject.toml`` is how ``/healthz`` came to disagree with what the
CHANGELOG said was being made: a release would have had to change both.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import baton

ROOT = Path(__file__).parents[2]


def _parts(number: str) -> tuple[int, ...]:
    return tuple(int(p) for p in number.split("."))


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"], "one number: baton.__version__"
    assert project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "baton.__version__"}


def test_the_installed_metadata_says_the_same_number() -> None:
    """A stale install (metadata from an older checkout) would show here first: run
    ``pip install -e .`` again."""
    assert version("baton-handoff") == baton.__version__


def test_the_version_is_the_changelogs_newest_release() -> None:
    headings = re.findall(r"^## (\S+) (.*)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    released = [(number, rest) for number, rest in headings if rest != "(unreleased)"]
    assert released[0][0] == baton.__version__, "the newest dated heading is this version"
    for number, _ in headings[: headings.index(released[0])]:
        assert _parts(number) > _parts(baton.__version__), "only a later version is unreleased"
