"""What a long fill or batch is doing, as it does it, on the terminal (stderr).

A fill reports its stages by calling a `Stage` callback with a short text: "deciding",
"starting kernel", "cell 3/8 (By grade)", "checking release", "publishing". `StageLines` prints
each as one line with the time since the start and the request it belongs to, so a batch of
long reports never shows a bar standing still: every report says which stage it is in.

Stage texts name steps and cells, never data.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

Stage = Callable[[str], None]


def no_progress(_stage: str) -> None:
    """A `Stage` callback that reports nothing."""


class StageLines:
    """Prints "[  12.3s] REQUEST: stage" lines to `stream` (stderr by default).

    `write` replaces the stream's own writing, e.g. `tqdm.write`, so lines go above a bar.
    """

    def __init__(self, stream: TextIO | None = None, write: Callable[[str], None] | None = None) -> None:
        self.started = time.perf_counter()
        self.stream = stream or sys.stderr
        self.write = write

    def __call__(self, request: str, stage: str) -> None:
        line = f"[{time.perf_counter() - self.started:7.1f}s] {request}: {stage}"
        if self.write is not None:
            self.write(line)
        else:
            print(line, file=self.stream, flush=True)

    def for_request(self, request: str) -> Stage:
        return lambda stage: self(request, stage)
