"""Stand-in for pkgs.k8s.io: one apt repository per minor in its layout
(`<base>/core:/stable:/v1.X/deb/`, a flat repository: `deb [signed-by=...] <url> /`, kubernetes.io
"Installing kubeadm" and kubernetes.io/blog/2023/08/15/pkgs-k8s-io-introduction), with `Release.key`
(the armored public key the docs download), `Release`, `InRelease` and `Release.gpg` signed by a
throwaway key made per run in a temporary GNUPGHOME, and one `Packages` index holding every arch.

The packages carry the names, versions, dependencies and file paths of the real ones
(kubernetes/release cmd/krel/templates/latest/<name>/<name>.spec and metadata.yaml @f618b2a3):
  kubeadm        /usr/bin/kubeadm: a STAND-IN script (answers `version -o short` and `config images list`
                 from the release table, fails anything else); kubelet.service.d/10-kubeadm.conf
  kubelet        /usr/bin/kubelet: a STAND-IN script (exits 1); kubelet.service, /etc/default/kubelet
  kubectl        /usr/bin/kubectl: the REAL one from Debian (trixie 1.32, sid 1.36)
  cri-tools      /usr/bin/crictl: a STAND-IN script (Debian has no cri-tools package)
  kubernetes-cni /opt/cni/bin/*: the REAL CNI plugins from Debian's containernetworking-plugins
Every stand-in says so on stderr, and each package's Description names what in it is a stand-in."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..bootstrap import kubeadm
from ..common.errors import InfraError
from ..host import debian
from ..matrix import platforms
from ..matrix.cells import Cell
from ..matrix.kube_versions import Release

PREFIX = "pkgs"  # served under <node_url>/pkgs: Options.package_base
# pkgs.k8s.io's debs are built by OBS with revision -1.1 (e.g. `apt-cache madison kubeadm` in kubernetes.io
# "Upgrading kubeadm clusters": 1.3x.x-1.1)
REVISION = "1.1"
# Debian's kubectl per minor (tests/conftest.py debian_binary; `apt-cache show kubectl`: trixie 1.32.3,
# sid 1.36.4); another minor gets sid's, and its Description says which
KUBECTL_SUITE = {"1.32": "trixie", "1.36": "sid"}
BINARIES_SUITE = "sid"  # containernetworking-plugins 1.9.1 (kubelet needs kubernetes-cni >= 1.2.0)
# debbuild's %{_unitdir}; bookworm and trixie are merged-/usr, so /lib/systemd/system is /usr/lib/...
UNITDIR = "lib/systemd/system"
# kubelet's unit and kubeadm's drop-in as the debs install them (kubernetes/release
# cmd/krel/templates/latest/kubelet/kubelet.service, kubeadm/10-kubeadm.conf with the spec's debbuild sed
# to /etc/default/kubelet): the air-gapped plan's copies (bootstrap/kubeadm.py), with kubelet at %{_bindir}
KUBELET_SERVICE = kubeadm.KUBELET_UNIT.replace("/usr/local/bin/kubelet", "/usr/bin/kubelet")
KUBEADM_DROPIN = kubeadm.KUBEADM_DROPIN.replace("/usr/local/bin/kubelet", "/usr/bin/kubelet")
STANDIN = "archmatrix rehearsal stand-in"


def kubeadm_script(release: Release, version: str | None = None) -> str:
    """A stand-in kubeadm: `version -o short` and `config images list --kubernetes-version V` answer with
    the release table's values (what kubeadm V prints, kube_versions.py), anything else fails, saying so."""
    version = version or f"v{release.minor}.0"
    listing = " ".join(release.images(patch=version).values())
    return ("#!/bin/sh\n"
            f"echo \"{STANDIN} for kubeadm (no Kubernetes binary exists here): $*\" >&2\n"
            "case \"$*\" in\n"
            f"  'version -o short') echo {version} ;;\n"
            f"  'config images list --kubernetes-version {version}') printf '%s\\n' {listing} ;;\n"
            "  *) echo 'a stand-in cannot do this' >&2; exit 1 ;;\n"
            "esac\n")


def _script(name: str) -> str:
    return f"#!/bin/sh\necho \"{STANDIN} for {name} (no real one here): $*\" >&2\nexit 1\n"


