"""Registry client and image checks against Debian's docker-registry on loopback, seeded by
skopeo with good and deliberately broken multi-arch images."""
import subprocess
import sys

import pytest

from harness.matrix import platforms
from harness.oci import client as registry
from harness.checks import images
from harness.oci.layout import Image, push
from harness.services.registry import LocalRegistry
from conftest import ROOT, image_for, registry_and_layout

ARCHES = ("amd64", "arm64", "arm", "ppc64le", "s390x")


img = image_for


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    r, lay = registry_and_layout(tmp_path_factory)
    lay.tag("good", [img(a) for a in ARCHES])
    lay.tag("no-s390x", [img(a) for a in ARCHES if a != "s390x"])
    lay.tag("liar", [img(a) if a != "ppc64le" else img(a, config_platform={"os": "linux", "architecture": "amd64"})
                     for a in ARCHES])
    lay.tag("single", [img("amd64")], multi_arch=False)
    win = Image({"os": "windows", "architecture": "amd64", "os.version": "10.0.20348.2113"}, {"/pause.exe": b"MZ"},
                entrypoint=("/pause.exe",))
    lay.tag("windows", [img("amd64"), win])
    lay.tag("v8", [Image({"os": "linux", "architecture": "arm64", "variant": "v8"}, {"/pause": b"x"})])
    lay.tag("arm-no-variant", [img("amd64"), Image({"os": "linux", "architecture": "arm"}, {"/pause": b"arm"})])
    lay.tag("armv6", [img("amd64"), Image({"os": "linux", "architecture": "arm", "variant": "v6"}, {"/pause": b"v6"})])
    for tag in ("good", "no-s390x", "liar", "single", "windows", "v8", "arm-no-variant", "armv6"):
        push(lay, tag, f"{r.host}/pause:{tag}")
    push(lay, "good", f"{r.host}/pause:v2s2", docker_v2s2=True)
    yield r
    r.stop()
    assert r.proc.poll() is not None  # stopped by its own PID


@pytest.fixture(scope="module")
def client():
    return registry.Client(timeout=5, retries=1)


def index(client, reg, tag):
    ref = f"{reg.host}/pause:{tag}"
    return ref, client.manifest(ref)


@pytest.mark.parametrize("tag,media", [("good", registry.OCI_INDEX), ("v2s2", registry.DOCKER_LIST)])
def test_good_index_every_arch_present_and_configs_true(client, reg, tag, media):
    ref, m = index(client, reg, tag)
    assert m.media_type == media
    assert images.check_is_index(ref, m.media_type, m.body).ok
    for a in ARCHES:
        row = platforms.arch(a)
        assert images.check_has_platform(ref, m.body, row).ok
        entry = images.find_entry(m.body, row)
        config = client.config(ref, client.manifest(ref, entry["digest"]))
        v = images.check_config(ref, entry["platform"], config)
        assert v.ok, v.message


def test_missing_arch_is_named(client, reg):
    ref, m = index(client, reg, "no-s390x")
    v = images.check_has_platform(ref, m.body, platforms.arch("s390x"))
    assert not v.ok
    assert "expected an entry for linux/s390x" in v.message and "linux/arm/v7" in v.message and ref in v.message
    assert images.check_has_platform(ref, m.body, platforms.arch("arm")).ok


def test_lying_config_is_caught(client, reg):
    ref, m = index(client, reg, "liar")
    entry = images.find_entry(m.body, platforms.arch("ppc64le"))
    v = images.check_config(ref, entry["platform"], client.config(ref, client.manifest(ref, entry["digest"])))
    assert not v.ok
    assert "index entry says linux/ppc64le, image config says linux/amd64" in v.message


def test_single_arch_tag_is_flagged(client, reg):
    ref, m = index(client, reg, "single")
    v = images.check_is_index(ref, m.media_type, m.body)
    assert not v.ok and "single-arch image" in v.message and m.media_type == registry.OCI_MANIFEST


def test_windows_entry_needs_its_os_version(client, reg):
    ref, m = index(client, reg, "windows")
    amd64 = platforms.arch("amd64")
    assert images.check_has_platform(ref, m.body, amd64, "windows", "10.0.20348").ok
    v = images.check_has_platform(ref, m.body, amd64, "windows", "10.0.17763")
    assert not v.ok and "10.0.20348.2113" in v.message


def test_arm64_v8_variant_equals_no_variant(client, reg):
    ref, m = index(client, reg, "v8")
    assert images.check_has_platform(ref, m.body, platforms.arch("arm64")).ok
    ref, m = index(client, reg, "good")  # linux/arm64 with no variant
    v = images.check_has_platform(ref, m.body, platforms.arch("arm64"))
    assert v.ok and "containerd" not in v.message
    ref, m = index(client, reg, "single")
    assert not images.check_has_platform(ref, m.body, platforms.arch("arm64")).ok


