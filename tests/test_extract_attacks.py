"""Attacks on student-level releases, written as a recipient would try them.

Nothing here uses the workbench's own disclosure checks: the attacker reads the released CSV
files, knows the district's true records (a neighbour, a teacher, a public directory knows that
much about a student), and tries to

* line up a named list and a de-identified extract by row order,
* read a suppressed value from what the blanks leave (a blank that only ever hides one value),
* join the years of one extract and use the joined record,
* single a student out over every descriptive attribute released (not only the policy's list).

The demo research extract is produced by running the template's own extract cell, so the test
attacks exactly what a release holds. Random districts go through the same core the template
calls.
"""

from __future__ import annotations

import difflib
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from workbench.config import DATA_DIR, PROJECT_ROOT
from workbench.report import RequestContext
from workbench.report.student_level import FIELD_COLUMNS, student_rows

DEMO = DATA_DIR / "requests" / "demo"
AS_OF = "2026-06-01"
TEMPLATES = PROJECT_ROOT / "templates"

# What the attacker is assumed not to know in advance: measured outcomes. Every other released
# column describes who a student is, and the attacker is assumed to know it.
OUTCOMES = {
    "days_absent", "chronically_absent", "behavior_incidents", "courses_marked", "failing_marks",
    "failed_a_course", "ela_scaled_score", "ela_level", "math_scaled_score", "math_level",
}
NOT_ATTRIBUTES = {"student_id", "school_year", "linkage_token"}
# How a withheld value may be written in a release.
WITHHELD = {"", "Not reported", "nan", "<NA>", "None"}


def published_groups(policy: str = "bps") -> dict[str, set[str]]:
    """Group label -> the values it stands for, from the pack's hierarchies: the pack is public, so
    a recipient reads a group as any of its values."""
    from workbench.policy.loader import load_policy

    groups: dict[str, set[str]] = {}
    for levels in load_policy(policy).pack.fields.quasi_identifiers.hierarchies.values():
        for level in levels:
            for label, values in level.items():
                groups.setdefault(label, set()).update(values)
    return groups


GROUPS = published_groups()
ABSENT = "<not enrolled>"
# Fields that do not change from one school year to the next in the warehouse.
PER_STUDENT = ("gender", "race_ethnicity")


# -- reading what the recipient holds ------------------------------------------------------

def template_cell(template: str, call: str) -> str:
    notebook = json.loads((TEMPLATES / template).read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    return next(source for source in cells if call in source)


def run_cell(ctx, template: str, call: str) -> None:
    exec(template_cell(template, call), {"ctx": ctx, "print": lambda *args, **kwargs: None})


def read_extract(folder: Path) -> pd.DataFrame:
    """Every extract file of a release, as rows with a school_year column, in file order."""
    frames = []
    for path in sorted((folder / "data").glob("extract*.csv")):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).map(_number)
        if "school_year" not in frame.columns:
            frame.insert(1, "school_year", path.stem.split("_", 1)[1])
        frames.append(frame)
    assert frames, f"no extract in {folder}"
    return pd.concat(frames, ignore_index=True)


def attributes(released: pd.DataFrame) -> list[str]:
    return [c for c in released.columns if c not in OUTCOMES | NOT_ATTRIBUTES]


def truth_in_release_coding(truth: pd.DataFrame, columns: list[str], year: str) -> pd.DataFrame:
    """The true value of each released column, written the way the release writes it."""
    out = pd.DataFrame({"student_id": truth["student_id"]})
    for column in columns:
        if column in truth.columns:
            out[column] = truth[column].map(_text)
        elif column == "enrollment":
            full = truth["days_enrolled"] >= truth["days_enrolled"].max()
            out[column] = np.where(full, "full year", "part year")
        elif column in ("first_enrolled_month", "last_enrolled_month"):
            out[column] = truth[column.removesuffix("_month")].str[:7]
        else:
            raise AssertionError(f"the attacker does not know what released column {column!r} means")
    out["school_year"] = year
    return out


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    return _number(str(value))


def _number(text: str) -> str:
    """482.0 and 482 are one value to anybody reading the file."""
    return text[: text.index(".")] if text.replace(".", "", 1).isdigit() and text.endswith(".0") else text


