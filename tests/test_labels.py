"""Node registration checks on real recorded Node objects (tests/fixtures/nodes) and on
edited copies of them; then the suite end to end through the plugin on those recordings."""
import copy
import subprocess
import sys

import pytest
import yaml

from harness.matrix import kube_versions, platforms
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
    node = load("amd64-kubeadm-unknown.yaml")  # a pre-1.14 kubelet: beta labels only
    v = labels.check_arch_label(node, A("amd64"))
    assert not v.ok and "found it not present (only beta.kubernetes.io/arch=amd64)" in v.message
    v = labels.check_beta_labels(node)  # nothing to disagree with: said, not failed
    assert v.ok and v.warning, v.message
    assert "beta.kubernetes.io/arch=amd64 with kubernetes.io/arch not present to compare" in v.message


def test_beta_labels_equal_pass_disagreeing_fail_absent_warn():
    good = load("arm64-minikube-v1.35.0.yaml")
    v = labels.check_beta_labels(good)
    assert v.ok and not v.warning
    assert v.message == ("node datagen-1-35: beta labels present and equal to kubernetes.io/arch=arm64, "
                         "kubernetes.io/os=linux")
    for beta, value in (("beta.kubernetes.io/arch", "amd64"), ("beta.kubernetes.io/os", "windows")):
        lying = copy.deepcopy(good)
        lying["metadata"]["labels"][beta] = value
        ga = beta.removeprefix("beta.")
        v = labels.check_beta_labels(lying)
        assert not v.ok and f"found {beta}={value} but {ga}={good['metadata']['labels'][ga]}" in v.message, v.message
    no_beta = copy.deepcopy(good)
    del no_beta["metadata"]["labels"]["beta.kubernetes.io/arch"]
    v = labels.check_beta_labels(no_beta)
    assert v.ok and v.warning and "beta.kubernetes.io/arch not present" in v.message


def test_node_without_metadata_name_is_named_by_its_hostname_label():
    node = load("arm-kubeadm-v1.14.1.yaml")  # labels only, as posted
    assert "name" not in node["metadata"]
    got = verdicts(node, "arm", "linux", "1.27")
    got["beta"] = labels.check_beta_labels(node)
    got["taints"] = labels.check_taints(node, [{"key": "k", "value": "v", "effect": "NoSchedule"}])
    got["windows"] = labels.check_windows_build(node, "10.0.20348")
    for k, v in got.items():
        assert v.message.startswith("node raspi001 (by its kubernetes.io/hostname label: no metadata.name): "), (k, v.message)
    assert labels.name({"metadata": {}}) == "(unnamed node)"


def test_kubelet_skew_against_the_control_plane_the_cell_names():
    """Real recorded kubelets against control planes of other versions (version skew policy)."""
    minikube, microk8s = load("arm64-minikube-v1.35.0.yaml"), load("amd64-microk8s-v1.32.3.yaml")
    v = labels.check_kubelet_version(minikube, REL("1.35"), REL("1.36"))
    assert v.ok and v.warning and v.message == ("node datagen-1-35: kubelet v1.35.0 is 1 minor version older than the "
                                                "control plane v1.36 (the version skew policy allows 3)")
    v = labels.check_kubelet_version(microk8s, REL("1.32"), REL("1.35"))
    assert v.ok and v.warning and "kubelet v1.32.3 is 3 minor versions older than the control plane v1.35" in v.message
    v = labels.check_kubelet_version(microk8s, REL("1.32"), REL("1.36"))
    assert not v.ok and "expected kubelet at most 3 minor versions older than the control plane v1.36" in v.message
    v = labels.check_kubelet_version(minikube, REL("1.35"), REL("1.34"))
    assert not v.ok and "expected kubelet no newer than the control plane v1.34 (version skew policy), found v1.35.0" \
        in v.message
    v = labels.check_kubelet_version(minikube, REL("1.35"), REL("1.35"))
    assert v.ok and not v.warning
    v = labels.check_kubelet_version(minikube, REL("1.36"), REL("1.36"))  # not the cell's kubelet
    assert not v.ok and "expected kubelet v1.36.x, found v1.35.0" in v.message
    v = labels.check_kubelet_version(minikube, REL("1.36"))  # no control plane named: the cell's own
    assert not v.ok and v.message == "node datagen-1-35: expected kubelet v1.36.x, found v1.35.0"
    # kubelets before 1.25 may only be two minors older
    assert (kube_versions.kubelet_max_skew((1, 24)), kube_versions.kubelet_max_skew((1, 25))) == (2, 3)


