"""The guard installed in this process (no kernel): every pandas drawing path, settings, hooks."""

from __future__ import annotations

import functools
import io
import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from pandas.io.formats.style import Styler

import workbench.guard as guard
from workbench.guard import patches, registry, settings
from workbench.guard.masking import MASK
from workbench.guard.rendering import BANNER_CLASS

SMALL = ("7", "3")
PROTECTED_BY_TOTALS = ("120", "230")


@pytest.fixture
def guarded(monkeypatch):
    monkeypatch.delenv(settings.POLICY_ENV, raising=False)
    monkeypatch.delenv(settings.LEVEL_ENV, raising=False)
    settings.reset()
    guard.activate(policy="bps", level="aggregate")
    yield
    guard.deactivate()
    settings.reset()


def counts():
    return pd.DataFrame(
        {"enrolled": [120, 45, 230, 88], "chronic": [7, 15, 3, 22]},
        index=pd.Index(["Adams", "Baker", "Carver", "Dewey"], name="school"),
    )


def roster():
    return pd.DataFrame(
        {
            "student_id": ["0041275", "1209934", "0003318"],
            "first_name": ["Zephyrine", "Quillon", "Maelis"],
            "low_income": [True, False, True],
            "days_absent": [3, 12, 7],
        }
    )


def words(text: str) -> set[str]:
    """The tokens of a rendered table, HTML tags and banner sentences left out."""
    text = re.sub(rf'<div class="{BANNER_CLASS}".*?</div>', " ", text, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    lines = [line for line in text.splitlines() if "workbench guard" not in line and not line.startswith(("%", "This is", "Styling", "Custom"))]
    return set(re.findall(r"[\w.*()-]+", "\n".join(lines)))


def assert_masked(text: str) -> None:
    assert "workbench guard: 4 cells masked" in text
    shown = words(text)
    assert MASK in shown and {"45", "15", "88", "22"} <= shown
    assert not shown & set(SMALL + PROTECTED_BY_TOTALS)


def test_print_str_and_repr_are_masked(guarded, capsys):
    print(counts())
    assert_masked(capsys.readouterr().out)
    assert_masked(str(counts()))
    assert_masked(f"{counts()}")
    assert repr(counts()).count("workbench guard:") == 1  # drawn once, not re-guarded inside


def test_to_string_returns_or_writes_the_masked_table(guarded, tmp_path):
    assert_masked(counts().to_string())
    buffer = io.StringIO()
    assert counts().to_string(buf=buffer) is None
    assert_masked(buffer.getvalue())
    path = tmp_path / "table.txt"
    counts().to_string(path)
    assert_masked(path.read_text())


def test_custom_formatters_that_cannot_format_a_mark_are_dropped_and_said_so(guarded):
    text = counts().to_string(formatters={"chronic": lambda value: f"{value:.1f}"})
    assert_masked(text)
    assert "Custom formatting (formatters) was not applied" in text


def test_html_paths_are_masked(guarded):
    for html in (counts().to_html(), counts()._repr_html_(), counts().style._repr_html_(), counts().style.to_html()):
        assert BANNER_CLASS in html
        assert_masked(html)


def test_styling_is_dropped_from_a_masked_table(guarded):
    html = counts().style.background_gradient()._repr_html_()
    assert_masked(html)
    assert "Styling is not applied" in html and "background-color" not in html
    assert "background-color" in pd.DataFrame({"n": [40, 50]}).style.background_gradient()._repr_html_()


def test_series_and_value_counts_are_masked(guarded):
    regions = pd.Series(["north"] * 3 + ["south"] * 40 + ["east"] * 7 + ["west"] * 25, name="region")
    text = repr(regions.value_counts())
    assert "workbench guard: 2 cells masked" in text
    assert {"40", "25", MASK} <= words(text) and not words(text) & set(SMALL)
    assert not words(counts()["chronic"].to_string()) & set(SMALL)


def test_latex_and_table_schema_are_masked(guarded):
    latex = counts().to_latex()
    assert latex.startswith("% workbench guard:") and "Adams & * & *" in latex
    with pd.option_context("display.html.table_schema", True):
        resource = counts()._repr_data_resource_()
    rows = {row["school"]: (row["enrolled"], row["chronic"]) for row in resource["data"]}
    assert rows == {"Adams": (MASK, MASK), "Baker": (45, 15), "Carver": (MASK, MASK), "Dewey": (88, 22)}


def test_a_roster_shows_only_its_schema(guarded):
    outputs = [repr(roster()), roster().to_string(), roster().to_html(), roster()._repr_html_(),
               roster().style._repr_html_(), repr(roster().set_index("student_id")["days_absent"]),
               repr(roster()["first_name"])]
    for text in outputs:
        assert "student-level data is not shown row by row" in text
        for secret in ("0041275", "1209934", "Zephyrine", "Quillon"):
            assert secret not in text
    assert "fewer than 10 rows" in outputs[0]


def test_an_identified_request_sees_the_roster_but_not_free_lunch(guarded):
    guard.activate(level="identified")
    text = repr(roster())
    assert "0041275" in text and "Zephyrine" in text
    assert "(withheld)" in text and "low_income (withheld): aggregate-only under policy bps" in text
    assert "True" not in words(text) and "False" not in words(text)


def test_changing_the_policy_changes_the_rule(guarded):
    exactly_ten = pd.Series([10, 40, 50], index=["a", "b", "c"])
    assert MASK not in words(repr(exactly_ten))
    guard.activate(policy="dmps")
    assert MASK in words(repr(exactly_ten)) and "groups of 10 or fewer students" in repr(exactly_ten)


def test_activate_rejects_bad_values_and_keeps_enforcing(guarded):
    with pytest.raises(ValueError, match="unknown data level"):
        guard.activate(level="everything")
    with pytest.raises(ValueError, match="no such pack"):
        guard.activate(policy="nowhere")
    assert (guard.status().policy_name, guard.status().level) == ("bps", "aggregate")
    assert_masked(repr(counts()))


def test_deactivate_restores_pandas_exactly():
    original_repr, inherited = pd.DataFrame.__repr__, "to_latex" in pd.DataFrame.__dict__
    styler_html = Styler.to_html
    settings.reset()
    guard.activate(policy="nces")
    try:
        assert pd.DataFrame.__repr__ is not original_repr and "to_latex" in pd.DataFrame.__dict__
    finally:
        guard.deactivate()
        settings.reset()
    assert pd.DataFrame.__repr__ is original_repr and Styler.to_html is styler_html
    assert ("to_latex" in pd.DataFrame.__dict__) == inherited
    assert "7" in words(repr(counts()))


def test_environment_chooses_policy_and_level(monkeypatch):
    monkeypatch.setenv(settings.POLICY_ENV, "dmps")
    monkeypatch.setenv(settings.LEVEL_ENV, "identified")
    settings.reset()
    try:
        chosen = settings.current_settings()
        assert (chosen.policy_name, chosen.level, chosen.problem) == ("dmps", "identified", None)
        monkeypatch.delenv(settings.POLICY_ENV)
        monkeypatch.delenv(settings.LEVEL_ENV)
        settings.reset()
        assert (settings.current_settings().policy_name, settings.current_settings().level) == ("nces", "aggregate")
    finally:
        settings.reset()


def test_a_bad_environment_blocks_every_table(monkeypatch):
    monkeypatch.setenv(settings.POLICY_ENV, "no_such_pack")
    settings.reset()
    patches.install()
    try:
        assert settings.current_settings().problem
        text = repr(pd.DataFrame({"n": [400, 500]}))
        assert "no valid policy is in force" in text and "400" not in text
    finally:
        patches.uninstall()
        settings.reset()


class ReviewedTable:
    """Stands in for the disclosure core's protected table: draws a published frame itself."""

    def __init__(self):
        self.published = pd.DataFrame({"students": [120, MASK], "pct_chronic": [5.0, MASK]}, index=["Adams", "Baker"])

    def _repr_html_(self):
        return self.published.to_html() + "<p>Baker suppressed: fewer than 10 students.</p>"

    def __repr__(self):
        return self.published.to_string() + "\nBaker suppressed: fewer than 10 students."


@pytest.fixture
def reviewed_type():
    yield ReviewedTable
    registry._renderers.pop(ReviewedTable, None)


def test_a_registered_reviewed_table_shows_itself_unmasked(guarded, reviewed_type):
    assert "workbench guard" in repr(ReviewedTable())  # not registered: its 5.0 % looks like a count
    guard.register_renderer(ReviewedTable)
    text, html = repr(ReviewedTable()), ReviewedTable()._repr_html_()
    assert "workbench guard" not in text and "5.0" in text and "Baker suppressed" in text
    assert "workbench guard" not in html and "<td>5.0</td>" in html
    guard.deactivate()
    assert ReviewedTable.__repr__ is ReviewedTable.__dict__["__repr__"] and "_repr_mimebundle_" not in ReviewedTable.__dict__


def test_a_reviewed_table_can_register_its_own_bundle(guarded, reviewed_type):
    guard.register_renderer(ReviewedTable, lambda table: {"text/plain": table.published.to_string(), "text/html": "<b>ok</b>"})
    table = ReviewedTable()
    bundle = table._repr_mimebundle_()
    assert bundle["text/html"] == "<b>ok</b>" and table._repr_html_() == "<b>ok</b>"
    assert "5.0" in bundle["text/plain"] and "workbench guard" not in bundle["text/plain"]
    assert repr(table) == bundle["text/plain"]
    assert "workbench guard" in table.published.to_string()  # the frame alone is still guarded


def test_a_table_the_guard_fails_on_is_not_shown(guarded, monkeypatch):
    from workbench.guard import rendering

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the guard")

    monkeypatch.setattr(rendering, "guard_table", broken)
    text = repr(counts())
    assert "the guard could not check this table (RuntimeError)" in text
    assert "a bug in the guard" not in text and not words(text) & set(SMALL + ("45", "88"))


@functools.cache
def baseline_policy():
    from workbench.policy import load_policy

    return load_policy("nces")


identifying_names = st.sampled_from(["student_id", "Student ID", "state_id", "first_name", "LAST_NAME", "dob", "ref"])
student_ids = st.one_of(st.from_regex(r"\A\d{7}\Z", fullmatch=True), st.from_regex(r"\A[1-9]\d{9}\Z", fullmatch=True))


@settings_(max_examples=40, deadline=None)
@given(ids=st.lists(student_ids, min_size=1, max_size=25, unique=True), column=identifying_names,
       level=st.sampled_from(["aggregate", "deidentified"]))
def test_no_drawing_path_shows_a_student_id(ids, column, level):
    frame = pd.DataFrame({column: ids, "days_absent": range(len(ids))})
    settings.reset()
    guard.activate(policy=baseline_policy(), level=level)
    try:
        drawn = [repr(frame), frame.to_string(), frame.to_html(), frame._repr_html_(), frame.style.to_html(),
                 repr(frame[column]), repr(frame.set_index(column)), frame.T.to_string()]
    finally:
        guard.deactivate()
        settings.reset()
    for text in drawn:
        assert not [student_id for student_id in ids if student_id in text]


# --- Styler output methods, concatenated tables, and the registry ------------------------------

def test_every_styler_output_method_is_masked_typst_and_concat_included(guarded):
    assert "to_typst" in patches.styler_output_methods()
    typst = counts().style.to_typst()
    cells = set(re.findall(r"\[([^\]]*)\]", typst))
    assert "workbench guard: 4 cells masked" in typst and MASK in cells and not cells & set(SMALL + PROTECTED_BY_TOTALS)
    with_totals = counts().style.concat(counts().agg(["sum"]).style)
    text = with_totals.to_html()
    shown = words(text)
    assert "workbench guard:" in text and not shown & set(SMALL) and "10" not in shown  # 7 + 3 in the sum row


def test_a_styler_method_pandas_adds_later_is_guarded_unless_reviewed(monkeypatch):
    def to_future(self, buf=None, **options):
        return self.data.to_string()

    monkeypatch.setattr(Styler, "to_future", to_future, raising=False)
    monkeypatch.delenv(settings.POLICY_ENV, raising=False)
    settings.reset()
    guard.activate(policy="bps", level="aggregate")
    try:
        assert_masked(counts().style.to_future())
        assert "to_excel" not in patches.styler_output_methods()  # reviewed: writes a file on purpose
    finally:
        guard.deactivate()
        settings.reset()
    assert "workbench guard" not in counts().style.to_future()


def test_the_guards_modules_import_each_other_without_a_circle():
    """Every import between modules of workbench/guard (function-level ones included) goes one way."""
    import ast
    from pathlib import Path

    import workbench.guard as package

    folder = Path(package.__file__).parent
    modules = {path.stem for path in folder.glob("*.py") if path.stem != "__init__"}
    imports: dict[str, set[str]] = {}
    for name in modules:
        tree = ast.parse((folder / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("workbench.guard."):
                    found.add(node.module.split(".")[2])
                elif node.module == "workbench.guard":
                    found |= {alias.name for alias in node.names if alias.name in modules}
        imports[name] = found & modules

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(step == goal or (step not in seen and reaches(step, goal, seen | {step})) for step in imports[start])

    circles = sorted(name for name in modules if reaches(name, name, set()))
    assert not circles, f"modules in an import circle: {circles}"


def test_decimal_counts_from_sql_are_masked(guarded):
    from decimal import Decimal

    table = pd.DataFrame({"n": [Decimal(120), Decimal(7), Decimal(45)]}, index=["a", "b", "c"])
    assert "workbench guard: 2 cells masked" in repr(table)
