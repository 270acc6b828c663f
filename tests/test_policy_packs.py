"""Policy packs load, validate strictly, extend by deep merge, cite real seed lines, and hash stably."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench import config, safe_yaml
from workbench.policy import PolicyError, available_policies, load_policy
from workbench.policy.model import Source, format_lines
from workbench.policy.vocabulary import LEVELS, ROLES

PACKS = ("bps", "dmps", "mmsd", "mps", "nces")
DISTRICT_PACKS = ("bps", "dmps", "mmsd", "mps")
SEEDS = Path(os.environ.get("WORKBENCH_SEEDS", config.PROJECT_ROOT.parent / "shared" / "seeds"))
TESTS = Path(__file__).parent


def _write(path: Path, data: dict) -> Path:
    path.write_text(safe_yaml.dump(data, sort_keys=False), encoding="utf-8")  # no anchors: they are refused
    return path


def _nces_with(tmp_path: Path, **changes) -> Path:
    """A copy of the nces pack with top-level keys replaced, saved under tmp_path."""
    data = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())
    data.update(changes)
    return _write(tmp_path / "variant.yaml", data)


def test_every_pack_is_available_and_loads():
    assert set(PACKS) <= set(available_policies())
    for name in PACKS:
        policy = load_policy(name)
        assert policy.name == name
        assert len(policy.content_hash) == 64


def test_district_packs_extend_the_nces_baseline():
    for name in DISTRICT_PACKS:
        assert load_policy(name).chain == (name, "nces")


def test_every_pack_has_a_rule_for_every_role_and_level():
    for name in PACKS:
        pack = load_policy(name).pack
        assert set(pack.roles) == set(ROLES), name
        assert set(pack.levels) == set(LEVELS), name


def test_content_hash_is_stable_and_changes_with_the_rules(tmp_path):
    assert load_policy("bps").content_hash == load_policy("bps").content_hash
    assert load_policy("bps").content_hash != load_policy("dmps").content_hash
    baseline = load_policy(config.POLICY_DIR / "nces.yaml").content_hash
    groups = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["small_groups"]
    changed = load_policy(_nces_with(tmp_path, small_groups={**groups, "threshold": 11})).content_hash
    assert changed != baseline


def test_the_loader_imports_nothing_from_jupyter():
    code = ("import sys, workbench.policy, workbench.decision, workbench.request, workbench.register; "
            "bad = [m for m in ('IPython', 'ipywidgets', 'voila', 'papermill', 'ipykernel') if m in sys.modules]; "
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_a_bad_comparison_names_the_key(tmp_path):
    groups = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["small_groups"]
    path = _nces_with(tmp_path, small_groups={**groups, "comparison": "=<"})
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert "policy variant: small_groups.comparison: must be '<' or '<='" in str(caught.value)


def test_an_unknown_key_is_refused_with_its_path(tmp_path):
    groups = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["small_groups"]
    path = _nces_with(tmp_path, small_groups={**groups, "treshold": 5})
    with pytest.raises(PolicyError, match=r"small_groups\.treshold: is not a known key"):
        load_policy(path)


def test_an_unknown_role_is_refused(tmp_path):
    roles = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["roles"]
    path = _nces_with(tmp_path, roles={**roles, "journalist": roles["media"]})
    with pytest.raises(PolicyError, match=r"roles\.journalist"):
        load_policy(path)


def test_a_rule_without_a_source_is_refused(tmp_path):
    levels = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["levels"]
    del levels["aggregate"]["source"]
    with pytest.raises(PolicyError, match=r"levels\.aggregate\.source: is required"):
        load_policy(_nces_with(tmp_path, levels=levels))


def test_a_seed_citation_needs_line_numbers(tmp_path):
    levels = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["levels"]
    levels["aggregate"]["source"] = {"file": "003_a1c0b4a5b6af9e75.txt"}
    with pytest.raises(PolicyError, match="needs the line numbers"):
        load_policy(_nces_with(tmp_path, levels=levels))


def test_a_redirect_must_name_a_known_office(tmp_path):
    roles = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["roles"]
    roles["media"] = {"description": "x", "redirect": "press_office", "source": {"external": "x"}}
    with pytest.raises(PolicyError, match="no redirect named 'press_office'"):
        load_policy(_nces_with(tmp_path, roles=roles))


def test_consent_cannot_be_a_role_wide_requirement(tmp_path):
    roles = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["roles"]
    roles["community_partner"]["requires"] = ["consent"]
    with pytest.raises(PolicyError, match="checked per student"):
        load_policy(_nces_with(tmp_path, roles=roles))


def test_low_income_cannot_be_made_directory_information(tmp_path):
    directory = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["directory"]
    directory["fields"] = ["name", "low_income"]
    with pytest.raises(PolicyError, match="aggregate-only fields cannot be directory"):
        load_policy(_nces_with(tmp_path, directory=directory))


def test_overlapping_percent_tiers_are_refused(tmp_path):
    groups = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())["small_groups"]
    groups["percent_tiers"] = [{"min_size": 10, "max_size": 50, "bottom": 5, "top": 95},
                               {"min_size": 40, "max_size": None, "bottom": 1, "top": 99}]
    with pytest.raises(PolicyError, match="overlap at group size 40"):
        load_policy(_nces_with(tmp_path, small_groups=groups))


def test_unknown_pack_name_lists_the_available_ones():
    with pytest.raises(PolicyError, match="available: bps, dmps"):
        load_policy("nowhere")


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nlevels: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML at line"):
        load_policy(path)


def test_extends_merges_deeply_and_keeps_inherited_keys(tmp_path):
    child = {
        "name": "child", "title": "Child", "extends": "nces",
        "small_groups": {"threshold": 15, "comparison": "<=", "source": {"external": "a district memo"}},
    }
    policy = load_policy(_write(tmp_path / "child.yaml", child))
    groups = policy.pack.small_groups
    assert (groups.threshold, groups.comparison) == (15, "<=")
    assert groups.percent_tiers == load_policy("nces").pack.small_groups.percent_tiers  # inherited
    assert groups.source.external == "a district memo"  # a source is replaced whole, never mixed
    assert policy.chain == ("child", "nces")
    assert set(policy.pack.roles) == set(ROLES)


def test_overriding_an_inherited_rule_needs_its_own_source(tmp_path):
    child = {"name": "child", "title": "Child", "extends": "nces", "consent": {"max_age_days": 30}}
    with pytest.raises(PolicyError, match="consent: changes an inherited rule without citing its own source"):
        load_policy(_write(tmp_path / "child.yaml", child))


def test_null_removes_an_inherited_entry(tmp_path):
    child = {"name": "child", "title": "Child", "extends": "nces", "roles": {"public": None}}
    assert "public" not in load_policy(_write(tmp_path / "child.yaml", child)).pack.roles


def test_extends_cycles_are_refused(tmp_path):
    _write(tmp_path / "a.yaml", {"name": "a", "title": "A", "extends": "b"})
    _write(tmp_path / "b.yaml", {"name": "b", "title": "B", "extends": "a"})
    with pytest.raises(PolicyError, match="cycle"):
        load_policy(tmp_path / "a.yaml")


def test_a_named_pack_must_carry_its_own_name(tmp_path, monkeypatch):
    data = yaml.safe_load((config.POLICY_DIR / "nces.yaml").read_text())
    data["name"] = "other"
    _write(tmp_path / "nces.yaml", data)
    monkeypatch.setattr(config, "POLICY_DIR", tmp_path)
    with pytest.raises(PolicyError, match="name: is 'other' but the file is nces.yaml"):
        load_policy("nces")


def test_small_group_thresholds_per_pack():
    """003:66 fewer than 10 suppressed; 001:2 and 001:20 larger than 10 (10 suppressed); nces n<10."""
    bps, dmps, nces = (load_policy(n).small_group_rule() for n in ("bps", "dmps", "nces"))
    assert bps.is_small(9) and not bps.is_small(10)
    assert dmps.is_small(10) and not dmps.is_small(11)
    assert nces.is_small(9) and not nces.is_small(10)
    assert not nces.is_small(0)  # zero is not a small group unless the pack says so


def test_mps_small_groups_keep_the_baseline_number_and_protect_whole_tables():
    """000:42 aggregates become identifiable as variables are added: complementary suppression."""
    groups = load_policy("mps").pack.small_groups
    assert groups.complementary and groups.threshold == 10 and groups.comparison == "<"


def test_nces_percent_tiers_cover_every_reportable_size_without_gaps():
    tiers = load_policy("nces").pack.small_groups.percent_tiers
    assert tiers[0].min_size == load_policy("nces").pack.small_groups.threshold
    for lower, upper in zip(tiers, tiers[1:]):
        assert upper.min_size == lower.max_size + 1
        assert upper.bottom <= lower.bottom and upper.top >= lower.top  # bigger groups, finer coding
    for tier in tiers:
        assert tier.bottom >= 100 / tier.min_size  # the bottom code always covers at least one student
    assert tiers[-1].max_size is None


def test_small_group_rule_is_what_the_disclosure_engine_takes():
    from workbench.disclosure.rules import SmallGroupRule

    for name in PACKS:
        rule = load_policy(name).small_group_rule()
        groups = load_policy(name).pack.small_groups
        assert isinstance(rule, SmallGroupRule)
        assert (rule.threshold, rule.comparison) == (groups.threshold, groups.comparison)
        assert len(rule.percent_tiers) == len(groups.percent_tiers)
    assert load_policy("dmps").small_group_rule().comparison == "<="


def test_the_nces_pack_and_the_disclosure_default_tiers_agree():
    """NCES SLDS Technical Brief 3 percentage coding is written once in spirit: the pack and the engine agree."""
    from workbench.disclosure.rules import NCES_PERCENT_TIERS

    assert load_policy("nces").small_group_rule().percent_tiers == NCES_PERCENT_TIERS


def test_format_lines_joins_runs():
    assert format_lines([66]) == "line 66"
    assert format_lines([91, 92, 93]) == "lines 91-93"
    assert format_lines([41, 33]) == "lines 33, 41"
    assert Source(file="x.txt", lines=(5, 6, 9)).label() == "x.txt lines 5-6, 9"


# -- citations --------------------------------------------------------------------------------

def _sources(node, path=""):
    """Every (path, Source) in a pack, walking models, dicts and tuples."""
    from pydantic import BaseModel

    if isinstance(node, Source):
        yield path, node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _sources(getattr(node, name), f"{path}.{name}" if path else name)
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _sources(value, f"{path}.{key}")
    elif isinstance(node, (tuple, list)):
        for index, value in enumerate(node):
            yield from _sources(value, f"{path}[{index}]")


def _normalize(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").replace("*", "").split()).lower()


# The cited lines, as the seeds had them: the citation test runs from this snapshot where the
# seed documents are not checked out beside the project (a CI machine), and the snapshot is
# checked against the seeds wherever they are.
CITED_LINES = TESTS / "seed_citations.json"


def _cited_line_numbers() -> dict[str, set[int]]:
    cited: dict[str, set[int]] = {}
    for name in PACKS:
        for _path, source in _sources(load_policy(name).pack):
            if source.file is not None:
                cited.setdefault(source.file, set()).update(source.lines)
    return cited


def _seed_lines(file: str) -> list[str] | None:
    seed = SEEDS / file
    return seed.read_text(encoding="utf-8").splitlines() if seed.is_file() else None


def test_the_snapshot_of_cited_lines_matches_the_seeds():
    snapshot = json.loads(CITED_LINES.read_text())
    if not SEEDS.is_dir():
        assert snapshot, "the snapshot of cited seed lines is empty"
        return  # nothing to compare with here; the citation test below runs from the snapshot
    current = {}
    for file, numbers in sorted(_cited_line_numbers().items()):
        lines = _seed_lines(file) or []
        current[file] = {str(n): lines[n - 1] for n in sorted(numbers) if n <= len(lines)}
    assert snapshot == current, (
        "tests/seed_citations.json is stale: regenerate it with "
        "`python -m tests.test_policy_packs` after changing a citation"
    )


def test_every_citation_points_at_real_lines_that_say_what_the_pack_quotes():
    snapshot = json.loads(CITED_LINES.read_text())
    problems = []
    for name in PACKS:
        for path, source in _sources(load_policy(name).pack):
            if source.file is None:
                continue
            lines = _seed_lines(source.file) if SEEDS.is_dir() else None
            if lines is None:
                recorded = snapshot.get(source.file)
                if recorded is None:
                    problems.append(f"{name} {path}: no seed {source.file}")
                    continue
                text = [recorded.get(str(n)) for n in source.lines]
            else:
                text = [lines[n - 1] if n <= len(lines) else None for n in source.lines]
            if any(t is None for t in text):
                problems.append(f"{name} {path}: {source.file} has no line {source.label()}")
                continue
            cited = _normalize(" ".join(text))
            if not cited:
                problems.append(f"{name} {path}: cites blank lines")
            elif source.quote and _normalize(source.quote) not in cited:
                problems.append(f"{name} {path}: {source.quote!r} is not on {source.label()}")
    assert not problems, "\n".join(problems)


def test_every_seed_cited_rule_has_a_test_naming_its_line():
    """A test docstring or name mentions NNN:LINE (seed number, line) for each rule's citation."""
    test_text = "\n".join(p.read_text() for p in TESTS.glob("test_*.py"))
    mentioned = set(re.findall(r"\b(\d{3}):(\d+)\b", test_text))
    missing = []
    for name in PACKS:
        for path, source in _sources(load_policy(name).pack):
            if source.file is None or ".see_also" in path or path.endswith("see_also"):
                continue
            seed = source.file[:3]
            if not any((seed, str(line)) in mentioned for line in source.lines):
                missing.append(f"{name} {path} ({source.label()})")
    assert not missing, "rules without a test naming their seed line:\n" + "\n".join(sorted(set(missing)))


if __name__ == "__main__":
    # Regenerates the snapshot of cited seed lines (needs the seeds beside the project).
    snapshot = {}
    for file, numbers in sorted(_cited_line_numbers().items()):
        lines = _seed_lines(file) or []
        snapshot[file] = {str(n): lines[n - 1] for n in sorted(numbers) if n <= len(lines)}
    CITED_LINES.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n")
