import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.common.paths import cache_dir
from harness.host import debian, sysdeps
from harness.matrix import platforms

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent
# The harness's own tests never ask dl.k8s.io which releases exist: the built-in table answers,
# here and in every archmatrix/pytest subprocess a test starts (they inherit the environment).
# tests/test_releases.py serves the upstream files from loopback for the upstream path.
os.environ["ARCHMATRIX_RELEASES"] = "table"
# The shared cache (base images, apt downloads), resolved now: pytester moves HOME to a tmp dir,
# where a node test would rebuild a base image for minutes (shared_cache keeps it here).
SHARED_CACHE = cache_dir()


@pytest.fixture
def shared_cache(monkeypatch):
    """Keep the image cache (ARCHMATRIX_CACHE) on the shared one for this test and every process it
    starts, whatever HOME pytester gives them."""
    monkeypatch.setenv("ARCHMATRIX_CACHE", str(SHARED_CACHE))
    return SHARED_CACHE


def suite_for(p: platforms.Platform) -> str:
    """The oldest Debian suite that has this arch (riscv64 starts with trixie)."""
    d = next(d for d in platforms.DISTROS if d.family == "debian" and p.name in d.arches)
    return d.release


@pytest.fixture(scope="session")
def debian_binary():
    """(package, platform, member, suite) -> path of a real binary from Debian's archive."""
    def get(package: str, p: platforms.Platform, member: str, suite: str | None = None) -> Path:
        return debian.fetch_file(package, p.debian, member, suite or suite_for(p))
    return get


# In CI (CI=true) nothing may be missing: a test that would skip for want of a tool fails instead,
# so a green CI is never a run that quietly skipped what it could not do.
IN_CI = os.environ.get("CI", "").lower() == "true"


def unavailable(why: str):
    """Skip with the reason, or fail it in CI."""
    if IN_CI:
        pytest.fail(f"{why} (CI=true: a missing tool fails the run)", pytrace=False)
    pytest.skip(why)


def need(tool: str):
    """The program `tool` (its package from harness/host/sysdeps.py, the deps table)."""
    if shutil.which(tool) is None:
        unavailable(f"{tool} is not installed (apt-get install {sysdeps.PACKAGE_OF[tool]}; "
                    "`archmatrix deps --tests --install` installs it)")


@pytest.fixture
def run_cli():
    def run(*args, cwd=ROOT, env=None):
        exe = Path(sys.executable).parent / "archmatrix"  # the installed console script
        return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True,
                              env={**os.environ, **(env or {})})
    return run


# Every process this session starts inherits this mark (the environment passes to children, also
# to an ssh ControlMaster or a containerd that outlives its parent): on a shared machine other
# engineers' runs start the same kinds of process, without our mark.
SESSION_MARK = f"ARCHMATRIX_TEST_SESSION={os.getpid()}"
os.environ["ARCHMATRIX_TEST_SESSION"] = str(os.getpid())


def _ours(pid: int) -> bool:
    """A process of this test session: a descendant of it, or one carrying its mark (an orphan
    whose parent is gone: a leak)."""
    me, p = os.getpid(), pid
    while p > 1:
        if p == me:
            return True
        try:
            p = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    try:
        return SESSION_MARK.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def alive(pid: int) -> bool:
    """Running: a zombie waiting for its reaper is not (the one check the tests share)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _building(mount: str) -> bool:
    """A mount inside an image build's work dir (images/.<entry>-<random>/...) whose entry lock some
    process holds right now: a build in progress (ours would have finished), not a leftover."""
    from filelock import FileLock, Timeout

    work = next((p for p in Path(mount).parents if p.parent.name == "images" and p.name.startswith(".")), None)
    if work is None:
        return False
    lock = FileLock(str(work.parent / (work.name[1:].rsplit("-", 1)[0] + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def _our_processes():
    """Services the harness starts (registry, qemu, test sshd, dockerd, ssh ControlMasters, image
    builds) now running, the network namespaces and veth ends of its test hosts, and mounts an
    image build made in its root."""
    out = subprocess.run(["pgrep", "-f", "docker-registry serve|qemu-system-|sshd -D -e -f|dockerd |/am-[^ ]*/cm"
                                        "|/usr/bin/mmdebstrap "], capture_output=True, text=True).stdout.split()
    with open("/proc/mounts") as f:
        mounts = {f"mount {x.split()[1]}" for x in f if "/images/." in x.split()[1]}  # in a build's work dir
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.split("\n")
    return ({int(p) for p in out} | mounts | {f"netns {x.split()[0]}" for x in netns if x.startswith("amh")}
            # a veth whose namespace this mount namespace cannot name is another run's (a fresh root has a
            # private /run/netns but shares the host's links): `link-netns NAME` only for ours
            | {f"veth {x.split(':')[1].strip().split('@')[0]}" for x in links if ": amh" in x and " link-netns amh" in x})


def _leaked(thing) -> bool:
    """Whether something left after the session is this session's own (see _ours, _building)."""
    if isinstance(thing, int):
        return _ours(thing)
    kind, name = thing.split(" ", 1)
    if kind == "mount":
        return not _building(name)
    if kind in ("netns", "veth"):  # a test host of another run has its sshd under that run's parent
        ns = name.removesuffix("r").removesuffix("n") if kind == "veth" else name
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        return not pids or any(_ours(int(p)) for p in pids)
    return True


