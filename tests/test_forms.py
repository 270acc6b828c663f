"""The intake form and the cohort picker: their logic, and the widgets driven from Python."""

from __future__ import annotations

import asyncio
import html
import io
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone

import pandas as pd
import pytest
import yaml

from workbench.decision import decide
from workbench.forms import cohort_logic as cl
from workbench.forms import intake as il
from workbench.policy import evidence, load_policy
from workbench.register import RequestRegister
from workbench.request import RequestError, load_request, parse_request
from tests.warehouse_fixtures import S1_ID, S2_ID, S3_ID, S5_ID, Y1, Y2

AS_OF = date(2026, 6, 1)


def _values(**overrides) -> il.FormValues:
    base = dict(request_id="REQ-F-1", received=date(2026, 5, 4), name="Jane Doe", role="community_partner",
                organization="Northside Youth Club", partner_id="P-01", purpose="Evaluate tutoring",
                audience="Program staff", level="aggregate", years=("2025-2026",), measures=("enrolled",),
                breakdowns=("grade",), fields=("name", "grade"))
    base.update(overrides)
    return il.FormValues(**base)


# -- building the request ------------------------------------------------------------------

def test_request_data_keeps_only_what_fits_the_level():
    aggregate = il.request_data(_values())
    assert aggregate["measures"] == ["enrolled"] and aggregate["breakdowns"] == ["grade"]
    assert "fields" not in aggregate
    identified = il.request_data(_values(level="identified"))
    assert identified["fields"] == ["name", "grade"]
    assert "measures" not in identified and "breakdowns" not in identified
    assert il.check_request(aggregate).ok and il.check_request(identified).ok


def test_request_data_drops_blank_text_and_writes_dates_as_text():
    data = il.request_data(_values(organization="  ", nda_id="", notes="  n  "))
    assert data["received"] == "2026-05-04"
    assert "organization" not in data["requester"] and "nda_id" not in data["requester"]
    assert data["notes"] == "n"
    request = il.check_request(data).request
    assert request.received == date(2026, 5, 4) and request.requester.organization is None


def test_parent_request_takes_the_cohort_ids_as_their_children():
    cohort = {"student_ids": ["0001551"]}
    data = il.request_data(_values(role="parent", partner_id="", level="identified"), cohort)
    assert data["requester"]["student_ids"] == ["0001551"]
    assert data["cohort"] == cohort
    assert il.check_request(data).ok


def test_problems_are_grouped_by_form_field():
    checked = il.check_request(il.request_data(il.FormValues(name="", years=("2025-2027",))))
    assert not checked.ok
    problems = checked.problems
    assert set(problems) >= {"request_id", "received", "name", "role", "purpose", "audience", "level", "years"}
    assert "2025-2026" in problems["years"][0]
    # Checks made on the whole model name their field inside the message.
    teacher = il.check_request(il.request_data(_values(role="teacher")))
    assert teacher.problems == {"staff_id": [teacher.problems["staff_id"][0]]}
    assert "staff ID" in teacher.problems["staff_id"][0]
    no_measures = il.check_request(il.request_data(_values(measures=())))
    assert list(no_measures.problems) == ["measures"]


def test_problems_by_field_maps_locations():
    grouped = il.problems_by_field([
        "id: is required", "requester.partner_id: bad", "fields[1]: must be 'name'", "cohort: give exactly one",
        "requester: student_ids: a parent's request lists", "something odd happened",
    ])
    assert grouped["request_id"] == ["is required"]
    assert grouped["partner_id"] == ["bad"]
    assert grouped["fields"] == ["must be 'name'"]
    assert grouped["cohort"] == ["give exactly one", "a parent's request lists"]
    assert grouped[il.GENERAL] == ["something odd happened"]


# -- the decision view ---------------------------------------------------------------------

