"""Pure checks: functions from facts to a Verdict. They never shell out or open sockets."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    ok: bool
    message: str  # names the file/node/reference, what was expected and what was found
    warning: bool = False  # ok, but worth reporting
