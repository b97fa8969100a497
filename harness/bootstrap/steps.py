"""A bootstrapper's plan is a list of Steps: one command, where it runs (the node, the control
plane, this machine) and why. run_steps runs a node's steps in order, logging each; a step that
cannot reach its URL fails fast, naming it."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InfraError

# apt inside a node: no prompts, and an unreachable mirror fails at once instead of retrying
APT = (
    "DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=0 -o Acquire::http::Timeout=10"
    " -o Acquire::Languages=none"  # no Translation-en: 6 of bookworm's 15 MB of lists, parsed under emulation
)
# `archmatrix plan` prints plans with no registry running: this stands for its address
REGISTRY_PLACEHOLDER = "127.0.0.1:PORT"


@dataclass(frozen=True)
class Step:
    """One command of a bootstrapper's plan: where it runs (node, control-plane, host) and why.
    `url`: what the step fetches, named in the error when the node cannot reach it."""

    where: str
    command: str
    why: str = ""
    url: str | None = None
    phase: str = "prepare"  # prepare: node-level, before any suite; install: brings the cluster up
    copy: tuple[str, str, str] | None = None  # host file -> node path, mode (air-gapped artifacts)


APT_UPDATE = Step("node", f"{APT} update", "package lists from the distro mirror (fails fast when unreachable)")


# curl exits 6/7/28 (resolve, connect, timeout) and apt's "Failed to fetch": the node cannot reach a URL
_UNREACHABLE = re.compile(r"Failed to fetch (\S+)|curl: \((?:6|7|28|35)\)[^\n]*|error: cannot communicate with server"
                          r"|dial tcp[^\n]*")


def run_steps(node, steps: list[Step], log: Path, progress=print, label: str = "") -> None:
    """Run steps on the node in order, each logged with its output and seconds; the first failure
    raises an InfraError. A step that cannot reach its URL is a fast, named, non-retryable failure."""
    with open(log, "a") as out:
        for step in steps:
            t0 = time.monotonic()
            if step.copy:
                progress(f"{label}: {step.why}")
                node.put(Path(step.copy[0]), step.copy[1], step.copy[2])
                out.write(f"# {step.command} ({time.monotonic() - t0:.1f} s)\n")
                continue
            if step.where != "node":
                continue  # host steps (registry pushes, the kubeconfig) are the bootstrapper's own code
            progress(f"{label}: {step.why or step.command[:60]}")
            r = node.run(step.command)
            text = r.stdout + r.stderr
            out.write(f"$ {step.command}\n{text}\n(exit {r.rc}, {time.monotonic() - t0:.1f} s)\n")
            out.flush()
            # apt-get update exits 0 when a source is unreachable ("W: Failed to fetch"): read its output too
            unreachable = _UNREACHABLE.search(text)
            if r.rc != 0 or unreachable and "Failed to fetch" in unreachable.group(0):
                raise _failure(step, r.rc, text, unreachable, log)


def _failure(step: Step, rc: int, text: str, unreachable, log: Path) -> InfraError:
    if unreachable:
        url = unreachable.group(1) or step.url or "(see the bootstrap log)"
        why = next((x.strip() for x in text.splitlines() if x.startswith("Err:")), "") or unreachable.group(0).strip()
        return InfraError(f"the node cannot reach {url} ({why})", artifacts={"bootstrap log": log}, retryable=False)
    return InfraError(f"bootstrap step failed (exit {rc}): {step.command[:120]}", artifacts={"bootstrap log": log},
                      log_tail="\n".join(text.strip().splitlines()[-15:]))


def heredoc(path: str, text: str, expand: bool = False) -> str:
    """A shell command writing `text` to `path` (expand: $(...) in it runs on the node)."""
    quote = "" if expand else "'"
    return f"mkdir -p $(dirname {path}) && cat > {path} <<{quote}EOF{quote}\n{text}EOF"


def kubeconfig_step(remote_path: str, api_port: int) -> Step:
    """The last install step of every bootstrapper that brings up a cluster (planned.fetch_kubeconfig)."""
    return Step("host", f"fetch node:{remote_path} -> <artifacts>/kubeconfig; ssh -O forward -L "
                        f"127.0.0.1:<port>:127.0.0.1:{api_port}", "kubeconfig through an SSH tunnel", phase="install")
