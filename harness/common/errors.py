"""The kinds of error the harness raises on purpose, one per outcome (docs/ARCHITECTURE.md,
"Outcomes").

UserError: the user's input is wrong (file, key, host, filter). One line, exit 2, no traceback.
InfraError: the lab could not do its part (image build, boot, SSH lost, disk full, a mirror or
registry unreachable, a step of the harness's own plumbing); the outcome is `error`.
ProductFailure: what is under test did not do its part (a required binary missing or not an
executable, a bootstrap step of the product failing, no node registered, a registry's answer
about the product: 404, denied); the outcome is `failed`, never retried.
Both carry their artifacts (serial log, bootstrap log) and the tail of the output to the report,
as kubetest2's errors carry their report metadata.
"""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input. str(err) is the whole message, one line, naming file/key/host."""


class _Reported(Exception):
    """An error with what a report shows beside its message: artifacts and an output tail."""

    kind = ""

    def __init__(self, message: str, *, artifacts: dict[str, Path | str] | None = None, log_tail: str = ""):
        super().__init__(message)
        self.artifacts = dict(artifacts or {})
        self.log_tail = log_tail

    def details(self) -> list[str]:
        return []

    def report(self) -> str:
        lines = [f"{self.kind}: {self}", *self.details()]
        for name, path in self.artifacts.items():
            lines.append(f"  artifact {name}: {path}")
        if self.log_tail:
            lines.append("  last lines of the log:")
            lines.extend("    " + line for line in self.log_tail.splitlines())
        return "\n".join(lines)


class InfraError(_Reported):
    """The lab failed; the product under test was not judged. `retryable`: provisioning a fresh
    node may help (a boot timeout), unlike an unreachable URL or a missing host tool."""

    kind = "infrastructure error"

    def __init__(self, message: str, *, artifacts: dict[str, Path | str] | None = None,
                 log_tail: str = "", retryable: bool = True):
        super().__init__(message, artifacts=artifacts, log_tail=log_tail)
        self.retryable = retryable


class NodeLost(InfraError):
    """The node's transport failed under a command (ssh exit 255). `cause` is one sentence saying what
    the lab saw (QEMU exited, the guest froze, only the connection dropped); `recoverable`: the guest
    still answers a fresh connection, so an idempotent step may run again on a new one."""

    def __init__(self, message: str, *, cause: str, recoverable: bool = False,
                 artifacts: dict[str, Path | str] | None = None, log_tail: str = ""):
        super().__init__(message, artifacts=artifacts, log_tail=log_tail, retryable=False)
        self.cause = cause
        self.recoverable = recoverable


class ProductFailure(_Reported):
    """The product failed before a test could judge anything else: a test needing it fails with
    this (`failed`, not `error`), and every test of the cell that needs it reports the same one.
    `step` and `command`: the bootstrap step that failed, when one did."""

    kind = "product failure"

    def __init__(self, message: str, *, step: str = "", command: str = "",
                 artifacts: dict[str, Path | str] | None = None, log_tail: str = ""):
        super().__init__(message, artifacts=artifacts, log_tail=log_tail)
        self.step = step
        self.command = command

    def details(self) -> list[str]:
        return ([f"  step: {self.step}"] if self.step else []) + ([f"  command: {self.command}"] if self.command else [])


class Unavailable(Exception):
    """No resource for this cell right now (every matching ssh host busy past the wait, or none
    in the inventory): the cell is skipped with this reason, not failed."""
