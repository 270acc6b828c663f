"""Dashboard filters choose among released tables and columns; they never make a new figure.

A release is written as a recipient gets it (CSV, XLSX, PNG, manifest with checksums); the page is
rendered from it with every combination of filters, and every cell the page shows must be the cell
of the same row and column of a released CSV.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.dashboard import content, filters
from workbench.dashboard.filters import Filters
from workbench.release.store import ReleaseStore, manifest_text
from workbench.report.files import write_xlsx

YEARS = ("2024-2025", "2025-2026")
TITLES = {"grade": "Grade", "gender": "Gender", "students": "Students", "chronic_absence": "Chronically absent",
          "chronic_absence_district": "Chronically absent (district)",
          "assessment_benchmark_ela": "Meeting benchmark, ELA"}


def _table_csv(dim: str, labels: list[str], year: str) -> str:
    rows = []
    for i, label in enumerate([*labels, "Total"]):
        students = "*" if i == 0 else str(40 + i)
        absent = "*" if students == "*" else f"{20 + i}.{i}%"
        ela = "n/a" if label in ("9", "11") else ("*" if students == "*" else f"<={30 + i}%")
        rows.append({dim: label, "students": students, "chronic_absence": absent, "chronic_absence_percent": "",
                     "chronic_absence_district": f"{25 + i}.0%", "chronic_absence_district_percent": f"{25 + i}.0",
                     "assessment_benchmark_ela": ela, "assessment_benchmark_ela_percent": ""})
    out = io.StringIO()
    writer = csv.DictWriter(out, list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@pytest.fixture
def store(tmp_path):
    return build_store(tmp_path)


def build_store(tmp_path) -> ReleaseStore:
    """One release: by grade and by gender for the latest year, by grade for the year before."""
    store = ReleaseStore(tmp_path / "releases")
    folder = store.path_for("AGG-F")
    (folder / "tables").mkdir(parents=True)
    (folder / "charts").mkdir()
    protection = {}
    specs = [("by_grade", "grade", ["8", "9", "10", "11"], YEARS[1]), ("by_gender", "gender", ["F", "M"], YEARS[1]),
             (f"by_grade_{YEARS[0]}", "grade", ["8", "9"], YEARS[0])]
    for name, dim, labels, year in specs:
        text = _table_csv(dim, labels, year)
        (folder / "tables" / f"{name}.csv").write_text(text)
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        shown = frame[[dim, "students", "chronic_absence", "chronic_absence_district", "assessment_benchmark_ela"]]
        shown.columns = [TITLES[c] for c in shown.columns]
        title = f"{year}: Chronically absent, Meeting benchmark, ELA by {TITLES[dim]}"
        write_xlsx(folder / "tables" / f"{name}.xlsx", {"table": shown, "notes": pd.DataFrame({"notes": [title, "* x"]})})
        protection[name] = {"title": title, "year": year, "dims": [dim]}
    from PIL import Image

    for measure in ("chronic_absence", "assessment_benchmark_ela"):
        image = Image.new("RGB", (8, 8), "white")
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        info.add_text("Description", f"Bar chart of {measure} by grade.")
        image.save(folder / "charts" / f"by_grade_{measure}.png", pnginfo=info)
    files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in folder.rglob("*") if p.is_file()}
    manifest = {"release_id": "AGG-F", "files": files, "protection": protection,
                "request": {"id": "AGG-F", "level": "aggregate", "purpose": "p", "received": "2026-05-18",
                            "years": list(YEARS), "requester": {"organization": "Org", "partner_id": "P-04"}},
                "decision": {"outcome": "approve", "level": "aggregate", "as_of": "2026-06-01"},
                "policy": {"title": "Rules"}}
    (folder / "manifest.json").write_text(manifest_text(manifest))
    return store


class _Cells(HTMLParser):
    """Each rendered table's header and body cells, by section."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._row, self._section = {}, None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs["data-table"]
            self.tables[self._section] = {"head": [], "rows": []}
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append((tag, self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            kind = "head" if all(t == "th" for t, _ in self._row) else "rows"
            values = [v for _, v in self._row]
            if kind == "head":
                self.tables[self._section]["head"] = values
            else:
                self.tables[self._section]["rows"].append(values)
            self._row = None


def _shown(html: str) -> dict:
    parser = _Cells()
    parser.feed(html)
    return parser.tables


def test_options_are_what_the_release_holds(store):
    release = content.load_release(store, "AGG-F")
    options = filters.options_for(release)
    assert options.years == tuple((y, y) for y in YEARS)
    assert options.measures == (("chronic_absence", "Chronically absent"),
                                ("assessment_benchmark_ela", "Meeting benchmark, ELA"))
    # In the order of the release's tables, as the store writes the manifest (keys sorted: by_gender first).
    assert options.groups == (("gender", "Gender"), ("grade", "Grade"))
    # A value the release does not offer (a typed URL) is dropped, never used to look anything up.
    assert options.accept({"year": "1999-2000", "measure": "low_income", "group": "school"}) == Filters()
    assert options.accept({"year": YEARS[0], "measure": "chronic_absence"}) == Filters(YEARS[0], "chronic_absence", "")


def test_filters_pick_whole_tables_and_measure_columns(store):
    release = content.load_release(store, "AGG-F")
    by_year = _shown(content.render_html(release, "/", Filters(year=YEARS[0])))
    assert list(by_year) == [f"by_grade_{YEARS[0]}"]
    by_group = _shown(content.render_html(release, "/", Filters(group="gender")))
    assert list(by_group) == ["by_gender"]
    html = content.render_html(release, "/", Filters(year=YEARS[1], measure="chronic_absence", group="grade"))
    shown = _shown(html)
    assert list(shown) == ["by_grade"]
    assert shown["by_grade"]["head"] == ["Grade", "Students", "Chronically absent", "Chronically absent (district)"]
    assert [row[0] for row in shown["by_grade"]["rows"]] == ["8", "9", "10", "11", "Total"]
    # The chosen measure's chart only, with the alt text released in its PNG.
    assert re.findall(r"data-measure='([^']*)'", html) == ["chronic_absence"]
    assert "alt='Bar chart of chronic_absence by grade.'" in html
    nothing = content.render_html(release, "/", Filters(year=YEARS[0], group="gender"))
    assert "No released table matches these filters." in nothing and not _shown(nothing)


def test_not_applicable_and_the_mark_stay_as_released(store):
    release = content.load_release(store, "AGG-F")
    shown = _shown(content.render_html(release, "/", Filters(measure="assessment_benchmark_ela")))["by_grade"]
    column = [row[2] for row in shown["rows"]]
    assert column == ["*", "n/a", "<=32%", "n/a", "<=34%"]  # grades 9 and 11 untested; grade 8 suppressed
    html = content.render_html(release)
    assert "<dt>n/a</dt>" in html and "<dt>*</dt>" in html  # the key explains both, apart


def test_the_static_filter_form_needs_no_script(store):
    html = content.render_html(content.load_release(store, "AGG-F"), "/base/", Filters(measure="chronic_absence"))
    form = re.search(r"<form class='workbench-filters'.*?</form>", html).group(0)
    assert "method='get'" in form and "action='/base/'" in form and "<script" not in html
    assert "<input type='hidden' name='release' value='AGG-F'>" in form
    for name in filters.PARAMETERS:
        assert f"<label for='workbench-filter-{name}'>" in form and f"name='{name}'" in form
    assert "<option value='chronic_absence' selected>" in form
    assert "href='/base/?release=AGG-F'" in form  # clear filters


@settings(max_examples=40, deadline=None)
@given(year=st.sampled_from(("", *YEARS, "2099-2100")), measure=st.sampled_from(
    ("", "chronic_absence", "assessment_benchmark_ela", "students", "low_income")),
    group=st.sampled_from(("", "grade", "gender", "school")))
def test_every_shown_cell_is_the_released_cell(tmp_path_factory, year, measure, group):
    store = _fresh_store(tmp_path_factory)
    release = content.load_release(store, "AGG-F")
    chosen = filters.options_for(release).accept({"year": year, "measure": measure, "group": group})
    for name, table in _shown(content.render_html(release, "/", chosen)).items():
        released = list(csv.DictReader(io.StringIO((store.path_for("AGG-F") / "tables" / f"{name}.csv").read_text())))
        keys = [next(k for k, title in TITLES.items() if title == head) for head in table["head"]]
        assert len(table["rows"]) == len(released)
        for row, record in zip(table["rows"], released):
            assert row == [record[k] for k in keys]


_STORES: dict = {}


def _fresh_store(tmp_path_factory):
    """The fixture's release, built once for the property test (hypothesis reruns the body)."""
    if "store" not in _STORES:
        _STORES["store"] = build_store(tmp_path_factory.mktemp("filters"))
    return _STORES["store"]
