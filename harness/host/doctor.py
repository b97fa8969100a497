"""`archmatrix doctor`: per capability, whether it works on this machine and what to do otherwise;
a cell that needs a capability that does not work cannot run (exit 1, naming the fix). Every check
asks the machine itself (arch-test runs a binary of the arch, /proc/sys/fs/binfmt_misc, the cached
KVM probe, statvfs of the image cache, `unshare --net`, the mirror's Release file); programs and
their packages come from the deps table (harness/host/sysdeps.py)."""
from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import UserError
from ..matrix import platforms
from . import debian, sysdeps

# A build holds its root (~0.5-1 GB), a raw disk of that size and the qcow2 (370-700 MB: qemu-lab notes;
# debian12-amd64 measured 671 MB here) at once: 3 GB each, with room to spare.
BUILD_NEEDS_MB = 3072
MIRROR_TIMEOUT = 10  # seconds: one Release file


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Needs:
    """What the selection runs: arches per provider, registry, the harness's own tests."""
    qemu: frozenset = frozenset()  # platforms booted under QEMU
    builds: frozenset = frozenset()  # (platform, distro) base images (qemu and docker cells)
    docker: bool = False
    registry: bool = False
    tests: bool = False

    @property
    def foreign(self) -> set:
        return {p for p, _ in self.builds if p is not platforms.host()}


def needs_of(cells, suites: bool = False, tests: bool = False) -> Needs:
    qemu, builds, docker, registry = set(), set(), False, suites
    for c in cells:
        if c.unsupported:
            continue
        if c.provider in ("qemu", "docker"):
            builds.add((c.platform, c.os))
        qemu |= {c.platform} if c.provider == "qemu" else set()
        docker |= c.provider == "docker"
        registry |= c.bootstrapper != "none"  # the harness's registry serves the nodes' images
    if tests:  # the harness's tests boot these (noxfile `tests`) and check every arch's emulators
        every = {platforms.arch(a) for a in ("amd64", "s390x", "arm64")}
        builds |= {(p, platforms.distro("debian12")) for p in every}
        qemu |= set(platforms.PLATFORMS)
        docker = registry = True
    return Needs(frozenset(qemu), frozenset(builds), docker, registry, tests)


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def _install(*names: str) -> str:
    unknown = sorted(n for n in names if n not in sysdeps.PACKAGE_OF)
    if unknown:  # a program the table lacks (tests/test_sysdeps.py fails too): say so, not a KeyError
        return f"no Debian package is known for {', '.join(unknown)}: add it to harness/host/sysdeps.py PACKAGE_OF"
    return "apt-get install -y " + " ".join(sorted(sysdeps.packages(names)))


def programs(names, what: str, name: str = "programs") -> Check:
    gone = sysdeps.absent(names)
    if gone:
        return Check(name, False, f"{what}: missing {', '.join(gone)}", _install(*gone))
    return Check(name, True, f"{what}: all {len(set(names))} present")


def qemu_system(p: platforms.Platform) -> Check:
    exe = shutil.which(p.qemu.system)
    if exe is None:
        return Check(f"qemu-system {p.name}", False, f"{p.qemu.system} not found", _install(p.qemu.system))
    out = _run([exe, "--version"]).stdout.split("\n")[0]
    return Check(f"qemu-system {p.name}", True, f"{exe}: {out}")


