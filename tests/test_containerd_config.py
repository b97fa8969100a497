"""The containerd config the plans write, read back by real containerd binaries from Debian's
archive (1.6.20 bookworm, 1.7.24 trixie: config version 2; 2.1.9 sid: config version 3, the
version containerd 2's release tarballs read too): `containerd --config FILE config dump` merges it
over the binary's defaults, as the daemon on the node does, without starting a daemon."""
import subprocess

import pytest

from harness.bootstrap import containerd
from harness.matrix import platforms

SANDBOX = "10.0.2.2:5000/pause:3.10"
REAL = [("bookworm", (1, 6, 20)), ("trixie", (1, 7, 24)), ("sid", (2, 1, 9))]


def dump(binary, path):
    out = subprocess.run([str(binary), "--config", str(path), "config", "dump"], capture_output=True, text=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def real_containerd(debian_binary, tmp_path):
    def get(suite):
        b = debian_binary("containerd", platforms.arch("amd64"), "usr/bin/containerd", suite)
        version = subprocess.run([str(b), "--version"], capture_output=True, text=True, timeout=60).stdout
        return b, containerd.version_of(version)
    return get


@pytest.mark.parametrize("suite,version", REAL, ids=[s for s, _ in REAL])
@pytest.mark.parametrize("systemd_cgroup", [True, False])
def test_written_config_is_what_containerd_uses(suite, version, systemd_cgroup, real_containerd, tmp_path):
    binary, got = real_containerd(suite)
    assert got == version
    cfg = tmp_path / "config.toml"
    cfg.write_text(containerd.config(got, SANDBOX, "10.0.2.2:5000", systemd_cgroup))
    text = dump(binary, cfg)
    assert containerd.wrong(text, SANDBOX, systemd_cgroup) is None
    assert containerd.in_use(text) == {"sandbox": SANDBOX, "systemd_cgroup": systemd_cgroup,
                                       "cni_bin_dirs": ["/opt/cni/bin"]}


@pytest.mark.parametrize("suite,version", REAL, ids=[s for s, _ in REAL])
def test_defaults_and_the_old_sed_are_caught(suite, version, real_containerd, tmp_path):
    """containerd's own defaults (Debian's pause, cgroupfs; trixie's /usr/lib/cni) fail the read-back,
    and so does the sed the plans used to run on `config default`: on containerd 2 it changes
    nothing (config version 3 has no `sandbox_image` line)."""
    binary, got = real_containerd(suite)
    cfg = tmp_path / "config.toml"
    cfg.write_text(subprocess.run([str(binary), "config", "default"], capture_output=True, text=True,
                                  timeout=60).stdout)
    problems = containerd.wrong(dump(binary, cfg), SANDBOX, True)
    assert problems.startswith("containerd uses sandbox image ") and f"(set: {SANDBOX})" in problems
    assert "SystemdCgroup = false (set: true)" in problems
    if suite == "trixie":
        assert "CNI plugins from /usr/lib/cni (set: /opt/cni/bin)" in problems
    subprocess.run(["sed", "-i", "-e", f's|^\\( *sandbox_image = \\).*|\\1"{SANDBOX}"|', "-e",
                    "s|^\\( *SystemdCgroup = \\).*|\\1true|", str(cfg)], check=True)
    after_sed = containerd.wrong(dump(binary, cfg), SANDBOX, True)
    if version[0] >= 2:
        assert after_sed.startswith("containerd uses sandbox image registry.k8s.io/pause:")
    else:
        assert "sandbox image" not in (after_sed or "")


def test_version_of_reads_containerd_version_lines():
    assert containerd.version_of("containerd github.com/containerd/containerd/v2 2.1.9+unknown ") == (2, 1, 9)
    assert containerd.version_of("containerd github.com/containerd/containerd v2.3.4 abc") == (2, 3, 4)
    assert containerd.version_of("1.6.20~ds1-1+deb12u3") == (1, 6, 20)
    assert containerd.version_of("no version") is None
