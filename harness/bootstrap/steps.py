"""A bootstrapper's plan is a list of Steps: one command, where it runs (the node, the control
plane, this machine), why, and whose it is: the product's (kubeadm init, containerd start, the
runtime's packages) or the lab's own plumbing (`lab=True`: the harness's mirror config, copies,
the kubeconfig tunnel). run_steps runs a node's steps in order, logging each; a failed step of the
product is a ProductFailure (`failed`), of the lab an InfraError (`error`); a step that cannot
reach its URL, or whose node ran out of disk, is the lab's whoever's step it is, and fails fast."""
from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..common.errors import InfraError, NodeLost, ProductFailure

# apt inside a node: no prompts, and an unreachable mirror fails at once instead of retrying
APT = (
    "DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=0 -o Acquire::http::Timeout=10"
    " -o Acquire::Languages=none"  # no Translation-en: 6 of bookworm's 15 MB of lists, parsed under emulation
)
# `archmatrix plan` prints plans with no registry running: this stands for its address
REGISTRY_PLACEHOLDER = "127.0.0.1:PORT"

# The PATH a plan's node commands are found on. They run through the node transport as a
# non-login, non-interactive shell (`ssh node 'command'`: root with sshd's built-in superuser PATH),
# which never reads /etc/profile. tests/test_node_path.py reads it on real Debian 12 and 13 nodes.
# /snap/bin is NOT on it: snapd adds it through /etc/profile.d/apps-bin-path.sh (snapd
# data/env/snapd.sh.in), which only login shells read: `microk8s` alone exits 127 over SSH.
NODE_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")

# What the plans run that the base image already has (nodes/images/build.py: mmdebstrap
# --variant=apt + its PACKAGES), where `command -v` finds it over the node transport
# (tests/test_node_path.py checks every one on real Debian 12 and 13 nodes). Anything else a plan
# runs, an earlier step of the same plan must install (Step.installs).
BASE_COMMANDS = {name: f"/usr/{d}/{name}" for d, names in (
    ("bin", "apt-cache apt-get apt-mark cat chmod cp dirname grep install ln mkdir mv rm sed seq sha256sum sleep "
            "systemctl sh tar tee timeout touch gzip hostname"),
    ("sbin", "modprobe swapoff sysctl"),
) for name in names.split()}
# what the node's shell runs itself (POSIX sh builtins and special builtins the plans use)
SHELL_BUILTINS = frozenset("cd echo printf exit test [ true false set export command : . trap wait eval exec "
                           "read shift unset return pwd umask".split())
_KEYWORDS = frozenset("if then else elif fi for in do done while until case esac ! { }".split())


@dataclass(frozen=True)
class Step:
    """One command of a bootstrapper's plan: where it runs (node, control-plane, host) and why.

    url: what the step fetches, named in the error when the node cannot reach it.
    lab: the harness's own plumbing (its registry as a mirror, copies of artifacts, the kubeconfig
         tunnel), not the product: its failure is the lab's.
    installs: absolute paths of programs the step puts on the node (checked after it ran); later
         steps' commands are found among them (see `unfound`).
    asks: the node fact its output answers (e.g. the installed kubeadm's version): run_steps
         records it in node.facts and makes the plan again, so later steps use the node's answer.
    verify: reads the step's output and says what is wrong with the product (None: nothing); a
         wrong answer fails the step like a non-zero exit.
    kubernetes: the step needs a real Kubernetes binary to act (kubeadm init/join, k3s server
         start, MicroK8s readiness): a rehearsal (harness/rehearsal) runs a plan up to, not
         including, the first such step, since no Kubernetes server binary exists here.
    idempotent: running it twice leaves the node as running it once (apt update and installs,
         heredoc writes, sysctls, pulls): after a dropped SSH connection to a guest that still
         answers, run_steps runs it once more on a new connection instead of failing the cell.
    """

    where: str
    command: str
    why: str = ""
    url: str | None = None
    phase: str = "prepare"  # prepare: node-level, before any suite; install: brings the cluster up
    copy: tuple[str, str, str] | None = None  # host file -> node path, mode (air-gapped artifacts)
    lab: bool = False
    installs: tuple[str, ...] = ()
    asks: str | None = None
    verify: Callable[[str], str | None] | None = field(default=None, compare=False)
    kubernetes: bool = False
    idempotent: bool = False

    @property
    def name(self) -> str:
        """What the step is called in progress lines and failures: its why, else its command's first line."""
        return self.why or self.command.split("\n", 1)[0][:60]


# the lab's: a mirror that is unreachable, answers 404 for its Release file or is signed in the
# node's future (a TCG guest's clock) is the lab failing; installing from it is the product's step
APT_UPDATE = Step("node", f"{APT} update", "package lists from the distro mirror (fails fast when unreachable)",
                  lab=True, idempotent=True)


# ---- which programs a step runs ----------------------------------------------------------------

_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1[^\n]*\n(.*?)\n\2(?=\n|$)", re.S)
_SUBST = re.compile(r"\$\(\s*([^\s()|;&]+)")


