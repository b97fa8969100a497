"""The pause (sandbox) image: the version kubeadm expects, configured in the runtime, and
published for the cell's platform with configs that say the truth."""
import pytest

from harness.bootstrap.capabilities import BringsUpCluster
from harness.checks import images
from harness.common.errors import ProductFailure
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
    if isinstance(got, RegistryError) and got.lab:
        raise got.outcome()  # unreachable, 5xx: the lab learnt nothing about the image (`error`)
    return ref, got


def _manifest(pause_index, cell):
    ref, m = pause_index
    if isinstance(m, RegistryError):  # the registry answered: no such tag, or not for us (`failed`)
        if m.status == 404:
            raise ProductFailure(f"{ref}: expected the pause image kubeadm {cell.release.minor} pulls, "
                                 f"found no such tag")
        raise m.outcome()
    return ref, m


@pytest.fixture
def pause_entry(pause_index, cell, registry_client):
    """(reference, the index's entry for the cell's platform, that image's config), read before the
    test judges them: a registry that cannot answer here is the lab's (`error`), one that says the
    entry's image is gone is the product's (`failed`)."""
    ref, m = _manifest(pause_index, cell)
    entry = images.find_entry(m.body, cell.platform, cell.os.os, cell.os.os_version) if m.is_index else None
    if entry is None:
        pytest.skip(f"{ref}: no entry for {cell.arch} (reported by test_pause_has_cell_platform)")
    try:
        config = registry_client.config(ref, registry_client.manifest(ref, entry["digest"]))
    except RegistryError as e:
        raise e.outcome() from None
    return ref, entry, config


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


def test_pause_config_matches_entry(pause_entry):
    ref, entry, config = pause_entry
    verdict = images.check_config(f"{ref}@{entry['digest']}", entry["platform"], config)
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
