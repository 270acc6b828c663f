"""The ledger's comparison of groups across definitions and with sums of categories.

`near_groups` must report a new group exactly when some group the recipient holds, or some sum of
one held breakdown's published categories (what a published total leaves over counting as one
more category), differs from it by 1 to t-1 students, and the reverse for sums of the new
categories. Checked here against an exhaustive search over every sum, on random populations; and
the indexed check of a real ledger database against reading every population back.
"""

from __future__ import annotations

import itertools
import random
import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import column, select, table

from workbench.ledger import (
    SKETCH_SIZE,
    Ledger,
    _fewest_hits,
    _may_be_near,
    _member_of,
    _union_floor,
    groups_table,
    labels_text,
    members_table,
    near_groups,
)


def _groups(labels: dict[str, dict[str, str]], t: int, hidden: set[str] = frozenset()) -> dict[str, set[str]]:
    groups: dict[str, set[str]] = {"": set(labels)}
    for student, values in labels.items():
        for dim, value in values.items():
            groups.setdefault(f"{dim}={value}", set()).add(student)
    return {k: v for k, v in groups.items() if len(v) >= t and k not in hidden}


def _all_sums(groups: dict[str, set[str]], whole: set[str] | None) -> dict[str, list[set[str]]]:
    """Per breakdown, every sum of two or more of its published categories and of the rest."""
    by_dim: dict[str, list[set[str]]] = {}
    for labels, members in groups.items():
        if labels:
            by_dim.setdefault(labels.split("=")[0], []).append(members)
    sums = {}
    for dim, categories in by_dim.items():
        if whole is not None and whole - set().union(*categories):
            categories = categories + [whole - set().union(*categories)]
        sums[dim] = [set().union(*chosen) for size in range(1, len(categories) + 1)
                     for chosen in itertools.combinations(categories, size)]
    return sums


def _expected(new, held, t):
    """What an exhaustive attacker finds, with the same exemptions: a group held exactly is no
    difference, nor a sum equal to a group of its own release."""
    found = set()
    held_sets, new_sets = list(held.values()), list(new.values())
    for labels, members in new.items():
        if members in held_sets:
            continue
        for earlier, other in held.items():
            if 0 < len(members ^ other) < t:
                found.add((labels, earlier))
        for dim, sums in _all_sums(held, set().union(*held_sets) if "" in held else None).items():
            best = min(sums, key=lambda s: len(members ^ s))
            if 0 < len(members ^ best) < t and best not in held_sets:
                found.add((labels, f"a sum of {dim} groups"))
    for earlier, other in held.items():
        if other in new_sets:
            continue
        for dim, sums in _all_sums(new, new.get("")).items():
            best = min(sums, key=lambda s: len(other ^ s))
            if 0 < len(other ^ best) < t and best not in new_sets:
                found.add((f"a sum of {dim} groups", earlier))
    return found


population = st.lists(st.tuples(st.sampled_from("ABCD"), st.sampled_from("FM")), min_size=20, max_size=60)


@settings(max_examples=200, deadline=None)
@given(first=population, second=population, t=st.integers(3, 8), shift=st.integers(0, 60),
       hidden=st.sets(st.sampled_from(["grade=A", "grade=B", "gender=F"]), max_size=1),
       grades=st.sets(st.sampled_from("ABCD"), min_size=2, max_size=3), dropped=st.integers(0, 4))
def test_every_near_group_and_sum_is_reported(first, second, t, shift, hidden, grades, dropped):
    held_labels = {f"s{n}": {"grade": g, "gender": x} for n, (g, x) in enumerate(first)}
    if shift % 2:
        # Two overlapping populations of one district (students numbered from 0 and from `shift`).
        new_labels = {f"s{n + shift}": {"grade": g, "gender": x} for n, (g, x) in enumerate(second)}
        for student in set(held_labels) & set(new_labels):
            new_labels[student] = held_labels[student]  # a student's grade is the same in both releases
    else:
        # A few grades of the held population, a few students fewer: near a sum of its categories.
        kept = sorted(s for s, v in held_labels.items() if v["grade"] in grades)[dropped:]
        new_labels = {s: held_labels[s] for s in kept} | {
            f"x{n}": {"grade": g, "gender": x} for n, (g, x) in enumerate(second[:shift % 5])}
    held = _groups(held_labels, t, hidden)
    new = _groups(new_labels, t)
    reported = {(labels, earlier) for labels, earlier, _ in near_groups(new, held, set(held_labels), t)}
    assert reported == _expected(new, held, t)