def command_words(command: str) -> list[str]:
    """The programs a shell command runs: the first word of every simple command (after &&, ||, ;,
    |, newlines, parentheses and keywords; variable assignments and redirection targets skipped),
    and of every $(...) substitution, in unquoted heredocs too (their substitutions run)."""
    words: list[str] = []
    bodies = []

    def cut(m):
        if not m.group(1):
            bodies.append(m.group(3))
        return "<<HEREDOC"

    lexer = shlex.shlex(_HEREDOC.sub(cut, command), posix=True, punctuation_chars=True)
    lexer.whitespace = " \t\r"  # newlines separate commands
    lexer.wordchars += "$:/.-=+,@%[]{}!*?~^"
    expect, target = True, False
    for tok in lexer:
        if re.fullmatch(r"\d*[<>]+&?\d*|&>>?", tok):  # a redirection: the next word is its target
            target = True
            continue
        if tok == "\n" or set(tok) <= set("();<>|&"):  # a separator (shlex groups ");" into one token)
            expect, target = True, False
            continue
        if target or not expect:
            target = False
            continue
        if tok == "for":  # `for NAME in WORDS; do`: no command until `do`
            expect = False
            continue
        if tok in _KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok):
            continue
        words.append(tok)
        expect = False
    for body in [command] + bodies:  # $(...) anywhere, in double quotes and heredoc bodies too
        words += [w for w in _SUBST.findall(body) if not w.startswith("$")]
    return [w for w in words if w and not w.startswith(("$", "<", "'", '"'))]


def unfound(steps: list[Step]) -> list[str]:
    """Commands of a node plan the node would not find the way the plan runs them: not a shell
    builtin, not an absolute path the base image or an earlier step has, not a name on NODE_PATH
    that one of them put there."""
    have = set(BASE_COMMANDS.values())
    problems = []
    for s in steps:
        if s.copy:
            have.add(s.copy[1])
        elif s.where == "node":
            have.update(s.installs)  # a step may run what it installed itself (`apt-get install x && x ...`)
            for w in command_words(s.command):
                paths = [w] if w.startswith("/") else [f"{d}/{w}" for d in NODE_PATH]
                if w not in SHELL_BUILTINS and not have.intersection(paths):
                    on = "" if w.startswith("/") else f" on the node's PATH ({':'.join(NODE_PATH)})"
                    problems.append(f"{w}: not found{on} by `{s.command.splitlines()[0][:80]}` ({s.why})")
    return problems


def _missing_installs(node, step: Step) -> str | None:
    """What the step says it installs and the node does not have."""
    script = "; ".join(f"test -e {shlex.quote(p)} || echo {shlex.quote(p)}" for p in step.installs)
    missing = node.run(script).stdout.split()
    return f"it should have installed {', '.join(missing)}: not there" if missing else None


# curl exits 6/7/28 (resolve, connect, timeout) and apt's "Failed to fetch": the node cannot reach a URL
_UNREACHABLE = re.compile(r"Failed to fetch (\S+)|curl: \((?:6|7|28|35)\)[^\n]*|error: cannot communicate with server"
                          r"|dial tcp[^\n]*")
# the node's disk is full: the lab's, whatever the step (apt says it its own way first)
_DISK_FULL = re.compile(r"No space left on device|You don't have enough free space in [^\n]*")


def run_steps(node, steps: list[Step] | Callable[[dict], list[Step]], log: Path, progress=print,
              label: str = "", on_step: Callable[[Step, float, Exception | None], None] | None = None,
              on: dict | None = None) -> None:
    """Run steps on the node in order, each logged with its output and seconds; the first failure
    raises: a ProductFailure for a step of the product, an InfraError for one of the lab, or for
    any step that could not reach its URL or found the disk full (fast, named, not retried). A
    lost connection raises NodeLost from node.run, named here with the step; a dropped connection to
    a guest that still answers re-runs an idempotent step once on a new connection (node.facts
    "recovered" says so).
    `steps` may be a function of the node's facts: after a step that asks, its answer goes into
    node.facts and the steps are made again (those run so far must come out the same).
    `on_step(step, seconds, error)`: told after each node step (error None when it passed).
    `on`: other nodes by where their steps run (a join cell's {"control-plane": node}); their
    answers go into `node`'s facts too, since the plan is `node`'s."""
    make = steps if callable(steps) else (lambda facts: steps)
    done = 0
    current = make(node.facts)
    with open(log, "a") as out:
        while done < len(current):
            step = current[done]
            done += 1
            target = node if step.where in ("node", "host") else (on or {}).get(step.where)
            if target is None:
                continue  # a step of a node this run does not hold
            runs = step.copy or step.where != "host"
            t0 = time.monotonic()
            try:
                current = _one(node, target, step, current, make, out, log, progress, label)
            except Exception as e:
                if on_step and runs:
                    on_step(step, time.monotonic() - t0, e)
                raise
            if on_step and runs:
                on_step(step, time.monotonic() - t0, None)


