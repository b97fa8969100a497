"""Workload placement on a live cluster: a pod pinned to the cell's arch runs there with the
multi-arch pause image; on a node tainted for its arch an untolerated pod stays Pending."""
import time
import uuid

import pytest

from harness.checks import labels, placement

WAIT_RUNNING = 180  # s: image pull + start under emulation
WAIT_PENDING = 20  # s: the scheduler decides in well under this


@pytest.fixture
def live_api(cluster):
    if cluster.kind != "live":
        pytest.skip(f"{cluster.kind} cluster: no API server to schedule pods on")
    return cluster.api()


def _wait(api, name, until, seconds):
    deadline = time.monotonic() + seconds
    while True:
        pod = api.api_client.sanitize_for_serialization(api.read_namespaced_pod(name, "default"))
        if until(pod) or time.monotonic() > deadline:
            return pod
        time.sleep(2)


@pytest.fixture
def pod(live_api, cell, request):
    repo = request.getfixturevalue("image_repository")  # after live_api: a recorded cluster skips first
    name = f"archmatrix-{cell.arch}-{uuid.uuid4().hex[:6]}"
    manifest = placement.pinned_pod(name, cell.arch, f"{repo}/pause:{cell.release.pause}")
    live_api.create_namespaced_pod("default", manifest)
    yield name
    live_api.delete_namespaced_pod(name, "default", grace_period_seconds=0)


def test_pinned_pod_runs_on_its_arch(live_api, pod, cell, cluster):
    tainted = [n for n in cluster.nodes() if labels.labels(n).get(labels.ARCH) == cell.arch
               and any(t.get("effect") == "NoSchedule" for t in (n.get("spec") or {}).get("taints") or [])]
    if tainted and len(tainted) == len([n for n in cluster.nodes() if labels.labels(n).get(labels.ARCH) == cell.arch]):
        pytest.skip(f"every {cell.arch} node is tainted NoSchedule: see test_taint_refuses_untolerated_pod")
    got = _wait(live_api, pod, lambda p: p.get("status", {}).get("phase") in ("Running", "Failed"), WAIT_RUNNING)
    node = next((n for n in cluster.nodes() if labels.name(n) == got.get("spec", {}).get("nodeName")), None)
    v = placement.check_running_on_arch(got, node, cell.arch)
    assert v.ok, v.message


def test_taint_refuses_untolerated_pod(live_api, pod, cell, cluster):
    if not cell.taints:
        pytest.skip(f"matrix declares no taints for {cell.id}")
    key = cell.taints[0][0]
    got = _wait(live_api, pod, lambda p: any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                                             for c in p.get("status", {}).get("conditions") or []), WAIT_PENDING)
    v = placement.check_refused_by_taint(got, key)
    assert v.ok, v.message
