"""Data requests: the YAML request file, validated field by field.

A request says who is asking (and in which role), why, for whom, at which data level, for which
school years, about which students (a list of IDs, a program, a school), and what (measures and
breakdowns for aggregates, fields for student-level data). docs/requests.md describes the format.

Two YAML traps are handled on purpose:

* Unquoted IDs. YAML reads ``000123`` as the number 83 (octal) and ``0041275`` as 17085, while
  ``0041289`` stays text. An ID list containing numbers is an error naming the entries, never
  silently repaired: the original digits cannot be recovered from the number.
* Dates. ``2026-11-02`` would become a date object, but a bad date such as ``2026-13-02`` would
  crash the YAML parser; dates are kept as text and checked here instead.

The file itself is read by `workbench.safe_yaml` (size limit, UTF-8, no aliases, tags or
duplicate keys), ID files by `workbench.id_files`; the request ID must be a safe folder name
(`workbench.request_ids`), since it names the release and the register entry.

Agreement IDs in the file (NDA, research approval) are claims; the decision looks them up in the
warehouse. Nothing here prints a student's data.
"""

from __future__ import annotations

import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from workbench import safe_yaml
from workbench.cohort import DISTRICT_ID_WIDTH, STATE_ID_WIDTH
from workbench.id_files import ID_FILE_SUFFIXES, IdFileError, read_id_file
from workbench.limits import (
    CODE_CHARS,
    NAME_CHARS,
    NOTE_CHARS,
    PROBLEMS_LISTED,
    TEXT_CHARS,
    excerpt,
    excerpt_list,
    yaml_bytes,
)
from workbench.policy.validation import describe_validation_error
from workbench.request_ids import request_id_problem
from workbench.policy.vocabulary import (
    STUDENT_LEVELS,
    ExceptionKind,
    Field as StudentField,
    Level,
    Role,
)
from workbench.errors import InputError