def test_the_sql_threshold_is_the_python_one():
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE g (size INTEGER)")
    connection.executemany("INSERT INTO g VALUES (?)", [(n,) for n in range(1, 150)])
    for t in (3, 5, 10, 11, 16, 25):
        query = select(column("size"), _fewest_hits(column("size"), t)).select_from(table("g"))
        sql = str(query.compile(compile_kwargs={"literal_binds": True}))
        got = dict(connection.execute(sql).fetchall())
        assert got == {n: min(_union_floor(n, t), max(min(SKETCH_SIZE, n - t + 1) - (t - 1), 1)) for n in got}
    # The bound for two groups: shared sketch hashes of two groups within t.
    assert _may_be_near(23, 77, 80, 10) and not _may_be_near(22, 77, 80, 10) and not _may_be_near(32, 77, 87, 10)


def test_the_index_finds_what_reading_every_population_finds(tmp_path):
    """A ledger of 120 releases of one district: every check through the index reports what
    comparing with every population read back reports."""
    rng = random.Random(11)
    t = 10
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}", key_file=tmp_path / "keys.json")
    digest = ledger.keyring.hasher(ledger.keyring.current)
    district = {f"{n:07d}": {"grade": rng.choice("6789"), "race": rng.choice(["A", "B", "C", "D", "E"])}
                for n in range(600)}
    students = sorted(district)
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    kept = []
    for number in range(120):
        start = rng.randrange(0, 500)
        chosen = students[start:start + rng.randrange(20, 120)]
        labels = {s: district[s] for s in chosen}
        groups = _groups(labels, t, hidden={rng.choice(["race=A", "race=B", "grade=6", "race=A"])})
        key = f"R-{number}:{number:016d}"
        db.execute("INSERT INTO ledger_releases VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                   (key, f"R-{number}", "published", "Reporter", None, None, "media", 1, "bps", "0" * 64, "2026-01-01"))
        db.execute("INSERT INTO ledger_populations VALUES (?,?,?,?)", (number + 1, key, "2025-2026", ledger.keyring.current))
        db.executemany("INSERT INTO ledger_members VALUES (?,?,?)",
                       [(number + 1, digest(s), labels_text(sorted(labels[s].items()))) for s in chosen])
        for group, members in groups.items():
            cursor = db.execute("INSERT INTO ledger_groups (population_id, labels, size) VALUES (?,?,?)",
                                (number + 1, group, len(members)))
            db.executemany("INSERT INTO ledger_sketch VALUES (?,?)",
                           [(cursor.lastrowid, m) for m in sorted(digest(s) for s in members)[:SKETCH_SIZE]])
        kept.append((chosen, groups))
    db.commit()
    db.close()
    recipient = {"requester": "Reporter", "organization": None, "partner_id": None, "role": "media", "public": True}
    with ledger.engine.connect() as connection:
        everything = {}
        rows = connection.execute(select(members_table.c.population_id, members_table.c.member, members_table.c.labels)).all()
        published = connection.execute(select(groups_table.c.population_id, groups_table.c.labels)).all()
        for population_id in {p for p, _, _ in rows}:
            mine = [(m, lab) for p, m, lab in rows if p == population_id]
            held = {lab: {m for m, ml in mine if _member_of(ml, lab)} for p, lab in published if p == population_id}
            everything[population_id] = ({m for m, _ in mine}, held)
        checked = 0
        for number in range(60):
            base, held_groups = kept[rng.randrange(len(kept))]
            # Near an earlier release: a few students fewer or more; two races of it; or the
            # students of its hidden races, a group no published count holds, less one.
            chosen = base[rng.randrange(0, 6):] + students[len(base):len(base) + rng.randrange(0, 4)]
            if number % 3 == 1:
                chosen = [s for s in base if district[s]["race"] in ("A", "B")][1:]
            if number % 3 == 2:
                shown = {label.split("=")[1] for label in held_groups if label.startswith("race=")}
                chosen = [s for s in base if district[s]["race"] not in shown][1:]
            labels = {s: district[s] for s in chosen}
            groups = _groups(labels, t)
            if not groups:
                continue
            hashed = {k: {digest(s) for s in v} for k, v in groups.items()}
            indexed = ledger.check_groups(connection, ledger._shared_with(recipient), [ledger.keyring.current],
                                          "2025-2026", groups, t, settled=True)
            brute = [(labels_, earlier, difference) for members, held in everything.values()
                     for labels_, earlier, difference in near_groups(hashed, held, members, t)]
            assert sorted((c.labels, c.earlier_labels, c.difference) for c in indexed) == sorted(brute)
            checked += bool(brute)
        assert checked >= 10, "the cohorts were meant to be near earlier releases"