def _depends(name: str, release: Release) -> str:
    """kubernetes/release cmd/krel/templates/latest/metadata.yaml (rows from 1.28) and the specs' Requires."""
    k = release.key
    if name == "kubeadm":
        if k >= (1, 32):
            return ""
        if k >= (1, 30):
            return "cri-tools (>= 1.30.0)"
        return "kubelet (>= 1.19.0), kubectl (>= 1.19.0), kubernetes-cni (>= 1.2.0), cri-tools (>= 1.28.0)"
    if name == "kubelet":  # kubelet.spec: iptables >= 1.4.21, mount (debbuild), util-linux; metadata: kubernetes-cni
        cni = "kubernetes-cni (>= 1.2.0)" if k >= (1, 28) else "kubernetes-cni (>= 1.1.1)"
        return f"iptables (>= 1.4.21), {cni}, mount, util-linux"
    return ""


# name -> (Section (the spec's debbuild Group), Description (the spec's Summary))
SUMMARY = {
    "kubeadm": ("admin", "Command-line utility for administering a Kubernetes cluster"),
    "kubelet": ("net", "Node agent for Kubernetes clusters"),
    "kubectl": ("admin", "Command-line utility for interacting with a Kubernetes cluster"),
    "cri-tools": ("admin", "Command-line utility for interacting with a container runtime"),
    "kubernetes-cni": ("net", "Binaries required to provision kubernetes container networking"),
}


def _deb(out: Path, name: str, version: str, arch: str, depends: str, files: dict[str, tuple[Path | str, int]],
         note: str) -> Path:
    """A .deb made by dpkg-deb: `files` maps path in the package -> (source file or text, mode)."""
    with tempfile.TemporaryDirectory(prefix="deb-", dir=out) as tmp:
        root = Path(tmp)
        for path, (src, mode) in files.items():
            dest = root / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(src, Path):
                shutil.copyfile(src, dest)
            else:
                dest.write_text(src)
            dest.chmod(mode)
        section, summary = SUMMARY[name]
        control = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}",
                   "Maintainer: Kubernetes Authors <dev@kubernetes.io>", f"Section: {section}", "Priority: optional"]
        if depends:
            control.append(f"Depends: {depends}")
        control.append(f"Description: {summary}\n {STANDIN}: {note}")
        (root / "DEBIAN").mkdir()
        if name == "kubelet":  # %config(noreplace) /etc/default/kubelet
            (root / "DEBIAN/conffiles").write_text("/etc/default/kubelet\n")
        (root / "DEBIAN/control").write_text("\n".join(control) + "\n")
        deb = out / arch / f"{name}_{version}_{arch}.deb"
        deb.parent.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(root), str(deb)], f"dpkg-deb {deb.name}")
    return deb


def _run(cmd: list[str], what: str, env: dict | None = None, stdin: str | None = None) -> str:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin)
    if p.returncode != 0:
        raise InfraError(f"rehearsal stand-in: {what} failed (exit {p.returncode}): {p.stderr.strip()[-300:]}")
    return p.stdout


def _debian_file(package: str, p: platforms.Platform, member: str, suite: str) -> Path:
    return debian.fetch_file(package, p.debian, member, suite)


