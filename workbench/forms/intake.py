"""The intake form's logic, without widgets: form values -> request data -> problems or decision.

Everything here is plain Python so it is tested without Jupyter:

* `FormValues` holds what the analyst typed; `request_data` turns it into the dict
  `workbench.request.parse_request` takes (the same shape as a request YAML file).
* `check_request` validates it; a `RequestError` becomes problems grouped by form field
  (`problems_by_field`), so the form shows each mistake next to the field that caused it.
* `decision_view` / `decision_html` summarise a `Decision` (outcome, level, reasons, due dates).
* `save_request` writes the request YAML (and its ID file) without ever overwriting a file,
  reads it back through `load_request`, and registers it with its decision.

Nothing here prints a student's data: requests hold student IDs only, and the HTML shows counts.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields as dataclass_fields
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from workbench import safe_yaml
from workbench.decision import citation
from workbench.request import DataRequest, RequestError, load_request, parse_request
from workbench.errors import InputError

# Form field keys, in the order the form shows them, with their labels.
FIELD_LABELS: dict[str, str] = {
    "request_id": "Request ID",
    "received": "Received",
    "name": "Requester name",
    "role": "Role",
    "organization": "Organization",
    "email": "E-mail",
    "partner_id": "Partner ID",
    "purpose": "Purpose / use",
    "audience": "Audience",
    "level": "Data level",
    "years": "School years",
    "measures": "Measures",
    "breakdowns": "Breakdowns",
    "fields": "Fields",
    "nda_id": "NDA ID",
    "research_approval_id": "Research approval ID",
    "staff_school_id": "Staff school ID",
    "staff_id": "Staff ID",
    "exception": "FERPA exception",
    "notes": "Notes",
    "cohort": "Cohort",
}
GENERAL = "general"  # problems that belong to no single field

_REQUESTER_KEYS = ("name", "organization", "email", "partner_id", "nda_id", "research_approval_id",
                   "staff_school_id", "staff_id")
_LOCATION_TO_FIELD = {"id": "request_id", "requester": GENERAL, "requester.role": "role",
                      "requester.student_ids": "cohort"}
_LOCATION_TO_FIELD.update({f"requester.{key}": key for key in _REQUESTER_KEYS})
_FILE_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class FormError(InputError):
    """The form cannot do what was asked (save over a file, register a known ID)."""


@dataclass
class FormValues:
    """What the analyst typed. Empty text and empty selections mean "not given"."""

    request_id: str = ""
    received: date | str | None = None
    name: str = ""
    role: str | None = None
    organization: str = ""
    email: str = ""
    partner_id: str = ""
    purpose: str = ""
    audience: str = ""
    level: str | None = None
    years: Sequence[str] = ()
    measures: Sequence[str] = ()
    breakdowns: Sequence[str] = ()
    fields: Sequence[str] = ()
    nda_id: str = ""
    research_approval_id: str = ""
    staff_school_id: str = ""
    staff_id: str = ""
    exception: str | None = None
    notes: str = ""

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "FormValues":
        known = {f.name for f in dataclass_fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def request_data(values: FormValues, cohort: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request as a dict in the request-file format (docs/requests.md).

    Only the part that fits the level is kept: measures and breakdowns for an aggregate
    request, fields for a student-level one, so switching the level back and forth does not
    leave the request contradicting itself. `cohort` is a cohort spec (see
    `workbench.forms.cohort_logic.CohortChoice.spec`); a parent's request takes its IDs as the
    parent's own children.
    """
    requester: dict[str, Any] = {}
    for key in _REQUESTER_KEYS:
        text = _text(getattr(values, key))
        if text is not None:
            requester[key] = text
    if values.role:
        requester["role"] = values.role
    if values.role == "parent" and cohort and isinstance(cohort.get("student_ids"), (list, tuple)):
        requester["student_ids"] = list(cohort["student_ids"])

    data: dict[str, Any] = {}
    if _text(values.request_id):
        data["id"] = _text(values.request_id)
    received = values.received
    if isinstance(received, (date, datetime)):
        data["received"] = received.isoformat()[:10]
    elif _text(received):
        data["received"] = _text(received)
    data["requester"] = requester
    for key in ("purpose", "audience"):
        if _text(getattr(values, key)):
            data[key] = _text(getattr(values, key))
    if values.level:
        data["level"] = values.level
    data["years"] = list(values.years)
    if cohort:
        data["cohort"] = dict(cohort)
    if values.level == "aggregate":
        if values.measures:
            data["measures"] = list(values.measures)
        if values.breakdowns:
            data["breakdowns"] = list(values.breakdowns)
    elif values.level and values.fields:
        data["fields"] = list(values.fields)
    if values.exception:
        data["exception"] = values.exception
    if _text(values.notes):
        data["notes"] = _text(values.notes)
    return data


