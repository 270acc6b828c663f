"""Releases are immutable folders: artifacts, the executed notebook, and a manifest.

A release is built in a staging folder beside the store and renamed into place in one step, so
readers (dashboards, partners) never see half a release, and a failure leaves nothing behind.
Re-running the same request with the same data is idempotent: the manifest's content digest
(checksums of every artifact, without timestamps) matches and the existing release is kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from workbench.errors import InputError

MANIFEST = "manifest.json"
_SAFE_ID = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")


class ReleaseError(InputError):
    """A release that cannot be written (exists and differs, bad id, failed check)."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` except the manifest, by relative POSIX path."""
    return {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def content_digest(files: dict[str, str]) -> str:
    """One digest over the artifact checksums: equal digests mean identical releases."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def check_release_id(release_id: str) -> str:
    if not release_id or not set(release_id) <= _SAFE_ID or release_id.startswith("."):
        raise ReleaseError(f"release id {release_id!r} may only use letters, digits, '-', '_' and '.'")
    return release_id


@dataclass(frozen=True)
class PublishedRelease:
    path: Path
    digest: str
    reused: bool  # an identical release was already there


class ReleaseStore:
    """The folder that holds every release, one subfolder per request id."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, release_id: str) -> Path:
        return self.root / check_release_id(release_id)

    def exists(self, release_id: str) -> bool:
        return (self.path_for(release_id) / MANIFEST).is_file()

    def manifest(self, release_id: str) -> dict:
        return json.loads((self.path_for(release_id) / MANIFEST).read_text())

    def releases(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / MANIFEST).is_file())

    @contextmanager
    def staging(self, release_id: str) -> Iterator[Path]:
        """A private folder to build a release in; removed on any failure."""
        check_release_id(release_id)
        self.root.mkdir(parents=True, exist_ok=True)
        folder = self.root / f".staging-{release_id}-{uuid.uuid4().hex[:8]}"
        folder.mkdir()
        try:
            yield folder
        finally:
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)

    def publish(self, staged: Path, release_id: str, manifest: dict) -> PublishedRelease:
        """Write the manifest into `staged` and move it into place atomically."""
        files = checksums(staged)
        digest = content_digest(files)
        manifest = {**manifest, "release_id": release_id, "files": files, "content_digest": digest}
        target = self.path_for(release_id)
        if self.exists(release_id):
            existing = self.manifest(release_id)
            if existing.get("content_digest") == digest:
                return PublishedRelease(target, digest, reused=True)
            raise ReleaseError(
                f"release {release_id} already exists with different content; releases are immutable "
                "(register a new request id, or withdraw the old release first)"
            )
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
        for path in staged.rglob("*"):
            if path.is_file():
                path.chmod(0o444)
        os.replace(staged, target)
        return PublishedRelease(target, digest, reused=False)

    def verify(self, release_id: str) -> list[str]:
        """Files whose checksum no longer matches the manifest (or that appeared or vanished)."""
        folder = self.path_for(release_id)
        recorded = self.manifest(release_id).get("files", {})
        actual = checksums(folder)
        problems = [name for name in recorded if actual.get(name) != recorded[name]]
        problems += [name for name in actual if name not in recorded]
        return sorted(problems)
