"""A synthetic urban school district, deterministic for a seed.

Nothing here is real: names come from short lists, IDs are random, outcomes come from simple
latent-trait models. The point is a district where suppression matters the way it does in a
real one: uneven race/ethnicity shares (some groups small), a few very small schools, mid-year
moves, and outcomes that differ by group.

Everything is vectorized with numpy so a million students generate in minutes, not hours.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import holidays
import numpy as np
import pandas as pd

from workbench.synthetic import names

GENERATOR_VERSION = "1"
DEFAULT_SEED = 20261122
DEFAULT_STUDENTS = 25_000
DEFAULT_YEARS = ("2023-2024", "2024-2025", "2025-2026")

RACES = (
    "Hispanic or Latino",
    "Black or African American",
    "White",
    "Asian",
    "Two or More Races",
    "American Indian or Alaska Native",
    "Native Hawaiian or Other Pacific Islander",
)
RACE_SHARES = np.array([0.43, 0.29, 0.14, 0.09, 0.04, 0.006, 0.004])
RACE_SHARES = RACE_SHARES / RACE_SHARES.sum()
GENDERS = ("F", "M", "X")
GENDER_SHARES = np.array([0.488, 0.507, 0.005])
TERMS = ("S1", "S2")
SUBJECTS = (
    ("ELA", "English Language Arts"),
    ("MATH", "Mathematics"),
    ("SCI", "Science"),
    ("SOC", "Social Studies"),
    ("ELEC", "Elective"),
)
MARKS = np.array(["A", "B", "C", "D", "F"])
INCIDENT_CATEGORIES = np.array(["disruption", "defiance", "fighting", "bullying", "attendance_policy", "other"])
INCIDENT_ACTIONS = np.array(["conference", "detention", "in_school_suspension", "out_of_school_suspension"])

# Regular schools by level, as shares of the regular schools, with their grade spans.
SCHOOL_LEVELS = (
    ("elementary", 0, 5, 0.52, "Elementary School"),
    ("k8", 0, 8, 0.12, "K-8 School"),
    ("middle", 6, 8, 0.18, "Middle School"),
    ("high", 9, 12, 0.18, "High School"),
)
# Very small schools every district has; their groups fall under any threshold.
SMALL_SCHOOLS = (
    ("alternative", 9, 12, 70, "Community Alternative High School"),
    ("alternative", 6, 12, 45, "Newcomer Academy"),
    ("alternative", 0, 12, 25, "Hospital and Home School Program"),
)
CLASS_SIZE_ELEMENTARY = 22
CLASS_SIZE_SECONDARY = 26
SECTIONS_PER_SECONDARY_TEACHER = 5


ProgressCallback = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class SchoolYear:
    label: str
    school_days: np.ndarray  # datetime64[D], sorted
    term_split: int  # index of the first day of S2

    @property
    def start(self) -> int:
        return int(self.label[:4])


def parse_years(text: str | Sequence[str]) -> tuple[str, ...]:
    """'2023-2024,2024-2025' or a sequence, checked to be consecutive school years."""
    items = [y.strip() for y in text.split(",")] if isinstance(text, str) else [str(y).strip() for y in text]
    items = [y for y in items if y]
    if not items:
        raise ValueError("give at least one school year, such as 2025-2026")
    for item in items:
        parts = item.split("-")
        if len(parts) != 2 or not all(p.isdigit() and len(p) == 4 for p in parts) or int(parts[1]) != int(parts[0]) + 1:
            raise ValueError(f"{item!r} is not a school year such as 2025-2026")
    starts = sorted(int(y[:4]) for y in items)
    if len(set(starts)) != len(starts) or starts != list(range(starts[0], starts[0] + len(starts))):
        raise ValueError("school years must be distinct and consecutive")
    return tuple(f"{s}-{s + 1}" for s in starts)


def build_school_year(label: str) -> SchoolYear:
    """School days: weekdays from the Tuesday before Labor Day to mid June, less holidays and breaks."""
    start_year = int(label[:4])
    us_holidays = holidays.US(years=[start_year, start_year + 1])
    first = date(start_year, 8, 25)
    while first.weekday() != 1:
        first += timedelta(days=1)
    last = date(start_year + 1, 6, 15)
    winter = (date(start_year, 12, 24), date(start_year + 1, 1, 1))
    spring = date(start_year + 1, 4, 14)
    spring = (spring, spring + timedelta(days=4))
    days = []
    day = first
    while day <= last:
        in_break = winter[0] <= day <= winter[1] or spring[0] <= day <= spring[1]
        if day.weekday() < 5 and day not in us_holidays and not in_break:
            days.append(day)
        day += timedelta(days=1)
    school_days = np.array(days, dtype="datetime64[D]")
    split_date = np.datetime64(date(start_year + 1, 1, 27))
    return SchoolYear(label, school_days, int(np.searchsorted(school_days, split_date)))


def _ids(rng: np.random.Generator, count: int, low: int, high: int, width: int) -> np.ndarray:
    """`count` distinct random integers in [low, high) as zero-padded strings."""
    if high - low < 50_000_000:
        values = low + rng.choice(high - low, size=count, replace=False)
    else:  # too wide to permute: draw with a margin and drop the (rare) repeats
        values = np.unique(rng.integers(low, high, size=int(count * 1.01) + 16))
        values = values[rng.permutation(len(values))][:count]
    return np.char.zfill(values.astype(str), width)


def _make_schools(rng: np.random.Generator, students: int, id_range: tuple[int, int] = (1000, 9999)) -> pd.DataFrame:
    regular = max(6, round(students / 640))
    counts = np.floor(np.array([lvl[3] for lvl in SCHOOL_LEVELS]) * regular).astype(int)
    counts[0] += regular - counts.sum()
    rows = []
    place_pool = list(names.PLACE_NAMES)
    for (level, low, high, _, suffix), count in zip(SCHOOL_LEVELS, counts):
        for _ in range(count):
            rows.append((level, low, high, suffix))
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    used: dict[str, int] = {}
    records = []
    for position, (level, low, high, suffix) in enumerate(rows):
        place = place_pool[position % len(place_pool)]
        used[place] = used.get(place, 0) + 1
        label = place if used[place] == 1 else f"{place} {('North', 'South', 'East', 'West', 'Central')[(used[place] - 2) % 5]}"
        records.append({"level": level, "grade_low": low, "grade_high": high, "name": f"{label} {suffix}", "fixed_size": 0})
    for level, low, high, size, name in SMALL_SCHOOLS:
        records.append({"level": level, "grade_low": low, "grade_high": high, "name": name, "fixed_size": size})
    schools = pd.DataFrame(records)
    schools["school_id"] = _ids(rng, len(schools), *id_range, 4)
    # Sizes vary a lot within a level; lognormal weights give some big and some small schools.
    schools["weight"] = rng.lognormal(0.0, 0.35, len(schools)) * (schools["grade_high"] - schools["grade_low"] + 1)
    schools["race_mix"] = list(rng.dirichlet(RACE_SHARES * 6.0 + 0.02, len(schools)))
    schools["poverty"] = np.clip(rng.normal(0.0, 0.8, len(schools)), -1.6, 1.6)
    return schools


class _SchoolPicker:
    """Samples a school for each student by grade, in proportion to school weights."""

    def __init__(self, schools: pd.DataFrame):
        self.regular = schools[schools["fixed_size"] == 0]
        self.by_grade = {}
        for grade in range(13):
            serving = self.regular[(self.regular.grade_low <= grade) & (self.regular.grade_high >= grade)]
            weights = serving["weight"].to_numpy()
            self.by_grade[grade] = (serving.index.to_numpy(), weights / weights.sum())

    def pick(self, rng: np.random.Generator, grades: np.ndarray, avoid: np.ndarray | None = None) -> np.ndarray:
        chosen = np.empty(len(grades), dtype=np.int64)
        for grade in range(13):
            where = np.flatnonzero(grades == grade)
            if not len(where):
                continue
            index, weights = self.by_grade[grade]
            chosen[where] = rng.choice(index, size=len(where), p=weights)
            if avoid is not None and len(index) > 1:
                clash = where[chosen[where] == avoid[where]]
                while len(clash):
                    chosen[clash] = rng.choice(index, size=len(clash), p=weights)
                    clash = clash[chosen[clash] == avoid[clash]]
        return chosen


def _grades_for(rng: np.random.Generator, count: int) -> np.ndarray:
    weights = np.array([1.06, 1.04, 1.02, 1.0, 1.0, 0.99, 0.98, 0.97, 0.96, 1.0, 0.93, 0.86, 0.8])
    return rng.choice(13, size=count, p=weights / weights.sum())


@dataclass(frozen=True)
class IdBlock:
    """The share of the ID spaces one chunk of a district draws from, so chunks never share an ID.

    Student IDs keep 7 digits, state IDs 10 and school IDs 4 (the release checks look for those
    shapes), so the spaces are cut into `count` equal blocks rather than widened.
    """

    index: int
    count: int

    def cut(self, low: int, high: int) -> tuple[int, int]:
        width = (high - low) // self.count
        return low + self.index * width, low + (self.index + 1) * width


def generate_district(
    students: int = DEFAULT_STUDENTS,
    years: Sequence[str] = DEFAULT_YEARS,
    seed: int = DEFAULT_SEED,
    progress: ProgressCallback = _quiet,
    id_block: IdBlock | None = None,
) -> dict[str, pd.DataFrame]:
    """All warehouse tables for a district of about `students` students per year.

    `id_block` is for chunks of a larger district (`generate_district_in_chunks`); without it the
    IDs come from the whole spaces, as they always have.
    """
    if students < 200:
        raise ValueError("a district needs at least 200 students")
    years = parse_years(years)
    rng = np.random.default_rng(seed)
    calendars = [build_school_year(label) for label in years]

    progress("schools")
    schools = _make_schools(rng, students, *([id_block.cut(1000, 9999)] if id_block else []))
    picker = _SchoolPicker(schools)
    small_schools = schools.index[schools["fixed_size"] > 0].to_numpy()

    # --- who is enrolled each year -------------------------------------------------------
    progress("students and enrollments")
    population = _Population(rng, schools, picker, small_schools, students)
    stays_by_year = []
    student_years = []
    for order, calendar in enumerate(calendars):
        roster = population.roster_for_year(order, len(calendar.school_days))
        stays = population.stays_for(roster, calendar)
        stays_by_year.append(stays)
        student_years.append(roster.assign(school_year=calendar.label))
        population.advance(roster, stays)
    people = population.people_frame()
    roster_all = pd.concat(student_years, ignore_index=True)
    stays_all = pd.concat(stays_by_year, ignore_index=True)

    tables: dict[str, pd.DataFrame] = {}
    tables["schools"] = schools[["school_id", "name", "level", "grade_low", "grade_high"]].sort_values("school_id").reset_index(drop=True)
    school_ids = schools["school_id"].to_numpy()

    students_table = _students_table(rng, people, calendars[0], id_block)
    sid = people["student_id"].to_numpy()
    roster_all = _year_attributes(rng, roster_all, people, schools)
    students_table["race_ethnicity"] = np.array(RACES)[people["race"].to_numpy()]
    tables["students"] = students_table.sort_values("student_id").reset_index(drop=True)
    tables["student_years"] = pd.DataFrame({
        "student_id": sid[roster_all["person"].to_numpy()],
        "school_year": roster_all["school_year"].to_numpy(),
        "grade": roster_all["grade"].to_numpy(),
        "english_learner": roster_all["english_learner"].to_numpy(),
        "disability": roster_all["disability"].to_numpy(),
        "low_income": roster_all["low_income"].to_numpy(),
    })

    calendar_by_label = {c.label: c for c in calendars}
    entry_dates = np.empty(len(stays_all), dtype="datetime64[D]")
    exit_dates = np.empty(len(stays_all), dtype="datetime64[D]")
    for label, calendar in calendar_by_label.items():
        mask = (stays_all["school_year"] == label).to_numpy()
        entry_dates[mask] = calendar.school_days[stays_all.loc[mask, "entry_idx"].to_numpy()]
        exit_dates[mask] = calendar.school_days[stays_all.loc[mask, "exit_idx"].to_numpy()]
    tables["enrollments"] = pd.DataFrame({
        "student_id": sid[stays_all["person"].to_numpy()],
        "school_year": stays_all["school_year"].to_numpy(),
        "school_id": school_ids[stays_all["school"].to_numpy()],
        "entry_date": entry_dates,
        "exit_date": exit_dates,
        "exit_reason": stays_all["exit_reason"].to_numpy(),
    })
    tables["school_calendar"] = pd.DataFrame([
        {
            "school_year": c.label, "term": term,
            "first_day": c.school_days[lo], "last_day": c.school_days[hi - 1], "instructional_days": hi - lo,
        }
        for c in calendars
        for term, lo, hi in (("S1", 0, c.term_split), ("S2", c.term_split, len(c.school_days)))
    ])

    # Latent traits drive every outcome, so groups differ the way they do in real districts.
    traits = _traits(rng, roster_all, people, schools)
    roster_key = pd.MultiIndex.from_arrays([roster_all["person"], roster_all["school_year"]])
    stays_all["trait_row"] = roster_key.get_indexer(pd.MultiIndex.from_arrays([stays_all["person"], stays_all["school_year"]]))

    progress("attendance")
    tables["attendance"], stay_term_days = _attendance(rng, stays_all, roster_all, traits, calendar_by_label, sid, school_ids)

    progress("staff and sections")
    staff, assignments, sections, section_students = _sections(rng, stays_all, roster_all, schools, calendars, sid)
    tables["staff"], tables["staff_assignments"] = staff, assignments
    tables["sections"] = sections
    tables["section_students"] = section_students.drop(columns="_stay")

    progress("course marks")
    tables["course_marks"] = _course_marks(rng, section_students, sections, stay_term_days, traits, stays_all, sid, school_ids)

    progress("behavior incidents")
    tables["behavior_incidents"] = _incidents(rng, stays_all, roster_all, traits, people, calendar_by_label, sid, school_ids)

    progress("assessments")
    tables["assessments"] = _assessments(rng, roster_all, stays_all, traits, calendar_by_label, sid)

    progress("partners, programs and agreements")
    tables.update(_partners_and_agreements(rng, schools, stays_all, roster_all, calendars, sid, school_ids))

    tables["warehouse_info"] = pd.DataFrame({
        "key": ["generator_version", "seed", "students_per_year", "school_years", "synthetic"],
        "value": [GENERATOR_VERSION, str(seed), str(students), ",".join(years), "true"],
    })
    return tables


class _Population:
    """Students as integer 'persons' moving through grades and schools over the years."""

    def __init__(self, rng, schools, picker, small_schools, students):
        self.rng = rng
        self.schools = schools
        self.picker = picker
        self.small_schools = small_schools
        self.target = students
        self.first_grade: list[np.ndarray] = []
        self.first_school: list[np.ndarray] = []
        self.first_year: list[np.ndarray] = []
        self.count = 0
        self.continuing: pd.DataFrame | None = None

    def _new_people(self, grades: np.ndarray, school: np.ndarray, year_order: int) -> np.ndarray:
        persons = np.arange(self.count, self.count + len(grades))
        self.count += len(grades)
        self.first_grade.append(grades)
        self.first_school.append(school)
        self.first_year.append(np.full(len(grades), year_order))
        return persons

    def roster_for_year(self, year_order: int, n_days: int) -> pd.DataFrame:
        rng = self.rng
        small_total = int(self.schools["fixed_size"].sum())
        if self.continuing is None:
            grades = _grades_for(rng, self.target - small_total)
            school = self.picker.pick(rng, grades)
            late = np.zeros(len(grades), dtype=bool)
        else:
            grades = np.empty(0, dtype=np.int64)
            school = np.empty(0, dtype=np.int64)
            late = np.empty(0, dtype=bool)
        parts = []
        if self.continuing is not None:
            parts.append(self.continuing)
        regular_new = self.target - small_total - (0 if self.continuing is None else len(self.continuing))
        if self.continuing is None:
            persons = self._new_people(grades, school, year_order)
            parts.append(pd.DataFrame({"person": persons, "grade": grades, "school": school, "late_entry": late}))
        elif regular_new > 0:
            # Kindergarten arrives in force; other grades get newcomers, some of them mid-year.
            kinder = int(regular_new * 0.55)
            other = regular_new - kinder
            new_grades = np.concatenate([np.zeros(kinder, dtype=np.int64), rng.integers(1, 13, other)])
            new_school = self.picker.pick(rng, new_grades)
            new_late = np.concatenate([np.zeros(kinder, dtype=bool), rng.random(other) < 0.35])
            persons = self._new_people(new_grades, new_school, year_order)
            parts.append(pd.DataFrame({"person": persons, "grade": new_grades, "school": new_school, "late_entry": new_late}))
        # Small schools are refilled each year to their size: their students turn over fast.
        for index in self.small_schools:
            row = self.schools.loc[index]
            staying = 0 if self.continuing is None else int((self.continuing["school"] == index).sum())
            need = max(0, int(row["fixed_size"]) - staying)
            if need:
                small_grades = rng.integers(row["grade_low"], row["grade_high"] + 1, need)
                persons = self._new_people(small_grades, np.full(need, index), year_order)
                parts.append(pd.DataFrame({"person": persons, "grade": small_grades, "school": np.full(need, index), "late_entry": rng.random(need) < 0.3}))
        roster = pd.concat(parts, ignore_index=True)
        roster["grade"] = roster["grade"].astype(np.int64)
        return roster.sort_values("person", kind="stable").reset_index(drop=True)

    def stays_for(self, roster: pd.DataFrame, calendar: SchoolYear) -> pd.DataFrame:
        rng = self.rng
        n = len(roster)
        n_days = len(calendar.school_days)
        entry = np.where(roster["late_entry"].to_numpy(), rng.integers(10, n_days - 40, n), 0)
        leaves = rng.random(n) < 0.015
        exit_idx = np.where(leaves, np.minimum(n_days - 5, entry + rng.integers(15, n_days, n)), n_days - 1)
        exit_idx = np.maximum(exit_idx, entry + 5)
        regular = ~np.isin(roster["school"].to_numpy(), self.small_schools)
        moves = regular & (rng.random(n) < 0.045) & (exit_idx - entry > 30)
        move_at = entry + ((exit_idx - entry) * rng.uniform(0.2, 0.8, n)).astype(np.int64)
        first_school = roster["school"].to_numpy()
        second_school = self.picker.pick(rng, roster["grade"].to_numpy(), avoid=first_school)
        first_exit = np.where(moves, move_at - 1, exit_idx)
        final_reason = np.where(leaves, "left_district", "year_end")
        first = pd.DataFrame({
            "person": roster["person"].to_numpy(), "school": first_school, "grade": roster["grade"].to_numpy(),
            "entry_idx": entry, "exit_idx": first_exit,
            "exit_reason": np.where(moves, "transfer", final_reason),
        })
        second = pd.DataFrame({
            "person": roster["person"].to_numpy()[moves], "school": second_school[moves],
            "grade": roster["grade"].to_numpy()[moves], "entry_idx": move_at[moves],
            "exit_idx": exit_idx[moves], "exit_reason": final_reason[moves],
        })
        stays = pd.concat([first, second], ignore_index=True).sort_values(["person", "entry_idx"], kind="stable")
        stays["school_year"] = calendar.label
        return stays.reset_index(drop=True)

    def advance(self, roster: pd.DataFrame, stays: pd.DataFrame) -> None:
        rng = self.rng
        last = stays.groupby("person", sort=True).tail(1).set_index("person").loc[roster["person"].to_numpy()]
        stays_on = (last["exit_reason"].to_numpy() == "year_end") & (roster["grade"].to_numpy() < 12)
        stays_on &= rng.random(len(roster)) >= 0.06
        retained = rng.random(len(roster)) < 0.02
        next_grade = np.where(retained, roster["grade"].to_numpy(), roster["grade"].to_numpy() + 1)
        next_grade = np.minimum(next_grade, 12)
        school = last["school"].to_numpy()
        lows = self.schools["grade_low"].to_numpy()[school]
        highs = self.schools["grade_high"].to_numpy()[school]
        in_small = np.isin(school, self.small_schools)
        must_move = (next_grade < lows) | (next_grade > highs)
        transfers = (rng.random(len(roster)) < 0.04) & ~in_small
        # Small-school students mostly return to regular schools the next year.
        leave_small = in_small & (rng.random(len(roster)) < 0.5)
        repick = (must_move | transfers | leave_small) & stays_on
        new_school = school.copy()
        new_school[repick] = self.picker.pick(rng, next_grade[repick])
        keep = stays_on
        self.continuing = pd.DataFrame({
            "person": roster["person"].to_numpy()[keep], "grade": next_grade[keep],
            "school": new_school[keep], "late_entry": np.zeros(int(keep.sum()), dtype=bool),
        })

    def people_frame(self) -> pd.DataFrame:
        return pd.DataFrame({
            "person": np.arange(self.count),
            "first_grade": np.concatenate(self.first_grade),
            "first_school": np.concatenate(self.first_school),
            "first_year": np.concatenate(self.first_year),
        })


def _students_table(rng, people: pd.DataFrame, first_calendar: SchoolYear, id_block: IdBlock | None = None) -> pd.DataFrame:
    n = len(people)
    if id_block is None:
        student_range, state_range = (1, max(3_000_000, 3 * n)), (1_000_000_000, 9_999_999_999)
    else:
        student_range, state_range = id_block.cut(1, 10_000_000), id_block.cut(1_000_000_000, 9_999_999_999)
        if student_range[1] - student_range[0] < n:
            raise ValueError(f"{id_block.count} chunks of about {n:,} students over these years do not fit "
                             "7-digit student IDs; generate fewer students or fewer years")
    people["student_id"] = _ids(rng, n, *student_range, 7)
    people["state_id"] = _ids(rng, n, *state_range, 10)
    gender = rng.choice(len(GENDERS), size=n, p=GENDER_SHARES)
    people["gender"] = np.array(GENDERS)[gender]
    female = np.array(names.FEMALE_FIRST)
    male = np.array(names.MALE_FIRST)
    pick_female = (gender == 0) | ((gender == 2) & (rng.random(n) < 0.5))
    first = np.where(pick_female, female[rng.integers(0, len(female), n)], male[rng.integers(0, len(male), n)])
    last = np.array(names.LAST)[rng.integers(0, len(names.LAST), n)]
    # Age 5 on September 1 in kindergarten; a few students are a year older than their grade.
    start_year = first_calendar.start + people["first_year"].to_numpy()
    birth_year = start_year - people["first_grade"].to_numpy() - 5 - (rng.random(n) < 0.06)
    sept_first = pd.to_datetime(pd.DataFrame({"year": birth_year, "month": 9, "day": 1})).to_numpy().astype("datetime64[D]")
    dob = sept_first - rng.integers(0, 365, n).astype("timedelta64[D]")
    return pd.DataFrame({
        "student_id": people["student_id"].to_numpy(),
        "state_id": people["state_id"].to_numpy(),
        "first_name": first,
        "last_name": last,
        "date_of_birth": dob,
        "gender": people["gender"].to_numpy(),
        "race_ethnicity": "",
    })


def _year_attributes(rng, roster_all: pd.DataFrame, people: pd.DataFrame, schools: pd.DataFrame) -> pd.DataFrame:
    """Race from the first school's mix (fixed per student); EL, disability, low income per year."""
    n_people = len(people)
    race = np.empty(n_people, dtype=np.int64)
    first_school = people["first_school"].to_numpy()
    for index, mix in zip(schools.index, schools["race_mix"]):
        where = np.flatnonzero(first_school == index)
        if len(where):
            race[where] = rng.choice(len(RACES), size=len(where), p=mix)
    people["race"] = race
    poverty = schools["poverty"].to_numpy()[first_school]
    race_income = np.array([0.9, 0.9, -0.9, 0.0, 0.0, 0.8, 0.5])[race]
    people["income_latent"] = poverty + race_income + rng.normal(0, 1.0, n_people)
    el_base = np.array([0.35, 0.12, 0.02, 0.30, 0.04, 0.05, 0.20])[race]
    people["el_latent"] = rng.random(n_people) < el_base
    people["disability_latent"] = rng.random(n_people) < 0.19
    person = roster_all["person"].to_numpy()
    grade = roster_all["grade"].to_numpy()
    # English learners are reclassified as they progress through grades.
    el_keep = rng.random(len(roster_all)) < np.clip(1.0 - grade * 0.06, 0.25, 1.0)
    roster_all["english_learner"] = people["el_latent"].to_numpy()[person] & el_keep
    roster_all["disability"] = people["disability_latent"].to_numpy()[person] ^ (rng.random(len(roster_all)) < 0.01)
    roster_all["low_income"] = (people["income_latent"].to_numpy()[person] + rng.normal(0, 0.25, len(roster_all))) > -0.3
    return roster_all