def _packages(minor_dir: Path, release: Release, arches: list[platforms.Platform], progress) -> list[Path]:
    minor = release.minor
    version = f"{minor}.0-{REVISION}"
    debs = []
    for p in arches:
        a = p.debian
        progress(f"rehearsal: pkgs.k8s.io v{minor} packages for {a}")
        suite = KUBECTL_SUITE.get(minor, "sid")
        kubectl = _debian_file("kubectl" if suite != "bookworm" else "kubernetes-client", p, "usr/bin/kubectl", suite)
        cni_pkg = debian.download("containernetworking-plugins", a, BINARIES_SUITE)
        cni_root = debian.extract(cni_pkg, debian.cache_dir() / "unpacked" / cni_pkg.stem)
        cni = {f"opt/cni/bin/{f.name}": (f, 0o755) for f in sorted((cni_root / "usr/lib/cni").iterdir())}
        cni["etc/cni/net.d/.kubernetes-cni-keep"] = ("", 0o644)
        cni_version = cni_pkg.name.split("_")[1].split("+")[0]
        debs += [
            _deb(minor_dir, "kubeadm", version, a, _depends("kubeadm", release), {
                "usr/bin/kubeadm": (kubeadm_script(release), 0o755),
                f"{UNITDIR}/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN, 0o644)},
                 "/usr/bin/kubeadm is a script answering `version` and `config images list` only"),
            _deb(minor_dir, "kubelet", version, a, _depends("kubelet", release), {
                "usr/bin/kubelet": (_script("kubelet"), 0o755), f"{UNITDIR}/kubelet.service": (KUBELET_SERVICE, 0o644),
                "etc/default/kubelet": ("KUBELET_EXTRA_ARGS=\n", 0o644),
                "var/lib/kubelet/.kubelet-keep": ("", 0o644), "etc/kubernetes/manifests/.kubelet-keep": ("", 0o644)},
                 "/usr/bin/kubelet is a script that exits 1"),
            _deb(minor_dir, "kubectl", version, a, "", {"usr/bin/kubectl": (kubectl, 0o755)},
                 f"/usr/bin/kubectl is Debian {suite}'s real kubectl ({kubectl.parent.parent.parent.name}), "
                 f"not v{minor}"),
            _deb(minor_dir, "cri-tools", f"{minor}.0-{REVISION}", a, "", {"usr/bin/crictl": (_script("crictl"), 0o755)},
                 "/usr/bin/crictl is a script that exits 1 (Debian has no cri-tools)"),
            _deb(minor_dir, "kubernetes-cni", f"{cni_version}-{REVISION}", a, "", cni,
                 f"/opt/cni/bin holds Debian {BINARIES_SUITE}'s real {cni_pkg.name}"),
        ]
    return debs


def _index(minor_dir: Path, debs: list[Path], arches: list[str]) -> Path:
    """Packages (+ .gz) and Release with their hashes (Debian wiki DebianRepository/Format, "Flat Repository
    Format": Filename relative to the directory the source line names)."""
    stanzas = []
    for deb in debs:
        data = deb.read_bytes()
        control = _run(["dpkg-deb", "-f", str(deb)], f"dpkg-deb -f {deb.name}").rstrip("\n")
        stanzas.append(f"{control}\nFilename: {deb.relative_to(minor_dir)}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    text = "\n".join(stanzas).encode()
    (minor_dir / "Packages").write_bytes(text)
    (minor_dir / "Packages.gz").write_bytes(gzip.compress(text, mtime=0))
    date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(time.time() - 86400))  # never in a TCG guest's future
    lines = [f"Origin: {STANDIN}", f"Label: {STANDIN} of pkgs.k8s.io", f"Date: {date}",
             f"Architectures: {' '.join(arches)}", "Description: a stand-in, signed by a throwaway key", "SHA256:"]
    for name in ("Packages", "Packages.gz"):
        b = (minor_dir / name).read_bytes()
        lines.append(f" {hashlib.sha256(b).hexdigest()} {len(b)} {name}")
    release = minor_dir / "Release"
    release.write_text("\n".join(lines) + "\n")
    return release


class Key:
    """A throwaway OpenPGP signing key in its own GNUPGHOME (removed, and its gpg-agent stopped, by close())."""

    def __init__(self, name: str = "archmatrix rehearsal throwaway key"):
        self.home = Path(tempfile.mkdtemp(prefix="am-gpg-"))  # short: gpg-agent's socket path has a length limit
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        try:
            _run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{name} <rehearsal@archmatrix.invalid>",
                  "ed25519", "sign", "never"], "gpg --quick-gen-key", self.env)
        except BaseException:
            self.close()
            raise

    def armored(self) -> str:
        return _run(["gpg", "--batch", "--armor", "--export"], "gpg --export", self.env)

    def sign(self, release: Path) -> None:
        """InRelease (clearsigned) and Release.gpg (detached) beside `release`."""
        d = release.parent
        _run(["gpg", "--batch", "--yes", "--clearsign", "-o", str(d / "InRelease"), str(release)], "gpg --clearsign",
             self.env)
        _run(["gpg", "--batch", "--yes", "--armor", "--detach-sign", "-o", str(d / "Release.gpg"), str(release)],
             "gpg --detach-sign", self.env)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env=self.env, capture_output=True)  # the agent gpg started
        shutil.rmtree(self.home, ignore_errors=True)


def repo_dir(root: Path, minor: str) -> Path:
    """Where the v<minor> repository lives under `root` (pkgs.k8s.io's path: core:/stable:/v1.X/deb/)."""
    return root / PREFIX / "core:" / "stable:" / f"v{minor}" / "deb"


def build(root: Path, cells: list[Cell], progress=print) -> dict[str, str]:
    """One signed repository per minor of the kubeadm cells, for their arches."""
    wanted: dict[str, tuple[Release, dict[str, platforms.Platform]]] = {}
    for c in cells:
        if c.bootstrapper == "kubeadm":
            wanted.setdefault(c.release.minor, (c.release, {}))[1][c.arch] = c.platform
    if not wanted:
        return {}
    key = Key()
    try:
        for minor, (release, arches) in sorted(wanted.items()):
            d = repo_dir(root, minor)
            d.mkdir(parents=True, exist_ok=True)
            debs = _packages(d, release, list(arches.values()), progress)
            key.sign(_index(d, debs, [p.debian for p in arches.values()]))
            (d / "Release.key").write_text(key.armored())
    finally:
        key.close()
    return {}


def options(node_url: str) -> dict:
    return {"package_base": f"{node_url}/{PREFIX}"}
