"""Verdicts on a Node object (as `kubectl get node -o json` shows it: camelCase keys).
Fragments are common (recorded objects, partial API answers): a missing field is reported
as "not present", never a crash."""
from __future__ import annotations

import re

from ..matrix import kube_versions, platforms
from . import Verdict

ARCH, OS = "kubernetes.io/arch", "kubernetes.io/os"
BETA_ARCH, BETA_OS = "beta.kubernetes.io/arch", "beta.kubernetes.io/os"
WINDOWS_BUILD = "node.kubernetes.io/windows-build"


def name(node: dict) -> str:
    return (node.get("metadata") or {}).get("name") or "(unnamed node)"


def labels(node: dict) -> dict:
    return (node.get("metadata") or {}).get("labels") or {}


def info(node: dict) -> dict:
    return (node.get("status") or {}).get("nodeInfo") or {}


def _label(node: dict, key: str, want: str, beta: str) -> Verdict:
    got = labels(node).get(key)
    if got is None:
        hint = f" (only {beta}={labels(node)[beta]})" if beta in labels(node) else ""
        return Verdict(False, f"node {name(node)}: expected label {key}={want}, found it not present{hint}")
    return Verdict(got == want, f"node {name(node)}: expected label {key}={want}, found {key}={got}")


def check_arch_label(node: dict, row: platforms.Platform) -> Verdict:
    return _label(node, ARCH, row.name, BETA_ARCH)


def check_os_label(node: dict, os: str) -> Verdict:
    return _label(node, OS, os, BETA_OS)


def check_node_info(node: dict, row: platforms.Platform, os: str) -> Verdict:
    """status.nodeInfo.architecture/operatingSystem equal the cell (and so must the labels)."""
    ni = info(node)
    if not ni:
        return Verdict(False, f"node {name(node)}: expected status.nodeInfo {os}/{row.name}, found it not present")
    got = f"{ni.get('operatingSystem', 'not present')}/{ni.get('architecture', 'not present')}"
    ok = got == f"{os}/{row.name}"
    lab = labels(node)
    if ok and lab.get(ARCH) not in (None, row.name):
        return Verdict(False, f"node {name(node)}: nodeInfo says {got} but label {ARCH}={lab[ARCH]}")
    return Verdict(ok, f"node {name(node)}: expected status.nodeInfo {os}/{row.name}, found {got}")


def check_beta_labels(node: dict) -> Verdict:
    """Beta labels present and equal to the GA ones. Kubelet still sets them: a warning only."""
    lab = labels(node)
    problems = []
    for beta, ga in ((BETA_ARCH, ARCH), (BETA_OS, OS)):
        if beta not in lab:
            problems.append(f"{beta} not present")
        elif ga in lab and lab[beta] != lab[ga]:
            problems.append(f"{beta}={lab[beta]} differs from {ga}={lab[ga]}")
    if problems:
        return Verdict(True, f"node {name(node)}: {'; '.join(problems)}", warning=True)
    return Verdict(True, f"node {name(node)}: beta labels present and equal")


def check_kubelet_version(node: dict, release: kube_versions.Release) -> Verdict:
    got = info(node).get("kubeletVersion")
    if not got:
        return Verdict(False, f"node {name(node)}: expected kubelet v{release.minor}.x, found kubeletVersion not present")
    ok = re.match(rf"v{re.escape(release.minor)}(\.|$)", got) is not None
    return Verdict(ok, f"node {name(node)}: expected kubelet v{release.minor}.x, found {got}")


def check_ready(node: dict) -> Verdict:
    conds = (node.get("status") or {}).get("conditions")
    if conds is None:
        return Verdict(False, f"node {name(node)}: expected condition Ready=True, found no conditions (not present)")
    ready = next((c for c in conds if c.get("type") == "Ready"), None)
    if ready is None:
        return Verdict(False, f"node {name(node)}: expected condition Ready=True, found no Ready condition")
    why = f" ({ready.get('reason')}: {ready.get('message')})" if ready.get("status") != "True" else ""
    return Verdict(ready.get("status") == "True",
                   f"node {name(node)}: expected condition Ready=True, found Ready={ready.get('status')}{why}")


def _taint(t: dict) -> str:
    return f"{t.get('key')}{'=' + t['value'] if t.get('value') else ''}:{t.get('effect')}"


def check_taints(node: dict, declared: list[dict]) -> Verdict:
    """Every taint the matrix declares for the cell is on the node (key, value, effect)."""
    have = (node.get("spec") or {}).get("taints") or []
    have_s = {_taint(t) for t in have}
    missing = [_taint(t) for t in declared if _taint(t) not in have_s]
    found = ", ".join(sorted(have_s)) or "no taints"
    want = ", ".join(_taint(t) for t in declared) or "no declared taints"
    return Verdict(not missing, f"node {name(node)}: expected taints {want}, found {found}")


def check_windows_build(node: dict, os_version: str) -> Verdict:
    got = labels(node).get(WINDOWS_BUILD)
    if got is None:
        return Verdict(False, f"node {name(node)}: expected label {WINDOWS_BUILD}={os_version}, found it not present")
    return Verdict(got == os_version, f"node {name(node)}: expected label {WINDOWS_BUILD}={os_version}, found {got}")
