"""Smoke test over a generated district: decisions agree with the consents table row by row."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from workbench.decision import decide
from workbench.policy import load_policy
from workbench.request import parse_request

AS_OF = date(2026, 11, 2)
NOW = pd.Timestamp(AS_OF)


@pytest.fixture(scope="module")
def partner_case(small_con):
    """The partner with the most program students, its NDA, and those students' consents."""
    tags = small_con.table("program_students").join(small_con.table("programs"), "program_id").to_pandas()
    active = tags[tags["dropped_on"].isna()]
    partners = small_con.table("partners").to_pandas()
    registered = set(partners.loc[partners["registration_status"] == "registered", "partner_id"])
    ndas = small_con.table("ndas").to_pandas()
    current = ndas[(ndas["signed_on"] <= NOW) & (ndas["expires_on"] >= NOW)]
    eligible = active[active["partner_id"].isin(registered & set(current["partner_id"]))]
    partner_id = eligible["partner_id"].value_counts().index[0]
    students = sorted(set(eligible.loc[eligible["partner_id"] == partner_id, "student_id"]))
    consents = small_con.table("consents").to_pandas()
    consents = consents[(consents["partner_id"] == partner_id) & consents["student_id"].isin(students)]
    return partner_id, students, consents


def _valid(consents, student_id: str, channels: set[str], max_age: int | None) -> bool:
    for row in consents[consents["student_id"] == student_id].itertuples():
        signed, expires = pd.Timestamp(row.signed_on).date(), pd.Timestamp(row.expires_on).date()
        revoked = None if pd.isna(row.revoked_on) else pd.Timestamp(row.revoked_on).date()
        if signed > AS_OF or expires < AS_OF or (revoked is not None and revoked <= AS_OF):
            continue
        if row.channel not in channels:
            continue
        if max_age is not None and (AS_OF - signed) > timedelta(days=max_age):
            continue
        return True
    return False


@pytest.mark.parametrize("pack, channels, max_age", [
    ("bps", {"virtual", "paper"}, None),
    ("dmps", {"virtual"}, None),
    ("mps", {"virtual", "paper"}, 365),
])
def test_identified_students_are_exactly_those_with_a_valid_consent(small_con, partner_case, pack, channels, max_age):
    """003:68 any current consent; 001:4 virtual only; 000:31 not older than one year."""
    partner_id, students, consents = partner_case
    request = parse_request({
        "id": "REQ-SMOKE", "received": AS_OF.isoformat(), "purpose": "smoke", "audience": "tests",
        "requester": {"name": "Partner", "role": "community_partner", "partner_id": partner_id},
        "level": "identified", "years": ["2025-2026"], "cohort": {"student_ids": students},
        "fields": ["name", "attendance"],
    })
    decision = decide(request, load_policy(pack), small_con, AS_OF)
    identified = {s.student_id for s in decision.students if s.level == "identified"}
    # Students the consent rule decided (not those left out as unknown, not enrolled or out of scope).
    judged_on_consent = {s.student_id for s in decision.students if not s.reasons or s.reasons[0].rule == "consent"}
    expected = {s for s in judged_on_consent if _valid(consents, s, channels, max_age)}
    assert identified == expected
    assert identified, "the generated district should have some consented students"
