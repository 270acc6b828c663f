"""How long the differencing check takes against a large ledger.

Builds a ledger of N earlier public releases (default 10,000) of S students each (default 1,000)
drawn from a district of 100,000 students, each with the groups a report publishes (the whole
cohort, 13 grades, 3 genders), then times the check of a new release's groups: one that differs
from an earlier release by 3 students (must be found) and a fresh random cohort (must not). Every
new group is compared with held groups of every definition and with sums of a held breakdown's
categories. The peer is the same comparison with every earlier population read back from the same
database, the method without the sketch index.

    .venv/bin/python benchmarks/ledger_benchmark.py [--releases 10000] [--students 1000]

Results: benchmarks/results/ledger.md and ledger.json.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workbench.ledger import SKETCH_SIZE, Ledger, labels_text, releases_table  # noqa: E402

GRADES = [str(g) for g in range(13)]
GENDERS = ["F", "M", "X"]
T = 10  # smallest publishable group


def _labels(rng: random.Random, students: list[str]) -> dict[str, dict[str, str]]:
    return {s: {"gender": rng.choice(GENDERS), "grade": rng.choice(GRADES)} for s in students}


def _groups(labels: dict[str, dict[str, str]]) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {"": set(labels)}
    for sid, values in labels.items():
        for dim, value in values.items():
            groups.setdefault(labels_text([(dim, value)]), set()).add(sid)
    return {k: v for k, v in groups.items() if len(v) >= T}


def build(ledger: Ledger, path: Path, releases: int, students: int, rng: random.Random) -> list[dict]:
    digest = ledger.keyring.hasher(ledger.keyring.current)
    pool = [f"{n:07d}" for n in range(1, 100_001)]
    # Each student's labels stay the same in every release, as in one school year of one district.
    labels_of = _labels(rng, pool)
    hashed = {s: digest(s) for s in pool}
    kept = []
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    now = datetime.now(timezone.utc).isoformat(sep=" ")
    population_id = group_id = 0
    for number in range(releases):
        chosen = rng.sample(pool, students)
        labels = {s: labels_of[s] for s in chosen}
        key = f"BENCH-{number}:{number:016d}"
        db.execute("INSERT INTO ledger_releases VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (key, f"BENCH-{number}", "published", "Reporter", None, None, "media", 1, "bps", "0" * 64, now))
        population_id += 1
        db.execute("INSERT INTO ledger_populations VALUES (?,?,?,?)", (population_id, key, "2025-2026", ledger.keyring.current))
        db.executemany("INSERT INTO ledger_members VALUES (?,?,?)",
                       [(population_id, hashed[s], labels_text(sorted(labels[s].items()))) for s in chosen])
        for group, members in _groups(labels).items():
            group_id += 1
            db.execute("INSERT INTO ledger_groups VALUES (?,?,?,?)", (group_id, population_id, group, len(members)))
            db.executemany("INSERT INTO ledger_sketch VALUES (?,?)",
                           [(group_id, m) for m in sorted(hashed[s] for s in members)[:SKETCH_SIZE]])
        if number < 3:
            kept.append(labels)
        if number % 1000 == 999:
            db.commit()
            print(f"  {number + 1:,} releases written", file=sys.stderr)
    db.commit()
    db.close()
    return kept


def brute_force(ledger: Ledger, groups: dict[str, set[str]]) -> int:
    """The same comparison with every earlier population read back (no index)."""
    from sqlalchemy import select

    from workbench.ledger import _member_of, groups_table, members_table, near_groups

    digest = ledger.keyring.hasher(ledger.keyring.current)
    hashed = {k: {digest(s) for s in v} for k, v in groups.items()}
    found = 0
    with ledger.engine.connect() as connection:
        members: dict[int, list[tuple[str, str]]] = {}
        for population_id, member, labels in connection.execute(
                select(members_table.c.population_id, members_table.c.member, members_table.c.labels)):
            members.setdefault(population_id, []).append((member, labels))
        published: dict[int, list[str]] = {}
        for population_id, labels in connection.execute(select(groups_table.c.population_id, groups_table.c.labels)):
            published.setdefault(population_id, []).append(labels)
        for population_id, rows in members.items():
            held = {labels: {m for m, lab in rows if _member_of(lab, labels)} for labels in published.get(population_id, [])}
            found += len(near_groups(hashed, held, {m for m, _ in rows}, T))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--students", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--brute-force-releases", type=int, default=500,
                        help="ledger size for the brute-force peer (it reads everything back)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="folder to keep the built ledger in, and to reuse it from on the next run")
    args = parser.parse_args()
    rng = random.Random(20261201)
    results: dict = {"releases": args.releases, "students": args.students, "sketch": SKETCH_SIZE, "t": T}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ledger-{args.releases}x{args.students}.sqlite"
        reuse = path.is_file() and (folder / "kept.json").is_file()
        ledger = Ledger(f"sqlite:///{path}", key_file=folder / "keys.json")
        started = time.perf_counter()
        if reuse:
            kept = [{s: dict(v) for s, v in labels.items()} for labels in json.loads((folder / "kept.json").read_text())]
            rng = random.Random(20261201 + 1)
        else:
            kept = build(ledger, path, args.releases, args.students, rng)
            (folder / "kept.json").write_text(json.dumps(kept))
        results["build_seconds"] = None if reuse else round(time.perf_counter() - started, 1)
        results["database_mb"] = round(path.stat().st_size / 2**20, 1)
        recipient = {"requester": "Reporter", "organization": None, "partner_id": None, "role": "media", "public": True}
        shared = ledger._shared_with(recipient)
        near_labels = dict(list(kept[0].items())[3:])  # an earlier cohort minus three students
        fresh_labels = _labels(rng, rng.sample([f"{n:07d}" for n in range(1, 100_001)], args.students))
        # Before protection (the plan: request check, intake form, fill) every group is compared
        # with held groups of its definition, the whole cohort with everything; after protection
        # (recording the release) every published group with everything.
        for stage, settled in (("plan", False), ("publish", True)):
            for name, labels in (("near_duplicate", near_labels), ("fresh_cohort", fresh_labels)):
                groups = _groups(labels)
                times, found = [], None
                for _ in range(args.repeats):
                    with ledger.engine.connect() as connection:
                        started = time.perf_counter()
                        found = ledger.check_groups(connection, shared, [ledger.keyring.current], "2025-2026", groups,
                                                    T, settled=settled)
                        times.append(time.perf_counter() - started)
                results[f"{stage}_{name}"] = {"median_seconds": round(statistics.median(times), 4),
                                              "conflicts": len(found), "groups_checked": len(groups)}
                print(f"{stage} {name}: median {statistics.median(times):.3f} s over {args.repeats} runs, "
                      f"{len(found)} conflicts", file=sys.stderr)
        ledger.close()
    # The peer: the same check without the index, on a smaller ledger (it grows with the ledger).
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "ledger.sqlite"
        ledger = Ledger(f"sqlite:///{path}", key_file=Path(scratch) / "keys.json")
        kept = build(ledger, path, args.brute_force_releases, args.students, random.Random(7))
        groups = _groups(dict(list(kept[0].items())[3:]))
        with ledger.engine.connect() as connection:
            started = time.perf_counter()
            indexed = ledger.check_groups(connection, ledger._shared_with(recipient), [ledger.keyring.current],
                                          "2025-2026", groups, T, settled=True)
            indexed_seconds = time.perf_counter() - started
        started = time.perf_counter()
        brute = brute_force(ledger, groups)
        brute_seconds = time.perf_counter() - started
        results["peer"] = {"releases": args.brute_force_releases, "indexed_seconds": round(indexed_seconds, 4),
                           "indexed_conflicts": len(indexed), "brute_force_seconds": round(brute_seconds, 2),
                           "brute_force_conflicts": brute, "ratio": round(brute_seconds / indexed_seconds, 1)}
        ledger.close()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ledger.json").write_text(json.dumps(results, indent=2) + "\n")
    peer = results["peer"]
    (out / "ledger.md").write_text(
        "# Release ledger: differencing check\n\n"
        f"Ledger of {args.releases:,} public releases x {args.students:,} students (100,000-student district, "
        f"groups: cohort, 13 grades, 3 genders; sketch {SKETCH_SIZE}; t = {T}). "
        + (f"Built in {results['build_seconds']} s" if results["build_seconds"] is not None
           else "Built by an earlier run and reused (`--keep`)")
        + f", {results['database_mb']} MB (SQLite).\n\n"
        "| check | new release | groups checked | conflicts found | median check (s) |\n|---|---|---|---|---|\n"
        + "".join(f"| {stage} | {name.replace('_', ' ')} | {results[f'{stage}_{name}']['groups_checked']} | "
                  f"{results[f'{stage}_{name}']['conflicts']} | {results[f'{stage}_{name}']['median_seconds']} |\n"
                  for stage in ("plan", "publish") for name in ("near_duplicate", "fresh_cohort"))
        + "\nplan: before protection (request check, intake form, the plan of a fill): every group against held "
          "groups of its definition, the whole cohort against every held group and sum of held categories. "
          "publish: the groups a protected release publishes, each against every held group and sum, once, when "
          "the release is recorded.\n"
        + f"\nPeer (same check without the sketch index, every group read back) on {peer['releases']} releases: "
          f"{peer['brute_force_seconds']} s vs {peer['indexed_seconds']} s indexed ({peer['ratio']}x); conflicts "
          f"{peer['brute_force_conflicts']} vs {peer['indexed_conflicts']}.\n\n"
          "Reproduce: `.venv/bin/python benchmarks/ledger_benchmark.py`\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
