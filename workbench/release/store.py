"""Releases are immutable folders: artifacts, the executed notebook, and a manifest.

A release is built in a staging folder beside the store and renamed into place in one step, so
readers (dashboards, partners) never see half a release, and a failure leaves nothing behind.
Re-running the same request with the same data is idempotent: the manifest's content digest
(checksums of every artifact, without timestamps) matches, the existing release still matches its
manifest byte for byte, and it is kept.

Crashes. Each staging folder ``.staging-ID-RAND`` has a lock file ``.staging-ID-RAND.lock`` that
its process holds (``flock``) while it builds the release; the operating system releases the lock
when the process dies, however it dies. Starting a new staging folder first removes every staging
folder whose lock is free: the leftovers of killed fills, which may hold a roster. A SIGTERM
during staging removes the folder before the process ends.

Readers skip what is not a release: dot folders (staging), folders without a readable manifest,
manifests that are not JSON or name another release. `problems()` says what was skipped and why.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import EnvironmentProblem, InputError
from workbench.request_ids import request_id_problem

MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_digest"
STAGING_PREFIX = ".staging-"
LOCK_SUFFIX = ".lock"

log = logging.getLogger(__name__)


class ReleaseError(InputError):
    """A release that cannot be written (exists and differs, bad id, failed check)."""


class ReleaseStoreError(EnvironmentProblem):
    """The store cannot be read or written: a damaged or altered release, a full disk."""


class Terminated(SystemExit):
    """SIGTERM arrived while a release was being staged; raised so the staging folder is removed."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


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
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST
    }


