"""The pause (sandbox) image: the version kubeadm expects, configured in the runtime, and
published for the cell's platform with configs that say the truth."""
import pytest

from harness.bootstrap.capabilities import BringsUpCluster
from harness.checks import images
from harness.common.errors import InfraError
from harness.oci.client import RegistryError

_index: dict = {}


@pytest.fixture
def pause_index(cell, registry_client, image_repository):
    """(reference, manifest) of <image-repository>/pause:<release's pause>, read once per run."""
    ref = f"{image_repository}/pause:{cell.release.pause}"
    if ref not in _index:
        try:
            _index[ref] = registry_client.manifest(ref)
        except RegistryError as e:
            _index[ref] = e
    got = _index[ref]
    if isinstance(got, RegistryError) and got.status != 404:
        raise InfraError(str(got))  # registry unreachable or broken: not the product's fault
    return ref, got


def _manifest(pause_index, cell):
    ref, m = pause_index
    if isinstance(m, RegistryError):  # 404: the release's pause tag is missing: a product failure
        pytest.fail(f"{ref}: expected the pause image kubeadm {cell.release.minor} pulls, found no such tag")
    return ref, m


def test_pause_is_multi_arch(pause_index, cell):
    ref, m = _manifest(pause_index, cell)
    verdict = images.check_is_index(ref, m.media_type, m.body)
    assert verdict.ok, verdict.message


def test_pause_has_cell_platform(pause_index, cell):
    ref, m = _manifest(pause_index, cell)
    if not m.is_index:
        pytest.fail(f"{ref}: expected an index with {images.platform_of(cell.platform.oci_platform(cell.os.os))}, "
                    f"found a single-arch image")
    verdict = images.check_has_platform(ref, m.body, cell.platform, cell.os.os, cell.os.os_version)
    assert verdict.ok, verdict.message


def test_pause_config_matches_entry(pause_index, cell, registry_client):
    ref, m = _manifest(pause_index, cell)
    entry = images.find_entry(m.body, cell.platform, cell.os.os, cell.os.os_version) if m.is_index else None
    if entry is None:
        pytest.skip(f"{ref}: no entry for {cell.arch} (reported by test_pause_has_cell_platform)")
    image = registry_client.manifest(ref, entry["digest"])
    verdict = images.check_config(f"{ref}@{entry['digest']}", entry["platform"], registry_client.config(ref, image))
    assert verdict.ok, verdict.message


def test_runtime_sandbox_image(cell, node, runtime):
    """The sandbox image the node's runtime is configured with is the release's pause version (as
    the installed kubeadm lists it, where there is one)."""
    verdict = images.check_sandbox_image(f"{cell.id} runtime", runtime.sandbox_image(node, cell),
                                         runtime.expected_pause(node, cell))
    assert verdict.ok, verdict.message


def test_runtime_pulled_pause_is_node_arch(cell, node, runtime, request):
    """The node's own runtime pulled the sandbox image: the config it holds is the node's platform."""
    if isinstance(runtime, BringsUpCluster):  # a kubelet's runtime pulls it for the cluster's first pod
        request.getfixturevalue("cluster")
    ref, config = runtime.pulled_sandbox_config(node, cell)
    assert ref, f"{cell.id}: expected the runtime to be configured with a sandbox image, found none"
    assert config, f"{cell.id}: expected the runtime to hold {ref}, found it not pulled"
    verdict = images.check_config(f"{ref} as pulled on the node", cell.platform.oci_platform(cell.os.os), config)
    assert verdict.ok, verdict.message
