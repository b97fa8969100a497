"""Per Kubernetes minor: what kubeadm deploys with it, what its binaries are built with, and the
containerd it supports.

Sources:
  pause   cmd/kubeadm/app/constants/constants.go  PauseVersion
  etcd    cmd/kubeadm/app/constants/constants.go  DefaultEtcdVersion / SupportedEtcdVersion[minor]
  coredns cmd/kubeadm/app/constants/constants.go  CoreDNSVersion
          The values per release (.0 and every patch) are what that release's own kubeadm prints
          for `kubeadm config images list --kubernetes-version vX.Y.Z`, as recorded for every release
          by kubernetes/minikube pkg/minikube/constants/constants_kubeadm_images.go (its generator,
          hack/update/kubeadm_constants, downloads each release's kubeadm from dl.k8s.io and runs
          that command; read at eb25dbc7, 2026-08-23). "MK v1.36.0" below names that file's entry.
  go      CHANGELOG/CHANGELOG-1.Y.md "Kubernetes is now built with Go 1.N.P" up to vX.Y.0
  beta labels: pkg/kubelet/kubelet_node_status.go still sets beta.kubernetes.io/{os,arch}
          on registration (KEP-2178 deprecated them but kubelet keeps writing them).
  containerd: containerd/containerd RELEASES.md "Kubernetes Support" (the matrix of containerd
          versions recommended per Kubernetes release; rows for old releases from the last commit
          that still had them).

A patch release may move an image (etcd 3.5.24-0 in late 1.31..1.33 patches): `Release.changes`
records from which patch on, so `images_at(patch)` is exact for every patch. Patch releases may
also move Go, even to a newer Go minor: what a release line's Go may be is in GO below. At run time the
installed kubeadm itself is asked (`kubeadm config images list`) and cross-checked against this.

Which releases exist, and which is `latest`, comes from upstream when it answers (releases.py);
this table is the offline fallback and the source of the image facts. A release newer than the
table resolves with `in_table=False` and no image facts: kubeadm on the node gives them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from . import releases
from ..common.errors import UserError


@dataclass(frozen=True)
class Images:
    """The three add-on images kubeadm pins for a release (the rest are tagged with the release)."""

    pause: str  # tag of registry.k8s.io/pause
    etcd: str  # tag of registry.k8s.io/etcd
    coredns: str  # tag of registry.k8s.io/coredns/coredns


@dataclass(frozen=True)
class Change:
    """From patch `since` on (v1.Y.since), kubeadm lists these images instead (None: unchanged)."""

    since: int
    source: str
    pause: str | None = None
    etcd: str | None = None
    coredns: str | None = None


@dataclass(frozen=True)
class Containerd:
    """containerd versions a Kubernetes release is recommended with: (containerd minor, lowest patch)
    per containerd RELEASES.md's row for the release, newest line first. Empty: no row yet."""

    lines: tuple[tuple[str, str], ...]
    source: str

    def accepts(self, version: str) -> bool:
        """Is this containerd version (e.g. '1.7.24') at or above the row's lowest patch of its line?"""
        key = _vkey(version)
        return any(key[:2] == _vkey(low)[:2] and key >= _vkey(low) for _, low in self.lines)

    def describe(self) -> str:
        return ", ".join(f"{low}+" for _, low in self.lines) or "no row yet"