def test_arm_with_no_variant_is_what_containerd_pulls_for_arm_v7(client, reg):
    """containerd/platforms normalizeArch: arm with no variant is arm/v7; v6 is another platform."""
    arm = platforms.arch("arm")
    ref, m = index(client, reg, "arm-no-variant")
    v = images.check_has_platform(ref, m.body, arm)
    assert v.ok, v.message
    assert "the entry says linux/arm with no variant, which containerd pulls for arm/v7" in v.message
    entry = images.find_entry(m.body, arm)
    assert images.check_config(ref, entry["platform"], client.config(ref, client.manifest(ref, entry["digest"]))).ok
    ref, m = index(client, reg, "armv6")
    v = images.check_has_platform(ref, m.body, arm)
    assert not v.ok and "expected an entry for linux/arm/v7, found linux/amd64, linux/arm/v6" in v.message
    ref, m = index(client, reg, "good")  # linux/arm/v7 says its variant: no note needed
    v = images.check_has_platform(ref, m.body, arm)
    assert v.ok and "containerd" not in v.message


def test_missing_tag_and_dead_registry_are_clear_errors(client, reg):
    with pytest.raises(registry.RegistryError, match=r"pause:nope: not found \(404\)") as e:
        client.manifest(f"{reg.host}/pause:nope")
    assert e.value.status == 404
    dead = LocalRegistry()
    host = dead.host
    dead.stop()
    with pytest.raises(registry.RegistryError, match=f"cannot reach {host}"):
        client.manifest(f"{host}/pause:3.10")


def test_reference_parsing():
    r = registry.parse("registry.k8s.io/pause:3.10")
    assert (r.host, r.repository, r.tag) == ("registry.k8s.io", "pause", "3.10")
    r = registry.parse("127.0.0.1:5000/a/b@sha256:" + "0" * 64)
    assert (r.host, r.repository, r.digest[:7]) == ("127.0.0.1:5000", "a/b", "sha256:")
    assert registry.parse("busybox").repository == "library/busybox"
    assert registry.parse("registry.k8s.io/coredns/coredns:v1.11.3").repository == "coredns/coredns"


def test_sandbox_image_check_on_containerds_real_config(tmp_path):
    """containerd's own default config names another pause than the release's; the config every
    bootstrapper writes (bootstrap/containerd.py) makes it the release's, as containerd reads it back."""
    import re

    from conftest import need
    from harness.bootstrap import containerd

    need("containerd")
    cfg = tmp_path / "config.toml"
    cfg.write_text(subprocess.run(["containerd", "config", "default"], capture_output=True, text=True, check=True).stdout)

    def configured():
        return re.search(r'^\s*sandbox_image\s*=\s*"([^"]+)"', cfg.read_text(), re.M)[1]

    default = configured()
    v = images.check_sandbox_image("containerd's default", default, "3.10")
    assert not v.ok and v.message == f"containerd's default: expected sandbox image pause:3.10, found {default}"
    version = subprocess.run(["containerd", "--version"], capture_output=True, text=True, check=True).stdout
    steps = containerd.steps("registry.k8s.io/pause:3.10", facts={"containerd_version": version})
    write = next(s for s in steps if containerd.CONFIG in s.command)
    subprocess.run(["sh", "-c", write.command.replace(containerd.CONFIG, str(cfg))], check=True)
    dump = subprocess.run(["containerd", "--config", str(cfg), "config", "dump"], capture_output=True, text=True,
                          check=True).stdout
    assert images.check_sandbox_image("written", containerd.in_use(dump)["sandbox"], "3.10").ok


def test_sandbox_image_check():
    assert images.check_sandbox_image("n", "registry.k8s.io/pause:3.10", "3.10").ok
    v = images.check_sandbox_image("n", "registry.k8s.io/pause:3.9", "3.10")
    assert not v.ok and "expected sandbox image pause:3.10, found registry.k8s.io/pause:3.9" in v.message
    assert not images.check_sandbox_image("n", None, "3.10").ok


def _suite(reg, tag, *extra):
    """Run the real pause suite on this machine (local provider) against a seeded repository."""
    # the suite reads <repository>/pause:<release pause>: alias the seeded tag to that name
    pause = platforms and __import__("harness.matrix.kube_versions", fromlist=["x"]).resolve("latest").pause
    subprocess.run(["skopeo", "copy", "--all", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{reg.host}/pause:{tag}", f"docker://{reg.host}/{tag}/pause:{pause}"], check=True)
    return subprocess.run([sys.executable, "-m", "pytest", "suites/test_pause_image.py", "--provider", "local",
                           "--image-repository", f"{reg.host}/{tag}", "-rA", "-p", "no:cacheprovider", *extra],
                          cwd=ROOT, capture_output=True, text=True)


def test_pause_suite_passes_a_good_repository(reg):
    out = _suite(reg, "good")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "3 passed" in out.stdout and "configures no container runtime" in out.stdout


def test_pause_suite_fails_a_broken_repository(reg):
    out = _suite(reg, "single")
    assert out.returncode == 1, out.stdout[-3000:]
    assert "expected a multi-arch index or manifest list, found a single-arch image" in out.stdout


def test_loopback_detection_decides_plain_http():
    from harness.oci.client import _is_loopback

    assert all(map(_is_loopback, ["127.0.0.1:5000", "[::1]:5000", "::1", "localhost:5000", "127.1.2.3"]))
    assert not any(map(_is_loopback, ["registry.k8s.io", "10.0.0.1:5000", "[fd00::1]:5000"]))