def binfmt(p: platforms.Platform, mnt: Path = Path("/proc/sys/fs/binfmt_misc")) -> Check:
    """Can this machine run `p`'s binaries? arch-test runs a tiny binary of the arch (what mmdebstrap
    asks); the binfmt_misc entry says which interpreter, and whether the F flag lets it work in a chroot."""
    name = f"binfmt {p.name}"
    entry = mnt / p.qemu_user.removesuffix("-static")
    conf = Path("/usr/lib/binfmt.d") / f"{entry.name}.conf"
    register = (f"as root: mount -t binfmt_misc binfmt_misc {mnt} 2>/dev/null; "
                f"cat {conf} > {mnt}/register (or {_install(p.qemu_user)}: it registers every arch at boot)")
    if shutil.which("arch-test") is None:
        return Check(name, False, "arch-test not found: cannot tell", _install("arch-test"))
    ran = _run(["arch-test", p.debian])
    if ran.returncode == 0:
        flags = next((x for x in entry.read_text().splitlines() if x.startswith("flags:")), "flags: ?") \
            if entry.is_file() else "no entry of ours"
        return Check(name, True, f"arch-test: {ran.stdout.strip()} ({entry.name} {flags})")
    if conf.is_file() and os.access(mnt / "register", os.W_OK):
        return Check(name, True, f"not registered yet; the image build registers {conf} itself")
    return Check(name, False, f"arch-test: {ran.stdout.strip() or ran.stderr.strip()}",
                 register if conf.is_file() else _install(p.qemu_user) + " and register it: " + register)


def accelerator(p: platforms.Platform) -> Check:
    """KVM or TCG for native nodes: the provider's probe boot decides and caches (never fails: TCG works)."""
    from ..nodes import qemu

    name = f"accelerator {p.name}"
    if not os.path.exists("/dev/kvm"):
        return Check(name, True, "TCG (no /dev/kvm)")
    if not qemu.kvm_usable(p):
        return Check(name, True, "TCG (/dev/kvm is not usable by this user)")
    known = qemu.kvm_probe()
    if known is None:
        return Check(name, True, "/dev/kvm opens; the first native boot probes it (45 s) and falls back to TCG")
    return Check(name, True, f"{known['accelerator'].upper()} (probe boot on kernel {known.get('host_kernel')}, "
                             f"cached in {qemu.kvm_probe_file()})")


def image_cache(builds) -> Check:
    from ..nodes.images import build as images

    d = images.images_dir()
    todo = [f"{dist.name}/{p.name}" for p, dist in sorted(builds, key=lambda x: (x[1].name, x[0].name))
            if images.lookup(p, dist) is None and dist.family == "debian"]
    free_mb = shutil.disk_usage(d).free // 2**20
    need_mb = BUILD_NEEDS_MB * len(todo)
    detail = (f"{free_mb / 1024:.1f} GB free at {d}; "
              + (f"{len(todo)} image(s) to build ({', '.join(todo)}) need ~{need_mb / 1024:.0f} GB" if todo
                 else "every image needed is built"))
    if free_mb < max(need_mb, 512):
        return Check("image cache disk", False, detail,
                     "free space there, or set ARCHMATRIX_CACHE to a directory on a bigger disk")
    return Check("image cache disk", True, detail)


def docker_engine() -> Check:
    gone = sysdeps.absent(("dockerd", "docker"))
    if gone:
        return Check("docker engine", False, f"missing {', '.join(gone)}", _install(*gone))
    v = _run(["dockerd", "--version"]).stdout.strip()
    return Check("docker engine", True, f"{v} (a private dockerd per run)")


def program(name: str, what: str) -> Check:
    exe = shutil.which(name)
    if exe is None:
        return Check(what, False, f"{name} not found", _install(name))
    return Check(what, True, exe)


