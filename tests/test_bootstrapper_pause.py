"""The pause MicroK8s and k3s ship themselves (#15: every bootstrapper that configures a runtime
reports its sandbox image): their tables against MicroK8s' real containerd templates at every tag
of the canonical/microk8s mirror, k3s' default per version, and the pause suite on a real
docker-registry: a bootstrapper's pause that kubeadm does not use is a warning naming both, one the
registry lacks fails."""
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, image_for, registry_and_layout
from harness.bootstrap import k3s, microk8s
from harness.checks import images
from harness.common.errors import InfraError
from harness.matrix import kube_versions
from harness.oci.layout import push
from harness.rehearsal.upstream_copy import git_show


def _template(tag):
    try:
        return git_show("canonical/microk8s", tag, microk8s.TEMPLATE_SOURCE).decode()
    except InfraError as e:
        pytest.skip(f"MicroK8s' real templates are read from a local mirror: {e}")


@pytest.mark.parametrize("minor", sorted(microk8s.PAUSE, key=lambda m: int(m.split(".")[1])))
def test_microk8s_table_is_what_its_template_configures(minor):
    """Every track in the table: the template at its tag configures registry.k8s.io/pause:<table's>."""
    assert microk8s.template_sandbox(_template(f"v{minor}")) == f"{microk8s.PAUSE_IMAGE}:{microk8s.PAUSE[minor]}"


def test_microk8s_template_sandbox_reads_the_real_file_and_refuses_garbage():
    assert microk8s.template_sandbox(_template("v1.31")) == "registry.k8s.io/pause:3.7"
    assert microk8s.template_sandbox(_template("v1.32")) == "registry.k8s.io/pause:3.10"
    assert microk8s.template_sandbox("version = 2\n") is None
    assert microk8s.template_sandbox("not [toml") is None


def test_k3s_pause_per_version():
    assert k3s.shipped_pause_tag("1.32", "v1.32.13+k3s1") == "3.6"  # no backport to 1.32
    assert k3s.shipped_pause_tag("1.33", "v1.33.12+k3s1") == "3.6"
    assert k3s.shipped_pause_tag("1.33", "v1.33.13+k3s1") == "3.10.2"  # k3s-io/k3s#14392
    assert k3s.shipped_pause_tag("1.36", None) == "3.10.2"  # the channel installs the newest patch
    assert k3s.shipped_pause_tag("1.99", None) is None
    help_text = ('   --pause-image value  (agent/runtime) Customized pause image for containerd or docker sandbox '
                 '(default: "rancher/mirrored-pause:3.6")\n')
    assert k3s.help_pause(help_text) == "rancher/mirrored-pause:3.6"
    assert k3s.qualified("rancher/mirrored-pause:3.6") == "docker.io/rancher/mirrored-pause:3.6"
    assert k3s.qualified("registry.k8s.io/pause:3.10") == "registry.k8s.io/pause:3.10"
    assert k3s.help_pause("   --snapshotter value  (default: \"overlayfs\")") is None


def test_a_pause_kubeadm_does_not_use_is_a_warning_naming_both():
    mk131 = microk8s.template_sandbox(_template("v1.31"))  # the real 1.31 template: pause:3.7
    v = images.check_pause_agrees("c microk8s", mk131, kubeadm_versions_pause("1.31"), "1.31")
    assert v.ok and v.warning
    assert v.message == "c microk8s: ships registry.k8s.io/pause:3.7, kubeadm 1.31 uses pause:3.10"
    mk132 = microk8s.template_sandbox(_template("v1.32"))  # 3.10, as kubeadm 1.32
    v = images.check_pause_agrees("c microk8s", mk132, kubeadm_versions_pause("1.32"), "1.32")
    assert v.ok and not v.warning


def test_sandbox_check_names_k3s_image():
    assert images.check_sandbox_image("n", "docker.io/rancher/mirrored-pause:3.6", "3.6",
                                      image="docker.io/rancher/mirrored-pause").ok
    v = images.check_sandbox_image("n", "registry.k8s.io/pause:3.6", "3.6", image="docker.io/rancher/mirrored-pause")
    assert not v.ok and "expected sandbox image mirrored-pause:3.6, found registry.k8s.io/pause:3.6" in v.message


def kubeadm_versions_pause(minor):
    return kube_versions.resolve(minor).pause


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A real docker-registry with MicroK8s 1.31's pause (3.7) under mk/ and k3s 1.32's
    (rancher/mirrored-pause:3.6) under k3s/; nothing under empty/."""
    reg, lay = registry_and_layout(tmp_path_factory)
    lay.tag("p", [image_for("amd64"), image_for("s390x")])
    push(lay, "p", f"{reg.host}/mk/pause:3.7")
    push(lay, "p", f"{reg.host}/k3s/rancher/mirrored-pause:3.6")
    yield reg
    reg.stop()


def _suite(tmp_path, bootstrapper, minor, repository):
    tmp_path.mkdir(parents=True, exist_ok=True)
    m = tmp_path / "m.yaml"
    m.write_text(f"axes: {{arch: [amd64], distro: [debian12], kubernetes: ['{minor}'], "
                 f"bootstrapper: [{bootstrapper}], provider: [qemu]}}\n")
    # only the checks needing no node: the runtime's own are on real nodes (test_rehearsal_snap_k3s)
    return subprocess.run([sys.executable, "-m", "pytest", "suites/test_pause_image.py", "--matrix", str(m),
                           "--image-repository", repository, "-k", "not runtime", "-rA", "-p", "no:cacheprovider",
                           "-W", "default"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ARCHMATRIX_RELEASES": "table"})


def test_pause_suite_checks_microk8s_own_pause_and_warns(seeded, tmp_path):
    out = _suite(tmp_path, "microk8s", "1.31", f"{seeded.host}/mk")
    assert out.returncode == 0, out.stdout[-3000:]
    assert re.search(r"\b4 passed", out.stdout), out.stdout[-3000:]
    assert "ships registry.k8s.io/pause:3.7, kubeadm 1.31 uses pause:3.10" in out.stdout


def test_pause_suite_fails_when_k3s_pause_is_not_published(seeded, tmp_path):
    ok = _suite(tmp_path / "ok", "k3s", "1.32", f"{seeded.host}/k3s")
    assert ok.returncode == 0 and "ships docker.io/rancher/mirrored-pause:3.6, kubeadm 1.32 uses pause:3.10" \
        in ok.stdout, ok.stdout[-3000:]
    missing = _suite(tmp_path / "missing", "k3s", "1.32", f"{seeded.host}/mk")
    assert missing.returncode == 1
    assert "mk/rancher/mirrored-pause:3.6: expected the pause image k3s 1.32 pulls, found no such tag" in missing.stdout