def content_digest(files: dict[str, str]) -> str:
    """One digest over the artifact checksums: equal digests mean identical releases."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _canonical(manifest: dict) -> dict:
    # What a manifest is once written and read back (dates and paths become text).
    return json.loads(json.dumps(manifest, default=str))


def _manifest_digest(manifest: dict) -> str:
    body = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def manifest_text(manifest: dict) -> str:
    """The bytes a manifest is written as: sorted keys, two-space indent, and a digest of its own
    content, so `verify_folder` finds any byte changed in it (see `manifest_problems`)."""
    sealed = _canonical({key: value for key, value in manifest.items() if key != MANIFEST_DIGEST})
    sealed[MANIFEST_DIGEST] = _manifest_digest(sealed)
    return json.dumps(sealed, indent=2, sort_keys=True) + "\n"


def manifest_problems(folder: Path) -> list[str]:
    """How the manifest's own bytes differ from what the store wrote; empty when they do not.

    A changed value no longer matches the manifest's digest of itself; a changed space or line
    break no longer matches the layout the store writes. Either is an edit after release. (The
    digest finds damage and edits; someone who also recomputes it is not found here: only the
    files have an outside record, the ledger's content digest in the register.)
    """
    path = folder / MANIFEST
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except OSError as exc:
        return [f"{MANIFEST}: cannot be read ({exc.strerror or type(exc).__name__})"]
    except (UnicodeDecodeError, json.JSONDecodeError):
        return [f"{MANIFEST}: is not valid JSON (damaged or altered)"]
    if not isinstance(data, dict):
        return [f"{MANIFEST}: is not a JSON object"]
    recorded = data.get(MANIFEST_DIGEST)
    if not isinstance(recorded, str):
        return [f"{MANIFEST}: has no digest of its own, so its content cannot be verified (altered, or written "
                "by a version before the digest; fill the request again)"]
    if recorded != _manifest_digest(data):
        return [f"{MANIFEST}: its content no longer matches its own digest (a value was changed after release)"]
    if raw != manifest_text(data).encode():
        return [f"{MANIFEST}: its bytes differ from the layout the store writes (edited after release)"]
    return []


def check_release_id(release_id: str) -> str:
    problem = request_id_problem(release_id)
    if problem:
        raise ReleaseError(f"release id {release_id!r:.60}: {problem}")
    return release_id


def read_manifest(folder: Path) -> dict:
    """The manifest of a release folder; `ReleaseStoreError` when it is missing or not a JSON object."""
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReleaseStoreError(f"{folder.name}: no {MANIFEST}") from None
    except OSError as exc:
        raise ReleaseStoreError(f"{folder.name}: cannot read {MANIFEST}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ReleaseStoreError(f"{folder.name}: {MANIFEST} is not valid JSON (damaged or altered)") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ReleaseStoreError(f"{folder.name}: {MANIFEST} does not list the release's files")
    return data


def verify_folder(folder: Path, manifest: dict | None = None) -> list[str]:
    """Every way the folder differs from its manifest, one line each; empty when every byte matches.

    A manifest whose own bytes were edited, files whose sha256 differs, files the manifest lists
    that are gone, files that are not in the manifest, links (a release never holds one), and a
    content digest that does not match the list.
    """
    manifest = manifest if manifest is not None else read_manifest(folder)
    recorded = manifest.get("files") or {}
    problems = manifest_problems(folder)
    links = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_symlink())
    problems += [f"{name}: is a link, not a file" for name in links]
    actual = {name: digest for name, digest in checksums(folder).items() if name not in links}
    for name in sorted(recorded):
        if name not in actual:
            problems.append(f"{name}: listed in the manifest but missing")
        elif actual[name] != recorded[name]:
            problems.append(f"{name}: its bytes do not match the manifest's checksum")
    problems += [f"{name}: not in the manifest" for name in sorted(set(actual) - set(recorded))]
    if manifest.get("content_digest") not in (None, content_digest(recorded)):
        problems.append(f"{MANIFEST}: its content digest does not match its list of files")
    return problems


@dataclass(frozen=True)
class PublishedRelease:
    path: Path
    digest: str
    reused: bool  # an identical release was already there


def _disk_problem(exc: OSError, where: Path) -> ReleaseStoreError:
    reason = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or type(exc).__name__)
    return ReleaseStoreError(f"cannot write the release store at {where}: {reason}; nothing was released")


class ReleaseStore:
    """The folder that holds every release, one subfolder per request id."""

    def __init__(self, root: str | os.PathLike):
        # Absolute at once: a template runs in its own folder, and a relative staging path handed to
        # it would put the release's tables there instead of in the release.
        self.root = Path(root).absolute()

    def path_for(self, release_id: str) -> Path:
        return self.root / check_release_id(release_id)

    def exists(self, release_id: str) -> bool:
        return (self.path_for(release_id) / MANIFEST).is_file()

    def manifest(self, release_id: str) -> dict:
        return read_manifest(self.path_for(release_id))

    def _scan(self) -> tuple[list[str], dict[str, str]]:
        if not self.root.is_dir():
            return [], {}
        good, bad = [], {}
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or not path.is_dir():
                continue
            if request_id_problem(path.name):
                bad[path.name] = "the folder name is not a release id"
                continue
            try:
                manifest = read_manifest(path)
            except ReleaseStoreError as exc:
                bad[path.name] = str(exc).removeprefix(f"{path.name}: ")
                continue
            if manifest.get("release_id", path.name) != path.name:
                bad[path.name] = f"{MANIFEST} names another release"
                continue
            good.append(path.name)
        return good, bad

    def releases(self) -> list[str]:
        """Ids of the releases in the store; folders that are not releases are skipped (see `problems`)."""
        good, bad = self._scan()
        for name, why in bad.items():
            log.warning("warning: release store %s: skipped %s: %s", self.root, name, why)
        return good

    def problems(self) -> dict[str, str]:
        """Folders in the store that are not readable releases, with why."""
        return self._scan()[1]

    # -- staging ----------------------------------------------------------------------------
    def remove_stale_staging(self) -> list[str]:
        """Remove staging folders whose process is gone (their lock is free); returns their names."""
        if not self.root.is_dir():
            return []
        removed = []
        for path in sorted(self.root.glob(f"{STAGING_PREFIX}*")):
            if path.name.endswith(LOCK_SUFFIX) or not path.is_dir():
                continue
            lock = path.with_name(path.name + LOCK_SUFFIX)
            handle = _try_lock(lock)
            if handle is False:
                continue  # a live process holds it
            try:
                shutil.rmtree(path, ignore_errors=True)
                if handle is not None:
                    lock.unlink(missing_ok=True)
            finally:
                if handle is not None:
                    handle.close()
            removed.append(path.name)
        # Lock files without a folder, and private ones a process died before renaming into place.
        for lock in [*self.root.glob(f"{STAGING_PREFIX}*{LOCK_SUFFIX}"), *self.root.glob(".lock-*")]:
            if not lock.name.endswith(LOCK_SUFFIX) or not lock.with_name(lock.name.removesuffix(LOCK_SUFFIX)).exists():
                handle = _try_lock(lock)
                if handle not in (False, None):
                    lock.unlink(missing_ok=True)
                    handle.close()
        if removed:
            log.warning("warning: release store %s: removed %d staging folder(s) left by fills that did not finish",
                        self.root, len(removed))
        return removed

    @contextmanager
    def staging(self, release_id: str) -> Iterator[Path]:
        """A private folder to build a release in; removed on any failure, and on SIGTERM."""
        check_release_id(release_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.remove_stale_staging()
            name = f"{STAGING_PREFIX}{release_id}-{uuid.uuid4().hex[:8]}"
            folder = self.root / name
            lock_handle = _create_held_lock(self.root / (name + LOCK_SUFFIX))
        except OSError as exc:
            raise _disk_problem(exc, self.root) from None
        with _TerminateCleanly() as termination:
            try:
                folder.mkdir()
                try:
                    yield folder
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
                        raise _disk_problem(exc, self.root) from None
                    raise
            finally:
                termination.hold()
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)
                (self.root / (name + LOCK_SUFFIX)).unlink(missing_ok=True)
                lock_handle.close()

    def publish(self, staged: Path, release_id: str, manifest: dict) -> PublishedRelease:
        """Write the manifest into `staged` and move it into place atomically."""
        files = checksums(staged)
        digest = content_digest(files)
        manifest = {**manifest, "release_id": release_id, "files": files, "content_digest": digest}
        target = self.path_for(release_id)
        if target.exists():
            try:
                existing = read_manifest(target)
                altered = verify_folder(target, existing)
            except ReleaseStoreError as exc:
                altered, existing = [str(exc)], {}
            if altered:
                raise ReleaseStoreError(
                    f"release {release_id} exists but no longer matches its manifest ({altered[0]}"
                    f"{f'; {len(altered) - 1} more' if len(altered) > 1 else ''}): it was altered or damaged. "
                    "Nothing was written; `workbench release check` lists every difference")
            if existing.get("content_digest") == digest:
                return PublishedRelease(target, digest, reused=True)
            raise ReleaseError(
                f"release {release_id} already exists with different content; releases are immutable "
                "(register a new request id, or withdraw the old release first)"
            )
        try:
            partial = staged / (MANIFEST + ".partial")
            partial.write_text(manifest_text(manifest))
            os.replace(partial, staged / MANIFEST)
            for path in staged.rglob("*"):
                if path.is_file():
                    path.chmod(0o444)
            os.replace(staged, target)
        except OSError as exc:
            raise _disk_problem(exc, self.root) from None
        return PublishedRelease(target, digest, reused=False)

    def verify(self, release_id: str) -> list[str]:
        """Files whose checksum no longer matches the manifest (or that appeared or vanished)."""
        folder = self.path_for(release_id)
        recorded = self.manifest(release_id).get("files", {})
        actual = checksums(folder)
        problems = [name for name in recorded if actual.get(name) != recorded[name]]
        problems += [name for name in actual if name not in recorded]
        if manifest_problems(folder):
            problems.append(MANIFEST)
        return sorted(problems)


class _Lock:
    """An open file descriptor holding an exclusive `flock`; closing it releases the lock."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _create_held_lock(path: Path) -> _Lock:
    """Create `path` already locked: made under a private name, locked, then renamed into place,
    so no other process ever sees the lock file unlocked and takes the folder for stale. It holds
    the owner's process id, for people."""
    private = path.with_name(f".lock-{uuid.uuid4().hex}")
    fd = os.open(private, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.replace(private, path)
    except BaseException:
        private.unlink(missing_ok=True)
        os.close(fd)
        raise
    return _Lock(fd)


def _try_lock(path: Path):
    """A held `_Lock` when the lock is free; False when a process holds it; None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    return _Lock(fd)


class _TerminateCleanly:
    """Turn SIGTERM into `Terminated`, so the `finally` blocks that clean up run.

    After `hold()` (cleanup has begun) a SIGTERM is only remembered and raised once cleanup is
    done, so it cannot cut the cleanup short. Only the main thread may set signal handlers;
    elsewhere nothing changes (the lock file still lets the next fill remove what was left).
    """

    def __init__(self) -> None:
        self.active = threading.current_thread() is threading.main_thread()
        self.holding = False
        self.pending = False
        self.previous = None

    def _handler(self, _signum, _frame) -> None:
        if self.holding or self.pending:
            self.pending = True
            return
        self.pending = True
        raise Terminated()

    def hold(self) -> None:
        self.holding = True

    def __enter__(self) -> "_TerminateCleanly":
        if self.active:
            self.previous = signal.getsignal(signal.SIGTERM)
            signal.signal(signal.SIGTERM, self._handler)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.active:
            signal.signal(signal.SIGTERM, self.previous if self.previous is not None else signal.SIG_DFL)
        # SIGTERM wins over whatever it caused on the way out: DuckDB, for one, turns the exception
        # raised in the middle of a query into its own "Query interrupted" RuntimeError.
        if self.pending and not (exc_type is not None and issubclass(exc_type, Terminated)):
            raise Terminated() from None
