"""What each upstream publishes, per arch, and what follows for a cell.

One table (PUBLISHED) of the upstream sources a bootstrapper installs from and the arches each
publishes, with where upstream says so. From it:
  refusal(cell)             why a cell cannot exist (matrix.capability() reports it as unsupported)
  microk8s_channel(...)     the snap channel a MicroK8s cell installs (edge where only edge exists)
  containerd_for(...)       the containerd a kubeadm cell installs: source, version and why

Arch names are the platform table's (platforms.py); each row is checked against it at import.
Facts read 2026-11-21 from the stored copies of upstream repositories and trackers.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from . import kube_versions, platforms


@dataclass(frozen=True)
class Published:
    name: str  # where it comes from, as a user would say it
    what: str
    arches: tuple[str, ...]  # published for these (stable / released)
    source: str  # where upstream says so
    edge_only: tuple[str, ...] = ()  # builds exist only on a pre-release channel

    def reason(self, arch: str) -> str:
        edge = f" (and {', '.join(self.edge_only)} on edge channels)" if self.edge_only else ""
        return f"{self.name} has {self.what} for {', '.join(self.arches)} only{edge}, not {arch} ({self.source})"


PUBLISHED: dict[str, Published] = {p.name: p for p in (
    # kubernetes/release#2960 "Stopped building packages for 32 bit ARM platforms for Kubernetes >= v1.27.0"
    # (package architectures amd64, arm64, ppc64le, s390x), after kubernetes/kubernetes#115742 dropped
    # 32-bit arm server binaries; pkgs.k8s.io is built from those packages (KEP-1731)
    Published("pkgs.k8s.io", "kubelet/kubeadm/kubectl packages", ("amd64", "arm64", "ppc64le", "s390x"),
              "kubernetes/release#2960, kubernetes/kubernetes#115742"),
    # CHANGELOG-1.3Y.md "Container Images": kube-apiserver, -controller-manager, -scheduler, -proxy for
    # amd64, arm64, ppc64le, s390x (e.g. CHANGELOG-1.38.md v1.38.0-alpha.2); no riscv64, no arm since 1.27
    Published("registry.k8s.io", "control-plane images", ("amd64", "arm64", "ppc64le", "s390x"),
              "CHANGELOG-1.37.md/1.38.md Container Images, kubernetes/kubernetes#115742"),
    # stable MicroK8s exists for amd64 and arm64 only: the Snap Store's answer quoted in
    # canonical/microk8s#4343 (2023-12: "not available on stable for this architecture (armhf) but exists
    # on other architectures (amd64, arm64)"); s390x builds are on edge channels only
    # (canonical/microk8s#1611; still "microk8s (from edge)" on s390x in canonical/k8s-snap#1712, 2025);
    # ppc64el "not supported" (canonical/microk8s#2810); no riscv64 build in any of these answers
    Published("the Snap Store", "stable MicroK8s snaps", ("amd64", "arm64"),
              "canonical/microk8s#4343, canonical/microk8s#1611, canonical/microk8s#2810", edge_only=("s390x",)),
    # k3s install.sh setup_verify_arch: amd64, arm64, s390x, arm* (-armhf); anything else "Unsupported
    # architecture". riscv64 builds exist on master only (k3s-io/k3s#7151): the backports to 1.34..1.37
    # were closed "QA does not test riscv64 (not officially supported)" (k3s-io/k3s#14641..#14644)
    Published("k3s-io/k3s releases", "k3s binaries", ("amd64", "arm64", "arm", "s390x"),
              "k3s install.sh setup_verify_arch; k3s-io/k3s#14641"),
    # containerd RELEASES.md "Platform Support" (@301026e5): release artifacts for linux/amd64, arm64
    # (tier 1), ppc64le, riscv64, s390x (tier 2); linux/arm/v7 is tier 3, "no release artifacts";
    # .github/workflows/release.yml builds exactly those (containerd-<v>-linux-<arch>.tar.gz, Makefile RELEASE)
    Published("containerd/containerd releases", "release tarballs", ("amd64", "arm64", "ppc64le", "riscv64", "s390x"),
              "containerd RELEASES.md Platform Support"),
)}
for _p in PUBLISHED.values():
    assert all(platforms.arch(a).name == a for a in _p.arches + _p.edge_only), _p.name

# what each bootstrapper installs from upstream (with --artifacts, none of it: the contributor's binaries)
NEEDS = {
    "kubeadm": ("pkgs.k8s.io", "registry.k8s.io"),
    "microk8s": ("the Snap Store",),
    "k3s": ("k3s-io/k3s releases",),
}


def refusal(bootstrapper: str, arch: str, release: kube_versions.Release, distro: platforms.Distro | None = None,
            own_binaries: bool = False) -> str | None:
    """Why this bootstrapper cannot install this release on this arch from upstream; None if it can.
    With `own_binaries` (--artifacts) Kubernetes' own packages and images are not needed, the
    container runtime still is."""
    for name in () if own_binaries else NEEDS.get(bootstrapper, ()):
        p = PUBLISHED[name]
        if arch not in p.arches and arch not in p.edge_only:
            return p.reason(arch)
    if bootstrapper == "kubeadm" and distro is not None and distro.os == "linux":
        choice = containerd_for(release, distro, arch)
        if choice.source is None:
            return choice.reason
    return None


def microk8s_channel(minor: str, arch: str) -> tuple[str, str | None]:
    """The snap channel for a MicroK8s cell and, when it is not stable, why."""
    p = PUBLISHED["the Snap Store"]
    if arch in p.edge_only:
        return f"{minor}/edge", f"MicroK8s publishes {arch} builds on edge channels only ({p.source})"
    return f"{minor}/stable", None


# ---- containerd ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """A containerd release line: its newest patch and end of life (containerd RELEASES.md), and
    the runc that patch is tested with."""

    minor: str
    newest: str  # newest tag of the line in containerd's repository
    eol: date
    runc: str  # script/setup/runc-version at tag v<newest>: the runc containerd's CI installs


# containerd RELEASES.md "Current State of containerd Releases" @301026e5 (2026-08-22); newest tags
# from the same repository (v2.3.4 and v2.2.7 2026-08-12, v2.0.11 and v1.7.34 2026-07-09, ...).
# 1.7 LTS: extended support "through September 2026"; 2.0: "through March 2027"; 2.4 is not released.
LINES: dict[str, Line] = {ln.minor: ln for ln in (
    Line("1.6", "1.6.39", date(2025, 8, 23), "v1.3.0"),
    Line("1.7", "1.7.34", date(2026, 9, 30), "v1.3.6"),
    Line("2.0", "2.0.11", date(2027, 3, 31), "v1.3.6"),
    Line("2.1", "2.1.9", date(2026, 7, 3), "v1.3.6"),
    Line("2.2", "2.2.7", date(2026, 11, 6), "v1.3.6"),
    Line("2.3", "2.3.4", date(2028, 4, 30), "v1.4.3"),
)}
NEWEST_LTS = "2.3"  # RELEASES.md: 2.3 is LTS (April 30, 2026 .. April 30, 2028)

# The containerd each distro release ships, per `apt-cache show containerd` against
# deb.debian.org (2026-11-21, every arch of the suite): the same version on every arch.
# forky/sid carry 2.1.9+ds1-5 (2.1 is past end of life and in no row from 1.36 on).
DISTRO_CONTAINERD = {
    "bookworm": "1.6.20~ds1-1+deb12u3",
    "trixie": "1.7.24~ds1-6+deb13u1",
}


@dataclass(frozen=True)
class ContainerdChoice:
    source: str | None  # "distro" (the node's own package), "release" (containerd's tarball) or None: refused
    version: str | None
    reason: str
    url: str | None = None  # the tarball, for source "release" (its checksum: url + ".sha256sum")
    runc: str | None = None  # the runc release installed with it, for source "release"

    def __str__(self) -> str:
        return f"containerd {self.version} from {self.source}: {self.reason}" if self.source else self.reason


# containerd's release tarball, and beside it <tarball>.sha256sum (Makefile `release`: `sha256sum
# $(RELEASE).tar.gz >$(RELEASE).tar.gz.sha256sum`); docs/getting-started.md Step 1 installs it
# under /usr/local with the containerd.service unit of the same repository
TARBALL = "https://github.com/containerd/containerd/releases/download/v{v}/containerd-{v}-linux-{arch}.tar.gz"
# runc's static release binaries runc.<GOARCH> and their sums in runc.sha256sum (opencontainers/runc
# script/release_build.sh); containerd docs/getting-started.md Step 2 installs it as /usr/local/sbin/runc
RUNC = "https://github.com/opencontainers/runc/releases/download/{v}/{name}"


def _key(v: str) -> tuple[int, ...]:
    return kube_versions._vkey(v)


def containerd_for(release: kube_versions.Release, distro: platforms.Distro, arch: str,
                   today: date | None = None) -> ContainerdChoice:
    """The containerd a kubeadm cell of this release installs on this distro and arch, and why.

    The distro's own package when the release's row in containerd's matrix lists it and its line is
    maintained (and, from 1.38, it is 2.x: kubelet then needs the runtime to report its cgroup
    driver); else containerd's release tarball of the newest maintained line the row lists (the
    newest LTS when the release has no row yet), when containerd publishes one for the arch; else
    refused. With the distro's containerd comes the distro's runc (a dependency); with the tarball,
    runc's release binary of the version that containerd tag is tested with (Line.runc), as
    containerd's getting-started guide installs it. The CNI plugins come with kubelet from
    pkgs.k8s.io (kubelet depends on kubernetes-cni: kubernetes/release
    cmd/krel/templates/latest/metadata.yaml; it installs them into /opt/cni/bin)."""
    today = today or date.today()
    row = release.containerd
    needs_2 = release.key >= kube_versions.CGROUP_FALLBACK_REMOVED
    pkg = DISTRO_CONTAINERD.get(distro.release)
    why_not_distro = f"{distro.name} ships no containerd package known to this table"
    if pkg is not None:
        line = ".".join(pkg.split(".")[:2])
        plain = pkg.split("~")[0].split("+")[0]
        if needs_2 and _key(plain) < (2,):
            why_not_distro = (f"{distro.name}'s containerd {plain} cannot report its cgroup driver, which kubelet "
                              f"needs from 1.38 (kubernetes/kubernetes#136731)")
        elif row is None or not row.lines:
            why_not_distro = f"{distro.name}'s containerd {plain}: containerd's matrix has no {release.minor} row yet"
        elif not row.accepts(plain):
            why_not_distro = (f"{distro.name}'s containerd {plain} is not in {release.minor}'s row "
                              f"({row.describe()}; {row.source})")
        elif line in LINES and LINES[line].eol < today:
            why_not_distro = f"{distro.name}'s containerd {plain} is past its end of life ({line}: {LINES[line].eol})"
        else:
            return ContainerdChoice("distro", plain, f"{distro.name} ships {pkg}, in {release.minor}'s row "
                                                     f"({row.describe()}; {row.source})")
    # containerd's own release tarball
    if row is not None and row.lines:
        listed = [m for m, _ in row.lines if m in LINES and (not needs_2 or _key(m) >= (2,))]
        live = [m for m in listed if LINES[m].eol >= today]
        pick = (live or listed or [NEWEST_LTS])[0]
        basis = (f"newest maintained line in {release.minor}'s row ({row.describe()}; {row.source})" if live else
                 f"every line in {release.minor}'s row ({row.describe()}) is past its end of life; {pick} is the newest")
    else:
        pick = NEWEST_LTS
        basis = (f"containerd's matrix has no {release.minor} row yet ({row.source if row else 'release not in the table'}); "
                 f"{pick} is the newest LTS")
    pub = PUBLISHED["containerd/containerd releases"]
    if arch not in pub.arches:
        return ContainerdChoice(None, None, f"no containerd that Kubernetes {release.minor} supports for {arch}: "
                                            f"{why_not_distro}, and {pub.reason(arch)}")
    v = LINES[pick].newest
    return ContainerdChoice("release", v, f"{why_not_distro}; {basis}", url=TARBALL.format(v=v, arch=arch),
                            runc=LINES[pick].runc)
