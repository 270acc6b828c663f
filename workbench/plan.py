"""The release plan: everything a release may hold, decided once, before any data is touched.

    plan = make_plan(request, policy, con, as_of)
    plan.template                 # the template that answers it ("partner_aggregate", ...)
    plan.students("2025-2026")    # the exact students the release may cover that year
    plan.save(path)               # private: it holds student IDs; never part of a release

`decide` makes the decision; the plan adds what follows from it (the template, the settings in
force) and is the only thing `fill`, the templates, the release check and the manifest read.
None of them resolves the cohort again or decides anything of their own, so what the manifest says
was granted and what the files hold cannot drift apart.

The plan file holds student IDs, so it lives outside the release folder (a private scratch folder
during a fill) and the manifest gets `summary()`: counts, fields, years and sources, no IDs.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from workbench.decision import EXCLUDED, Decision, decide
from workbench.errors import InputError
from workbench.policy import Policy, load_policy
from workbench.request import DataRequest

PLAN_FORMAT = 1
# Which per-student levels each release level writes rows for.
ROW_LEVELS = {
    "identified": frozenset({"identified"}),
    "deidentified": frozenset({"identified", "deidentified"}),
    "directory": frozenset({"directory", "identified"}),
    "aggregate": frozenset({"aggregate", "identified", "deidentified", "directory"}),
}


class PlanError(InputError):
    """A plan file that cannot be read, or that does not match the request or policy it names."""


def template_name(request: DataRequest, decision: Decision) -> str | None:
    """The template that answers the request at the level it was granted (None: a letter)."""
    level = decision.level
    if decision.outcome in ("refuse", "redirect") or level is None:
        return None
    if level == "aggregate":
        school_audience = request.requester.role in ("school_leader", "teacher")
        school_cohort = request.cohort is not None and request.cohort.kind == "school"
        return "school_report" if school_audience or school_cohort else "partner_aggregate"
    return {"deidentified": "deidentified_extract", "identified": "identified_roster",
            "directory": "directory_list"}[level]


@dataclass
class ReleasePlan:
    request: DataRequest
    decision: Decision
    policy_name: str
    policy_path: str
    policy_hash: str
    template: str | None
    settings: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from

    # -- what the release may hold --------------------------------------------------------
    @property
    def level(self) -> str | None:
        return self.decision.level

    @property
    def years(self) -> list[str]:
        return list(self.decision.years)

    @property
    def releasable(self) -> bool:
        return self.template is not None

    @property
    def table_breakdowns(self) -> list[str]:
        """The granted breakdowns a table is split by (a program is reported as its own cohort)."""
        return [b for b in self.decision.breakdowns if b != "program"]

    def students(self, year: str, levels: frozenset[str] | set[str] | None = None) -> list[str]:
        """The students the release may cover in `year`, at one of `levels` (default: any)."""
        if year not in self.decision.population:
            raise PlanError(f"{year} is not a school year of this release (years: {', '.join(self.years) or 'none'})")
        return self.decision.students_in(year, levels)

    def row_students(self, year: str) -> list[str]:
        """The students whose rows a student-level file for `year` may hold at the granted level."""
        return self.students(year, ROW_LEVELS.get(self.level or "", frozenset()))

    def all_students(self) -> list[str]:
        return sorted({sid for members in self.decision.population.values() for sid in members})

    def counts(self) -> dict[str, dict[str, int]]:
        """Students per year and level: what the manifest records."""
        out: dict[str, dict[str, int]] = {}
        for year, members in self.decision.population.items():
            tally: dict[str, int] = {}
            for level in members.values():
                tally[level] = tally.get(level, 0) + 1
            out[year] = dict(sorted(tally.items()))
        return out

    @property
    def bands(self) -> list[str]:
        """Granted breakdowns the release publishes in the policy's bands."""
        return [b for b in self.request.bands if b in self.decision.breakdowns]

    def summary(self) -> dict[str, Any]:
        """The plan without student IDs, for the manifest and the dashboard."""
        return {
            "template": self.template,
            "level": self.level,
            "years": self.years,
            "measures": list(self.decision.measures),
            "breakdowns": list(self.decision.breakdowns),
            "bands": self.bands,
            "fields": list(self.decision.fields),
            "cohort": {"kind": self.decision.cohort.get("kind"), "source": self.decision.cohort.get("source")},
            "students_by_year": self.counts(),
            "policy": {"name": self.policy_name, "content_hash": self.policy_hash},
            "settings": dict(self.settings),
        }

    # -- the private file -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "request": json.loads(self.request.model_dump_json()),
            "decision": self.decision.to_dict(),
            "population": self.decision.population,
            "policy": {"name": self.policy_name, "path": self.policy_path, "content_hash": self.policy_hash},
            "template": self.template,
            "settings": self.settings,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the plan readable by its owner only: it names students."""
        path = Path(path)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(self.to_dict(), handle, sort_keys=True)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ReleasePlan":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PlanError(f"plan {path}: cannot read it: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise PlanError(f"plan {path}: not a plan file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            raise PlanError(f"plan {path}: not a plan file of format {PLAN_FORMAT}")
        try:
            request = DataRequest.model_validate(data["request"])
            decision = Decision.from_dict(data["decision"], data["population"])
            policy = data["policy"]
            return cls(request, decision, policy["name"], policy["path"], policy["content_hash"],
                       data["template"], dict(data.get("settings") or {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"plan {path}: incomplete or damaged ({type(exc).__name__}: {exc})") from None

    def policy(self) -> Policy:
        """The policy the plan was decided under; refuses one whose rules have changed since."""
        policy = load_policy(self.policy_path)
        if policy.content_hash != self.policy_hash:
            raise PlanError(f"the policy {self.policy_name} ({self.policy_path}) changed after the request was "
                            "decided; decide it again")
        return policy


def policy_for(request: DataRequest, option: str | Policy | None = None) -> tuple[Policy, str]:
    """The policy a request is decided under, and where that came from: an explicit option, else
    the pack the request file names, else the district's configured policy."""
    from workbench.settings import resolve

    if isinstance(option, Policy):
        return option, "option"
    if option:
        return load_policy(option), "option"
    if request.policy:
        return load_policy(request.policy), "request file"
    setting = resolve("policy")
    return load_policy(setting.value), setting.source


