"""Per Kubernetes minor: what kubeadm deploys with it and what its binaries are built with.

Sources (read per release tag vX.Y.0 of kubernetes/kubernetes):
  pause   cmd/kubeadm/app/constants/constants.go  PauseVersion
  etcd    cmd/kubeadm/app/constants/constants.go  DefaultEtcdVersion / SupportedEtcdVersion[minor]
  coredns cmd/kubeadm/app/constants/constants.go  CoreDNSVersion
  go      CHANGELOG/CHANGELOG-1.Y.md "Kubernetes is now built with Go 1.N.P" up to vX.Y.0
  beta labels: pkg/kubelet/kubelet_node_status.go still sets beta.kubernetes.io/{os,arch}
          on registration (KEP-2178 deprecated them but kubelet keeps writing them).
Patch releases may bump etcd and Go (e.g. SupportedEtcdVersion 31..33 became 3.5.24-0 in
late patches); the checks treat a patch-level difference as a warning and a
major.minor difference as a failure.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..common.errors import UserError


@dataclass(frozen=True)
class Release:
    minor: str  # "1.32"
    pause: str  # tag of registry.k8s.io/pause
    etcd: str  # tag of registry.k8s.io/etcd
    coredns: str  # tag of registry.k8s.io/coredns/coredns
    go: str  # Go toolchain of the vX.Y.0 release binaries
    beta_arch_labels: bool = True  # kubelet sets beta.kubernetes.io/arch|os

    @property
    def tag(self) -> str:
        return f"v{self.minor}"

    @property
    def key(self) -> tuple[int, int]:
        major, minor = self.minor.split(".")
        return int(major), int(minor)

    def images(self, repository: str = "registry.k8s.io", patch: str | None = None) -> dict[str, str]:
        """The images `kubeadm config images list` prints for this release (name -> reference)."""
        version = patch or f"v{self.minor}.0"
        return {
            "kube-apiserver": f"{repository}/kube-apiserver:{version}",
            "kube-controller-manager": f"{repository}/kube-controller-manager:{version}",
            "kube-scheduler": f"{repository}/kube-scheduler:{version}",
            "kube-proxy": f"{repository}/kube-proxy:{version}",
            "coredns": f"{repository}/coredns/coredns:{self.coredns}",
            "pause": f"{repository}/pause:{self.pause}",
            "etcd": f"{repository}/etcd:{self.etcd}",
        }


# Oldest first. 1.36 is read from the release-1.36 branch as stored in the public index.
RELEASES: tuple[Release, ...] = (
    Release("1.27", pause="3.9", etcd="3.5.7-0", coredns="v1.10.1", go="1.20.3"),
    Release("1.28", pause="3.9", etcd="3.5.9-0", coredns="v1.10.1", go="1.20.7"),
    Release("1.29", pause="3.9", etcd="3.5.10-0", coredns="v1.11.1", go="1.21.5"),
    Release("1.30", pause="3.9", etcd="3.5.12-0", coredns="v1.11.1", go="1.22.2"),
    Release("1.31", pause="3.10", etcd="3.5.15-0", coredns="v1.11.3", go="1.22.5"),
    Release("1.32", pause="3.10", etcd="3.5.16-0", coredns="v1.11.3", go="1.23.3"),
    Release("1.33", pause="3.10", etcd="3.5.21-0", coredns="v1.12.0", go="1.24.2"),
    Release("1.34", pause="3.10.1", etcd="3.6.4-0", coredns="v1.12.1", go="1.24.6"),
    Release("1.35", pause="3.10.1", etcd="3.6.6-0", coredns="v1.13.1", go="1.25.5"),
    Release("1.36", pause="3.10.1", etcd="3.6.8-0", coredns="v1.13.1", go="1.26.2"),
)
_BY_MINOR = {r.minor: r for r in RELEASES}


def resolve(selector: str | int | float) -> Release:
    """`latest`, `-1`, `-2` (relative to latest), `1.32`, `v1.32`, `v1.32.4` -> Release. Offline."""
    s = str(selector).strip().lower()
    if s in ("latest", "stable", "0", "-0"):
        return RELEASES[-1]
    if s.startswith("-") and s[1:].isdigit():
        back = int(s[1:])
        if back >= len(RELEASES):
            raise UserError(f"kubernetes '{selector}': only {len(RELEASES) - 1} releases before latest "
                            f"({RELEASES[0].minor}..{RELEASES[-1].minor})")
        return RELEASES[-1 - back]
    s = s.removeprefix("v")
    parts = s.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        minor = f"{int(parts[0])}.{int(parts[1])}"
        if minor in _BY_MINOR:
            return _BY_MINOR[minor]
    known = ", ".join(r.minor for r in RELEASES)
    raise UserError(f"unknown kubernetes version '{selector}': use latest, -1, -2, ... or one of {known}")


def go_minor(version: str) -> str:
    """'go1.22.5' / '1.22.5' / '1.22' -> '1.22'."""
    v = version.strip().removeprefix("go")
    return ".".join(v.split(".")[:2])
