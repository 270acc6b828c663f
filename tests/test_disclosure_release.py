"""A school year released as a whole: the recipient's integer-program attack finds nothing.

The attacker (tests/release_attacker.py) is written apart from workbench's audit. It first
shows the leaks of the earlier method (two marks, rates of small numerators, coded rates pinned
by their neighbours), then finds nothing in random releases the workbench publishes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.release_attacker import DAGGER, Facts, Method, Table, pinned
from workbench.disclosure import SmallGroupRule, protect_tables
from workbench.disclosure.percentages import code_percentage
from workbench.disclosure.release import RateInput, ReleaseError, ReleaseModel
from workbench.disclosure.table import CountTable, with_margins
from workbench.errors import InputError


def one_way(name: str, dim: str, labels: list[str], counts: list[int]) -> CountTable:
    return CountTable(name, (dim,), (tuple(labels),), with_margins(np.array(counts)))


def recipient_frame(released, measures: list[str]) -> pd.DataFrame:
    """The table as a recipient gets it: labels, counts or the mark, each measure's text."""
    table = released.table
    frame = table.labels().astype(str)
    frame["students"] = [str(v) if shown else "*" for v, shown in zip(table.counts.reshape(-1), released.count_shown)]
    for measure in measures:
        frame[measure] = [d.text for d in released.rates[measure]]
    return frame


# --- the earlier method, attacked -----------------------------------------------------------


def earlier_method_frame(table: CountTable, outcomes: dict[str, np.ndarray], rule: SmallGroupRule) -> pd.DataFrame:
    """How tables were released before: two marks, rates coded from published counts only."""
    result = protect_tables(table, rule=rule, costs="margins")
    status = result.table(0)["status"].tolist()
    frame = table.labels().astype(str)
    marks = {"primary": "*", "secondary": DAGGER}
    counts = table.counts.reshape(-1)
    frame["students"] = [marks.get(s, str(v)) for s, v in zip(status, counts)]
    for measure, y in outcomes.items():
        texts = []
        for s, n, k in zip(status, counts, y.reshape(-1)):
            texts.append(marks[s] if s in marks else code_percentage(int(k), int(n), rule)[1])
        frame[measure] = texts
    return frame


def test_two_marks_give_a_small_group_away():
    # 1 + 10 hidden beside published 50 and 60: "*" is under 10 and the dagger at least 10.
    table = one_way("by_race", "race", ["Pacific Islander", "Two or more", "Asian", "White"], [1, 10, 50, 60])
    frame = earlier_method_frame(table, {}, SmallGroupRule())
    assert set(frame["students"]) >= {"*", DAGGER}
    leaks = pinned([Table(frame, ["race"], [])], Method(), {})
    assert "count (('race', 'Pacific Islander'),) = 1" in leaks


def test_a_small_numerator_is_published_through_its_rate():
    # 9 of 44 with an incident shows as 20.5%; incidents are over every enrolled student.
    table = one_way("by_gender", "gender", ["F", "M"], [44, 40])
    y = with_margins(np.array([9, 25]))
    frame = earlier_method_frame(table, {"incident": y}, SmallGroupRule())
    assert frame.loc[0, "incident"] == "20.5%"
    protected = {"incident numerator (('gender', 'F'),)"}
    facts = {"incident": Facts(denominator_is_group=True)}
    assert pinned([Table(frame, ["gender"], ["incident"])], Method(), facts, protected) == [
        "incident numerator (('gender', 'F'),) = 9"
    ]


def test_a_coded_rate_is_pinned_by_the_rates_around_it():
    # "<=10%" of 17 leaves 0 or 1; the total and the other group pin it at 0.
    table = one_way("by_el", "english_learner", ["Yes", "No"], [17, 30])
    y = with_margins(np.array([0, 12]))
    frame = earlier_method_frame(table, {"incident": y}, SmallGroupRule())
    assert frame.loc[0, "incident"] == "<=10%"
    facts = {"incident": Facts(denominator_is_group=True)}
    assert "incident numerator (('english_learner', 'Yes'),) = 0" in pinned(
        [Table(frame, ["english_learner"], ["incident"])], Method(), facts
    )