@dataclass(frozen=True)
class Release:
    minor: str  # "1.32"
    pause: str | None  # at vX.Y.0; None when the table lacks the release (kubeadm on the node knows)
    etcd: str | None
    coredns: str | None
    go: str | None  # Go toolchain of the vX.Y.0 release binaries
    beta_arch_labels: bool = True  # kubelet sets beta.kubernetes.io/arch|os
    changes: tuple[Change, ...] = ()  # later patches that moved an image, oldest first
    containerd: Containerd | None = field(default=None, compare=False)
    in_table: bool = True  # False: newer than this table, known only from upstream (releases.py)
    upstream_patch: str | None = field(default=None, compare=False)  # dl.k8s.io's stable-1.X.txt, if asked

    @property
    def tag(self) -> str:
        return f"v{self.minor}"

    @property
    def key(self) -> tuple[int, int]:
        major, minor = self.minor.split(".")
        return int(major), int(minor)

    def images_at(self, patch: int | str | None = None) -> Images:
        """The add-on images kubeadm of v{minor}.{patch} lists (patch: 3, 'v1.36.3' or None for .0)."""
        if not self.in_table:
            raise UserError(f"kubernetes {self.minor}: not in the built-in table (newest "
                            f"{RELEASES[-1].minor}): its images come from kubeadm on the node "
                            f"(`kubeadm config images list`)")
        n = _patch_number(patch)
        img = Images(self.pause, self.etcd, self.coredns)
        for c in self.changes:
            if n >= c.since:
                img = Images(c.pause or img.pause, c.etcd or img.etcd, c.coredns or img.coredns)
        return img

    def images(self, repository: str = "registry.k8s.io", patch: str | None = None) -> dict[str, str]:
        """The images `kubeadm config images list` prints for this release (name -> reference)."""
        version = patch or f"v{self.minor}.0"
        img = self.images_at(version)
        return {
            "kube-apiserver": f"{repository}/kube-apiserver:{version}",
            "kube-controller-manager": f"{repository}/kube-controller-manager:{version}",
            "kube-scheduler": f"{repository}/kube-scheduler:{version}",
            "kube-proxy": f"{repository}/kube-proxy:{version}",
            "coredns": f"{repository}/coredns/coredns:{img.coredns}",
            "pause": f"{repository}/pause:{img.pause}",
            "etcd": f"{repository}/etcd:{img.etcd}",
        }


def _vkey(version: str) -> tuple[int, ...]:
    """'1.7.24~ds1-6' / 'v2.3.4' / '2.3' -> (1, 7, 24) ..."""
    core = version.strip().removeprefix("v").split("~")[0].split("+")[0].split("-")[0]
    return tuple(int(x) for x in core.split(".") if x.isdigit())


def _patch_number(patch: int | str | None) -> int:
    if patch is None:
        return 0
    if isinstance(patch, int):
        return patch
    parts = str(patch).removeprefix("v").split("-")[0].split(".")
    return int(parts[2]) if len(parts) >= 3 and parts[2].isdigit() else 0


# containerd RELEASES.md "Kubernetes Support" rows. Rows 1.32..1.36 at containerd 301026e5
# (2026-08-22, the newest stored); older rows from the last commit that listed them.
_CD_HEAD = "containerd RELEASES.md @301026e5 (2026-08-22)"
_CD = {
    "1.27": Containerd((("1.7", "1.7.0"), ("1.6", "1.6.15")), "containerd RELEASES.md @26b48a6b (2024-09-03)"),
    "1.28": Containerd((("1.7", "1.7.0"), ("1.6", "1.6.15")), "containerd RELEASES.md @26b48a6b (2024-09-03)"),
    "1.29": Containerd((("1.7", "1.7.11"), ("1.6", "1.6.27")), "containerd RELEASES.md @f71c2c2d (2025-04-24)"),
    "1.30": Containerd((("2.1", "2.1.0"), ("2.0", "2.0.0"), ("1.7", "1.7.13"), ("1.6", "1.6.28")),
                       "containerd RELEASES.md @84aa2067 (2025-09-12)"),
    "1.31": Containerd((("2.1", "2.1.0"), ("2.0", "2.0.0"), ("1.7", "1.7.20"), ("1.6", "1.6.34")),
                       "containerd RELEASES.md @c49379c3 (2025-12-17)"),
    "1.32": Containerd((("2.1", "2.1.0"), ("2.0", "2.0.1"), ("1.7", "1.7.24"), ("1.6", "1.6.36")), _CD_HEAD),
    "1.33": Containerd((("2.1", "2.1.0"), ("2.0", "2.0.4"), ("1.7", "1.7.24"), ("1.6", "1.6.36")), _CD_HEAD),
    "1.34": Containerd((("2.1", "2.1.3"), ("2.0", "2.0.6"), ("1.7", "1.7.28"), ("1.6", "1.6.39")), _CD_HEAD),
    "1.35": Containerd((("2.2", "2.2.0"), ("2.1", "2.1.5"), ("1.7", "1.7.28")), _CD_HEAD),
    "1.36": Containerd((("2.3", "2.3.0"), ("2.2", "2.2.0")), _CD_HEAD),
    "1.37": Containerd((), _CD_HEAD + ": no 1.37 row yet"),
}

_MK = "kubernetes/minikube constants_kubeadm_images.go"  # see the module docstring