def could_be(released: np.ndarray, truth: np.ndarray, groups: dict[str, set[str]]) -> np.ndarray:
    """Cell by cell: the released value is the true one, withheld, or a group holding it."""
    out = (released == truth) | np.isin(released, list(WITHHELD))
    grouped = np.isin(released, list(groups)) & ~out
    if grouped.any():
        out[grouped] = [value in groups[label] for label, value in zip(released[grouped], truth[grouped])]
    return out


def compatible(released: np.ndarray, target: np.ndarray, groups: dict[str, set[str]] = GROUPS) -> np.ndarray:
    """Released records the target could be: every value equal, withheld, or a group holding it."""
    return could_be(released, np.broadcast_to(target, released.shape), groups).all(axis=1)


def joined(rows: pd.DataFrame, key: str, columns: list[str], years: list[str]) -> pd.DataFrame:
    """One record per student over every year: a per-year column for each attribute."""
    parts = []
    for year in years:
        part = rows.loc[rows["school_year"] == year, [key, *columns]].set_index(key)
        parts.append(part.add_suffix(f"@{year}"))
    record = pd.concat(parts, axis=1).fillna(ABSENT)
    return record.astype(str)


# -- the attacks ---------------------------------------------------------------------------

def smallest_candidate_sets(released: pd.DataFrame, targets: pd.DataFrame, groups=GROUPS) -> np.ndarray:
    """For each target (true values), how many released records it could be."""
    columns = list(released.columns)
    values = released.to_numpy(dtype=str)
    return np.array([compatible(values, t, groups).sum() for t in targets[columns].to_numpy(dtype=str)])


def people_per_record(released: pd.DataFrame, people: pd.DataFrame, groups=GROUPS) -> np.ndarray:
    """For each released record, how many students (true values, everyone in the cohort) it could be."""
    columns = list(released.columns)
    truth = people[columns].to_numpy(dtype=str)
    return np.array([int(could_be(np.broadcast_to(row, truth.shape), truth, groups).all(axis=1).sum())
                     for row in released.to_numpy(dtype=str)])


def blank_inference(released: pd.DataFrame, domains: dict[str, list[str]], samples: int = 400, groups=GROUPS) -> int:
    """The fewest records a withheld or grouped record hides among, over every value it could hold."""
    values = released.to_numpy(dtype=str)
    columns = list(released.columns)
    rng = np.random.default_rng(0)
    fewest = len(released)
    for row in values:
        hidden = [i for i, v in enumerate(row) if (v in WITHHELD or v in groups) and domains.get(columns[i])]
        if not hidden:
            continue
        choices = [domains[columns[i]] if row[i] in WITHHELD else [d for d in domains[columns[i]] if d in groups[row[i]]]
                   for i in hidden]
        combos = list(itertools.product(*choices)) if np.prod([len(c) for c in choices]) <= samples else [
            tuple(rng.choice(c) for c in choices) for _ in range(samples)]
        for combo in combos:
            target = row.copy()
            target[hidden] = combo
            fewest = min(fewest, int(compatible(values, target, groups).sum()))
    return fewest


def order_linkage(named: pd.DataFrame, extract_year: pd.DataFrame, truth_ids_named: list, truth_ids_extract: list) -> tuple[int, int]:
    """Pair the i-th named student of a grade with the i-th extract row that could be of that grade."""
    correct = tried = 0
    for grade, names in named.assign(_id=truth_ids_named).groupby("grade", sort=False):
        rows = extract_year.assign(_id=truth_ids_extract)
        shown = rows["grade"].to_numpy(dtype=str)
        rows = rows[could_be(shown, np.full(shown.shape, grade), GROUPS)]
        for a, b in zip(names["_id"], rows["_id"]):
            if a is not None and b is not None:
                tried += 1
                correct += a == b
    return correct, tried


def link_years(released: pd.DataFrame, years: list[str]) -> list[tuple[int, int]]:
    """Pairs of row indexes (year 1, year 2) the attacker believes are one student."""
    first = released[released["school_year"] == years[0]]
    second = released[released["school_year"] == years[1]]
    shared = set(first["student_id"]) & set(second["student_id"])
    if len(shared) > len(first) // 2:  # one pseudonym across years: linked by design
        by_id = second.reset_index().set_index("student_id")["index"]
        return [(i, int(by_id[s])) for i, s in zip(first.index, first["student_id"]) if s in shared]
    # Otherwise line the two files up by order on what does not change between years.
    keys = [c for c in PER_STUDENT if c in released.columns]
    a = [tuple(r) for r in first[keys].to_numpy()] if keys else list(range(len(first)))
    b = [tuple(r) for r in second[keys].to_numpy()] if keys else list(range(len(second)))
    pairs = []
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        pairs += [(first.index[block.a + j], second.index[block.b + j]) for j in range(block.size)]
    return pairs


