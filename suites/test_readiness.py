"""Port readiness as a suite: every image kubeadm needs for the cell's release exists for the
cell's platform in --image-repository, and its config says that platform."""
import pytest

from harness.oci import readiness
from harness.common.errors import InfraError

NAMES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "pause", "etcd", "coredns")
_rows: dict = {}


@pytest.fixture(params=NAMES)
def release_image(request, cell, registry_client, image_repository):
    key = (cell.kubernetes, cell.os.os, cell.os.os_version, cell.arch)
    if key not in _rows:
        rows = readiness.check(cell.release, [cell.platform], image_repository, os=cell.os.os,
                               os_version=cell.os.os_version, client=registry_client)
        _rows[key] = {r.image: r for r in rows}
    row = _rows[key][request.param]
    if row.status == "error":  # the registry could not be reached or could not answer
        raise InfraError(row.message, retryable=False)
    return row


def test_release_image_available(release_image):
    assert release_image.ok, release_image.message