# Oldest first: every released minor from 1.27 on. 1.37.0 was released 2026-08-26
# (kubernetes/website#55932 "Its v1.37 Release day"; CHANGELOG-1.38.md v1.38.0-alpha.1 is
# "Changelog since v1.37.0"). 1.38 is not released: CHANGELOG-1.38.md reaches v1.38.0-alpha.2 only.
RELEASES: tuple[Release, ...] = (
    Release("1.27", pause="3.9", etcd="3.5.7-0", coredns="v1.10.1", go="1.20.3",  # MK v1.27.0
            changes=(Change(7, f"{_MK} v1.27.7", etcd="3.5.9-0"), Change(10, f"{_MK} v1.27.10", etcd="3.5.10-0"),
                     Change(12, f"{_MK} v1.27.12", etcd="3.5.12-0"))),
    Release("1.28", pause="3.9", etcd="3.5.9-0", coredns="v1.10.1", go="1.20.7",  # MK v1.28.0
            changes=(Change(6, f"{_MK} v1.28.6", etcd="3.5.10-0"), Change(8, f"{_MK} v1.28.8", etcd="3.5.12-0"),
                     Change(14, f"{_MK} v1.28.14", etcd="3.5.15-0"))),
    Release("1.29", pause="3.9", etcd="3.5.10-0", coredns="v1.11.1", go="1.21.5",  # MK v1.29.0
            changes=(Change(3, f"{_MK} v1.29.3", etcd="3.5.12-0"), Change(9, f"{_MK} v1.29.9", etcd="3.5.15-0"),
                     Change(11, f"{_MK} v1.29.11", etcd="3.5.16-0"))),
    Release("1.30", pause="3.9", etcd="3.5.12-0", coredns="v1.11.1", go="1.22.2",  # MK v1.30.0
            changes=(Change(5, f"{_MK} v1.30.5", etcd="3.5.15-0", coredns="v1.11.3"),)),
    # v1.31.0's kubeadm still listed coredns v1.11.1 (the old table said v1.11.3: that is v1.31.1's)
    Release("1.31", pause="3.10", etcd="3.5.15-0", coredns="v1.11.1", go="1.22.5",  # MK v1.31.0
            changes=(Change(1, f"{_MK} v1.31.1", coredns="v1.11.3"), Change(14, f"{_MK} v1.31.14", etcd="3.5.24-0"))),
    Release("1.32", pause="3.10", etcd="3.5.16-0", coredns="v1.11.3", go="1.23.3",  # MK v1.32.0
            changes=(Change(10, f"{_MK} v1.32.10", etcd="3.5.24-0"),)),
    Release("1.33", pause="3.10", etcd="3.5.21-0", coredns="v1.12.0", go="1.24.2",  # MK v1.33.0
            changes=(Change(6, f"{_MK} v1.33.6", etcd="3.5.24-0"),)),
    Release("1.34", pause="3.10.1", etcd="3.6.4-0", coredns="v1.12.1", go="1.24.6",  # MK v1.34.0
            changes=(Change(2, f"{_MK} v1.34.2", etcd="3.6.5-0"),)),
    Release("1.35", pause="3.10.1", etcd="3.6.6-0", coredns="v1.13.1", go="1.25.5"),  # MK v1.35.0 .. v1.35.7
    # v1.36.0 itself lists pause 3.10.2 and coredns v1.14.2 (the old table's 3.10.1 / v1.13.1 were read
    # from a pre-release snapshot of the branch); unchanged through MK v1.36.3. Same as
    # kubeclipper/kubeclipper#947 ("k8s 1.36 uses pause:3.10.2").
    Release("1.36", pause="3.10.2", etcd="3.6.8-0", coredns="v1.14.2", go="1.26.2"),  # MK v1.36.0
    # MK v1.37.0-rc.0 (the newest 1.37 entry there); v1.37.0/v1.37.1 clusters list the same images
    # (`kubeadm config images list` outputs quoted in public repositories). go: CHANGELOG-1.37.md
    # v1.37.0-alpha.1 "built with Go 1.26.4" (the Go toolchain table is kept by its own owner).
    Release("1.37", pause="3.10.2", etcd="3.7.0-0", coredns="v1.14.6", go="1.26.4"),
)
RELEASES = tuple(replace(r, containerd=_CD[r.minor]) for r in RELEASES)
_BY_MINOR = {r.minor: r for r in RELEASES}

