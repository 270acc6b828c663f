"""The release ledger against a recipient who knows who is in each group.

A partner who asked for a list of students knows each listed student's grade and gender. Such a
recipient does not need two groups with the same labels: the girls of one release against the
whole cohort of another, or the sum of two grades of one release against the total of another,
isolate the students in the difference just as well. The attacker here rebuilds the members of
every published group from what the recipient knows (the IDs they sent and the students' grades
and genders, read straight from the warehouse), and looks across releases of one school year for
two groups, or a group and a union of one breakdown's published categories, that differ by 1 to
t-1 students. Fills go through the real `fill` and guarded kernel on the demo district.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path

import duckdb
import pytest

from tests.test_ledger import AS_OF, PARTNER, PROGRAM, T_DMPS, _aggregate, workspace  # noqa: F401 (fixture)

YEAR = "2025-2026"


# -- the attacker -------------------------------------------------------------------------------

def _what_the_recipient_knows(warehouse: str, ids: list[str]) -> dict[str, dict[str, str]]:
    with duckdb.connect(warehouse, read_only=True) as con:
        rows = con.execute(
            "SELECT s.student_id, s.grade, st.gender, st.race_ethnicity FROM student_years s "
            "JOIN students st USING (student_id) WHERE s.school_year = ? AND s.student_id IN (SELECT UNNEST(?))",
            [YEAR, ids]).fetchall()
    return {sid: {"grade": "K" if grade == 0 else str(grade), "gender": gender, "race_ethnicity": race}
            for sid, grade, gender, race in rows}


def groups_with_members(folder: Path, known: dict[str, dict[str, str]]) -> dict[str, frozenset[str]]:
    """Labels -> members of every group whose count the release publishes for YEAR."""
    manifest = json.loads((folder / "manifest.json").read_text())
    found: dict[str, frozenset[str]] = {}
    for name, entry in (manifest.get("released") or {}).items():
        if not name.startswith("tables/") or entry.get("year") != YEAR:
            continue
        dims = manifest["protection"][Path(name).stem]["dims"]
        for row in csv.DictReader(io.StringIO((folder / name).read_text())):
            count = row.get("students", "").replace(",", "")
            if not count.isdigit() or int(count) == 0:
                continue
            wanted = {d: row[d] for d in dims if row[d] != "Total"}
            members = frozenset(s for s, values in known.items() if all(values.get(d) == v for d, v in wanted.items()))
            assert len(members) == int(count), f"the attacker rebuilt {name} {wanted} wrongly"
            found["|".join(f"{d}={v}" for d, v in sorted(wanted.items()))] = members
    return found


def _unions(groups: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Every union of one breakdown's published categories, with what the total leaves over."""
    unions = {}
    whole = groups.get("")
    dims = {labels.split("=")[0] for labels in groups if labels and "|" not in labels}
    for dim in dims:
        categories = {labels: members for labels, members in groups.items() if labels.startswith(dim + "=") and "|" not in labels}
        if whole is not None:
            rest = whole - frozenset().union(*categories.values())
            if rest:
                categories[f"{dim}=(the rest)"] = rest
        for size in range(2, len(categories) + 1):
            for chosen in itertools.combinations(sorted(categories), size):
                unions[" + ".join(chosen)] = frozenset().union(*(categories[c] for c in chosen))
    return unions


def membership_attack(releases: list[tuple[str, dict[str, frozenset[str]]]], t: int) -> list[str]:
    findings = []
    for (first, a), (second, b) in itertools.combinations(releases, 2):
        pairs = [(a, b), (a, _unions(b)), (_unions(a), b)]
        for left, right in pairs:
            for (left_labels, x), (right_labels, y) in itertools.product(left.items(), right.items()):
                difference = len(x ^ y)
                if 0 < difference < t:
                    findings.append(f"{first} {left_labels!r} vs {second} {right_labels!r}: {difference} students")
    return findings


# -- the cohorts --------------------------------------------------------------------------------

def _program_students_by(warehouse: str, where: str) -> list[str]:
    with duckdb.connect(warehouse, read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT DISTINCT p.student_id FROM program_students p JOIN student_years s USING (student_id) "
            f"JOIN students st USING (student_id) WHERE p.program_id = ? AND s.school_year = ? AND {where} ORDER BY 1",
            [PROGRAM, YEAR]).fetchall()]


def _fill_pair(workspace, first: tuple[list[str], list[str]], second: tuple[list[str], list[str]]):
    (first_ids, first_by), (second_ids, second_by) = first, second
    one = workspace.fill("LEDGER-DEF-1", {**_aggregate({"student_ids": first_ids}), "breakdowns": first_by})
    assert one.outcome in ("approve", "partial") and one.level == "aggregate"
    two = workspace.fill("LEDGER-DEF-2", {**_aggregate({"student_ids": second_ids}), "breakdowns": second_by})
    released = []
    for result, ids in ((one, first_ids), (two, second_ids)):
        folder = result.release.path
        if json.loads((folder / "manifest.json").read_text()).get("released"):
            released.append((folder.name, groups_with_members(folder, _what_the_recipient_knows(workspace.warehouse, ids))))
    return one, two, released