def _traits(rng, roster_all: pd.DataFrame, people: pd.DataFrame, schools: pd.DataFrame) -> pd.DataFrame:
    """Per student-year latent absence, ability and behavior propensities."""
    person = roster_all["person"].to_numpy()
    n_people = len(people)
    ability_person = rng.normal(0, 1, n_people)
    absence_person = rng.normal(0, 1, n_people)
    behavior_person = rng.gamma(0.6, 1.0, n_people)
    low_income = roster_all["low_income"].to_numpy()
    disability = roster_all["disability"].to_numpy()
    el = roster_all["english_learner"].to_numpy()
    grade = roster_all["grade"].to_numpy()
    male = (people["gender"].to_numpy() == "M")[person]
    high_school = grade >= 9
    # Logit of a student-year's daily absence probability: about 1 in 4 chronically absent.
    absence_logit = -2.95 + 0.55 * absence_person[person] + 0.35 * low_income + 0.2 * disability + 0.35 * high_school + 0.12 * (grade == 0) + rng.normal(0, 0.25, len(person))
    ability = 0.8 * ability_person[person] - 0.35 * low_income - 0.45 * disability - 0.3 * el + rng.normal(0, 0.35, len(person))
    behavior_rate = behavior_person[person] * (0.18 + 0.12 * ((grade >= 6) & (grade <= 9)) + 0.1 * male + 0.05 * low_income)
    return pd.DataFrame({"absence_logit": absence_logit, "ability": ability, "behavior_rate": behavior_rate}, index=roster_all.index)


