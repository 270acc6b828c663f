"""The dashboard's limits: sign-in attempts, and how many kernels viewers hold and for how long.

Pure bookkeeping with an injectable clock; the server calls it and acts on the answers (answers 429,
shuts kernels down). Nothing here imports Jupyter.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class DashboardLimits:
    """What an administrator may change (`workbench serve --help`); defaults in docs/dashboards.md."""

    kernels_per_viewer: int = 2  # live mode: a viewer's third page takes over their oldest kernel
    kernels_total: int = 20  # live mode: kernels serving viewers at once (the preheated pool is extra)
    kernel_lifetime: float = 1800.0  # live mode: seconds a viewer's kernel lives, however busy
    sockets_per_viewer: int = 6  # live mode: kernel channels one viewer may hold open
    comms_per_kernel: int = 16  # live mode: widget comms the page may open in one kernel
    message_bytes: int = 64 * 1024  # live mode: largest websocket frame the page may send
    sign_in_failures: int = 10  # failed token attempts per address ...
    sign_in_window: float = 60.0  # ... within this many seconds, then 429 until they age out

    def __post_init__(self):
        for name in ("kernels_per_viewer", "kernels_total", "sockets_per_viewer", "comms_per_kernel",
                     "message_bytes", "sign_in_failures"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.kernel_lifetime <= 0 or self.sign_in_window <= 0:
            raise ValueError("kernel_lifetime and sign_in_window must be positive")


class SignInLimiter:
    """Failed sign-ins per client address in a sliding window; a blocked address is refused outright.

    Remembers at most `max_clients` addresses (the oldest are forgotten), so a flood of addresses
    cannot grow it without bound.
    """

    def __init__(self, failures: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000):
        self.failures, self.window, self.clock, self.max_clients = failures, window, clock, max_clients
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, client: str) -> deque[float]:
        stamps = self._seen.get(client)
        if stamps is None:
            return deque()
        cutoff = self.clock() - self.window
        while stamps and stamps[0] <= cutoff:
            stamps.popleft()
        if not stamps:
            del self._seen[client]
        return stamps

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self.failures

    def failed(self, client: str) -> None:
        stamps = self._recent(client)
        stamps.append(self.clock())
        self._seen[client] = stamps
        self._seen.move_to_end(client)
        while len(self._seen) > self.max_clients:
            self._seen.popitem(last=False)

    def retry_after(self, client: str) -> int:
        stamps = self._recent(client)
        return max(1, int(stamps[0] + self.window - self.clock()) + 1) if stamps else 0


@dataclass(frozen=True)
class Admission:
    """The answer to a viewer opening a page: kernels to shut down first, or why not at all."""

    evict: tuple[str, ...] = ()
    refused: str | None = None  # "viewer" (their pages are all still loading) or "server" (full)


@dataclass
class KernelLedger:
    """Which viewer holds which kernel since when, and the pages still being rendered."""

    limits: DashboardLimits
    clock: Callable[[], float] = time.monotonic
    owners: dict[str, tuple[str, float]] = field(default_factory=dict)  # kernel id -> (viewer, since)
    rendering: Counter = field(default_factory=Counter)  # viewer -> pages being rendered

    def owner(self, kernel_id: str | None) -> str | None:
        entry = self.owners.get(kernel_id) if kernel_id else None
        return entry[0] if entry else None

    def kernels_of(self, viewer: str) -> list[str]:
        """The viewer's kernels, oldest first."""
        return [k for k, _ in sorted(((k, since) for k, (v, since) in self.owners.items() if v == viewer),
                                     key=lambda item: item[1])]

    def admit(self, viewer: str) -> Admission:
        """May the viewer open one more page? Reserves its place when the answer is yes."""
        mine = self.kernels_of(viewer)
        busy = self.rendering[viewer]
        if busy >= self.limits.kernels_per_viewer:
            return Admission(refused="viewer")
        evict = tuple(mine[: max(0, len(mine) + busy + 1 - self.limits.kernels_per_viewer)])
        held = len(self.owners) - len(evict) + sum(self.rendering.values())
        if held + 1 > self.limits.kernels_total:
            return Admission(refused="server")
        self.rendering[viewer] += 1
        for kernel_id in evict:
            self.owners.pop(kernel_id, None)
        return Admission(evict=evict)

    def rendered(self, viewer: str) -> None:
        """The page's render finished (or failed): its place is no longer reserved."""
        self.rendering[viewer] -= 1
        if self.rendering[viewer] <= 0:
            del self.rendering[viewer]

    def claim(self, kernel_id: str, viewer: str) -> None:
        if kernel_id not in self.owners:
            self.owners[kernel_id] = (viewer, self.clock())

    def forget(self, kernel_id: str) -> None:
        self.owners.pop(kernel_id, None)

    def expired(self) -> list[str]:
        """Kernels held longer than the hard lifetime (activity does not extend it)."""
        cutoff = self.clock() - self.limits.kernel_lifetime
        return [k for k, (_, since) in self.owners.items() if since <= cutoff]

    def held_by(self, viewers: set[str]) -> list[str]:
        return [k for k, (v, _) in self.owners.items() if v in viewers]