@pytest.fixture(scope="session", autouse=True)
def nothing_leaks():
    """Every service a test starts is stopped by its own PID: none may outlive the session."""
    before = _our_processes()
    yield
    import time

    for _ in range(20):  # give SIGTERMed processes a moment to exit
        left = {x for x in _our_processes() - before if _leaked(x)}
        if not left:
            return
        time.sleep(0.25)
    pytest.fail(f"processes left running after the tests: {sorted(left, key=str)}")


def registry_and_layout(tmp_path_factory):
    """A fresh loopback docker-registry and an empty OCI layout to seed it from (skips, saying
    which package is missing, where the tools are not installed)."""
    from harness.oci.layout import Layout
    from harness.services.registry import LocalRegistry

    need("docker-registry")
    need("skopeo")
    return LocalRegistry(tmp_path_factory.mktemp("registry")), Layout(tmp_path_factory.mktemp("layout"))


def image_for(arch: str, os: str = "linux", **kw):
    """A one-file image for `arch` whose content names the arch (distinct digests per arch)."""
    from harness.oci.layout import Image

    return Image(platforms.arch(arch).oci_platform(os), {"/pause": f"pause for {arch}".encode()}, **kw)


# The head of a conftest for suites run in a pytester subprocess: every provider the plugin makes
# (nodes.get) logs each provision to $LOG as a JSON line (a retry shows as a second line), and
# log() records whatever else the test's own code wants counted.
COUNTING_CONFTEST = """
import json, os
import harness.nodes as nodes

def log(**kw):
    with open(os.environ["LOG"], "a") as f:
        f.write(json.dumps(kw) + "\\n")

real_nodes_get = nodes.get

def counting_get(name, **options):
    provider = real_nodes_get(name, **options)
    provision = provider.provision
    def counted(cell, out):
        log(event="provision", cell=cell.id)
        return provision(cell, out)
    provider.provision = counted
    return provider

nodes.get = counting_get
"""


# `nox -s tests` runs two xdist workers (`-n 2 --dist loadgroup`): these files boot QEMU nodes, build
# images, start dockerd or make a fresh root, and some assert on machine-wide state while they do (no
# node record left in the run directory, no dockerd of the prefix, no build mount): they run one after
# another on one worker, as one group. Every other test (pure Python, qemu-user, loopback registries,
# sshd in its own network namespace, the CI rehearsal's pip installs) fills the other worker and the
# core a TCG guest leaves idle.
NODE_FILES = frozenset({  # tests/test_layout.py checks it against what each file starts
    "test_base_images.py", "test_distro_bootstrap.py", "test_docker_provider.py", "test_faults.py",
    "test_freshroot.py", "test_node_path.py", "test_qemu.py", "test_rehearsal.py", "test_rehearsal_snap_k3s.py",
    "test_upstream_bootstrap.py",
})


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which turns the mark into the nodeid's @group
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in NODE_FILES:
            item.add_marker(pytest.mark.xdist_group("nodes"))
