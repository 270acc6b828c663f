"""The release plan's population, checked against the warehouse tables read directly.

Property tests over packs x roles x levels x cohort kinds x years on the small generated
district. Every expectation is worked out here with pandas on the raw tables, not with the
workbench's cohort or measure code: a student in a year's population must be enrolled that year,
belong to the cohort as the request defines it, be in the requester's scope, and have a level no
higher than asked; an aggregate year of a cohort is never a small group; refusals release nobody.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.plan import ROW_LEVELS, make_plan
from workbench.policy import load_policy
from workbench.request import parse_request

AS_OF = date(2026, 6, 1)
PACKS = ("bps", "dmps", "mps", "mmsd", "nces")
LEVEL_RANK = {"aggregate": 1, "directory": 1, "deidentified": 2, "identified": 3}


@pytest.fixture(scope="module")
def raw(small_con):
    """The raw tables the expectations are computed from."""
    names = ("student_years", "enrollments", "program_students", "programs", "partners", "ndas",
             "school_calendar", "staff_assignments", "sections", "section_students", "consents", "students")
    return {name: small_con.table(name).to_pandas() for name in names}


@pytest.fixture(scope="module")
def cases(raw):
    """Requesters that exist in the district: a partner with an NDA and programs, a principal."""
    ndas = raw["ndas"]
    now = pd.Timestamp(AS_OF)
    current = ndas[(ndas["signed_on"] <= now) & (ndas["expires_on"] >= now) & ndas["partner_id"].notna()]
    partners = raw["partners"]
    registered = set(partners.loc[partners["registration_status"] == "registered", "partner_id"])
    programs = raw["programs"]
    partner_id = sorted(set(programs["partner_id"]) & registered & set(current["partner_id"]))[0]
    nda_id = current.loc[current["partner_id"] == partner_id, "nda_id"].iloc[0]
    program_id = sorted(programs.loc[programs["partner_id"] == partner_id, "program_id"])[0]
    assignments = raw["staff_assignments"]
    principal = assignments[(assignments["role"] == "principal") & (assignments["school_year"] == "2025-2026")].iloc[0]
    return {
        "partner": {"name": "Partner", "role": "community_partner", "partner_id": partner_id, "nda_id": nda_id},
        "program": program_id,
        "principal": {"name": "Principal", "role": "school_leader", "staff_id": principal["staff_id"],
                      "staff_school_id": principal["school_id"]},
        "school": principal["school_id"],
        "ids": sorted(raw["student_years"].loc[raw["student_years"]["school_year"] == "2025-2026", "student_id"])[:400:7],
    }


def _year_bounds(raw, year):
    calendar = raw["school_calendar"]
    rows = calendar[calendar["school_year"] == year]
    return pd.Timestamp(rows["first_day"].min()), pd.Timestamp(rows["last_day"].max())


def _request(cases, role, level, kind, years, grades):
    requester = dict(cases["partner"] if role == "community_partner" else
                     cases["principal"] if role == "school_leader" else
                     {"name": "Analyst", "role": "district_staff", "organization": "Office of Data"})
    cohort = {"student_ids": cases["ids"]} if kind == "ids" else {"program": cases["program"]} if kind == "program" \
        else {"school": cases["school"], **({"grades": grades} if grades else {})} if kind == "school" else None
    data = {"id": "REQ-PLAN", "received": AS_OF.isoformat(), "purpose": "plan properties", "audience": "tests",
            "requester": requester, "level": level, "years": years}
    if cohort is not None:
        data["cohort"] = cohort
    if level == "aggregate":
        data |= {"measures": ["chronic_absence"], "breakdowns": ["grade"]}
    else:
        data["fields"] = ["name", "grade", "attendance"] if level != "directory" else ["name", "grade"]
    return parse_request(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pack=st.sampled_from(PACKS),
    role=st.sampled_from(["community_partner", "school_leader", "district_staff"]),
    level=st.sampled_from(["aggregate", "deidentified", "identified", "directory"]),
    kind=st.sampled_from(["ids", "program", "school", "none"]),
    years=st.sampled_from([["2025-2026"], ["2024-2025", "2025-2026"], ["2024-2025"]]),
    grades=st.sampled_from([None, [0, 1, 2], [5]]),
)
def test_the_population_is_exactly_what_the_rules_allow(small_con, raw, cases, pack, role, level, kind, years, grades):
    policy = load_policy(pack)
    request = _request(cases, role, level, kind, years, grades)
    plan = make_plan(request, policy, small_con, AS_OF)
    decision = plan.decision
    population = decision.population

    if decision.outcome in ("refuse", "redirect") or decision.level is None:
        assert population == {} and plan.template is None
        return
    assert list(population) == decision.years and set(decision.years) <= set(years)
    assert decision.cohort["by_year"] == {year: len(members) for year, members in population.items()}
    rule = policy.small_group_rule()
    enrolled = raw["student_years"]
    tags = raw["program_students"]
    enrollments = raw["enrollments"]
    for year, members in population.items():
        ids = set(members)
        assert ids, "a year without students is left out of the plan"
        assert ids <= set(enrolled.loc[enrolled["school_year"] == year, "student_id"])
        assert all(LEVEL_RANK[lv] <= LEVEL_RANK[level] for lv in members.values())
        assert "excluded" not in members.values()
        if kind == "ids":
            assert ids <= set(cases["ids"])
        elif kind == "school":
            at_school = enrollments[(enrollments["school_year"] == year) & (enrollments["school_id"] == cases["school"])]
            assert ids <= set(at_school["student_id"])
            if grades:
                in_grades = enrolled[(enrolled["school_year"] == year) & enrolled["grade"].isin(grades)]
                assert ids <= set(in_grades["student_id"])
        elif kind == "program":
            first, last = _year_bounds(raw, year)
            program_tags = tags[tags["program_id"] == cases["program"]]
            served = program_tags[(pd.to_datetime(program_tags["added_on"]) <= last)
                                  & (program_tags["dropped_on"].isna() | (pd.to_datetime(program_tags["dropped_on"]) > first))]
            assert ids <= set(served["student_id"])
        if decision.level == "aggregate" and kind != "none":
            assert not rule.is_small(len(ids)), "an aggregate year of a small cohort must be left out"
        scope = policy.pack.roles[role].student_scope if role in policy.pack.roles else "all"
        if scope == "partner_programs" and decision.level != "aggregate":
            partner_programs = set(raw["programs"].loc[raw["programs"]["partner_id"] == cases["partner"]["partner_id"], "program_id"])
            assert ids <= set(tags.loc[tags["program_id"].isin(partner_programs), "student_id"])
        if scope == "own_school" and decision.level != "aggregate":
            at_school = enrollments[(enrollments["school_year"] == "2025-2026")
                                    & (enrollments["school_id"] == cases["principal"]["staff_school_id"])]
            assert ids <= set(at_school["student_id"])
        identified = {sid for sid, lv in members.items() if lv == "identified"}
        if role == "community_partner" and identified:
            consents = raw["consents"]
            assert identified <= set(consents.loc[consents["partner_id"] == cases["partner"]["partner_id"], "student_id"])
        assert set(plan.row_students(year)) == {sid for sid, lv in members.items() if lv in ROW_LEVELS[decision.level]}


def test_a_partner_s_school_cohort_is_cut_to_the_partner_s_students(small_con, raw, cases):
    """The case that leaked: a school cohort at the de-identified level under DMPS. The plan holds
    only the students tagged to the partner's programs, for every year (not the whole school)."""
    request = _request(cases, "community_partner", "deidentified", "school", ["2024-2025", "2025-2026"], None)
    plan = make_plan(request, load_policy("dmps"), small_con, AS_OF)
    programs = set(raw["programs"].loc[raw["programs"]["partner_id"] == cases["partner"]["partner_id"], "program_id"])
    tagged = set(raw["program_students"].loc[raw["program_students"]["program_id"].isin(programs), "student_id"])
    enrollments = raw["enrollments"]
    school_students = set(enrollments.loc[enrollments["school_id"] == cases["school"], "student_id"])
    assert plan.level == "deidentified"
    for year in plan.years:
        assert set(plan.row_students(year)) <= tagged & school_students
    assert len(plan.all_students()) < len(school_students), "the plan must not cover the whole school"


