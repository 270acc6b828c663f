"""Who sees which release on the dashboard, and what the dashboard reads of it (fast, no server)."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from workbench.dashboard import access, content
from workbench.release.store import ReleaseStore


def _manifest(partner_id=None, school_id=None, role="community_partner", level="aggregate", outcome="approve",
              passed=True, purpose="Evaluate the program"):
    return {
        "request": {"purpose": purpose, "audience": "Board", "received": "2026-05-18", "years": ["2025-2026"],
                    "requester": {"role": role, "partner_id": partner_id, "staff_school_id": school_id,
                                  "organization": "Org"}},
        "decision": {"outcome": outcome, "level": level, "as_of": "2026-06-01"},
        "release_check": {"passed": passed},
        "policy": {"title": "Test policy"},
        "protection": {"by_grade": {"title": "Chronic absence by grade"}},
    }


def _publish(store: ReleaseStore, release_id: str, manifest: dict, with_table: bool = True) -> None:
    with store.staging(release_id) as folder:
        if with_table:
            (folder / "tables").mkdir()
            (folder / "tables" / "by_grade.csv").write_text(
                "grade,students,chronic_absence,chronic_absence_percent\n"
                "6,*,*,\n7,1234,22.2%,22.2\n8,*,*,\nTotal,1300,21.0%,21.0\n")
            frame = pd.DataFrame({"Grade": ["6", "7", "8", "Total"], "Students": ["*", "1,234", "*", "1,300"],
                                  "Chronically absent": ["*", "22.2%", "*", "21.0%"]})
            notes = pd.DataFrame({"notes": ["Chronic absence by grade, 2025-2026", "* Suppressed: small group.",
                                            "* Or hidden so a small group cannot be worked out."]})
            with pd.ExcelWriter(folder / "tables" / "by_grade.xlsx") as writer:
                frame.to_excel(writer, sheet_name="table", index=False)
                notes.to_excel(writer, sheet_name="notes", index=False)
            (folder / "roster.csv").write_text("student_id\nX\n")
        store.publish(folder, release_id, manifest)


@pytest.fixture
def store(tmp_path):
    store = ReleaseStore(tmp_path / "releases")
    _publish(store, "AGG-P04", _manifest(partner_id="P-04"))
    _publish(store, "AGG-P02", _manifest(partner_id="P-02"))
    _publish(store, "ROSTER-P04", _manifest(partner_id="P-04", level="identified"))
    _publish(store, "DENIED-P04", _manifest(partner_id="P-04", outcome="deny"))
    _publish(store, "UNCHECKED-P04", _manifest(partner_id="P-04", passed=False))
    _publish(store, "SCHOOL-1213", _manifest(school_id="1213", role="school_leader"))
    _publish(store, "TEACHER-1213", _manifest(school_id="1213", role="teacher"))
    return store


def test_each_viewer_sees_only_approved_aggregate_releases_that_name_them(store):
    assert access.allowed_releases(store, "partner:P-04") == ["AGG-P04"]
    assert access.allowed_releases(store, "partner:P-02") == ["AGG-P02"]
    assert access.allowed_releases(store, "school:1213") == ["SCHOOL-1213"]
    assert access.allowed_releases(store, "partner:P-99") == []
    assert access.allowed_releases(store, "school:P-04") == []  # kinds do not mix


def test_can_open_refuses_other_viewers_student_level_and_unknown_ids(store):
    assert access.can_open(store, "partner:P-04", "AGG-P04")
    assert not access.can_open(store, "partner:P-02", "AGG-P04")
    assert not access.can_open(store, "partner:P-04", "ROSTER-P04")
    assert not access.can_open(store, "partner:P-04", "NOPE")
    assert not access.can_open(store, "partner:P-04", "../AGG-P04")


def test_a_release_whose_files_changed_is_not_shown(store):
    table = store.path_for("AGG-P04") / "tables" / "by_grade.csv"
    table.chmod(0o644)
    table.write_text(table.read_text().replace("1234", "1235"))
    assert not access.can_open(store, "partner:P-04", "AGG-P04")


def test_a_release_whose_manifest_was_edited_to_name_another_viewer_is_not_shown(store):
    manifest = store.path_for("AGG-P02") / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text(manifest.read_text().replace('"P-02"', '"P-04"'))
    assert "P-04" in store.manifest("AGG-P02")["request"]["requester"]["partner_id"]
    assert not access.can_open(store, "partner:P-04", "AGG-P02")
    assert not access.can_open(store, "partner:P-02", "AGG-P02")
    assert store.verify("AGG-P02") == ["manifest.json"]


def test_downloads_are_only_released_tables_of_the_viewers_release(store):
    path = access.downloadable_file(store, "partner:P-04", "AGG-P04", "tables/by_grade.csv")
    assert path == store.path_for("AGG-P04") / "tables" / "by_grade.csv"
    assert access.downloadable_file(store, "partner:P-04", "AGG-P04", "tables/by_grade.xlsx") is not None
    refused = [("partner:P-02", "AGG-P04", "tables/by_grade.csv"),
               ("partner:P-04", "AGG-P04", "manifest.json"),
               ("partner:P-04", "AGG-P04", "roster.csv"),
               ("partner:P-04", "AGG-P04", "tables/../manifest.json"),
               ("partner:P-04", "AGG-P04", "/etc/passwd"),
               ("partner:P-04", "AGG-P04", "tables/missing.csv"),
               ("partner:P-04", "ROSTER-P04", "tables/by_grade.csv")]
    for viewer, release_id, name in refused:
        assert access.downloadable_file(store, viewer, release_id, name) is None, (viewer, release_id, name)


def test_tokens_file_keeps_digests_and_maps_tokens_to_viewers(tmp_path):
    book = access.TokenBook(tmp_path / "tokens.json")
    token = book.add("partner:P-04", label="demo")
    other = book.add("school:1213", token="a-fixed-token-of-enough-length")
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text and other not in text
    assert oct(os.stat(tmp_path / "tokens.json").st_mode & 0o777) == "0o600"
    fresh = access.TokenBook(tmp_path / "tokens.json")
    assert fresh.viewer_for(token) == "partner:P-04"
    assert fresh.viewer_for(other) == "school:1213"
    assert fresh.viewer_for(token + "x") is None and fresh.viewer_for("") is None
    assert book.revoke("partner:P-04") == 1
    assert fresh.viewer_for(token) is None  # the server's book sees the revocation without a restart


def test_viewer_ids_and_short_tokens_are_checked(tmp_path):
    book = access.TokenBook(tmp_path / "tokens.json")
    for bad in ["P-04", "partner:", "admin:root", "partner:P 04", "partner:../x"]:
        with pytest.raises(access.AccessError):
            book.add(bad)
    with pytest.raises(access.AccessError):
        book.add("partner:P-04", token="short")


def test_kernel_environment_drops_warehouse_and_register_settings():
    env = access.kernel_environment({"WORKBENCH_WAREHOUSE": "postgres://u:p@h/db", "WORKBENCH_REGISTER": "x",
                                     "WORKBENCH_CONFIG": "w.toml", "PGPASSWORD": "p", "PATH": "/bin"})
    assert env == {"PATH": "/bin"}


def test_kernel_environment_keeps_only_allow_listed_settings():
    env = access.kernel_environment({"AWS_SECRET_ACCESS_KEY": "k", "SMTP_PASSWORD": "p", "GITHUB_TOKEN": "t",
                                     "WORKBENCH_RELEASES": "/r", "HTTP_X_WORKBENCH_VIEWER": "partner:P-04",
                                     "VOILA_PREHEAT": "False", "LC_ALL": "C", "HOME": "/h"})
    assert env == {"WORKBENCH_RELEASES": "/r", "HTTP_X_WORKBENCH_VIEWER": "partner:P-04", "VOILA_PREHEAT": "False",
                   "LC_ALL": "C", "HOME": "/h"}


def test_a_file_changed_after_its_check_is_never_read_into_the_report(store):
    manifest = store.manifest("AGG-P04")
    assert content.read_verified(store, "AGG-P04", manifest, "tables/by_grade.csv").startswith(b"grade,")
    table = store.path_for("AGG-P04") / "tables" / "by_grade.csv"
    table.chmod(0o644)
    table.write_text(table.read_text().replace("1234", "9999"))
    with pytest.raises(content.ReleaseAltered):
        content.read_verified(store, "AGG-P04", manifest, "tables/by_grade.csv")
    with pytest.raises(content.ReleaseAltered):
        content.load_release(store, "AGG-P04")
    with pytest.raises(content.ReleaseAltered):  # a file the manifest does not list is never read
        content.read_verified(store, "AGG-P04", manifest, "tables/unlisted.csv")


def test_release_content_keeps_marks_titles_and_footnotes(store):
    shown = content.load_release(store, "AGG-P04")
    assert shown.purpose == "Evaluate the program" and shown.received == "2026-05-18" and shown.as_of == "2026-06-01"
    [table] = shown.tables
    assert table.columns == ["Grade", "Students", "Chronically absent"]
    assert table.rows == [["6", "*", "*"], ["7", "1,234", "22.2%"], ["8", "*", "*"], ["Total", "1,300", "21.0%"]]
    assert table.title == "Chronic absence by grade, 2025-2026"
    assert table.footnotes == ["* Suppressed: small group.", "* Or hidden so a small group cannot be worked out."]
    assert table.downloads == ["tables/by_grade.csv", "tables/by_grade.xlsx"]
    html = content.render_html(shown, "/base/")
    assert "/base/workbench/download/AGG-P04/tables/by_grade.csv" in html
    assert "<td>1,234</td>" in html and "<td>*</td>" in html and "\u2020" not in html


def test_rendered_html_escapes_release_text(tmp_path):
    store = ReleaseStore(tmp_path)
    _publish(store, "AGG-X", _manifest(partner_id="P-04", purpose="<script>alert(1)</script>"))
    html = content.render_html(content.load_release(store, "AGG-X"))
    assert "<script>alert" not in html and "&lt;script&gt;" in html


def test_the_mark_matches_the_release_tables():
    from workbench.disclosure.rates import SUPPRESSED_MARK

    assert content.SUPPRESSED_MARK == SUPPRESSED_MARK


def test_server_configuration_is_read_only_and_culls_idle_kernels():
    from workbench.dashboard import server

    config = server.build_config(tokens="t.json", port=1, ip="127.0.0.1", preheat=True, pool_size=3, cull_idle=120,
                                 live=True)
    voila = config.VoilaConfiguration
    assert voila.strip_sources is True and voila.show_tracebacks is False
    assert voila.file_allowlist == [] and voila.allow_template_override == "NO"
    assert voila.preheat_kernel is True and voila.default_pool_size == 3
    assert config.ViewerIdentityProvider.cookie_options["samesite"] == "Lax"
    static = server.build_config(tokens="t.json", port=1, ip="127.0.0.1", preheat=True, pool_size=3, cull_idle=120)
    assert static.VoilaConfiguration.preheat_kernel is False and static.VoilaConfiguration.default_pool_size == 0
    assert config.MappingKernelManager.cull_idle_timeout == 120
    assert "execute_request" not in server.WIDGET_MESSAGES
    assert server.wire.read_incoming(json.dumps({"header": {"msg_type": "execute_request"}}), None, 1024).msg_type == \
        "execute_request"
