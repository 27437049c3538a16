"""The README documents every setting, command, endpoint and activity type a user can
meet; this fails when one is added without documentation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command

from baton.api.app import create_app
from baton.cli import app as cli_app
from baton.config import Settings
from baton.domain.activities import ActivityType
from baton.domain.lifecycle import Stage
from baton.services.context import Context

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
DOCS = {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted((Path(__file__).parent.parent / "docs").glob("*.md"))
}
"""The pages under docs/ (the benchmarks' record): held to the README's rules where
they name the same things."""


ROOT = Path(__file__).parent.parent


def _settings_table() -> dict[str, tuple[str, str]]:
    """The rows of the README's settings table: variable -> (default, meaning)."""
    section = README.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        found = re.fullmatch(r"\| `(BATON_[A-Z0-9_]+)` \| (.*?) \| (.*) \|", line)
        if found:
            assert found[1] not in rows, f"{found[1]} is in the table twice"
            rows[found[1]] = (found[2], found[3])
    return rows


SETTINGS_TABLE = _settings_table()


def _read_by(paths: list[Path]) -> set[str]:
    """``BATON_*`` variables these files read from the environment themselves (not
    through ``Settings``): ``os.environ``/``getenv`` in Python (also through a constant
    holding the name), ``$VAR``/``${VAR}`` in shell. A name only mentioned in a comment
    or a docstring does not count."""
    found: set[str] = set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"(?:environ(?:\.get)?|getenv)\s*[(\[]\s*[\"'](BATON_\w+)", text))
        found |= set(re.findall(r"^\s*[A-Z_]+\s*=\s*[\"'](BATON_\w+)[\"']\s*$", text, re.M))
        if path.suffix != ".py":
            found |= set(re.findall(r"\$\{?(BATON_\w+)", text))
    return found


SETTING_VARIABLES = {f"BATON_{name.upper()}" for name in Settings.model_fields}
READ_BY_BATON = _read_by(sorted((ROOT / "src").rglob("*.py")))
READ_BY_TOOLS = _read_by(
    [
        *sorted((ROOT / "tests").rglob("*.py")),
        *sorted((ROOT / "bench").rglob("*.py")),
        ROOT / "run",
        ROOT / ".ci" / "run",
    ]
)


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_documented(name: str) -> None:
    assert f"BATON_{name.upper()}" in SETTINGS_TABLE, "missing from the settings table"


def test_the_settings_table_holds_only_what_baton_reads() -> None:
    assert set(SETTINGS_TABLE) == SETTING_VARIABLES | READ_BY_BATON


def _shown(value: object) -> str:
    """A default as the table writes it."""
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_the_settings_table_shows_the_real_default(name: str) -> None:
    default = Settings.model_fields[name].default
    written, _ = SETTINGS_TABLE[f"BATON_{name.upper()}"]
    if name == "secret_key":  # not shown on purpose; production refuses it anyway
        assert written == "an insecure development value"
        return
    assert written.split(" (", 1)[0] == _shown(default), (written, default)


@pytest.mark.parametrize("page", ["README.md", *DOCS])
def test_every_variable_the_readme_names_exists(page: str) -> None:
    known = SETTING_VARIABLES | READ_BY_BATON | READ_BY_TOOLS
    text = README if page == "README.md" else DOCS[page]
    for name, wildcard in set(re.findall(r"(BATON_[A-Z0-9_]*[A-Z0-9])(_\*)?", text)):
        if wildcard:  # BATON_SMTP_*: a family of settings
            assert any(k.startswith(f"{name}_") for k in SETTING_VARIABLES), name
        else:
            assert name in known, f"{page} names {name}, which nothing reads"


def test_the_readmes_links_into_the_docs_find_their_section() -> None:
    """A link from the README to a section of a page under docs/ (and back) names a
    heading that page has, as GitHub makes its anchor."""

    def anchors(text: str) -> set[str]:
        headings = re.findall(r"^#+ (.*)$", text, re.M)
        return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}

    pages = {"README.md": README, **{f"docs/{name}": text for name, text in DOCS.items()}}
    for page, text in pages.items():
        links = re.findall(r"\]\(((?:\.\./)?[\w./-]*\.md)?(?:#([\w-]+))?\)", text)
        for target, anchor in links:
            if not target and not anchor:
                continue  # not a link to a page or a section
            name = target.replace("../", "") if target else page
            if target and page.startswith("docs/") and not target.startswith("../"):
                name = f"docs/{target}"
            assert name in pages, f"{page} links to {target}, which is not there"
            if anchor:
                assert anchor in anchors(pages[name]), f"{page} links to {name}#{anchor}"


def _commands(group: object, prefix: str = "baton") -> list[str]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            found.extend(_commands(command, path))
        else:
            found.append(path)
    return found


@pytest.mark.parametrize("command", _commands(get_command(cli_app)))
def test_every_cli_command_is_documented(command: str) -> None:
    assert command in README


def test_every_api_operation_is_documented(sqlite_ctx: Context) -> None:
    spec = create_app(sqlite_ctx).openapi()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert f"`{method.upper()} {path}`" in README, (method, path)
            assert f"`{operation['operationId']}`" in README, operation["operationId"]


def test_every_activity_type_and_stage_is_documented() -> None:
    for kind in ActivityType:
        assert f"`{kind.value}`" in README, kind
    for stage in Stage:
        assert re.search(rf"`{stage.value}`", README), stage


def _contract_keys() -> set[str]:
    from pydantic import BaseModel

    from baton.domain import contract as c

    keys: set[str] = set()
    for model in (
        c.HandoffContract,
        c.Owners,
        c.Scoring,
        c.FitRule,
        c.FieldCondition,
        c.EmailCondition,
        c.EngagementRule,
        c.PropertyFilter,
        c.Grades,
        c.MqlTrigger,
        c.PrepItem,
        c.CostEntry,
        c.Routing,
        c.RoutingRule,
        c.Pool,
        c.Sla,
        c.SlaStep,
        c.RejectionReason,
        c.Qualification,
        c.Raci,
        c.RaciAssignment,
        c.NurtureSection,
        c.DelayBounds,
        c.NurtureSequence,
        c.NurtureStep,
        c.StepWhen,
        c.NurtureEnroll,
        c.NurtureTemplate,
    ):
        assert issubclass(model, BaseModel)
        keys.update(f.alias or name for name, f in model.model_fields.items())
    return keys


@pytest.mark.parametrize("key", sorted(_contract_keys()))
def test_every_contract_key_is_in_the_reference(key: str) -> None:
    section = README.split("### Contract reference", 1)[1].split("\n## ", 1)[0]
    assert re.search(rf"`[^`\n]*\b{re.escape(key)}\b[^`\n]*`", section), key
