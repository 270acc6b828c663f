"""Guard benchmark: what recognising students by value costs per output, to build, and in memory.

    .venv/bin/python benchmarks/guard_benchmark.py [--repeats 11] [--million 1000000]

On the default demo district (25,000 students a year; generated when missing):

1. index build: `StudentIndex.from_warehouse` on an open connection, and `load_index` (connect,
   read, build, disconnect), medians of --repeats/4 runs;
2. added time per output: the kernel's message scan (`channels.scrub_content`, at the aggregate
   level) of an output of a 10,000-row frame, against pandas producing that output (the peer:
   the cost of the output itself), in three cases:
   * pandas' own display bundle (text/plain + text/html) of 10,000 student rows, as an unguarded
     table would send it: rows full of IDs, names and birth dates;
   * the guarded display bundle of a 10,000-row table of counts (no identifiers; the usual case);
   * `print(df.to_csv())` of all 10,000 student rows: every line an identifier (a stress case);
3. memory: the index of a made-up district of --million students (distinct IDs, 5,000 first
   and 150,000 last names, birth dates over 16 years) written to a DuckDB file and read as the
   kernel reads a warehouse: build time, and memory measured with tracemalloc (what the build
   leaves allocated) and by the index's own count of its arrays and strings.

Results go to benchmarks/results/guard.json and benchmarks/results/guard.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def ensure_district() -> str:
    from workbench.config import DEFAULT_WAREHOUSE_PATH
    from workbench.schema import write_warehouse
    from workbench.synthetic import generate_district

    if not Path(DEFAULT_WAREHOUSE_PATH).exists():
        write_warehouse(DEFAULT_WAREHOUSE_PATH, generate_district())
    return str(DEFAULT_WAREHOUSE_PATH)


def timed(function, repeats: int) -> list[float]:
    function()  # warm-up
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return samples


def ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def bundle(frame: pd.DataFrame) -> dict:
    return {"data": {"text/plain": repr(frame), "text/html": frame._repr_html_()}, "metadata": {}}


def frames(con) -> tuple[pd.DataFrame, pd.DataFrame]:
    students = con.table("students").limit(10_000).to_pandas()
    rows = students[["student_id", "state_id", "first_name", "last_name", "date_of_birth"]]
    counts = pd.DataFrame({
        "school": [f"School {i % 40}" for i in range(10_000)],
        "grade": [i % 13 for i in range(10_000)],
        "students": np.random.default_rng(1).integers(10, 400, 10_000),
        "chronic": np.random.default_rng(2).integers(10, 90, 10_000),
    })
    return rows, counts


def output_costs(con, index, repeats: int) -> list[dict]:
    import workbench.guard as guard
    from workbench.guard import channels, settings, student_index

    student_index.set_index(index)
    rows, counts = frames(con)
    results = []
    cases = [
        # (label, frame, how the output is drawn, guard installed while drawing)
        ("10,000 student rows, pandas' own display bundle (what an unguarded table would send)",
         rows, bundle, False),
        ("10,000 rows of counts, the guarded display bundle", counts, bundle, True),
        ("print(df.to_csv()) of 10,000 student rows (stress: every line has an ID, a name and a birth date)",
         rows, lambda frame: {"name": "stdout", "text": frame.to_csv()}, False),
    ]
    for label, frame, draw, guarded in cases:
        if guarded:
            guard.activate(policy="bps", level="aggregate")
        try:
            # The stress case takes seconds a run; the usual cases are repeated more to steady the median.
            runs = max(3, repeats // 2) if draw is not bundle else repeats * 5
            drawn = timed(lambda: draw(frame), runs)  # the peer: producing the output itself
            content = draw(frame)
        finally:
            guard.deactivate()
            settings.reset()
        guard.activate(policy="bps", level="aggregate")  # the scan runs at the aggregate level
        try:
            msg_type = "stream" if "text" in content else "display_data"
            scan = timed(lambda: channels.scrub_content(msg_type, content), runs)
            scrubbed = channels.scrub_content(msg_type, content)
        finally:
            guard.deactivate()
            settings.reset()
        texts = list((content.get("data") or {"text": content.get("text", "")}).values())
        results.append({
            "case": label,
            "characters": sum(len(text) for text in texts),
            "draw_ms": ms(drawn),
            "scan_ms": ms(scan),
            "scan_to_draw_ratio": round(statistics.median(scan) / statistics.median(drawn), 3),
            "identifiers_replaced": sum(str(scrubbed).count(label) for label in ("[student ID]", "[student name]", "[birth date]")),
        })
    student_index.set_index(None)
    return results


def made_up_district(n: int, seed: int = 5) -> "pa.Table":
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ids = rng.choice(9_999_999, size=n, replace=False) + 1
    states = rng.choice(8_999_999_999, size=n, replace=False) + 1_000_000_000

    def words(count: int, length: int) -> np.ndarray:
        letters = rng.integers(0, 26, size=(count, length)) + ord("a")
        return np.array(["".join(map(chr, row)).capitalize() for row in letters], dtype=object)

    firsts, lasts = words(5_000, 7), words(150_000, 9)
    born = np.datetime64("2004-01-01") + rng.integers(0, 16 * 365, size=n).astype("timedelta64[D]")
    return pa.table({
        "student_id": pa.array(np.char.zfill(ids.astype(str), 7)),
        "state_id": pa.array(states.astype(str)),
        "first_name": pa.array(firsts[rng.integers(0, len(firsts), size=n)]),
        "last_name": pa.array(lasts[rng.integers(0, len(lasts), size=n)]),
        "date_of_birth": pa.array(born),
    })


def million_index(n: int, repeats: int) -> dict:
    """The index of `n` made-up students, read from a DuckDB warehouse as the kernel reads one."""
    import tempfile

    import duckdb
    import ibis

    from workbench.guard.identifiers import StudentIndex

    students = made_up_district(n)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "million.duckdb"
        with duckdb.connect(str(path)) as db:
            db.register("made_up", students)
            db.execute("create table students as select * from made_up")
        con = ibis.duckdb.connect(str(path), read_only=True)
        build = timed(lambda: StudentIndex.from_warehouse(con), repeats)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        index = StudentIndex.from_warehouse(con)
        retained = tracemalloc.get_traced_memory()[0] - before
        peak = tracemalloc.get_traced_memory()[1] - before
        tracemalloc.stop()
        con.disconnect()
    return {
        "students": n,
        "build_ms": ms(build),
        "retained_mb": round(retained / 2**20, 1),
        "peak_during_build_mb": round(peak / 2**20, 1),
        "index_nbytes_mb": round(index.nbytes / 2**20, 1),
        "distinct_name_pairs": int(len(index.pairs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--million", type=int, default=1_000_000)
    args = parser.parse_args()

    from workbench.guard.identifiers import StudentIndex
    from workbench.guard.student_index import load_index
    from workbench.warehouse import connect

    warehouse = ensure_district()
    con = connect(warehouse)
    build = timed(lambda: StudentIndex.from_warehouse(con), max(3, args.repeats // 4))
    load = timed(lambda: load_index(warehouse), max(3, args.repeats // 4))
    index = StudentIndex.from_warehouse(con)
    outputs = output_costs(con, index, args.repeats)
    million = million_index(args.million, max(3, args.repeats // 7))

    result = {
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count()},
        "district": {"warehouse": Path(warehouse).name, "students": index.students},
        "index_build_ms": {"from_open_connection": ms(build), "connect_read_build": ms(load)},
        "index_nbytes_mb": round(index.nbytes / 2**20, 2),
        "outputs": outputs,
        "million": million,
        "repeats": args.repeats,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "guard.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Guard benchmark",
        "",
        f"`benchmarks/guard_benchmark.py --repeats {args.repeats} --million {args.million}`; "
        f"Python {result['machine']['python']}, {result['machine']['cpus']} CPUs. Medians.",
        "",
        f"District: {index.students:,} students ({Path(warehouse).name}).",
        "",
        "| index build | ms |",
        "|---|---|",
        f"| from an open connection | {result['index_build_ms']['from_open_connection']} |",
        f"| connect, read, build (kernel start) | {result['index_build_ms']['connect_read_build']} |",
        "",
        f"Index size: {result['index_nbytes_mb']} MB.",
        "",
        "Added time per output: the kernel's scan of the message, against pandas drawing it (the peer).",
        "",
        "| output | characters | pandas draws (ms) | scan adds (ms) | scan / draw | identifiers replaced |",
        "|---|---|---|---|---|---|",
    ]
    for row in outputs:
        lines.append(f"| {row['case']} | {row['characters']:,} | {row['draw_ms']} | {row['scan_ms']} | "
                     f"{row['scan_to_draw_ratio']} | {row['identifiers_replaced']:,} |")
    lines += [
        "",
        f"Index of {million['students']:,} made-up students read from a DuckDB file: built in "
        f"{million['build_ms']} ms; "
        f"{million['retained_mb']} MB left allocated after the build (tracemalloc), "
        f"{million['index_nbytes_mb']} MB by the index's own count; peak during the build "
        f"{million['peak_during_build_mb']} MB.",
        "",
    ]
    (RESULTS / "guard.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
