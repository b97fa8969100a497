"""Node registration checks on real recorded Node objects (tests/fixtures/nodes) and on
edited copies of them; then the suite end to end through the plugin on those recordings."""
import copy
import subprocess
import sys

import pytest
import yaml

from harness import kube_versions, platforms
from harness.checks import labels, placement
from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "nodes"


def load(name):
    return yaml.safe_load((FIXTURES / name).read_text())


A = platforms.arch
REL = kube_versions.resolve

# fixture -> (arch, os, release, expected verdicts: check -> ok?)
CASES = {
    "arm64-minikube-v1.35.0.yaml": ("arm64", "linux", "1.35",
                                    dict(arch=True, os=True, info=True, kubelet=True, ready=True)),
    "amd64-microk8s-v1.32.3.yaml": ("amd64", "linux", "1.32",
                                    dict(arch=True, os=True, info=True, kubelet=True, ready=True)),
    "amd64-k3s-v1.35.4+k3s1.yaml": ("amd64", "linux", "1.35",
                                    dict(arch=True, os=True, info=False, kubelet=False, ready=False)),
    "amd64-kubeadm-unknown.yaml": ("amd64", "linux", "1.27",
                                   dict(arch=False, os=False, info=False, kubelet=False, ready=False)),
    "arm-kubeadm-v1.14.1.yaml": ("arm", "linux", "1.27",
                                 dict(arch=True, os=True, info=False, kubelet=False, ready=False)),
    "amd64-windows-acs-engine-v1.9.0-alpha.0.yaml": ("amd64", "windows", "1.27",
                                                     dict(arch=False, os=False, info=True, kubelet=False, ready=False)),
}


def verdicts(node, arch, os, minor):
    return dict(arch=labels.check_arch_label(node, A(arch)), os=labels.check_os_label(node, os),
                info=labels.check_node_info(node, A(arch), os),
                kubelet=labels.check_kubelet_version(node, REL(minor)), ready=labels.check_ready(node))


def test_every_fixture_is_covered():
    assert {p.name for p in FIXTURES.glob("*.yaml")} == set(CASES)


@pytest.mark.parametrize("fixture", sorted(CASES))
def test_recorded_node_judged_right(fixture):
    arch, os, minor, want = CASES[fixture]
    got = verdicts(load(fixture), arch, os, minor)
    assert {k: v.ok for k, v in got.items()} == want, {k: v.message for k, v in got.items()}
    for v in got.values():
        assert "expected" in v.message and "node" in v.message


def test_beta_only_node_names_what_it_found():
    v = labels.check_arch_label(load("amd64-kubeadm-unknown.yaml"), A("amd64"))
    assert "found it not present (only beta.kubernetes.io/arch=amd64)" in v.message
    assert labels.check_beta_labels(load("amd64-kubeadm-unknown.yaml")).warning is False


def test_windows_node_info_and_missing_build_label():
    node = load("amd64-windows-acs-engine-v1.9.0-alpha.0.yaml")
    assert labels.check_node_info(node, A("amd64"), "windows").ok
    v = labels.check_windows_build(node, "10.0.20348")
    assert not v.ok and "not present" in v.message
    v = labels.check_kubelet_version(node, REL("1.27"))
    assert "v1.9.0-alpha.0" in v.message


