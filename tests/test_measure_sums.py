"""Every measure taken from one aggregation per breakdown (and a cohort's facts taken from the
district's cached facts) equals the measure as defined, queried measure by measure
(`_measure_by_measure`) over facts built from the raw tables, on random districts, cohorts and
breakdowns."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from workbench import measures
from workbench.measures import BREAKDOWNS, MEASURES, _finish, _measure_by_measure, compute, student_year_facts
from workbench.schema import write_warehouse
from workbench.synthetic.generator import generate_district
from workbench.warehouse import connect

YEARS = ["2024-2025", "2025-2026"]
SINGLE = [(b,) for b in BREAKDOWNS]
PAIRS = [("grade", "race_ethnicity"), ("school", "low_income"), ("school_level", "gender"), ("disability", "program")]


def _reference(con, facts, measure, years, breakdowns, ids) -> pd.DataFrame:
    group = measures._group_columns(breakdowns)
    frame = _finish(_measure_by_measure(con, measure, years, breakdowns, ids, facts=facts), measure)
    order = group + (["subject"] if "subject" in frame.columns else [])
    leading = order + ["students", "count", "value"] + [c for c in ("days_enrolled", "days_absent") if c in frame]
    return frame[leading].sort_values(order, kind="stable").reset_index(drop=True)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
          phases=[Phase.explicit, Phase.generate])  # a failing district is reported as generated: shrinking one takes minutes
@given(seed=st.integers(0, 2**31), share=st.floats(0.05, 0.9))
def test_one_aggregation_per_breakdown_equals_the_measures_one_by_one(tmp_path_factory, seed, share):
    path = tmp_path_factory.mktemp("random-district") / "district.duckdb"
    write_warehouse(path, generate_district(200, years=YEARS, seed=seed))
    con = connect(path)
    students = sorted(set(con.table("student_years").to_pandas()["student_id"]))
    rng = np.random.default_rng(seed)
    cohort = sorted(rng.choice(students, size=max(1, int(len(students) * share)), replace=False).tolist())
    for ids, years in ((None, YEARS), (cohort, YEARS), (cohort, YEARS[-1:])):
        # The facts as defined, built from the raw tables for these students (a temporary table that
        # Ibis shares with an identical expression): never the cohort facts the fast path derives.
        facts = student_year_facts(con, years, ids).cache()
        for breakdowns in [(), *SINGLE, *PAIRS]:
            for measure in MEASURES:
                fast = compute(con, measure, years, list(breakdowns), ids)
                expected = _reference(con, facts, measure, years, list(breakdowns), ids)
                pd.testing.assert_frame_equal(fast, expected, check_exact=True)
    measures.release_facts(con)
    con.disconnect()
