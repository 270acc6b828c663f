"""The release ledger: what every recipient holds, so no release singles a student out by difference.

Two aggregate releases whose groups differ by a few students describe those students: the total of
16 listed students next to the total of the same 15 gives the sixteenth student's outcome. The
ledger remembers, for every published aggregate group, who was in it, and every new plan is
compared with the groups its recipient already holds before anything is computed.

What it stores (in the request register's database, next to the register's tables):

- per release: the request, the recipient (requester, organization, partner, role; public when the
  role publishes), the policy, the content digest, and whether the release is published;
- per release and school year, each student of the population as a keyed hash (HMAC-SHA-256 with a
  key the district keeps, never the ID) with the labels of the groups they fall in (grade=6, ...);
- per published group (a table cell whose count was published): its labels, its size, and a
  bottom-k sketch of its members' hashes, indexed so that near-identical groups are found without
  reading every release.

The check: a group G of the new release and a group H the recipient holds conflict when
0 < |G - H| + |H - G| < t, with t the pack's smallest publishable group size, whatever the two
groups' definitions (the girls of one release against the whole of a later list); and so do a
group and a sum of one breakdown's published categories of the other release (grades 6 and 7
added up), what a published total leaves over counting as one more category (`near_groups`).
Before a fill the protection's choice is not known, so the plan compares each group it may
publish with held groups of its own definition and the whole cohort with everything; the groups
actually published are compared with everything when the release is recorded (`Ledger.begin`).
(Different cells of one school year are protected against each other inside the release,
workbench.disclosure.release.) Two groups that differ by fewer than t students share at least
min(k, |G|, |H|) - (t - 1) of their k smallest hashes, which is what the sketch index finds;
populations that could hold a sum near a group are found through the member index; candidates
are then compared member by member. A school year with a conflict is left out of the new plan,
with a reason naming the earlier release.

Keys rotate without losing the past: the key file keeps every key by id, new releases are hashed
with the current one, and a check hashes the new population with each key an earlier release used.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    update,
)

from workbench.errors import EnvironmentProblem

SKETCH_SIZE = 32
HASH_CHARS = 24  # 96 bits of the HMAC: collisions are negligible at district scale
PUBLIC_ROLES = frozenset({"public", "media", "public_records"})
WHOLE_POPULATION = ""  # the labels of a year's Total row

metadata = MetaData()

releases_table = Table(
    "ledger_releases", metadata,
    Column("release_key", String(200), primary_key=True),
    Column("request_id", String(100), nullable=False, index=True),
    Column("state", String(10), nullable=False),  # pending | published
    Column("requester", String(300)),
    Column("organization", String(300)),
    Column("partner_id", String(100)),
    Column("role", String(40)),
    Column("public", Boolean, nullable=False),
    Column("policy", String(100)),
    Column("content_digest", String(64), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
)
populations_table = Table(
    "ledger_populations", metadata,
    Column("population_id", Integer, primary_key=True, autoincrement=True),
    Column("release_key", String(200), ForeignKey("ledger_releases.release_key", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("school_year", String(9), nullable=False),
    Column("key_id", String(40), nullable=False),
)
members_table = Table(
    "ledger_members", metadata,
    Column("population_id", Integer, ForeignKey("ledger_populations.population_id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("member", String(HASH_CHARS), nullable=False),
    Column("labels", Text, nullable=False),  # "grade=6|gender=F"
)
groups_table = Table(
    "ledger_groups", metadata,
    Column("group_id", Integer, primary_key=True, autoincrement=True),
    Column("population_id", Integer, ForeignKey("ledger_populations.population_id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("labels", Text, nullable=False),  # the group: "grade=6" ("" = the whole population)
    Column("size", Integer, nullable=False),
)
sketch_table = Table(
    "ledger_sketch", metadata,
    Column("group_id", Integer, ForeignKey("ledger_groups.group_id", ondelete="CASCADE"), nullable=False),
    Column("member", String(HASH_CHARS), nullable=False),
)
Index("ledger_sketch_member", sketch_table.c.member)
# Which earlier populations hold a new group's students (the sums of categories, see near_groups).
MEMBER_INDEX = Index("ledger_members_member", members_table.c.member)


class LedgerError(EnvironmentProblem):
    """The ledger or its key file cannot be used."""


class LedgerConflict(EnvironmentProblem):
    """A release to the same recipient was recorded while this one was being filled."""


class PublishedDifference(Exception):
    """The groups a filled release publishes differ by a few students from groups its recipient
    holds under another definition (seen only once protection has chosen what to publish). The
    fill leaves those school years out and fills again; it is never shown to a user."""

    def __init__(self, conflicts: list["Conflict"]):
        super().__init__(conflicts[0].describe() if conflicts else "")
        self.conflicts = conflicts


# -- keys ------------------------------------------------------------------------------------

class Keyring:
    """The district's ledger keys: {"current": id, "keys": {id: hex}} in a file only its owner reads."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            self._write({"current": "k1", "keys": {"k1": secrets.token_hex(32)}})
        try:
            data = json.loads(self.path.read_text())
            self.current = str(data["current"])
            self.keys = {str(k): bytes.fromhex(v) for k, v in data["keys"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LedgerError(f"ledger key file {self.path}: cannot be read ({type(exc).__name__})") from None
        if self.current not in self.keys:
            raise LedgerError(f"ledger key file {self.path}: the current key {self.current} is missing")

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(self.path.name + ".new")
        descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(descriptor, "w") as handle:
            json.dump(data, handle)
        os.replace(scratch, self.path)

    def rotate(self) -> str:
        """Add a new current key; earlier keys stay to check against the releases hashed with them."""
        number = 1 + max(int(k[1:]) for k in self.keys if k[1:].isdigit()) if self.keys else 1
        new_id = f"k{number}"
        keys = {k: v.hex() for k, v in self.keys.items()} | {new_id: secrets.token_hex(32)}
        self._write({"current": new_id, "keys": keys})
        self.current, self.keys = new_id, {k: bytes.fromhex(v) for k, v in keys.items()}
        return new_id

    def hasher(self, key_id: str):
        key = self.keys.get(key_id)
        if key is None:
            raise LedgerError(f"ledger key {key_id} is not in {self.path}; it is needed for earlier releases")

        def digest(student_id: str) -> str:
            return hmac.new(key, student_id.encode(), hashlib.sha256).hexdigest()[:HASH_CHARS]

        return digest


# -- groups of a release ---------------------------------------------------------------------

@dataclass(frozen=True)
class Conflict:
    school_year: str
    labels: str  # the new group ("" = the year's whole population)
    earlier_release: str  # request id of the release already held
    earlier_labels: str
    difference: int  # students in one group and not the other
    why: str = ""  # set when the conflict is not a difference of members (see granularity_conflicts)

    def describe(self) -> str:
        if self.why:
            return f"{self.school_year}: {self.why} (release {self.earlier_release})"
        return (f"{self.school_year}: {_group_name(self.labels, 'the year')} differs by {self.difference} student"
                f"{'s' if self.difference != 1 else ''} from {_group_name(self.earlier_labels, 'the')} the recipient "
                f"already holds (release {self.earlier_release})")


def _group_name(labels: str, whole: str) -> str:
    if not labels:
        return f"{whole} whole cohort"
    if labels.startswith("a sum of"):
        return labels
    return f"the group {labels.replace('|', ', ')}"


def labels_text(pairs) -> str:
    return "|".join(f"{dim}={value}" for dim, value in pairs)


def student_labels(con, year: str, student_ids: list[str], breakdowns: list[str]) -> dict[str, dict[str, str]]:
    """Each student's label in every breakdown (as the report's tables write them) for `year`."""
    from workbench.measures import student_year_facts
    from workbench.report.aggregate import COLUMN_FOR, _labels

    if not student_ids:
        return {}
    dims = [COLUMN_FOR.get(b, b) for b in breakdowns if b != "program"]
    facts = student_year_facts(con, [year], student_ids).to_pandas()
    facts = facts.rename(columns={"school_id": "school"})
    schools = con.table("schools").select("school_id", "name").to_pandas()
    labelled = _labels(facts, dims, dict(zip(schools["school_id"], schools["name"])))
    return {row["student_id"]: {dim: str(row[dim]) for dim in dims} for _, row in labelled.iterrows()}


def _pack_bands(plan) -> dict[str, tuple[dict[str, tuple[str, ...]], bool]]:
    """Per breakdown column the plan's pack bands: (its bands, label -> values; whether the plan
    publishes it in them)."""
    from workbench.policy import load_policy
    from workbench.report.aggregate import COLUMN_FOR

    if not plan.policy_path:
        return {}
    policy = load_policy(plan.policy_path)
    found = {}
    for breakdown in plan.decision.breakdowns:
        bands = policy.bands(breakdown)
        if bands:
            found[COLUMN_FOR.get(breakdown, breakdown)] = (bands, breakdown in plan.bands)
    return found


def plan_labels(con, year: str, plan) -> dict[str, dict[str, str]]:
    """Each student's labels as the plan's tables write them: a banded breakdown by its band."""
    labels = student_labels(con, year, plan.students(year), list(plan.decision.breakdowns))
    for dim, (bands, banded) in _pack_bands(plan).items():
        if not banded:
            continue
        band_of = {value: band for band, values in bands.items() for value in values}
        for values in labels.values():
            if dim in values:
                values[dim] = band_of.get(values[dim], values[dim])
    return labels


def _other_granularity(plan) -> dict[str, set[str]]:
    """Per breakdown the pack bands: the labels of the granularity this plan does not publish."""
    return {dim: ({value for values in bands.values() for value in values} if banded else set(bands))
            for dim, (bands, banded) in _pack_bands(plan).items()}


def candidate_groups(labels: dict[str, dict[str, str]], breakdowns: list[str], rule) -> dict[str, set[str]]:
    """The groups a report of these breakdowns may publish: the whole population, each category of
    each breakdown, and each pair of categories, keeping only groups that are not small."""
    dims = sorted({dim for student in labels.values() for dim in student})
    groups: dict[str, set[str]] = defaultdict(set)
    for sid, values in labels.items():
        groups[WHOLE_POPULATION].add(sid)
        for i, first in enumerate(dims):
            groups[labels_text([(first, values[first])])].add(sid)
            for second in dims[i + 1:]:
                groups[labels_text([(first, values[first]), (second, values[second])])].add(sid)
    return {key: members for key, members in groups.items() if not rule.is_small(len(members))}


def published_groups(folder: Path, tables: dict[str, dict]) -> dict[str, set[str]]:
    """Per school year, the labels of every group whose count a release's tables publish."""
    import csv
    import io

    found: dict[str, set[str]] = defaultdict(set)
    for name, summary in tables.items():
        path = folder / "tables" / f"{name}.csv"
        dims = list(summary.get("dims") or [])
        if not path.is_file() or not dims:
            continue
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
        for row in rows:
            count = str(row.get("students", "")).strip().replace(",", "")
            if count.isdigit() and int(count) > 0:
                found[summary["year"]].add(labels_text(sorted((d, row[d]) for d in dims if row[d] != "Total")))
    return found


def _sketch(hashes: set[str]) -> list[str]:
    return sorted(hashes)[:SKETCH_SIZE]


def _member_of(labels: str, group: str) -> bool:
    if not group:
        return True
    have = set(labels.split("|")) if labels else set()
    return set(group.split("|")) <= have


def _one_writer_at_a_time(connection) -> None:
    """Let one release be checked and recorded at a time, as SQLite's ``BEGIN IMMEDIATE`` does (see
    workbench.register). PostgreSQL runs write transactions side by side: two fills for one recipient
    would both pass the check before either is recorded. The table lock queues writers and lets
    readers through; it is released when the transaction ends."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE ledger_releases IN SHARE ROW EXCLUSIVE MODE")


def _may_be_near(shared_hashes: int, size: int, other_size: int, t: int) -> bool:
    """Two groups within t of each other share at least min(k, |G|, |H|) - (t - 1) of their k
    smallest hashes; groups whose sizes alone differ by t or more never are."""
    if abs(size - other_size) >= t:
        return False
    return shared_hashes >= max(min(SKETCH_SIZE, size, other_size) - (t - 1), 1)


def _union_floor(size: int, t: int) -> int:
    """How many of a group's smallest hashes the categories' sketches of an earlier release must
    hold before a union of them is looked at. A union U within t of a group G holds more than half
    of G (|G & U| > (|G| + |U| - t) / 2, and every published category has t students), and a
    member among G's k - (t - 1) smallest that is in U is among the k smallest of its category."""
    seen = min(SKETCH_SIZE, size)
    return max(1, min(seen // 4, seen - 2 * (t - 1)))


def _fewest_hits(size_column, t: int):
    """SQL: the fewest sketch hashes a held group of that size shares with the new sketches when
    it could be near a new group (`_may_be_near`) or a sum of new categories (`_union_floor`)."""
    def fewest(size: int) -> int:
        return min(_union_floor(size, t), max(min(SKETCH_SIZE, size - t + 1) - (t - 1), 1))

    top = SKETCH_SIZE + 2 * t  # from here on the count no longer grows with the size
    values = [fewest(size) for size in range(1, top + 1)]
    # In order: below the first size where the count changes, the count of the sizes before it...
    whens = [(size_column < size, values[size - 2]) for size in range(2, top + 1) if values[size - 1] != values[size - 2]]
    return case(*whens, else_=values[-1]) if whens else values[-1]


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _held_floor(size: int) -> int:
    """How many of a group's smallest hashes an earlier population must hold before its sums of
    categories are compared with the group: a sum within t holds more than half of the group, so
    all of a group of up to k and, of a larger one, a sample of k hashes averaging over k/2."""
    seen = min(SKETCH_SIZE, size)
    return max(1, seen // 2 if size <= SKETCH_SIZE else seen // 5)


def closest_union(target: set[str], categories: list[set[str]]) -> set[str]:
    """The union of some of `categories` (disjoint) nearest to `target`: a category is in it when
    more of it is inside the target than outside."""
    chosen: set[str] = set()
    for category in categories:
        inside = len(category & target)
        if inside * 2 > len(category):
            chosen |= category
    return chosen


def _one_category_groups(groups: dict[str, set[str]]) -> dict[str, list[set[str]]]:
    by_dim: dict[str, list[set[str]]] = defaultdict(list)
    for labels, members in groups.items():
        if labels and "|" not in labels:
            by_dim[labels.split("=", 1)[0]].append(members)
    return by_dim


def _categories(groups: dict[str, set[str]], whole: set[str] | None) -> dict[str, list[set[str]]]:
    """Per breakdown, the published groups of one category, and what the whole leaves over (the
    sum of the hidden categories, which a published total gives away)."""
    by_dim = _one_category_groups(groups)
    if whole is not None:
        for categories in by_dim.values():
            rest = whole - set().union(*categories)
            if rest:
                categories.append(rest)
    return by_dim


def _left_over(groups: dict[str, set[str]]) -> list[set[str]]:
    """Per breakdown, the students of the whole group in none of its published categories."""
    whole = groups.get(WHOLE_POPULATION)
    if whole is None:
        return []
    rests = (whole - set().union(*categories) for categories in _one_category_groups(groups).values())
    return [rest for rest in rests if rest]


def near_groups(new: dict[str, set[str]], held: dict[str, set[str]], held_population: set[str],
                t: int, settled: bool = True) -> list[tuple[str, str, int]]:
    """(new labels, held labels, difference) for every new group within 1..t-1 students of a held
    group of the same definition, and, for the groups a release publishes (`settled`), of a held
    group of any definition or a union of a held breakdown's categories; and every held group the
    new breakdown's categories add up to within t of. A new group the recipient already holds
    exactly is skipped: every difference with it is inside one release, which its own audit
    protected.

    Before a fill, which categories the protection will hide is not known yet (`settled` False):
    the groups compared across definitions are then the whole population only, and the rest is
    compared once the release's published groups are known (`Ledger.begin`)."""
    found = []
    held_sets = list(held.values())
    held_unions = _categories(held, held_population if WHOLE_POPULATION in held else None)
    new_unions = _categories(new, new.get(WHOLE_POPULATION))
    for labels, members in new.items():
        if any(members == other for other in held_sets):
            continue
        across = settled or labels == WHOLE_POPULATION
        for earlier_labels, other in held.items():
            if (across or earlier_labels == labels) and abs(len(members) - len(other)) < t:
                difference = len(members ^ other)
                if 0 < difference < t:
                    found.append((labels, earlier_labels, difference))
        for dim, categories in held_unions.items() if across else ():
            union = closest_union(members, categories)
            difference = len(members ^ union)
            if 0 < difference < t and not any(union == other for other in held_sets):
                found.append((labels, f"a sum of {dim} groups", difference))
    new_sets = list(new.values())
    for earlier_labels, other in held.items():
        if any(other == members for members in new_sets):
            continue
        for dim, categories in new_unions.items():
            union = closest_union(other, categories)
            difference = len(other ^ union)
            if 0 < difference < t and not any(union == members for members in new_sets):
                found.append((f"a sum of {dim} groups", earlier_labels, difference))
    return found


# -- the ledger ------------------------------------------------------------------------------

class Ledger:
    def __init__(self, register_url: str | None = None, key_file: str | os.PathLike | None = None):
        from workbench.config import register_location
        from workbench.register import _make_engine
        from workbench.settings import resolve

        self.engine = _make_engine(register_location(register_url))
        with self.engine.begin() as connection:
            metadata.create_all(connection)
            MEMBER_INDEX.create(connection, checkfirst=True)  # ledgers made before the index existed
        self.keyring = Keyring(key_file or resolve("ledger_keys").value)

    @classmethod
    def if_present(cls, register_url: str | None = None) -> "Ledger | None":
        """The ledger of an existing register, or None when there is no register yet (so nothing
        was released through it): checking a request then creates no database."""
        from sqlalchemy.engine import make_url

        from workbench.config import register_location

        url = make_url(register_location(register_url))
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            if not Path(url.database).is_file():
                return None
        return cls(register_url)

    def close(self) -> None:
        self.engine.dispose()

    # -- who holds what ---------------------------------------------------------------------
    @staticmethod
    def recipient(request) -> dict:
        r = request.requester
        return {"requester": r.name, "organization": r.organization, "partner_id": r.partner_id,
                "role": r.role, "public": r.role in PUBLIC_ROLES}

    def _shared_with(self, recipient: dict, pending: bool = True):
        """Earlier releases this recipient holds or could hold: their own, their organization's or
        partner's, and every public one (a public release is compared with everything). Pending
        entries count too: a release being published right now is held a moment later."""
        states = ("pending", "published") if pending else ("published",)
        published = releases_table.c.state.in_(states)
        if recipient["public"]:
            return published
        same = [releases_table.c.public.is_(True), releases_table.c.requester == recipient["requester"]]
        if recipient["organization"]:
            same.append(releases_table.c.organization == recipient["organization"])
        if recipient["partner_id"]:
            same.append(releases_table.c.partner_id == recipient["partner_id"])
        return and_(published, or_(*same))

    # -- the check before a fill --------------------------------------------------------------
    def conflicts(self, plan, con, rule) -> list[Conflict]:
        """Groups the new plan would publish that differ by 1..t-1 students from held groups."""
        if plan.level != "aggregate" or not plan.releasable:
            return []
        with self.engine.connect() as connection:
            return self._conflicts(connection, plan, con, rule)

    def _conflicts(self, connection, plan, con, rule, exclude: str | None = None,
                   published: dict[str, set[str]] | None = None) -> list[Conflict]:
        """Conflicts of the plan's groups: every group it may publish, or with `published` (school
        year -> labels) the groups its release does publish."""
        t = rule.smallest_publishable
        recipient = self.recipient(plan.request)
        shared = self._shared_with(recipient)
        if exclude is not None:
            shared = and_(shared, releases_table.c.release_key != exclude)
        key_ids = [row[0] for row in connection.execute(
            select(populations_table.c.key_id).distinct().join(releases_table).where(shared))]
        found: list[Conflict] = []
        if not key_ids:
            return found
        granularity = _other_granularity(plan)
        for year in plan.years:
            labels = plan_labels(con, year, plan)
            groups = candidate_groups(labels, list(plan.decision.breakdowns), rule)
            if published is not None:
                groups = {key: members for key, members in groups.items() if key in published.get(year, ())}
            found += self.check_groups(connection, shared, key_ids, year, groups, t, settled=published is not None)
            found += self.granularity_conflicts(connection, shared, year, granularity)
        return sorted(set(found), key=lambda c: (c.school_year, c.labels, c.earlier_release))

    def granularity_conflicts(self, connection, shared, year: str, other: dict[str, set[str]]) -> list[Conflict]:
        """A band's count is the sum of its grades' counts: a banded table beside a table by single
        grades of the same year can pin a grade the one table hid (K-5 published, grades 5 and 6
        hidden together in the other). The two granularities of one breakdown are never released
        for the same year to recipients who may share, whichever comes first."""
        if not other:
            return []
        rows = connection.execute(
            select(groups_table.c.labels, releases_table.c.request_id).distinct()
            .select_from(groups_table.join(populations_table).join(releases_table))
            .where(populations_table.c.school_year == year, shared))
        found = []
        for labels, request_id in rows:
            held = dict(pair.split("=", 1) for pair in labels.split("|") if "=" in pair)
            for dim, values in other.items():
                if held.get(dim) in values:
                    found.append(Conflict(year, "", request_id, labels, 0,
                                          why=f"the recipient holds {dim} by the other granularity (bands or single values)"))
        return found

    def check_groups(self, connection, shared, key_ids, year: str, groups: dict[str, set[str]], t: int,
                     settled: bool = True) -> list[Conflict]:
        """Conflicts of `groups` (labels -> student IDs) with the `shared` releases' groups of `year`."""
        found: list[Conflict] = []
        for key_id in key_ids:
            digest = self.keyring.hasher(key_id)
            hashed = {key: {digest(s) for s in members} for key, members in groups.items()}
            found += self._year_conflicts(connection, shared, year, key_id, hashed, t, settled)
        return found

    def _year_conflicts(self, connection, shared, year, key_id, hashed: dict[str, set[str]], t: int,
                        settled: bool = True) -> list[Conflict]:
        """One indexed query for every group's sketch, then a member-by-member look at the few
        earlier populations that could hold a group, or a union of one breakdown's categories,
        within t of a new group (or the reverse)."""
        sketches = {labels: set(_sketch(members)) for labels, members in hashed.items()}
        # What the new categories leave over is part of their sums too; its smallest hashes find
        # held groups near such a sum.
        rests = [set(_sketch(rest)) for rest in _left_over(hashed)]
        wanted = sorted(set().union(*sketches.values(), *rests)) if sketches else []
        if not wanted:
            return []
        # The new groups near_groups compares with sums of held categories.
        compared_across = [labels for labels in hashed if settled or labels == WHOLE_POPULATION]
        # Held groups sharing enough of their sketch with the new sketches to be near a new group
        # or a sum of new categories, counted in the database; then their shared hashes.
        hits = func.count().label("hits")
        held = (
            select(groups_table.c.group_id, groups_table.c.size, groups_table.c.population_id,
                   releases_table.c.request_id)
            .select_from(sketch_table.join(groups_table).join(populations_table).join(releases_table))
            .where(sketch_table.c.member.in_(wanted), populations_table.c.school_year == year,
                   populations_table.c.key_id == key_id, shared)
            .group_by(groups_table.c.group_id, groups_table.c.size, groups_table.c.population_id,
                      releases_table.c.request_id)
            .having(hits >= _fewest_hits(groups_table.c.size, t))
        )
        earlier_groups: dict[int, tuple[int, int, str]] = {
            group_id: (size, population_id, request_id)
            for group_id, size, population_id, request_id in connection.execute(held)}
        matched: dict[int, list[str]] = defaultdict(list)  # held group -> its sketch members that were asked for
        for group_ids in _chunks(sorted(earlier_groups), 500):
            for group_id, member in connection.execute(
                    select(sketch_table.c.group_id, sketch_table.c.member)
                    .where(sketch_table.c.group_id.in_(group_ids), sketch_table.c.member.in_(wanted))):
                matched[group_id].append(member)
        readable: dict[int, str] = {}
        for group_id, members in matched.items():
            size, population_id, request_id = earlier_groups[group_id]
            # A held group near a union of the new categories shares much of its sketch with theirs.
            if len(members) >= _union_floor(size, t):
                readable[population_id] = request_id
                continue
            # Two groups within t of each other share at least min(k, |G|, |H|) - (t - 1) of their
            # k smallest hashes, and their sizes differ by less than t.
            if len(members) < max(min(SKETCH_SIZE, size - t + 1) - (t - 1), 1):
                continue
            found = set(members)
            if any(_may_be_near(len(found & sketches[labels]), len(hashed[labels]), size, t) for labels in hashed):
                readable[population_id] = request_id
        # A sum of held categories near a new group (the hidden ones together included) lies in
        # a population holding more than half of the group: all but a few of a group of up to k,
        # and about half of the k smallest hashes of a larger one. Counted in the database.
        if compared_across:
            holders = dict(connection.execute(
                select(populations_table.c.population_id, releases_table.c.request_id).join(releases_table)
                .where(populations_table.c.school_year == year, populations_table.c.key_id == key_id, shared)).all())
            # Per population, how many of each group's smallest hashes it holds, in one pass over
            # the member index; each population's year and recipient are then looked up in `holders`.
            held_hashes = [func.sum(case((members_table.c.member.in_(sorted(sketches[labels])), 1), else_=0))
                           for labels in compared_across]
            floors = [_held_floor(len(hashed[labels])) for labels in compared_across]
            for population_id in connection.execute(
                    select(members_table.c.population_id)
                    .where(members_table.c.member.in_(sorted(set().union(*(sketches[lab] for lab in compared_across)))))
                    .group_by(members_table.c.population_id)
                    .having(or_(*(held >= floor for held, floor in zip(held_hashes, floors))))).scalars():
                if population_id in holders:
                    readable.setdefault(population_id, holders[population_id])
        if not readable:
            return []
        conflicts = []
        for population_id, (members, groups) in self._read_populations(connection, sorted(readable)).items():
            for labels, earlier_labels, difference in near_groups(hashed, groups, members, t, settled):
                conflicts.append(Conflict(year, labels, readable[population_id], earlier_labels, difference))
        return conflicts

    @staticmethod
    def _read_populations(connection, population_ids: list[int]) -> dict[int, tuple[set[str], dict[str, set[str]]]]:
        """Each population's members and the members of every group its release published."""
        labelled: dict[int, list[tuple[str, str]]] = defaultdict(list)
        for population_id, member, member_labels in connection.execute(
                select(members_table.c.population_id, members_table.c.member, members_table.c.labels)
                .where(members_table.c.population_id.in_(population_ids))):
            labelled[population_id].append((member, member_labels))
        published: dict[int, list[str]] = defaultdict(list)
        for population_id, labels in connection.execute(
                select(groups_table.c.population_id, groups_table.c.labels)
                .where(groups_table.c.population_id.in_(population_ids))):
            published[population_id].append(labels)
        found = {}
        for population_id in population_ids:
            rows = labelled.get(population_id, [])
            groups = {labels: {m for m, lab in rows if _member_of(lab, labels)} for labels in published[population_id]}
            found[population_id] = ({m for m, _ in rows}, groups)
        return found

    # -- recording a release ------------------------------------------------------------------
    def begin(self, plan, content_digest: str, published: dict[str, set[str]], con, rule=None) -> str | None:
        """Record a release as pending before it is published (see `commit` and `recover`).

        `published` maps each school year to the labels of the groups whose counts the release
        publishes. With the policy's `rule`, the plan is checked again inside the same write
        transaction, so two fills for one recipient running at once cannot both pass the check
        made when they started (the later one raises LedgerConflict and writes nothing); and the
        groups actually published are compared with held groups of every definition and with
        sums of held categories (PublishedDifference, nothing written). Returns the release key,
        or None when nothing aggregate is released.
        """
        if plan.level != "aggregate" or not plan.releasable:
            return None
        key = f"{plan.request.id}:{content_digest[:16]}"
        key_id = self.keyring.current
        digest = self.keyring.hasher(key_id)
        recipient = self.recipient(plan.request)
        with self.engine.begin() as connection:
            _one_writer_at_a_time(connection)
            exists = connection.execute(select(releases_table.c.state).where(releases_table.c.release_key == key)).first()
            if exists is not None:
                return key
            if rule is not None:
                late = self._conflicts(connection, plan, con, rule)
                if late:
                    raise LedgerConflict(
                        f"{late[0].describe()}: that release was recorded while this one was being filled; "
                        "fill the request again to decide it with it")
                across = self._conflicts(connection, plan, con, rule, published=published)
                if across:
                    raise PublishedDifference(across)
            connection.execute(releases_table.insert().values(
                release_key=key, request_id=plan.request.id, state="pending", policy=plan.policy_name,
                content_digest=content_digest, recorded_at=datetime.now(timezone.utc), **recipient))
            for year in plan.years:
                groups = published.get(year, set())
                if not groups:
                    continue
                labels = plan_labels(con, year, plan)
                population_id = connection.execute(populations_table.insert().values(
                    release_key=key, school_year=year, key_id=key_id)).inserted_primary_key[0]
                hashed = {sid: digest(sid) for sid in labels}
                connection.execute(members_table.insert(), [
                    {"population_id": population_id, "member": hashed[sid],
                     "labels": labels_text(sorted(values.items()))} for sid, values in labels.items()])
                for group in sorted(groups):
                    members = {hashed[sid] for sid, values in labels.items()
                               if _member_of(labels_text(sorted(values.items())), group)}
                    if not members:  # a published zero describes nobody
                        continue
                    group_id = connection.execute(groups_table.insert().values(
                        population_id=population_id, labels=group, size=len(members))).inserted_primary_key[0]
                    connection.execute(sketch_table.insert(), [
                        {"group_id": group_id, "member": m} for m in _sketch(members)])
        return key

    def commit(self, release_key: str | None) -> None:
        if release_key is None:
            return
        with self.engine.begin() as connection:
            connection.execute(update(releases_table).where(releases_table.c.release_key == release_key)
                               .values(state="published"))

    def recover(self, store) -> dict[str, int]:
        """Finish what a crash interrupted: a pending entry whose release was published (same
        content digest) is marked published; one whose release never appeared is removed."""
        done = {"published": 0, "removed": 0}
        with self.engine.begin() as connection:
            pending = connection.execute(select(releases_table.c.release_key, releases_table.c.request_id,
                                                releases_table.c.content_digest)
                                         .where(releases_table.c.state == "pending")).all()
            for key, request_id, digest in pending:
                try:
                    there = store.exists(request_id) and store.manifest(request_id).get("content_digest") == digest
                except (OSError, ValueError):
                    there = False
                if there:
                    connection.execute(update(releases_table).where(releases_table.c.release_key == key)
                                       .values(state="published"))
                    done["published"] += 1
                else:
                    self._remove(connection, key)
                    done["removed"] += 1
        return done

    @staticmethod
    def _remove(connection, key: str) -> None:
        populations = select(populations_table.c.population_id).where(populations_table.c.release_key == key)
        groups = select(groups_table.c.group_id).where(groups_table.c.population_id.in_(populations))
        connection.execute(delete(sketch_table).where(sketch_table.c.group_id.in_(groups)))
        connection.execute(delete(groups_table).where(groups_table.c.population_id.in_(populations)))
        connection.execute(delete(members_table).where(members_table.c.population_id.in_(populations)))
        connection.execute(delete(populations_table).where(populations_table.c.release_key == key))
        connection.execute(delete(releases_table).where(releases_table.c.release_key == key))

    # -- what a recipient holds -----------------------------------------------------------------
    def holdings(self, requester: str | None = None, organization: str | None = None,
                 partner_id: str | None = None) -> list[dict]:
        recipient = {"requester": requester, "organization": organization, "partner_id": partner_id, "public": False}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(releases_table.c.request_id, releases_table.c.role, releases_table.c.public,
                       populations_table.c.school_year, func.count(groups_table.c.group_id).label("groups"))
                .select_from(releases_table.join(populations_table).join(groups_table))
                .where(self._shared_with(recipient, pending=False))
                .group_by(releases_table.c.request_id, releases_table.c.role, releases_table.c.public,
                          populations_table.c.school_year)
                .order_by(releases_table.c.request_id, populations_table.c.school_year)).all()
        return [dict(row._mapping) for row in rows]