def test_the_same_inputs_released_as_a_whole_leak_nothing():
    rule = SmallGroupRule(numerator_threshold=10)
    method = Method(numerator_threshold=10)
    facts = {"incident": Facts(denominator_is_group=True)}
    cases = [
        ("by_race", "race", ["Pacific Islander", "Two or more", "Asian", "White"], [1, 10, 50, 60], [0, 3, 20, 25]),
        ("by_gender", "gender", ["F", "M"], [44, 40], [9, 25]),
        ("by_el", "english_learner", ["Yes", "No"], [17, 30], [0, 12]),
    ]
    for name, dim, labels, counts, outcomes in cases:
        model = ReleaseModel(rule)
        table = one_way(name, dim, labels, counts)
        n = table.counts
        released = model.add(table, [RateInput("incident", n, with_margins(np.array(outcomes)), denominator_is_group=True)])
        frame = recipient_frame(released, ["incident"])
        assert DAGGER not in set(frame["students"])
        truth = _protected_truth(released, rule, {"incident": facts["incident"]})
        assert pinned([Table(frame, [dim], ["incident"], released.summary["students_hidden"])], method, facts, truth) == [], frame


def _protected_truth(released, rule: SmallGroupRule, facts: dict[str, Facts]) -> set[str]:
    """The quantities the rule protects, named like the attacker names them (ground truth)."""
    table = released.table
    labels = table.labels().astype(str).to_dict("records")
    names = set()
    counts = table.counts.reshape(-1)
    for i, record in enumerate(labels):
        key = tuple(sorted((d, record[d]) for d in table.dims if record[d] != "Total"))
        if not released.count_shown[i]:
            names.add(f"count {key}")
        for measure, displays in released.rates.items():
            shown = displays[i]
            fact = facts.get(measure, Facts())
            if shown.state in ("hidden", "coded"):
                names |= {f"{measure} numerator {key}", f"{measure} complement {key}"}
                if shown.state == "hidden" and not released.count_shown[i] and not fact.denominator_is_group:
                    names.add(f"{measure} denominator {key}")
    return names


# --- random releases --------------------------------------------------------------------------


@st.composite
def districts(draw):
    n_a = draw(st.integers(2, 4))
    n_b = draw(st.integers(2, 3))
    small = st.integers(0, 12)
    large = st.integers(10, 60)
    inner = np.array([[draw(st.one_of(small, large)) for _ in range(n_b)] for _ in range(n_a)])
    if inner.sum() < 20:
        inner[0, 0] += 20
    share = draw(st.floats(0.05, 0.6))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    incident = rng.binomial(inner, share)
    tested = rng.binomial(inner, 0.9)
    untested = draw(st.integers(0, n_a - 1))  # a grade without tests, by definition
    tested[untested, :] = 0
    passing = rng.binomial(tested, 1 - share)
    numerator = draw(st.sampled_from([None, 5, 10]))
    return inner, incident, tested, passing, untested, numerator


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(districts())
def test_random_releases_give_the_attacker_nothing(case):
    inner, incident, tested, passing, untested, numerator = case
    rule = SmallGroupRule(numerator_threshold=numerator)
    method = Method(numerator_threshold=numerator)
    a_labels = [f"g{i}" for i in range(inner.shape[0])]
    b_labels = [f"r{j}" for j in range(inner.shape[1])]
    facts = {
        "incident": Facts(denominator_is_group=True),
        "passing": Facts(zero_where={"grade": {a_labels[untested]}}),
    }
    model = ReleaseModel(rule, time_limit=20.0)
    tables = []

    def add(table: CountTable, n, y1, m2, y2, zero_axis):
        zero = np.zeros(table.shape, dtype=bool)
        if zero_axis is not None:
            index = [slice(None)] * table.counts.ndim
            index[zero_axis] = untested
            zero[tuple(index)] = True
        released = model.add(table, [
            RateInput("incident", n, y1, denominator_is_group=True),
            RateInput("passing", m2, y2, documented_zero=zero if zero_axis is not None else None),
        ])
        tables.append(Table(recipient_frame(released, ["incident", "passing"]), list(table.dims), ["incident", "passing"],
                            released.summary["students_hidden"]))
        return released

    try:
        by_grade = CountTable("by_grade", ("grade",), (tuple(a_labels),), with_margins(inner.sum(axis=1)))
        r1 = add(by_grade, by_grade.counts, with_margins(incident.sum(1)), with_margins(tested.sum(1)),
                 with_margins(passing.sum(1)), 0)
        by_group = CountTable("by_group", ("group",), (tuple(b_labels),), with_margins(inner.sum(axis=0)))
        r2 = add(by_group, by_group.counts, with_margins(incident.sum(0)), with_margins(tested.sum(0)),
                 with_margins(passing.sum(0)), None)
        both = CountTable("both", ("grade", "group"), (tuple(a_labels), tuple(b_labels)), with_margins(inner))
        r3 = add(both, both.counts, with_margins(incident), with_margins(tested), with_margins(passing), 0)
    except ReleaseError:
        return  # nothing released: nothing to attack
    truth = set()
    for released in (r1, r2, r3):
        truth |= _protected_truth(released, rule, facts)
    assert pinned(tables, method, facts, truth) == []


