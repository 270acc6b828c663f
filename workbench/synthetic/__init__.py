"""The synthetic district: deterministic test and demo data, never real students."""

from workbench.synthetic.generator import (
    DEFAULT_SEED,
    DEFAULT_STUDENTS,
    DEFAULT_YEARS,
    generate_district,
    parse_years,
)

__all__ = ["DEFAULT_SEED", "DEFAULT_STUDENTS", "DEFAULT_YEARS", "generate_district", "parse_years"]
