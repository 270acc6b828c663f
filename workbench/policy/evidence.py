"""What the warehouse says about a request: agreements on file, staff assignments, consents.

A request file may *claim* an NDA or a research approval; only what these lookups find counts.
Every check returns a `Check` whose message is safe to print: it names agreements, partners,
staff and dates, never a student.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from workbench.cohort import normalize_student_id
from workbench.policy.model import ConsentRule


@dataclass(frozen=True)
class Check:
    ok: bool
    message: str


def _as_date(value) -> date | None:
    """A warehouse date as a `date`, whatever the backend returned (date, Timestamp, NaT, None)."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, datetime):  # includes pandas Timestamp
        return value.date()
    if isinstance(value, date):
        return value
    return pd.Timestamp(value).date()


def _rows(expr) -> list[dict]:
    return expr.to_pandas().to_dict("records")


def _same_organization(a: str | None, b: str | None) -> bool:
    return bool(a and b) and " ".join(a.lower().split()) == " ".join(b.lower().split())


def school_year_label(day: date) -> str:
    """The school year a date falls in when no calendar says otherwise (years start in July)."""
    start = day.year if day.month >= 7 else day.year - 1
    return f"{start}-{start + 1}"


def current_school_year(con, as_of: date) -> str:
    """The school year `as_of` falls in: by the warehouse calendar, else by the July rule.

    Between two years (summer) the July rule decides, so on 1 August a teacher's "current year"
    is already the new one, in which they may have no sections on record yet. That is deliberate:
    access to last year's students ends with last year.
    """
    calendar = con.table("school_calendar")
    spans = calendar.group_by("school_year").aggregate(
        first=calendar.first_day.min(), last=calendar.last_day.max())
    containing = spans.filter((spans["first"] <= as_of) & (spans["last"] >= as_of)).to_pandas()
    if not containing.empty:
        return str(containing["school_year"].iloc[0])
    return school_year_label(as_of)


def year_start(con, years: Sequence[str]) -> date:
    """First school day of the earliest year asked (1 July of its first calendar year if unknown)."""
    earliest = min(years)
    calendar = con.table("school_calendar")
    found = calendar.filter(calendar.school_year == earliest).first_day.min().to_pandas()
    found = _as_date(found)
    return found or date(int(earliest[:4]), 7, 1)


# --- agreements ---------------------------------------------------------------------------

def partner_registration(con, partner_id: str | None, as_of: date) -> Check:
    if not partner_id:
        return Check(False, "the request names no partner ID; partners must be registered")
    partners = con.table("partners")
    rows = _rows(partners.filter(partners.partner_id == partner_id))
    if not rows:
        return Check(False, f"partner {partner_id} is not registered with the district")
    row = rows[0]
    status = row["registration_status"]
    registered, expires = _as_date(row["registered_on"]), _as_date(row["registration_expires"])
    if status != "registered":
        return Check(False, f"partner {partner_id}'s registration is {status}, not complete")
    if registered and registered > as_of:
        return Check(False, f"partner {partner_id} is registered only from {registered}")
    if expires and expires < as_of:
        return Check(False, f"partner {partner_id}'s registration expired on {expires}")
    until = f" until {expires}" if expires else ""
    return Check(True, f"partner {partner_id} is registered{until}")


def _current(signed: date | None, expires: date | None, as_of: date) -> str | None:
    """Why an agreement is not current on `as_of`, or None when it is."""
    if signed is None:
        return "has no signing date"
    if signed > as_of:
        return f"is signed only from {signed}"
    if expires is not None and expires < as_of:
        return f"expired on {expires}"
    return None


