"""Who may see which release: viewer tokens, and the releases a manifest names.

A viewer is a partner (``partner:P-04``) or a school (``school:1213``). The tokens file maps the
SHA-256 of each sign-in token to its viewer, so the file itself holds no usable secret; the token is
shown once, when it is created. A viewer sees a release only when all of these hold:

- the release's manifest names the viewer (the requester's ``partner_id``, or the requesting school
  leader's ``staff_school_id``);
- it is an approved *aggregate* release whose release check passed (dashboards never show
  student-level files, even to the partner that received them);
- its files still match the checksums in the manifest (checked when it is opened).

Pure functions over the release store; nothing here imports Jupyter.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from workbench.release.store import ReleaseError, ReleaseStore
from workbench.errors import InputError
from workbench.limits import excerpt

VIEWER_KINDS = ("partner", "school")
DOWNLOADABLE_SUFFIXES = (".csv", ".xlsx")
# The environment the dashboard server and its kernels keep: an allow-list, so a secret set for
# anything else on the machine (the warehouse's, a cloud key, a mail password) never reaches them.
KERNEL_ENV_ALLOWED = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
    "PYTHONPATH", "VIRTUAL_ENV", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLBACKEND", "MPLCONFIGDIR",
    # the request facts Voila hands a kernel (RFC 3875 names)
    "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_SOFTWARE", "SERVER_PROTOCOL", "SERVER_PORT", "SERVER_NAME",
    # where the releases are, and the key of the preheated kernels' request channel
    "WORKBENCH_RELEASES", "WORKBENCH_DASHBOARD_KEY",
})
KERNEL_ENV_PREFIXES = ("LC_", "VOILA_", "HTTP_X_WORKBENCH_", "JPY_")


class AccessError(InputError):
    """A malformed viewer id or tokens file."""


# A viewer's id is ASCII (it reaches logs and kernel settings); a token goes into a link as it is,
# so it holds only characters a URL carries unencoded; a label is one line a person reads.
_VIEWER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,256}")
LABEL_CHARS = 200


def check_viewer(viewer: str) -> str:
    kind, _, ident = viewer.partition(":")
    if kind not in VIEWER_KINDS or not _VIEWER_ID.fullmatch(ident):
        raise AccessError(f"viewer {excerpt(viewer)} must look like partner:P-04 or school:1213 "
                          "(ASCII letters, digits, '-' and '_', up to 64 after the colon)")
    return viewer


def check_token(token: str) -> str:
    if len(token) < 16:
        raise AccessError("a token must be at least 16 characters")
    if not _TOKEN.fullmatch(token):
        raise AccessError("a token (--token) is 16 to 256 characters: ASCII letters, digits, '.', '_', '~' and '-' "
                          "(it is sent in a link)")
    return token


def check_label(label: str) -> str:
    if len(label) > LABEL_CHARS or not label.isprintable():
        raise AccessError(f"the label (--label) is one line of at most {LABEL_CHARS} printable characters")
    return label


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def viewers_named(manifest: dict) -> set[str]:
    """The viewers a release's manifest names as its recipients."""
    requester = (manifest.get("request") or {}).get("requester") or {}
    named = set()
    if requester.get("partner_id"):
        named.add(f"partner:{requester['partner_id']}")
    if requester.get("role") == "school_leader" and requester.get("staff_school_id"):
        named.add(f"school:{requester['staff_school_id']}")
    return named


def is_dashboard_release(manifest: dict) -> bool:
    """Approved aggregate releases with a passed release check; nothing student-level."""
    decision = manifest.get("decision") or {}
    return (
        decision.get("outcome") == "approve"
        and decision.get("level") == "aggregate"
        and bool((manifest.get("release_check") or {}).get("passed"))
    )


def allowed_releases(store: ReleaseStore, viewer: str) -> list[str]:
    """Release ids the viewer may open, in store order."""
    allowed = []
    for release_id in store.releases():
        try:
            manifest = store.manifest(release_id)
        except (OSError, ValueError, ReleaseError):
            continue
        if viewer in viewers_named(manifest) and is_dashboard_release(manifest):
            allowed.append(release_id)
    return allowed