def test_decision_view_and_html_show_outcome_level_reasons_and_due_date(small_con):
    request = parse_request(il.request_data(_values()))
    decision = decide(request, load_policy("bps"), small_con, as_of=AS_OF)
    view = il.decision_view(decision)
    assert view["outcome"] == decision.outcome and view["level"] == decision.level
    assert view["due_date"] == decision.due_date.isoformat()
    effects = [r["effect"] for r in view["reasons"]]
    assert effects == sorted(effects, key=il._EFFECT_ORDER.index)  # what holds the request back first
    page = il.decision_html(decision)
    assert f"data-outcome='{decision.outcome}'" in page and decision.due_date.isoformat() in page
    assert "<script" not in il.decision_html(decision).lower()
    # Each reason points to the document it comes from by title, not to a rule key of the pack.
    cited = [r for r in decision.reasons if r.source and r.source.get("file")]
    assert cited
    for reason in cited:
        assert f"({reason.rule})" not in page
        assert html.escape(reason.source.get("document") or reason.source["file"]) in page


def test_problems_html_escapes_and_labels():
    page = il.problems_html({"name": ["<b>bad</b>"], il.GENERAL: ["x"]})
    assert "&lt;b&gt;bad&lt;/b&gt;" in page and "Requester name" in page and "data-field='general'" in page


# -- the cohort picker's logic -------------------------------------------------------------

def test_pasted_ids_any_separators_and_lost_zeros():
    choice = cl.choice_from_text("1; 0000002,3\t\t100005 | 0000001\n2000000004  abc")
    assert choice.raw_ids == ("1", "0000002", "3", "100005", "0000001", "2000000004", "abc")
    assert choice.ids == [S1_ID, S2_ID, S3_ID, S5_ID, "2000000004"]  # padded, distinct, in order
    assert choice.spec() == {"student_ids": choice.ids}
    assert cl.choice_from_text("  \n ").spec() is None
    assert cl.choice_from_text("5", id_kind="district").spec() == {"student_ids": ["0000005"], "id_kind": "district"}


def test_summary_counts_every_kind_of_problem(tiny_con):
    choice = cl.choice_from_text(f"1 {S2_ID} 0000002 3 9999999 12ab 2000000004")
    summary = cl.summarize(tiny_con, choice, [Y1])
    assert summary.given == 7
    # Y1: students 1 and 2 enrolled; 3 and 4 (by state ID) exist but were not enrolled in Y1.
    assert summary.counts == {"matched": 2, "unknown": 1, "duplicated": 1, "malformed": 1, "not_enrolled": 2}
    assert summary.problems["unknown"] == ["9999999"]
    assert summary.problems["duplicated"] == ["0000002"]
    assert summary.problems["malformed"] == ["12ab (not all digits)"]
    assert summary.problems["not_enrolled"] == ["3", "2000000004"]
    assert summary.consent_valid is None and "policy" in summary.consent_note  # no policy: no consent count
    no_partner = cl.summarize(tiny_con, choice, [Y1], policy=load_policy("bps"), partner_id=" ")
    assert no_partner.consent_valid is None and "partner ID" in no_partner.consent_note
    page = cl.summary_html(summary)
    assert "data-count='matched'>2<" in page and "9999999" in page


def test_summary_never_shows_names_or_birth_dates(tiny_con):
    frames = tiny_con.table("students").to_pandas()
    summary = cl.summarize(tiny_con, cl.choice_from_text(" ".join(frames["student_id"])), [Y2],
                           policy=load_policy("bps"), partner_id="P-01", as_of=AS_OF)
    page = cl.summary_html(summary) + repr(summary.to_dict())
    for value in list(frames["first_name"]) + list(frames["last_name"]) + [str(d)[:10] for d in frames["date_of_birth"]]:
        assert value not in page