# -- the demo district -----------------------------------------------------------------------

def k_of(ctx) -> int:
    return ctx.rule.threshold + (1 if ctx.rule.comparison == "<=" else 0)


@pytest.fixture(scope="module")
def research(demo_warehouse, tmp_path_factory):
    folder = tmp_path_factory.mktemp("research")
    ctx = RequestContext.open(DEMO / "research_extract.yml", "bps", AS_OF, folder, warehouse=demo_warehouse)
    run_cell(ctx, "deidentified_extract.ipynb", "deidentified_extract(")
    released = read_extract(folder)
    # The attacker knows who the cohort is in each year: the release plan's population.
    truth = {year: student_rows(ctx.con, ctx.population(year), list(FIELD_COLUMNS), year) for year in ctx.years}
    return ctx, released, truth


def fingerprint_ids(released: pd.DataFrame, truth: dict[str, pd.DataFrame]) -> list:
    """The student behind each released row, found from all its values (the district's view)."""
    columns = [c for c in released.columns if c not in NOT_ATTRIBUTES]
    ids = []
    for year, rows in released.groupby("school_year", sort=False):
        source = truth[year]
        coded = truth_in_release_coding(source, [c for c in columns if c not in OUTCOMES], year)
        for column in columns:
            if column in OUTCOMES:
                coded[column] = source[column].map(_text).to_numpy()
        table = coded[columns].to_numpy(dtype=str)
        for values in rows[columns].to_numpy(dtype=str):
            found = could_be(np.broadcast_to(values, table.shape), table, GROUPS).all(axis=1)
            ids.append(coded["student_id"].iloc[int(np.flatnonzero(found)[0])] if found.sum() == 1 else None)
    return ids


def test_a_named_list_of_the_same_school_does_not_line_up_with_the_extract(research, demo_warehouse, tmp_path):
    ctx, released, truth = research
    request = tmp_path / "directory.yml"
    request.write_text((Path(__file__).parent / "data" / "school_directory.yml").read_text())
    listing_ctx = RequestContext.open(request, "bps", AS_OF, tmp_path / "directory", warehouse=demo_warehouse)
    run_cell(listing_ctx, "directory_list.ipynb", "directory_list(")
    named = pd.read_csv(next((tmp_path / "directory" / "data").glob("directory*.csv")), dtype=str, keep_default_na=False)
    year = listing_ctx.latest_year
    people = truth[year].assign(grade=lambda f: f["grade"].astype(str))
    by_name = people.groupby(["first_name", "last_name", "grade"])["student_id"].agg(list)
    named_ids = [ids[0] if len(ids) == 1 else None for ids in
                 (by_name.get((f, l, g), []) for f, l, g in named[["first_name", "last_name", "grade"]].to_numpy())]
    in_year = released[released["school_year"] == year]
    ids = fingerprint_ids(released, truth)
    extract_ids = [i for i, y in zip(ids, released["school_year"]) if y == year]
    correct, tried = order_linkage(named, in_year, named_ids, extract_ids)
    assert tried > 150
    # Chance alone pairs about one student per grade correctly.
    assert correct <= 0.05 * tried, f"{correct} of {tried} students linked to their name by row order"


def test_row_order_says_nothing_about_student_ids(research):
    _, released, truth = research
    ids = fingerprint_ids(released, truth)
    known = [(position, int(sid)) for position, sid in enumerate(ids) if sid is not None]
    assert len(known) > 150
    positions, numbers = zip(*known)
    rho = pd.Series(positions).corr(pd.Series(numbers), method="spearman")
    # Independent orders give a Spearman correlation of about N(0, 1/(n-1)); the key is a random
    # draw per installation, so the bound is four standard deviations (ID order gives about 1).
    assert abs(rho) < 4 / np.sqrt(len(known) - 1), f"row order follows student ID order (Spearman {rho:.2f})"


