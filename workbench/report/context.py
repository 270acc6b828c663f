"""Everything a template needs about one request: the plan, the policy, the warehouse.

A template's first code cell is `ctx = RequestContext.open(request_file, policy, as_of,
output_dir, plan_file=plan_file)`. Under `workbench fill` the plan file is the release plan the
fill decided (workbench.plan): the context reads it and never decides or resolves a cohort
itself. Opened without one (a preview in JupyterLab, or the notebook tests), it makes the plan
once, the same way a fill does. Nothing in here shows student data; templates call the table and
extract builders, which protect before they return.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from workbench.decision import Decision
from workbench.disclosure.rules import SmallGroupRule
from workbench.errors import InputError
from workbench.plan import PlanError, ReleasePlan, make_plan, policy_for
from workbench.policy import Policy
from workbench.request import DataRequest, load_request
from workbench.settings import resolve, sources
from workbench.warehouse import connect


def default_policy_name() -> str:
    """The district's pack, from the settings (option, environment, workbench.toml, baseline)."""
    return resolve("policy").value


@dataclass
class Artifacts:
    """Files a template wrote into the release folder, and what protection did to each table."""

    tables: dict[str, dict] = field(default_factory=dict)  # name -> protection summary
    files: list[str] = field(default_factory=list)
    student_files: dict[str, dict] = field(default_factory=dict)  # name -> what protection did (counts)


