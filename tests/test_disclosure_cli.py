"""The CLI contracts: workbench protect, audit, protect-extract (exit codes, formats, messages)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from click.testing import CliRunner

from workbench.cli import main


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def counts_csv(tmp_path):
    path = tmp_path / "counts.csv"
    pd.DataFrame(
        {
            "school": ["0101", "0101", "0101", "0202", "0202", "0202", "0303", "0303"],
            "grade": ["K", "1", "2", "K", "1", "2", "K", "1"],
            "n": [4, 30, 25, 22, 18, 40, 33, 27],
        }
    ).to_csv(path, index=False)
    return path


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_protect_writes_every_cell_and_one_mark_for_every_suppressed_cell(runner, counts_csv, tmp_path):
    out = tmp_path / "out.csv"
    result = runner.invoke(main, ["protect", str(counts_csv), "--dims", "school,grade", "--count", "n", "--policy", "nces", "--out", str(out)])
    assert result.exit_code == 0, result.output
    release = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(release.columns) == ["school", "grade", "value"]  # nothing says why a cell is hidden
    assert release.loc[(release["school"] == "0101") & (release["grade"] == "K"), "value"].item() == ""
    assert "analyst" not in result.stderr


def test_protect_keeps_analyst_columns_only_when_asked_and_says_so(runner, counts_csv, tmp_path):
    out = tmp_path / "out.csv"
    result = runner.invoke(main, ["protect", str(counts_csv), "--dims", "school,grade", "--count", "n", "--policy", "nces", "--out", str(out), "--analyst"])
    assert result.exit_code == 0, result.output
    assert "not for release" in result.stderr
    release = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(release.columns[:4]) == ["school", "grade", "value", "status"]
    assert len(release) == 4 * 4  # 3 schools + Total, 3 grades + Total (0303/2 is a zero)
    assert "0101" in set(release["school"])  # leading zeros kept
    hidden = release[release["status"] != "published"]
    assert (hidden["value"] == "").all()
    assert set(release["status"]) <= {"published", "primary", "secondary"}
    row = release[(release["school"] == "0101") & (release["grade"] == "K")].iloc[0]
    assert row["status"] == "primary"
    total = release[(release["school"] == "Total") & (release["grade"] == "Total")].iloc[0]
    assert total["value"] == "199"


def test_protect_writes_to_stdout_without_out(runner, counts_csv):
    result = runner.invoke(main, ["protect", str(counts_csv), "--dims", "school,grade", "--count", "n", "--policy", "nces"])
    assert result.exit_code == 0
    release = pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)
    assert "Total" in set(release["grade"])


@pytest.mark.parametrize(
    ("text", "dims", "message"),
    [
        ("school,grade,n\nA,1,3\nA,2,-4\n", "school,grade", "negative"),
        ("school,grade,n\nA,1,3\nA,2,2.5\n", "school,grade", "non-integer"),
        ("school,grade,n\nA,1,3\nA,1,5\n", "school,grade", "duplicate"),
        ("school,grade,n\nA,1,3\nA,2,5\n", "school,race", "not in the input: race"),
    ],
)
def test_protect_rejects_bad_input_with_one_line_and_exit_2(runner, tmp_path, text, dims, message):
    path = write(tmp_path, "bad.csv", text)
    result = runner.invoke(main, ["protect", str(path), "--dims", dims, "--count", "n", "--policy", "nces"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_protect_rejects_an_unknown_policy(runner, counts_csv):
    result = runner.invoke(main, ["protect", str(counts_csv), "--dims", "school,grade", "--count", "n", "--policy", "no-such-pack"])
    assert result.exit_code == 2
    assert "no-such-pack" in result.stderr


def test_audit_passes_a_protected_table_and_fails_an_unsafe_one(runner, counts_csv, tmp_path):
    out = tmp_path / "out.csv"
    runner.invoke(main, ["protect", str(counts_csv), "--dims", "school,grade", "--count", "n", "--policy", "nces", "--out", str(out)])
    ok = runner.invoke(main, ["audit", str(out), "--dims", "school,grade"])
    assert ok.exit_code == 0, ok.output
    assert "0 exactly disclosed" in ok.stdout
    unsafe = write(
        tmp_path,
        "unsafe.csv",
        "a,b,value\nx,p,\nx,q,20\nx,Total,23\ny,p,15\ny,q,25\ny,Total,40\nTotal,p,18\nTotal,q,45\nTotal,Total,63\n",
    )
    bad = runner.invoke(main, ["audit", str(unsafe), "--dims", "a,b"])
    assert bad.exit_code == 1
    assert "a=x, b=p: [3, 3] EXACT" in bad.stdout
    assert "1 exactly disclosed" in bad.stdout


def test_audit_rejects_a_table_that_does_not_add_up(runner, tmp_path):
    broken = write(tmp_path, "broken.csv", "a,b,value\nx,p,3\nx,q,20\nx,Total,24\n")
    result = runner.invoke(main, ["audit", str(broken), "--dims", "a,b"])
    assert result.exit_code == 2
    assert "do not add up" in result.stderr


def test_protect_extract_contract(runner, tmp_path):
    rows = ["student_id,school,grade,gender,race_ethnicity,low_income"]
    races = ["H"] * 12 + ["B"] * 10 + ["P"]
    for i, race in enumerate(races):
        rows.append(f"00{1000 + i},0101,03,{'F' if i % 2 else 'M'},{race},{'Y' if i % 3 else 'N'}")
    source = write(tmp_path, "students.csv", "\n".join(rows) + "\n")
    out = tmp_path / "extract.csv"
    result = runner.invoke(
        main,
        ["protect-extract", str(source), "--id-col", "student_id", "--quasi", "school,grade,gender,race_ethnicity",
         "--k", "5", "--drop", "low_income", "--seed", "3", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    extract = pd.read_csv(out, dtype=str, keep_default_na=False)
    source_frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    assert len(extract) == len(source_frame)
    assert "low_income" not in extract.columns
    assert not set(source_frame["student_id"]) & set(extract.to_numpy().ravel())
    assert extract["student_id"].str.fullmatch(r"Student \d+").all()
    quasi = ["school", "grade", "gender", "race_ethnicity"]
    assert extract.groupby(quasi).size().min() >= 5  # every record shows what 4 others show, blanks included
    withheld = (extract[quasi] == "Not reported").sum()
    assert withheld["race_ethnicity"] >= withheld["grade"]  # race given up before grade
    assert (extract["race_ethnicity"] == "Not reported").any()
    assert "withheld as 'Not reported'" in result.stderr


def test_protect_extract_rejects_a_missing_column(runner, tmp_path):
    source = write(tmp_path, "s.csv", "student_id,school\n1,A\n")
    result = runner.invoke(main, ["protect-extract", str(source), "--quasi", "school,grade", "--k", "2"])
    assert result.exit_code == 2
    assert "grade" in result.stderr


def test_protect_extract_shows_the_packs_groups_with_a_policy(runner, tmp_path):
    rows = ["student_id,grade,race_ethnicity"]
    races = ["Hispanic or Latino"] * 6 + ["Asian"] * 3 + ["White"] * 3
    for i, race in enumerate(races):
        rows.append(f"00{2000 + i},3,{race}")
    source = write(tmp_path, "students.csv", "\n".join(rows) + "\n")
    out = tmp_path / "extract.csv"
    args = ["protect-extract", str(source), "--quasi", "grade,race_ethnicity", "--k", "5", "--seed", "1", "--out", str(out)]
    assert runner.invoke(main, args).exit_code == 0
    plain = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert (plain["race_ethnicity"] == "Not reported").sum() == 6  # Asian and White, withheld together
    result = runner.invoke(main, [*args, "--policy", "bps"])
    assert result.exit_code == 0, result.output
    grouped = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert (grouped["race_ethnicity"] == "Not Hispanic or Latino").sum() == 6
    assert (grouped["race_ethnicity"] == "Hispanic or Latino").sum() == 6
    assert runner.invoke(main, [*args, "--policy", "no-such-pack"]).exit_code == 2
