"""The ``workbench`` papermill engine: nbclient, with every save of the output notebook checked.

Papermill writes the output notebook after each cell and at the end. With this engine each of
those writes goes through the save-time check (`workbench.guard.savecheck`): an output the guard
would have hidden is cleared, with a note, before the file is written.

    papermill.execute_notebook(src, out, kernel_name="workbench", engine_name="workbench")

The engine is registered with papermill by the ``papermill.engine`` entry point of the package,
and by `register()` for a process that runs from a source tree.
"""

from __future__ import annotations

import json

import nbformat
from papermill.engines import NBClientEngine, NotebookExecutionManager, papermill_engines
from papermill.iorw import write_ipynb

from workbench.guard.savecheck import check_notebook

ENGINE_NAME = "workbench"


def checked_copy(nb: nbformat.NotebookNode, memo: dict | None = None) -> nbformat.NotebookNode:
    cleaned, _ = check_notebook(json.loads(nbformat.writes(nb)), memo=memo)
    return nbformat.from_dict(cleaned)


class CheckedExecutionManager(NotebookExecutionManager):
    """Saves (papermill saves before and after every cell) are checked; each output is read once
    per run (`savecheck.scan_notebook`'s memo), not once per save."""

    def __init__(self, *args, on_cell=None, save_each_cell=True, **kwargs):
        self.check_memo: dict = {}
        self.on_cell = on_cell
        self.save_each_cell = save_each_cell
        self.finished = False
        super().__init__(*args, **kwargs)
        self.code_cells = [i for i, cell in enumerate(self.nb.cells) if cell.cell_type == "code"]

    def cell_start(self, cell, cell_index=None, **kwargs):
        if self.on_cell is not None and cell_index in self.code_cells:
            self.on_cell(self.code_cells.index(cell_index) + 1, len(self.code_cells), _heading_before(self.nb, cell_index))
        return super().cell_start(cell, cell_index, **kwargs)

    def save(self, **kwargs):
        if self.output_path and (self.save_each_cell or self.finished):
            write_ipynb(checked_copy(self.nb, self.check_memo), self.output_path)
        self.last_save_time = self.now()

    def notebook_complete(self, **kwargs):
        self.finished = True  # the last save: always written, also after a failing cell
        return super().notebook_complete(**kwargs)


def _heading_before(nb: nbformat.NotebookNode, index: int) -> str:
    """The text of the last markdown heading above cell `index` (the section a cell is in)."""
    for cell in reversed(nb.cells[:index]):
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


class CheckedEngine(NBClientEngine):
    """`on_cell(number, of, section)` (optional) is called as each code cell starts.

    `save_each_cell=False` writes the output notebook once, when the run ends (also when a cell
    fails): for a notebook written into a staging folder that nobody reads while it runs, each
    intermediate save is a check and a write for nothing.
    """

    @classmethod
    def execute_notebook(cls, nb, kernel_name, output_path=None, progress_bar=True, log_output=False,
                         autosave_cell_every=30, on_cell=None, save_each_cell=True, **kwargs):
        nb_man = CheckedExecutionManager(nb, output_path=output_path, progress_bar=progress_bar,
                                         log_output=log_output, autosave_cell_every=autosave_cell_every,
                                         on_cell=on_cell, save_each_cell=save_each_cell)
        nb_man.notebook_start()
        try:
            cls.execute_managed_notebook(nb_man, kernel_name, log_output=log_output, **kwargs)
        finally:
            nb_man.cleanup_pbar()
            nb_man.notebook_complete()
        return checked_copy(nb_man.nb, nb_man.check_memo)  # papermill writes what the engine returns, once more


def register() -> str:
    """Make ``engine_name="workbench"`` available to papermill in this process."""
    papermill_engines.register(ENGINE_NAME, CheckedEngine)
    return ENGINE_NAME