def netns() -> Check:
    """Test hosts are sshd in network namespaces: needs root (CAP_SYS_ADMIN) and iproute2."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return Check("network namespaces", False, "unshare or ip not found", _install("unshare", "ip"))
    ran = _run(["unshare", "--net", "ip", "link", "show", "lo"])
    if ran.returncode != 0:
        return Check("network namespaces", False, f"unshare --net: {ran.stderr.strip()[-200:]}",
                     "run as root (the ssh test hosts need network namespaces and veth pairs)")
    return Check("network namespaces", True, "unshare --net works" + (" (root)" if os.geteuid() == 0 else ""))


def mirror(release: str = "bookworm", given: str | None = None) -> Check:
    try:
        url = debian.mirror(given)
    except UserError as e:
        return Check("debian mirror", False, str(e).split(":", 1)[0], str(e).split("; ", 1)[-1])
    where = "--mirror" if given else (debian.ENV_MIRROR if os.environ.get(debian.ENV_MIRROR) else "apt sources")
    release_file = f"{url}/dists/{release}/Release"
    try:
        with urllib.request.urlopen(urllib.request.Request(release_file, method="HEAD"), timeout=MIRROR_TIMEOUT):
            pass
    except (urllib.error.URLError, OSError) as e:
        return Check("debian mirror", False, f"{url} (from {where}): {release_file}: {getattr(e, 'reason', e)}",
                     f"give a reachable Debian mirror: --mirror URL or {debian.ENV_MIRROR}=URL")
    return Check("debian mirror", True, f"{url} (from {where}; keyring {sysdeps.KEYRING})")


def run(cells, suites: bool = False, tests: bool = False, given_mirror: str | None = None):
    """(checks, needed: check name -> the cells (or 'the harness's tests') that need it)."""
    n = needs_of(cells, suites, tests)
    users: dict[str, list[str]] = {}

    def need(check: Check, who) -> Check:
        for w in who:
            users.setdefault(check.name, []).append(w)
        return check

    def cells_where(pred):
        found = [c.id for c in cells if not c.unsupported and pred(c)]
        return found + (["the harness's tests"] if tests else [])

    checks = []
    names = sysdeps.programs_for_cells(cells) | (set(sysdeps.PACKAGE_OF) if tests else set())
    if names:
        gone = set(sysdeps.absent(names))
        checks.append(need(programs(names, "the harness's tests" if tests else "the selected cells"),
                           cells_where(lambda c: bool(sysdeps.programs_for_cells([c]) & gone))))
    if n.foreign:
        checks.append(need(program("arch-test", "arch-test"),
                           cells_where(lambda c: c.provider in ("qemu", "docker") and c.platform in n.foreign)))
    for p in sorted(n.qemu, key=lambda p: platforms.PLATFORMS.index(p)):
        checks.append(need(qemu_system(p), cells_where(lambda c: c.provider == "qemu" and c.platform is p)))
    for p in sorted(n.foreign, key=lambda p: platforms.PLATFORMS.index(p)):
        checks.append(need(binfmt(p), cells_where(lambda c: c.provider in ("qemu", "docker") and c.platform is p)))
    if platforms.host() in n.qemu:
        checks.append(accelerator(platforms.host()))
    if n.builds:
        checks.append(need(image_cache(n.builds), cells_where(lambda c: c.provider in ("qemu", "docker"))))
        release = sorted({d.release for _, d in n.builds if d.family == "debian"} or {"bookworm"})[0]
        checks.append(need(mirror(release, given_mirror), cells_where(
            lambda c: c.provider in ("qemu", "docker") and c.os.family == "debian")))
    if n.docker:
        checks.append(need(docker_engine(), cells_where(lambda c: c.provider == "docker")))
    if n.registry:
        who = cells_where(lambda c: c.bootstrapper != "none") + (["the registry suites"] if suites else [])
        checks.append(need(program("docker-registry", "docker-registry"), who))
        checks.append(need(program("skopeo", "skopeo"), who))
    if tests:
        # the dashboard test drives Debian's chromium with playwright, whose node driver links libatomic
        checks.append(need(programs(("chromium", "libatomic.so.1"), "the dashboard test", name="chromium"),
                           ["the harness's tests"]))
        checks.append(need(netns(), ["the harness's tests"]))
    return checks, users


def report(checks, users, out=print) -> list[str]:
    """Print one line per check (and the fix under a failing one); returns who cannot run."""
    blocked: list[str] = []
    for c in checks:
        who = users.get(c.name, [])
        tag = "ok  " if c.ok else ("FAIL" if who else "--  ")
        out(f"{tag}  {c.name:20} {c.detail}")
        if not c.ok:
            out(f"      fix: {c.fix}")
            if who:
                out(f"      needed by: {', '.join(who[:4])}{f' (+{len(who) - 4} more)' if len(who) > 4 else ''}")
                blocked += [w for w in who if w not in blocked]
            else:
                out("      (no selected cell needs it)")
    return blocked
