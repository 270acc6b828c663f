"""The save-time check: notebooks are stored without what the guard would have hidden.

The notebooks here are written as an unguarded kernel would have left them (the attack: an
analyst ran the plain Python kernel, or pasted an output), and the check is run the three ways a
notebook is stored: the JupyterLab hook (in test_kernel_install.py, through a real server), the
papermill engine and `workbench scan`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from workbench.guard import settings, student_index
from workbench.guard.identifiers import StudentIndex
from workbench.guard.savecheck import check_notebook, pre_save_hook, scan_notebook
from workbench.policy import load_policy

WORKBENCH = Path(sys.executable).parent / "workbench"
COUNTS = pd.DataFrame({"enrolled": [120, 45, 230, 88], "chronic": [7, 15, 3, 22]},
                      index=pd.Index(["Adams", "Baker", "Carver", "Dewey"], name="school"))


@pytest.fixture(scope="module")
def index(tiny_con):
    return StudentIndex.from_warehouse(tiny_con)


@pytest.fixture(scope="module")
def rule():
    return load_policy("bps").small_group_rule()


_cell_numbers = iter(range(10**6))


def cell(*outputs, source="x"):
    return {"cell_type": "code", "id": f"cell-{next(_cell_numbers)}", "execution_count": 1, "metadata": {},
            "source": source, "outputs": list(outputs)}


def stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


def result(data):
    return {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": data}


def notebook(*cells, metadata=None):
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": metadata or {}, "cells": list(cells)}


def kinds(scan):
    return sorted({finding.kind for finding in scan.findings})


def test_identifiers_are_found_in_every_kind_of_output(index, rule):
    nb = notebook(
        cell(stream("Ana Lopez\n")),
        cell(result({"text/plain": "'0000002'", "text/html": "<b>2015-05-02</b>"})),
        cell({"output_type": "error", "ename": "KeyError", "evalue": "'0000003'", "traceback": ["KeyError: '0000003'"]}),
        cell(result({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})),
        metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"m": {"state": {"_options_labels": ["Eli Diaz"]}}}}}},
    )
    scan = scan_notebook(nb, index, rule, "aggregate")
    found = {(f.cell, f.kind) for f in scan.findings}
    assert found == {(1, "name"), (2, "student_id"), (2, "date_of_birth"), (3, "student_id"), (0, "name")}


def test_small_counts_are_found_in_unguarded_tables(index, rule):
    html = COUNTS.to_html()  # the guard is not installed in this process: the raw table
    resource = json.loads(COUNTS.reset_index().to_json(orient="table"))
    nb = notebook(
        cell(result({"text/html": html, "text/plain": COUNTS.to_string()})),
        cell(result({"application/vnd.dataresource+json": resource, "text/plain": "x"})),
        cell(stream(COUNTS.to_string() + "\n")),
        cell(result({"text/plain": "Ana has 3 siblings"})),
    )
    scan = scan_notebook(nb, index, rule, "aggregate")
    assert [(f.cell, f.kind) for f in scan.findings] == [(1, "small_count"), (2, "small_count"), (3, "small_count")]


def test_outputs_the_guard_made_are_left_as_they_are(index, rule, monkeypatch):
    import workbench.guard as guard

    monkeypatch.setenv(settings.POLICY_ENV, "bps")
    settings.reset()
    guard.activate(policy="bps", level="aggregate")
    try:
        guarded = notebook(cell(result({"text/html": COUNTS._repr_html_(), "text/plain": repr(COUNTS)})),
                           cell(stream(COUNTS.to_string())),
                           cell(stream("[student name] [student name] [student ID]\n")))
    finally:
        guard.deactivate()
        settings.reset()
    assert scan_notebook(guarded, index, rule, "aggregate").clean


def test_the_level_decides_which_identifiers_may_stay(index, rule):
    nb = notebook(cell(stream("Ana Lopez 0000001 2014-03-01\n")))
    assert kinds(scan_notebook(nb, index, rule, "directory")) == ["date_of_birth", "student_id"]
    assert scan_notebook(nb, index, rule, "identified").clean


def test_a_leaking_output_is_cleared_with_a_note_and_the_rest_kept(index, rule):
    nb = notebook(cell(stream("total 120\n"), stream("Ben Smith\n")), cell(result({"text/plain": "2"})))
    cleaned, scan = check_notebook(nb, level="aggregate", rule=rule, index=index)
    outputs = cleaned["cells"][0]["outputs"]
    assert "cleared when this notebook was saved" in outputs[0]["text"] and "a student's name" in outputs[0]["text"]
    assert outputs[1]["text"] == "total 120\n" and len(outputs) == 2
    assert cleaned["cells"][1] == nb["cells"][1]
    assert "Smith" not in json.dumps(cleaned)
    assert cleaned["metadata"]["workbench_guard"]["cleared_outputs"] == 1
    assert nb["cells"][0]["outputs"][1]["text"] == "Ben Smith\n"  # the caller's copy is not changed


def test_a_remembered_output_is_found_again_where_it_now_is(index, rule):
    # papermill saves after every cell: the engine keeps a memo so each output is read once.
    leaking, clean_output = stream("Ben Smith\n"), stream("total 120\n")
    html = result({"text/html": COUNTS.to_html(), "text/plain": "x"})
    memo: dict = {}
    first = scan_notebook(notebook(cell(clean_output), cell(leaking)), index, rule, "aggregate", memo)
    assert [(f.cell, f.output, f.kind) for f in first.findings] == [(2, 1, "name")]
    later = notebook(cell(html), cell(clean_output, leaking), cell(leaking))
    remembered = scan_notebook(later, index, rule, "aggregate", memo)
    assert remembered.findings == scan_notebook(later, index, rule, "aggregate").findings
    assert [(f.cell, f.output, f.kind) for f in remembered.findings] == [
        (1, 1, "small_count"), (2, 2, "name"), (3, 1, "name")]
    # The same output under another level is read again, not taken from the memo.
    assert scan_notebook(notebook(cell(leaking)), index, rule, "identified", memo).clean
    # An output whose content changed is read again.
    leaking["text"] = "total 121\n"
    assert scan_notebook(notebook(cell(leaking)), index, rule, "aggregate", memo).clean


def test_the_jupyter_hook_cleans_the_model_in_place(index, monkeypatch):
    student_index.set_index(index)
    monkeypatch.delenv(settings.POLICY_ENV, raising=False)
    monkeypatch.delenv(settings.LEVEL_ENV, raising=False)
    settings.reset()
    try:
        model = {"type": "notebook", "content": notebook(cell(stream("Cara Jones\n")))}
        pre_save_hook(model=model, path="n.ipynb", contents_manager=None)
        text = json.dumps(model)
        assert "Jones" not in text and "cleared when this notebook was saved" in text
        other = {"type": "file", "content": "Cara Jones"}
        pre_save_hook(model=other, path="notes.txt")
        assert other["content"] == "Cara Jones"  # only notebooks are the hook's
    finally:
        student_index.set_index(None)
        settings.reset()


def test_a_failing_check_clears_every_output(monkeypatch):
    from workbench.guard import savecheck

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(savecheck, "check_notebook", broken)
    model = {"type": "notebook", "content": notebook(cell(stream("Cara Jones\n")), cell(result({"text/plain": "2"})))}
    pre_save_hook(model=model, path="n.ipynb")
    assert "Jones" not in json.dumps(model)
    assert all("check failed" in c["outputs"][0]["text"] for c in model["content"]["cells"])


# --- workbench scan ----------------------------------------------------------------------------

def scan_cli(*args, warehouse):
    env = {**os.environ, "WORKBENCH_WAREHOUSE": str(warehouse), "WORKBENCH_POLICY": "bps", "WORKBENCH_LEVEL": "aggregate"}
    return subprocess.run([str(WORKBENCH), "scan", *map(str, args)], capture_output=True, text=True, env=env)


def test_scan_clears_a_leaking_notebook_and_says_where(tmp_path, tiny_warehouse_path):
    path = tmp_path / "leak.ipynb"
    path.write_text(json.dumps(notebook(cell(stream("Dee Nguyen\n")), cell(result({"text/html": COUNTS.to_html()})))))
    clean = tmp_path / "clean.ipynb"
    clean.write_text(json.dumps(notebook(cell(result({"text/plain": "2"})))))
    before = clean.read_text()
    done = scan_cli(path, clean, warehouse=tiny_warehouse_path)
    assert done.returncode == 0, done.stderr
    assert "leak.ipynb: 2 output(s) cleared" in done.stdout
    assert "cell 1 output 1 (stdout): a student's name" in done.stdout and "a small count" in done.stdout
    assert "Nguyen" not in done.stdout + done.stderr
    assert "student index of 5 students" in done.stderr
    assert "Nguyen" not in path.read_text() and ">7<" not in path.read_text()
    assert nbformat.validate(nbformat.read(path, as_version=4)) is None
    assert clean.read_text() == before and "nothing the guard would hide" in done.stdout


def test_scan_check_only_reports_and_writes_nothing(tmp_path, tiny_warehouse_path):
    path = tmp_path / "leak.ipynb"
    path.write_text(json.dumps(notebook(cell(stream("0000004\n")))))
    before = path.read_text()
    done = scan_cli("--check", path, warehouse=tiny_warehouse_path)
    assert done.returncode == 3 and "would be cleared" in done.stdout
    assert path.read_text() == before


@pytest.mark.parametrize("content, message", [(None, "does not exist"), ("{not json", "is not a notebook")])
def test_scan_names_a_bad_file_and_exits_2(tmp_path, tiny_warehouse_path, content, message):
    path = tmp_path / "bad.ipynb"
    if content is not None:
        path.write_text(content)
    done = scan_cli(path, warehouse=tiny_warehouse_path)
    assert done.returncode == 2 and message in done.stderr and "bad.ipynb" in done.stderr
    assert "Traceback" not in done.stderr


def test_scan_rejects_an_unknown_level(tmp_path, tiny_warehouse_path):
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(notebook()))
    done = scan_cli("--level", "everything", path, warehouse=tiny_warehouse_path)
    assert done.returncode == 2 and "--policy/--level" in done.stderr and "Traceback" not in done.stderr


# --- papermill ---------------------------------------------------------------------------------

def _run_with_the_engine(tmp_path, index, monkeypatch, sources: list[str], **engine_options) -> None:
    """Run cells in an unguarded python3 kernel through the workbench papermill engine into out.ipynb."""
    import papermill

    from workbench.guard import papermill_engine

    student_index.set_index(index)
    monkeypatch.delenv(settings.POLICY_ENV, raising=False)
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    settings.reset()
    source = nbformat.v4.new_notebook()
    source.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source.cells = [nbformat.v4.new_code_cell(code) for code in sources]
    nbformat.write(source, tmp_path / "in.ipynb")
    try:
        papermill.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   engine_name=papermill_engine.register(), progress_bar=False, **engine_options)
    finally:
        student_index.set_index(None)
        settings.reset()


@pytest.mark.slow
def test_the_papermill_engine_stores_no_leak_even_from_an_unguarded_kernel(tmp_path, index, monkeypatch):
    _run_with_the_engine(tmp_path, index, monkeypatch, [
        "print('Eli Diaz', '0100005')",
        "import pandas as pd\npd.DataFrame({'n': [120, 4]}, index=['a', 'b'])",
        "print('done')",
    ])
    saved = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    stored = json.dumps([c.outputs for c in saved.cells])  # the code is the analyst's; its outputs are checked
    assert "Diaz" not in stored and "100005" not in stored
    assert all("cleared when this notebook was saved" in c.outputs[0]["text"] for c in saved.cells[:2])
    assert saved.cells[2].outputs[0]["text"] == "done\n"


@pytest.mark.slow
def test_saving_once_at_the_end_still_writes_a_checked_notebook_when_a_cell_fails(tmp_path, index, monkeypatch):
    from papermill.exceptions import PapermillExecutionError

    from workbench.guard import papermill_engine

    writes = []
    real_write = papermill_engine.write_ipynb
    monkeypatch.setattr(papermill_engine, "write_ipynb", lambda nb, path: (writes.append(path), real_write(nb, path)))
    with pytest.raises(PapermillExecutionError):
        _run_with_the_engine(tmp_path, index, monkeypatch, [
            "print('Eli Diaz', '0100005')",
            "raise ValueError('stop here')",
            "print('never')",
        ], save_each_cell=False)
    assert len(writes) == 1  # once, at the end, although a cell failed
    saved = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    stored = json.dumps([c.outputs for c in saved.cells if c.cell_type == "code"])
    assert "Diaz" not in stored and "100005" not in stored
    assert "stop here" in stored  # the failing cell's error is in the saved notebook
