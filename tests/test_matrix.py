"""matrix.yaml: expansion, ids, capabilities, filters, shards, and every bad input."""
import json
import re
import subprocess
import sys
import textwrap

import pytest

from harness.matrix import cells as matrix
from harness.matrix import kube_versions, platforms
from harness.common.errors import UserError

GOOD = """\
axes:
  arch: [s390x, amd64, aarch64, riscv64]
  distro: [debian12, trixie]
  kubernetes: [latest, "1.30"]
  bootstrapper: [none]
  provider: [qemu]
exclude:
  - {arch: amd64, kubernetes: "1.30"}
include:
  - {arch: amd64, distro: debian12, kubernetes: "1.32", bootstrapper: none, provider: local}
unsupported:
  - match: {arch: s390x, distro: debian13}
    reason: made up for the test
"""


def write(tmp_path, text, name="matrix.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_expand_ids_sorted_and_stable(tmp_path):
    cells = matrix.cells_for(write(tmp_path, GOOD))
    ids = [c.id for c in cells]
    latest = kube_versions.RELEASES[-1].minor
    # platform-table order (amd64 first), then distro, then version (the included 1.32 before latest)
    assert ids[:3] == ["amd64-debian12-v1.32-none-local", f"amd64-debian12-v{latest}-none-qemu",
                       f"amd64-debian13-v{latest}-none-qemu"]
    # platform-table order, then distro, then version
    order = [platforms.arch_order(c.arch) for c in cells]
    assert order == sorted(order)
    assert "arm64-debian13-v1.30-none-qemu" in ids  # aliases normalised (aarch64, trixie, "1.30")
    assert not any(i.startswith("amd64-") and "v1.30" in i for i in ids)  # excluded
    assert "amd64-debian12-v1.32-none-local" in ids  # included
    assert len(ids) == len(set(ids))
    assert ids == [c.id for c in matrix.cells_for(write(tmp_path, GOOD, "again.yaml"))]


def test_kubernetes_1_30_is_not_the_float_1_3(tmp_path):
    text = GOOD.replace('[latest, "1.30"]', "[1.30]")
    cells = matrix.cells_for(write(tmp_path, text))
    assert {c.kubernetes for c in cells if c.provider == "qemu"} == {"1.30"}


def test_capabilities_mark_unsupported_with_reason(tmp_path):
    cells = {c.id: c for c in matrix.cells_for(write(tmp_path, GOOD))}
    assert "debian12 has no riscv64 port" in cells["riscv64-debian12-v1.37-none-qemu"].unsupported
    assert cells["s390x-debian13-v1.37-none-qemu"].unsupported == "made up for the test"
    assert cells["s390x-debian12-v1.37-none-qemu"].unsupported is None


def test_windows_and_local_capabilities():
    win = matrix.Cell("amd64", "windows2022", "1.32", "distro", "ssh")
    assert "no Windows nodes" in matrix.capability(win)
    s390_win = matrix.Cell("s390x", "windows2022", "1.32", "kubeadm", "ssh")
    assert "no s390x port" in matrix.capability(s390_win)
    foreign_local = matrix.Cell("s390x", "debian12", "1.32", "none", "local")
    assert "this machine's arch" in matrix.capability(foreign_local)


BAD = {
    "unknown arch": ("axes:\n  arch: [amd64, ppc64e]\n  distro: [debian12]\n  kubernetes: [latest]\n"
                     "  bootstrapper: [none]\n  provider: [qemu]\n",
                     r"matrix.yaml:2: axes.arch\[1\]: unknown arch 'ppc64e' \(did you mean 'ppc64(el|le)'\?\)"),
    "unknown key": ("axes:\n  arch: [amd64]\n  distro: [debian12]\n  kubernetes: [latest]\n"
                    "  bootstrapper: [none]\n  provider: [qemu]\nexclud: []\n",
                    r"matrix.yaml:7: exclud: unknown key 'exclud'; allowed: axes, include, exclude, unsupported"),
    "wrong type": ("axes:\n  arch: amd64\n  distro: [debian12]\n  kubernetes: [latest]\n"
                   "  bootstrapper: [none]\n  provider: [qemu]\n",
                   r"matrix.yaml:2: axes.arch: wrong type: input should be a valid list"),
    "empty axis": ("axes:\n  arch: []\n  distro: [debian12]\n  kubernetes: [latest]\n"
                   "  bootstrapper: [none]\n  provider: [qemu]\n",
                   r"matrix.yaml:2: axes.arch: axis 'arch' is empty"),
    "missing axis": ("axes:\n  arch: [amd64]\n  distro: [debian12]\n  kubernetes: [latest]\n"
                     "  bootstrapper: [none]\n",
                     r"matrix.yaml:1: axes.provider: missing key 'provider'"),
    "unknown provider": ("axes:\n  arch: [amd64]\n  distro: [debian12]\n  kubernetes: [latest]\n"
                         "  bootstrapper: [none]\n  provider: [qmeu]\n",
                         r"matrix.yaml:6: axes.provider\[0\]: unknown provider 'qmeu' \(did you mean 'qemu'\?\)"),
    "bad version": ("axes:\n  arch: [amd64]\n  distro: [debian12]\n  kubernetes: [1.9]\n"
                    "  bootstrapper: [none]\n  provider: [qemu]\n",
                    r"matrix.yaml:4: axes.kubernetes\[0\]: unknown kubernetes version '1.9'"),
    "duplicate include": ("axes:\n  arch: [amd64]\n  distro: [debian12]\n  kubernetes: [latest]\n"
                          "  bootstrapper: [none]\n  provider: [qemu]\ninclude:\n"
                          "  - {arch: x86_64, distro: bookworm, kubernetes: latest, bootstrapper: none, provider: qemu}\n",
                          r"include\[0\]: cell amd64-debian12-v1.37-none-qemu is already in the matrix \(duplicate\)"),
    "malformed yaml": ("axes:\n  arch: [amd64\n  distro: [debian12]\n",
                       r"matrix.yaml:3: malformed YAML"),
    "not a mapping": ("- just\n- a list\n", r"matrix.yaml: expected a mapping"),
    "include not whole": ("axes:\n  arch: [amd64]\n  distro: [debian12]\n  kubernetes: [latest]\n"
                          "  bootstrapper: [none]\n  provider: [qemu]\ninclude:\n  - {arch: amd64}\n",
                          r"matrix.yaml:8: include\[0\].distro: missing key 'distro'"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_matrix_gives_one_line_naming_file_and_key(tmp_path, case):
    text, pattern = BAD[case]
    with pytest.raises(UserError, match=pattern) as e:
        matrix.cells_for(write(tmp_path, text))
    assert "\n" not in str(e.value)
    assert str(tmp_path / "matrix.yaml") in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="nope.yaml: matrix file does not exist"):
        matrix.cells_for(tmp_path / "nope.yaml")


def test_filters_with_aliases_commas_and_repeats(tmp_path):
    m = write(tmp_path, GOOD)
    cells = matrix.cells_for(m, arch=["aarch64,s390x"], distro=["bookworm"])
    assert {c.arch for c in cells} == {"arm64", "s390x"} and {c.distro for c in cells} == {"debian12"}
    cells = matrix.cells_for(m, arch=["arm64", "s390x"], kubernetes=["v1.30"])
    assert {c.kubernetes for c in cells} == {"1.30"}


@pytest.mark.parametrize("filters,pattern", [
    ({"arch": ["ppc64le"]}, r"--arch ppc64le: matches no cell in .*matrix.yaml"),
    ({"arch": ["pcc64le"]}, r"--arch pcc64le: unknown arch 'pcc64le' \(did you mean"),
    ({"kubernetes": ["1.33"]}, r"--k8s 1.33: matches no cell"),
    ({"arch": ["s390x"], "provider": ["local"]}, r"filters --arch s390x --provider local together match no cell"),
    ({"cell_ids": ["amd64-debian12-v1.32-none-locl"]}, r"--cell amd64-debian12-v1.32-none-locl: no such cell.*did you mean"),
])
def test_filter_matching_nothing_names_the_filter(tmp_path, filters, pattern):
    with pytest.raises(UserError, match=pattern):
        matrix.cells_for(write(tmp_path, GOOD), **filters)


@pytest.mark.parametrize("pattern,expected", [
    ("s390x-debian12-v1.37-none-qemu", ["s390x-debian12-v1.37-none-qemu"]),  # an id
    ("s390x-debian12", ["s390x-debian12-v1.30-none-qemu", "s390x-debian12-v1.37-none-qemu"]),  # a prefix
    ("s390x-*-v1.37-*", ["s390x-debian12-v1.37-none-qemu", "s390x-debian13-v1.37-none-qemu"]),  # a glob
    ("*-local", ["amd64-debian12-v1.32-none-local"]),
    ("arm64-debian13-v1.3?-none-qemu,amd64-debian12-v1.32", ["amd64-debian12-v1.32-none-local",
                                                             "arm64-debian13-v1.30-none-qemu",
                                                             "arm64-debian13-v1.37-none-qemu"]),
])
def test_cell_takes_an_id_a_prefix_or_a_glob(tmp_path, pattern, expected):
    assert [c.id for c in matrix.cells_for(write(tmp_path, GOOD), cell_ids=[pattern])] == expected


@pytest.mark.parametrize("pattern", ["arm", "s390x-deb", "ppc64le-*", "s390x-debian12-v1.37-none-qem"])
def test_cell_pattern_matching_nothing_is_one_line_naming_it(tmp_path, pattern):
    """A prefix ends where a part of the id ends: `arm` is the arm arch, not arm64."""
    with pytest.raises(UserError, match=rf"^--cell {pattern.replace('*', '[*]')}: no such cell in .*matrix.yaml") as e:
        matrix.cells_for(write(tmp_path, GOOD), cell_ids=[pattern])
    assert "\n" not in str(e.value)


def test_plan_takes_one_cell_by_id_prefix_or_glob(tmp_path, run_cli):
    m = write(tmp_path, GOOD)
    out = run_cli("plan", "s390x-debian12", "--matrix", str(m))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert ("s390x-debian12: matches 2 cells (s390x-debian12-v1.30-none-qemu, s390x-debian12-v1.37-none-qemu); "
            "give one cell") in out.stderr
    out = run_cli("plan", "s390x-debian12-v1.37", "--matrix", str(m))
    assert out.returncode == 0 and out.stdout == "s390x-debian12-v1.37-none-qemu: bootstrapper none runs nothing\n"


def test_shards_partition_the_matrix(tmp_path):
    m = write(tmp_path, GOOD)
    every = [c.id for c in matrix.cells_for(m)]
    parts = [[c.id for c in matrix.cells_for(m, shard_spec=f"{k}/3")] for k in (1, 2, 3)]
    assert sorted(sum(parts, [])) == sorted(every)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    for bad in ("0/3", "4/3", "x", "1/0"):
        with pytest.raises(UserError, match=f"--shard {bad}"):
            matrix.cells_for(m, shard_spec=bad)


def test_default_matrix_covers_the_seed_arches():
    from conftest import ROOT

    cells = matrix.cells_for(ROOT / "matrix.yaml")
    assert {c.arch for c in cells} >= {"amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"}


def _plugin_ids(args, cwd):
    out = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", *args],
                         cwd=cwd, capture_output=True, text=True)
    params = {line.split("[", 1)[1].rstrip("]") for line in out.stdout.splitlines()
              if "[" in line and "::" in line and "::test_artifact[" not in line}  # artifacts: no cells
    return out, params


@pytest.mark.parametrize("args", [[], ["--arch", "arm64"], ["--arch", "s390x,amd64", "--distro", "trixie"],
                                  ["--shard", "2/3"], ["--provider", "local"], ["--cell", "s390x-*-distro-*"],
                                  ["--cell", "arm-debian13"]])
def test_cli_list_and_plugin_agree(run_cli, args):
    from conftest import ROOT

    listed = run_cli("list", "--json", *args)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    cli_ids = {r["id"] for r in rows}
    supported = {r["id"] for r in rows if not r["unsupported"]}
    out, params = _plugin_ids(args, ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    # a test id is "<cell id>" or "<binary>-<cell id>": each names a listed cell, every supported cell is
    # collected; the unsupported ones are deselected, counted on the summary lines with their reasons
    def of(p):
        return [c for c in cli_ids if p == c or p.endswith("-" + c)]
    assert all(of(p) for p in params), [p for p in params if not of(p)][:3]
    assert {c for p in params for c in of(p)} == supported
    cells = sum(int(n) for n in re.findall(r"unsupported: .*\[(\d+) cells?\]$", out.stdout, re.M))
    assert cells == len(cli_ids - supported), out.stdout[-2000:]
    if args[:2] == ["--arch", "arm64"]:
        assert cli_ids and all(i.startswith("arm64-") for i in cli_ids)
    if args[:1] == ["--cell"]:  # the plugin and the CLI share one matcher: a glob, a prefix at a part's end
        assert cli_ids and all(i.startswith(("s390x-debian12-v1.37-distro-", "s390x-debian13-v1.37-distro-",
                                             "arm-debian13-")) for i in cli_ids)


@pytest.mark.parametrize("args,pattern", [
    (["--arch", "amd46"], "--arch amd46: unknown arch 'amd46' (did you mean 'amd64'?)"),
    (["--cell", "s390x-*-kubeadm-*"], "--cell s390x-*-kubeadm-*: no such cell in "),
    (["--matrix", "/nonexistent/m.yaml"], "/nonexistent/m.yaml: matrix file does not exist"),
    (["--arch", "riscv64", "--provider", "local"], "filters --arch riscv64 --provider local together match no cell"),
])
def test_bad_input_one_line_no_traceback_in_cli_and_plugin(run_cli, args, pattern):
    from conftest import ROOT

    cli = run_cli("list", *args)
    assert cli.returncode == 2
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("archmatrix: error: ") and pattern in lines[0]
    out = subprocess.run([sys.executable, "-m", "pytest", "suites", "--collect-only", "-q", *args],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 4
    assert pattern in out.stderr and "Traceback" not in out.stderr + out.stdout


def test_every_command_s_help_says_what_it_does(run_cli):
    """`archmatrix X --help` opens with the one line `archmatrix --help` lists for X (rehearse had none)."""
    import argparse

    from harness.cli import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    listed = {a.dest: a.help for a in sub._choices_actions}
    assert {"rehearse", "list", "images"} <= set(listed), listed
    for name, line in listed.items():
        out = run_cli(name, "--help")
        assert out.returncode == 0 and " ".join(line.split()[:6]) in " ".join(out.stdout.split()), (name, out.stdout)