def can_open(store: ReleaseStore, viewer: str, release_id: str) -> bool:
    """May the viewer open this release now? Also refuses a release whose files were altered."""
    try:
        if not store.exists(release_id):
            return False
        manifest = store.manifest(release_id)
        if viewer not in viewers_named(manifest) or not is_dashboard_release(manifest):
            return False
        return store.verify(release_id) == []
    except (OSError, ValueError, ReleaseError):
        return False


def downloadable_file(store: ReleaseStore, viewer: str, release_id: str, name: str) -> Path | None:
    """The file to send for a download link, or None: a released table the viewer may have."""
    relative = PurePosixPath(name)
    if (
        relative.is_absolute()
        or ".." in relative.parts
        or len(relative.parts) != 2
        or relative.parts[0] != "tables"
        or relative.suffix.lower() not in DOWNLOADABLE_SUFFIXES
    ):
        return None
    if not can_open(store, viewer, release_id):
        return None
    files = store.manifest(release_id).get("files", {})
    if relative.as_posix() not in files:
        return None
    return store.path_for(release_id) / relative


def kernel_environment(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """The environment for the dashboard server and its kernels: the allow-listed settings only."""
    return {key: value for key, value in environ.items()
            if key in KERNEL_ENV_ALLOWED or key.startswith(KERNEL_ENV_PREFIXES)}


@dataclass(frozen=True)
class TokenEntry:
    viewer: str
    label: str
    created: str


class TokenBook:
    """The tokens file: ``{"tokens": {sha256(token): {"viewer", "label", "created"}}}``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._entries: dict[str, TokenEntry] = {}
        self._mtime: float | None = None
        self.reload()

    def reload(self) -> None:
        """Re-read the file when it changed (so revoking a token takes effect without a restart)."""
        try:
            status = self.path.stat()
        except FileNotFoundError:
            self._entries, self._mtime = {}, None
            return
        if not stat.S_ISREG(status.st_mode):  # a pipe would block the server's every request
            raise AccessError(f"{self.path} is not a regular file (a pipe, device or folder)")
        mtime = status.st_mtime
        if mtime == self._mtime:
            return
        try:
            raw = json.loads(self.path.read_text() or "{}")
            entries = {digest: TokenEntry(**entry) for digest, entry in (raw.get("tokens") or {}).items()}
        except (ValueError, TypeError) as error:
            raise AccessError(f"{self.path} is not a workbench tokens file: {error}") from None
        self._entries, self._mtime = entries, mtime

    def entries(self) -> dict[str, TokenEntry]:
        self.reload()
        return dict(self._entries)

    def viewer_for_digest(self, digest: str) -> str | None:
        self.reload()
        for known, entry in self._entries.items():
            if hmac.compare_digest(known, digest):
                return entry.viewer
        return None

    def viewer_for(self, token: str | None) -> str | None:
        if not token:
            return None
        return self.viewer_for_digest(token_digest(token))

    def add(self, viewer: str, label: str = "", token: str | None = None) -> str:
        """Adds a token for the viewer and returns it (the file keeps only its digest)."""
        check_viewer(viewer)
        check_label(label)
        token = check_token(token or secrets.token_urlsafe(24))
        self.reload()
        entries = dict(self._entries)
        entries[token_digest(token)] = TokenEntry(viewer, label, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self._write(entries)
        return token

    def revoke(self, viewer: str) -> int:
        """Removes every token of the viewer; returns how many."""
        check_viewer(viewer)
        self.reload()
        kept = {d: e for d, e in self._entries.items() if e.viewer != viewer}
        removed = len(self._entries) - len(kept)
        self._write(kept)
        return removed

    def _write(self, entries: dict[str, TokenEntry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"tokens": {d: e.__dict__ for d, e in sorted(entries.items())}}
        staged = self.path.with_suffix(self.path.suffix + ".tmp")
        staged.write_text(json.dumps(payload, indent=2) + "\n")
        staged.chmod(0o600)
        os.replace(staged, self.path)
        self._mtime = None
        self.reload()
