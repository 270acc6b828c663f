"""The ipywidgets faces of the intake form and the cohort picker: thin shells over
`workbench.forms.intake` and `workbench.forms.cohort_logic`.

    from workbench.forms import IntakeForm
    IntakeForm()                      # the district's configured policy; the last expression displays it

Each change of a field re-validates the request; the decision is recomputed only when the request
is complete and different from the one last decided, after a short pause (`debounce` seconds) so a
burst of changes costs one decision. With ``debounce=0`` everything happens at once (tests).
"""

from __future__ import annotations

import asyncio
import html
import json
from datetime import date
from pathlib import Path
from typing import Any, Callable

import ipywidgets as W

from workbench.cohort import Cohort, CohortError
from workbench.config import DATA_DIR
from workbench.forms import cohort_logic as cl
from workbench.forms import intake as il
from workbench.measures import BREAKDOWNS, MEASURES
from workbench.policy import available_policies, load_policy
from workbench.policy.vocabulary import EXCEPTIONS, FIELDS, LEVELS, ROLES

def default_folder() -> Path:
    """Where saved requests go: data/requests in the analyst's project (the workbench.toml folder,
    else the workbench checkout), not wherever the package happens to be installed."""
    from workbench.settings import project_root

    return project_root() / "data" / "requests"


DEFAULT_FOLDER = DATA_DIR / "requests"  # the checkout's; kept for code that imported the name
_WIDE = W.Layout(width="95%")
_DESC = {"description_width": "11em"}