def test_edited_variants():
    good = load("arm64-minikube-v1.35.0.yaml")

    beta_only = copy.deepcopy(good)
    del beta_only["metadata"]["labels"]["kubernetes.io/arch"], beta_only["metadata"]["labels"]["kubernetes.io/os"]
    assert not labels.check_arch_label(beta_only, A("arm64")).ok

    lying = copy.deepcopy(good)
    lying["status"]["nodeInfo"]["architecture"] = "amd64"
    v = labels.check_node_info(lying, A("arm64"), "linux")
    assert not v.ok and "expected status.nodeInfo linux/arm64, found linux/amd64" in v.message
    lying_label = copy.deepcopy(good)
    lying_label["metadata"]["labels"]["kubernetes.io/arch"] = "amd64"
    v = labels.check_node_info(lying_label, A("arm64"), "linux")
    assert not v.ok and "label kubernetes.io/arch=amd64" in v.message
    lying_os = copy.deepcopy(good)
    lying_os["metadata"]["labels"]["kubernetes.io/os"] = "windows"
    v = labels.check_node_info(lying_os, A("arm64"), "linux")
    assert not v.ok and v.message == "node datagen-1-35: nodeInfo says linux/arm64 but label kubernetes.io/os=windows"
    assert labels.check_node_info(good, A("arm64"), "linux").ok

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
    win["metadata"]["labels"][labels.WINDOWS_BUILD] = "10.0.20348"
    assert labels.check_windows_build(win, "10.0.20348").ok


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


def test_suite_judges_kubelet_skew_against_the_matrix_control_plane(tmp_path):
    cell = "axes: {arch: [arm64], distro: [debian12], kubernetes: ['1.35'], bootstrapper: [kubeadm], provider: [ssh]}\n"
    rule = "control_plane:\n  - match: {arch: arm64}\n    node: {arch: amd64, distro: debian12, kubernetes: '%s'}\n"
    out = run_suite(tmp_path, cell + rule % "1.36", "arm64-minikube-v1.35.0.yaml", "-k", "kubelet")
    assert out.returncode == 0, out.stdout[-3000:]
    assert "kubelet v1.35.0 is 1 minor version older than the control plane v1.36" in out.stdout  # the warning
    out = run_suite(tmp_path, cell + rule % "1.34", "arm64-minikube-v1.35.0.yaml", "-k", "kubelet")
    assert out.returncode == 1
    assert "expected kubelet no newer than the control plane v1.34 (version skew policy), found v1.35.0" in out.stdout


def test_suite_fails_a_wrong_cell_with_named_messages(tmp_path):
    out = run_suite(tmp_path, "axes: {arch: [s390x], distro: [debian12], kubernetes: ['1.33'], "
                              "bootstrapper: [kubeadm], provider: [ssh]}\n", "arm64-minikube-v1.35.0.yaml")
    assert out.returncode == 1
    assert "expected label kubernetes.io/arch=s390x, found kubernetes.io/arch=arm64" in out.stdout
    assert "expected kubelet v1.33.x, found v1.35.0" in out.stdout


def test_recorded_taints_judged():
    node = load("amd64-kubeadm-unknown.yaml")  # a real kubeadm control plane: master NoSchedule
    assert labels.check_taints(node, [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]).ok
    v = labels.check_taints(node, [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    assert not v.ok and "found node-role.kubernetes.io/master:NoSchedule" in v.message
