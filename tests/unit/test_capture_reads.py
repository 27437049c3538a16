"""A capture selects only some columns of the lead it updates (CAPTURE_READS): the
rules that decide the update must never ask for another one, or they would read a
missing column as blank and merge wrongly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from baton.domain.leads import ATTRIBUTION_FIELDS, IDENTITY_FIELDS, PROFILE_FIELDS, merge_profile
from baton.domain.privacy import decide_consent
from baton.services.leads import CAPTURE_READS
from baton.store.tables import leads

AT = datetime(2026, 12, 5, tzinfo=UTC)
TEXT = st.none() | st.sampled_from(["", "a", "b", "web", "Ann"])
ANSWERS = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys((*PROFILE_FIELDS, *ATTRIBUTION_FIELDS, *IDENTITY_FIELDS), TEXT),
        "attributes": st.none() | st.dictionaries(st.sampled_from("xyz"), TEXT, max_size=2),
        "consent": st.none() | st.booleans(),
        "consent_basis": st.none() | st.sampled_from(["consent", "legitimate_interest"]),
        "consent_source": TEXT,
    },
)


class Recording(dict[str, Any]):
    """A stored lead that remembers which columns were asked for."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(row)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)


@given(stored=ANSWERS, incoming=ANSWERS, fill_only=st.booleans(), unsubscribed=st.booleans())
def test_the_update_rules_read_only_the_columns_a_capture_selects(
    stored: dict[str, Any], incoming: dict[str, Any], fill_only: bool, unsubscribed: bool
) -> None:
    row = {column.name: None for column in leads.c} | stored
    row["unsubscribed_at"] = AT if unsubscribed else None
    existing = Recording(row)
    merge_profile(existing, incoming, fill_only=fill_only, at=AT)
    decide_consent(existing, incoming, fill_only=fill_only)
    assert existing.asked <= set(CAPTURE_READS), existing.asked - set(CAPTURE_READS)
