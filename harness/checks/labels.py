"""Verdicts on a Node object (as `kubectl get node -o json` shows it: camelCase keys).
Fragments are common (recorded objects, partial API answers): a missing field is reported
as "not present", never a crash."""
from __future__ import annotations

import re

from ..matrix import kube_versions, platforms
from . import Verdict

ARCH, OS = "kubernetes.io/arch", "kubernetes.io/os"
BETA_ARCH, BETA_OS = "beta.kubernetes.io/arch", "beta.kubernetes.io/os"
HOSTNAME = "kubernetes.io/hostname"
WINDOWS_BUILD = "node.kubernetes.io/windows-build"


def name(node: dict) -> str:
    """How messages name the node: metadata.name, else its kubernetes.io/hostname label (which
    kubelet writes at registration; recorded fragments may carry labels and no name)."""
    meta = node.get("metadata") or {}
    if meta.get("name"):
        return meta["name"]
    host = (meta.get("labels") or {}).get(HOSTNAME)
    return f"{host} (by its {HOSTNAME} label: no metadata.name)" if host else "(unnamed node)"


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
    for key, want in ((ARCH, row.name), (OS, os)):
        if ok and lab.get(key) not in (None, want):
            return Verdict(False, f"node {name(node)}: nodeInfo says {got} but label {key}={lab[key]}")
    return Verdict(ok, f"node {name(node)}: expected status.nodeInfo {os}/{row.name}, found {got}")


def check_beta_labels(node: dict) -> Verdict:
    """beta.kubernetes.io/arch|os equal the GA labels. Kubelet writes both from the same
    runtime.GOOS/GOARCH (pkg/kubelet/kubelet_node_status.go, initialNode), so a disagreement
    is a failure; a beta label not present (or no GA label to compare it with) is a warning."""
    lab = labels(node)
    wrong, absent = [], []
    for beta, ga in ((BETA_ARCH, ARCH), (BETA_OS, OS)):
        if beta not in lab:
            absent.append(f"{beta} not present")
        elif ga not in lab:
            absent.append(f"{beta}={lab[beta]} with {ga} not present to compare")
        elif lab[beta] != lab[ga]:
            wrong.append(f"{beta}={lab[beta]} but {ga}={lab[ga]}")
    if wrong:
        return Verdict(False, f"node {name(node)}: expected the beta labels equal to the GA ones (kubelet writes "
                              f"both from one value), found {'; '.join(wrong + absent)}")
    if absent:
        return Verdict(True, f"node {name(node)}: expected beta labels equal to the GA ones, found "
                             f"{'; '.join(absent)}", warning=True)
    return Verdict(True, f"node {name(node)}: beta labels present and equal to {ARCH}={lab[ARCH]}, {OS}={lab[OS]}")


def check_kubelet_version(node: dict, release: kube_versions.Release,
                          control_plane: kube_versions.Release | None = None) -> Verdict:
    """The kubelet is the cell's minor; when the cell names its control plane's version (a node
    joining another release's control plane), the version skew policy judges the two:
    older within the skew is a warning naming both, newer or beyond it a failure."""
    who = f"node {name(node)}"
    got = info(node).get("kubeletVersion")
    if not got:
        return Verdict(False, f"{who}: expected kubelet v{release.minor}.x, found kubeletVersion not present")
    m = re.match(r"v?(\d+)\.(\d+)(?![0-9])", got)
    kubelet = (int(m[1]), int(m[2])) if m else None
    if kubelet != release.key:
        return Verdict(False, f"{who}: expected kubelet v{release.minor}.x, found {got}")
    if control_plane is None or control_plane.key == kubelet:
        return Verdict(True, f"{who}: expected kubelet v{release.minor}.x, found {got}")
    cp, skew = control_plane.minor, control_plane.key[1] - kubelet[1]
    allowed = kube_versions.kubelet_max_skew(kubelet)
    if skew < 0:
        return Verdict(False, f"{who}: expected kubelet no newer than the control plane v{cp} (version skew "
                              f"policy), found {got}")
    if control_plane.key[0] != kubelet[0] or skew > allowed:
        return Verdict(False, f"{who}: expected kubelet at most {allowed} minor versions older than the control "
                              f"plane v{cp} (version skew policy), found {got}")
    return Verdict(True, f"{who}: kubelet {got} is {skew} minor version{'s' * (skew > 1)} older than the control "
                         f"plane v{cp} (the version skew policy allows {allowed})", warning=True)


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