@dataclass
class RequestContext:
    request: DataRequest
    policy: Policy
    plan: ReleasePlan
    con: object
    as_of: date
    output_dir: Path
    artifacts: Artifacts = field(default_factory=Artifacts)

    @classmethod
    def open(
        cls,
        request_file: str | os.PathLike | None = None,
        policy: str | Policy | None = None,
        as_of: str | date | None = None,
        output_dir: str | os.PathLike | None = None,
        warehouse=None,
        plan_file: str | os.PathLike | None = None,
    ) -> "RequestContext":
        con = warehouse if warehouse is not None and hasattr(warehouse, "table") else connect(warehouse)
        if plan_file:
            plan = ReleasePlan.load(plan_file)
            if request_file is not None and load_request(request_file).id != plan.request.id:
                raise PlanError(f"plan {plan_file} is for request {plan.request.id}, not {request_file}")
            loaded = plan.policy()
            request = plan.request
        else:
            request = load_request(request_file)
            loaded, source = policy_for(request, policy)
            day = date.fromisoformat(str(as_of)) if as_of else date.today()
            plan = make_plan(request, loaded, con, day, settings=sources() | {"policy": source})
        # Without an output folder (a preview, or nbval) artifacts go to a scratch folder.
        output = Path(output_dir) if output_dir else Path(tempfile.mkdtemp(prefix="workbench-preview-"))
        output.mkdir(parents=True, exist_ok=True)
        return cls(request, loaded, plan, con, plan.decision.as_of, output)

    @property
    def decision(self) -> Decision:
        return self.plan.decision

    @property
    def rule(self) -> SmallGroupRule:
        return self.policy.small_group_rule()

    @property
    def years(self) -> list[str]:
        return self.plan.years

    @property
    def latest_year(self) -> str:
        if not self.years:
            raise InputError(f"request {self.request.id} has no school year to release")
        return max(self.years)

    @property
    def level(self) -> str | None:
        return self.decision.level

    @property
    def releasable(self) -> bool:
        return self.plan.releasable

    @property
    def measures(self) -> list[str]:
        """The measures the plan grants."""
        return list(self.decision.measures)

    @property
    def breakdowns(self) -> list[str]:
        """The breakdowns the plan grants that a table is split by (a program is its own cohort)."""
        return self.plan.table_breakdowns

    @property
    def main_breakdown(self) -> str:
        """The breakdown a report leads with: grade when the plan grants it, else its first one."""
        if not self.breakdowns:
            raise InputError(f"request {self.request.id}: breakdowns: an aggregate report needs a breakdown to split by")
        return "grade" if "grade" in self.breakdowns else self.breakdowns[0]

    def population(self, year: str) -> list[str]:
        """The exact students a table or file for `year` covers: the plan's, never re-resolved."""
        return self.plan.students(year)

    def students_at(self, level: str, year: str | None = None) -> list[str]:
        """Students whose own decision is exactly `level` in `year` (default: the latest year)."""
        return self.plan.students(year or self.latest_year, {level})

    def row_students(self, year: str) -> list[str]:
        """Students whose rows a student-level file for `year` may hold at the granted level."""
        return self.plan.row_students(year)

    @property
    def student_ids(self) -> list[str]:
        """Every student the release covers, over all its years."""
        return self.plan.all_students()

    def describe_cohort(self) -> str:
        """A sentence for the report about who is counted (no IDs): the plan's numbers."""
        cohort = self.decision.cohort
        source = cohort.get("source") or ("every student enrolled in the district"
                                          if cohort.get("kind") == "district" else "the students asked for")
        per_year = "; ".join(f"{year}: {len(self.population(year)):,}" for year in self.years)
        return f"{source}; students covered by school year: {per_year or 'none'}"

    # -- what a template publishes into the release folder ----------------------------------
    def publish_table(self, table):
        """Write a protected table (CSV, XLSX) into tables/ and return it for display."""
        files = table.save(self.output_dir / "tables", when=self.as_of)
        self.artifacts.tables[table.name] = {
            "title": table.title, "year": table.year, "dims": list(table.dims),
            "measures": sorted({column.measure for column in table.columns}), **table.protection,
        }
        self.artifacts.files += [str(p.relative_to(self.output_dir)) for p in files]
        return table

    def publish_chart(self, table, key: str, dim: str | None = None, title: str | None = None):
        """A bar chart of one measure across one breakdown; suppressed groups get a marked slot.

        Returns a `workbench.charts.Chart`: displayed, it shows the image with alt text that says
        what the table shows; `str()` of it is the PNG's path.
        """
        from workbench.charts import Chart, bar_chart, describe_chart, save_png
        from workbench.report.aggregate import DIM_TITLES

        data = table.chart_data(key, dim)
        column = next(c for c in table.columns if c.key == key)
        dim_name = dim or table.dims[0]
        chart_title = title or f"{column.title}, {table.year}"
        figure = bar_chart(
            data["label"], [None if pd.isna(v) else v / 100 for v in data["percent"]],
            [pd.isna(v) for v in data["percent"]],
            masked_labels=[text if text else "suppressed" for text in data["display"]],
            title=chart_title,
            category_label=DIM_TITLES.get(dim_name, dim_name),
            value_label="percent of students" if column.measure != "attendance_rate" else "percent of enrolled days attended",
            comparison=[None if pd.isna(v) else v / 100 for v in data["district_percent"]] if table.district else None,
        )
        description = describe_chart(
            list(data["label"]), [str(t) for t in data["display"]], f"{chart_title}, by {DIM_TITLES.get(dim_name, dim_name).lower()}",
            ["" if pd.isna(v) else f"{v:.1f}%" for v in data["district_percent"]] if table.district else None)
        path = save_png(figure, self.output_dir / "charts" / f"{table.name}_{key}.png", description)
        self.artifacts.files.append(str(path.relative_to(self.output_dir)))
        return Chart(path, description)

    def publish_student_file(self, student_file):
        files = student_file.save(self.output_dir / "data", when=self.as_of)
        self.artifacts.files += [str(p.relative_to(self.output_dir)) for p in files]
        if getattr(student_file, "report", None):
            self.artifacts.student_files[student_file.name] = student_file.report
        return student_file

    def finish(self) -> dict:
        """Record what was published and how it was protected (read by `workbench fill`)."""
        summary = {"tables": self.artifacts.tables, "files": sorted(self.artifacts.files),
                   "student_files": self.artifacts.student_files}
        (self.output_dir / "protection.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary
