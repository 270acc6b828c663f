"""The display routes of an analyst's notebook, each run in a real guarded kernel, every output read.

One "workbench" kernel serves the whole module, started the way JupyterLab starts it, on a
generated district. The students shown are real rows of that warehouse, loaded by the notebook
code itself, so the guard has to recognise them by value, not by a fixture it was told about.

Each route is an attack a recipient of the notebook would make: read every output of the cell
(all MIME types, stream text, tracebacks, widget state) and look for

* a student's district or state ID (as written, or as an integer that lost its zeros), full name
  (either order, any case, across table cells) or date of birth; and, for count routes,
* the small counts 6 and 8 of a table whose other numbers are large.

The checks here are written independently of the guard's scanner: plain regular expressions
over the text a reader would see.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re

import pytest

from workbench.cli.kernel_commands import install_kernel

pytestmark = pytest.mark.slow

SMALL = ("6", "8")  # the small counts planted in every count route
BANNER_LINE = re.compile(
    r"^\s*(workbench guard:|This is an automatic mask|Schema only:|Aggregate it|Styling is not|Custom formatting|%|>)"
)

SETUP = r"""
import collections, io, json, logging, os, subprocess, sys, warnings
from decimal import Decimal
import numpy as np
import pandas as pd
import pyarrow as pa
import duckdb
import ibis
import ipywidgets as widgets
from IPython.display import display, HTML, Markdown, JSON, Latex
import workbench.warehouse

con = workbench.warehouse.connect()
people = (con.table("students").filter(ibis._.student_id >= "0010000")
          .order_by("student_id").limit(4).to_pandas())
roster = people[["student_id", "state_id", "first_name", "last_name", "date_of_birth"]].copy()
roster["days_absent"] = [3, 12, 7, 9]
full_names = (roster.first_name + " " + roster.last_name).tolist()
sid, name = roster.student_id[0], full_names[0]
dob = pd.Timestamp(roster.date_of_birth[0])
ints = pd.read_csv(io.StringIO(roster.to_csv(index=False)))  # a partner's CSV: IDs become integers

counts = pd.DataFrame({"enrolled": [120, 45, 230, 95], "chronic": [6, 15, 8, 22]},
                      index=pd.Index(["Adams", "Baker", "Carver", "Dewey"], name="school"))
long = pd.DataFrame({"school": ["Adams"] * 6 + ["Baker"] * 40 + ["Carver"] * 8 + ["Dewey"] * 30,
                     "grade": [3] * 84, "gender": (["F", "M"] * 42)})
rates = pd.DataFrame({"students": [120, 240], "chronic_pct": [5.8, 50.4]}, index=["Adams", "Baker"])
decimals = pd.DataFrame({"school": ["Adams", "Baker", "Carver"], "n": [Decimal(120), Decimal(6), Decimal(45)]})
small_list = [120, 6, 45, 8]
ibis.options.interactive = True
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
import matplotlib.pyplot as plt
from matplotlib_inline.backend_inline import set_matplotlib_formats
wide = ints.rename(columns={"student_id": "who"})[["who", "days_absent"]]  # IDs under a neutral name
os.makedirs("out", exist_ok=True)
roster.to_csv("out/roster.csv", index=False)
"""

# (route id, code): the cell must show no student identifier and neither small count.
COUNT_ROUTES = [
    ("frame", "counts"),
    ("display", "display(counts)"),
    ("print", "print(counts)"),
    ("str", "str(counts)"),
    ("fstring", "print(f'{counts}')"),
    ("to_string", "print(counts.to_string())"),
    ("to_html", "HTML(counts.to_html())"),
    ("to_latex", "print(counts.to_latex())"),
    ("column", "counts['chronic']"),
    ("column_print", "print(counts['chronic'])"),
    ("column_frame", "counts[['chronic']]"),
    ("transpose", "counts.T"),
    ("head", "counts.head(3)"),
    ("sorted", "counts.sort_values('chronic')"),
    ("table_schema", "with pd.option_context('display.html.table_schema', True):\n    display(counts)"),
    ("style", "counts.style"),
    ("style_display", "display(counts.style)"),
    ("style_gradient", "counts.style.background_gradient()"),
    ("style_format", "counts.style.format('{:.1f}')"),
    ("style_to_html", "HTML(counts.style.to_html())"),
    ("style_to_string", "print(counts.style.to_string())"),
    ("style_to_latex", "print(counts.style.to_latex())"),
    ("style_to_typst", "print(counts.style.to_typst())"),
    ("style_concat", "counts.style.concat(counts.agg(['sum']).style)"),
    ("numpy_column", "counts['chronic'].to_numpy()"),
    ("numpy_values", "counts.values"),
    ("numpy_print", "np.array(small_list)"),
    ("tolist", "counts['chronic'].tolist()"),
    ("list", "small_list"),
    ("tuple", "tuple(counts['chronic'])"),
    ("nested_list", "counts.values.tolist()"),
    ("to_dict", "counts['chronic'].to_dict()"),
    ("dict", "dict(zip(counts.index, counts.chronic))"),
    ("frame_to_dict", "counts.to_dict()"),
    ("records", "counts.reset_index().to_dict('records')"),
    ("decimal_frame", "decimals"),
    ("decimal_column", "decimals.set_index('school')['n']"),
    ("sql_decimal", "con.sql(\"select school, sum(n) as n from (select 'Adams' as school, 6 as n union all select 'Baker', 120) group by school\").to_pandas()"),
    ("duckdb_relation", "duckdb.sql(\"select * from (values ('Adams', 120), ('Baker', 6), ('Carver', 45)) t(school, n)\")"),
    ("duckdb_df", "duckdb.sql(\"select * from (values ('Adams', 120), ('Baker', 6)) t(school, n)\").df()"),
    ("pyarrow_table", "pa.table({'school': ['Adams', 'Baker', 'Carver', 'Dewey'], 'n': small_list})"),
    ("pyarrow_array", "pa.array(small_list)"),
    ("ibis_table", "ibis.memtable({'school': ['Adams', 'Baker', 'Carver'], 'n': [120, 6, 45]})"),
    ("ibis_column", "ibis.memtable({'school': ['Adams', 'Baker', 'Carver'], 'n': [120, 6, 45]}).n"),
    ("ibis_groupby", "ibis.memtable(long).group_by('school').agg(n=ibis._.count())"),
    ("groupby_size", "long.groupby('school').size()"),
    ("groupby_grade_count", "long.groupby('school')['grade'].count()"),
    ("groupby_double_count", "long.groupby('school')[['grade', 'gender']].count()"),
    ("groupby_agg", "long.groupby('school')['grade'].agg(['count', 'mean'])"),
    ("value_counts", "long['school'].value_counts()"),
    ("pivot_count", "long.pivot_table(values='grade', index='school', aggfunc='count')"),
    ("pivot_count_columns", "long.pivot_table(values='grade', index='school', columns='gender', aggfunc='count')"),
    ("crosstab", "pd.crosstab(long.school, long.gender)"),
    ("describe", "long.assign(days=range(len(long)))[long.school == 'Adams'].describe()"),
    ("percentages", "rates"),
    ("percentages_print", "print(rates)"),
    ("percentages_as_text", "rates.assign(chronic_pct=rates.chronic_pct.astype(str) + '%')"),
    ("index_of_counts", "pd.Index(small_list)"),
    # Found while reviewing the corpus: more ways a table of counts reaches the screen.
    ("to_html_printed", "print(counts.to_html())"),
    ("json_display_counts", "JSON(counts.to_dict())"),
    ("items_list", "list(counts['chronic'].items())"),
    ("itertuples", "list(counts.itertuples())"),
    ("mixed_rows_list", "counts.reset_index().values.tolist()"),
    ("to_dict_split", "counts.to_dict('split')"),
    ("to_dict_list_mixed", "counts.reset_index().to_dict('list')"),
    ("to_dict_index", "counts.to_dict('index')"),
    ("to_records", "counts.to_records()"),
    ("duckdb_fetchall", "duckdb.sql(\"select school, count(*) as n from long group by school order by school\").fetchall()"),
    ("duckdb_fetchnumpy", "duckdb.sql(\"select school, count(*) as n from long group by school order by school\").fetchnumpy()"),
    ("duckdb_arrow", "duckdb.sql(\"select school, count(*) as n from long group by school order by school\").arrow()"),
    ("pyarrow_pydict", "pa.table({'school': list(counts.index), 'n': small_list}).to_pydict()"),
    ("pyarrow_pylist", "pa.table({'school': list(counts.index), 'n': small_list}).to_pylist()"),
    ("counter", "collections.Counter(long.school)"),
    ("np_unique_counts", "np.unique(long.school, return_counts=True)"),
    ("frame_value_counts", "long[['school']].value_counts()"),
    ("crosstab_margins", "pd.crosstab(long.school, long.grade, margins=True)"),
    ("query_groupby_size", "long.query(\"school in ['Adams', 'Carver']\").groupby('school').size()"),
    ("named_agg", "long.groupby('school').agg(n=('grade', 'count'), mean_grade=('grade', 'mean'))"),
    ("groupby_count_frame", "long.groupby('school').count()"),
    ("size_reset_index", "long.groupby('school').size().reset_index(name='students')"),
    ("style_hide_to_html", "HTML(counts.style.hide(axis='index').to_html())"),
    ("style_thousands", "counts.style.format(thousands=',')"),
    ("describe_series", "counts['chronic'].describe()"),
    ("agg_min", "counts.agg(['sum', 'min'])"),
    ("as_text", "counts.astype(str)"),
    ("categorical", "counts['chronic'].astype('category')"),
    ("numpy_transposed", "counts.to_numpy().T"),
    ("ibis_value_counts", "ibis.memtable(long).school.value_counts()"),
    ("ibis_to_pyarrow", "ibis.memtable(long).group_by('school').agg(n=ibis._.count()).to_pyarrow()"),
    ("ibis_scalar_count", "ibis.memtable(long).filter(ibis._.school == 'Adams').count()"),
    ("dict_items", "counts['chronic'].to_dict().items()"),
    ("dict_values", "counts['chronic'].to_dict().values()"),
    ("set_of_counts", "set(small_list)"),
    ("record_dict", "counts.reset_index().iloc[0].to_dict()"),
    ("rows_with_dates", "[(pd.Timestamp('2025-09-02'), school, n) for school, n in counts['chronic'].items()]"),
    ("duckdb_fetchone", "duckdb.sql(\"select school, count(*) as n from long group by school order by school\").fetchone()"),
    ("pandas_array", "pd.array(small_list)"),
    ("series_array", "counts['chronic'].array"),
    ("histogram", "np.histogram([1] * 6 + [2] * 40 + [3] * 8, bins=3)"),
    ("array_3d", "np.array(small_list).reshape(2, 2, 1)"),
    ("records_array", "counts.reset_index().to_records(index=False)"),
    ("named_tuple", "collections.namedtuple('Row', 'school n')('Adams', 6)"),
    ("dataclass", "from dataclasses import dataclass\n@dataclass\nclass Row:\n    school: str\n    n: int\nRow('Adams', 6)"),
    ("ibis_preview", "ibis.memtable(long).group_by('school').agg(n=ibis._.count()).order_by('school').preview()"),
    ("ibis_record_batches", "list(ibis.memtable(long).group_by('school').agg(n=ibis._.count()).order_by('school').to_pyarrow_batches())"),
    ("pyarrow_value_counts", "__import__('pyarrow.compute').compute.value_counts(pa.array(long.school))"),
    ("pyarrow_struct_scalar", "pa.scalar({'school': 'Adams', 'n': 6})"),
    ("zero_d_array", "np.array(6)"),
    ("bar_labels", "fig, ax = plt.subplots()\nbars = ax.bar(counts.index, counts.chronic)\nax.bar_label(bars)"),
    ("display_in_loop", "for school in ['Adams', 'Carver']:\n    display(long[long.school == school].groupby('gender').size().rename(school).to_frame().T.assign(total=lambda t: t.sum(axis=1)))"),
]

# Routes whose output must show no student identifier (counts are not the point here).
IDENTIFIER_ROUTES = [
    ("roster", "roster"),
    ("roster_print", "print(roster)"),
    ("roster_html", "HTML(roster.to_html())"),
    ("roster_style", "roster.style"),
    ("full_name_series", "roster.first_name + ' ' + roster.last_name"),
    ("full_names_list", "full_names"),
    ("full_names_print", "print(full_names)"),
    ("full_names_joined", "print(', '.join(full_names))"),
    ("upper_case", "print(name.upper())"),
    ("last_first", "print(f'{roster.last_name[0]}, {roster.first_name[0]}')"),
    ("renamed_columns", "roster.rename(columns={'first_name': 'Student', 'last_name': 'Family'})[['Student', 'Family', 'days_absent']]"),
    ("camel_columns", "roster.rename(columns={'first_name': 'FirstName', 'last_name': 'LastName'})[['FirstName', 'LastName']]"),
    ("names_only", "roster[['first_name', 'last_name']].to_string()"),
    ("iloc_row", "roster.iloc[0]"),
    ("iloc_row_names", "roster[['first_name', 'last_name', 'days_absent']].iloc[0]"),
    ("scalar_id", "roster.loc[0, 'student_id']"),
    ("scalar_state_id", "print(roster.state_id[0])"),
    ("ids_tolist", "roster.student_id.tolist()"),
    ("ids_unique", "roster.student_id.unique()"),
    ("ids_set", "set(roster.student_id)"),
    ("ids_index", "pd.Index(roster.student_id)"),
    ("to_dict_records", "roster.to_dict('records')"),
    ("to_csv_printed", "print(roster.to_csv())"),
    ("to_json", "roster.to_json()"),
    ("to_xml", "print(roster.to_xml(parser='etree'))"),
    ("transposed", "roster.T"),
    ("transposed_names", "roster.set_index(roster.first_name + ' ' + roster.last_name).T"),
    ("ids_as_labels", "roster.set_index('student_id')[['days_absent']].T"),
    ("integer_ids", "ints"),
    ("integer_ids_list", "ints.student_id.tolist()"),
    ("integer_id_print", "print(int(sid))"),
    ("float_id_print", "print(float(int(sid)))"),
    ("dict_keyed_by_id", "dict(zip(roster.student_id, roster.days_absent))"),
    ("roster_values", "roster.values"),
    ("pyarrow_roster", "pa.Table.from_pandas(roster)"),
    ("duckdb_roster", "duckdb.sql('select * from roster')"),
    ("ibis_students", "con.table('students').filter(ibis._.student_id == sid)"),
    ("json_display", "JSON(roster.astype(str).to_dict('records'))"),
    ("markdown", "Markdown(f'**{name}** was absent')"),
    ("html_snippet", "HTML(f'<b>{name}</b> ({sid})')"),
    ("latex", "Latex(f'$\\\\text{{{name}}}$')"),
    ("dob_iso", "print(dob.date().isoformat())"),
    ("dob_us", "print(dob.strftime('%m/%d/%Y'))"),
    ("dob_long", "print(dob.strftime('%B %d, %Y'))"),
    ("dob_timestamp", "dob"),
    ("dob_list", "roster.date_of_birth.tolist()"),
    ("stdout_write", "sys.stdout.write(name + '\\n')"),
    ("stderr_print", "print(sid, file=sys.stderr)"),
    ("logging", "logging.warning('no consent for %s', name)"),
    ("warning", "warnings.warn(f'student {sid} has no consent')"),
    ("shell_cat", "!cat out/roster.csv"),
    ("shell_echo", "!echo {sid}"),
    ("subprocess", "subprocess.run(['cat', 'out/roster.csv'])"),
    ("os_system", "os.system('cat out/roster.csv')"),
    ("dropdown", "widgets.Dropdown(options=full_names)"),
    ("select_multiple", "widgets.SelectMultiple(options=list(roster.student_id))"),
    ("label_widget", "widgets.Label(value=name)"),
    ("text_widget", "w = widgets.Text(); display(w); w.value = sid"),
    ("html_widget", "widgets.HTML(value=f'<i>{name}</i>')"),
    ("update_display", "h = display('pending', display_id=True)\nh.update(name)"),
    # Found while reviewing the corpus: more ways a student reaches the screen.
    ("roster_html_printed", "print(roster.to_html())"),
    ("roster_style_latex", "print(roster.style.to_latex())"),
    ("roster_head_T", "roster.head(2).T"),
    ("roster_sample", "roster.sample(2, random_state=0)"),
    ("names_value_counts", "roster[['first_name', 'last_name']].value_counts()"),
    ("names_crosstab", "pd.crosstab(roster.last_name, roster.first_name)"),
    ("roster_query", "roster.query('days_absent > 5')"),
    ("names_groupby_size", "roster.groupby(['last_name', 'first_name']).size()"),
    ("integer_ids_groupby", "ints.groupby('student_id').days_absent.sum()"),
    ("info_of_id_index", "roster.set_index('student_id').info()"),
    ("info_of_integer_ids", "ints.set_index('student_id').info()"),
    ("fstring_result", "f'{name} was absent {roster.days_absent[0]} days'"),
    ("repr_of_names", "repr(full_names)"),
    ("repr_of_lines", "repr('\\n'.join(full_names))"),
    ("zip_ids_names", "list(zip(roster.student_id, full_names))"),
    ("sorted_integer_ids", "sorted(ints.student_id)"),
    ("print_star_ids", "print(*ints.student_id)"),
    ("warn_name", "warnings.warn(name)"),
    ("stderr_write", "sys.stderr.write(name + '\\n')"),
    ("os_system_echo", "os.system(f'echo {name}')"),
    ("bash_magic", "%%bash\ncat out/roster.csv"),
    ("html_magic", "get_ipython().run_cell_magic('html', '', f'<b>{name}</b>')"),
    ("markdown_magic", "get_ipython().run_cell_magic('markdown', '', f'**{name}** ({sid})')"),
    ("svg_display", "from IPython.display import SVG\nSVG(f'<svg xmlns=\"http://www.w3.org/2000/svg\"><text y=\"15\">{name}</text></svg>')"),
    ("javascript", "from IPython.display import Javascript\nJavascript(f'console.log(\"{sid}\")')"),
    ("pretty", "from IPython.display import Pretty\nPretty(name)"),
    ("raw_display", "display({'text/plain': name, 'text/html': f'<i>{sid}</i>'}, raw=True)"),
    ("whos", "%whos str"),
    ("int_text_widget", "widgets.IntText(value=int(sid))"),
    ("float_slider_widget", "widgets.FloatText(value=float(int(sid)))"),
    ("json_integer_field", "display({'application/json': {'who': int(sid)}}, raw=True)"),
    ("json_dates_as_stamps", "JSON(json.loads(roster[['date_of_birth']].to_json()))"),
    ("raw_json_fields", "display({'application/json': {'first': roster.first_name[0], 'last': roster.last_name[0]}}, raw=True)"),
    ("set_next_input", "get_ipython().set_next_input(name); print('ok')"),
    ("traceback_printed", "import traceback\ntry:\n    raise KeyError(sid)\nexcept KeyError:\n    traceback.print_exc()"),
    ("select_widget", "widgets.Select(options=full_names)"),
    ("select_multiple_names", "widgets.SelectMultiple(options=full_names)"),
    ("radio_widget", "widgets.RadioButtons(options=list(roster.student_id))"),
    ("combobox_widget", "widgets.Combobox(options=full_names)"),
    ("textarea_widget", "widgets.Textarea(value='\\n'.join(full_names))"),
    ("tab_titles", "t = widgets.Tab(children=[widgets.Label('x')]); t.set_title(0, name); t"),
    ("interact", "widgets.interact(lambda who: print(who), who=full_names)"),
    ("output_widget", "out = widgets.Output(); display(out)\nwith out:\n    print(name)"),
    ("display_rows_in_loop", "for _, row in roster.iterrows():\n    display(row)"),
    ("print_records_in_loop", "for record in roster.to_dict('records'):\n    print(record)"),
    ("float_ids", "ints.assign(student_id=ints.student_id.astype(float))[['student_id', 'days_absent']]"),
    ("scientific_id", "print(f'{float(int(sid)):.4e}')"),
    ("scientific_frame", "pd.DataFrame({'who': ints.student_id.astype(float), 'rate': [0.00001, 0.2, 0.3, 0.4]})"),
    ("thousands_id", "print(f'{int(sid):,}')"),
    ("thousands_style", "wide.style.format(thousands=',')"),
    ("neutral_integer_ids", "wide"),
    ("dob_dotted", "print(dob.strftime('%d.%m.%Y'))"),
    ("dob_str", "print(str(dob))"),
    ("dob_day_of_month", "print(f'{dob.day}th of {dob:%B} {dob.year}')"),
    ("dob_day_month_abbr", "print(dob.strftime('%d-%b-%Y'))"),
    ("dob_sas", "print(dob.strftime('%d%b%Y').upper())"),
    ("dob_epoch_json", "roster[['date_of_birth', 'days_absent']].to_json()"),
    ("dob_strftime_column", "pd.to_datetime(roster.date_of_birth).dt.strftime('%m/%d/%Y').tolist()"),
    ("email", "print(f'{roster.first_name[0]}.{roster.last_name[0]}@school.org'.lower())"),
    ("json_dumps", "print(json.dumps(roster.astype(str).to_dict('records')))"),
    ("tick_labels", "fig, ax = plt.subplots()\nax.barh(full_names, roster.days_absent)\nax.get_yticklabels()"),
    ("legend_names", "ax = roster.set_index(roster.first_name + ' ' + roster.last_name)[['days_absent']].T.plot.bar()\nax.get_legend_handles_labels()[1]"),
    ("memory_usage", "ints.set_index('student_id').memory_usage(deep=True).to_string() + str(ints.set_index('student_id').index)"),
    ("svg_chart", "set_matplotlib_formats('svg')\nfig, ax = plt.subplots()\nax.barh(full_names, roster.days_absent)\ndisplay(fig); plt.close(fig)\nset_matplotlib_formats('png')"),
]

ERROR_ROUTES = [
    ("key_error_ids", "pd.Series([1], index=['x']).loc[[sid]]"),
    ("key_error_raise", "raise KeyError(sid)"),
    ("value_error_name", "raise ValueError(f'no consent on file for {name}')"),
    ("assertion_name", "assert name not in full_names, name"),
    ("int_id_error", "int('x' + sid)"),
    ("chained_error", "try:\n    roster.set_index('student_id').loc['x']\nexcept KeyError as exc:\n    raise RuntimeError(f'cannot find {name}') from exc"),
    ("exception_note", "e = ValueError('no consent'); e.add_note(f'{name} {sid}'); raise e"),
]


# --- reading what a recipient sees --------------------------------------------------------------

def _is_json(mime) -> bool:
    return str(mime) == "application/json" or str(mime).endswith("+json")


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) >= 10_000:
        return [repr(value)]  # a widget's number, a JSON field: an ID or a time stamp as a number
    if isinstance(value, dict):
        # A PNG is a picture, not text: what it shows is a documented limit (charts).
        return [s for key, item in value.items() if not str(key).startswith(("image/png", "image/jpeg"))
                for s in (strings(item) if isinstance(item, str) or not _is_json(key) else [json.dumps(item)])]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in strings(item)]
    return []


def visible_text(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # terminal colours of tracebacks
    text = re.sub(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?/?>", " ", text)  # tags, not <pyarrow.Scalar: ...> reprs
    return text.replace("&amp;", "&").replace("&#x27;", "'").replace("&quot;", '"')


def student_leaks(texts: list[str], students: list[dict]) -> list[str]:
    found = []
    for raw in texts:
        text = visible_text(raw)
        for s in students:
            sid, state = s["student_id"], s["state_id"]
            if re.search(rf"(?<!\d){sid}(?!\d)", text) or re.search(rf"(?<!\d){state}(?!\d)", text):
                found.append("an ID as written")
            if re.search(rf"(?<![\d.]){int(sid)}(?:\.0+)?(?!\d)", text):
                found.append("an ID as an integer")
            number = int(sid)
            if f"{number:,}" in text or any(
                float(m.group(0)) == number for m in re.finditer(r"\d\.\d+[eE][+]?\d+", text)
            ):
                found.append("an ID as a formatted number")
            first, last = re.escape(s["first_name"]), re.escape(s["last_name"])
            if re.search(rf"\b{first}\b.{{0,60}}\b{last}\b|\b{last}\b.{{0,60}}\b{first}\b", text, re.I | re.S):
                found.append("a full name")
            born = s["date_of_birth"]
            forms = [born.isoformat(), born.strftime("%m/%d/%Y"), f"{born.month}/{born.day}/{born.year}",
                     born.strftime("%B %d, %Y"), born.strftime("%Y%m%d"), born.strftime("%d.%m.%Y"),
                     born.strftime("%d-%b-%Y"), born.strftime("%d%b%Y").upper(),
                     f"{born.day}th of {born:%B} {born.year}"]
            if any(form in text for form in forms) or re.search(rf"(?i)\b{born.strftime('%d%b%Y')}\b", text):
                found.append("a date of birth")
            epoch = (born - dt.date(1970, 1, 1)).days * 86_400
            if re.search(rf"(?<!\d)(?:{epoch}|{epoch}000|{epoch}000000000)(?!\d)", text):
                found.append("a date of birth as a time stamp")
    return sorted(set(found))


def shown_numbers(texts: list[str]) -> set[str]:
    numbers: set[str] = set()
    for raw in texts:
        text = re.sub(r'<div class="workbench-guard-banner".*?</div>', " ", raw, flags=re.S)
        text = visible_text(text)
        lines = [line for line in text.splitlines() if not BANNER_LINE.match(line)]
        numbers |= set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", "\n".join(lines)))
    return numbers


def small_counts_shown(texts: list[str]) -> set[str]:
    shown = shown_numbers(texts)
    return {n for n in shown if n.split(".")[0] in SMALL and (n.endswith(".0") or "." not in n)} | (
        {"5.8"} & shown
    )


# --- the kernel ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def district(small_district_path):
    import duckdb

    with duckdb.connect(small_district_path, read_only=True) as con:
        rows = con.sql(
            "select student_id, state_id, first_name, last_name, date_of_birth from students "
            "where student_id >= '0010000' order by student_id limit 4"
        ).fetchall()
    columns = ("student_id", "state_id", "first_name", "last_name", "date_of_birth")
    return small_district_path, [dict(zip(columns, row)) for row in rows]


class Kernel:
    def __init__(self, client):
        self.client = client

    def run(self, code: str) -> tuple[list[dict], str]:
        outputs: list[dict] = []

        def keep(message):
            if message["msg_type"] in ("stream", "display_data", "execute_result", "update_display_data",
                                       "error", "comm_open", "comm_msg"):
                outputs.append({"msg_type": message["msg_type"], **message["content"]})

        reply = self.client.execute_interactive(code, output_hook=keep, timeout=120)
        # Output a subprocess writes to the kernel's file descriptors is forwarded by a thread and
        # can arrive after the cell is done: read what comes in shortly after, too.
        import queue

        while True:
            try:
                keep(self.client.get_iopub_msg(timeout=0.3 if "subprocess" in code or "system" in code or "!" in code else 0.05))
            except queue.Empty:
                break
        return outputs + [{"msg_type": "execute_reply", **reply["content"]}], reply["content"]["status"]


@pytest.fixture(scope="module")
def kernel(district, tmp_path_factory):
    from jupyter_client.manager import start_new_kernel

    warehouse, _ = district
    prefix = tmp_path_factory.mktemp("kernel-prefix")
    install_kernel(prefix=str(prefix))
    work = tmp_path_factory.mktemp("notebook-folder")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
        env = {**os.environ, "WORKBENCH_POLICY": "bps", "WORKBENCH_LEVEL": "aggregate",
               "WORKBENCH_WAREHOUSE": warehouse}
        # ipykernel does not forward subprocess output (file descriptors 1 and 2) under pytest;
        # a notebook kernel does, so this one must too.
        env.pop("PYTEST_CURRENT_TEST", None)
        manager, client = start_new_kernel(kernel_name="workbench", env=env, startup_timeout=120, cwd=str(work))
        running = Kernel(client)
        outputs, status = running.run(SETUP)
        assert status == "ok", outputs
        yield running
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_the_corpus_has_at_least_eighty_routes():
    assert len(COUNT_ROUTES) + len(IDENTIFIER_ROUTES) + len(ERROR_ROUTES) >= 80
    ids = [name for name, _ in COUNT_ROUTES + IDENTIFIER_ROUTES + ERROR_ROUTES]
    assert len(ids) == len(set(ids))


def test_the_kernel_knows_the_districts_students(kernel, district):
    outputs, _ = kernel.run("%workbench status")
    text = " ".join(s for o in outputs for s in strings(o))
    assert re.search(r"student index of [\d,]+ students from", text) and district[0] in text


@pytest.mark.parametrize("code", [code for _, code in COUNT_ROUTES], ids=[name for name, _ in COUNT_ROUTES])
def test_a_count_route_shows_no_small_count(kernel, district, code):
    outputs, status = kernel.run(code)
    assert status == "ok", outputs
    texts = [s for o in outputs for s in strings(o)]
    assert not small_counts_shown(texts), f"small counts shown: {small_counts_shown(texts)}"
    assert not student_leaks(texts, district[1])


@pytest.mark.parametrize("code", [code for _, code in IDENTIFIER_ROUTES], ids=[name for name, _ in IDENTIFIER_ROUTES])
def test_an_identifier_route_shows_no_student(kernel, district, code):
    outputs, status = kernel.run(code)
    assert status == "ok", outputs
    texts = [s for o in outputs for s in strings(o)]
    assert any(t.strip() for t in texts if t not in ("ok",)), "the route showed nothing"
    assert not student_leaks(texts, district[1]), student_leaks(texts, district[1])


@pytest.mark.parametrize("code", [code for _, code in ERROR_ROUTES], ids=[name for name, _ in ERROR_ROUTES])
def test_an_error_route_shows_no_student(kernel, district, code):
    outputs, status = kernel.run(code)
    assert status == "error"
    texts = [s for o in outputs for s in strings(o)]
    assert not student_leaks(texts, district[1]), student_leaks(texts, district[1])


def test_an_identified_request_shows_its_roster(kernel, district):
    """The scan follows the level: a request granted identified data sees its students."""
    kernel.run("%workbench level identified")
    try:
        outputs, status = kernel.run("print(full_names[0], sid)")
    finally:
        kernel.run("%workbench level aggregate")
    texts = [s for o in outputs for s in strings(o)]
    assert status == "ok" and "a full name" in student_leaks(texts, district[1])
    outputs, _ = kernel.run("print(full_names[0], sid)")
    assert not student_leaks([s for o in outputs for s in strings(o)], district[1])


def test_a_prompt_and_a_completion_show_no_student(kernel, district):
    """input() sends its prompt on the stdin channel; tab completion lists a dict's keys."""
    client = kernel.client
    prompts: list[dict] = []

    def answer(message):
        prompts.append(message["content"])
        client.input("no")

    reply = client.execute_interactive("answer = input(f'release {name} ({sid})? ')", allow_stdin=True,
                                       stdin_hook=answer, output_hook=lambda message: None, timeout=60)
    assert reply["content"]["status"] == "ok" and prompts
    assert not student_leaks([s for p in prompts for s in strings(p)], district[1])

    kernel.run("by_name = dict(zip(full_names, roster.days_absent))\nby_id = dict(zip(roster.student_id, roster.days_absent))")
    for code in ("by_name['", "by_id['"):
        msg_id = client.complete(code, len(code))
        while True:
            reply = client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["matches"], "nothing was completed"
        texts = [s for s in strings(reply["content"])]
        assert not student_leaks(texts, district[1]), (code, student_leaks(texts, district[1]))


COLUMN_WISE_ROUTES = [
    ("to_dict", "roster[['first_name', 'last_name', 'days_absent']].to_dict()"),
    ("to_dict_list", "roster[['first_name', 'last_name', 'days_absent']].to_dict('list')"),
    ("to_dict_series", "roster[['first_name', 'last_name']].to_dict('series')"),
]


@pytest.mark.parametrize("code", [code for _, code in COLUMN_WISE_ROUTES], ids=[name for name, _ in COLUMN_WISE_ROUTES])
def test_names_listed_column_by_column_are_not_shown(kernel, district, code):
    """First names listed apart from last names pair up by position: a reader lines them up."""
    outputs, status = kernel.run(code)
    assert status == "ok", outputs
    text = " ".join(visible_text(s) for o in outputs for s in strings(o))
    both = [s["first_name"] for s in district[1]
            if re.search(rf"\b{s['first_name']}\b", text, re.I) and re.search(rf"\b{s['last_name']}\b", text, re.I)]
    assert not both, f"{len(both)} students' first and last names shown"