def _attendance(rng, stays_all, roster_all, traits, calendar_by_label, sid, school_ids):
    """Days enrolled and absent per stay and term; also returns each stay's days per term."""
    p_absent = 1.0 / (1.0 + np.exp(-traits["absence_logit"].to_numpy()[stays_all["trait_row"].to_numpy()]))
    split = stays_all["school_year"].map({k: v.term_split for k, v in calendar_by_label.items()}).to_numpy()
    entry = stays_all["entry_idx"].to_numpy()
    exit_ = stays_all["exit_idx"].to_numpy() + 1
    s1 = np.clip(np.minimum(exit_, split) - entry, 0, None)
    s2 = np.clip(exit_ - np.maximum(entry, split), 0, None)
    frames = []
    for term, days in (("S1", s1), ("S2", s2)):
        absent = rng.binomial(days, p_absent)
        keep = days > 0
        frames.append(pd.DataFrame({
            "student_id": sid[stays_all["person"].to_numpy()[keep]],
            "school_year": stays_all["school_year"].to_numpy()[keep],
            "term": term,
            "school_id": school_ids[stays_all["school"].to_numpy()[keep]],
            "days_enrolled": days[keep],
            "days_absent": absent[keep],
            "_order": np.flatnonzero(keep),
        }))
    attendance = pd.concat(frames, ignore_index=True).sort_values(["_order", "term"], kind="stable").drop(columns="_order")
    return attendance.reset_index(drop=True), np.stack([s1, s2], axis=1)


