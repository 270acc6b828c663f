"""The dashboard's widgets, run inside the Voila kernel.

The server decides who the viewer is and which releases they may open, and hands that to the
kernel as request variables (``HTTP_X_WORKBENCH_*``, set by the server after sign-in, never taken
from the browser). The kernel reads only those releases' files, under the release store the server
names in ``WORKBENCH_RELEASES``.
"""

from __future__ import annotations

import json
import os

import ipywidgets as widgets
import openpyxl  # noqa: F401  (imported here so a preheated kernel has it loaded before a viewer comes)
from IPython.display import display

from workbench.dashboard import filters
from workbench.dashboard.content import STYLE, ReleaseAltered, load_release, release_label, render_html
from workbench.release.store import ReleaseStore

VIEWER_VAR = "HTTP_X_WORKBENCH_VIEWER"
RELEASES_VAR = "HTTP_X_WORKBENCH_RELEASES"
SELECTED_VAR = "HTTP_X_WORKBENCH_RELEASE"
STORE_VAR = "WORKBENCH_RELEASES"


def request_context(environ=os.environ) -> tuple[str, list[str], str | None, ReleaseStore]:
    viewer = environ.get(VIEWER_VAR, "")
    allowed = json.loads(environ.get(RELEASES_VAR) or "[]")
    selected = environ.get(SELECTED_VAR) or None
    return viewer, allowed, selected, ReleaseStore(environ.get(STORE_VAR, "releases"))


def _label(store: ReleaseStore, release_id: str) -> str:
    return release_label(release_id, store.manifest(release_id))


def start(environ=os.environ) -> widgets.Widget:
    """Shows the release picker and the chosen release; returns the top widget."""
    viewer, allowed, selected, store = request_context(environ)
    base_url = environ.get("VOILA_BASE_URL", "/")
    title = widgets.HTML(STYLE + f"<h1>Released reports</h1><p class='workbench-viewer'>Signed in as {viewer}</p>")
    if not viewer or not allowed:
        box = widgets.VBox([title, widgets.HTML("<p class='workbench-empty'>No released reports for you yet.</p>")])
        display(box)
        return box
    picker = widgets.Dropdown(options=[(_label(store, r), r) for r in allowed],
                              value=selected if selected in allowed else allowed[0],
                              description="Report", layout=widgets.Layout(width="auto", max_width="100%"))
    # The filters choose among the shown release's tables and columns (workbench.dashboard.filters).
    choosers = {name: widgets.Dropdown(description=label, layout=widgets.Layout(width="auto", max_width="100%"),
                                       style={"description_width": "initial"})
                for name, label in (("year", "School year"), ("measure", "Measure"), ("group", "Group"))}
    for name, chooser in choosers.items():
        chooser.add_class(f"workbench-filter-{name}")
    filter_bar = widgets.HBox(list(choosers.values()), layout=widgets.Layout(flex_flow="row wrap"))
    filter_bar.add_class("workbench-filters")
    body = widgets.HTML()
    shown = {"content": None}

    def render(_change=None) -> None:
        content = shown["content"]
        if content is None:
            return
        chosen = {name: chooser.value or "" for name, chooser in choosers.items()}
        body.value = render_html(content, base_url, filters.options_for(content).accept(chosen), with_form=False)

    def show(release_id: str) -> None:
        shown["content"] = None
        if release_id not in allowed:  # the picker only offers allowed ids; keep it that way
            body.value = "<p>Not available.</p>"
            return
        try:
            content = load_release(store, release_id)
        except (ReleaseAltered, OSError, ValueError):  # a changed file is never shown, nor the error
            body.value = "<p class='workbench-unavailable'>This report is not available right now.</p>"
            return
        options = filters.options_for(content)
        for name, all_label, choices in (("year", "All school years", options.years),
                                         ("measure", "All measures", options.measures),
                                         ("group", "All groups", options.groups)):
            # New options select their first entry, "all" ("content" is unset: no render meanwhile).
            choosers[name].options = [(all_label, "")] + [(label, value) for value, label in choices]
            choosers[name].value = ""
        shown["content"] = content
        render()

    for chooser in choosers.values():
        chooser.observe(render, names="value")
    picker.observe(lambda change: show(change["new"]), names="value")
    show(picker.value)
    box = widgets.VBox([title, picker, filter_bar, body])
    display(box)
    return box


def wait_for_viewer(environ=os.environ) -> None:
    """In a preheated kernel, blocks until the server hands over a signed-in viewer's request.

    The server answers on a websocket path that includes a per-server key the kernel inherits, so
    nobody else can read or feed a kernel's request variables. Does nothing in a kernel started
    for one request (its variables are already in the environment).
    """
    if environ.get("VOILA_PREHEAT", "False") == "False":
        return
    from voila.utils import wait_for_request

    port = environ.get("VOILA_APP_PORT", "8866")
    server_url = environ.get("VOILA_SERVER_URL", "/")
    key = environ.get(QUERY_KEY_VAR, "")
    wait_for_request(f"ws://127.0.0.1:{port}{server_url}voila/query/{key}")


QUERY_KEY_VAR = "WORKBENCH_DASHBOARD_KEY"