def _one(node, target, step: Step, current: list[Step], make, out, log: Path, progress, label: str) -> list[Step]:
    """Run one step of run_steps on `target` (the node, or another node of the cell); the steps as
    they are after it (made again when it asked: the answer goes into `node`'s facts)."""
    where = "" if step.where in ("node", "host") else f"[{step.where}] "
    t0 = time.monotonic()
    if step.copy:
        progress(f"{label}: {where}{step.why}")
        target.put(Path(step.copy[0]), step.copy[1], step.copy[2])
        out.write(f"# {where}{step.command} ({time.monotonic() - t0:.1f} s)\n")
        return current
    if step.where == "host":
        return current  # host steps (registry pushes, the kubeconfig) are the bootstrapper's own code
    progress(f"{label}: {where}{step.name}")
    r = _run(target, step, out, progress, label, log)
    text = r.stdout + r.stderr
    out.write(f"$ {where}{step.command}\n{text}\n(exit {r.rc}, {time.monotonic() - t0:.1f} s)\n")
    out.flush()
    # apt-get update exits 0 when a source is unreachable ("W: Failed to fetch"): read its output too
    unreachable = _UNREACHABLE.search(text)
    if r.rc != 0 or unreachable and "Failed to fetch" in unreachable.group(0):
        raise _failure(step, r.rc, text, unreachable, log, label)
    wrong = step.verify(r.stdout) if step.verify else None
    wrong = wrong or (_missing_installs(target, step) if step.installs else None)
    if wrong:
        out.write(f"# check failed: {wrong}\n")
        raise _wrong(step, wrong, log, label)
    if step.asks:
        node.facts[step.asks] = r.stdout.strip()
        return make(node.facts)
    return current


def _run(node, step: Step, out, progress, label: str, log: Path):
    """node.run(step.command), once more after a dropped connection when the step is idempotent; a
    lost node is an InfraError naming the cell, the bootstrapper and the step."""
    for attempt in (1, 2):
        try:
            return node.run(step.command)
        except NodeLost as e:
            out.write(f"$ {step.command}\n# {e.cause}\n")
            out.flush()
            if attempt == 1 and step.idempotent and node.recover():
                progress(f"{label}: {e.cause}: running '{step.name}' once more on a new connection")
                node.facts["recovered"] = "; ".join(filter(None, [node.facts.get("recovered"),
                                                                  f"ssh drop during '{step.name}'"]))
                continue
            again = "" if step.idempotent or not e.recoverable else " (not idempotent: not run again)"
            raise NodeLost(f"{node.cell.id}: {e.cause} during {label + ' ' if label else ''}bootstrap step "
                           f"'{step.name}'{again}", cause=e.cause, artifacts={**e.artifacts, "bootstrap log": log},
                           log_tail=e.log_tail) from None


def _failure(step: Step, rc: int, text: str, unreachable, log: Path, label: str) -> Exception:
    artifacts = {"bootstrap log": log}
    if unreachable:
        url = unreachable.group(1) or step.url or "(see the bootstrap log)"
        why = next((x.strip() for x in text.splitlines() if x.startswith("Err:")), "") or unreachable.group(0).strip()
        return InfraError(f"the node cannot reach {url} ({why})", artifacts=artifacts, retryable=False)
    tail = "\n".join(text.strip().splitlines()[-15:])
    name = step.name
    full = _DISK_FULL.search(text)
    if full:
        return InfraError(f"the node's disk is full ({full.group(0).strip()}) in step '{name}'", artifacts=artifacts,
                          log_tail=tail, retryable=False)
    if step.lab:
        return InfraError(f"harness step '{name}' failed (exit {rc}): {step.command[:120]}", artifacts=artifacts,
                          log_tail=tail, retryable=False)
    return ProductFailure(f"{label + ': ' if label else ''}bootstrap step '{name}' failed (exit {rc})", step=name,
                          command=step.command.split("\n", 1)[0][:300], artifacts=artifacts, log_tail=tail)


def _wrong(step: Step, wrong: str, log: Path, label: str) -> Exception:
    """A step that exited 0 but whose result is not what the plan set (its verify, a program it should
    have installed): the product's failure, unless the step is the lab's."""
    name = step.name
    if step.lab:
        return InfraError(f"harness step '{name}': {wrong}", artifacts={"bootstrap log": log}, retryable=False)
    return ProductFailure(f"{label + ': ' if label else ''}bootstrap step '{name}': {wrong}", step=name,
                          command=step.command.split("\n", 1)[0][:300], artifacts={"bootstrap log": log})


def heredoc(path: str, text: str, expand: bool = False) -> str:
    """A shell command writing `text` to `path` (expand: $(...) in it runs on the node)."""
    quote = "" if expand else "'"
    return f"mkdir -p $(dirname {path}) && cat > {path} <<{quote}EOF{quote}\n{text}EOF"


def kubeconfig_step(remote_path: str, api_port: int) -> Step:
    """The last install step of every bootstrapper that brings up a cluster (planned.fetch_kubeconfig)."""
    return Step("host", f"fetch node:{remote_path} -> <artifacts>/kubeconfig; ssh -O forward -L "
                        f"127.0.0.1:<port>:127.0.0.1:{api_port}", "kubeconfig through an SSH tunnel", phase="install",
                lab=True)
