"""The ssh provider against real sshd hosts in network namespaces (veth pairs this test makes,
root end addressed: nothing leaves through eth0). One host is honest, one lies about its arch,
one goes away mid-run; the inventory is validated like matrix.yaml."""
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from harness.lab import testhosts
from harness.matrix import inventory
from harness.common.errors import UserError
from conftest import ROOT, need, unavailable

MATRIX = "axes: {arch: [amd64], distro: [debian12], kubernetes: ['1.32'], bootstrapper: [none], provider: [qemu]}\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three sshd hosts on this machine (x86_64, bookworm) and an inventory of what they claim."""
    need("sshd")
    if os.geteuid() != 0:
        unavailable("network namespaces need root")
    d = tmp_path_factory.mktemp("lab")
    key = d / "client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    hosts = []
    try:
        for spec in (("alpha", "amd64", "debian12"), ("liar", "ppc64le", "debian12"), ("gamma", "amd64", "debian13")):
            hosts.append(testhosts.start(*spec, base=d / "hosts", client_key=key))
        inv = d / "hosts.yaml"
        inv.write_text(yaml.safe_dump(testhosts.inventory(hosts, key, d / "known_hosts")))
        (d / "matrix.yaml").write_text(MATRIX)
        yield d, {h.name: h for h in hosts}, key
    finally:
        for h in hosts:
            testhosts.stop(h)
    for h in hosts:  # the namespace, both veth ends and the sshd are gone
        assert h.ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert subprocess.run(["ip", "link", "show", h.veth], capture_output=True).returncode != 0
        assert not Path(f"/proc/{h.pid}").exists()


def test_inventory_errors_name_file_line_and_key(tmp_path):
    key = tmp_path / "k"
    key.write_text("x")
    bad = tmp_path / "hosts.yaml"
    bad.write_text(f"hosts:\n  - name: a\n    arch: amd64\n    distro: debian12\n    address: 10.0.0.1\n"
                   f"    key: {key}\n    known_hosts: {key}\n    password: hunter2\n")
    with pytest.raises(UserError, match=r"hosts.yaml:8: hosts\[0\].password: unknown key 'password'; allowed: name, arch"):
        inventory.load(bad)
    bad.write_text(f"hosts:\n  - name: a\n    arch: sparc\n    distro: debian12\n    address: x\n    key: {key}\n")
    with pytest.raises(UserError, match=r"hosts.yaml:3: hosts\[0\].arch: unknown arch 'sparc'"):
        inventory.load(bad)
    bad.write_text(f"hosts:\n  - name: a\n    arch: amd64\n    distro: debian12\n    address: x\n"
                   f"    key: {tmp_path / 'nope'}\n    known_hosts: {key}\n")
    with pytest.raises(UserError, match=r"hosts\[0\] \(a\)\.key: .*nope does not exist"):
        inventory.load(bad)


def test_inventory_adds_ssh_cells_to_the_matrix(lab, run_cli):
    d, hosts, _ = lab
    out = run_cli("list", "--matrix", str(d / "matrix.yaml"), "--inventory", str(d / "hosts.yaml"), "--provider", "ssh")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["amd64-debian12-v1.32-none-ssh", "amd64-debian13-v1.32-none-ssh",
                                  "ppc64le-debian12-v1.32-none-ssh"]


VANISH = textwrap.dedent('''
    import os, time
    from pathlib import Path
    SIGNALS = Path(os.environ["AM_SIGNALS"])

    def test_1_first(host, cell):
        assert host.run("true").rc == 0
        if cell.distro == "debian13":  # gamma: tell the controller, wait until it has pulled the link
            (SIGNALS / "gamma-ready").touch()
            for _ in range(300):
                if (SIGNALS / "gamma-down").exists():
                    break
                time.sleep(0.1)

    def test_2_after(host):
        assert host.run("uname -m").stdout.strip() == "x86_64"

    def test_3_after(host):
        assert host.file("/etc/os-release").exists
''')