def make_plan(request: DataRequest, policy: Policy, warehouse=None, as_of: date | None = None,
              settings: dict[str, str] | None = None, ledger=None) -> ReleasePlan:
    """Decide the request and fix everything its release may hold.

    With a `ledger` (workbench.ledger.Ledger), the plan is also compared with every release its
    recipient already holds: a school year whose groups would differ by a few students from groups
    already released is left out (or the request refused, as the pack says), with the reason.
    """
    from workbench.warehouse import connect

    con = warehouse if warehouse is not None and hasattr(warehouse, "table") else connect(warehouse)
    without = [b for b in request.bands if not policy.bands(b)]
    if without:
        raise PlanError(f"bands: policy {policy.name} has no bands for {', '.join(without)}")
    decision = decide(request, policy, con, as_of)
    plan = ReleasePlan(
        request=request,
        decision=decision,
        policy_name=policy.name,
        policy_path=str(Path(policy.path).resolve()),
        policy_hash=policy.content_hash,
        template=template_name(request, decision),
        settings=dict(settings or {}),
    )
    if ledger is not None and plan.releasable:
        conflicts = ledger.conflicts(plan, con, policy.small_group_rule())
        if conflicts:
            apply_conflicts(plan, conflicts, policy)
    return plan


def apply_conflicts(plan: ReleasePlan, conflicts, policy: Policy) -> None:
    """Leave out every school year with a differencing conflict (or refuse, if the pack says so)."""
    from workbench.decision import Reason

    decision = plan.decision
    rule = policy.pack.small_groups
    source = rule.source.as_dict() if rule.source is not None else None
    if source and source.get("file") in policy.pack.documents:
        source["document"] = policy.pack.documents[source["file"]]
    refuse_all = rule.differences == "refuse"
    for conflict in conflicts:
        decision.reasons.append(Reason("small_groups.differences", conflict.describe(), source, "limit"))
    affected = sorted({c.school_year for c in conflicts})
    kept = [] if refuse_all else [y for y in decision.years if y not in affected]
    what = "the request is refused" if refuse_all else f"left out: {', '.join(affected)}"
    earlier = ", ".join(sorted({c.earlier_release for c in conflicts}))
    decision.reasons.append(Reason(
        "small_groups.differences",
        f"comparing this release with the ones its recipient already holds ({earlier}) would single out a few "
        f"students; {what}", source, "refuse" if not kept else "limit"))
    decision.years = kept
    decision.population = {year: decision.population[year] for year in kept}
    decision.cohort["by_year"] = {year: len(decision.population[year]) for year in kept}
    if not kept:
        decision.outcome, decision.level = "refuse", None
        decision.population = {}
        plan.template = None
    else:
        decision.outcome = "partial"


__all__ = ["EXCLUDED", "PlanError", "ReleasePlan", "ROW_LEVELS", "make_plan", "template_name"]
