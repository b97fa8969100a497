"""Providers: each turns a Cell into a Node (a machine, and the way to run a command on it).

PROVIDERS is the one list of provider names: matrix.yaml accepts exactly these, and a cell's
provider is made from its line here. A new provider is a module in this folder (copy local.py)
and one line below; see docs/ARCHITECTURE.md, "Adding a provider"."""
from ..common.names import Entry, Registry

PROVIDERS = Registry("provider", {
    "qemu": Entry("harness.nodes.qemu:QemuProvider", base_image=True),
    "ssh": Entry("harness.nodes.ssh:SshProvider", windows=True),
    "docker": Entry("harness.nodes.docker:DockerProvider", base_image=True),
    "local": Entry("harness.nodes.local:LocalProvider", this_machine=True),
})


def get(name: str, **options):
    """The provider `name` (options: progress, keep_nodes, lab, inventory), its module imported now."""
    return PROVIDERS.entry(name).load()(**options)
