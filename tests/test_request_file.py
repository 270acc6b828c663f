"""Request files: the YAML format, its traps, and clear field-by-field errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from tests.policy_fixtures import request_data, write_request
from workbench import config
from workbench.request import RequestError, load_request, parse_request

EXAMPLES = config.DATA_DIR / "requests" / "examples"
VALID = """\
id: REQ-2026-0042
received: 2026-11-02
requester:
  name: Jane Doe
  organization: Northside Youth Club
  role: community_partner
  partner_id: P-07
  nda_id: NDA-0007
purpose: Evaluate our tutoring program
audience: Program staff and our board
level: aggregate
years: [2025-2026]
cohort:
  student_ids: ["0000123", "0004567"]
measures: [attendance_rate, chronic_absence]
breakdowns: [grade, gender]
"""


def _problems(tmp_path: Path, text: str) -> str:
    path = tmp_path / "request.yml"
    path.write_text(text)
    with pytest.raises(RequestError) as caught:
        load_request(path)
    return str(caught.value)


def test_a_valid_request_reads_dates_years_and_ids_as_written(tmp_path):
    path = tmp_path / "request.yml"
    path.write_text(VALID)
    request = load_request(path)
    assert request.received == date(2026, 11, 2)
    assert request.years == ("2025-2026",)
    assert request.cohort.student_ids == ("0000123", "0004567")
    assert request.cohort.kind == "student_ids"
    assert request.path == path
    assert "Jane Doe" not in request.describe() and "0000123" not in request.describe()


def test_unquoted_ids_are_an_error_naming_each_entry(tmp_path):
    text = VALID.replace('["0000123", "0004567"]', '[000123, "0004567", 0041275, 1234567]')
    message = _problems(tmp_path, text)
    assert "cohort.student_ids" in message and "quote" in message.lower()
    assert "[0] 000123 (read as 83)" in message  # octal
    assert "[2] 0041275 (read as 17085)" in message  # octal too: the digits are lost
    assert "[3] 1234567" in message  # even a full-length number must be quoted
    assert "[1]" not in message  # the quoted entry is fine


def test_ids_that_lost_their_leading_zeros_are_an_error_not_padded(tmp_path):
    message = _problems(tmp_path, VALID.replace('["0000123", "0004567"]', '["41275", "0004567"]'))
    assert "'41275' has 5 digits" in message and "'0041275'" in message


def test_a_parents_own_children_must_be_quoted_too(tmp_path):
    text = VALID.replace("  role: community_partner\n", "  role: parent\n  student_ids: [0041275]\n")
    message = _problems(tmp_path, text)
    assert "requester.student_ids" in message and "read as 17085" in message


def test_missing_fields_are_listed_together(tmp_path):
    text = "\n".join(line for line in VALID.splitlines() if not line.startswith(("purpose", "audience", "level")))
    message = _problems(tmp_path, text)
    for name in ("purpose: is required", "audience: is required", "level: is required"):
        assert name in message


def test_unknown_role_lists_the_roles(tmp_path):
    message = _problems(tmp_path, VALID.replace("role: community_partner", "role: partner"))
    assert "requester.role: must be 'community_partner'" in message and "(got 'partner')" in message


def test_bad_dates_are_reported_not_crashed_on(tmp_path):
    assert "received: 2026-13-02 is not a real date" in _problems(tmp_path, VALID.replace("2026-11-02", "2026-13-02"))
    assert "YYYY-MM-DD" in _problems(tmp_path, VALID.replace("2026-11-02", "11/02/2026"))
    assert "YYYY-MM-DD" in _problems(tmp_path, VALID.replace("received: 2026-11-02", "received: 20261102"))


def test_school_years_must_be_consecutive_labels(tmp_path):
    assert "school years are written like 2025-2026" in _problems(tmp_path, VALID.replace("[2025-2026]", "[2025]"))
    assert "'2025-2027'" in _problems(tmp_path, VALID.replace("[2025-2026]", "[2025-2027]"))
    single = tmp_path / "single.yml"
    single.write_text(VALID.replace("[2025-2026]", "2025-2026"))
    assert load_request(single).years == ("2025-2026",)


def test_unknown_keys_measures_and_breakdowns_are_named(tmp_path):
    assert "purpos: is not a known key" in _problems(tmp_path, VALID.replace("purpose:", "purpos:"))
    assert "unknown measure(s) 'attendance'" in _problems(tmp_path, VALID.replace("attendance_rate,", "attendance,"))
    assert "unknown breakdown(s) 'zip'" in _problems(tmp_path, VALID.replace("[grade, gender]", "[grade, zip]"))


def test_what_is_asked_must_match_the_level(tmp_path):
    assert "a deidentified request lists the per-student fields" in _problems(
        tmp_path, VALID.replace("level: aggregate", "level: deidentified"))
    text = VALID + "fields: [name]\n"
    assert "not per-student fields" in _problems(tmp_path, text)


def test_a_cohort_is_one_kind(tmp_path):
    text = VALID.replace('  student_ids: ["0000123", "0004567"]', '  student_ids: ["0000123"]\n  program: PRG-001')
    assert "give exactly one of student_ids, program or school (got student_ids, program)" in _problems(tmp_path, text)
    grades = VALID.replace('  student_ids: ["0000123", "0004567"]', '  program: PRG-001\n  grades: [3]')
    assert "grades go with a school cohort" in _problems(tmp_path, grades)


def test_role_specific_identifiers_are_required(tmp_path):
    assert "staff_id: a teacher's request needs" in _problems(tmp_path, VALID.replace("community_partner", "teacher"))
    assert "staff_school_id" in _problems(tmp_path, VALID.replace("community_partner", "school_leader"))
    assert "a parent's request lists the IDs" in _problems(tmp_path, VALID.replace("community_partner", "parent"))


def test_not_yaml_and_not_a_mapping(tmp_path):
    assert "not valid YAML" in _problems(tmp_path, "id: [unclosed\n")
    assert "must be a mapping" in _problems(tmp_path, "- just\n- a list\n")
    assert "the file is empty" in _problems(tmp_path, "")


def test_errors_never_show_the_requesters_answers_for_other_fields(tmp_path):
    message = _problems(tmp_path, VALID.replace("role: community_partner", "role: nobody"))
    assert "Jane Doe" not in message


# -- ID files -----------------------------------------------------------------------------

def _with_id_file(tmp_path: Path, name: str) -> Path:
    text = VALID.replace('["0000123", "0004567"]', name)
    path = tmp_path / "request.yml"
    path.write_text(text)
    return path


def test_ids_from_a_csv_keep_their_leading_zeros(tmp_path):
    (tmp_path / "ids.csv").write_text("student_id,name\n0041275,x\n0000123,y\n\n")
    request = load_request(_with_id_file(tmp_path, "ids.csv"))
    assert request.cohort.student_ids == ("0041275", "0000123")
    assert request.cohort.student_ids_file == "ids.csv"


def test_ids_from_a_headerless_csv_and_a_text_file(tmp_path):
    (tmp_path / "ids.csv").write_text("0041275\n0000123\n")
    assert load_request(_with_id_file(tmp_path, "ids.csv")).cohort.student_ids == ("0041275", "0000123")
    (tmp_path / "ids.txt").write_text("0041275, 0000123; 3100458812\n")
    assert load_request(_with_id_file(tmp_path, "ids.txt")).cohort.student_ids == ("0041275", "0000123", "3100458812")


def test_ids_from_excel_are_read_as_text(tmp_path):
    frame = pd.DataFrame({"Student ID": ["0041275", "0000123"], "Other": [1, 2]})
    frame.to_excel(tmp_path / "ids.xlsx", index=False)
    assert load_request(_with_id_file(tmp_path, "ids.xlsx")).cohort.student_ids == ("0041275", "0000123")
    # A spreadsheet that stored IDs as numbers lost the zeros; they come through as digits,
    # and workbench.cohort pads them when the cohort is checked.
    pd.DataFrame({"student_id": [41275, 123]}).to_excel(tmp_path / "numbers.xlsx", index=False)
    assert load_request(_with_id_file(tmp_path, "numbers.xlsx")).cohort.student_ids == ("41275", "123")


def test_a_state_id_column_sets_the_id_kind(tmp_path):
    (tmp_path / "ids.csv").write_text("state_id\n3100458812\n")
    assert load_request(_with_id_file(tmp_path, "ids.csv")).cohort.id_kind == "state"


def test_a_missing_or_empty_id_file_is_an_error(tmp_path):
    assert "no ID file missing.csv" in _problems(tmp_path, VALID.replace('["0000123", "0004567"]', "missing.csv"))
    (tmp_path / "empty.csv").write_text("student_id\n")
    with pytest.raises(RequestError, match="holds no IDs"):
        load_request(_with_id_file(tmp_path, "empty.csv"))
    (tmp_path / "ids.json").write_text("[]")
    with pytest.raises(RequestError, match="not .json"):
        load_request(_with_id_file(tmp_path, "ids.json"))


def test_parse_request_takes_form_data():
    request = parse_request(request_data())
    assert request.level == "aggregate" and request.requester.partner_id == "P-01"


# -- the shipped examples -----------------------------------------------------------------

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yml"))


def test_there_is_an_example_for_every_requester_role():
    from workbench.policy.vocabulary import ROLES

    roles = {load_request(path).requester.role for path in EXAMPLE_FILES}
    assert roles == set(ROLES)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_validates(path):
    request = load_request(path)
    assert request.id and request.purpose


def test_request_data_writes_a_file_that_loads(tmp_path):
    path = write_request(tmp_path / "r.yml", request_data())
    assert load_request(path).id == "REQ-TEST-0001"