def _sections(rng, stays_all, roster_all, schools, calendars, sid):
    """Homerooms for K-5, five courses for 6-12; teachers keep their slot across years."""
    frames = []
    school_ids = schools["school_id"].to_numpy()
    stays = stays_all[["person", "school", "grade", "school_year"]].copy()
    stays["stay"] = np.arange(len(stays))
    elementary = stays[stays["grade"] <= 5]
    secondary = stays[stays["grade"] >= 6]
    plans = [(elementary, "HR", "Homeroom", "homeroom", CLASS_SIZE_ELEMENTARY)]
    plans += [(secondary, code, name, code.lower(), CLASS_SIZE_SECONDARY) for code, name in SUBJECTS]
    for group, code, course_name, subject, capacity in plans:
        if group.empty:
            continue
        shuffled = group.iloc[rng.permutation(len(group))]
        keys = ["school_year", "school", "grade"]
        position = shuffled.groupby(keys, sort=False).cumcount().to_numpy()
        size = shuffled.groupby(keys, sort=False)["stay"].transform("size").to_numpy()
        n_sections = np.ceil(size / capacity).astype(np.int64)
        frames.append(pd.DataFrame({
            "stay": shuffled["stay"].to_numpy(), "school_year": shuffled["school_year"].to_numpy(),
            "school": shuffled["school"].to_numpy(), "grade": shuffled["grade"].to_numpy(),
            "course_code": code, "course_name": course_name, "subject": subject,
            "section_no": position % n_sections,
        }))
    membership = pd.concat(frames, ignore_index=True)
    section_keys = ["school_year", "school", "grade", "course_code", "section_no"]
    sections = membership[section_keys + ["course_name", "subject"]].drop_duplicates(section_keys)
    sections = sections.sort_values(["school_year", "school", "course_code", "grade", "section_no"], kind="stable").reset_index(drop=True)
    sections["serial"] = sections.groupby(["school_year", "school"]).cumcount() + 1
    # Secondary teachers teach several sections of one subject; elementary teachers one homeroom.
    per_teacher = np.where(sections["course_code"] == "HR", 1, SECTIONS_PER_SECONDARY_TEACHER)
    sections["subject_rank"] = sections.groupby(["school_year", "school", "course_code"]).cumcount()
    sections["teacher_slot"] = sections["subject_rank"] // per_teacher
    slot_key = sections[["school", "course_code", "teacher_slot"]]
    slots = slot_key.drop_duplicates().sort_values(["school", "course_code", "teacher_slot"]).reset_index(drop=True)
    principals = pd.DataFrame({"school": np.arange(len(schools)), "course_code": "PRINCIPAL", "teacher_slot": 0})
    slots = pd.concat([principals, slots], ignore_index=True).sort_values(["school", "course_code", "teacher_slot"], kind="stable").reset_index(drop=True)
    slots["staff_id"] = ["T" + str(i).zfill(5) for i in range(1, len(slots) + 1)]
    sections = sections.merge(slots, on=["school", "course_code", "teacher_slot"], how="left")
    sections["section_id"] = (
        sections["school_year"].str[:4] + "-" + school_ids[sections["school"].to_numpy()] + "-"
        + sections["serial"].astype(str).str.zfill(4)
    )
    n_staff = len(slots)
    female = np.array(names.FEMALE_FIRST + names.MALE_FIRST)
    staff = pd.DataFrame({
        "staff_id": slots["staff_id"].to_numpy(),
        "first_name": female[rng.integers(0, len(female), n_staff)],
        "last_name": np.array(names.LAST)[rng.integers(0, len(names.LAST), n_staff)],
    })
    teaching = sections[["staff_id", "school_year", "school"]].drop_duplicates().assign(role="teacher")
    years = [c.label for c in calendars]
    leading = slots[slots["course_code"] == "PRINCIPAL"].merge(pd.DataFrame({"school_year": years}), how="cross").assign(role="principal")
    assignments = pd.concat([leading[["staff_id", "school_year", "school", "role"]], teaching], ignore_index=True)
    assignments = pd.DataFrame({
        "staff_id": assignments["staff_id"].to_numpy(),
        "school_year": assignments["school_year"].to_numpy(),
        "school_id": school_ids[assignments["school"].to_numpy()],
        "role": assignments["role"].to_numpy(),
    }).sort_values(["school_year", "school_id", "role", "staff_id"]).reset_index(drop=True)
    membership = membership.merge(sections[section_keys + ["section_id"]], on=section_keys, how="left")
    person = stays_all["person"].to_numpy()[membership["stay"].to_numpy()]
    section_students = pd.DataFrame({"section_id": membership["section_id"].to_numpy(), "student_id": sid[person], "_stay": membership["stay"].to_numpy()})
    section_students = section_students.sort_values(["section_id", "student_id"]).reset_index(drop=True)
    sections_out = pd.DataFrame({
        "section_id": sections["section_id"], "school_year": sections["school_year"],
        "school_id": school_ids[sections["school"].to_numpy()], "staff_id": sections["staff_id"],
        "course_code": sections["course_code"] + "-" + sections["grade"].astype(str).str.zfill(2),
        "course_name": sections["course_name"] + np.where(sections["grade"] == 0, " K", " " + sections["grade"].astype(str)),
        "subject": sections["subject"], "grade": sections["grade"],
    })
    return staff, assignments, sections_out, section_students


