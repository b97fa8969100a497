"""The PATH a plan's commands are found on, read on real QEMU nodes the way plans run commands
(the node transport: ssh, a non-login shell): bootstrap/steps.py's NODE_PATH and BASE_COMMANDS
are what Debian 12 and 13 nodes really have, and /snap/bin is not on it."""
import pytest

from harness.bootstrap.steps import BASE_COMMANDS, NODE_PATH
from harness.matrix import platforms
from harness.matrix.cells import Cell
from harness.nodes import qemu
from harness.nodes.images import build as images
from conftest import need


@pytest.mark.slow
@pytest.mark.parametrize("distro", ["debian12", "debian13"])
def test_node_path_and_base_commands_on_a_real_node(distro, tmp_path):
    need("mmdebstrap")
    images.build(platforms.arch("amd64"), platforms.distro(distro), progress=print)
    node = qemu.QemuProvider(progress=print).provision(Cell("amd64", distro, "1.32", "none", "qemu"), tmp_path)
    try:
        assert node.run("echo $PATH").stdout.strip() == ":".join(NODE_PATH)
        names = sorted(BASE_COMMANDS)
        found = node.run(" ; ".join(f"command -v {n} || echo MISSING:{n}" for n in names)).stdout.split()
        assert dict(zip(names, found)) == BASE_COMMANDS
        # a program only a login shell finds (snapd's /etc/profile.d adds /snap/bin) is not found here
        node.run("mkdir -p /snap/bin && printf '#!/bin/sh\\necho hi\\n' > /snap/bin/only-login && "
                 "chmod 755 /snap/bin/only-login")
        assert node.run("only-login").rc == 127 and node.run("/snap/bin/only-login").stdout.strip() == "hi"
    finally:
        node.teardown()