# kubelet's fallback to its own cgroupDriver for runtimes that cannot report theirs over CRI
# (RuntimeConfig; containerd 1.x cannot) is removed in 1.38: kubernetes/kubernetes#136731, deferred
# from 1.36 to 1.37 (kubernetes/website#54356) and to 1.38 (kubernetes/website#55809, #55954).
CGROUP_FALLBACK_REMOVED = (1, 38)
# kubeadm warns about containerd 1.x from 1.35 on (kubernetes/kubeadm#3229, kubernetes/kubernetes#134906)
KUBEADM_WARNS_CONTAINERD_1 = (1, 35)


def _minor_of(text: str) -> str | None:
    parts = text.strip().lower().removeprefix("v").split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return f"{int(parts[0])}.{int(parts[1])}"
    return None


def _key(minor: str) -> tuple[int, int]:
    a, b = minor.split(".")
    return int(a), int(b)


def _beyond_table(minor: str, patch: str | None) -> Release:
    """A release newer than the table, known from upstream: no image facts of ours."""
    return Release(minor, pause=None, etcd=None, coredns=None, go=None, in_table=False, upstream_patch=patch)


def _newest_minor() -> str:
    """The newest released minor: upstream's stable.txt when it answers, else the table's."""
    up = releases.latest()
    if up is not None:
        minor = _minor_of(up)
        if minor and _key(minor) > RELEASES[-1].key:
            return minor
    return RELEASES[-1].minor


def resolve(selector: str | int | float) -> Release:
    """`latest`, `-1`, `-2` (relative to latest), `1.32`, `v1.32`, `v1.32.4` -> Release.

    `latest` is upstream's newest release when dl.k8s.io (or ARCHMATRIX_RELEASES) answers, else
    the table's. A minor newer than the table resolves only when upstream says it is released."""
    s = str(selector).strip().lower()
    if s in ("latest", "stable", "0", "-0"):
        s = "-0"
    if s.startswith("-") and s[1:].isdigit():
        back = int(s[1:])
        newest = _newest_minor()
        major, top = _key(newest)
        oldest = RELEASES[0].key[1]
        if top - back < oldest:
            raise UserError(f"kubernetes '{selector}': only {top - oldest} releases before latest "
                            f"({RELEASES[0].minor}..{newest})")
        return resolve(f"{major}.{top - back}")
    minor = _minor_of(s)
    if minor in _BY_MINOR:
        return _BY_MINOR[minor]
    known = ", ".join(r.minor for r in RELEASES)
    if minor is None or _key(minor) < RELEASES[0].key:
        raise UserError(f"unknown kubernetes version '{selector}': use latest, -1, -2, ... or one of {known}")
    # newer than the table: usable only when upstream says it is released
    patch = releases.stable(minor)  # UserError (with why) when upstream cannot be asked
    if patch is None:
        raise UserError(f"kubernetes {minor}: not released ({releases.describe_base()} has no "
                        f"stable-{minor}.txt); the built-in table has {known}")
    releases.warn(f"kubernetes {minor} ({patch}) is newer than the built-in table (newest "
                  f"{RELEASES[-1].minor}): its image facts come from kubeadm on the node at run time")
    return _beyond_table(minor, patch)


def source_summary() -> str:
    """One line for the start of a run: where the release list came from."""
    newest = RELEASES[-1].minor
    if releases.mode() == "table":
        return f"releases: built-in table (latest {newest}; {releases.ENV}=table)"
    up = releases.latest()
    if up is not None:
        return f"releases: upstream {releases.describe_base()} (latest {up})"
    return f"releases: built-in table (latest {newest}; {releases.unreachable() or 'upstream not asked'})"


def go_minor(version: str) -> str:
    """'go1.22.5' / '1.22.5' / '1.22' -> '1.22'."""
    v = version.strip().removeprefix("go")
    return ".".join(v.split(".")[:2])


def kubelet_max_skew(kubelet: tuple[int, int]) -> int:
    """How many minors older than kube-apiserver a kubelet of this version may be
    (kubernetes.io/releases/version-skew-policy, "kubelet": up to three minor versions older,
    "kubelet < 1.25 may only be up to two"; the three came with Kubernetes 1.28, KEP-3935)."""
    return 3 if kubelet >= (1, 25) else 2