def _field_of(location: str, message: str) -> tuple[str, str]:
    """The form field a problem's location points at, and the message to show there."""
    location = re.sub(r"\[\d+\]", "", location)
    target = _LOCATION_TO_FIELD.get(location)
    if target is None:
        target = location.split(".", 1)[0]
        target = "request_id" if target == "id" else target
    # Model-level checks name the field at the start of the message: "staff_id: a teacher's ...".
    inner = re.match(r"^([a-z_]+)(?:/[a-z_]+)*: (.*)$", message, re.S)
    if inner and target in (GENERAL, "requester", "") and (
            inner.group(1) in FIELD_LABELS or f"requester.{inner.group(1)}" in _LOCATION_TO_FIELD):
        target = _LOCATION_TO_FIELD.get(f"requester.{inner.group(1)}", inner.group(1))
        message = inner.group(2)
    if target not in FIELD_LABELS:
        target = GENERAL
    return target, message


def problems_by_field(problems: Sequence[str]) -> dict[str, list[str]]:
    """Problems of a RequestError grouped by form field key (`GENERAL` for the rest)."""
    grouped: dict[str, list[str]] = {}
    for problem in problems:
        match = re.match(r"^([A-Za-z_][\w.\[\]]*): (.*)$", problem, re.S)
        location, message = (match.group(1), match.group(2)) if match else ("", problem)
        if not match:
            inner_target, message = _field_of("", problem)
            grouped.setdefault(inner_target, []).append(message)
            continue
        target, message = _field_of(location, message)
        grouped.setdefault(target, []).append(message)
    return grouped


@dataclass
class Checked:
    """A request that parsed, or the problems found in it (grouped by field)."""

    request: DataRequest | None
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.request is not None


def check_request(data: dict[str, Any], base_dir: str | Path | None = None) -> Checked:
    """Validate request data; never raises for a request that is merely incomplete."""
    try:
        return Checked(parse_request(data, base_dir=base_dir))
    except RequestError as exc:
        return Checked(None, problems_by_field(exc.problems))


# -- the decision, for people ---------------------------------------------------------------

OUTCOME_WORDS = {
    "approve": "Approve",
    "partial": "Approve in part",
    "refuse": "Refuse",
    "redirect": "Redirect",
}
_EFFECT_ORDER = ("refuse", "redirect", "limit", "condition", "info")


def decision_view(decision) -> dict[str, Any]:
    """What the form shows of a decision: no student IDs, counts only."""
    reasons = sorted(decision.reasons, key=lambda r: _EFFECT_ORDER.index(r.effect) if r.effect in _EFFECT_ORDER else 9)
    fee = decision.fee_estimate
    return {
        "request_id": decision.request_id,
        "policy": decision.policy,
        "as_of": decision.as_of.isoformat(),
        "outcome": decision.outcome,
        "outcome_text": OUTCOME_WORDS.get(decision.outcome, decision.outcome),
        "level": decision.level,
        "requested_level": decision.requested_level,
        "due_date": decision.due_date.isoformat() if decision.due_date else None,
        "clarify_by": decision.clarify_by.isoformat() if decision.clarify_by else None,
        "fee": None if fee is None else f"{fee['amount']:.2f} {fee['currency']}" + (" (waived)" if fee.get("waived") else ""),
        "students": dict(decision.cohort.get("by_level", {})),
        "unmatched": decision.cohort.get("unmatched", 0),
        "withheld_fields": sorted({w["field"] for w in decision.withheld_fields}),
        "redirect_to": (decision.redirect_to or {}).get("to"),
        "reasons": [{"effect": r.effect, "rule": r.rule, "message": r.message, "source": citation(r.source) or r.rule}
                    for r in reasons],
    }


