"""The key that numbers one release's pseudonyms and orders its rows.

Each release gets its own key, derived from the district's secret and the request id: re-running
a request reproduces its pseudonyms and row order exactly, while two releases (even of the same
students) are numbered and ordered independently, so neither their pseudonyms nor their row
order line them up. Everything that needs the key calls `release_key`; where the district's
secret comes from is decided here only.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from workbench.config import GENERATED_DIR
from workbench.errors import EnvironmentProblem

SECRET_ENV = "WORKBENCH_PSEUDONYM_SECRET"
SECRET_FILE = GENERATED_DIR / "pseudonym.secret"


def district_secret(path: Path = SECRET_FILE) -> bytes:
    """WORKBENCH_PSEUDONYM_SECRET, else a secret file made once for this installation."""
    from_env = os.environ.get(SECRET_ENV)
    if from_env:
        return from_env.encode("utf-8")
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32) + "\n")
        secret = path.read_text().strip()
    except FileExistsError:  # made by a parallel run a moment ago
        secret = path.read_text().strip()
    except OSError as exc:
        raise EnvironmentProblem(f"cannot read or create the pseudonym secret {path}: {exc.strerror}") from None
    if not secret:
        raise EnvironmentProblem(f"the pseudonym secret {path} is empty; delete it to make a new one")
    return secret.encode("utf-8")


def release_key(request_id: str) -> bytes:
    """The pseudonym key of the release answering `request_id`."""
    return hmac.new(district_secret(), f"pseudonyms:{request_id}".encode("utf-8"), hashlib.sha256).digest()