def test_program_and_school_choices(tiny_con):
    program = cl.choice_from_program("PRG-001")
    assert program.spec() == {"program": "PRG-001"}
    frozen = cl.choice_from_program("PRG-001", date(2025, 10, 20))
    cohort = cl.resolve(tiny_con, frozen, [Y2])
    assert cohort.student_ids == [S2_ID, S3_ID]  # 3 was tagged 10-06 and dropped 11-03
    assert frozen.spec(cohort) == {"student_ids": [S2_ID, S3_ID]}
    # Without a date: every student the program served during the years, as the decision counts
    # a request's `program:` (3 was dropped in November, but served in Y2).
    assert cl.resolve(tiny_con, program, [Y2]).student_ids == [S2_ID, S3_ID]
    frozen_in_june = cl.resolve(tiny_con, cl.choice_from_program("PRG-001", date(2026, 6, 1)), [Y2])
    assert S3_ID not in frozen_in_june.student_ids
    school = cl.choice_from_school("1001", [5, 4])
    assert school.spec() == {"school": "1001", "grades": [4, 5]}
    assert cl.resolve(tiny_con, school, [Y2]).student_ids == [S2_ID]
    assert cl.summarize(tiny_con, school, [Y2]).given == 1


def _csv_bytes(text: str) -> bytes:
    return text.encode("utf-8")


def test_upload_csv_finds_the_id_column_and_keeps_zeros():
    ids, kind = cl.ids_from_upload("roster.csv", _csv_bytes("name_of_program,student_id\nA,0000001\nB,0100005\n"))
    assert ids == ["0000001", "0100005"] and kind == "auto"
    # A spreadsheet export that stored the IDs as numbers: the picker pads them back.
    choice = cl.choice_from_upload("export.csv", _csv_bytes("1\n100005.0\n"))
    assert choice.ids == [S1_ID, S5_ID]
    state = cl.choice_from_upload("s.csv", _csv_bytes("sasid\n2000000004\n"))
    assert state.id_kind == "state" and state.spec() == {"student_ids": ["2000000004"], "id_kind": "state"}
    with pytest.raises(ValueError, match="not .pdf"):
        cl.ids_from_upload("ids.pdf", b"1")


def test_upload_xlsx_reads_ids_as_text():
    buffer = io.BytesIO()
    pd.DataFrame({"Student ID": ["0000001", "0000002"], "grade": [5, 4]}).to_excel(buffer, index=False)
    ids, _ = cl.ids_from_upload("roster.xlsx", buffer.getvalue())
    assert ids == ["0000001", "0000002"]


@pytest.mark.parametrize("pack", ["bps", "dmps", "mps"])
def test_consent_count_agrees_with_the_decision(small_con, pack):
    """The picker's consent count uses the pack's consent rule, exactly as the decision does."""
    consents = small_con.table("consents").to_pandas()
    partner = consents["partner_id"].value_counts().index[0]
    students = sorted(set(consents.loc[consents["partner_id"] == partner, "student_id"]))[:300]
    policy = load_policy(pack)
    choice = cl.choice_from_ids(students)
    summary = cl.summarize(small_con, choice, ["2025-2026"], policy=policy, partner_id=partner, as_of=AS_OF)
    cohort = cl.resolve(small_con, choice, ["2025-2026"])
    status = evidence.consent_status(small_con, cohort.student_ids, partner, AS_OF, policy.pack.consent)
    assert summary.consent_valid == sum(v is None for v in status.values())
    request = parse_request({
        "id": "R", "received": "2026-05-04", "purpose": "p", "audience": "a", "level": "identified",
        "requester": {"name": "P", "role": "community_partner", "partner_id": partner},
        "years": ["2025-2026"], "cohort": {"student_ids": choice.ids}, "fields": ["name"]})
    decision = decide(request, policy, small_con, as_of=AS_OF)
    judged = [s for s in decision.students if not s.reasons or s.reasons[0].rule == "consent"]
    if len(judged) == summary.matched:  # everyone in scope: identified students are the consented ones
        assert sum(s.level == "identified" for s in judged) == summary.consent_valid


