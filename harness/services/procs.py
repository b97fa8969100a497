"""Stopping what the harness started, by its own PID: every service runs in its own session
(start_new_session=True), so its process group is its PID and holds its children."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL):
    """A preexec_fn: the child gets `sig` when the process that started it dies (a crashed
    xdist worker), so nothing it started outlives it."""
    def preexec():
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    return preexec


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM the group, wait `grace` seconds, then SIGKILL it; reaps the process."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
    except ProcessLookupError:
        proc.poll()
