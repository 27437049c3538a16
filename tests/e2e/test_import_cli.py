"""Imports a real team can use (issue 11, items 9, 10 and 12), run as a user runs them:
real files, the CLI, a real SQLite database, exit codes and the errors file.

The X Education shapes (no email or phone, a prospect id, "Select" for a dropdown left
untouched, country names, "Google" beside "google") come from a generated fixture with
the same 37 columns; the real ``Leads.csv`` is imported too when ``../shared`` has it.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from baton.cli import app

X_EDUCATION_HEADERS = [
    "Prospect ID",
    "Lead Number",
    "Lead Origin",
    "Lead Source",
    "Do Not Email",
    "Do Not Call",
    "Converted",
    "TotalVisits",
    "Total Time Spent on Website",
    "Page Views Per Visit",
    "Last Activity",
    "Country",
    "Specialization",
    "How did you hear about X Education",
    "What is your current occupation",
    "What matters most to you in choosing a course",
    "Search",
    "Magazine",
    "Newspaper Article",
    "X Education Forums",
    "Newspaper",
    "Digital Advertisement",
    "Through Recommendations",
    "Receive More Updates About Our Courses",
    "Tags",
    "Lead Quality",
    "Update me on Supply Chain Content",
    "Get updates on DM Content",
    "Lead Profile",
    "City",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
    "I agree to pay the amount through cheque",
    "A free copy of Mastering The Interview",
    "Last Notable Activity",
]
REAL_LEADS = (
    Path(__file__).resolve().parents[3] / "shared/datasets/x-education-lead-scoring/Leads.csv"
)
X_OPTIONS = ["--map", "Prospect ID=external_id", "--blank", "Select", "--system", "X Education"]


def x_education_csv(rows: int = 40, seed: int = 11) -> str:
    """A file shaped like X Education's raw ``Leads.csv``: the same columns, no email or
    phone, "Select" meaning blank, countries as names (some unreadable), sources in two
    cases, blank cells."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(X_EDUCATION_HEADERS)
    countries = ["India", "India", "United States", "United Arab Emirates", "", "unknown"]
    countries += ["Asia/Pacific Region", "Singapore"]
    sources = ["Google", "google", "Direct Traffic", "Olark Chat", "Organic Search", ""]
    for number in range(rows):
        values = {h: rng.choice(["No", "No", "Yes"]) for h in X_EDUCATION_HEADERS}
        values |= {
            "Prospect ID": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "Lead Number": str(660737 - number),
            "Lead Origin": rng.choice(["API", "Landing Page Submission", "Lead Add Form"]),
            "Lead Source": rng.choice(sources),
            "Converted": rng.choice(["0", "1"]),
            "TotalVisits": rng.choice(["", "0", "5", "12"]),
            "Total Time Spent on Website": str(rng.randrange(0, 2000)),
            "Page Views Per Visit": rng.choice(["0", "2.5", "4"]),
            "Last Activity": rng.choice(["Email Opened", "Page Visited on Website", ""]),
            "Country": rng.choice(countries),
            "Specialization": rng.choice(["Select", "Finance Management", ""]),
            "How did you hear about X Education": rng.choice(["Select", "select", "Online Search"]),
            "What is your current occupation": rng.choice(["Unemployed", "Working Professional"]),
            "What matters most to you in choosing a course": "Better Career Prospects",
            "Tags": rng.choice(["Ringing", "Will revert after reading the email", ""]),
            "Lead Quality": rng.choice(["Low in Relevance", "Might be", ""]),
            "Lead Profile": rng.choice(["Select", "Potential Lead"]),
            "City": rng.choice(["Select", "Mumbai", "Thane & Outskirts"]),
            "Asymmetrique Activity Index": rng.choice(["02.Medium", "01.High", ""]),
            "Asymmetrique Profile Index": rng.choice(["02.Medium", "01.High", ""]),
            "Asymmetrique Activity Score": rng.choice(["15", "14", ""]),
            "Asymmetrique Profile Score": rng.choice(["15", "18", ""]),
            "Last Notable Activity": rng.choice(["Modified", "Email Opened"]),
        }
        writer.writerow([values[h] for h in X_EDUCATION_HEADERS])
    return out.getvalue()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("BATON_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("BATON_ENV", raising=False)
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def summary(output: str) -> dict[str, int]:
    """The import's summary table as {result: count}."""
    return {
        line.split("│")[1].strip(): int(line.split("│")[2].strip().replace(",", ""))
        for line in output.splitlines()
        if line.count("│") == 3 and line.split("│")[2].strip().replace(",", "").isdigit()
    }


def export(runner: CliRunner) -> list[dict[str, object]]:
    result = runner.invoke(app, ["export", "leads", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def outcomes(path: Path) -> list[tuple[int, str, str]]:
    """(line, field, outcome) of every problem in an import's errors file (rejected
    lines) and its warnings file beside it (lines imported with a value left out)."""
    warnings = path.with_name(path.name.removesuffix(".csv").removesuffix(".errors"))
    found = []
    for file, column, outcome in (
        (path, "baton_errors", "row rejected"),
        (warnings.with_name(warnings.name + ".warnings.csv"), "baton_warnings", "value left out"),
    ):
        if not file.exists():
            continue
        with file.open(newline="") as handle:
            for row in csv.DictReader(handle):
                fields = re.findall(r"(?:^|; )([\w().]+): ", row[column])
                found += [(int(row["baton_line"]), field, outcome) for field in fields]
    return sorted(found, key=lambda item: item[0])


# --- item 9: every physical line is imported or rejected with its number ------------------

SWALLOWING = """email,first_name,company,country
a@acme.example.com,Ann,Acme,US
b@beta.example.com,Bob,Beta,US

c@gamma.example.com,Cy,"Gamma,US
d@delta.example.com,Di,Delta,DE
e@eps.example.com,Ed,Epsilon,FR
f@phi.example.com,Flo,Phi,GB
"""


def test_an_unterminated_quote_rejects_its_line_and_swallows_no_row(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(SWALLOWING)

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 1
    assert "line 5: (row): a quote opened on this line is never closed" in result.output
    counts = summary(result.output)
    assert counts["lines read"] == 8  # the header too, as wc -l counts
    assert (counts["rows read"], counts["blank lines"]) == (6, 1)
    assert (counts["rows imported"], counts["rows rejected"]) == (5, 1)
    assert outcomes(tmp_path / "leads.csv.errors.csv") == [(5, "(row)", "row rejected")]
    companies = {str(lead["email"]): lead["company"] for lead in export(runner)}
    assert companies == {
        "a@acme.example.com": "Acme",
        "b@beta.example.com": "Beta",
        "d@delta.example.com": "Delta",
        "e@eps.example.com": "Epsilon",
        "f@phi.example.com": "Phi",
    }


def test_a_quote_closed_lines_later_gives_back_the_rows_it_swallowed(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(
        "email,first_name,company\n"
        'a@acme.example.com,"Ann,Acme\n'  # line 2: the quote is closed only on line 4
        "b@beta.example.com,Bob,Beta\n"
        'c@gamma.example.com,Cy",Gamma\n'
        "d@delta.example.com,Di,Delta\n"
        'e@eps.example.com,Ed,"Epsilon\nHoldings"\n'  # a real line break in a value
    )

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 1
    assert "line 2: (row): a quoted value opened on this line swallows line 3" in result.output
    counts = summary(result.output)
    assert (counts["lines read"], counts["rows read"]) == (7, 5)
    assert (counts["rows imported"], counts["rows rejected"]) == (4, 1)
    companies = {str(lead["email"]): lead["company"] for lead in export(runner)}
    assert companies["b@beta.example.com"] == "Beta"
    assert companies["d@delta.example.com"] == "Delta"
    assert companies["e@eps.example.com"] == "Epsilon\nHoldings"
    assert "a@acme.example.com" not in companies


# --- item 10: imports a real team can use -----------------------------------------------


def test_an_x_education_export_imports_with_every_row_kept(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "Leads.csv"
    source.write_text(x_education_csv(rows=40))

    result = runner.invoke(app, ["import", "leads", str(source), *X_OPTIONS])

    assert result.exit_code == 0, result.output
    counts = summary(result.output)
    assert (counts["rows read"], counts["rows imported"], counts["leads created"]) == (40, 40, 40)
    assert counts["rows rejected"] == 0
    # Unreadable countries are left out of their rows, each reported by line.
    rows = list(csv.DictReader(io.StringIO(source.read_text())))
    unreadable = [
        i + 2 for i, r in enumerate(rows) if r["Country"] in ("unknown", "Asia/Pacific Region")
    ]
    assert unreadable
    left_out = outcomes(tmp_path / "Leads.csv.errors.csv")
    assert left_out == [(line, "country", "value left out") for line in unreadable]
    assert counts["of which with a value left out"] == len(unreadable)

    leads = {str(lead["external_id"]): lead for lead in export(runner)}
    assert len(leads) == 40
    first = leads[rows[0]["Prospect ID"]]
    assert first["external_system"] == "x education"
    assert (first["email"], first["phone"]) == (None, None)
    assert {lead["country"] for lead in leads.values()} <= {"IN", "US", "AE", "SG", None}
    assert {lead["source"] for lead in leads.values()} <= {
        "google",
        "direct traffic",
        "olark chat",
        "organic search",
        None,
    }
    attributes = [lead["attributes"] for lead in leads.values()]
    assert all(isinstance(a, dict) for a in attributes)
    assert not any("select" in str(v).lower() for a in attributes for v in a.values())  # type: ignore[union-attr]
    assert "prospect_id" not in first["attributes"]  # type: ignore[operator]

    # Matched on re-import by the external id, like an email: nothing new.
    again = runner.invoke(
        app, ["import", "leads", str(source), *X_OPTIONS, "--errors", str(tmp_path / "2.csv")]
    )
    assert again.exit_code == 0, again.output
    counts = summary(again.output)
    assert (counts["leads created"], counts["leads unchanged"]) == (0, 40)


def test_without_an_identity_the_import_says_which_column_to_map(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "Leads.csv"
    source.write_text(x_education_csv(rows=5))

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 1
    assert "--map 'Prospect ID=external_id'" in " ".join(result.output.split())


@pytest.mark.skipif(not REAL_LEADS.is_file(), reason="../shared/datasets has no X Education file")
def test_x_educations_raw_leads_csv_imports_with_its_rows_kept(
    runner: CliRunner, tmp_path: Path
) -> None:
    errors_file = tmp_path / "errors.csv"  # never beside the shared data set

    result = runner.invoke(
        app, ["import", "leads", str(REAL_LEADS), *X_OPTIONS, "--errors", str(errors_file)]
    )

    assert result.exit_code == 0, result.output[-2000:]
    counts = summary(result.output)
    assert (counts["rows read"], counts["rows imported"], counts["leads created"]) == (
        9240,
        9240,
        9240,
    )
    assert counts["rows rejected"] == 0
    assert {field for _, field, _ in outcomes(errors_file)} == {"country"}


def test_map_sends_columns_to_attributes_or_leaves_them_out(
    runner: CliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(
        "Email,Lead Number,Tags,Notes\nann@acme.example.com,660737,Ringing,call back\n"
    )

    result = runner.invoke(
        app,
        [
            "import",
            "leads",
            str(source),
            "--map",
            "Lead Number=attributes.crm_number",
            "--map",
            "Tags=-",
        ],
    )

    assert result.exit_code == 0, result.output
    assert "Columns left out: Tags" in result.output
    [lead] = export(runner)
    assert lead["attributes"] == {"crm_number": "660737", "notes": "call back"}


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("Email=emial", "'emial' is not a field; did you mean email?"),
        ("Emial=email", "the file has no column 'Emial'"),
    ],
)
def test_a_bad_map_is_one_error_for_the_file(
    runner: CliRunner, tmp_path: Path, pair: str, expected: str
) -> None:
    source = tmp_path / "leads.csv"
    source.write_text("Email\n" + "".join(f"p{i}@acme.example.com\n" for i in range(50)))

    result = runner.invoke(app, ["import", "leads", str(source), "--map", pair])

    assert result.exit_code == 1
    assert expected in " ".join(result.output.split())
    assert result.output.count("\n") <= 3  # one error, not one per row
    assert not (tmp_path / "leads.csv.errors.csv").exists()
    assert export(runner) == []


def test_every_problem_of_a_rejected_row_is_reported(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "leads.csv"
    source.write_text(
        "email,phone,country,consent\n"
        "not-an-email,12,Atlantis,maybe\n"  # every value is bad
        ",hello,,\n"  # a bad phone and so nothing to identify the lead
        "kim@acme.example.com,hello,Atlantis,maybe\n"  # kept without its bad values
    )

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 1
    found = outcomes(tmp_path / "leads.csv.errors.csv")
    assert found == [
        (2, "email", "row rejected"),
        (2, "phone", "row rejected"),
        (2, "country", "row rejected"),
        (2, "consent", "row rejected"),
        (2, "(row)", "row rejected"),  # nothing left to identify the lead either
        (3, "phone", "row rejected"),
        (3, "(row)", "row rejected"),
        (4, "phone", "value left out"),
        (4, "country", "value left out"),
        (4, "consent", "value left out"),
    ]
    [lead] = export(runner)
    assert (lead["email"], lead["phone"], lead["country"], lead["consent"]) == (
        "kim@acme.example.com",
        None,
        None,
        None,
    )


def test_an_external_id_is_unique_per_system(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "crm.csv"
    source.write_text("Id,First Name\nA-1,Ann\nA-2,Bo\n")
    update = tmp_path / "update.csv"
    update.write_text("external_id,email\nA-1,ann@acme.example.com\n")

    for system in ("hubspot", "salesforce"):
        runner.invoke(
            app, ["import", "leads", str(source), "--map", "Id=external_id", "--system", system]
        )
    result = runner.invoke(app, ["import", "leads", str(update), "--system", "HubSpot"])

    assert result.exit_code == 0, result.output
    leads = {(lead["external_system"], lead["external_id"]): lead for lead in export(runner)}
    assert len(leads) == 4
    assert leads[("hubspot", "A-1")]["email"] == "ann@acme.example.com"
    assert leads[("salesforce", "A-1")]["email"] is None


# --- item 12: an empty grouped period says so -----------------------------------------------


def test_an_empty_grouped_period_says_so_instead_of_an_empty_table(runner: CliRunner) -> None:
    period = ["--from", "2020-01-01", "--to", "2020-02-01", "--group-by", "source"]

    funnel = runner.invoke(app, ["report", "funnel", *period])
    credit = runner.invoke(app, ["report", "credit", *period, "--source", "Google"])

    assert funnel.exit_code == 0, funnel.output
    assert "Nothing to show: the period has no data to group by source" in funnel.output
    assert "┏" not in funnel.output  # no empty table
    assert "fewer filters" in " ".join(credit.output.split())
    assert "only source=google" in " ".join(credit.output.split())  # case-folded


def test_the_summary_counts_rows_and_leads_under_their_own_names(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Two rows of one person make one lead: the summary says how many rows it read,
    imported and rejected, and how many leads it created, each under its own name, and
    its column is a count (not "rows")."""
    source = tmp_path / "people.csv"
    source.write_text(
        "email,first_name\nana@acme.example.com,Ana\nana@acme.example.com,Anna\n"
        "bo@beta.example.com,Bo\nnot-an-email,X\n"
    )

    result = runner.invoke(
        app, ["import", "leads", str(source), "--errors", str(tmp_path / "e.csv")]
    )

    assert result.exit_code == 1, result.output
    header = next(line for line in result.output.splitlines() if "result" in line)
    assert "count" in header and "rows" not in header
    counts = summary(result.output)
    assert (counts["rows read"], counts["rows imported"], counts["rows rejected"]) == (4, 3, 1)
    assert (counts["leads created"], counts["leads updated"], counts["leads unchanged"]) == (
        2,
        0,
        0,
    )
    assert counts["new leads queued for the duplicate check"] == 2
    assert "not queued for the duplicate check" not in result.output


def test_the_summary_says_why_new_leads_were_not_queued_for_the_duplicate_check(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A CRM's rows identified by their id alone (no email, phone or company) cannot be
    paired with anyone: the summary says so rather than leave the two counts apart."""
    source = tmp_path / "crm.csv"
    source.write_text("Id,Stage\nopp-1,won\nopp-2,lost\nopp-3,won\n")
    ana = tmp_path / "ana.csv"
    ana.write_text("Id,Email\nopp-4,ana@acme.example.com\n")
    args = ["--map", "Id=external_id", "--system", "crm", "--errors", str(tmp_path / "e.csv")]

    result = runner.invoke(app, ["import", "leads", str(source), *args])
    also = runner.invoke(app, ["import", "leads", str(ana), *args])

    assert result.exit_code == 0, result.output
    counts = summary(result.output)
    assert (counts["leads created"], counts["new leads queued for the duplicate check"]) == (3, 0)
    assert "3 new leads were not queued for the duplicate check: nothing Baton can" in (
        " ".join(result.output.split())
    )
    assert also.exit_code == 0, also.output
    assert summary(also.output)["new leads queued for the duplicate check"] == 1
    assert "not queued" not in also.output


# --- a single Name column is the full name (split like a badge scan's) ------------------


def test_a_name_column_is_split_into_first_and_last_name(runner: CliRunner, tmp_path: Path) -> None:
    """A CRM export with one Name column: the names land in first and last name (where
    the duplicate comparison reads them), not in attributes, and the summary says which
    column was read as the name."""
    source = tmp_path / "crm.csv"
    source.write_text(
        "Name,Company,Email\n"
        "Dana Reyes,Acme,dana@acme.example.com\n"
        '"Okafor, Chidi",Beta,chidi@beta.example.com\n'
        "Cher,Gamma,cher@gamma.example.com\n"
        "Mary Ann  de la Cruz,Delta,mary@delta.example.com\n"
        ",Eps,nobody@eps.example.com\n"
    )

    result = runner.invoke(
        app, ["import", "leads", str(source), "--errors", str(tmp_path / "e.csv")]
    )

    assert result.exit_code == 0, result.output
    assert "Column read as the full name (split into first and last name): Name" in (
        " ".join(result.output.split())
    )
    assert "Columns kept as attributes" not in result.output
    names = {
        lead["email"]: (lead["first_name"], lead["last_name"], lead["attributes"])
        for lead in export(runner)
    }
    assert names == {
        "dana@acme.example.com": ("Dana", "Reyes", {}),
        "chidi@beta.example.com": ("Chidi", "Okafor", {}),
        "cher@gamma.example.com": ("Cher", None, {}),
        "mary@delta.example.com": ("Mary", "Ann de la Cruz", {}),
        "nobody@eps.example.com": (None, None, {}),
    }


@pytest.mark.parametrize("header", ["Full Name", "full_name", "Contact Name", "contact_name"])
def test_the_usual_whole_name_headers_are_recognised(
    runner: CliRunner, tmp_path: Path, header: str
) -> None:
    source = tmp_path / "crm.csv"
    source.write_text(f"Email,{header}\ndana@acme.example.com,Dana Reyes\n")

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 0, result.output
    [lead] = export(runner)
    assert (lead["first_name"], lead["last_name"], lead["attributes"]) == ("Dana", "Reyes", {})


def test_first_and_last_name_columns_win_over_a_name_column(
    runner: CliRunner, tmp_path: Path
) -> None:
    """With first and last name columns, a Name column is not the person's name (it
    stays an attribute), and neither is a Full Name column: the parts are kept as given."""
    source = tmp_path / "crm.csv"
    source.write_text(
        "Email,First Name,Last Name,Full Name,Name\n"
        "dana@acme.example.com,Dana,Reyes-Ortiz,Dana Reyes,Acme deal\n"
    )

    result = runner.invoke(app, ["import", "leads", str(source)])

    assert result.exit_code == 0, result.output
    assert "Column read as the full name" not in result.output
    [lead] = export(runner)
    assert (lead["first_name"], lead["last_name"]) == ("Dana", "Reyes-Ortiz")
    assert lead["attributes"] == {"full_name": "Dana Reyes", "name": "Acme deal"}


def test_map_to_full_name_splits_any_column_and_a_row_keeps_its_own_parts(
    runner: CliRunner, tmp_path: Path
) -> None:
    """``--map 'Person=full_name'`` is accepted; a row that gives a first or last name of
    its own keeps it, and the others are split."""
    source = tmp_path / "crm.csv"
    source.write_text(
        "Email,Person,Given\n"
        "dana@acme.example.com,Dana Reyes,\n"
        "chidi@beta.example.com,Chidi Okafor,Chi\n"
    )

    result = runner.invoke(
        app,
        ["import", "leads", str(source), "--map", "Person=full_name", "--map", "Given=first_name"],
    )

    assert result.exit_code == 0, result.output
    names = {lead["email"]: (lead["first_name"], lead["last_name"]) for lead in export(runner)}
    assert names == {
        "dana@acme.example.com": ("Dana", "Reyes"),
        "chidi@beta.example.com": ("Chi", None),
    }
