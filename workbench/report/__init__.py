"""What templates call: open a request, build protected tables, extracts and letters."""

from workbench.guard import register_renderer
from workbench.report import narrative
from workbench.report.aggregate import ReportTable, ReportTableError, build_table, year_over_year
from workbench.report.context import RequestContext
from workbench.report.student_level import (
    StudentFile,
    StudentLevelError,
    deidentified_extract,
    directory_list,
    identified_roster,
)

# Report tables come out of the disclosure core already protected and marked: the guard shows
# them as they draw themselves instead of masking them a second time.
register_renderer(ReportTable)

__all__ = [
    "ReportTable", "ReportTableError", "RequestContext", "StudentFile", "StudentLevelError", "build_table",
    "deidentified_extract", "directory_list", "identified_roster", "narrative", "year_over_year",
]
