import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness import debian, platforms, sysdeps

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parent.parent


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
    """The program `tool` (its package from harness/sysdeps.py, the deps table)."""
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


@pytest.fixture(scope="session", autouse=True)
def nothing_leaks():
    """Every service a test starts is stopped by its own PID: none may outlive the session."""
    before = _our_processes()
    yield
    import time

    for _ in range(20):  # give SIGTERMed processes a moment to exit
        left = _our_processes() - before
        if not left:
            return
        time.sleep(0.25)
    pytest.fail(f"processes left running after the tests: {sorted(left, key=str)}")


def registry_and_layout(tmp_path_factory):
    """A fresh loopback docker-registry and an empty OCI layout to seed it from (skips, saying
    which package is missing, where the tools are not installed)."""
    from harness.images.oci import Layout
    from harness.localregistry import LocalRegistry

    need("docker-registry")
    need("skopeo")
    return LocalRegistry(tmp_path_factory.mktemp("registry")), Layout(tmp_path_factory.mktemp("layout"))


def image_for(arch: str, os: str = "linux", **kw):
    """A one-file image for `arch` whose content names the arch (distinct digests per arch)."""
    from harness.images.oci import Image

    return Image(platforms.arch(arch).oci_platform(os), {"/pause": f"pause for {arch}".encode()}, **kw)