_OUTCOME_COLOURS = {"approve": "#1b7f3b", "partial": "#9a6700", "refuse": "#b42318", "redirect": "#3a5ccc"}


def decision_html(decision) -> str:
    view = decision_view(decision)
    e = html.escape
    colour = _OUTCOME_COLOURS.get(view["outcome"], "#444")
    rows = [
        ("Level", f"{view['level'] or 'nothing'} (asked: {view['requested_level']})"),
        ("Due", view["due_date"] or "no turnaround set"),
        ("Clarify by", view["clarify_by"] or "-"),
    ]
    if view["fee"]:
        rows.append(("Fee estimate", view["fee"]))
    if view["students"]:
        rows.append(("Students by level", ", ".join(f"{n} {lvl}" for lvl, n in sorted(view["students"].items()))))
    if view["unmatched"]:
        rows.append(("IDs not matched", str(view["unmatched"])))
    if view["withheld_fields"]:
        rows.append(("Fields withheld", ", ".join(view["withheld_fields"])))
    if view["redirect_to"]:
        rows.append(("Send to", view["redirect_to"]))
    table = "".join(f"<tr><th style='text-align:left;padding-right:1em'>{e(k)}</th>"
                    f"<td class='wb-{e(k.lower().replace(' ', '-'))}'>{e(v)}</td></tr>" for k, v in rows)
    items = "".join(f"<li class='wb-reason wb-effect-{e(r['effect'])}'><b>{e(r['effect'])}</b> "
                    f"{e(r['message'])} <span style='color:#595959'>({e(r['source'])})</span></li>"
                    for r in view["reasons"])
    return (f"<div class='wb-decision' data-outcome='{e(view['outcome'])}'>"
            f"<div class='wb-outcome' style='font-size:1.3em;font-weight:bold;color:{colour}'>"
            f"{e(view['outcome_text'])}</div>"
            f"<div style='color:#555'>under {e(view['policy'])}, as of {e(view['as_of'])}</div>"
            f"<table>{table}</table><details open><summary>Reasons ({len(view['reasons'])})</summary>"
            f"<ul>{items}</ul></details></div>")


def problems_html(problems: dict[str, list[str]]) -> str:
    """The problems in place of a decision, field by field."""
    e = html.escape
    order = list(FIELD_LABELS) + [GENERAL]
    items = []
    for key in sorted(problems, key=lambda k: order.index(k) if k in order else len(order)):
        label = FIELD_LABELS.get(key, "Request")
        for message in problems[key]:
            items.append(f"<li class='wb-problem' data-field='{e(key)}'><b>{e(label)}</b>: {e(message)}</li>")
    return ("<div class='wb-problems'><div style='font-weight:bold'>Not complete yet: no decision until "
            f"these are fixed</div><ul>{''.join(items)}</ul></div>")


# -- saving -------------------------------------------------------------------------------

@dataclass
class Saved:
    path: Path
    id_file: Path | None
    request: DataRequest
    decision: Any | None


_KEY_ORDER = ("id", "received", "requester", "purpose", "audience", "level", "years", "cohort", "measures",
              "breakdowns", "fields", "exception", "notes", "policy")
_REQUESTER_ORDER = ("name", "organization", "email", "role", "partner_id", "nda_id", "research_approval_id",
                    "staff_school_id", "staff_id", "student_ids")


