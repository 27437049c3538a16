"""Suggesting a contract from a small imported history (both databases): the rule the
outcomes follow gains points, the noise rule drops to about nothing, the suggestion is
stored as a draft when asked; no contract or too few outcomes is a clear error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tests.conftest import principal_for
from tests.model_helpers import plant_after_handoff, write_history
from tests.suggest_history import COURSES_CONTRACT

from baton.domain.access import operator
from baton.domain.contract import parse_contract
from baton.domain.errors import Forbidden, ValidationFailed
from baton.services.context import Context
from baton.services.contract_suggest import suggest_contract
from baton.services.contracts import get_contract
from baton.services.imports import import_leads

OPS = operator("ops")

CONTRACT = COURSES_CONTRACT


def _history(ctx: Context, n: int, *, seed: int = 5) -> None:
    rng = np.random.default_rng(seed)
    lines = ["Prospect ID,Occupation,Color,Converted"]
    for i in range(n):
        working = rng.random() < 0.5
        red = rng.random() < 0.5
        converted = rng.random() < (0.85 if working else 0.15)
        occupation = "Working Professional" if working else "Student"
        lines.append(f"P-{i},{occupation},{'red' if red else 'blue'},{int(converted)}")
    import_leads(
        ctx,
        io.StringIO("\n".join(lines) + "\n"),
        actor=OPS,
        column_map={"Prospect ID": "external_id"},
        external_system="x",
    )


def test_the_predictive_rule_gains_and_the_noise_rule_fades(ctx: Context) -> None:
    _history(ctx, 800)

    result = suggest_contract(
        ctx, actor=OPS, target="attributes.converted", body=CONTRACT, save=True
    )

    working, red = result.suggestion.rules
    assert (working.old, working.suggested) == (5, 15)  # the original's largest |points|
    assert red.old == 15 and abs(red.suggested) <= 1
    assert result.suggestion.examples == 800
    assert result.source == "file"
    assert result.saved is not None and result.saved.status == "draft"
    stored = get_contract(ctx, result.saved.version, actor=OPS)
    assert stored.body == result.body
    spec = parse_contract(stored.body)
    assert [r.points for r in spec.scoring.fit] == [15, red.suggested]
    assert spec.name.startswith("Courses (suggested ")
    assert "points: 15  # was 5" in stored.body
    # The outcome column itself is no rule input: it is the label.
    assert result.suggestion.new_roc_auc is not None and result.suggestion.new_roc_auc > 0.75


def test_no_active_contract_and_no_file_is_a_clear_error(sqlite_ctx: Context) -> None:
    _history(sqlite_ctx, 60)
    with pytest.raises(ValidationFailed, match="no contract is active yet"):
        suggest_contract(sqlite_ctx, actor=OPS, target="attributes.converted")


def test_too_few_outcomes_and_no_outcomes_are_clear_errors(sqlite_ctx: Context) -> None:
    _history(sqlite_ctx, 30)
    with pytest.raises(ValidationFailed, match="too few outcomes"):
        suggest_contract(sqlite_ctx, actor=OPS, target="attributes.converted", body=CONTRACT)
    with pytest.raises(ValidationFailed, match="has a 'won' outcome"):
        suggest_contract(sqlite_ctx, actor=OPS, target="won", body=CONTRACT)
    with pytest.raises(ValidationFailed, match="unknown target"):
        suggest_contract(sqlite_ctx, actor=OPS, target="converted", body=CONTRACT)


def test_a_sales_manager_may_not_suggest(sqlite_ctx: Context) -> None:
    manager = principal_for(sqlite_ctx, "sales_manager")
    with pytest.raises(Forbidden):
        suggest_contract(sqlite_ctx, actor=manager, target="attributes.converted", body=CONTRACT)


WON_CONTRACT = """schema_version: 1
name: Lumen
scoring:
  fit:
    - name: Webinar lead
      when: {field: source, equals: webinar}
      points: 5
    - name: From France
      when: {field: country, equals: FR}
      points: 10
  engagement:
    - name: Page views
      event: page_view
      points: 2
      cap: 10
      half_life_days: 30
    - name: Meeting booked
      event: meeting_booked
      points: 20
mql:
  threshold: 20
"""


def test_won_outcomes_as_of_the_handoff_ignore_what_came_after(ctx: Context) -> None:
    history = write_history(ctx, 240)
    planted = plant_after_handoff(ctx, history)

    result = suggest_contract(ctx, actor=OPS, target="won", body=WON_CONTRACT)

    webinar, _france, views, meetings = result.suggestion.rules
    assert planted > 0
    assert meetings.support == 0 and meetings.suggested == 0 and meetings.worthless
    assert webinar.suggested > webinar.old and views.suggested > 0
    assert webinar.suggested == 20 or views.suggested == 20  # the original's range
    assert result.suggestion.examples == 230  # the 10 leads still in play are no examples
