"""The release model of each school year of a request, kept beside its RequestContext.

Every `build_table` of one request and one school year joins the same
`workbench.disclosure.release.ReleaseModel`, so the year's tables are protected and audited as
one release. The models live here, keyed by the context object, and go away with it.
"""

from __future__ import annotations

import weakref

from workbench.disclosure.release import ReleaseModel

_MODELS: dict[int, dict[str, ReleaseModel]] = {}


def release_model(ctx, year: str) -> ReleaseModel:
    """The model of `year` for this request context (made on first use)."""
    key = id(ctx)
    if key not in _MODELS:
        _MODELS[key] = {}
        weakref.finalize(ctx, _MODELS.pop, key, None)
    years = _MODELS[key]
    if year not in years:
        years[year] = ReleaseModel(ctx.rule)
    return years[year]


def release_years(ctx) -> dict[str, ReleaseModel]:
    """Every year's model this context has built tables into so far."""
    return dict(_MODELS.get(id(ctx), {}))
