"""The deps table (harness/host/sysdeps.py) is complete by construction: every program the code runs
is found by reading the code (ast), not from a list kept by hand, and must be in the table; the
table's packages are what dpkg says ships each program; a foreign-arch cell's deps include what
mmdebstrap only recommends (arch-test: the bug of issue #13)."""
import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.host import sysdeps
from harness.matrix import cells as matrix, platforms
from conftest import ROOT

SCANNED = ("harness", "tests", "suites", "benchmarks")
RUNNERS = {"run", "Popen", "call", "check_call", "check_output", "_run"}  # subprocess and the modules' wrappers
LOOKUPS = {"which", "need"}  # shutil.which("x"), tests' need("x")


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def programs_in(source: str) -> set[str]:
    """argv[0] of every subprocess call (a list literal, a name assigned a list literal, `a + b`,
    or a module constant), and every which()/need() of a literal."""
    tree = ast.parse(source)
    consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
              and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
              for t in n.targets if isinstance(t, ast.Name)}
    lists: dict[str, list] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Assign) and isinstance(n.value, ast.List):
            for t in n.targets:
                if isinstance(t, ast.Name):
                    lists.setdefault(t.id, []).append(n.value)

    def first(arg) -> list:
        if isinstance(arg, ast.BinOp):
            return first(arg.left)
        if isinstance(arg, ast.Name):
            return [x for lst in lists.get(arg.id, []) for x in first(lst)]
        if isinstance(arg, ast.List) and arg.elts:
            head = arg.elts[0]
            if isinstance(head, ast.Constant) and isinstance(head.value, str):
                return [head.value]
            if isinstance(head, ast.Name) and head.id in consts:
                return [consts[head.id]]
        return []

    found = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and n.args:
            if _name(n.func) in RUNNERS:
                found.update(first(n.args[0]))
            elif _name(n.func) in LOOKUPS and isinstance(n.args[0], ast.Constant):
                found.add(n.args[0].value)
    return {p.rsplit("/", 1)[-1] for p in found if p and not p.startswith("-")}


def programs_run_by_the_code() -> dict[str, list[str]]:
    where: dict[str, list[str]] = {}
    for top in SCANNED:
        for f in sorted((ROOT / top).rglob("*.py")):
            for prog in programs_in(f.read_text()):
                where.setdefault(prog, []).append(str(f.relative_to(ROOT)))
    return where


def test_the_scan_finds_the_programs_it_must():
    """A known set, so the scan itself can fail: literals, names, `cmd + [...]`, constants, which()."""
    src = ('import subprocess, shutil\nBIN = "docker-registry"\n'
           'subprocess.run(["mmdebstrap", "x"])\ncmd = ["qemu-img", "convert"]\nsubprocess.Popen(cmd + ["-q"])\n'
           'p = subprocess.Popen([BIN, "serve"])\n_run(["/usr/sbin/sshd", "-D"], "sshd", log)\n'
           'shutil.which("skopeo")\nsubprocess.run([sys.executable, "-m", "x"])\nsubprocess.run(args)\n')
    assert programs_in(src) == {"mmdebstrap", "qemu-img", "docker-registry", "sshd", "skopeo"}


def test_every_program_the_code_runs_is_in_the_deps_table():
    # in a fresh interpreter: CPython 3.11 can raise "SystemError: AST constructor recursion depth mismatch"
    # from ast.parse when the per-interpreter depth counter was left off by other AST work in this process
    # (python/cpython#106905, fixed by #106906 after bookworm's 3.11.2; seen in CI while a playwright
    # thread was still running)
    scan = subprocess.run([sys.executable, "-c", "import json, sys; sys.path[:0] = ['tests', '.']; "
                           "from test_sysdeps import programs_run_by_the_code as p; print(json.dumps(p()))"],
                          cwd=ROOT, capture_output=True, text=True)
    assert scan.returncode == 0, scan.stderr
    where = json.loads(scan.stdout)
    assert {"mmdebstrap", "qemu-img", "ssh", "skopeo", "dockerd", "ip"} <= set(where)  # the scan sees the code
    missing = {p: files for p, files in where.items() if p not in sysdeps.PACKAGE_OF and p not in sysdeps.FROM_PYPI}
    assert not missing, f"programs run by the code with no Debian package in harness/host/sysdeps.py: {missing}"


def test_a_program_missing_from_the_table_is_caught(monkeypatch):
    """The same check with arch-test's row removed: it must name it (the check can fail)."""
    table = {k: v for k, v in sysdeps.PACKAGE_OF.items() if k != "arch-test"}
    monkeypatch.setattr(sysdeps, "PACKAGE_OF", table)
    with pytest.raises(KeyError, match="arch-test"):
        sysdeps.packages(sysdeps.image_build_programs(platforms.arch("s390x")))


def test_foreign_image_builds_need_what_mmdebstrap_only_recommends():
    """Issue #13: deps installs --no-install-recommends, so arch-test must be listed itself."""
    cells = matrix.cells_for(ROOT / "matrix.yaml", arch=["s390x"], provider=["qemu"])
    pkgs = sysdeps.for_cells(cells)
    assert {"arch-test", "mmdebstrap", "mount", "debian-archive-keyring", "qemu-user-static", "qemu-system-misc",
            "systemd"} <= pkgs
    assert "docker.io" not in pkgs
    native = matrix.cells_for(ROOT / "matrix.yaml", arch=[platforms.host().name], provider=["qemu"])
    assert sysdeps.packages((platforms.host().qemu_user,)) - {"qemu-user-static"} == set()
    assert "qemu-user-static" not in sysdeps.for_cells(native)  # a native build needs no emulator
    assert sysdeps.for_cells(matrix.cells_for(ROOT / "matrix.yaml", provider=["local"])) == set()


def test_the_tests_need_every_package_any_cell_needs():
    every = matrix.cells_for(ROOT / "matrix.yaml")
    assert sysdeps.for_cells(every) <= sysdeps.test_packages()
    assert sysdeps.packages(sysdeps.REGISTRY_PROGRAMS) <= sysdeps.test_packages()


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian-family host: dpkg cannot be asked")
def test_the_table_agrees_with_dpkg():
    """Ask dpkg which files each installed package ships: the table's program must be one of them."""
    wrong = []
    for name, pkg in sorted(sysdeps.PACKAGE_OF.items()):
        listed = subprocess.run(["dpkg-query", "-L", pkg], capture_output=True, text=True)
        if listed.returncode != 0:
            continue  # not installed here: `deps --tests --install` (CI) installs all, so CI checks every row
        files = set(listed.stdout.split())
        if name.startswith("/"):
            ok = name in files
        elif ".so." in name:
            ok = any(f.endswith("/" + name) for f in files)
        else:
            ok = any(f.endswith("/" + name) and "/bin/" in f or f.endswith("/sbin/" + name) for f in files)
            if pkg == "dash" and name == "sh":
                ok = "/bin/sh" in subprocess.run(["dpkg", "-S", "/bin/sh"], capture_output=True, text=True).stdout
        if not ok:
            wrong.append(f"{name}: {pkg} ships no such program")
    assert not wrong, wrong


def test_require_names_the_package_to_install(monkeypatch):
    shell_dir = str(Path(shutil.which("sh")).parent)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exception) as e:
        sysdeps.require(("mmdebstrap", "arch-test"), "building a s390x image")
    assert str(e.value) == ("building a s390x image needs arch-test, mmdebstrap: "
                            "apt-get install -y arch-test mmdebstrap")
    monkeypatch.setenv("PATH", shell_dir)
    sysdeps.require(("sh",), "a shell")  # present: no error
