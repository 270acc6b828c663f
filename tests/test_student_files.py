"""Student-level files from the warehouse: what they hold, in which order, and what the report says."""

from __future__ import annotations

import json

import pytest
import yaml
from pydantic import ValidationError

from workbench.config import DATA_DIR
from workbench.disclosure import WITHHELD
from workbench.policy.model import QuasiIdentifiers, Source
from workbench.report import RequestContext, deidentified_extract, directory_list, identified_roster
from workbench.report.student_level import extract_plan

DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"


def request_file(tmp_path, name: str, **changes) -> str:
    request = yaml.safe_load((DEMO / name).read_text())
    request.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(request))
    return str(path)


def in_name_order(frame) -> bool:
    names = list(zip(frame["last_name"].str.casefold(), frame["first_name"].str.casefold()))
    return names == sorted(names)


def test_named_lists_are_in_name_order_not_id_order(demo_warehouse, tmp_path):
    listing_ctx = RequestContext.open(DEMO / "partner_directory.yml", "bps", AS_OF, tmp_path / "d", warehouse=demo_warehouse)
    listing = directory_list(listing_ctx).frame
    assert len(listing) > 10 and in_name_order(listing)
    roster_ctx = RequestContext.open(DEMO / "partner_roster.yml", "dmps", AS_OF, tmp_path / "r", warehouse=demo_warehouse)
    roster = identified_roster(roster_ctx).frame
    assert len(roster) > 5 and in_name_order(roster)
    assert roster["student_id"].tolist() != sorted(roster["student_id"])


def test_identifying_fields_are_generalized_and_reported_in_counts(demo_warehouse, tmp_path):
    path = request_file(tmp_path, "research_extract.yml",
                        fields=["grade", "gender", "disability", "enrollment_dates", "attendance", "programs", "assessments"])
    ctx = RequestContext.open(path, "bps", AS_OF, tmp_path / "out", warehouse=demo_warehouse)
    extract = deidentified_extract(ctx)
    columns = set(extract.frame.columns)
    assert {"enrollment", "first_enrolled_month", "last_enrolled_month", "days_absent", "school_year"} <= columns
    assert not {"days_enrolled", "first_enrolled", "last_enrolled"} & columns
    assert set(extract.frame["enrollment"]) <= {"full year", "part year", WITHHELD}
    assert extract.frame["first_enrolled_month"].str.fullmatch(rf"\d{{4}}-\d{{2}}|{WITHHELD}").all()
    report = extract.report
    assert report["fields"]["enrollment"]["generalized"] == len(extract.frame) + report["rows_removed"]
    assert {"disability", "programs", "grade", "gender"} <= set(report["fields"])
    assert report["smallest_class"] >= 10
    assert report["values_withheld"] == sum(int((extract.frame[c] == WITHHELD).sum()) for c in report["fields"])
    text = json.dumps(report)
    assert not any(sid in text for sid in ctx.student_ids)
    # One file for every year, one pseudonym per student across them.
    assert set(extract.frame["school_year"]) == set(ctx.years)
    assert extract.frame.groupby("student_id")["gender"].nunique().max() == 1


def test_the_request_orders_what_is_given_up_first(demo_warehouse, tmp_path):
    default = extract_plan(RequestContext.open(DEMO / "research_extract.yml", "bps", AS_OF, tmp_path / "a", warehouse=demo_warehouse))
    assert default.give_up[0] == "race_ethnicity"
    path = request_file(tmp_path, "research_extract.yml", priority=["race_ethnicity", "english_learner"])
    ordered = extract_plan(RequestContext.open(path, "bps", AS_OF, tmp_path / "b", warehouse=demo_warehouse))
    assert ordered.give_up[-2:] == ["english_learner", "race_ethnicity"]


def test_a_pack_cannot_generalize_a_field_in_a_way_it_does_not_admit():
    source = Source(external="test")
    with pytest.raises(ValidationError, match="does not apply"):
        QuasiIdentifiers(fields=("grade",), generalize={"grade": "month"}, source=source)
    assert QuasiIdentifiers(fields=("grade",), generalize={"grade": "withhold"}, source=source)


def test_a_pack_hierarchy_must_coarsen_level_by_level():
    source = Source(external="test")
    with pytest.raises(ValidationError, match="splits the group"):
        QuasiIdentifiers(fields=("race_ethnicity",), source=source, hierarchies={
            "race_ethnicity": ({"Small": ("A", "B")}, {"Other": ("A", "C")})})
    with pytest.raises(ValidationError, match="in two groups"):
        QuasiIdentifiers(fields=("grade",), source=source, hierarchies={"grade": ({"Low": ("1", "2"), "High": ("2", "3")},)})
    with pytest.raises(ValidationError, match="named like a value"):
        QuasiIdentifiers(fields=("grade",), source=source, hierarchies={"grade": ({"1": ("1", "2")},)})
    assert QuasiIdentifiers(fields=("race_ethnicity",), source=source, hierarchies={
        "race_ethnicity": ({"Small": ("A", "B")}, {"Other": ("A", "B", "C")})})


def test_the_demo_extract_shows_the_packs_groups_and_counts_their_loss(demo_warehouse, tmp_path):
    ctx = RequestContext.open(DEMO / "research_extract.yml", "bps", AS_OF, tmp_path / "out", warehouse=demo_warehouse)
    extract = deidentified_extract(ctx)
    hierarchies = ctx.policy.pack.fields.quasi_identifiers.hierarchies
    labels = {label for levels in hierarchies.values() for level in levels for label in level}
    shown_groups = (set(extract.frame["race_ethnicity"]) | set(extract.frame["grade"])) & labels
    assert shown_groups, "no value shown as a group of the pack's"
    report = extract.report
    grouped = sum(f["grouped"] for f in report["fields"].values())
    assert grouped == sum(int(extract.frame[c].isin(labels).sum()) for c in report["fields"])
    # A grouped value costs less than a withheld one and more than nothing.
    withheld = report["values_withheld"]
    assert withheld / report["quasi_identifier_values"] < report["information_loss"] < (withheld + grouped) / report["quasi_identifier_values"]
    assert any(note.startswith("race_ethnicity: some values shown as a group") or note.startswith("grade: some values shown")
               for note in extract.notes)