def test_liar_refused_vanishing_host_errors_others_complete(lab, tmp_path):
    d, hosts, key = lab
    (tmp_path / "test_vanish.py").write_text(VANISH)
    signals = tmp_path / "signals"
    signals.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "pytest", str(ROOT / "suites/test_binaries.py"),
                             str(tmp_path / "test_vanish.py"), "-p", "no:cacheprovider", "-q", "--rootdir", str(ROOT),
                             "--matrix", str(d / "matrix.yaml"), "--inventory", str(d / "hosts.yaml"),
                             "--provider", "ssh", "--reports-dir", str(tmp_path / "r"), "--junitxml",
                             str(tmp_path / "junit.xml")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "AM_SIGNALS": str(signals)})
    for _ in range(3000):  # bounded: the run reaches gamma within a minute alone, within 4 under load
        if (signals / "gamma-ready").exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert (signals / "gamma-ready").exists(), proc.communicate()[0][-3000:]
    testhosts.vanish(hosts["gamma"])
    (signals / "gamma-down").touch()
    out = proc.communicate(timeout=300)[0]
    run = json.loads((tmp_path / "r/results.json").read_text())
    by = {}
    for r in run["records"]:
        by.setdefault(r["cell"], {}).setdefault(r["outcome"], []).append(r)
    alpha, liar, gamma = (by[f"{c}-v1.32-none-ssh"] for c in ("amd64-debian12", "ppc64le-debian12", "amd64-debian13"))
    name = lambda r: r["test"].split("[")[0].split("::")[-1] + "[" + r["test"].split("[")[1].split("-")[0]  # noqa: E731
    assert set(alpha) <= {"passed", "skipped"}, out[-3000:]  # what is on this machine passes; the rest is absent
    assert {"test_1_first[amd64", "test_2_after[amd64", "test_3_after[amd64", "test_arch[sh"} <= set(map(name, alpha["passed"]))
    assert set(liar) == {"error"} and all("claims ppc64le (linux) in the inventory but is x86_64 (Linux): refused"
                                          in r["message"] for r in liar["error"])
    # gamma passes what alpha passes until its link goes down after test_1_first
    before = {name(r) for r in alpha["passed"]} - {"test_2_after[amd64", "test_3_after[amd64"}
    assert {name(r) for r in gamma["passed"]} == before
    assert {r["test"].split("::")[-1].split("[")[0] for r in gamma["error"]} == {"test_2_after", "test_3_after"}
    # said as the lab saw it: a fresh connection beside the dropped one did not answer either
    assert all(f"host gamma ({hosts['gamma'].address}:22) stopped answering SSH (" in r["message"]
               for r in gamma["error"]), gamma["error"][0]["message"]
    assert all(r["artifacts"]["ssh debug"].endswith("ssh-probe.log") for r in gamma["error"])
    alpha_props = alpha["passed"][0]["properties"]
    assert alpha_props["ssh_host"] == "alpha" and alpha_props["address"] == f"{hosts['alpha'].address}:22"
    secret = "".join(key.read_text().splitlines()[1:-1])[:40]  # private key material
    for report in (tmp_path / "r/results.json", tmp_path / "junit.xml"):
        text = report.read_text()
        assert secret not in text and "PRIVATE KEY" not in text and str(key) not in text


def test_unknown_host_key_is_an_error_not_a_prompt(lab, tmp_path):
    d, hosts, key = lab
    inv = yaml.safe_load((d / "hosts.yaml").read_text())
    (tmp_path / "empty_known_hosts").write_text("")
    inv["hosts"] = [dict(inv["hosts"][0], known_hosts=str(tmp_path / "empty_known_hosts"))]
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(inv))
    out = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "suites/test_binaries.py"), "-q",
                          "-p", "no:cacheprovider", "--rootdir", str(ROOT), "--matrix", str(d / "matrix.yaml"),
                          "--inventory", str(tmp_path / "hosts.yaml"), "--provider", "ssh", "-x",
                          "--reports-dir", str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1
    assert "its host key is not in" in out.stdout and "archmatrix never accepts unknown keys" in out.stdout


def test_busy_host_waits_visibly_then_skips_with_reason(lab, tmp_path):
    """The host's lock is held (as by another run): the cell waits the inventory's `wait`, saying
    so, then is skipped with the reason; once free, the same run passes."""
    d, hosts, key = lab
    inv = yaml.safe_load((d / "hosts.yaml").read_text())
    inv["wait"] = "2"
    (tmp_path / "hosts.yaml").write_text(yaml.safe_dump(inv))
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "suites/test_binaries.py"), "-q", "-p", "no:cacheprovider",
           "--rootdir", str(ROOT), "--matrix", str(d / "matrix.yaml"), "--inventory", str(tmp_path / "hosts.yaml"),
           "--cell", "amd64-debian12-v1.32-none-ssh", "-rs", "--reports-dir", str(tmp_path / "r")]
    from harness.nodes.ssh import _lock

    held = _lock(inventory.load(tmp_path / "hosts.yaml").hosts[0])
    with held:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "waiting up to 2 s for a free host (alpha busy)" in out.stdout
    assert "ssh: every matching host (alpha) stayed busy for 2 s" in out.stdout and " passed" not in out.stdout[-40:]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and " passed" in out.stdout.splitlines()[-1], out.stdout[-2000:]
