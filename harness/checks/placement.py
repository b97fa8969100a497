"""Pods pinned to an arch: the manifest the placement suite creates, and verdicts on the pod
status the API server returns."""
from __future__ import annotations

from . import Verdict
from .labels import ARCH


def pinned_pod(name: str, arch: str, image: str) -> dict:
    """A pod that may only run on `arch` (nodeSelector kubernetes.io/arch), no tolerations."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/managed-by": "archmatrix"}},
        "spec": {"nodeSelector": {ARCH: arch}, "restartPolicy": "Never",
                 "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "pause", "image": image}]},
    }


def _phase(pod: dict) -> str:
    return (pod.get("status") or {}).get("phase") or "Unknown"


def check_running_on_arch(pod: dict, node: dict | None, arch: str) -> Verdict:
    name = (pod.get("metadata") or {}).get("name")
    where = (pod.get("spec") or {}).get("nodeName") or "no node"
    node_arch = ((node or {}).get("metadata") or {}).get("labels", {}).get(ARCH, "unknown")
    ok = _phase(pod) == "Running" and node_arch == arch
    return Verdict(ok, f"pod {name}: expected Running on a {arch} node, found {_phase(pod)} on {where} ({node_arch})")


def check_refused_by_taint(pod: dict, taint_key: str) -> Verdict:
    """Pending, with the scheduler's PodScheduled=False message naming the taint."""
    name = (pod.get("metadata") or {}).get("name")
    conds = (pod.get("status") or {}).get("conditions") or []
    sched = next((c for c in conds if c.get("type") == "PodScheduled"), {})
    msg = sched.get("message") or ""
    ok = _phase(pod) == "Pending" and sched.get("status") == "False" and taint_key in msg
    return Verdict(ok, f"pod {name}: expected Pending with untolerated taint {taint_key}, "
                       f"found {_phase(pod)}: {msg or 'no scheduling message'}")