def _course_marks(rng, section_students, sections, stay_term_days, traits, stays_all, sid, school_ids):
    graded = section_students.merge(sections[["section_id", "school_year", "grade"]], on="section_id")
    graded = graded[graded["grade"] >= 6]
    stay = graded["_stay"].to_numpy()
    frames = []
    ability = traits["ability"].to_numpy()
    absence = traits["absence_logit"].to_numpy()
    trait_row = stays_all["trait_row"].to_numpy()[stay]
    for column, term in enumerate(("S1", "S2")):
        days = stay_term_days[stay, column]
        keep = days >= 10
        n = int(keep.sum())
        score = ability[trait_row[keep]] - 0.6 * (absence[trait_row[keep]] + 2.95) + rng.normal(0, 0.9, n)
        score = (score - score.mean()) / score.std()
        mark = MARKS[np.digitize(-score, [-0.9, 0.1, 1.0, 1.85])]
        frames.append(pd.DataFrame({
            "student_id": graded["student_id"].to_numpy()[keep], "section_id": graded["section_id"].to_numpy()[keep],
            "school_year": graded["school_year"].to_numpy()[keep], "term": term, "mark": mark,
        }))
    return pd.concat(frames, ignore_index=True).sort_values(["section_id", "student_id", "term"]).reset_index(drop=True)