def test_no_suppressed_value_can_be_read_from_the_blanks(research):
    ctx, released, truth = research
    years = sorted(truth)
    columns = attributes(released)
    record = joined(released, "student_id", columns, years) if released["student_id"].duplicated().any() else None
    if record is None:  # every year in its own file, no shared pseudonym: attack each year
        fewest = min(blank_inference(released.loc[released["school_year"] == y, columns], _domains(truth, columns, [y]))
                     for y in years)
    else:
        fewest = blank_inference(record, _domains(truth, columns, years))
    assert fewest >= k_of(ctx), f"a suppressed record hides among {fewest} records for one of the values it could hold"


def _domains(truth, columns, years) -> dict[str, list[str]]:
    domains = {}
    for year in years:
        coded = truth_in_release_coding(truth[year], columns, year)
        for column in columns:
            name = f"{column}@{year}" if len(years) > 1 else column
            domains[name] = sorted(set(coded[column]) - WITHHELD)
    return domains


def test_joining_the_years_undoes_no_suppression(research):
    _, released, truth = research
    years = sorted(truth)
    pairs = link_years(released, years)
    assert pairs
    undone = 0
    for column in (c for c in PER_STUDENT if c in released.columns):
        a = released.loc[[p[0] for p in pairs], column].to_numpy(dtype=str)
        b = released.loc[[p[1] for p in pairs], column].to_numpy(dtype=str)
        undone += int((np.isin(a, list(WITHHELD)) != np.isin(b, list(WITHHELD))).sum())
    assert undone == 0, f"{undone} values withheld in one year are shown in the other year of the same student"


def test_no_student_stands_out_over_every_attribute_of_every_year(research):
    ctx, released, truth = research
    years = sorted(truth)
    columns = attributes(released)
    assert {"english_learner", "gender", "grade"} <= set(columns)
    if released["student_id"].duplicated().any():  # one pseudonym across years: attack the joined record
        records = [joined(released, "student_id", columns, years)]
        target_rows = pd.concat([truth_in_release_coding(truth[y], columns, y) for y in years])
        people = [joined(target_rows, "student_id", columns, years)]
    else:
        records = [released.loc[released["school_year"] == y, columns] for y in years]
        people = [truth_in_release_coding(truth[y], columns, y) for y in years]
    k = k_of(ctx)
    for record, everyone in zip(records, people):
        # The attacker knows every student of the cohort: who could be behind each record?
        behind = people_per_record(record, everyone)
        assert behind.min() >= k, f"{int((behind < k).sum())} records could be fewer than k students"
        # And which records could be a given student? (The demo extract removes nobody.)
        sizes = smallest_candidate_sets(record, everyone)
        assert len(sizes) > 250
        assert sizes.min() >= k, f"{int((sizes < k).sum())} students have fewer than k candidate records"


# -- random districts through the core ---------------------------------------------------------

