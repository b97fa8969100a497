"""How the cell's node registered: arch/os labels, nodeInfo, beta labels, kubelet version,
Ready, declared taints, the Windows build label."""
import warnings

import pytest

from harness.checks import labels
from harness.common.errors import ProductFailure


@pytest.fixture
def k8s_node(cell, cluster):
    """The cell's Node object: the one the harness bootstrapped, the only one, or the one
    labelled (GA or beta) with the cell's arch."""
    nodes = cluster.nodes()
    if cluster.node_name:
        found = [n for n in nodes if labels.name(n) == cluster.node_name]
    elif len(nodes) == 1:
        found = nodes
    else:
        found = [n for n in nodes if cell.arch in (labels.labels(n).get(labels.ARCH), labels.labels(n).get(labels.BETA_ARCH))]
    if not found:
        raise ProductFailure(f"{cell.id}: expected a node for {cell.arch} among {len(nodes)} nodes, found none "
                    f"({', '.join(labels.name(n) for n in nodes) or 'empty cluster'})")
    return found[0]


def test_arch_label(k8s_node, cell):
    v = labels.check_arch_label(k8s_node, cell.platform)
    assert v.ok, v.message


def test_os_label(k8s_node, cell):
    v = labels.check_os_label(k8s_node, cell.os.os)
    assert v.ok, v.message


def test_node_info(k8s_node, cell):
    v = labels.check_node_info(k8s_node, cell.platform, cell.os.os)
    assert v.ok, v.message


def _judge(v, record_property):
    """A warning (ok, but worth saying) is recorded on the case and shown; a failure fails."""
    if v.warning:
        record_property("warning", v.message)
        warnings.warn(v.message)
    assert v.ok, v.message


def test_beta_labels(k8s_node, record_property):
    # kubelet writes both from one value: disagreeing fails, absent is a warning
    _judge(labels.check_beta_labels(k8s_node), record_property)


def test_kubelet_version(k8s_node, cell, record_property):
    # a control-plane version named by the matrix (control_plane: node: kubernetes:) is judged by the skew policy
    _judge(labels.check_kubelet_version(k8s_node, cell.release, cell.control_plane_release), record_property)


def test_ready(k8s_node):
    v = labels.check_ready(k8s_node)
    assert v.ok, v.message


def test_declared_taints(k8s_node, cell):
    if not cell.taints:
        pytest.skip(f"matrix declares no taints for {cell.id}")
    v = labels.check_taints(k8s_node, [{"key": k, "value": val, "effect": e} for k, val, e in cell.taints])
    assert v.ok, v.message


def test_windows_build_label(k8s_node, cell):
    if cell.os.os != "windows":
        pytest.skip(f"{cell.distro} is not Windows")
    v = labels.check_windows_build(k8s_node, cell.os.os_version)
    assert v.ok, v.message
