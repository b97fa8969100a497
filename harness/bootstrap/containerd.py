"""containerd, shared by every bootstrapper that installs it (distro, kubeadm): its configuration
and the runtime capability read back from the node (the sandbox image configured and pulled).

The plan writes only the settings it needs, as a config file in the version the node's containerd
reads (version 2 for containerd 1.x, version 3 for 2.x; containerd merges it over its built-in
defaults), asks the installed containerd which it is first, and reads back what containerd really
uses (`containerd config dump`): a sandbox image, cgroup driver or CNI directory that is not what
the plan set fails the step. No `sed` on `config default`: containerd 2's config version 3 moved
`sandbox_image` to `[plugins.'io.containerd.cri.v1.images'.pinned_images] sandbox`, where such an
edit matched nothing, silently (containerd docs/cri/config.md, RELEASES.md "config version 3"), and
Debian 13's 1.7 defaults the CNI `bin_dir` to /usr/lib/cni while kubernetes-cni and flannel use
/opt/cni/bin (containerd's own default, docs/cri/config.md).
"""
from __future__ import annotations

import json
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..matrix.cells import Cell
from .capabilities import ConfiguresRuntime
from .steps import Step, heredoc

CONFIG = "/etc/containerd/config.toml"
# where Debian's containerd package puts the programs the steps run (its file list: /usr/bin)
PROGRAMS = ("/usr/bin/containerd", "/usr/bin/ctr")
CNI_BIN = "/opt/cni/bin"  # where kubernetes-cni and flannel put the CNI plugins
# config version 2 (containerd 1.x): the CRI plugin's tables (containerd docs/cri/config.md @v1.7)
V2_CRI = '"io.containerd.grpc.v1.cri"'
# config version 3 (containerd 2.x): split into images and runtime (docs/cri/config.md @v2.3.4);
# the CNI `bin_dirs` list replaces `bin_dir` from 2.1 (internal/cri/config/config.go @v2.1.9)
V3_IMAGES, V3_RUNTIME = "'io.containerd.cri.v1.images'", "'io.containerd.cri.v1.runtime'"


def version_of(text: str | None) -> tuple[int, ...] | None:
    """`containerd --version` output (or a bare version) -> (major, minor, patch)."""
    m = re.search(r"(?:^|\s)v?(\d+)\.(\d+)\.(\d+)", text or "")
    return tuple(int(x) for x in m.groups()) if m else None


def config(version: tuple[int, ...], sandbox_ref: str, plain_http: str | None, systemd_cgroup: bool) -> str:
    """The settings, as a config file containerd `version` reads."""
    runc_options = f"\n  SystemdCgroup = {'true' if systemd_cgroup else 'false'}\n"
    if version[0] < 2:
        text = (f"version = 2\n\n[plugins.{V2_CRI}]\n  sandbox_image = \"{sandbox_ref}\"\n\n"
                f"[plugins.{V2_CRI}.cni]\n  bin_dir = \"{CNI_BIN}\"\n\n"
                f"[plugins.{V2_CRI}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n"
                f"[plugins.{V2_CRI}.containerd.runtimes.runc.options]{runc_options}")
        registry = f"plugins.{V2_CRI}.registry"
    else:
        cni = f"bin_dirs = [\"{CNI_BIN}\"]" if version[:2] >= (2, 1) else f"bin_dir = \"{CNI_BIN}\""
        text = (f"version = 3\n\n[plugins.{V3_IMAGES}.pinned_images]\n  sandbox = \"{sandbox_ref}\"\n\n"
                f"[plugins.{V3_RUNTIME}.cni]\n  {cni}\n\n"
                f"[plugins.{V3_RUNTIME}.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n"
                f"[plugins.{V3_RUNTIME}.containerd.runtimes.runc.options]{runc_options}")
        registry = f"plugins.{V3_IMAGES}.registry"
    if plain_http:  # the harness registry, plain HTTP (registry.mirrors: deprecated in 2.x, still read)
        text += f"\n[{registry}.mirrors.\"{plain_http}\"]\n  endpoint = [\"http://{plain_http}\"]\n"
    return text


def in_use(dump: str) -> dict:
    """What a `containerd config dump` says containerd uses: sandbox image, SystemdCgroup, CNI dirs."""
    doc = tomllib.loads(dump)
    plugins = doc.get("plugins", {})
    if doc.get("version", 2) >= 3:
        images = plugins.get(V3_IMAGES.strip("'"), {})
        runtime = plugins.get(V3_RUNTIME.strip("'"), {})
        sandbox = images.get("pinned_images", {}).get("sandbox")
        cni = runtime.get("cni", {})
        dirs = list(cni.get("bin_dirs") or []) or ([cni["bin_dir"]] if cni.get("bin_dir") else [])
    else:
        runtime = plugins.get(V2_CRI.strip('"'), {})
        sandbox = runtime.get("sandbox_image")
        dirs = [runtime.get("cni", {}).get("bin_dir")]
    runc = runtime.get("containerd", {}).get("runtimes", {}).get("runc", {})
    return {"sandbox": sandbox, "systemd_cgroup": runc.get("options", {}).get("SystemdCgroup", False),
            "cni_bin_dirs": [d for d in dirs if d]}


