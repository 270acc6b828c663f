"""The index of students by value and the scan of text for them (no kernel here)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.guard import student_index
from workbench.guard.identifiers import REPLACEMENTS, ShapeIndex, StudentIndex

# Made-up students; the second has an ID that loses two zeros as an integer, the third one
# whose integer form is too short to tell from a count.
STUDENTS = {
    "student_id": ["0041275", "1209934", "0003318"],
    "state_id": ["3100458812", "3100458813", "3100458814"],
    "first_name": ["Zephyrine", "Quillon", "Maelis"],
    "last_name": ["Abernathy-Voss", "Castellanos", "Whitfield"],
    "date_of_birth": [dt.date(2012, 3, 4), dt.date(2011, 11, 30), dt.date(2012, 7, 19)],
}


@pytest.fixture(scope="module")
def index():
    return StudentIndex.from_columns(*STUDENTS.values(), source="fixture")


def redacted(index, text, allowed=()):
    return index.redact(text, allowed).text


@pytest.mark.parametrize(
    "text",
    [
        "student 0041275 moved",
        "KeyError: \"None of [Index(['0041275'], dtype='str')] are in the [index]\"",
        "41275",  # read as an integer from a CSV
        "41275.0",  # and as a float
        "[41275, 1209934]",
        "state ID 3100458812",
        "0041275,3100458812,Zephyrine,Abernathy-Voss",
    ],
)
def test_ids_are_found_as_written_and_as_numbers(index, text):
    out = redacted(index, text)
    assert "41275" not in out and "1209934" not in out and "3100458812" not in out
    assert REPLACEMENTS["student_id"] in out


@pytest.mark.parametrize(
    "text",
    [
        "1,209,934",  # formatted with separators (f"{n:,}", Styler.format(thousands=","))
        "41,275",
        "1.209934e+06",  # a float column pandas draws in scientific notation
        "4.1275e+04",
        "4.127500E+04",
    ],
)
def test_ids_are_found_in_number_formats(index, text):
    assert redacted(index, text) == REPLACEMENTS["student_id"]


def test_numbers_in_those_formats_that_are_no_students_id_are_left_alone(index):
    text = "1,209,935 and 4.1276e+04 and 4.13e+04 (rounded) and [41,275.5]"
    assert redacted(index, text) == text


def test_numbers_that_are_not_students_are_left_alone(index):
    text = "120 students, 45 absent, 2024-2025, id 1234567, 3318 (too short to be told from a count)"
    assert redacted(index, text) == text


def test_an_objects_memory_address_is_not_an_id(index):
    # Whether an address's digits happen to spell an ID depends on where the kernel put the object.
    for text in ["<pandas.io.formats.style.Styler at 0x7f1209934>", "<object at 0x41275>"]:
        assert redacted(index, text) == text
    shape = ShapeIndex("no warehouse")
    assert shape.redact("<Styler at 0x7f1234567890>").text == "<Styler at 0x7f1234567890>"
    # An ID next to an address, or ending in a zero that an X follows, is still an ID.
    assert redacted(index, "0x7f 1209934") == "0x7f [student ID]"
    assert shape.redact("1234560Xabc").text == "[student ID]Xabc"


@pytest.mark.parametrize(
    "text",
    [
        "Zephyrine Abernathy-Voss",
        "ZEPHYRINE ABERNATHY-VOSS",
        "Abernathy-Voss, Zephyrine",
        "0    Zephyrine    Abernathy-Voss    3",
        "<tr>\n  <th>0</th>\n  <td>Zephyrine</td>\n  <td>12</td>\n  <td>Abernathy-Voss</td>\n</tr>",
        "first_name        Zephyrine\nlast_name    Abernathy-Voss\ndays_absent    3",
        "no consent on file for Quillon Castellanos",
        "'Quillon Castellanos\\nZephyrine Abernathy-Voss'",  # the repr of a string with a line break
        "<row>\n  <first_name>Quillon</first_name>\n  <last_name>Castellanos</last_name>\n</row>",  # to_xml
    ],
)
def test_full_names_are_found_in_either_order_and_any_layout(index, text):
    out = redacted(index, text)
    assert "Zephyrine" not in out and "Quillon" not in out, out
    assert REPLACEMENTS["name"] in out


def test_a_first_name_alone_or_another_students_surname_is_not_a_name(index):
    for text in ("Zephyrine", "Zephyrine Castellanos", "Quillon\n\n\n\n\n\none two three four five six Castellanos"):
        assert redacted(index, text) == text


@pytest.mark.parametrize(
    "text",
    ["2012-03-04", "2012/03/04", "03/04/2012", "3/4/2012", "04.03.2012", "March 4, 2012", "4 March 2012",
     "Mar 4 2012", "20120304", "datetime.date(2012, 3, 4)", "Timestamp('2012-03-04 00:00:00')",
     "04-Mar-2012", "04MAR2012", "4-March-2012", "4th of March 2012",
     # what to_json and Arrow write for a date: seconds, milliseconds and nanoseconds since 1970
     '{"date_of_birth":{"0":1330819200000}}', "1330819200", "1330819200000000000"],
)
def test_dates_of_birth_are_found_in_common_formats(index, text):
    assert REPLACEMENTS["date_of_birth"] in redacted(index, text)


def test_other_dates_are_left_alone(index):
    assert redacted(index, "first day 2025-08-26, last 06/12/2026") == "first day 2025-08-26, last 06/12/2026"
    # the day after a birthday as a time stamp, and a time of day on the birthday, are not dates of birth
    assert redacted(index, "1330905600000 1330819200001 05-Mar-2012") == "1330905600000 1330819200001 05-Mar-2012"


@pytest.mark.parametrize(
    "text",
    [
        '[{"first": "Jos\\u00e9", "last": "N\\u00fa\\u00f1ez"}]',  # json.dumps escapes what is not ASCII
        "<td>O&#x27;Brien</td><td>Siobh&#225;n</td>",  # HTML escapes
        "O\u2019Brien, Siobhán",  # a typographic apostrophe
        "SIOBHÁN O'BRIEN",
    ],
)
def test_names_are_found_through_escapes_and_apostrophes(text):
    index = StudentIndex.from_columns(["0041275", "0041276"], [], ["José", "Siobhán"], ["Núñez", "O'Brien"], [])
    out = redacted(index, text)
    assert out.count(REPLACEMENTS["name"]) == 2, out


def test_what_the_level_grants_is_left(index):
    text = "Zephyrine Abernathy-Voss 0041275 2012-03-04"
    assert redacted(index, text, allowed={"name"}) == "Zephyrine Abernathy-Voss [student ID] [birth date]"
    assert redacted(index, text, allowed={"name", "student_id", "date_of_birth"}) == text


def test_names_of_several_words_are_found_by_their_words():
    index = StudentIndex.from_columns(["0041275"], [], ["Mary Jo"], ["De La Cruz"], [])
    out = redacted(index, "absent: Mary Jo De La Cruz\none two three four five: Mary Smith")
    assert "Mary Jo" not in out and "Cruz" not in out and out.endswith("five: Mary Smith")


def test_ids_that_are_not_numbers_are_found_too():
    index = StudentIndex.from_columns(["S-000123", "S-000124"], [], ["Ana"], ["Lopez"], [])
    assert redacted(index, "rows for S-000123 and XS-0001234") == "rows for [student ID] and XS-0001234"


def test_the_index_reads_the_warehouse(tiny_con):
    index = StudentIndex.from_warehouse(tiny_con, source="tiny")
    assert index.students == 5
    assert redacted(index, "Ben Smith 0000002") == "[student name] [student name] [student ID]"


def test_a_warehouse_that_cannot_be_read_fails_closed(tmp_path):
    index = student_index.load_index(tmp_path / "missing.duckdb")
    assert isinstance(index, ShapeIndex)
    line = student_index.status_line(index)
    assert "UNAVAILABLE" in line and "missing.duckdb" in line and "names cannot be recognised" in line
    assert redacted(index, "id 0041275 state 3100458812 born 2012-03-04, 45 absent") == (
        "id [student ID] state [student ID] born [birth date], 45 absent"
    )


ids = st.integers(min_value=10_000, max_value=9_999_999)
filler = st.text(alphabet=st.sampled_from(list("abc XYZ,;:()[]{}'\"\n\t-")), max_size=30)


@settings(max_examples=200, deadline=None)
@given(student=ids, before=filler, after=filler,
       form=st.sampled_from(["padded", "int", "float", "thousands", "scientific"]))
def test_any_students_id_in_any_text_is_replaced(student, before, after, form):
    padded = f"{student:07d}"
    index = StudentIndex.from_columns([padded, "0000001"], ["1000000001", "1000000002"], ["Ana"], ["Lopez"], [])
    shown = {"padded": padded, "int": str(student), "float": f"{student}.0", "thousands": f"{student:,}",
             "scientific": f"{float(student):.6e}"}[form]
    out = redacted(index, before + shown + after)
    assert shown not in out and str(student) not in out
    assert out == before + REPLACEMENTS["student_id"] + after


@settings(max_examples=200, deadline=None)
@given(numbers=st.lists(st.integers(min_value=0, max_value=10**9), max_size=8))
def test_numbers_of_no_student_are_never_touched(numbers):
    index = StudentIndex.from_columns(["0041275", "1209934"], ["3100458812"], ["Ana"], ["Lopez"], [])
    text = " ".join(str(n) for n in numbers if n not in (41275, 1209934, 3100458812))
    assert redacted(index, text) == text


def test_the_debuggers_variables_and_a_prompt_are_scanned(index, monkeypatch):
    """The messages a kernel sends besides outputs: the debugger's variables panel, input()'s prompt."""
    from workbench.guard import channels

    monkeypatch.setenv("WORKBENCH_LEVEL", "aggregate")
    student_index.set_index(index)
    try:
        variables = {"body": {"variables": [{"name": "who", "value": "'Quillon Castellanos'", "variablesReference": 0},
                                            {"name": "sid", "value": "'0041275'", "variablesReference": 0}]}}
        shown = str(channels.scrub_content("debug_reply", variables))
        prompt = str(channels.scrub_content("input_request", {"prompt": "release 41275? ", "password": False}))
    finally:
        student_index.set_index(None)
    assert "Quillon" not in shown and "0041275" not in shown and "41275" not in prompt