def test_consent_rules_differ_between_packs(small_con):
    consents = small_con.table("consents").to_pandas()
    partner = consents["partner_id"].value_counts().index[0]
    students = sorted(set(consents.loc[consents["partner_id"] == partner, "student_id"]))
    counts = {pack: cl.summarize(small_con, cl.choice_from_ids(students), ["2025-2026"], policy=load_policy(pack),
                                 partner_id=partner, as_of=AS_OF).consent_valid for pack in ("bps", "dmps", "mps")}
    assert counts["dmps"] <= counts["bps"] and counts["mps"] <= counts["bps"]
    assert counts["bps"] > 0 and (counts["dmps"] < counts["bps"] or counts["mps"] < counts["bps"])


# -- saving --------------------------------------------------------------------------------

@pytest.fixture
def register(tmp_path):
    reg = RequestRegister(f"sqlite:///{tmp_path / 'register.sqlite'}")
    yield reg
    reg.close()


def test_save_writes_a_request_file_and_an_id_file_and_registers(tmp_path, small_con, register):
    ids = small_con.table("students").select("student_id").order_by("student_id").limit(5).to_pandas()["student_id"].tolist()
    assert ids[0].startswith("0")
    data = il.request_data(_values(level="identified", nda_id="NDA-0001"))
    saved = il.save_request(data, tmp_path / "requests", ids=ids, register=register, policy=load_policy("bps"),
                            warehouse=small_con, as_of=AS_OF, by="ana")
    assert saved.path == tmp_path / "requests" / "REQ-F-1.yml"
    assert saved.id_file.read_text().splitlines() == ["student_id", *ids]  # zeros kept
    raw = yaml.safe_load(saved.path.read_text())
    assert raw["cohort"] == {"student_ids": "REQ-F-1.ids.csv"}
    assert list(raw)[:4] == ["id", "received", "requester", "purpose"]
    again = load_request(saved.path)
    assert list(again.cohort.student_ids) == ids and again.cohort.student_ids_file == "REQ-F-1.ids.csv"
    shown = register.show("REQ-F-1")
    assert shown["status"] == "received" and shown["registered_by"] == "ana"
    assert shown["decisions"][0]["outcome"] == saved.decision.outcome
    assert shown["source_file"] == str(saved.path)


def test_save_never_overwrites(tmp_path, small_con, register):
    data = il.request_data(_values())
    first = il.save_request(data, tmp_path, register=register)
    before = first.path.read_text()
    with pytest.raises(il.FormError, match="already exists"):
        il.save_request(dict(data, purpose="Another purpose"), tmp_path, register=register)
    assert first.path.read_text() == before
    # A file that is there but not registered is not overwritten either, and nothing is registered.
    (tmp_path / "REQ-F-2.yml").write_text("hand written\n")
    with pytest.raises(il.FormError, match="not overwritten"):
        il.save_request(dict(data, id="REQ-F-2"), tmp_path, register=register)
    assert (tmp_path / "REQ-F-2.yml").read_text() == "hand written\n"
    assert [r.request_id for r in register.list_requests()] == ["REQ-F-1"]
    # Registered under that ID from somewhere else: refused before any file is written.
    other = tmp_path / "other"
    with pytest.raises(il.FormError, match="already in the register"):
        il.save_request(data, other, register=register)
    assert not other.exists() or not any(other.iterdir())


