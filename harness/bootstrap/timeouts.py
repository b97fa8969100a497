"""How long a plan waits for what runs slower on an emulated node: the one place where waits are
scaled, by `factor(node facts)`.

Upstream's defaults are for real hardware. kubeadm waits 4 minutes for the control-plane
components and for the kubelet: kubeadm.k8s.io/v1beta4 `InitConfiguration.timeouts`
(kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/#kubeadm-k8s-io-v1beta4-Timeouts;
added by kubernetes/kubernetes#122529: controlPlaneComponentHealthCheck 4m, kubeletHealthCheck 4m,
kubernetesAPICall 1m, etcdAPICall 2m, tlsBootstrap 5m, discovery 5m); v1beta3 has only
`ClusterConfiguration.apiServer.timeoutForControlPlane` (4m). An API server on ARM once took ~1.5
minutes to come up (kubernetes/kubeadm#644); under TCG emulation it can take far longer.
`microk8s status --wait-ready --timeout N` takes seconds (default 0: wait forever;
canonical/microk8s scripts/wrappers/status.py), k3s has no wait of its own (the plan polls), and
`kubectl wait --timeout` is the harness's own choice: those base waits are ours, named below.

The factor comes from the node as its provider measured it (node facts `accelerator`,
`boot_seconds`): 1 on real hardware, KVM or with no facts (`archmatrix plan`); on a TCG node, how
many times slower than a native boot its boot was (NATIVE_BOOT_SECONDS), at least MIN_EMULATED and
at most MAX_FACTOR. A busy machine boots its nodes slower and so gives them longer.
"""
from __future__ import annotations

import math
from typing import Mapping

# A direct-kernel boot of the harness's Debian images to sshd on KVM or hardware takes about this
# long; under TCG on an idle 2-core host the same boot took 20-33 s (shared/notes/qemu-lab.md), on
# a loaded one minutes. The ratio is the node's measured slowdown.
NATIVE_BOOT_SECONDS = 10.0
MIN_EMULATED = 3  # TCG runs Go programs several times slower than native even when the boot was quick
MAX_FACTOR = 20  # waits stay bounded: kubeadm's 4 minutes become at most 80

# kubeadm v1beta4 Timeouts that `kubeadm init` uses, upstream's defaults in seconds (see above)
KUBEADM_INIT = {"controlPlaneComponentHealthCheck": 240, "kubeletHealthCheck": 240,
                "kubernetesAPICall": 60, "etcdAPICall": 120}
KUBEADM_V1BETA3_CONTROL_PLANE = 240  # apiServer.timeoutForControlPlane's default
# the harness's own waits (no upstream default bounds them)
NODE_READY = 300  # `kubectl wait --for=condition=Ready node`
CLUSTER_READY = 600  # `microk8s status --wait-ready --timeout`, the k3s Ready poll


def factor(facts: Mapping | None) -> int:
    """How many times the base waits this node gets (1: native speed, or no node facts)."""
    facts = facts or {}
    if facts.get("accelerator") != "tcg":
        return 1
    boot = float(facts.get("boot_seconds") or 0)
    return max(MIN_EMULATED, min(MAX_FACTOR, math.ceil(boot / NATIVE_BOOT_SECONDS)))


def seconds(base_seconds: float, facts: Mapping | None) -> int:
    """A base wait, scaled for this node."""
    return int(base_seconds * factor(facts))


def duration(base_seconds: float, facts: Mapping | None) -> str:
    """The same as a Go duration for Kubernetes config files ("12m0s")."""
    total = seconds(base_seconds, facts)
    return f"{total // 60}m{total % 60}s"