def random_district(seed: int, students: int, years: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.choice(10_000_000, students, replace=False)
    base = pd.DataFrame({
        "student_id": [f"{i:07d}" for i in ids],
        "gender": rng.choice(["F", "M", "X"], students, p=[0.49, 0.49, 0.02]),
        "race_ethnicity": rng.choice(["H", "B", "W", "A", "N"], students, p=[0.4, 0.3, 0.15, 0.12, 0.03]),
        "grade0": rng.integers(0, 4, students),
        "english_learner": rng.random(students) < 0.2,
    })
    rows = []
    for y in range(years):
        present = rng.random(students) < 0.9
        year = base[present].copy()
        year["school_year"] = f"{2023 + y}-{2024 + y}"
        year["grade"] = (year.pop("grade0") + y).astype(str)
        year["disability"] = rng.random(len(year)) < 0.15
        year["enrollment"] = np.where(rng.random(len(year)) < 0.05, "part year", "full year")
        # Unique per row, so the test (as the district) can tell which students were kept.
        year["days_absent"] = rng.permutation(len(year)) + 1000 * y
        rows.append(year)
    return pd.concat(rows, ignore_index=True)


# A district's hierarchies for the random districts' codes, in the pack's form.
RANDOM_LEVELS = {
    "race_ethnicity": [{"Other races": ["N", "A"]}, {"Not Hispanic": ["B", "W", "A", "N"]}],
    "grade": [{"Grades 0-2": ["0", "1", "2"], "Grades 3-5": ["3", "4", "5"]}],
}
RANDOM_GROUPS = {label: set(values) for levels in RANDOM_LEVELS.values() for level in levels for label, values in level.items()}


def random_hierarchies():
    from workbench.disclosure.hierarchy import Hierarchy

    return {field: Hierarchy.from_levels(levels) for field, levels in RANDOM_LEVELS.items()}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(seed=st.integers(0, 10_000), students=st.integers(15, 140), years=st.integers(1, 3), k=st.sampled_from([3, 5, 10]),
       grouped=st.booleans())
def test_random_districts_give_the_attacker_nothing(seed, students, years, k, grouped):
    from workbench.disclosure import protect_extract

    data = random_district(seed, students, years)
    quasi = ["gender", "race_ethnicity", "grade", "english_learner", "disability", "enrollment"]
    out, _ = protect_extract(data, id_col="student_id", year_col="school_year", quasi=quasi, k=k,
                             key=f"release-{seed}".encode(), hierarchies=random_hierarchies() if grouped else None)
    groups = RANDOM_GROUPS if grouped else {}
    year_list = sorted(data["school_year"].unique())
    released = out.astype(str)
    truth = data.astype(str)
    record = joined(released, "student_id", quasi, year_list)
    domains = {f"{c}@{y}": sorted(set(truth[c])) for c in quasi for y in year_list}
    if len(record):
        assert blank_inference(record, domains, samples=60, groups=groups) >= k
    # Every student kept is hidden among k records over every year's attributes.
    kept = truth[truth["student_id"].isin(_ids_behind(out, data))]
    targets = joined(kept, "student_id", quasi, year_list)
    if len(targets):
        assert smallest_candidate_sets(record, targets, groups).min() >= k
    everyone = joined(truth, "student_id", quasi, year_list)
    if len(record):
        assert people_per_record(record, everyone, groups).min() >= k
    for column in PER_STUDENT:
        per_student = released.groupby("student_id")[column].nunique()
        assert (per_student <= 1).all(), f"{column} differs between the years of one student"


def test_the_attacker_reads_a_group_that_only_rare_values_are_shown_in():
    # A naive release: the rarest race shown as its group, everything else as it is. The group
    # then means that value, and the few records showing it stand out.
    data = random_district(7, 300, 1)
    naive = data.assign(race_ethnicity=data["race_ethnicity"].replace({"N": "Other races"})).astype(str)
    columns = ["race_ethnicity", "gender"]
    domains = {c: sorted(set(data[c].astype(str))) for c in columns}
    assert blank_inference(naive[columns], domains, groups=RANDOM_GROUPS) < 10
    # Shown in the group together with enough others, the same value hides among them.
    pooled = naive.assign(race_ethnicity=naive["race_ethnicity"].replace({"A": "Other races"}))
    assert blank_inference(pooled[["race_ethnicity"]], {"race_ethnicity": domains["race_ethnicity"]}, groups=RANDOM_GROUPS) >= 10


def _ids_behind(out: pd.DataFrame, data: pd.DataFrame) -> set:
    """Students the release kept, found by their outcome rows (the district's view)."""
    key = ["school_year", "days_absent"]
    released = set(map(tuple, out[key].astype(str).to_numpy()))
    return {sid for sid, *rest in data[["student_id", *key]].astype(str).to_numpy() if tuple(rest) in released}


def test_two_releases_of_the_same_students_cannot_be_aligned_by_order():
    from workbench.disclosure import protect_extract

    data = random_district(11, 400, 1).assign(days_absent=lambda f: np.arange(len(f)))
    quasi = ["gender", "grade"]
    first, _ = protect_extract(data, id_col="student_id", year_col="school_year", quasi=quasi, k=5, key=b"release A")
    second, _ = protect_extract(data, id_col="student_id", year_col="school_year", quasi=quasi, k=5, key=b"release B")
    position_a = {v: i for i, v in enumerate(first["days_absent"])}
    position_b = [position_a[v] for v in second["days_absent"]]
    rho = pd.Series(range(len(position_b))).corr(pd.Series(position_b), method="spearman")
    assert abs(rho) < 0.15
    ids_order = pd.Series(data["student_id"].astype(int).to_numpy()[first["days_absent"].to_numpy(dtype=int)])
    assert abs(ids_order.corr(pd.Series(range(len(ids_order))), method="spearman")) < 0.15
    assert set(first["student_id"]) == set(second["student_id"])  # Student 1..N in both
    assert (first["student_id"].to_numpy() != second.set_index("days_absent").loc[first["days_absent"], "student_id"].to_numpy()).mean() > 0.9
