"""The two kinds of error the harness raises on purpose.

UserError: the user's input is wrong (file, key, host, filter). One line, exit 2,
no traceback. InfraError: the machinery failed (image build, boot, SSH,
bootstrap, timeout); the cell's outcome is `error`, never `failed`, and the
error carries its artifacts (serial log, commands run) to the report, as
kubetest2's errors carry their report metadata.
"""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input. str(err) is the whole message, one line, naming file/key/host."""


class InfraError(Exception):
    """The infrastructure failed; the product under test was not judged."""

    def __init__(self, message: str, *, artifacts: dict[str, Path | str] | None = None,
                 log_tail: str = "", retryable: bool = True):
        super().__init__(message)
        self.artifacts = dict(artifacts or {})
        self.log_tail = log_tail
        self.retryable = retryable

    def report(self) -> str:
        lines = [f"infrastructure error: {self}"]
        for name, path in self.artifacts.items():
            lines.append(f"  artifact {name}: {path}")
        if self.log_tail:
            lines.append("  last lines of the log:")
            lines.extend("    " + line for line in self.log_tail.splitlines())
        return "\n".join(lines)


class Unavailable(Exception):
    """No resource for this cell right now (every matching ssh host busy past the wait, or none
    in the inventory): the cell is skipped with this reason, not failed."""