def _incidents(rng, stays_all, roster_all, traits, people, calendar_by_label, sid, school_ids):
    rows = stays_all["trait_row"].to_numpy()
    days = (stays_all["exit_idx"] - stays_all["entry_idx"] + 1).to_numpy()
    share = days / 175.0
    counts = rng.poisson(traits["behavior_rate"].to_numpy()[rows] * share)
    which = np.repeat(np.arange(len(stays_all)), counts)
    n = len(which)
    offset = (rng.random(n) * days[which]).astype(np.int64)
    day_idx = stays_all["entry_idx"].to_numpy()[which] + offset
    years = stays_all["school_year"].to_numpy()[which]
    dates = np.empty(n, dtype="datetime64[D]")
    for label, calendar in calendar_by_label.items():
        mask = years == label
        dates[mask] = calendar.school_days[day_idx[mask]]
    category = INCIDENT_CATEGORIES[rng.choice(len(INCIDENT_CATEGORIES), n, p=[0.32, 0.24, 0.12, 0.08, 0.14, 0.10])]
    action = INCIDENT_ACTIONS[rng.choice(len(INCIDENT_ACTIONS), n, p=[0.45, 0.25, 0.17, 0.13])]
    removed = np.where(action == "out_of_school_suspension", rng.integers(1, 6, n), np.where(action == "in_school_suspension", 1, 0))
    frame = pd.DataFrame({
        "student_id": sid[stays_all["person"].to_numpy()[which]], "school_year": years,
        "school_id": school_ids[stays_all["school"].to_numpy()[which]], "incident_date": dates,
        "category": category, "action": action, "days_removed": removed,
    }).sort_values(["incident_date", "student_id"], kind="stable").reset_index(drop=True)
    frame.insert(0, "incident_id", np.arange(1, len(frame) + 1))
    return frame


