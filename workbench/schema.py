"""The warehouse schema as data: table -> column -> SQL type, and a validating writer.

docs/warehouse.md explains each column. The generator and test fixtures both write through
`write_warehouse`, so a fixture can never drift from what the generator produces.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
from workbench.errors import EnvironmentProblem

SCHEMA: dict[str, dict[str, str]] = {
    "schools": {
        "school_id": "VARCHAR", "name": "VARCHAR", "level": "VARCHAR",
        "grade_low": "SMALLINT", "grade_high": "SMALLINT",
    },
    "students": {
        "student_id": "VARCHAR", "state_id": "VARCHAR", "first_name": "VARCHAR",
        "last_name": "VARCHAR", "date_of_birth": "DATE", "gender": "VARCHAR",
        "race_ethnicity": "VARCHAR",
    },
    "student_years": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "grade": "SMALLINT",
        "english_learner": "BOOLEAN", "disability": "BOOLEAN", "low_income": "BOOLEAN",
    },
    "enrollments": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "school_id": "VARCHAR",
        "entry_date": "DATE", "exit_date": "DATE", "exit_reason": "VARCHAR",
    },
    "school_calendar": {
        "school_year": "VARCHAR", "term": "VARCHAR", "first_day": "DATE", "last_day": "DATE",
        "instructional_days": "SMALLINT",
    },
    "attendance": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "term": "VARCHAR",
        "school_id": "VARCHAR", "days_enrolled": "SMALLINT", "days_absent": "SMALLINT",
    },
    "staff": {"staff_id": "VARCHAR", "first_name": "VARCHAR", "last_name": "VARCHAR"},
    "staff_assignments": {
        "staff_id": "VARCHAR", "school_year": "VARCHAR", "school_id": "VARCHAR", "role": "VARCHAR",
    },
    "sections": {
        "section_id": "VARCHAR", "school_year": "VARCHAR", "school_id": "VARCHAR",
        "staff_id": "VARCHAR", "course_code": "VARCHAR", "course_name": "VARCHAR",
        "subject": "VARCHAR", "grade": "SMALLINT",
    },
    "section_students": {"section_id": "VARCHAR", "student_id": "VARCHAR"},
    "course_marks": {
        "student_id": "VARCHAR", "section_id": "VARCHAR", "school_year": "VARCHAR",
        "term": "VARCHAR", "mark": "VARCHAR",
    },
    "behavior_incidents": {
        "incident_id": "INTEGER", "student_id": "VARCHAR", "school_year": "VARCHAR",
        "school_id": "VARCHAR", "incident_date": "DATE", "category": "VARCHAR",
        "action": "VARCHAR", "days_removed": "SMALLINT",
    },
    "assessments": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "subject": "VARCHAR",
        "tested_grade": "SMALLINT", "scaled_score": "SMALLINT", "achievement_level": "SMALLINT",
        "meets_benchmark": "BOOLEAN",
    },
    "partners": {
        "partner_id": "VARCHAR", "name": "VARCHAR", "registration_status": "VARCHAR",
        "registered_on": "DATE", "registration_expires": "DATE",
    },
    "programs": {
        "program_id": "VARCHAR", "partner_id": "VARCHAR", "name": "VARCHAR", "school_id": "VARCHAR",
    },
    "program_students": {
        "program_id": "VARCHAR", "student_id": "VARCHAR", "added_on": "DATE", "dropped_on": "DATE",
    },
    "ndas": {
        "nda_id": "VARCHAR", "organization": "VARCHAR", "partner_id": "VARCHAR",
        "signed_on": "DATE", "expires_on": "DATE",
    },
    "research_approvals": {
        "approval_id": "VARCHAR", "organization": "VARCHAR", "lead_researcher": "VARCHAR",
        "title": "VARCHAR", "status": "VARCHAR", "approved_on": "DATE", "expires_on": "DATE",
    },
    "consents": {
        "consent_id": "INTEGER", "student_id": "VARCHAR", "partner_id": "VARCHAR",
        "signed_on": "DATE", "expires_on": "DATE", "channel": "VARCHAR", "revoked_on": "DATE",
    },
    "directory_opt_outs": {
        "student_id": "VARCHAR", "school_year": "VARCHAR", "opted_out_on": "DATE",
    },
    "warehouse_info": {"key": "VARCHAR", "value": "VARCHAR"},
}


class SchemaError(EnvironmentProblem, ValueError):
    """A frame does not have the columns its table needs."""


def empty_frames() -> dict[str, pd.DataFrame]:
    """One empty frame per table with the right columns; fixtures fill in what they need."""
    return {name: pd.DataFrame(columns=list(columns)) for name, columns in SCHEMA.items()}


def write_warehouse(path: str | os.PathLike, frames: dict[str, pd.DataFrame]) -> Path:
    """Write every table of SCHEMA to a new DuckDB file; tables not given are created empty.

    The file is written under a temporary name and renamed into place, so a failure never
    leaves a half-written warehouse where a good one was expected.
    """
    unknown = sorted(set(frames) - set(SCHEMA))
    if unknown:
        raise SchemaError(f"not warehouse tables: {', '.join(unknown)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    con = duckdb.connect(str(partial))
    try:
        for table, columns in SCHEMA.items():
            frame = frames.get(table)
            if frame is None or frame.empty:
                column_sql = ", ".join(f'"{name}" {sqltype}' for name, sqltype in columns.items())
                con.execute(f'CREATE TABLE "{table}" ({column_sql})')
                continue
            missing = [c for c in columns if c not in frame.columns]
            if missing:
                raise SchemaError(f"table {table} lacks columns: {', '.join(missing)}")
            # Arrow hands columns to DuckDB without a per-row conversion: about twice as fast.
            con.register("incoming", pa.Table.from_pandas(frame[list(columns)], preserve_index=False))
            selected = ", ".join(f'CAST("{name}" AS {sqltype}) AS "{name}"' for name, sqltype in columns.items())
            con.execute(f'CREATE TABLE "{table}" AS SELECT {selected} FROM incoming')
            con.unregister("incoming")
        con.execute("CHECKPOINT")
    except BaseException:
        con.close()
        partial.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(partial, target)
    return target