def test_edited_variants():
    good = load("arm64-minikube-v1.35.0.yaml")

    beta_only = copy.deepcopy(good)
    del beta_only["metadata"]["labels"]["kubernetes.io/arch"], beta_only["metadata"]["labels"]["kubernetes.io/os"]
    assert not labels.check_arch_label(beta_only, A("arm64")).ok

    no_beta = copy.deepcopy(good)
    del no_beta["metadata"]["labels"]["beta.kubernetes.io/arch"]
    v = labels.check_beta_labels(no_beta)
    assert v.ok and v.warning and "beta.kubernetes.io/arch not present" in v.message

    lying = copy.deepcopy(good)
    lying["status"]["nodeInfo"]["architecture"] = "amd64"
    v = labels.check_node_info(lying, A("arm64"), "linux")
    assert not v.ok and "expected status.nodeInfo linux/arm64, found linux/amd64" in v.message
    lying_label = copy.deepcopy(good)
    lying_label["metadata"]["labels"]["kubernetes.io/arch"] = "amd64"
    v = labels.check_node_info(lying_label, A("arm64"), "linux")
    assert not v.ok and "label kubernetes.io/arch=amd64" in v.message

    not_ready = copy.deepcopy(good)
    ready = next(c for c in not_ready["status"]["conditions"] if c["type"] == "Ready")
    ready.update(status="False", reason="KubeletNotReady", message="container runtime network not ready")
    v = labels.check_ready(not_ready)
    assert not v.ok and "Ready=False (KubeletNotReady: container runtime network not ready)" in v.message

    tainted = copy.deepcopy(good)
    tainted["spec"]["taints"] = [{"key": "kubernetes.io/arch", "value": "arm64", "effect": "NoSchedule"}]
    declared = [{"key": "kubernetes.io/arch", "value": "arm64", "effect": "NoSchedule"}]
    assert labels.check_taints(tainted, declared).ok
    v = labels.check_taints(good, declared)
    assert not v.ok and "found no taints" in v.message

    win = copy.deepcopy(good)
    win["metadata"]["labels"][labels.WINDOWS_BUILD] = "10.0.17763"
    v = labels.check_windows_build(win, "10.0.20348")
    assert not v.ok and "found 10.0.17763" in v.message


def test_placement_verdicts():
    pod = placement.pinned_pod("p", "s390x", "registry.k8s.io/pause:3.10")
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/arch": "s390x"} and "tolerations" not in pod["spec"]
    # the scheduler's message format (pkg/scheduler/framework/plugins/tainttoleration)
    pending = dict(pod, status={"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                   "1 node(s) had untolerated taint {arch: s390x}."}]})
    assert placement.check_refused_by_taint(pending, "arch").ok
    assert not placement.check_refused_by_taint(pending, "os").ok
    node = load("arm64-minikube-v1.35.0.yaml")
    running = dict(pod, spec=dict(pod["spec"], nodeName=labels.name(node)), status={"phase": "Running"})
    assert placement.check_running_on_arch(running, node, "arm64").ok
    v = placement.check_running_on_arch(running, node, "s390x")
    assert not v.ok and "expected Running on a s390x node, found Running on" in v.message


def run_suite(tmp_path, matrix_text, fixture, *extra):
    m = tmp_path / "matrix.yaml"
    m.write_text(matrix_text)
    return subprocess.run([sys.executable, "-m", "pytest", "suites/test_node_registration.py", "suites/test_placement.py",
                           "--matrix", str(m), "--recorded-nodes", str(FIXTURES / fixture), "-rA",
                           "-p", "no:cacheprovider", *extra], cwd=ROOT, capture_output=True, text=True)


def test_suite_passes_a_good_recorded_node(tmp_path):
    out = run_suite(tmp_path, "axes: {arch: [arm64], distro: [debian12], kubernetes: ['1.35'], "
                              "bootstrapper: [kubeadm], provider: [ssh]}\n", "arm64-minikube-v1.35.0.yaml")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "6 passed" in out.stdout
    assert "recorded cluster: no API server to schedule pods on" in out.stdout


def test_suite_fails_a_wrong_cell_with_named_messages(tmp_path):
    out = run_suite(tmp_path, "axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.33'], "
                              "bootstrapper: [kubeadm], provider: [ssh]}\n", "arm64-minikube-v1.35.0.yaml")
    assert out.returncode == 1
    assert "expected label kubernetes.io/arch=s390x, found kubernetes.io/arch=arm64" in out.stdout
    assert "expected kubelet v1.33.x, found v1.35.0" in out.stdout
