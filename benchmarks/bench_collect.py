"""Collection cost of a 5,000-cell matrix with 10 tests per cell, against plain
pytest.mark.parametrize over the same 50,000 ids, and `archmatrix list` for that matrix.
The plugin's side includes deselecting what cannot apply (the unsupported cells' tests).
Goal: ratio <= 1.5; list < 1 s."""
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from harness.matrix import cells as matrix

# 5 arches x 5 distros x 10 releases x 5 bootstrappers x 4 providers = 5,000 cells
MATRIX = """
axes:
  arch: [amd64, arm64, arm, ppc64le, s390x]
  distro: [debian12, debian13, ubuntu2204, ubuntu2404, windows2022]
  kubernetes: ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33", "1.34", "1.35", "1.36"]
  bootstrapper: [none, distro, kubeadm, microk8s, k3s]
  provider: [qemu, ssh, docker, local]
"""
TESTS = "\n".join(f"def test_{i}(cell):\n    pass\n" for i in range(10))


def timed(cmd, cwd, runs=3):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"benchmark command failed: {' '.join(cmd)}\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return statistics.median(times), p.stdout


def main():
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        (d / "matrix.yaml").write_text(MATRIX)
        ids = [c.id for c in matrix.cells_for(d / "matrix.yaml")]
        assert len(ids) == 5000, len(ids)
        (d / "plugin").mkdir()
        (d / "plugin" / "test_cells.py").write_text(TESTS)
        (d / "plain").mkdir()
        (d / "plain" / "ids.txt").write_text("\n".join(ids))
        (d / "plain" / "test_plain.py").write_text(textwrap.dedent("""
            import pathlib, pytest
            IDS = pathlib.Path(__file__).with_name("ids.txt").read_text().split()
            """) + "\n".join(f"@pytest.mark.parametrize('cell', IDS, ids=IDS)\ndef test_{i}(cell):\n    pass\n"
                             for i in range(10)))
        base = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
        plugin_s, out = timed(base + ["--matrix", str(d / "matrix.yaml"), "plugin"], d)
        # the unsupported cells' tests are collected, then deselected with their reasons
        got = re.search(r"(\d+)/50000 tests collected \((\d+) deselected\)", out)
        assert got and int(got[1]) + int(got[2]) == 50000, out[-300:]
        plain_s, out = timed(base + ["-p", "no:harness.plugin", "plain"], d)
        assert "50000 tests collected" in out, out[-300:]
        list_s, out = timed([str(Path(sys.executable).parent / "archmatrix"), "list", "--matrix",
                             str(d / "matrix.yaml")], d)
        assert len(out.splitlines()) == 5000
    print(f"collect 5,000 cells x 10 tests (50,000 items): plugin {plugin_s:.2f} s, "
          f"plain parametrize {plain_s:.2f} s, ratio {plugin_s / plain_s:.2f} (goal <= 1.5)")
    print(f"archmatrix list for 5,000 cells: {list_s:.2f} s (goal < 1 s)")
