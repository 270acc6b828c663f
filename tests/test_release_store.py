"""Releases are immutable, atomic and idempotent."""

from __future__ import annotations

import pytest

from workbench.release.store import MANIFEST, ReleaseError, ReleaseStore


def stage(store: ReleaseStore, release_id: str, body: str):
    with store.staging(release_id) as folder:
        (folder / "tables").mkdir()
        (folder / "tables" / "enrolled.csv").write_text(body)
        return store.publish(folder, release_id, {"request_id": release_id})


def test_publish_moves_a_complete_release_into_place(tmp_path):
    store = ReleaseStore(tmp_path)
    published = stage(store, "REQ-1", "a,b\n1,2\n")
    assert published.path == tmp_path / "REQ-1" and not published.reused
    manifest = store.manifest("REQ-1")
    assert set(manifest["files"]) == {"tables/enrolled.csv"}
    assert manifest["content_digest"] == published.digest
    assert store.releases() == ["REQ-1"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".staging")]
    assert store.verify("REQ-1") == []


def test_the_same_content_again_is_idempotent_and_different_content_is_refused(tmp_path):
    store = ReleaseStore(tmp_path)
    first = stage(store, "REQ-1", "a\n1\n")
    again = stage(store, "REQ-1", "a\n1\n")
    assert again.reused and again.digest == first.digest
    with pytest.raises(ReleaseError, match="immutable"):
        stage(store, "REQ-1", "a\n2\n")
    assert (tmp_path / "REQ-1" / "tables" / "enrolled.csv").read_text() == "a\n1\n"


def test_a_failure_while_staging_leaves_nothing(tmp_path):
    store = ReleaseStore(tmp_path)
    with pytest.raises(RuntimeError):
        with store.staging("REQ-2") as folder:
            (folder / "half.csv").write_text("x")
            raise RuntimeError("cell 4 failed")
    assert list(tmp_path.iterdir()) == []
    assert store.releases() == []


def test_tampering_after_release_is_detected(tmp_path):
    store = ReleaseStore(tmp_path)
    stage(store, "REQ-3", "a\n1\n")
    target = tmp_path / "REQ-3" / "tables" / "enrolled.csv"
    target.chmod(0o644)
    target.write_text("a\n3\n")
    (tmp_path / "REQ-3" / "extra.txt").write_text("new")
    assert store.verify("REQ-3") == ["extra.txt", "tables/enrolled.csv"]


def test_release_files_are_read_only(tmp_path):
    store = ReleaseStore(tmp_path)
    stage(store, "REQ-4", "a\n1\n")
    mode = (tmp_path / "REQ-4" / MANIFEST).stat().st_mode
    assert not mode & 0o222


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", ".hidden", "REQ 1"])
def test_release_ids_cannot_escape_the_store(tmp_path, bad):
    with pytest.raises(ReleaseError):
        ReleaseStore(tmp_path).path_for(bad)


def test_a_tampered_release_is_not_taken_for_an_identical_one(tmp_path):
    from workbench.release.store import ReleaseStoreError, verify_folder

    store = ReleaseStore(tmp_path)
    stage(store, "REQ-5", "a\n1\n")
    target = tmp_path / "REQ-5" / "tables" / "enrolled.csv"
    target.chmod(0o644)
    target.write_text("a\n9\n")
    assert verify_folder(tmp_path / "REQ-5") == ["tables/enrolled.csv: its bytes do not match the manifest's checksum"]
    # The same content as first published: a re-fill would have called this "identical".
    with pytest.raises(ReleaseStoreError, match="no longer matches its manifest"):
        stage(store, "REQ-5", "a\n1\n")
    assert target.read_text() == "a\n9\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_readers_skip_folders_that_are_not_releases(tmp_path, caplog):
    store = ReleaseStore(tmp_path)
    stage(store, "REQ-6", "a\n1\n")
    (tmp_path / "HALF").mkdir()
    (tmp_path / "HALF" / MANIFEST).write_text('{"files": ')
    (tmp_path / ".staging-REQ-7-00000000").mkdir()
    (tmp_path / ".staging-REQ-7-00000000" / MANIFEST).write_text("{}")
    with caplog.at_level("WARNING"):
        assert store.releases() == ["REQ-6"]
    assert "skipped HALF" in caplog.text and ".staging" not in caplog.text
    assert set(store.problems()) == {"HALF"}


def test_a_new_staging_folder_removes_the_ones_whose_process_is_gone(tmp_path):
    store = ReleaseStore(tmp_path)
    stale = tmp_path / ".staging-REQ-8-deadbeef"
    stale.mkdir()
    (stale / "roster.csv").write_text("student_id\n0012684\n")
    (tmp_path / ".staging-REQ-8-deadbeef.lock").write_text("12345\n")  # nobody holds it
    with store.staging("REQ-9") as folder:
        assert not stale.exists() and folder.is_dir()
        with store.staging("REQ-10") as other:  # a concurrent fill keeps this one's folder
            assert folder.is_dir() and other.is_dir()
    assert list(tmp_path.iterdir()) == []