def nda(con, *, nda_id: str | None, partner_id: str | None, organization: str | None, as_of: date) -> Check:
    """A current NDA held by the requester: the one named, else any the requester holds."""
    ndas = con.table("ndas")
    problem_with_named = None
    if nda_id:
        rows = _rows(ndas.filter(ndas.nda_id == nda_id))
        if not rows:
            problem_with_named = f"{nda_id} is not on file"
        else:
            row = rows[0]
            if partner_id and row["partner_id"] != partner_id:
                problem_with_named = f"{nda_id} is held by another party, not partner {partner_id}"
            elif not partner_id and not _same_organization(row["organization"], organization):
                problem_with_named = f"{nda_id} is held by another organization"
            else:
                why = _current(_as_date(row["signed_on"]), _as_date(row["expires_on"]), as_of)
                if why is None:
                    return Check(True, f"{nda_id} is current until {_as_date(row['expires_on'])}")
                problem_with_named = f"{nda_id} {why}"
    if partner_id:
        held = _rows(ndas.filter(ndas.partner_id == partner_id))
        holder = f"partner {partner_id}"
    elif organization:
        held = [r for r in _rows(ndas.filter(ndas.partner_id.isnull())) if _same_organization(r["organization"], organization)]
        holder = "the requesting organization"
    else:
        held, holder = [], "the requester"
    for row in sorted(held, key=lambda r: _as_date(r["signed_on"]) or date.min, reverse=True):
        if _current(_as_date(row["signed_on"]), _as_date(row["expires_on"]), as_of) is None:
            note = f" ({problem_with_named})" if problem_with_named else ""
            return Check(True, f"{row['nda_id']} held by {holder} is current until {_as_date(row['expires_on'])}{note}")
    if problem_with_named:
        return Check(False, f"no current NDA: {problem_with_named}, and {holder} holds no other current NDA")
    return Check(False, f"no current NDA on file for {holder}")


def research_approval(con, *, approval_id: str | None, organization: str | None, as_of: date) -> Check:
    approvals = con.table("research_approvals")
    if approval_id:
        rows = _rows(approvals.filter(approvals.approval_id == approval_id))
    elif organization:
        rows = [r for r in _rows(approvals) if _same_organization(r["organization"], organization)]
    else:
        return Check(False, "the request names no research approval and no organization to look one up by")
    if not rows:
        what = approval_id or "an approval for the requesting organization"
        return Check(False, f"no research approval on file ({what})")
    problems = []
    for row in rows:
        label = row["approval_id"]
        if approval_id and organization and not _same_organization(row["organization"], organization):
            problems.append(f"{label} is held by another organization")
            continue
        if row["status"] != "approved":
            problems.append(f"{label} is {row['status']}, not approved")
            continue
        why = _current(_as_date(row["approved_on"]), _as_date(row["expires_on"]), as_of)
        if why is None:
            return Check(True, f"research approval {label} is approved and current until {_as_date(row['expires_on'])}")
        problems.append(f"{label} {why.replace('is signed', 'is approved')}")
    return Check(False, "no approved, current research proposal: " + "; ".join(problems))


def staff_assignment(con, *, staff_id: str | None, school_id: str | None, staff_role: str, year: str) -> Check:
    if not staff_id:
        return Check(False, f"the request gives no staff ID to confirm a {staff_role} assignment")
    assignments = con.table("staff_assignments")
    rows = _rows(assignments.filter(
        (assignments.staff_id == staff_id) & (assignments.school_year == year) & (assignments.role == staff_role)
    ))
    if school_id:
        at_school = [r for r in rows if r["school_id"] == school_id]
        if not at_school:
            return Check(False, f"staff {staff_id} is not a {staff_role} at school {school_id} in {year}")
        return Check(True, f"staff {staff_id} is a {staff_role} at school {school_id} in {year}")
    if not rows:
        return Check(False, f"staff {staff_id} has no {staff_role} assignment in {year}")
    return Check(True, f"staff {staff_id} is a {staff_role} in {year}")


# --- students -----------------------------------------------------------------------------

def district_ids(con, ids: Iterable[str]) -> set[str]:
    """District IDs for a list of district or state IDs (unknown ones dropped)."""
    district, state = [], []
    for raw in ids:
        normalized = normalize_student_id(raw)
        if normalized.value is None:
            continue
        (district if normalized.kind == "district" else state).append(normalized.value)
    students = con.table("students")
    found = set()
    if district:
        found |= set(students.filter(students.student_id.isin(district)).student_id.to_pandas())
    if state:
        found |= set(students.filter(students.state_id.isin(state)).student_id.to_pandas())
    return found