# ---- Go toolchains of a release line -------------------------------------------------------
#
# A Kubernetes release line starts with the Go of its vX.Y.0 (Release.go) and its patch
# releases may move to newer Go minors (KEP-3744, kubernetes/enhancements
# keps/sig-release/3744-stay-on-supported-go-versions, "Update release-1.x branches to new go
# minor versions"), because Go supports only its two newest minors (go.dev/doc/devel/release
# "Release Policy": each major Go release is supported until there are two newer ones).
# The KEP's conditions bound what a line can have:
#   - the line stays buildable with "the go minor version used for the .0 release" (3.),
#     so nothing older than Release.go is a Kubernetes build of that line;
#   - a line moves to go 1.N only once "go 1.N has been used in a released Kubernetes version
#     for at least 1 month" (2.), so no line can have a Go minor newer than the newest one any
#     Kubernetes release is built with.
# A line past its end of life (kubernetes/website data/releases/eol.yaml, finalPatchRelease)
# has no newer Go than its final patch release's: that is `final`.

@dataclass(frozen=True)
class GoLine:
    moved: tuple[tuple[str, str], ...] = ()  # (Go minor, the kubernetes/kubernetes PR that moved the line)
    final: tuple[str, str] | None = None  # (final patch release, its Go) once the line is end of life
    source: str = ""


# "Kubernetes is now built with Go 1.N.P" release notes of the [release-1.Y] Go bump PRs
# (kubernetes/kubernetes, as the CHANGELOG-1.Y.md entries quote them).
GO: dict[str, GoLine] = {
    "1.27": GoLine(moved=(("1.22", "#125898"),), final=("v1.27.16", "1.22.5"),
                   source="#125898 go1.22.5 (2024-07-04); eol.yaml: final 1.27.16, EOL 2024-07-16"),
    "1.28": GoLine(moved=(("1.21", "#123228"), ("1.22", "#125897")), final=("v1.28.15", "1.22.8"),
                   source="#123228 go1.21.7, #125897 go1.22.5, #128129 go1.22.8 (2024-10-16); eol.yaml: final 1.28.15"),
    "1.29": GoLine(moved=(("1.22", "#127604"),), final=("v1.29.14", "1.22.12"),
                   source="#127604 go1.22.7, #130075 go1.22.12 (2025-02-10); eol.yaml: final 1.29.14"),
    "1.30": GoLine(moved=(("1.23", "#131683"),), final=("v1.30.14", "1.23.10"),
                   source="#131683 go1.23.8, #132223 go1.23.10 (2025-06-11); eol.yaml: final 1.30.14"),
    "1.31": GoLine(moved=(("1.23", "#131537"), ("1.24", "#134618")), final=("v1.31.14", "1.24.9"),
                   source="#131537 go1.23.8, #134618 go1.24.9 (2025-10-15); eol.yaml: final 1.31.14 "
                          "(k3s-io/k3s#13203: v1.31.14 with Go 1.24.9)"),
    "1.32": GoLine(moved=(("1.24", "#134617"),),
                   source="#133521 go1.23.12, #134617 go1.24.9 (2025-10-15), #136469 go1.24.12; "
                          "k3s-io/k3s#13704: v1.32.13 with Go 1.24.13"),
    "1.33": GoLine(moved=(("1.25", "#138306"),), source="#136468 go1.24.12, #138306 go1.25.9 (2026-04-09)"),
    "1.34": GoLine(moved=(("1.25", "#138305"),), source="#136467 go1.24.12, #138305 go1.25.9 (2026-04-09)"),
    "1.35": GoLine(moved=(("1.26", "#142182"),), source="#139588 go1.25.11, #142182 go1.26.8 (2026-09-17)"),
}


def go_version_key(version: str) -> tuple[int, int, int] | None:
    """'go1.24.4' / '1.24' / 'go1.26rc1' -> (1, 24, 4) / (1, 24, 0) / (1, 26, -1); None if not a Go version."""
    m = re.fullmatch(r"(?:go)?(\d+)\.(\d+)(?:\.(\d+)|(rc|beta)\d+)?", version.strip().split()[0] if version.strip() else "")
    if not m:
        return None
    return int(m[1]), int(m[2]), int(m[3]) if m[3] else (-1 if m[4] else 0)


def go_line(release: Release) -> GoLine:
    return GO.get(release.minor, GoLine())


def newest_go_minor() -> str:
    """The newest Go minor any release in the tables is built with: no line can move past it."""
    minors = [go_minor(r.go) for r in RELEASES] + [m for line in GO.values() for m, _ in line.moved]
    return max(minors, key=go_version_key)
