"""One cohort size everywhere: the intake form, `request check`, the plan and the dashboard.

The demo's program request once showed 55 students in one place and 85 in another: the cohort
picker counted the program's students tagged on the decision date, the decision every student
the program served during the years asked. Each test reads one of those places and compares it
with the plan, whose per-year populations are checked against the raw tables in
tests/test_plan_properties.py.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from workbench.config import DATA_DIR
from workbench.plan import make_plan
from workbench.policy import load_policy
from workbench.request import load_request

DEMO_PROGRAM = DATA_DIR / "requests" / "demo" / "partner_aggregate.yml"
AS_OF = date(2026, 6, 1)


@pytest.fixture(scope="module")
def demo_plan(demo_warehouse):
    from workbench.warehouse import connect

    request = load_request(DEMO_PROGRAM)
    return make_plan(request, load_policy("dmps"), connect(demo_warehouse), AS_OF)


def test_the_demo_program_plan_counts_every_student_the_program_served(demo_plan):
    cohort = demo_plan.decision.cohort
    assert cohort["kind"] == "program"
    assert cohort["size"] == len(demo_plan.all_students())
    assert cohort["by_year"] == {year: len(demo_plan.students(year)) for year in demo_plan.years}


def test_the_cohort_picker_counts_the_program_as_the_decision_does(demo_warehouse, demo_plan):
    """The picker's "matched" beside the decision's cohort size, for a program without its own date."""
    from workbench.forms import cohort_logic
    from workbench.warehouse import connect

    choice = cohort_logic.choice_from_program(demo_plan.request.cohort.program)
    summary = cohort_logic.summarize(connect(demo_warehouse), choice, list(demo_plan.request.years),
                                     policy=load_policy("dmps"), as_of=AS_OF)
    assert summary.counts["matched"] == demo_plan.decision.cohort["size"]


def test_the_intake_form_shows_the_program_count_of_its_decision(demo_warehouse, demo_plan, tmp_path):
    from workbench.forms import IntakeForm
    from workbench.warehouse import connect

    request = demo_plan.request
    form = IntakeForm("dmps", warehouse=connect(demo_warehouse), as_of=AS_OF, folder=tmp_path, debounce=0)
    requester = request.requester
    form.set_values(request_id="REQ-ONE-COHORT", name=requester.name, role=requester.role,
                    organization=requester.organization, partner_id=requester.partner_id, nda_id=requester.nda_id,
                    purpose=request.purpose, audience=request.audience, level="aggregate", years=list(request.years),
                    measures=list(request.measures), breakdowns=list(request.breakdowns))
    form.picker.tabs.selected_index = 3
    form.picker.program.value = request.cohort.program
    assert form.decision is not None and form.decision.cohort["kind"] == "program"
    assert form.picker.summary_data.counts["matched"] == form.decision.cohort["size"] == demo_plan.decision.cohort["size"]


def test_request_check_reports_the_plan_s_counts(demo_warehouse, demo_plan):
    from workbench.cli import main

    result = CliRunner().invoke(main, ["request", "check", str(DEMO_PROGRAM), "--policy", "dmps", "--as-of",
                                       AS_OF.isoformat(), "--warehouse", demo_warehouse, "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["cohort"]["size"] == demo_plan.decision.cohort["size"]
    assert shown["cohort"]["by_year"] == demo_plan.decision.cohort["by_year"]


def test_the_dashboard_shows_the_years_the_plan_released(demo_warehouse, tmp_path):
    """A year the plan leaves out (the cohort is a small group that year) is not listed on the
    partner's page as if it were released; before, the page listed the years asked."""
    import re

    import yaml

    from workbench.dashboard.content import load_release, render_html
    from workbench.fill import fill
    from workbench.release.store import ReleaseStore

    request = yaml.safe_load((DATA_DIR / "requests" / "demo" / "partner_roster.yml").read_text())
    request.update(id="ONE-COHORT-YEARS", level="aggregate", years=["2023-2024", "2024-2025", "2025-2026"],
                   measures=["chronic_absence"], breakdowns=["grade"], received="2026-05-18")
    request.pop("fields")
    request["cohort"]["student_ids"] = request["cohort"]["student_ids"][:12]
    path = tmp_path / "request.yml"
    path.write_text(yaml.safe_dump(request, sort_keys=False))
    store = ReleaseStore(tmp_path / "releases")
    result = fill(path, "dmps", AS_OF, store=store, warehouse=demo_warehouse)
    manifest = json.loads((result.release.path / "manifest.json").read_text())
    granted = manifest["plan"]["years"]
    assert granted and granted != request["years"], "the demo district must leave a year out of this plan"
    page = render_html(load_release(store, "ONE-COHORT-YEARS"))
    assert re.findall(r"<dt>School years</dt><dd>([^<]*)</dd>", page) == [", ".join(granted)]