def wrong(dump: str, sandbox_ref: str, systemd_cgroup: bool) -> str | None:
    """What containerd really uses and the plan did not set (None: all as set)."""
    try:
        got = in_use(dump)
    except tomllib.TOMLDecodeError as e:
        return f"`containerd config dump` is not TOML ({e})"
    bad = []
    if got["sandbox"] != sandbox_ref:
        bad.append(f"sandbox image {got['sandbox']} (set: {sandbox_ref})")
    if got["systemd_cgroup"] != systemd_cgroup:
        bad.append(f"SystemdCgroup = {str(got['systemd_cgroup']).lower()} (set: {str(systemd_cgroup).lower()})")
    if got["cni_bin_dirs"] != [CNI_BIN]:
        bad.append(f"CNI plugins from {', '.join(got['cni_bin_dirs']) or 'nowhere'} (set: {CNI_BIN})")
    return "containerd uses " + "; ".join(bad) if bad else None


def wrong_version(output: str, expected: str) -> str | None:
    """`containerd --version` says another version than the plan installed (None: the same)."""
    got = version_of(output)
    if got == version_of(expected):
        return None
    return f"containerd {'.'.join(map(str, got)) if got else '(no version)'} installed, the plan chose {expected}"


def steps(sandbox_ref: str, plain_http: str | None = None, systemd_cgroup: bool = False,
          facts: dict | None = None, expected: str | None = None, require: bool = False) -> list[Step]:
    """Ask the installed containerd its version, write the config it reads, restart it, read back
    what it uses. `expected`: the version the plan installs, shown before the node has answered;
    `require`: the installed one must be it (a release tarball the plan chose by version)."""
    version = version_of((facts or {}).get("containerd_version")) or version_of(expected) or (1, 7, 0)
    return [
        Step("node", "containerd --version", "the installed containerd's version (its config version)",
             asks="containerd_version", verify=(lambda out: wrong_version(out, expected)) if require else None,
             idempotent=True),
        Step("node", heredoc(CONFIG, config(version, sandbox_ref, plain_http, systemd_cgroup)),
             f"containerd config version {3 if version[0] >= 2 else 2} for containerd "
             f"{'.'.join(map(str, version))}: sandbox image {sandbox_ref}, "
             f"{'systemd' if systemd_cgroup else 'cgroupfs'} cgroups, CNI plugins in {CNI_BIN}",
             lab=True, idempotent=True),  # the harness writes its settings (plumbing); containerd using them is the product
        Step("node", "systemctl restart containerd && for i in $(seq 60); do ctr version >/dev/null 2>&1 && "
                     "exit 0; sleep 1; done; exit 1", "containerd up", idempotent=True),
        Step("node", "containerd config dump", "what containerd really uses is what the plan set",
             verify=lambda dump: wrong(dump, sandbox_ref, systemd_cgroup), idempotent=True),
    ]


class ContainerdRuntime(ConfiguresRuntime):
    """The sandbox image as the node's containerd has it."""

    ctr = "ctr"  # the client of the node's containerd (MicroK8s and k3s run their own, with their own ctr)

    def sandbox_image(self, node, cell: Cell) -> str | None:
        out = node.run("containerd config dump")
        try:
            return in_use(out.stdout)["sandbox"]
        except tomllib.TOMLDecodeError:
            return None

    def pulled_sandbox_config(self, node, cell: Cell) -> tuple[str | None, dict]:
        """(reference, image config) of the sandbox image as the node's containerd holds it: the
        manifest it chose from the index for its own platform (or the one manifest of a single-arch
        image, as an air-gapped artifacts dir may hold), and that manifest's config."""
        ref = self.sandbox_image(node, cell)
        if ref is None:
            return None, {}
        ls = node.run(f"{self.ctr} -n k8s.io images ls name=={ref}").stdout.splitlines()
        if len(ls) < 2:
            return ref, {}
        digest = ls[1].split()[2]
        index = json.loads(node.run(f"{self.ctr} -n k8s.io content get {digest}").stdout)
        if "config" in index:  # not an index: a single-arch image's manifest
            return ref, json.loads(node.run(f"{self.ctr} -n k8s.io content get {index['config']['digest']}").stdout)
        for m in index.get("manifests", []):
            got = node.run(f"{self.ctr} -n k8s.io content get {m['digest']}")
            if got.rc == 0:
                cfg_digest = json.loads(got.stdout)["config"]["digest"]
                return ref, json.loads(node.run(f"{self.ctr} -n k8s.io content get {cfg_digest}").stdout)
        return ref, {}
