"""A bootstrapper's plan is a list of Steps: one command, where it runs (the node, the control
plane, this machine), why, and whose it is: the product's (kubeadm init, containerd start, the
runtime's packages) or the lab's own plumbing (`lab=True`: the harness's mirror config, copies,
the kubeconfig tunnel). run_steps runs a node's steps in order, logging each; a failed step of the
product is a ProductFailure (`failed`), of the lab an InfraError (`error`); a step that cannot
reach its URL, or whose node ran out of disk, is the lab's whoever's step it is, and fails fast."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import InfraError, ProductFailure

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
    `url`: what the step fetches, named in the error when the node cannot reach it. `lab`: the
    step is the harness's own plumbing, so its failure is the lab's (`error`), not the product's."""

    where: str
    command: str
    why: str = ""
    url: str | None = None
    phase: str = "prepare"  # prepare: node-level, before any suite; install: brings the cluster up
    copy: tuple[str, str, str] | None = None  # host file -> node path, mode (air-gapped artifacts)
    lab: bool = False  # the harness's plumbing (its mirror config, copies, the tunnel), not the product


# the lab's: a mirror that is unreachable, answers 404 for its Release file or is signed in the
# node's future (a TCG guest's clock) is the lab failing; installing from it is the product's step
APT_UPDATE = Step("node", f"{APT} update", "package lists from the distro mirror (fails fast when unreachable)",
                  lab=True)


# curl exits 6/7/28 (resolve, connect, timeout) and apt's "Failed to fetch": the node cannot reach a URL
_UNREACHABLE = re.compile(r"Failed to fetch (\S+)|curl: \((?:6|7|28|35)\)[^\n]*|error: cannot communicate with server"
                          r"|dial tcp[^\n]*")
# the node's disk is full: the lab's, whatever the step (apt says it its own way first)
_DISK_FULL = re.compile(r"No space left on device|You don't have enough free space in [^\n]*")


def run_steps(node, steps: list[Step], log: Path, progress=print, label: str = "") -> None:
    """Run steps on the node in order, each logged with its output and seconds; the first failure
    raises: a ProductFailure for a step of the product, an InfraError for one of the lab, or for
    any step that could not reach its URL or found the disk full (fast, named, not retried). A
    lost connection raises InfraError from node.run itself."""
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
                raise _failure(step, r.rc, text, unreachable, log, label)


def _failure(step: Step, rc: int, text: str, unreachable, log: Path, label: str) -> Exception:
    artifacts = {"bootstrap log": log}
    if unreachable:
        url = unreachable.group(1) or step.url or "(see the bootstrap log)"
        why = next((x.strip() for x in text.splitlines() if x.startswith("Err:")), "") or unreachable.group(0).strip()
        return InfraError(f"the node cannot reach {url} ({why})", artifacts=artifacts, retryable=False)
    tail = "\n".join(text.strip().splitlines()[-15:])
    name = step.why or step.command.split("\n", 1)[0][:60]
    full = _DISK_FULL.search(text)
    if full:
        return InfraError(f"the node's disk is full ({full.group(0).strip()}) in step '{name}'", artifacts=artifacts,
                          log_tail=tail, retryable=False)
    if step.lab:
        return InfraError(f"harness step '{name}' failed (exit {rc}): {step.command[:120]}", artifacts=artifacts,
                          log_tail=tail, retryable=False)
    return ProductFailure(f"{label + ': ' if label else ''}bootstrap step '{name}' failed (exit {rc})", step=name,
                          command=step.command.split("\n", 1)[0][:300], artifacts=artifacts, log_tail=tail)


def heredoc(path: str, text: str, expand: bool = False) -> str:
    """A shell command writing `text` to `path` (expand: $(...) in it runs on the node)."""
    quote = "" if expand else "'"
    return f"mkdir -p $(dirname {path}) && cat > {path} <<{quote}EOF{quote}\n{text}EOF"


def kubeconfig_step(remote_path: str, api_port: int) -> Step:
    """The last install step of every bootstrapper that brings up a cluster (planned.fetch_kubeconfig)."""
    return Step("host", f"fetch node:{remote_path} -> <artifacts>/kubeconfig; ssh -O forward -L "
                        f"127.0.0.1:<port>:127.0.0.1:{api_port}", "kubeconfig through an SSH tunnel", phase="install",
                lab=True)