def enrolled_students(con, years: Sequence[str]) -> list[str]:
    student_years = con.table("student_years")
    chosen = student_years.filter(student_years.school_year.isin(list(years))).select("student_id").distinct()
    return sorted(chosen.to_pandas()["student_id"])


def school_students(con, school_id: str, year: str) -> set[str]:
    """Students enrolled at the school at any time in the year."""
    enrollments = con.table("enrollments")
    rows = enrollments.filter((enrollments.school_id == school_id) & (enrollments.school_year == year))
    return set(rows.select("student_id").distinct().to_pandas()["student_id"])


def section_students(con, staff_id: str, year: str) -> set[str]:
    """Students in the sections the teacher teaches in the year."""
    sections = con.table("sections")
    taught = sections.filter((sections.staff_id == staff_id) & (sections.school_year == year)).select("section_id")
    members = con.table("section_students")
    return set(members.join(taught, "section_id").select("student_id").distinct().to_pandas()["student_id"])


def partner_program_students(con, partner_id: str, since: date, as_of: date) -> set[str]:
    """Students tagged to any of the partner's programs at some time between `since` and `as_of`."""
    programs = con.table("programs").filter(lambda t: t.partner_id == partner_id).select("program_id")
    tags = con.table("program_students")
    active = tags.filter((tags.added_on <= as_of) & (tags.dropped_on.isnull() | (tags.dropped_on > since)))
    return set(active.join(programs, "program_id").select("student_id").distinct().to_pandas()["student_id"])


def directory_opt_outs(con, student_ids: Sequence[str], years: Sequence[str]) -> set[str]:
    opt_outs = con.table("directory_opt_outs")
    chosen = opt_outs.filter(opt_outs.student_id.isin(list(student_ids)) & opt_outs.school_year.isin(list(years)))
    return set(chosen.select("student_id").distinct().to_pandas()["student_id"])


def _consent_problem(row: dict, as_of: date, rule: ConsentRule) -> str | None:
    signed, expires, revoked = _as_date(row["signed_on"]), _as_date(row["expires_on"]), _as_date(row["revoked_on"])
    if signed is None or signed > as_of:
        return "the consent on file is not yet signed"
    if revoked is not None and revoked <= as_of:
        return f"the consent was revoked on {revoked}"
    if expires is not None and expires < as_of:
        return f"the consent expired on {expires}"
    if row["channel"] not in rule.channels:
        return f"the consent was given on a {row['channel']} form; only {' or '.join(rule.channels)} forms are accepted"
    if rule.max_age_days is not None and (as_of - signed).days > rule.max_age_days:
        return f"the consent was signed {(as_of - signed).days} days ago; at most {rule.max_age_days} days are honored"
    return None


def consent_status(con, student_ids: Sequence[str], partner_id: str | None, as_of: date, rule: ConsentRule) -> dict[str, str | None]:
    """For each student: None when a valid consent for this partner is on file, else why not."""
    if not partner_id:
        return {sid: "consents are given to a partner; the requester is not one" for sid in student_ids}
    consents = con.table("consents")
    frame = consents.filter(consents.partner_id == partner_id).to_pandas()
    wanted = set(student_ids)
    frame = frame[frame["student_id"].isin(wanted)]
    status: dict[str, str | None] = {sid: f"no consent for partner {partner_id} on file" for sid in student_ids}
    latest_problem: dict[str, tuple[date, str]] = {}
    for row in frame.to_dict("records"):
        sid = row["student_id"]
        if status.get(sid) is None and sid in latest_problem:
            continue
        problem = _consent_problem(row, as_of, rule)
        if problem is None:
            status[sid] = None
            latest_problem[sid] = (date.max, "")
            continue
        signed = _as_date(row["signed_on"]) or date.min
        if sid not in latest_problem or signed > latest_problem[sid][0]:
            latest_problem[sid] = (signed, problem)
            status[sid] = problem
    return status