def _assessments(rng, roster_all, stays_all, traits, calendar_by_label, sid):
    """ELA and math each spring for grades 3-8 and 10, for students enrolled in April."""
    tested_grades = [3, 4, 5, 6, 7, 8, 10]
    april = {label: int(np.searchsorted(c.school_days, np.datetime64(f"{c.start + 1}-04-01"))) for label, c in calendar_by_label.items()}
    test_day = stays_all["school_year"].map(april).to_numpy()
    present = (stays_all["entry_idx"].to_numpy() <= test_day) & (stays_all["exit_idx"].to_numpy() >= test_day)
    on_test_day = np.zeros(len(roster_all), dtype=bool)
    on_test_day[stays_all["trait_row"].to_numpy()[present]] = True
    eligible = roster_all["grade"].isin(tested_grades).to_numpy() & on_test_day
    eligible &= rng.random(len(roster_all)) >= 0.03  # absent on test days / opted out
    idx = np.flatnonzero(eligible)
    frames = []
    for subject, shift in (("ELA", 0.05), ("Math", -0.1)):
        ability = traits["ability"].to_numpy()[idx] + shift + rng.normal(0, 0.45, len(idx))
        score = np.clip(np.round(503 + 22 * ability), 440, 560).astype(np.int64)
        level = np.digitize(score, [480, 500, 530]) + 1
        frames.append(pd.DataFrame({
            "student_id": sid[roster_all["person"].to_numpy()[idx]],
            "school_year": roster_all["school_year"].to_numpy()[idx], "subject": subject,
            "tested_grade": roster_all["grade"].to_numpy()[idx], "scaled_score": score,
            "achievement_level": level, "meets_benchmark": level >= 3,
        }))
    return pd.concat(frames, ignore_index=True).sort_values(["school_year", "student_id", "subject"]).reset_index(drop=True)