# --- bad input ----------------------------------------------------------------------------------


def test_rates_that_do_not_match_the_counts_are_refused():
    model = ReleaseModel(SmallGroupRule())
    table = one_way("t", "grade", ["6", "7"], [30, 40])
    too_many = with_margins(np.array([31, 10]))
    with pytest.raises(InputError, match="more students in the measure than in the group"):
        model.add(table, [RateInput("failing", too_many, with_margins(np.array([1, 2])))])
    broken_total = with_margins(np.array([20, 30]))
    broken_total[-1] += 1
    with pytest.raises(InputError, match="not the sums"):
        model.add(table, [RateInput("failing", broken_total, with_margins(np.array([1, 2])))])
    with pytest.raises(InputError, match="needs its denominator"):
        model.add(table, [RateInput("failing", None, with_margins(np.array([1, 2])))])
    assert model.tables == []  # nothing was released


# --- what leaves the office -------------------------------------------------------------------


def test_the_release_check_refuses_analyst_columns_and_a_second_mark(tmp_path):
    from workbench.release.check import check_release

    tables = tmp_path / "tables"
    tables.mkdir()
    (tables / "one_mark.csv").write_text("grade,students,chronic_absence\n6,*,*\n7,40,22.5%\nTotal,52,*\n")
    clean = check_release(tmp_path, "aggregate", SmallGroupRule())
    assert clean.passed, clean.summary()
    (tables / "analyst.csv").write_text("grade,value,status,reason\n6,,primary,group of 3\n7,40,published,\n")
    (tables / "daggers.csv").write_text("grade,students\n6,*\n7,\u2020\nTotal,52\n")
    report = check_release(tmp_path, "aggregate", SmallGroupRule())
    kinds = {(f.artifact, f.kind) for f in report.findings}
    assert ("tables/analyst.csv", "analyst_only") in kinds
    assert ("tables/daggers.csv", "analyst_only") in kinds
    assert not any(f.artifact == "tables/one_mark.csv" for f in report.findings)


def test_a_school_without_course_marks_releases_its_groups():
    # An elementary school: no grade has course marks, so no group of it has any, whatever the
    # release hides. That is the measure's definition, not something a release can give away:
    # a hidden small group's course-failure denominator is 0 in every possible world.
    rule = SmallGroupRule()
    model = ReleaseModel(rule)
    grades = one_way("by_grade", "grade", ["K", "1", "2"], [20, 22, 25])
    zero_marks = np.zeros(grades.shape, dtype=int)
    model.add(grades, [RateInput("course_failure", zero_marks, zero_marks,
                                 documented_zero=np.ones(grades.shape, dtype=bool))])
    races = one_way("by_race", "race", ["Asian", "Black", "Hispanic"], [3, 30, 34])
    released = model.add(races, [RateInput("course_failure", np.zeros(races.shape, dtype=int),
                                           np.zeros(races.shape, dtype=int))])
    assert not released.count_shown[0]  # the group of 3 is hidden
    assert released.summary["audit_safe"]
