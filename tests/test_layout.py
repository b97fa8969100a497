"""The house: harness/'s import graph, module-level and function-level imports alike, has no
circles, and no module lies loose at the top of harness/ but the entry points (plugin, cli).
The graph is read from the source with `ast` (nothing is imported), so an import hidden in a
function counts as much as one at the top of a file."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

ENTRY_POINTS = {"plugin.py", "cli.py", "__init__.py"}


def modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module below `package` (a package is its __init__.py)."""
    out = {}
    for f in sorted(package.rglob("*.py")):
        parts = f.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _resolve(name: str, known: dict) -> str | None:
    """The module a dotted import name lands in: the longest known prefix (`a.b.f` -> `a.b`)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports(name: str, path: Path, known: dict) -> set[str]:
    """Every module of `known` that `name` imports, wherever the import statement is. Importing
    `a.b.c` also runs `a/__init__` and `a/b/__init__`: those count too, unless they are packages
    `name` itself lives in (already being imported when it runs)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [_resolve(a.name, known) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            if node.level:
                base = ".".join(x for x in (base, node.module) if x)
            else:
                base = node.module
            for a in node.names:
                sub = f"{base}.{a.name}"
                targets.append(sub if sub in known else _resolve(base, known))
        for t in filter(None, targets):
            found.add(t)
            found.update(a for a in _ancestors(t) if a in known and a not in _ancestors(name) and a != name)
    found.discard(name)
    return found


def graph(package: Path) -> dict[str, set[str]]:
    known = modules(package)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The shortest circle through each module that is on one (`a -> b -> a`), each circle once."""
    found, seen = [], set()
    for start in sorted(g):
        came_from, queue, end = {start: None}, [start], None
        while queue and end is None:  # breadth first: the shortest way back to `start`
            here = queue.pop(0)
            for t in sorted(g.get(here, ())):
                if t == start:
                    end = here
                    break
                if t not in came_from:
                    came_from[t] = here
                    queue.append(t)
        if end is None:
            continue
        path = [end]
        while path[-1] != start:
            path.append(came_from[path[-1]])
        circle = path[::-1] + [start]
        if frozenset(circle) not in seen:
            seen.add(frozenset(circle))
            found.append(circle)
    return found


def loose(package: Path) -> list[str]:
    return sorted(f.name for f in package.glob("*.py") if f.name not in ENTRY_POINTS)


def test_harness_has_no_import_circles():
    found = cycles(graph(ROOT / "harness"))
    assert not found, "import circles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_module_is_loose_at_the_top_of_harness():
    assert loose(ROOT / "harness") == [], "modules outside the folders that name the parts"


def _tree(tmp_path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / "pkg" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
    return tmp_path / "pkg"


@pytest.mark.parametrize("files,circle", [
    # a circle hidden in a function, through a relative import
    ({"__init__.py": "", "a.py": "from . import b\n", "b.py": "def f():\n    from .a import x\n"},
     ["pkg.a", "pkg.b", "pkg.a"]),
    # a package's __init__ that imports a module which imports a sibling of the package's
    ({"__init__.py": "", "p/__init__.py": "from ..q import y\n", "p/m.py": "", "q.py": "import pkg.p.m\n"},
     ["pkg.p", "pkg.q", "pkg.p"]),
])
def test_circles_are_found_wherever_the_import_is(tmp_path, files, circle):
    assert circle in cycles(graph(_tree(tmp_path, files)))


def test_a_clean_tree_passes(tmp_path):
    pkg = _tree(tmp_path, {"__init__.py": "", "cli.py": "from .p import m\n", "p/__init__.py": "from . import m\n",
                           "p/m.py": "from ..q import z\nfrom . import n\n", "p/n.py": "", "q/__init__.py": "",
                           "q/z.py": "import os\n"})
    assert cycles(graph(pkg)) == [] and loose(pkg) == []
    (pkg / "stray.py").write_text("")
    assert loose(pkg) == ["stray.py"]


def test_every_test_file_that_boots_nodes_is_in_the_node_group():
    """Under `nox -s tests` (-n 2) node files run as one group; a file that boots QEMU, builds an image
    or starts dockerd outside it would run beside them and meet their machine-wide checks."""
    import re

    from conftest import NODE_FILES

    here = Path(__file__).parent
    assert NODE_FILES <= {p.name for p in here.glob("test_*.py")}, NODE_FILES  # no stale name
    starts = re.compile(r"QemuProvider\(|\bqemu\.QemuNode\(|images\.build\(\s*platforms|dockerd\.(start|Engine)|"
                        r"freshroot\.(main|run)|runner\.run\(\[CELL")
    stops_first = {"test_debian_mirror.py"}  # its build stops before mmdebstrap, in a cache of its own
    outside = [p.name for p in here.glob("test_*.py")
               if p.name not in NODE_FILES | stops_first and starts.search(p.read_text())]
    assert outside == [], outside


def test_the_node_group_reaches_xdist(tmp_path):
    """The mark must be on the items before xdist turns it into the nodeid's `@nodes` (its hook ran
    first once, and both workers booted QEMU at the same time)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
                          "tests/test_qemu.py", "-k", "command_line_comes_from_the_table and amd64"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "test_command_line_comes_from_the_table[amd64]@nodes" in out.stdout, out.stdout[-2000:]