DISTRICT_ID = re.compile(rf"^\d{{{DISTRICT_ID_WIDTH}}}$")
STATE_ID = re.compile(rf"^[1-9]\d{{{STATE_ID_WIDTH - 1}}}$")
SCHOOL_YEAR = re.compile(r"^(\d{4})-(\d{4})$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

# A request is received on a real day: not before this year, and not more than a year from today.
EARLIEST_RECEIVED_YEAR = 1970


class RequestError(InputError):
    """A request that cannot be read or is not valid. `problems` has one line per mistake."""

    def __init__(self, problems: list[str], where: str | None = None) -> None:
        self.problems = list(problems)
        self.where = where
        heading = f"request {where} is not valid" if where else "the request is not valid"
        listed = [f"  - {p}" for p in self.problems[:PROBLEMS_LISTED]]
        if len(self.problems) > PROBLEMS_LISTED:
            listed.append(f"  ... and {len(self.problems) - PROBLEMS_LISTED:,} more problems")
        super().__init__(heading + ":\n" + "\n".join(listed))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_written_ids(values: tuple[str, ...], where: str) -> tuple[str, ...]:
    """IDs typed into the request file must be written out in full.

    A spreadsheet may drop leading zeros and `workbench.cohort` pads those when reading files,
    but an ID typed into a request by hand that is too short has most likely lost its zeros on
    the way, and which zeros is a guess: the requester must write it out.
    """
    bad = []
    for index, value in enumerate(values):
        text = value.strip()
        if DISTRICT_ID.match(text) or STATE_ID.match(text):
            continue
        if text.isdigit() and len(text) < DISTRICT_ID_WIDTH:
            bad.append(f"[{index}] {text!r} has {len(text)} digits (district IDs have {DISTRICT_ID_WIDTH}; "
                       f"if it lost its leading zeros write {text.zfill(DISTRICT_ID_WIDTH)!r})")
        elif re.fullmatch(r"[\d\s.\-]+", text):
            bad.append(f"[{index}] {excerpt(text)} is neither a {DISTRICT_ID_WIDTH}-digit district ID "
                       f"nor a {STATE_ID_WIDTH}-digit state ID")
        else:
            # Text where an ID belongs may be a name pasted into the wrong column: never repeat it.
            bad.append(f"[{index}] is not a student ID (it holds text, not shown)")
    if bad:
        prefix = f"{where} " if where else ""
        raise ValueError(f"{prefix}must list full student IDs: " + excerpt_list(bad, separator="; "))
    return tuple(v.strip() for v in values)


_Name = Annotated[str, Field(max_length=NAME_CHARS)]
_Code = Annotated[str, Field(max_length=CODE_CHARS)]


class Requester(_Strict):
    name: str = Field(min_length=1, max_length=NAME_CHARS)
    organization: _Name | None = None
    email: _Name | None = None
    role: Role
    partner_id: _Code | None = None
    nda_id: _Code | None = None
    research_approval_id: _Code | None = None
    staff_school_id: _Code | None = None
    staff_id: _Code | None = None
    # Parents: the district IDs of their own children.
    student_ids: tuple[str, ...] = ()

    @field_validator("student_ids")
    @classmethod
    def _full_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_written_ids(value, "")

    @model_validator(mode="after")
    def _role_needs(self) -> "Requester":
        if self.role == "teacher" and not self.staff_id:
            raise ValueError("staff_id: a teacher's request needs their staff ID (their sections are looked up)")
        if self.role == "school_leader" and not self.staff_school_id:
            raise ValueError("staff_school_id: a school leader's request needs their school ID")
        if self.role == "parent" and not self.student_ids:
            raise ValueError("student_ids: a parent's request lists the IDs of their own children")
        return self


class CohortSpec(_Strict):
    """Exactly one of: student_ids (a list, or a file of IDs), program, school (+ grades)."""

    student_ids: tuple[str, ...] | None = None
    student_ids_file: str | None = None  # set when the IDs were read from a file
    id_kind: Literal["auto", "district", "state"] = "auto"
    program: _Code | None = None
    school: _Code | None = None
    grades: tuple[int, ...] | None = None

    @field_validator("grades")
    @classmethod
    def _grade_range(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is not None and any(g < 0 or g > 12 for g in value):
            raise ValueError("grades run from 0 (kindergarten) to 12")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> "CohortSpec":
        given = [name for name in ("student_ids", "program", "school") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of student_ids, program or school"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.grades is not None and self.school is None:
            raise ValueError("grades: grades go with a school cohort")
        if self.student_ids is not None and not self.student_ids:
            raise ValueError("student_ids: the list is empty")
        if self.student_ids is not None and self.student_ids_file is None:
            _check_written_ids(self.student_ids, "student_ids")
        return self

    @property
    def kind(self) -> str:
        if self.student_ids is not None:
            return "student_ids"
        return "program" if self.program is not None else "school"


class DataRequest(_Strict):
    id: str = Field(min_length=1)
    received: date
    requester: Requester
    purpose: str = Field(min_length=1, max_length=TEXT_CHARS)
    audience: str = Field(min_length=1, max_length=TEXT_CHARS)
    level: Level
    years: tuple[str, ...]
    cohort: CohortSpec | None = None  # None: the whole district
    measures: tuple[str, ...] = ()
    breakdowns: tuple[str, ...] = ()
    # Breakdowns to publish in the policy's coarser bands (grade: K-5, 6-8, 9-12).
    bands: tuple[str, ...] = ()
    fields: tuple[StudentField, ...] = ()
    # De-identified requests: the fields the study needs most, most important first; where a
    # value must be withheld, the disclosure step gives up the fields not named here first.
    priority: tuple[StudentField, ...] = ()
    exception: ExceptionKind | None = None
    notes: str | None = Field(default=None, max_length=NOTE_CHARS)
    # The policy pack the request is decided under, by name (a pack in the district's policy
    # folder), written by the intake form; None: the district's configured policy
    # (workbench.settings). Never a path: whoever writes a request must not bring their own rules;
    # an analyst who needs a pack file gives it with --policy.
    policy: str | None = None

    _path: Path | None = PrivateAttr(default=None)

    @field_validator("id", mode="before")
    @classmethod
    def _fillable_id(cls, value: Any) -> Any:
        problem = request_id_problem(value)
        if problem:
            raise ValueError(f"{excerpt(value)} cannot be used: {problem}")
        return value

    @field_validator("policy", mode="before")
    @classmethod
    def _pack_name(cls, value: Any) -> Any:
        if value is not None and not (isinstance(value, str) and POLICY_NAME.fullmatch(value)):
            raise ValueError(f"{excerpt(value)} is not a policy pack name (such as dmps); a request names one of "
                             "the district's packs, never a file (an analyst can give a pack file with --policy)")
        return value

    @field_validator("received", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if not isinstance(value, date):
            text = str(value).strip()
            if not ISO_DATE.match(text):
                raise ValueError(f"must be a date written YYYY-MM-DD (got {excerpt(value)})")
            try:
                value = date.fromisoformat(text)
            except ValueError as exc:
                raise ValueError(f"{text} is not a real date ({exc})") from None
        return check_date_in_range(value)

    @field_validator("years", mode="before")
    @classmethod
    def _years_as_list(cls, value: Any) -> Any:
        value = [value] if isinstance(value, (str, int)) else value
        if isinstance(value, (list, tuple)):
            numbers = [excerpt(item) for item in value if not isinstance(item, str)]
            if numbers:
                raise ValueError(f"school years are written like 2025-2026; not {excerpt_list(numbers)}")
        return value

    @field_validator("years")
    @classmethod
    def _school_years(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one school year, e.g. 2025-2026")
        bad = []
        for year in value:
            match = SCHOOL_YEAR.match(year)
            if not match or int(match.group(2)) != int(match.group(1)) + 1:
                bad.append(excerpt(year))
        if bad:
            raise ValueError(f"school years are written like 2025-2026; not {excerpt_list(bad)}")
        if len(set(value)) != len(value):
            raise ValueError("a school year is listed twice")
        return value

    @field_validator("measures")
    @classmethod
    def _known_measures(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from workbench.measures import MEASURES

        unknown = [m for m in value if m not in MEASURES]
        if unknown:
            raise ValueError(f"unknown measure(s) {excerpt_list([excerpt(m) for m in unknown])}; "
                             f"choose from {', '.join(MEASURES)}")
        return value

    @field_validator("breakdowns", "bands")
    @classmethod
    def _known_breakdowns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from workbench.measures import BREAKDOWNS

        unknown = [b for b in value if b not in BREAKDOWNS]
        if unknown:
            raise ValueError(f"unknown breakdown(s) {excerpt_list([excerpt(b) for b in unknown])}; "
                             f"choose from {', '.join(BREAKDOWNS)}")
        return value

    @model_validator(mode="after")
    def _what_matches_level(self) -> "DataRequest":
        if self.level == "aggregate":
            if not self.measures:
                raise ValueError("measures: an aggregate request lists the measures it wants")
            if self.fields:
                raise ValueError("fields: an aggregate request asks for measures and breakdowns, not per-student fields")
        else:
            if not self.fields:
                raise ValueError(f"fields: a {self.level} request lists the per-student fields it wants")
            if self.measures or self.breakdowns:
                raise ValueError(f"measures/breakdowns: a {self.level} request asks for per-student fields instead")
        unbroken = [b for b in self.bands if b not in self.breakdowns]
        if unbroken:
            raise ValueError(f"bands: {', '.join(unbroken)} not among the breakdowns asked for")
        stray = [f for f in self.priority if f not in self.fields]
        if stray:
            raise ValueError(f"priority: {', '.join(stray)} not among the fields asked for")
        for name in ("measures", "breakdowns", "bands", "fields", "priority"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: an entry is listed twice")
        return self

    @property
    def is_student_level(self) -> bool:
        return self.level in STUDENT_LEVELS

    @property
    def path(self) -> Path | None:
        """The file the request was read from, if any."""
        return self._path

    def describe(self) -> str:
        """One line, free of student data, for logs and headings."""
        cohort = self.cohort.kind if self.cohort else "district"
        return (f"{self.id}: {self.requester.role} ({self.requester.organization or self.requester.name}) "
                f"asks for {self.level} data, {', '.join(self.years)}, cohort by {cohort}")


# --- reading the YAML ---------------------------------------------------------------------

_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}


def _mapping_child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _unquoted_numbers(root: yaml.Node, path: tuple[str, ...], loader: yaml.SafeLoader) -> list[str]:
    node: yaml.Node | None = root
    for key in path:
        node = _mapping_child(node, key)
    if not isinstance(node, yaml.SequenceNode):
        return []
    found = []
    for index, item in enumerate(node.value):
        if isinstance(item, yaml.ScalarNode) and item.tag in _NUMBER_TAGS and item.style is None:
            number = loader.construct_object(item)
            found.append(f"[{index}] {item.value} (read as {number})")
    return found


def _number_problems(root: yaml.Node, loader: yaml.SafeLoader) -> list[str]:
    problems = []
    for path in (("cohort", "student_ids"), ("requester", "student_ids")):
        entries = _unquoted_numbers(root, path, loader)
        if entries:
            problems.append(
                f"{'.'.join(path)}: IDs must be quoted strings; YAML reads unquoted digits as numbers and "
                f"drops leading zeros (or reads them as octal): {excerpt_list(entries)}. "
                'Write every ID in quotes, e.g. ["0041275", "0102938"]'
            )
    return problems


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{at}not valid YAML ({getattr(exc, 'problem', None) or type(exc).__name__})"


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        loader = safe_yaml.loader(text, dates_as_text=True)
    except yaml.YAMLError as exc:
        raise RequestError([_yaml_problem(exc)], where) from None
    try:
        root = loader.get_single_node()
        if root is None:
            raise RequestError(["the file is empty"], where)
        problems = _number_problems(root, loader)
        if problems:
            raise RequestError(problems, where)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise RequestError([_yaml_problem(exc)], where) from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise RequestError(["the file must be a mapping of fields (id:, received:, requester:, ...)"], where)
    return data


def check_date_in_range(value: date, field: str | None = None) -> date:
    """A date a request or an option gives: from 1970 to a year from today (9999-12-30 is a typo)."""
    latest = date.today() + timedelta(days=366)
    if not date(EARLIEST_RECEIVED_YEAR, 1, 1) <= value <= latest:
        prefix = f"{field}: " if field else ""
        raise ValueError(f"{prefix}{value.isoformat()} is not a plausible date (from {EARLIEST_RECEIVED_YEAR}-01-01 "
                         f"to {latest.isoformat()}, a year from today)")
    return value


def _load_id_file(data: dict[str, Any], base_dir: Path | None) -> list[str]:
    cohort = data.get("cohort")
    if not isinstance(cohort, dict) or not isinstance(cohort.get("student_ids"), str):
        return []
    name = cohort["student_ids"]
    path = Path(name)
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    if not path.is_file():
        return [f"cohort.student_ids: no ID file {name[:200]} (paths are relative to the request file)"]
    try:
        ids, kind = read_id_file(path, name)
    except IdFileError as exc:
        return [f"cohort.student_ids: {exc}"]
    if not ids:
        return [f"cohort.student_ids: {name} holds no IDs"]
    cohort["student_ids"] = ids
    cohort["student_ids_file"] = str(name)
    if kind != "auto" and "id_kind" not in cohort:
        cohort["id_kind"] = kind
    return []


def parse_request(data: dict[str, Any], base_dir: str | os.PathLike | None = None, where: str | None = None) -> DataRequest:
    """Validate request data (from YAML or a form). A file path for IDs is read relative to base_dir."""
    data = dict(data)
    if isinstance(data.get("cohort"), dict):
        data["cohort"] = dict(data["cohort"])
    problems = _load_id_file(data, Path(base_dir) if base_dir is not None else None)
    if problems:
        raise RequestError(problems, where)
    try:
        return DataRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_error(exc), where) from None


def load_request(path: str | os.PathLike) -> DataRequest:
    """Read and validate a request file. Raises RequestError with one line per mistake."""
    path = Path(path)
    where = str(path)
    try:
        text = safe_yaml.read_text(path, yaml_bytes(), "request file")
    except safe_yaml.FileReadError as exc:
        raise RequestError([str(exc).removeprefix(f"request file {path}: ")], where) from None
    request = parse_request(_read_yaml(text, where), base_dir=path.parent, where=where)
    request._path = path
    return request