def _partners_and_agreements(rng, schools, stays_all, roster_all, calendars, sid, school_ids) -> dict[str, pd.DataFrame]:
    first_start = calendars[0].start
    last_start = calendars[-1].start
    n_partners = min(len(names.PARTNER_NAMES), max(6, len(schools) // 3))
    partner_ids = [f"P-{i:02d}" for i in range(1, n_partners + 1)]
    status = np.array(["registered"] * n_partners, dtype=object)
    status[-2] = "pending"
    status[-1] = "lapsed"
    registered_on = [date(first_start - 1, 6, 1) + timedelta(days=int(d)) for d in rng.integers(0, 700, n_partners)]
    expires = [d + timedelta(days=365 * 5) if s != "lapsed" else date(last_start, 1, 31) for d, s in zip(registered_on, status)]
    partners = pd.DataFrame({
        "partner_id": partner_ids, "name": list(names.PARTNER_NAMES[:n_partners]),
        "registration_status": status, "registered_on": registered_on, "registration_expires": expires,
    })

    regular = schools.index[(schools["grade_high"] - schools["grade_low"]) < 12].to_numpy()
    program_rows = []
    for p_index, partner_id in enumerate(partner_ids):
        for _ in range(1 + int(rng.integers(0, 3))):
            school = int(rng.choice(regular))
            kind = names.PROGRAM_KINDS[int(rng.integers(0, len(names.PROGRAM_KINDS)))]
            program_rows.append({"partner_id": partner_id, "name": f"{kind} at {schools.loc[school, 'name']}", "school": school})
    programs = pd.DataFrame(program_rows)
    programs["program_id"] = [f"PRG-{i:03d}" for i in range(1, len(programs) + 1)]

    # Tag students each year from the program's school, added on Mondays (weekly add/drop).
    tag_frames = []
    for program in programs.itertuples():
        for calendar in calendars:
            at_school = stays_all[(stays_all["school"] == program.school) & (stays_all["school_year"] == calendar.label)]
            if at_school.empty:
                continue
            size = min(len(at_school), int(rng.integers(12, 70)))
            chosen = at_school.iloc[rng.choice(len(at_school), size=size, replace=False)]
            start = calendar.school_days[np.minimum(chosen["entry_idx"].to_numpy() + rng.integers(5, 40, size), chosen["exit_idx"].to_numpy())]
            start = start - ((start.astype("datetime64[D]").view("int64") + 3) % 7).astype("timedelta64[D]")  # back to Monday
            dropped = rng.random(size) < 0.18
            drop_day = calendar.school_days[np.minimum(chosen["exit_idx"].to_numpy(), chosen["entry_idx"].to_numpy() + rng.integers(45, 160, size))]
            drop_day = np.maximum(drop_day, start + np.timedelta64(7, "D"))
            year_end = calendar.school_days[-1] + np.timedelta64(1, "D")
            tag_frames.append(pd.DataFrame({
                "program_id": program.program_id,
                "student_id": sid[chosen["person"].to_numpy()],
                "added_on": start,
                "dropped_on": np.where(dropped, drop_day, np.where(calendar is calendars[-1], np.datetime64("NaT"), year_end)),
                "partner_id": program.partner_id,
            }))
    tags = pd.concat(tag_frames, ignore_index=True).drop_duplicates(["program_id", "student_id", "added_on"])
    tags = tags.sort_values(["program_id", "added_on", "student_id"], kind="stable").reset_index(drop=True)

    # Consents: most tagged students' families sign; channel, age and revocations vary so every
    # policy's rules have something to bite on.
    consent_source = tags.drop_duplicates(["partner_id", "student_id"], keep="last").reset_index(drop=True)
    consent_source = consent_source[rng.random(len(consent_source)) < 0.7].reset_index(drop=True)
    n_consents = len(consent_source)
    signed = consent_source["added_on"].to_numpy().astype("datetime64[D]") - rng.integers(0, 20, n_consents).astype("timedelta64[D]")
    term_days = np.where(rng.random(n_consents) < 0.8, 365, 730)
    channel = np.where(rng.random(n_consents) < 0.75, "virtual", "paper")
    revoked = np.where(rng.random(n_consents) < 0.04, signed + rng.integers(30, 200, n_consents).astype("timedelta64[D]"), np.datetime64("NaT"))
    # Families of students still in a program renew one-year forms each September.
    renew = consent_source["dropped_on"].isna().to_numpy() & (term_days == 365) & np.isnat(revoked) & (rng.random(n_consents) < 0.85)
    n_renew = int(renew.sum())
    renew_signed = np.datetime64(f"{last_start + 1}-09-02") + rng.integers(0, 28, n_renew).astype("timedelta64[D]")
    consents = pd.DataFrame({
        "student_id": np.concatenate([consent_source["student_id"].to_numpy(), consent_source["student_id"].to_numpy()[renew]]),
        "partner_id": np.concatenate([consent_source["partner_id"].to_numpy(), consent_source["partner_id"].to_numpy()[renew]]),
        "signed_on": np.concatenate([signed, renew_signed]),
        "expires_on": np.concatenate([signed + term_days.astype("timedelta64[D]"), renew_signed + np.timedelta64(365, "D")]),
        "channel": np.concatenate([channel, channel[renew]]),
        "revoked_on": np.concatenate([revoked, np.full(n_renew, np.datetime64("NaT"), dtype="datetime64[D]")]),
    }).sort_values(["signed_on", "student_id", "partner_id"], kind="stable").reset_index(drop=True)
    consents.insert(0, "consent_id", np.arange(1, len(consents) + 1))

    nda_rows = []
    for i, (partner_id, name) in enumerate(zip(partner_ids, partners["name"])):
        if partners.loc[i, "registration_status"] == "pending":
            continue
        signed_on = date(last_start - 1, 7, 1) + timedelta(days=int(rng.integers(0, 300)))
        expires = signed_on + timedelta(days=365 * 3)
        if i == 2:  # one partner's NDA has lapsed: their student-level requests must be refused
            signed_on, expires = date(first_start - 2, 9, 1), date(first_start, 8, 31)
        nda_rows.append({"organization": name, "partner_id": partner_id, "signed_on": signed_on, "expires_on": expires})
    research_rows = []
    outcomes = ("approved", "approved", "pending", "rejected", "approved")
    for i, (org, lead, title) in enumerate(names.RESEARCH_ORGS):
        approved_on = date(last_start - 1, 3, 1) + timedelta(days=int(rng.integers(0, 200)))
        expires = approved_on + timedelta(days=365 * 3)
        if i == 4:  # an approval that ran out
            approved_on, expires = date(first_start - 3, 3, 1), date(first_start - 1, 2, 28)
        research_rows.append({
            "approval_id": f"RA-{approved_on.year}-{i + 1:04d}", "organization": org, "lead_researcher": lead,
            "title": title, "status": outcomes[i],
            "approved_on": approved_on if outcomes[i] == "approved" else None,
            "expires_on": expires if outcomes[i] == "approved" else None,
        })
        if outcomes[i] == "approved":
            nda_rows.append({"organization": org, "partner_id": None, "signed_on": approved_on, "expires_on": expires})
    ndas = pd.DataFrame(nda_rows)
    ndas.insert(0, "nda_id", [f"NDA-{i:04d}" for i in range(1, len(ndas) + 1)])

    opt_rows = roster_all.sample(frac=0.03, random_state=np.random.RandomState(int(rng.integers(0, 2**31 - 1))))
    opt_outs = pd.DataFrame({
        "student_id": sid[opt_rows["person"].to_numpy()],
        "school_year": opt_rows["school_year"].to_numpy(),
        "opted_out_on": [date(int(y[:4]), 9, 1) + timedelta(days=int(d)) for y, d in zip(opt_rows["school_year"], rng.integers(0, 30, len(opt_rows)))],
    }).sort_values(["school_year", "student_id"]).reset_index(drop=True)

    return {
        "partners": partners,
        "programs": pd.DataFrame({
            "program_id": programs["program_id"], "partner_id": programs["partner_id"],
            "name": programs["name"], "school_id": school_ids[programs["school"].to_numpy()],
        }),
        "program_students": tags[["program_id", "student_id", "added_on", "dropped_on"]],
        "ndas": ndas,
        "research_approvals": pd.DataFrame(research_rows),
        "consents": consents,
        "directory_opt_outs": opt_outs,
    }