# -- the pairs ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_whole_of_one_release_against_the_girls_of_another(workspace):
    grades_7_8 = _program_students_by(workspace.warehouse, "s.grade IN (7, 8)")
    girls = _program_students_by(workspace.warehouse, "s.grade IN (7, 8) AND st.gender = 'F'")
    assert len(girls) >= 2 * T_DMPS and len(grades_7_8) - len(girls) >= T_DMPS
    # The second list is the first release's girls less one: its total against their count gives
    # that girl away, though no group of the two releases has the same labels.
    one, two, released = _fill_pair(workspace, (grades_7_8, ["grade", "gender"]), (girls[1:], ["grade"]))
    assert two.outcome == "refuse"
    letter = (two.release.path / "letter.md").read_text()
    assert "already holds" in letter and "LEDGER-DEF-1" in letter
    assert membership_attack(released, T_DMPS) == []


@pytest.mark.slow
@pytest.mark.parametrize("union_first", [False, True])
def test_two_categories_of_one_release_against_the_total_of_another(workspace, union_first):
    everyone = _program_students_by(workspace.warehouse, "TRUE")
    two_races = _program_students_by(workspace.warehouse, "st.race_ethnicity IN ('Asian', 'White')")
    assert len(everyone) - len(two_races) >= T_DMPS
    by_race, less_one = (everyone, ["grade", "race_ethnicity"]), (two_races[1:], ["grade"])
    # Two races summed in one release, the same students less one in the other.
    one, two, released = _fill_pair(workspace, *((less_one, by_race) if union_first else (by_race, less_one)))
    assert two.outcome == "refuse"
    assert "LEDGER-DEF-1" in (two.release.path / "letter.md").read_text()
    assert membership_attack(released, T_DMPS) == []


@pytest.mark.slow
def test_a_group_held_exactly_is_released_again_under_another_definition(workspace):
    """The girls of one release asked for again as a list: nothing differs, nothing is refused."""
    grades_7_8 = _program_students_by(workspace.warehouse, "s.grade IN (7, 8)")
    girls = _program_students_by(workspace.warehouse, "s.grade IN (7, 8) AND st.gender = 'F'")
    one, two, released = _fill_pair(workspace, (grades_7_8, ["grade", "gender"]), (girls, ["grade"]))
    assert two.outcome in ("approve", "partial") and two.level == "aggregate"
    assert len(released) == 2
    assert membership_attack(released, T_DMPS) == []


def test_the_attacker_finds_a_union_and_a_group_of_another_definition():
    """The attacker itself: it sees both attacks on made-up releases, and nothing in far ones."""
    known = {f"{n:07d}": {"grade": "6" if n < 15 else ("7" if n < 30 else "8"), "gender": "F" if n % 2 else "M"}
             for n in range(45)}
    by_grade = {"": frozenset(known)} | {f"grade={g}": frozenset(s for s, v in known.items() if v["grade"] == g)
                                        for g in ("6", "7", "8")}
    six_seven_less_one = {"": frozenset(s for s, v in known.items() if v["grade"] in ("6", "7")) - {"0000001"}}
    assert membership_attack([("a", by_grade), ("b", six_seven_less_one)], 11) != []
    girls_less_one = {"": frozenset(s for s, v in known.items() if v["gender"] == "F") - {"0000001"}}
    by_gender = {"gender=F": frozenset(s for s, v in known.items() if v["gender"] == "F")}
    assert membership_attack([("a", by_gender), ("b", girls_less_one)], 11) != []
    assert membership_attack([("a", by_grade), ("b", {"": by_grade["grade=6"]})], 11) == []


@pytest.mark.slow
def test_a_cell_of_a_school_report_against_an_earlier_list(workspace):
    """A school report's grade-by-gender cell is known to be published only once its table is
    protected: the fill leaves the year out then, and the report is refused with the reason."""
    from workbench.policy import load_policy

    principal = {"name": "Principal", "role": "district_staff", "organization": "Office of Data"}
    with duckdb.connect(workspace.warehouse, read_only=True) as con:
        girls_8 = [r[0] for r in con.execute(
            "SELECT s.student_id FROM student_years s JOIN enrollments e USING (student_id, school_year) "
            "JOIN students st USING (student_id) WHERE e.school_id = '8106' AND s.school_year = ? AND s.grade = 8 "
            "AND st.gender = 'F' ORDER BY 1", [YEAR]).fetchall()]
    t = load_policy("bps").small_group_rule().smallest_publishable
    assert len(girls_8) > 2 * t
    listed = {**_aggregate({"student_ids": girls_8[1:]}, requester=principal), "breakdowns": ["grade"]}
    one = workspace.fill("LEDGER-DEF-LIST", listed, policy="bps")
    assert one.outcome in ("approve", "partial") and one.level == "aggregate"
    report = {"requester": principal, "level": "aggregate", "cohort": {"school": "8106"}, "years": [YEAR],
              "measures": ["chronic_absence"], "breakdowns": ["grade", "gender"]}
    two = workspace.fill("LEDGER-DEF-SCHOOL", report, policy="bps")
    assert two.outcome == "refuse"
    letter = (two.release.path / "letter.md").read_text()
    assert "LEDGER-DEF-LIST" in letter and "left out: 2025-2026" in letter
    reasons = json.loads((two.release.path / "decision.json").read_text())["reasons"]
    assert any(re.search(r"gender=F, grade=8 differs by \d students? from the whole cohort", reason["message"])
               for reason in reasons)
    assert not json.loads((two.release.path / "manifest.json").read_text()).get("released", {}).get("tables/")
