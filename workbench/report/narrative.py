"""Prose for reports and letters, written from the request and its decision (never from rows)."""

from __future__ import annotations

from workbench.decision import Decision, citation
from workbench.request import DataRequest

ROLE_NAMES = {
    "community_partner": "community partner", "researcher": "researcher", "school_leader": "school leader",
    "teacher": "teacher", "district_staff": "district staff", "state_agency": "state agency",
    "external_agency": "outside agency", "media": "media", "public_records": "public records requester",
    "parent": "parent or guardian", "public": "member of the public", "service_provider": "service provider",
}


def _source(reason: dict) -> str:
    return citation(reason.get("source"))


def request_summary(request: DataRequest, decision: Decision, policy_title: str, cohort_text: str) -> str:
    requester = request.requester
    who = requester.organization or requester.name
    lines = [
        f"**Request {request.id}**, received {request.received.isoformat()}, from {who} "
        f"({ROLE_NAMES.get(requester.role, requester.role)}).",
        "",
        f"- **Purpose:** {request.purpose}",
        f"- **Audience:** {request.audience}",
        f"- **School years:** {', '.join(request.years)}",
        f"- **Students covered:** {cohort_text}",
        f"- **Policy:** {policy_title}",
        f"- **Decision:** {decision.outcome} at the {decision.level or 'no'} level "
        f"(asked: {decision.requested_level}), as of {decision.as_of.isoformat()}",
    ]
    if decision.due_date:
        lines.append(f"- **Due:** {decision.due_date.isoformat()}")
    return "\n".join(lines)


def decision_reasons(decision: Decision, effects: tuple[str, ...] = ("refuse", "redirect", "limit", "condition")) -> str:
    """The reasons that shaped the decision, each with the rule and document it comes from."""
    rows = [r for r in decision.to_dict()["reasons"] if r.get("effect") in effects]
    if not rows:
        return "No limits apply beyond the small-group rule."
    return "\n".join(f"- {r['message']}" + (f" *({_source(r)})*" if _source(r) else "") for r in rows)


def decision_letter(request: DataRequest, decision: Decision, policy_title: str) -> str:
    """The letter sent instead of data when a request is refused or redirected."""
    data = decision.to_dict()
    office = data.get("office") or {}
    lines = [
        f"# Decision on data request {request.id}",
        "",
        f"To: {request.requester.name}" + (f", {request.requester.organization}" if request.requester.organization else ""),
        f"Received: {request.received.isoformat()}  ",
        f"Decided: {decision.as_of.isoformat()} under {policy_title}",
        "",
        f"Request: {request.purpose}",
        "",
    ]
    if decision.outcome == "redirect" and decision.redirect_to:
        target = decision.redirect_to
        contact = ", ".join(str(target[k]) for k in ("to", "contact", "url") if target.get(k))
        lines += [
            "## Where to send this request",
            "",
            f"This district does not answer requests of this kind through its data office. Please send it to: **{contact}**.",
            "",
        ]
    else:
        lines += ["## We cannot fill this request as submitted", ""]
    lines += ["## Why", "", decision_reasons(decision, ("refuse", "redirect")), ""]
    conditions = data.get("conditions") or []
    if conditions:
        lines += ["## What would let us proceed", "", *[f"- {c}" for c in conditions], ""]
    public = data.get("public_data") or []
    if public:
        lines += ["## Published data you may find useful first", ""]
        lines += [f"- {item.get('name', item) if isinstance(item, dict) else item}" for item in public]
        lines.append("")
    if office:
        lines += ["## Contact", "", ", ".join(str(office[k]) for k in ("name", "contact") if office.get(k)), ""]
    return "\n".join(lines)
