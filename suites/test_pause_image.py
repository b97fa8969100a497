"""The pause (sandbox) image: the version kubeadm expects (or the one MicroK8s or k3s ships
itself), configured in the runtime, and published for the cell's platform with configs that say
the truth."""
import warnings

import pytest

from harness.bootstrap.capabilities import BringsUpCluster, ConfiguresRuntime
from harness.checks import images
from harness.common.errors import ProductFailure
from harness.oci.client import RegistryError

_index: dict = {}


@pytest.fixture
def shipped_pause(cell, request) -> tuple[str, str]:
    """(image, tag) of the sandbox image the cell's bootstrapper configures, before any node exists:
    the release's pause from kubeadm's table, or what MicroK8s or k3s ship (their tables)."""
    from harness.plugin import _the_bootstrapper

    b = _the_bootstrapper(cell, request.config, request.getfixturevalue("_archmatrix_pool"))
    if not isinstance(b, ConfiguresRuntime):
        return "registry.k8s.io/pause", cell.release.pause
    shipped = b.shipped_pause(cell)
    if shipped is None:
        pytest.skip(f"{cell.bootstrapper} {cell.release.minor}'s pause is not in its table: the runtime "
                    f"checks read it from the node")
    return shipped


@pytest.fixture
def pause_index(cell, registry_client, image_repository, shipped_pause):
    """(reference, manifest, whose pause) of the bootstrapper's pause in <image-repository> (a mirror in upstream's
    layout: registry.k8s.io/pause -> <repo>/pause, docker.io/rancher/mirrored-pause ->
    <repo>/rancher/mirrored-pause), read once per run."""
    image, tag = shipped_pause
    ref = f"{image_repository}/{image.split('/', 1)[1]}:{tag}"
    if ref not in _index:
        try:
            _index[ref] = registry_client.manifest(ref)
        except RegistryError as e:
            _index[ref] = e
    got = _index[ref]
    if isinstance(got, RegistryError) and got.lab:
        raise got.outcome()  # unreachable, 5xx: the lab learnt nothing about the image (`error`)
    # whose pause it is, in a failure's words: kubeadm's release pause, or the bootstrapper's own
    return ref, got, cell.bootstrapper if image != "registry.k8s.io/pause" or tag != cell.release.pause else "kubeadm"


def _manifest(pause_index, cell):
    ref, m, who = pause_index
    if isinstance(m, RegistryError):  # the registry answered: no such tag, or not for us (`failed`)
        if m.status == 404:
            raise ProductFailure(f"{ref}: expected the pause image {who} {cell.release.minor} pulls, "
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


def test_runtime_sandbox_image(cell, node, runtime, shipped_pause):
    """The sandbox image the node's runtime is configured with is the release's pause version (as
    the installed kubeadm lists it, where there is one; MicroK8s' and k3s' own, from their tables)."""
    verdict = images.check_sandbox_image(f"{cell.id} runtime", runtime.sandbox_image(node, cell),
                                         runtime.expected_pause(node, cell), image=shipped_pause[0])
    assert verdict.ok, verdict.message


@pytest.mark.archmatrix_own_pause  # deselected for bootstrappers that configure kubeadm's pause
def test_pause_agrees_with_kubeadm(cell, shipped_pause, record_property):
    """A bootstrapper shipping its own pause (MicroK8s, k3s) may differ from kubeadm's for the
    release: a warning naming both, not a failure."""
    image, tag = shipped_pause
    verdict = images.check_pause_agrees(f"{cell.id} {cell.bootstrapper}", f"{image}:{tag}", cell.release.pause,
                                        cell.release.minor)
    if verdict.warning:
        record_property("warning", verdict.message)
        warnings.warn(verdict.message)
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
