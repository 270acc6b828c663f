"""Disclosure control core: pandas in, pandas out; nothing from Jupyter.

    from workbench.disclosure import SmallGroupRule, protect_tables
    result = protect_tables(frame, ["school", "grade"], "students", SmallGroupRule())
    result.is_safe, result.cells, result.explanations, result.summary()

See docs/disclosure.md for the method, the guarantees and the parameters.
"""

from workbench.disclosure.audit import AuditError, AuditResult
from workbench.disclosure.extract import WITHHELD, ExtractError, ExtractReport, class_sizes, protect_extract
from workbench.disclosure.percentages import code_percentage, code_percentages, round_counts, round_to_base
from workbench.disclosure.protect import ProtectionResult, protect_tables
from workbench.disclosure.published import PublishedAudit, audit_published_table
from workbench.disclosure.rules import NCES_PERCENT_TIERS, PercentTier, SmallGroupRule
from workbench.disclosure.table import TOTAL, CellSpace, CountTable, TableInputError, with_margins

__all__ = [
    "NCES_PERCENT_TIERS",
    "TOTAL",
    "WITHHELD",
    "AuditError",
    "AuditResult",
    "CellSpace",
    "CountTable",
    "ExtractError",
    "ExtractReport",
    "PercentTier",
    "ProtectionResult",
    "PublishedAudit",
    "SmallGroupRule",
    "TableInputError",
    "audit_published_table",
    "code_percentage",
    "code_percentages",
    "class_sizes",
    "protect_extract",
    "protect_tables",
    "round_counts",
    "round_to_base",
    "with_margins",
]
