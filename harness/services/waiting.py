"""The one wait-until-ready loop for a service the harness started: poll `ready` until it says yes,
fail at once when the process exits first, and give up at the deadline. Bounded, always."""
from __future__ import annotations

import subprocess
import time
from typing import Callable

from ..common.errors import InfraError


def until_ready(proc: subprocess.Popen, ready: Callable[[], bool], seconds: float, interval: float,
                exited: Callable[[], InfraError], late: Callable[[], InfraError],
                stop: Callable[[], None] = lambda: None) -> None:
    """Return once `ready()`; raise `exited()` if `proc` ends first, `late()` after `seconds`,
    each after `stop()` (the service's own stop). The error is made first: a log's tail is read
    before stop() removes it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            error = exited()
            break
        if ready():
            return
        time.sleep(interval)
    else:
        error = late()
    stop()
    raise error