def test_save_refuses_an_invalid_request_and_unsafe_file_names(tmp_path):
    with pytest.raises(Exception, match="Purpose"):
        il.save_request(il.request_data(_values(purpose="")), tmp_path)
    # An ID that cannot name a file cannot name a release either: the request itself refuses it.
    with pytest.raises(RequestError, match="Request ID: '../escape' cannot be used"):
        il.save_request(il.request_data(_values(request_id="../escape")), tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- the widgets, driven from Python -------------------------------------------------------

@pytest.fixture
def form(small_con, tmp_path):
    from workbench.forms import IntakeForm

    reg = RequestRegister(f"sqlite:///{tmp_path / 'register.sqlite'}")
    yield IntakeForm("bps", warehouse=small_con, as_of=AS_OF, folder=tmp_path / "requests", register=reg,
                     debounce=0, by="tester")
    reg.close()


def _fill(form, **overrides):
    values = dict(request_id="REQ-W-1", name="Jane Doe", role="community_partner", organization="Northside Youth Club",
                  partner_id="P-01", purpose="Evaluate tutoring", audience="Program staff", level="aggregate",
                  years=["2025-2026"], measures=["enrolled", "attendance_rate"], breakdowns=["grade"])
    values.update(overrides)
    form.set_values(**values)


def test_empty_form_lists_what_is_missing_without_marking_untouched_fields(form):
    assert form.decision is None
    assert "wb-problems" in form.decision_panel.value and "wb-decision'" not in form.decision_panel.value
    assert all(label.value == "" for label in form.field_errors.values()), "nothing is red before the analyst types"
    assert form.decide_count == 0
    form.inputs["name"].value = "x"
    form.inputs["name"].value = ""  # touched, then emptied: now the field says what is wrong
    form.refresh_now()
    assert "is required" in form.field_errors["name"].value
    assert form.field_errors["purpose"].value == ""
    form.save_clicked()  # trying to save shows every problem
    assert "is required" in form.field_errors["purpose"].value
    assert form.field_errors["exception"].value == ""


def test_the_decision_says_it_is_updating_until_it_is_decided(form):
    _fill(form)
    waiting = []
    form._debounced = lambda: waiting.append(True)
    form.inputs["purpose"].value = "Another purpose"  # the refresh is pending (debounced)
    assert waiting and "Updating the decision" in form.decision_status.value
    form._refresh()
    assert form.decision_status.value == "" and form.decision.outcome in ("approve", "partial")


def test_decision_updates_as_fields_change(form, small_con):
    _fill(form)
    assert form.decide_count == 1  # set_values: one decision for all the fields set
    assert form.problems == {}
    assert form.decision is not None and form.decision.level == "aggregate"
    assert f"data-outcome='{form.decision.outcome}'" in form.decision_panel.value
    assert form.decision.due_date.isoformat() in form.decision_panel.value
    assert form.field_errors["name"].value == ""
    count = form.decide_count
    form.inputs["level"].value = "identified"
    assert form.rows["measures"].layout.display == "none" and form.rows["fields"].layout.display is None
    assert "fields" in form.problems and form.decision is None  # incomplete: no decision
    form.inputs["fields"].value = ("name", "attendance")
    assert form.decision.requested_level == "identified" and form.decision.outcome != "refuse"
    # A partner that is not registered is refused; the decision says so as soon as the field changes.
    form.inputs["partner_id"].value = "P-99"
    assert form.decision.outcome == "refuse" and "Refuse" in form.decision_panel.value
    assert "registration" in form.decision_panel.value
    form.inputs["partner_id"].value = "P-01"
    assert form.decision.outcome != "refuse" and form.decide_count == count + 3
    # Setting a field to what it already says computes nothing.
    form.inputs["purpose"].value = "Evaluate tutoring"
    form.inputs["audience"].value = "Program staff"
    assert form.decide_count == count + 3
    # A problem replaces the decision at once, field by field.
    form.inputs["name"].value = ""
    assert form.decision is None and "is required" in form.field_errors["name"].value
    assert "data-field='name'" in form.decision_panel.value


def test_media_request_is_redirected(form):
    _fill(form, role="media", partner_id="")
    assert form.decision.outcome == "redirect"
    assert "Redirect" in form.decision_panel.value


def test_picker_paste_counts_and_feeds_the_decision(form, small_con):
    _fill(form, level="identified", fields=["name", "grade"], nda_id="NDA-0001", measures=[], breakdowns=[])
    enrolled = small_con.table("student_years").filter(lambda t: t.school_year == "2025-2026") \
        .select("student_id").order_by("student_id").limit(6).to_pandas()["student_id"].tolist()
    pasted = ", ".join(sid.lstrip("0") for sid in enrolled) + f"; {enrolled[0]} 9999999 x1"
    form.picker.tabs.selected_index = 1
    form.picker.paste.value = pasted
    summary = form.picker.summary_data
    assert summary.counts == {"matched": 6, "unknown": 1, "duplicated": 1, "malformed": 1, "not_enrolled": 0}
    assert form.request_data()["cohort"] == {"student_ids": enrolled + ["9999999"]}
    decision = form.decision
    assert decision.cohort["kind"] == "student_ids"
    assert decision.cohort["unmatched"] == 1
    assert summary.consent_valid == decision.cohort["by_level"].get("identified", 0)
    assert summary.outside_scope == 0
    html_summary = form.picker.summary.value
    assert "data-count='consent'" in html_summary and "9999999" in html_summary


def test_picker_upload_through_the_file_upload_widget(form, small_con):
    _fill(form)
    ids = small_con.table("student_years").filter(lambda t: t.school_year == "2025-2026") \
        .select("student_id").order_by("student_id").limit(12).to_pandas()["student_id"].tolist()
    content = ("student_id,first_program\n" + "\n".join(f"{sid},x" for sid in ids) + "\n").encode()
    form.picker.upload.value = ({"name": "roster.csv", "type": "text/csv", "size": len(content),
                                 "content": memoryview(content), "last_modified": datetime.now(timezone.utc)},)
    assert form.picker.mode == "upload"
    assert form.picker.upload.value == ()  # the file's bytes are not kept in the widget state
    assert form.picker.summary_data.counts["matched"] == 12
    assert "roster.csv" in form.picker.summary.value or "roster.csv" in form.picker.upload_name.value
    assert form.decision.cohort == {"kind": "student_ids", "size": 12, "by_level": {"aggregate": 12}, "unmatched": 0,
                                    "by_year": {"2025-2026": 12}, "source": "student IDs"}
    form.picker.load_file("bad.docx", b"x")
    assert "Cannot read" in form.picker.upload_name.value
    assert "cohort" in form.problems and form.decision is None


def test_picker_program_and_school_tabs(form, small_con):
    _fill(form)
    programs = small_con.table("programs").to_pandas()
    form.picker.tabs.selected_index = 3
    assert "cohort" in form.problems  # a tab chosen, nothing picked on it
    form.picker.program.value = programs["program_id"].iloc[0]
    assert form.request_data()["cohort"] == {"program": programs["program_id"].iloc[0]}
    assert form.decision is not None and form.decision.cohort["kind"] == "program"
    form.picker.tabs.selected_index = 4
    school = programs["school_id"].iloc[0]
    form.picker.school.value = school
    form.picker.grades.value = (3, 4)
    assert form.request_data()["cohort"] == {"school": school, "grades": [3, 4]}
    assert form.decision.cohort["kind"] == "school"
    assert form.picker.summary_data.counts["matched"] == form.decision.cohort["size"]
    form.picker.tabs.selected_index = 0
    assert "cohort" not in form.request_data() and form.decision.cohort["kind"] == "district"


def test_save_button_writes_and_registers_then_refuses_to_overwrite(form, tmp_path):
    _fill(form)
    form.picker.tabs.selected_index = 1
    form.picker.paste.value = "1 2 2 3 abc"
    form.save_button.click()
    assert "wb-save-ok" in form.save_status.value, form.save_status.value
    saved = form.saved
    assert saved.path.parent == tmp_path / "requests" and saved.id_file.exists()
    request = load_request(saved.path)
    assert list(request.cohort.student_ids) == ["0000001", "0000002", "0000003"]
    assert "1 malformed and 1 duplicated" in request.notes
    assert form._register.status("REQ-W-1") == "received"
    form.save_button.click()
    assert "wb-save-error" in form.save_status.value and "already" in form.save_status.value


def test_save_with_problems_says_what_is_missing(form):
    form.save_button.click()
    assert "Not saved" in form.save_status.value and "Requester name" in form.save_status.value


def test_debouncer_runs_once_after_a_burst():
    from workbench.forms.widgets import Debouncer

    calls = []

    async def burst():
        debounced = Debouncer(lambda: calls.append(1), 0.05)
        for _ in range(10):
            debounced()
        assert debounced.pending and calls == []
        await asyncio.sleep(0.2)
        assert not debounced.pending

    def without_loop():
        Debouncer(lambda: calls.append(2), 0.05)()  # no event loop: at once
        assert calls == [1, 2]

    # A thread of its own: other tests (Playwright's sync API) leave an event loop running in the
    # main thread, and the debouncer must be judged with and without one.
    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, burst()).result()
        assert calls == [1]
        thread.submit(without_loop).result()


