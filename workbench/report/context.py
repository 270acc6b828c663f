"""Everything a template needs about one request: the decision, the policy, the cohort.

A template's first code cell is `ctx = RequestContext.open(request_file, policy, as_of,
output_dir)`. Opening decides the request again (agreements are judged on the as-of date) and
resolves the cohort to the students the decision lets the release cover. Nothing in here shows
student data; templates call the table and extract builders, which protect before they return.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from workbench.cohort import Cohort, cohort_from_ids, cohort_from_program, cohort_from_school
from workbench.config import read_config
from workbench.decision import Decision, decide
from workbench.disclosure.rules import SmallGroupRule
from workbench.policy import Policy, load_policy
from workbench.request import DataRequest, load_request
from workbench.warehouse import connect

DEFAULT_POLICY = "nces"
POLICY_ENV = "WORKBENCH_POLICY"


def default_policy_name() -> str:
    """The district's pack: WORKBENCH_POLICY, else `policy` in workbench.toml, else the baseline."""
    return os.environ.get(POLICY_ENV) or str(read_config().get("policy") or DEFAULT_POLICY)


@dataclass
class Artifacts:
    """Files a template wrote into the release folder, and what protection did to each table."""

    tables: dict[str, dict] = field(default_factory=dict)  # name -> protection summary
    files: list[str] = field(default_factory=list)


@dataclass
class RequestContext:
    request: DataRequest
    policy: Policy
    decision: Decision
    con: object
    as_of: date
    output_dir: Path
    cohort: Cohort | None  # None: the whole district
    artifacts: Artifacts = field(default_factory=Artifacts)

    @classmethod
    def open(
        cls,
        request_file: str | os.PathLike,
        policy: str | Policy | None = None,
        as_of: str | date | None = None,
        output_dir: str | os.PathLike | None = None,
        warehouse=None,
    ) -> "RequestContext":
        request = load_request(request_file)
        policy = policy if isinstance(policy, Policy) else load_policy(policy or default_policy_name())
        as_of = date.fromisoformat(str(as_of)) if as_of else date.today()
        con = warehouse if warehouse is not None and hasattr(warehouse, "table") else connect(warehouse)
        decision = decide(request, policy, con, as_of)
        # Without an output folder (a preview, or nbval) artifacts go to a scratch folder.
        output = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="workbench-preview-"))
        output.mkdir(parents=True, exist_ok=True)
        context = cls(request, policy, decision, con, as_of, output, cohort=None)
        context.cohort = context._resolve_cohort()
        return context

    @property
    def rule(self) -> SmallGroupRule:
        return self.policy.small_group_rule()

    @property
    def years(self) -> list[str]:
        return list(self.decision.years or self.request.years)

    @property
    def latest_year(self) -> str:
        return max(self.years)

    @property
    def level(self) -> str | None:
        return self.decision.level

    @property
    def releasable(self) -> bool:
        return self.decision.outcome in ("approve", "partial") and self.decision.level is not None

    @property
    def student_ids(self) -> list[str] | None:
        """Students the release covers (None: the whole district)."""
        if self.cohort is None:
            return None
        levels = self.decision.student_levels()
        if self.level in ("identified", "deidentified", "directory") and levels:
            allowed = {"identified": {"identified"}, "deidentified": {"identified", "deidentified"},
                       "directory": {"identified", "directory"}}[self.level]
            return [sid for sid in self.cohort.student_ids if levels.get(sid) in allowed]
        return self.cohort.student_ids

    def population(self, year: str) -> list[str] | None:
        return self.student_ids

    def students_at(self, level: str) -> list[str]:
        """Cohort students whose own decision is exactly `level` (rosters mix levels)."""
        levels = self.decision.student_levels()
        return [sid for sid in (self.cohort.student_ids if self.cohort else []) if levels.get(sid) == level]

    def _resolve_cohort(self) -> Cohort | None:
        spec = self.request.cohort
        if spec is None:
            return None
        if spec.kind == "student_ids":
            return cohort_from_ids(self.con, list(spec.student_ids), self.years, spec.id_kind)
        if spec.kind == "program":
            return cohort_from_program(self.con, spec.program, None, self.years)
        grades = list(spec.grades) if spec.grades is not None else None
        return cohort_from_school(self.con, spec.school, self.years, grades)

    def describe_cohort(self) -> str:
        """A sentence for the report about who is counted (no IDs)."""
        if self.cohort is None:
            return "every student enrolled in the district"
        return f"{self.cohort.size:,} students ({self.cohort.source})"

    # -- what a template publishes into the release folder ----------------------------------
    def publish_table(self, table):
        """Write a protected table (CSV, XLSX) into tables/ and return it for display."""
        files = table.save(self.output_dir / "tables", when=self.as_of)
        self.artifacts.tables[table.name] = {"title": table.title, "year": table.year, **table.protection}
        self.artifacts.files += [str(p.relative_to(self.output_dir)) for p in files]
        return table

    def publish_chart(self, table, key: str, dim: str | None = None, title: str | None = None):
        """A bar chart of one measure across one breakdown; suppressed groups get a marked slot."""
        from workbench.charts import bar_chart, save_png

        data = table.chart_data(key, dim)
        column = next(c for c in table.columns if c.key == key)
        figure = bar_chart(
            data["label"], [None if pd.isna(v) else v / 100 for v in data["percent"]],
            [pd.isna(v) for v in data["percent"]],
            masked_labels=[text if text else "suppressed" for text in data["display"]],
            title=title or f"{column.title}, {table.year}",
            value_label="percent of students" if column.measure != "attendance_rate" else "percent of enrolled days attended",
            comparison=[None if pd.isna(v) else v / 100 for v in data["district_percent"]] if table.district else None,
        )
        path = save_png(figure, self.output_dir / "charts" / f"{table.name}_{key}.png")
        self.artifacts.files.append(str(path.relative_to(self.output_dir)))
        return path

    def publish_student_file(self, student_file):
        files = student_file.save(self.output_dir / "data", when=self.as_of)
        self.artifacts.files += [str(p.relative_to(self.output_dir)) for p in files]
        return student_file

    def finish(self) -> dict:
        """Record what was published and how it was protected (read by `workbench fill`)."""
        summary = {"tables": self.artifacts.tables, "files": sorted(self.artifacts.files)}
        (self.output_dir / "protection.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary
