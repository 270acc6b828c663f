"""Analyst forms: the request intake form and the cohort picker (ipywidgets).

    from workbench.forms import IntakeForm
    IntakeForm(policy="bps")

The logic lives in plain modules tested without Jupyter (`intake`, `cohort_logic`); `widgets`
holds the thin ipywidgets classes. docs/forms.md is the analyst's guide.
"""

from workbench.forms.cohort_logic import CohortChoice, CohortSummary, summarize
from workbench.forms.intake import FormError, FormValues, check_request, request_data, save_request

__all__ = [
    "CohortChoice", "CohortPicker", "CohortSummary", "FormError", "FormValues", "IntakeForm",
    "check_request", "request_data", "save_request", "summarize",
]


def __getattr__(name: str):
    # The widgets import ipywidgets; load them only when asked for.
    if name in ("IntakeForm", "CohortPicker"):
        from workbench.forms import widgets

        return getattr(widgets, name)
    raise AttributeError(name)