class Debouncer:
    """Calls `action` once `delay` seconds after the last call (at once when delay is 0 or no
    event loop runs, as outside a kernel)."""

    def __init__(self, action: Callable[[], None], delay: float) -> None:
        self.action = action
        self.delay = delay
        self._handle: asyncio.TimerHandle | None = None

    def __call__(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        loop = None
        if self.delay > 0:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is None:
            self.action()
            return
        self._handle = loop.call_later(self.delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        self.action()

    @property
    def pending(self) -> bool:
        return self._handle is not None

    def flush(self) -> None:
        """Run a pending call now."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self.action()


def _connect(warehouse):
    if warehouse is None or isinstance(warehouse, (str, Path)):
        from workbench.warehouse import connect

        return connect(warehouse)
    return warehouse


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class CohortPicker(W.VBox):
    """Paste IDs, upload a CSV/XLSX/TXT, or pick a program (as of a date) or a school and grades.

    `choice` is what was picked, `cohort` the checked cohort, `summary_data` its counts; `spec()`
    is the request's cohort entry. `on_change` is called after the choice changes.
    """

    MODES = ("district", "paste", "upload", "program", "school")

    def __init__(self, warehouse=None, *, policy=None, years=(), partner_id: str | None = None,
                 as_of: date | None = None, on_change: Callable[[], None] | None = None,
                 debounce: float = 0.3) -> None:
        self.con = _connect(warehouse)
        self.policy = load_policy(policy) if isinstance(policy, str) else policy
        self.years: tuple[str, ...] = tuple(years)
        self.partner_id = partner_id
        self.as_of = as_of or date.today()
        self.on_change = on_change
        self.choice: cl.CohortChoice | None = None
        self.cohort: Cohort | None = None
        self.summary_data: cl.CohortSummary | None = None
        self.error: str | None = None
        self._checked_key: tuple | None = None
        self._notified: tuple = ("district", None)

        self.paste = W.Textarea(placeholder="Paste student IDs: one a line, or separated by commas, spaces, tabs...",
                                continuous_update=False, layout=W.Layout(width="95%", height="8em"))
        self.id_kind = W.Dropdown(options=[("district or state (by length)", "auto"), ("district IDs", "district"),
                                           ("state IDs", "state")], value="auto", description="IDs are", style=_DESC)
        self.upload = W.FileUpload(accept=",".join(cl.ID_FILE_SUFFIXES), multiple=False,
                                   description="Upload IDs (CSV, XLSX, TXT)", layout=W.Layout(width="auto"))
        self.upload_name = W.HTML()
        programs = self.con.table("programs").select("program_id", "name").order_by("program_id").to_pandas()
        self.program = W.Dropdown(options=[("choose a program", "")] + [
            (f"{row.program_id} {row.name}", row.program_id) for row in programs.itertuples()],
            description="Program", style=_DESC, layout=_WIDE)
        self.program_as_of = W.DatePicker(description="Tagged as of", value=None, style=_DESC)
        schools = self.con.table("schools").select("school_id", "name").order_by("school_id").to_pandas()
        self.school = W.Dropdown(options=[("choose a school", "")] + [
            (f"{row.school_id} {row.name}", row.school_id) for row in schools.itertuples()],
            description="School", style=_DESC, layout=_WIDE)
        self.grades = W.SelectMultiple(options=[("K", 0)] + [(str(g), g) for g in range(1, 13)], rows=5,
                                       description="Grades (none: all)", style=_DESC)
        self.summary = W.HTML("<i>Whole district: every student enrolled in the years asked.</i>")
        self.summary.add_class("wb-cohort-summary-widget")

        self.tabs = W.Tab(children=[
            W.HTML("No cohort: the request covers every student enrolled in the school years asked."),
            W.VBox([self.paste, self.id_kind]),
            W.VBox([self.upload, self.upload_name,
                    W.HTML("<small>The ID column is found by its header (student_id, state_id, id, ...) or its "
                           "digits; IDs are read as text and lost leading zeros restored.</small>")]),
            W.VBox([self.program, self.program_as_of,
                    W.HTML("<small>Without a date: the students tagged on the decision date. With a date: the "
                           "students tagged that day, written into the request as a list of IDs.</small>")]),
            W.VBox([self.school, self.grades]),
        ])
        for index, title in enumerate(("Whole district", "Paste IDs", "Upload file", "Program", "School")):
            self.tabs.set_title(index, title)

        self._debounced = Debouncer(self._update, debounce)
        for widget in (self.paste, self.id_kind, self.program, self.program_as_of, self.school, self.grades):
            widget.observe(self._choice_changed, names="value")
        self.tabs.observe(self._choice_changed, names="selected_index")
        self.upload.observe(self._uploaded, names="value")
        self._uploaded_choice: cl.CohortChoice | None = None
        super().__init__([W.HTML("<b>Cohort</b>"), self.tabs, self.summary])
        self.add_class("wb-cohort-picker")

    # -- what was picked -------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.MODES[self.tabs.selected_index or 0]

    def _current_choice(self) -> cl.CohortChoice | None:
        mode = self.mode
        if mode == "paste":
            return cl.choice_from_text(self.paste.value, self.id_kind.value) if self.paste.value.strip() else None
        if mode == "upload":
            return self._uploaded_choice
        if mode == "program":
            return cl.choice_from_program(self.program.value, self.program_as_of.value) if self.program.value else None
        if mode == "school":
            return cl.choice_from_school(self.school.value, self.grades.value) if self.school.value else None
        return None

    def load_file(self, name: str, content: bytes | memoryview) -> None:
        """Read IDs from an uploaded file's bytes (what the FileUpload hands over)."""
        try:
            self._uploaded_choice = cl.choice_from_upload(name, content)
            self.upload_name.value = (f"<span class='wb-upload-name'>Read <b>{len(self._uploaded_choice.raw_ids)}</b> "
                                      f"entries from {_escape(Path(name).name)}</span>")
            self.error = None
        except Exception as exc:  # pandas/openpyxl raise many kinds for a bad file
            self._uploaded_choice = None
            self.upload_name.value = f"<span style='color:#b42318'>Cannot read {_escape(Path(name).name)}: {_escape(_error_text(exc))}</span>"
        if self.tabs.selected_index != 2:
            self.tabs.selected_index = 2  # fires _choice_changed
        else:
            self._choice_changed()

    def _uploaded(self, change) -> None:
        files = change["new"]
        if not files:
            return
        upload = files[-1]
        # Keep no copy of the file in the widget's state (it would be saved with the notebook's widget state).
        self.upload.value = ()
        self.load_file(upload["name"], upload["content"])

    def set_context(self, *, years=None, partner_id=None, as_of=None, policy=None) -> None:
        """What the form says the cohort is checked against; re-checks only when it changed."""
        if years is not None:
            self.years = tuple(years)
        if partner_id is not None:
            self.partner_id = partner_id or None
        if as_of is not None:
            self.as_of = as_of
        if policy is not None:
            self.policy = load_policy(policy) if isinstance(policy, str) else policy
        self._update(notify=False)

    def _choice_changed(self, *_) -> None:
        self._debounced()

    def spec(self) -> dict[str, Any] | None:
        """The request's cohort entry (IDs inline) for what is picked; None: the whole district."""
        if self.choice is None:
            return None
        return self.choice.spec(self.cohort)

    def ids_for_file(self) -> list[str] | None:
        return self.choice.ids_for_file(self.cohort) if self.choice is not None else None

    # -- checking --------------------------------------------------------------------------
    def _update(self, notify: bool = True) -> None:
        choice = self._current_choice()
        policy_hash = self.policy.content_hash if self.policy is not None else None
        key = (self.mode, choice, self.years, self.partner_id, self.as_of, policy_hash)
        if key == self._checked_key:
            return
        self._checked_key = key
        changed_choice = (self.mode, choice) != self._notified
        self._notified = (self.mode, choice)
        self.choice = choice
        self.cohort = None
        self.summary_data = None
        self.error = None
        if choice is None:
            self.summary.value = ("<i>Whole district: every student enrolled in the years asked.</i>"
                                  if self.mode == "district" else "<i>Nothing picked yet.</i>")
        elif not self.years:
            count = len(choice.raw_ids)
            self.summary.value = (f"<div class='wb-cohort-summary'>{choice.source}: {count} entries. "
                                  "<i>Choose the school years in the form to check them.</i></div>")
        else:
            try:
                self.cohort = cl.resolve(self.con, choice, self.years)
                self.summary_data = cl.summarize(self.con, choice, self.years, policy=self.policy,
                                                 partner_id=self.partner_id, as_of=self.as_of, cohort=self.cohort)
                self.summary.value = cl.summary_html(self.summary_data)
            except CohortError as exc:
                self.error = str(exc)
                self.summary.value = f"<div class='wb-cohort-error' style='color:#b42318'>{_escape(str(exc))}</div>"
        if notify and changed_choice and self.on_change is not None:
            self.on_change()
        elif notify and self.on_change is not None and choice is not None and choice.kind == "program":
            self.on_change()  # a program frozen on a date changes with the years

    def show_outside_scope(self, count: int | None) -> None:
        """Add the decision's count of students outside the requester's scope to the summary."""
        if self.summary_data is None or self.summary_data.outside_scope == count:
            return
        self.summary_data.outside_scope = count
        self.summary.value = cl.summary_html(self.summary_data)


def _escape(text: str) -> str:
    return html.escape(text)


class IntakeForm(W.VBox):
    """The request intake form with its cohort picker, and the decision beside it."""

    def __init__(self, policy: str | None = None, *, warehouse=None, as_of: date | str | None = None,
                 folder: str | Path | None = None, register=None, debounce: float = 0.3, by: str | None = None) -> None:
        self.con = _connect(warehouse)
        as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else (as_of or date.today())
        self._register = register
        self.by = by
        self.decision = None
        self.checked: il.Checked | None = None
        self.saved: il.Saved | None = None
        self._decided_key: str | None = None
        self.decide_count = 0  # how many decisions were computed (tests check the debounce)
        self._holding = False
        # A field shows its problems once the analyst has changed it (or tried to save): a blank
        # form is not a form full of mistakes.
        self._touched: set[str] = set()
        self._show_all_problems = False

        years = sorted(self.con.table("student_years").select("school_year").distinct().to_pandas()["school_year"])
        partners = self.con.table("partners").select("partner_id").order_by("partner_id").to_pandas()["partner_id"]
        text = dict(style=_DESC, layout=_WIDE, continuous_update=False)
        self.inputs: dict[str, W.Widget] = {
            "request_id": W.Text(description="Request ID", placeholder="REQ-2026-0123", **text),
            "received": W.DatePicker(description="Received", value=as_of, style=_DESC),
            "name": W.Text(description="Requester name", **text),
            "role": W.Dropdown(description="Role", options=[("choose a role", "")] + [
                (r.replace("_", " "), r) for r in ROLES], style=_DESC),
            "organization": W.Text(description="Organization", **text),
            "email": W.Text(description="E-mail", **text),
            "partner_id": W.Combobox(description="Partner ID", options=list(partners), ensure_option=False,
                                     placeholder="P-01 (registered partners)", **text),
            "purpose": W.Textarea(description="Purpose / use", **text),
            "audience": W.Text(description="Audience", **text),
            "level": W.Dropdown(description="Data level", options=[("choose a level", "")] + [
                (lvl, lvl) for lvl in ("aggregate", "deidentified", "identified", "directory") if lvl in LEVELS],
                style=_DESC),
            "years": W.SelectMultiple(description="School years", options=years, rows=min(4, max(2, len(years))), style=_DESC),
            "measures": W.SelectMultiple(description="Measures", options=list(MEASURES), rows=7, style=_DESC),
            "breakdowns": W.SelectMultiple(description="Breakdowns", options=list(BREAKDOWNS), rows=5, style=_DESC),
            "fields": W.SelectMultiple(description="Fields", options=list(FIELDS), rows=8, style=_DESC),
            "nda_id": W.Text(description="NDA ID", placeholder="NDA-0001", **text),
            "research_approval_id": W.Text(description="Research approval ID", placeholder="RA-2024-0001", **text),
            "staff_school_id": W.Text(description="Staff school ID", placeholder="1213", **text),
            "staff_id": W.Text(description="Staff ID", placeholder="T00658", **text),
            "exception": W.Dropdown(description="FERPA exception", options=[("none", "")] + [
                (x.replace("_", " "), x) for x in EXCEPTIONS], style=_DESC),
            "notes": W.Textarea(description="Notes", **text),
        }
        self.field_errors: dict[str, W.HTML] = {key: W.HTML() for key in il.FIELD_LABELS}
        self.rows: dict[str, W.VBox] = {}
        for key, widget in self.inputs.items():
            widget.add_class(f"wb-input-{key}")
            self.field_errors[key].add_class("wb-field-error")
            self.rows[key] = W.VBox([widget, self.field_errors[key]])

        if policy is None:
            from workbench.settings import resolve

            policy = resolve("policy").value
        self.policy_choice = W.Dropdown(description="Policy", options=available_policies() or [policy],
                                        value=policy, style=_DESC)
        self.as_of = W.DatePicker(description="Decide as of", value=as_of, style=_DESC)
        self.policy = load_policy(policy)
        self.picker = CohortPicker(self.con, policy=self.policy, as_of=as_of, on_change=self._changed, debounce=debounce)
        self.cohort_error = self.field_errors["cohort"]

        self.folder = W.Text(description="Save to folder", value=str(Path(folder or default_folder()).resolve()), style=_DESC, layout=_WIDE)
        self.save_button = W.Button(description="Save and register", button_style="primary", icon="save")
        self.save_button.add_class("wb-save")
        self.save_status = W.HTML()
        self.save_status.add_class("wb-save-status")
        self.save_button.on_click(lambda _: self.save_clicked())

        self.decision_panel = W.HTML("<i>Fill in the request: the decision appears here.</i>")
        self.decision_panel.add_class("wb-decision-panel")
        self.decision_status = W.HTML()
        self.decision_status.add_class("wb-decision-status")

        def section(title: str, keys: tuple[str, ...]) -> W.VBox:
            return W.VBox([W.HTML(f"<b>{title}</b>")] + [self.rows[k] for k in keys])

        form = W.VBox([
            W.HBox([self.policy_choice, self.as_of]),
            section("Request", ("request_id", "received")),
            section("Requester", ("name", "role", "organization", "email", "partner_id")),
            section("What and why", ("purpose", "audience", "level", "years", "measures", "breakdowns", "fields")),
            section("Agreements on file", ("nda_id", "research_approval_id", "staff_school_id", "staff_id", "exception")),
            self.picker, self.cohort_error,
            self.rows["notes"],
            W.HBox([self.folder]), W.HBox([self.save_button]), self.save_status,
        ], layout=W.Layout(width="58%"))
        # The decision stays in view while the analyst scrolls through a long form.
        # Sticky needs every box between the column and the notebook's scrolling panel to let it
        # out: ipywidgets boxes and JupyterLab's output area scroll or clip by default.
        sticky = W.HTML("<style>.wb-decision-column{position:sticky;top:0;align-self:flex-start;"
                        "max-height:95vh;overflow-y:auto}"
                        ".wb-intake-form,.wb-intake-form>.widget-hbox,"
                        ".jp-OutputArea-output:has(.wb-intake-form),.jp-OutputArea-child:has(.wb-intake-form),"
                        ".jp-Cell-outputArea:has(.wb-intake-form){overflow:visible}</style>")
        panel = W.VBox([sticky, W.HTML("<h2 style='margin:0;font-size:1.2em'>Decision</h2>"), self.decision_status, self.decision_panel],
                       layout=W.Layout(width="40%", padding="0 0 0 1em", border_left="1px solid #ddd"))
        panel.add_class("wb-decision-column")
        self._debounced = Debouncer(self._refresh, debounce)
        for widget in list(self.inputs.values()) + [self.policy_choice, self.as_of]:
            widget.observe(self._changed, names="value")
        super().__init__([W.HBox([form, panel])])
        self.add_class("wb-intake-form")
        self._show_for_level()
        self._refresh()

    # -- values ----------------------------------------------------------------------------
    def values(self) -> il.FormValues:
        return il.FormValues.from_mapping({key: widget.value for key, widget in self.inputs.items()})

    def set_values(self, **values: Any) -> None:
        """Set several fields at once (one decision afterwards)."""
        self._holding = True
        try:
            for key, value in values.items():
                widget = self.inputs[key]
                self._touched.add(key)
                widget.value = date.fromisoformat(value) if key == "received" and isinstance(value, str) else (
                    tuple(value) if isinstance(widget, W.SelectMultiple) else value)
        finally:
            self._holding = False
        self._show_for_level()
        self._debounced()

    def request_data(self) -> dict[str, Any]:
        return il.request_data(self.values(), self.picker.spec())

    @property
    def problems(self) -> dict[str, list[str]]:
        return self.checked.problems if self.checked is not None else {}

    # -- reacting --------------------------------------------------------------------------
    def _show_for_level(self) -> None:
        level = self.inputs["level"].value  # "" until a level is chosen: show every part
        aggregate = level == "aggregate"
        student = bool(level) and not aggregate
        for key, visible in (("measures", not level or aggregate), ("breakdowns", not level or aggregate),
                             ("fields", not level or student)):
            self.rows[key].layout.display = None if visible else "none"

    def _changed(self, change=None) -> None:
        owner = getattr(change, "owner", None) if change is not None else None
        for key, widget in self.inputs.items():
            if widget is owner:
                self._touched.add(key)
        if owner is None and change is not None:
            self._touched.add("cohort")
        if change is not None and owner is self.inputs["level"]:
            self._show_for_level()
        if change is not None and getattr(change, "owner", None) is self.policy_choice:
            self.policy = load_policy(self.policy_choice.value)
        if not self._holding:
            self.decision_status.value = ("<div class='wb-updating' style='color:#555'>"
                                          "<i>Updating the decision...</i></div>")
            self._debounced()

    def _refresh(self) -> None:
        """Validate; when complete and changed since the last decision, decide again."""
        try:
            self._refresh_decision()
        finally:
            self.decision_status.value = ""

    def _refresh_decision(self) -> None:
        as_of = self.as_of.value or date.today()
        self.picker.set_context(years=self.inputs["years"].value, partner_id=self.inputs["partner_id"].value.strip(),
                                as_of=as_of, policy=self.policy)
        data = self.request_data()
        self.checked = il.check_request(data)
        problems = dict(self.checked.problems)
        if self.picker.error:
            problems.setdefault("cohort", []).append(self.picker.error)
        if self.picker.mode != "district" and self.picker.spec() is None and self.picker.choice is None:
            problems.setdefault("cohort", []).append("pick a cohort on the tab chosen, or choose 'Whole district'")
        elif self.picker.choice is not None and self.picker.spec() is None:
            problems.setdefault("cohort", []).append("no usable student in the cohort picked")
        for key, label in self.field_errors.items():
            shown = self._show_all_problems or key in self._touched or (key == "cohort" and self.picker.mode != "district")
            messages = problems.get(key, []) if shown else []
            label.value = "".join(f"<div style='color:#b42318;font-size:0.9em' data-field='{key}'>{_escape(m)}</div>"
                                  for m in messages)
        if problems:
            self.checked = il.Checked(None, problems)
            self.decision = None
            self._decided_key = None
            self.decision_panel.value = il.problems_html(problems)
            return
        key = json.dumps([data, self.policy.content_hash, as_of.isoformat()], sort_keys=True, default=str)
        if key == self._decided_key:
            return
        from workbench.plan import make_plan

        try:
            # The decision a fill would make, compared with what the requester already holds.
            self.decision = make_plan(self.checked.request, self.policy, self.con, as_of, ledger=self._ledger()).decision
        except Exception as exc:  # a warehouse or pack problem: say so instead of a stale decision
            self.decision = None
            self._decided_key = None
            self.decision_panel.value = f"<div class='wb-decision-error' style='color:#b42318'>Cannot decide: {_escape(_error_text(exc))}</div>"
            return
        self.decide_count += 1
        self._decided_key = key
        self.decision_panel.value = il.decision_html(self.decision)
        if self.picker.choice is not None and self.picker.choice.kind == "student_ids":
            self.picker.show_outside_scope(cl.scope_exclusions(self.decision))

    def refresh_now(self) -> None:
        """Run a pending (debounced) refresh at once."""
        self.picker._debounced.flush()
        self._debounced.flush()

    # -- saving ----------------------------------------------------------------------------
    def _open_register(self):
        from workbench.register import RequestRegister

        if self._register is None or isinstance(self._register, str):
            self._register = RequestRegister(self._register)
        return self._register

    def save(self) -> il.Saved:
        """Write the request (and its ID file) to the folder and register it; raises on a problem."""
        self.refresh_now()
        data = self.request_data()
        ids = self.picker.ids_for_file()
        id_kind = self.picker.choice.id_kind if ids is not None and self.picker.choice is not None else "auto"
        if ids is not None:
            data.pop("cohort", None)
            # Entries the picker dropped (malformed, repeated) are noted as counts, never listed.
            summary = self.picker.summary_data
            if summary is not None and (summary.counts["malformed"] or summary.counts["duplicated"]):
                note = (f"cohort picker: {summary.counts['malformed']} malformed and {summary.counts['duplicated']} "
                        f"duplicated entries of {summary.given} given were left out of the ID file")
                data["notes"] = f"{data['notes']}\n{note}" if data.get("notes") else note
        saved = il.save_request(data, self.folder.value.strip() or default_folder(), ids=ids, id_kind=id_kind,
                                register=self._open_register(), policy=self.policy, warehouse=self.con,
                                as_of=self.as_of.value or date.today(), by=self.by)
        self.saved = saved
        return saved

    def _ledger(self):
        from workbench.ledger import Ledger

        url = getattr(self._register, "url", None) or (self._register if isinstance(self._register, str) else None)
        try:
            return Ledger.if_present(url)
        except Exception:  # noqa: BLE001 - no ledger to read is no conflict to show; the fill checks again
            return None

    def save_clicked(self) -> None:
        from workbench.register import RegisterError
        from workbench.request import RequestError

        if not self._show_all_problems:
            self._show_all_problems = True
            self.refresh_now()
            self._refresh()

        try:
            saved = self.save()
        except (il.FormError, RequestError, RegisterError, OSError) as exc:
            self.save_status.value = f"<div class='wb-save-error' style='color:#b42318'>Not saved: {_escape(str(exc))}</div>"
            return
        outcome = f"; decision recorded: {saved.decision.outcome}" if saved.decision is not None else ""
        id_file = f" with {saved.id_file.name}" if saved.id_file else ""
        self.save_status.value = (f"<div class='wb-save-ok' style='color:#1b7f3b'>Saved {_escape(str(saved.path))}{id_file} "
                                  f"and registered {_escape(saved.request.id)} as received{outcome}.</div>")