def _ordered(data: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    return {**{k: data[k] for k in order if k in data}, **{k: v for k, v in data.items() if k not in order}}


def _dump(data: dict[str, Any]) -> str:
    data = _ordered(data, _KEY_ORDER)
    if isinstance(data.get("requester"), dict):
        data["requester"] = _ordered(data["requester"], _REQUESTER_ORDER)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = f"# Written by the workbench intake form on {stamp}. Format: docs/requests.md\n"
    return header + safe_yaml.dump(data, sort_keys=False, allow_unicode=True, width=100)


def _write_new(path: Path, text: str) -> None:
    with path.open("x", encoding="utf-8", newline="") as handle:  # "x": fails if the file exists
        handle.write(text)


def id_file_text(ids: Sequence[str], id_kind: str = "auto") -> str:
    """A one-column CSV of IDs, written as text so leading zeros survive."""
    header = "state_id" if id_kind == "state" else "student_id"
    return "\n".join([header, *ids]) + "\n"


def save_request(
    data: dict[str, Any],
    folder: str | Path,
    *,
    ids: Sequence[str] | None = None,
    id_kind: str = "auto",
    register=None,
    policy=None,
    warehouse=None,
    as_of: date | None = None,
    by: str | None = None,
) -> Saved:
    """Write `data` as `<folder>/<id>.yml` and register it; never overwrites anything.

    With `ids`, the cohort goes to `<id>.ids.csv` next to the request and the request's
    `cohort.student_ids` names that file. The written file is read back with `load_request`, so
    what is registered is exactly what the file says. With a `policy`, the decision on the
    saved request is recorded in the register too. Raises RequestError (invalid request) or
    FormError (a file or register entry already exists).
    """
    folder = Path(folder)
    data = dict(data)
    if policy is not None:
        # The request is decided, registered and later filled under this pack.
        data["policy"] = policy.name
    if ids is not None:
        data["cohort"] = {"student_ids": list(ids), **({"id_kind": id_kind} if id_kind != "auto" else {})}
    checked = check_request(data)
    if not checked.ok:
        raise RequestError([f"{FIELD_LABELS.get(k, 'request')}: {m}" for k, ms in checked.problems.items() for m in ms])
    request_id = checked.request.id
    if not _FILE_SAFE_ID.match(request_id):
        raise FormError(f"request ID {request_id!r} names the file: use letters, digits, '-', '_' or '.'")
    path = folder / f"{request_id}.yml"
    id_path = folder / f"{request_id}.ids.csv" if ids is not None else None
    for existing in (path, id_path):
        if existing is not None and existing.exists():
            raise FormError(f"{existing} already exists; it is not overwritten (choose another request ID or folder)")
    if register is not None:
        from workbench.register import RegisterError

        try:
            register.status(request_id)
        except RegisterError:
            pass
        else:
            raise FormError(f"request {request_id} is already in the register; choose another request ID")

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    registered = False
    try:
        if id_path is not None:
            _write_new(id_path, id_file_text(ids, id_kind))
            written.append(id_path)
            data["cohort"] = {"student_ids": id_path.name, **({"id_kind": id_kind} if id_kind != "auto" else {})}
        _write_new(path, _dump(data))
        written.append(path)
        request = load_request(path)
        decision = None
        if policy is not None:
            from workbench.decision import decide

            decision = decide(request, policy, warehouse, as_of=as_of)
        if register is not None:
            register.register(request, by=by, note="saved from the intake form")
            registered = True
            if decision is not None:
                register.record_decision(decision, by=by)
    except FileExistsError as exc:
        for done in written:
            done.unlink(missing_ok=True)
        raise FormError(f"{exc.filename} already exists; it is not overwritten") from None
    except BaseException:
        if not registered:  # a registered request keeps the file it was registered from
            for done in written:
                done.unlink(missing_ok=True)
        raise
    return Saved(path, id_path, request, decision)