# -- 5,000 pasted IDs ----------------------------------------------------------------------

def test_five_thousand_pasted_ids_stay_responsive(form, small_con, monkeypatch):
    """5,000 IDs cost the same number of warehouse queries as 10, and well under a few seconds."""
    backend = type(small_con)
    queries = []
    original = backend.execute

    def counting(self, *args, **kwargs):
        queries.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(backend, "execute", counting)
    _fill(form, level="identified", fields=["name", "grade"], nda_id="NDA-0001", measures=[], breakdowns=[])
    students = small_con.table("students").select("student_id").order_by("student_id").to_pandas()["student_id"].tolist()
    ids = [sid.lstrip("0") for sid in students]
    ids += [str(9000000 + i) for i in range(5000 - len(ids))]  # the rest are unknown
    assert len(ids) == 5000
    form.picker.tabs.selected_index = 1

    def paste(text: str) -> tuple[float, int]:
        queries.clear()
        start = time.perf_counter()
        form.picker.paste.value = text
        return time.perf_counter() - start, len(queries)

    _, few = paste(" ".join(ids[:10]))
    seconds, many = paste("\n".join(ids))
    assert form.picker.summary_data.counts["matched"] + form.picker.summary_data.counts["not_enrolled"] == len(students)
    assert form.picker.summary_data.counts["unknown"] == 5000 - len(students)
    assert form.decision is not None and form.decision.cohort["unmatched"] >= 5000 - len(students)
    assert many == few, "the number of warehouse queries must not grow with the number of IDs"
    print(f"\n5,000 pasted IDs: picker + decision in {seconds:.2f} s, {many} queries")
    assert seconds < 15


def test_long_id_lists_go_to_the_warehouse_as_a_table_with_the_same_result(small_con, monkeypatch):
    """cohort_from_ids joins long lists against an in-memory table instead of an IN list."""
    import workbench.cohort as cohort_module
    import workbench.warehouse as warehouse_module

    students = small_con.table("students").select("student_id", "state_id").order_by("student_id").to_pandas()
    ids = list(students["student_id"].str.lstrip("0")[:400]) + list(students["state_id"][400:700]) + ["9999999", "x"]
    by_table = cohort_module.cohort_from_ids(small_con, ids, ["2025-2026"])
    monkeypatch.setattr(warehouse_module, "_IN_LIST_LIMIT", 10_000)
    by_list = cohort_module.cohort_from_ids(small_con, ids, ["2025-2026"])
    assert by_table.counts() == by_list.counts()
    assert by_table.student_ids == by_list.student_ids
    assert by_table.unknown == by_list.unknown == ["9999999"]
    assert by_table.not_enrolled == by_list.not_enrolled
