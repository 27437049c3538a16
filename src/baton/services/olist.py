"""``baton import olist DIR``: the Olist marketing funnel as leads, sources, stage history
and outcomes, so that the reports run on a real funnel (demos, backtests).

The data set ("Marketing Funnel by Olist", CC BY-NC-SA 4.0: not shipped with Baton; the
README says where to get it) has two files:

* ``olist_marketing_qualified_leads_dataset.csv``: 8,000 MQLs (``mql_id``,
  ``first_contact_date``, ``landing_page_id``, ``origin``);
* ``olist_closed_deals_dataset.csv``: the 842 of them that became sellers (``won_date``,
  ``business_segment``, ``lead_type``, ``seller_id``, the SDR and sales rep ids, and
  sparse profile fields).

Each MQL becomes a lead identified by its ``mql_id`` (external system ``olist``; the
files hold no email or phone), created at its first contact date, with source = its
origin (blank: none) and its landing page as an attribute, and an MQL at that moment.
Each closed deal makes its lead a customer at the won date, with the deal's fields as
attributes (``business_segment``, ``lead_type``...); the stages between (sal, sql,
opportunity), which the data set does not date, are implied at the won date. One deal
is won before its first contact: it is recorded at the first contact (and reported).
Olist records no lost deals, so the other 7,158 leads stay MQLs.

Everything goes through the history import (:func:`baton.services.history.record_history`),
marked historical: no handoff opens, nothing is routed or sent. Running it again records
nothing twice.
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

from baton.domain.access import Action, Principal
from baton.domain.batches import RowError
from baton.domain.dates import read_instant
from baton.domain.leads import LeadCreate
from baton.domain.lifecycle import Stage
from baton.services.access import allowed
from baton.services.context import Context
from baton.services.history import HistoryItem, HistoryReport, record_history
from baton.services.imports import ImportFileError, Progress, validate_lead_rows

MQL_FILE = "olist_marketing_qualified_leads_dataset.csv"
DEALS_FILE = "olist_closed_deals_dataset.csv"
SYSTEM = "olist"
DEAL_ATTRIBUTES = (
    "seller_id",
    "sdr_id",
    "sr_id",
    "business_segment",
    "lead_type",
    "lead_behaviour_profile",
    "has_company",
    "has_gtin",
    "average_stock",
    "business_type",
    "declared_product_catalog_size",
    "declared_monthly_revenue",
)


def _rows(path: Path, needed: set[str]) -> list[tuple[int, dict[str, str]]]:
    if not path.is_file():
        raise ImportFileError(
            f"{path} is missing: the folder must hold {MQL_FILE} and {DEALS_FILE} (the "
            "'Marketing Funnel by Olist' data set)"
        )
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = needed - set(reader.fieldnames or ())
        if missing:
            raise ImportFileError(f"{path.name} has no column {', '.join(sorted(missing))}")
        # Line numbers of the file (the header is line 1; no value spans lines here).
        return [(reader.line_num, dict(row)) for row in reader]


def import_olist(
    ctx: Context,
    folder: Path,
    *,
    actor: Principal,
    progress: Progress | None = None,
) -> HistoryReport:
    """Load the Olist marketing funnel from ``folder`` (see the module docstring)."""
    allowed(actor, Action.CAPTURE_LEAD)
    mqls = _rows(folder / MQL_FILE, {"mql_id", "first_contact_date", "landing_page_id", "origin"})
    deals = {
        row["mql_id"]: (line, row)
        for line, row in _rows(folder / DEALS_FILE, {"mql_id", "won_date"})
    }
    report = HistoryReport(lines=len(mqls) + 1, rows=len(mqls))
    if progress:
        progress("checking", 0, len(mqls))
    raw: list[tuple[int, dict[str, Any]]] = []
    found: dict[int, HistoryItem] = {}
    created: dict[int, datetime] = {}
    now = ctx.clock.now()
    for line, row in mqls:
        try:
            first = read_instant(row["first_contact_date"])
        except ValueError as exc:
            report.errors.append(RowError(line, "first_contact_date", str(exc)))
            continue
        attributes: dict[str, Any] = {}
        if row.get("landing_page_id"):
            attributes["landing_page_id"] = row["landing_page_id"]
        item = HistoryItem(dates={Stage.MQL: first})
        deal = deals.pop(row["mql_id"], None)
        if deal is not None:
            deal_line, deal_row = deal
            try:
                item.outcome_at = read_instant(deal_row["won_date"])
                item.outcome = "won"
            except ValueError as exc:
                report.warnings.append(
                    RowError(line, "won_date", f"{DEALS_FILE} line {deal_line}: {exc}")
                )
            attributes.update({k: v for k in DEAL_ATTRIBUTES if (v := deal_row.get(k) or "")})
        raw.append(
            (
                line,
                {
                    "external_id": row["mql_id"],
                    "external_system": SYSTEM,
                    "source": row.get("origin") or None,
                    "attributes": attributes,
                },
            )
        )
        found[line] = item
        created[line] = min(first, now)
    for mql_id, (deal_line, _) in deals.items():
        report.warnings.append(
            RowError(deal_line, "mql_id", f"{DEALS_FILE}: deal of {mql_id}, not an MQL; left out")
        )
    good, errors, warnings = validate_lead_rows(
        LeadCreate,
        raw,
        {
            "default_region": ctx.settings.default_phone_region,
            "json_limits": ctx.settings.json_limits,
        },
    )
    report.errors.extend(errors)
    report.warnings.extend(warnings)
    report.imported = len(good)
    if progress:
        progress("checking", len(mqls), len(mqls))
    record_history(
        ctx,
        good,
        found,
        created,
        actor=actor,
        report=report,
        historical=True,
        label="imported from the Olist marketing funnel",
        key_prefix=f"history:{SYSTEM}",
        progress=progress,
    )
    return report
