"""A fill that stops between publishing a release and recording it leaves the register recoverable."""

from __future__ import annotations

from workbench.config import DATA_DIR
from workbench.fill import _recover_register
from workbench.register import RequestRegister
from workbench.release.store import ReleaseStore
from workbench.request import load_request


def test_a_published_release_left_filled_is_recorded_as_released(tmp_path):
    register = RequestRegister(f"sqlite:///{tmp_path / 'register.sqlite'}")
    store = ReleaseStore(tmp_path / "releases")
    published = load_request(DATA_DIR / "requests" / "demo" / "partner_aggregate.yml")
    stopped = load_request(DATA_DIR / "requests" / "demo" / "school_report.yml")
    for request in (published, stopped):
        register.register(request)
        register.set_status(request.id, "approved")
        register.set_status(request.id, "filled")
    # The first fill got as far as publishing its folder; the second stopped before.
    with store.staging(published.id) as staging:
        (staging / "report.txt").write_text("tables\n")
        store.publish(staging, published.id, {})
    _recover_register(register, store, "tester")
    assert register.status(published.id) == "released"
    assert "interrupted fill" in register.history(published.id)[-1].note
    assert register.status(stopped.id) == "filled", "no release, so nothing to record"
