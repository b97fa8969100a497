"""Bootstrappers turn a Node into a Cluster (kubetest2's deployer `Up`) in steps a user can read
(`archmatrix plan CELL`), and say which binaries they put on the node.

BOOTSTRAPPERS is the one list of bootstrapper names: matrix.yaml accepts exactly these, and a
cell's bootstrapper is made from its line here (imported only when a cell uses it)."""
from ..common.names import Entry, Registry

BOOTSTRAPPERS = Registry("bootstrapper", {
    "none": Entry("harness.bootstrap.none:NoBootstrapper", windows=True),
    "distro": Entry("harness.bootstrap.distro:DistroBootstrapper"),
    "kubeadm": Entry("harness.bootstrap.kubeadm:KubeadmBootstrapper", windows=True),
    "microk8s": Entry("harness.bootstrap.microk8s:MicroK8sBootstrapper"),
    "k3s": Entry("harness.bootstrap.k3s:K3sBootstrapper"),
})


def get(name: str, options=None, lab=None):
    """The bootstrapper `name` with the run's options and its Lab (the services it may start)."""
    return BOOTSTRAPPERS.entry(name).load()(options, lab)