def test_the_plan_survives_its_file(tmp_path, small_con, cases):
    """What a template reads back is what fill decided: same students, levels, fields, reasons."""
    from workbench.plan import ReleasePlan

    request = _request(cases, "community_partner", "identified", "program", ["2024-2025", "2025-2026"], None)
    plan = make_plan(request, load_policy("bps"), small_con, AS_OF, settings={"policy": "option"})
    path = plan.save(tmp_path / "plan.json")
    assert oct(path.stat().st_mode & 0o777) == "0o600", "the plan names students: owner-only"
    again = ReleasePlan.load(path)
    assert again.decision.population == plan.decision.population
    assert again.decision.to_dict() == plan.decision.to_dict()
    assert again.summary() == plan.summary() and again.template == plan.template
    assert again.request == plan.request
    summary_text = str(plan.summary())
    assert not any(sid in summary_text for sid in plan.all_students()), "the summary holds no student IDs"


def test_a_changed_policy_is_refused_when_the_plan_is_read(tmp_path, small_con, cases):
    import shutil

    from workbench.plan import PlanError, ReleasePlan

    pack = tmp_path / "nces.yaml"
    shutil.copy(load_policy("nces").path, pack)
    request = _request(cases, "district_staff", "aggregate", "none", ["2025-2026"], None)
    plan = make_plan(request, load_policy(pack), small_con, AS_OF)
    plan.save(tmp_path / "plan.json")
    pack.write_text(pack.read_text().replace("threshold: 10", "threshold: 5", 1))
    with pytest.raises(PlanError, match="changed after the request was decided"):
        ReleasePlan.load(tmp_path / "plan.json").policy()
