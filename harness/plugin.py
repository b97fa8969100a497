"""The pytest plugin: matrix options, one parametrization per cell, xdist grouping, fixtures
and the outcome model (docs/ARCHITECTURE.md "Outcomes": failed = the product, error = the lab,
unsupported = cannot exist, skipped = not applicable here).

Any test that uses the `cell`, `node`, `host` or `cluster` fixture runs once per selected
cell; its id carries the cell id, which is also what `--cell` takes.
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import pytest

from .common.errors import InfraError, ProductFailure, Unavailable, UserError
from .host import debian
from .matrix.axes import AXES, FLAGS
from .matrix.cells import Cell, cells_for, default_matrix, split_values
from .matrix import kube_versions, releases

CELLS = pytest.StashKey[list]()
PARAMS = pytest.StashKey[list]()
ORDER = pytest.StashKey[tuple]()  # (cell ids longest first, the line saying how it was decided)


def pytest_addoption(parser):
    g = parser.getgroup("archmatrix", "archmatrix: run suites over the cells of matrix.yaml")
    g.addoption("--matrix", metavar="FILE", help="matrix file (default: matrix.yaml in the rootdir)")
    for axis, flag in FLAGS.items():
        g.addoption(flag, dest=f"am_{axis}", action="append", default=[], metavar="NAME[,NAME...]",
                    help=f"only cells with this {axis} (repeatable, comma-separated, aliases accepted)")
    g.addoption("--cell", dest="am_cell", action="append", default=[], metavar="ID[,ID...]",
                help="only these cells: an id (see `archmatrix list`), a prefix of one (s390x-debian12) or a "
                     "glob ('s390x-*-distro-*')")
    g.addoption("--shard", dest="am_shard", metavar="K/N",
                help="run the K-th of N deterministic slices of the selected cells (for CI matrices)")
    g.addoption("--reports-dir", dest="am_reports", default="reports", metavar="DIR",
                help="where node artifacts (serial logs, commands) go (default: reports)")
    g.addoption("--inventory", dest="am_inventory", metavar="FILE",
                help="hosts.yaml of real machines for provider ssh: adds an ssh cell per host's arch and distro "
                     "(with the matrix's kubernetes and bootstrapper axes); select them with --provider ssh")
    g.addoption("--docker-host", dest="am_docker_host", metavar="URL",
                help="Docker engine for provider docker (default: DOCKER_HOST, else a private dockerd the "
                     "run starts and stops)")
    g.addoption("--keep-nodes", dest="am_keep_nodes", default="never", choices=("never", "on-failure", "always"),
                help="leave nodes running after their cell's tests (on-failure: only cells with a failure or "
                     "error); `archmatrix gc --list` shows them with their ssh command, `archmatrix gc --kept` "
                     "stops them (default: never)")
    g.addoption("--kubeconfig", dest="am_kubeconfig", metavar="FILE",
                help="use this existing cluster instead of bootstrapping one")
    g.addoption("--artifacts", dest="am_artifacts", action="append", default=[], metavar="PATH",
                help="check release binaries with no node: a bin/ dir, a kubernetes-*-<os>-<arch>.tar.gz or a .deb. "
                     "A DIR laid out DIR/<arch>/{bin,images,snap} is also what kubeadm, microk8s and k3s install "
                     "from, air-gapped (images served from the harness registry); see README")
    g.addoption("--package-base", dest="am_package_base", metavar="URL",
                help="kubeadm: a mirror of https://pkgs.k8s.io (same path layout)")
    g.addoption("--k3s-version", dest="am_k3s_version", metavar="VERSION",
                help="k3s: pin INSTALL_K3S_VERSION, e.g. v1.32.3+k3s1 (default: the cell minor's channel)")
    g.addoption("--readiness", dest="am_readiness", action="store_true",
                help="first check the release's images for every selected platform; cells whose images are "
                     "missing are reported unsupported with the reason, before any node is provisioned")
    g.addoption("--recorded-nodes", dest="am_recorded", action="append", default=[], metavar="FILE",
                help="judge Node objects recorded from a real cluster (no API server needed); repeatable")
    g.addoption("--mirror", dest="am_mirror", metavar="URL",
                help="Debian mirror for base image builds (default: $ARCHMATRIX_DEBIAN_MIRROR, else the Debian "
                     "archive in this machine's apt sources)")
    g.addoption("--image-repository", dest="am_image_repository", default=None, metavar="HOST[/PATH]",
                help="where the release's images are checked, as kubeadm's imageRepository, e.g. registry.k8s.io "
                     "or a mirror (plain HTTP for loopback hosts). Registry checks are skipped without it, so "
                     "a run never reaches out to the network unasked")


def _selected(config) -> list[Cell] | None:
    path = config.getoption("matrix")
    if path is None:
        path = default_matrix(config.rootpath)
        if not path.is_file():
            return None
    filters = {axis: config.getoption(f"am_{axis}") for axis in AXES}
    own = bool(split_values(config.getoption("am_artifacts"))) and bootstrap_options(config).artifacts
    return cells_for(path, config.getoption("am_shard"), config.getoption("am_cell"),
                     inventory=config.getoption("am_inventory"), own_binaries=bool(own),
                     recorded_nodes=bool(split_values(config.getoption("am_recorded"))), **filters)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    # one worker owns one node: with -n, distribute by the cell's xdist group
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in ("no", "load"):
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    # xdist workers re-parse the command line, where dist is still "no": tell them it is loadgroup,
    # or they never add the group to their nodeids and the controller schedules test by test
    node.workerinput["archmatrix_loadgroup"] = node.config.option.dist == "loadgroup"
    # the controller's answers about upstream releases: workers ask nothing and agree with it
    node.workerinput["archmatrix_releases"] = releases.export()
    # the controller's cell order: every worker must collect the same items in the same order
    node.workerinput["archmatrix_order"] = node.config.stash.get(ORDER, ([], ""))[0]


def _children_running(marker: bytes) -> list[int]:
    """PIDs of this process's children whose command line contains `marker`."""
    import os

    me, found = os.getpid(), []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me \
                    and marker in (d / "cmdline").read_bytes():
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def _sigterm_as_ctrl_c(config) -> None:
    """SIGTERM (a CI job cancelled, `kill`) ends a run as Ctrl-C does: fixtures torn down, so every node
    is stopped by its PID, and results written. pytest's default would die on the spot. The controller
    passes it to its xdist workers as SIGINT, as a terminal's Ctrl-C reaches the whole process group."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return  # someone (nox, an embedding program) handles it already

    def on_term(signum, frame):
        if not hasattr(config, "workerinput"):
            for pid in _children_running(b"import sys;exec(eval(sys.stdin.readline()))"):  # execnet's workers
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)


def pytest_configure(config):
    config.addinivalue_line("markers", f"{NOT_HERE}(reason): the test cannot apply to this run; it is deselected "
                                       "at collection and counted under its reason")
    config.addinivalue_line("markers", f"{JUDGES}(field, words): a test of one binary judges this promise of the "
                                       "bootstrapper's Binary; deselected where the bootstrapper promises nothing")
    config.addinivalue_line("markers", f"{OWN_PAUSE}: the test compares the pause a bootstrapper ships itself "
                                       "(MicroK8s, k3s) with kubeadm's; deselected for the others")
    if getattr(config, "workerinput", {}).get("archmatrix_loadgroup"):
        config.option.loadgroup = True
    if "archmatrix_releases" in getattr(config, "workerinput", {}):
        releases.load(config.workerinput["archmatrix_releases"])
    try:
        debian.use_mirror(config.getoption("am_mirror"))
        cells = _selected(config)
    except UserError as e:
        raise pytest.UsageError(str(e)) from None
    missing = [p for p in split_values(config.getoption("am_recorded")) if not Path(p).is_file()]
    if missing:
        raise pytest.UsageError(f"--recorded-nodes {missing[0]}: file does not exist")
    if cells and config.getoption("am_readiness") and not hasattr(config, "workerinput"):
        cells = _readiness_stage(config, cells)
    config.stash[CELLS] = cells
    if cells:
        _sigterm_as_ctrl_c(config)
        if "archmatrix_order" in getattr(config, "workerinput", {}):
            config.stash[ORDER] = (config.workerinput["archmatrix_order"], "")
        else:
            from .matrix import order

            ordered, line = order.longest_first(cells, Path(config.getoption("am_reports")) / "results.json")
            config.stash[ORDER] = ([c.id for c in ordered], line)
    config.pluginmanager.register(_HostFixture(), "archmatrix-host-fixture")
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(ResultsCollector(config), "archmatrix-results")


def pytest_report_header(config):
    if config.stash.get(CELLS, None) is None:
        return None  # no matrix here: no release was resolved
    line = config.stash.get(ORDER, ([], ""))[1]
    return [kube_versions.source_summary()] + ([line] if line else []) + [f"warning: {w}" for w in releases.warnings()]


def _readiness_stage(config, cells):
    """First stage: cells whose release images are missing for their platform become
    unsupported (with the registry's answer as the reason) before any node is paid for."""
    from .matrix import kube_versions, platforms
    from .oci import readiness
    from .oci.client import Client

    repo = config.getoption("am_image_repository")
    if not repo:
        raise pytest.UsageError("--readiness needs --image-repository (e.g. registry.k8s.io or a mirror)")
    repo = repo.rstrip("/")
    client, verdicts = Client(), {}
    groups: dict = {}
    for c in cells:
        if not c.unsupported:
            groups.setdefault((c.kubernetes, c.os.os, c.os.os_version), set()).add(c.arch)
    for (minor, os, os_version), arches in groups.items():
        rows = readiness.check(kube_versions.resolve(minor), [platforms.arch(a) for a in sorted(arches)],
                               repo, os=os, os_version=os_version, client=client)
        for r in rows:
            if r.status in ("missing", "mismatch"):
                verdicts.setdefault((minor, os, r.platform.split("/")[1]), r.message)
    out = []
    for c in cells:
        reason = verdicts.get((c.kubernetes, c.os.os, c.arch))
        out.append(Cell(**c.axes(), unsupported=f"readiness: {reason}", taints=c.taints)
                   if reason and not c.unsupported else c)
    return out


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    params = metafunc.config.stash.get(PARAMS, None)
    if params is None:
        cells = metafunc.config.stash.get(CELLS, None)
        if cells is None:
            raise pytest.UsageError("no matrix: give --matrix FILE or put a matrix.yaml in the rootdir")
        params = metafunc.config.stash[PARAMS] = [_param(c) for c in cells]  # built once, shared
    metafunc.parametrize("cell", params, scope="function")


def _param(c):
    # an unsupported cell's tests are deselected at collection (pytest_collection_modifyitems)
    return pytest.param(c, id=c.id, marks=[pytest.mark.xdist_group(c.id)])


# ---- what cannot apply, ordering and the node pool ------------------------------------------

NO_NODE_RECORDED = "--recorded-nodes: recorded Node objects are judged, no node is provisioned to inspect"
NOT_HERE = "archmatrix_not_applicable"  # a mark: this test cannot apply to this run (its reason)
JUDGES = "archmatrix_judges"  # a mark on a binary's test: the promise (Binary field, words) it judges
OWN_PAUSE = "archmatrix_own_pause"  # a mark: the test compares a bootstrapper's own pause with kubeadm's
DESELECTED = pytest.StashKey["Deselection"]()


class Deselection:
    """The tests deselected at collection because they cannot apply by construction, counted per
    reason; the unsupported cells among them (each still reported, once, as `unsupported`); and
    how many cell tests were collected at all (0: not a matrix run)."""

    def __init__(self, reasons: dict | None = None, names: dict | None = None, unsupported: dict | None = None,
                 cell_items: int = 0):
        self.reasons = dict(reasons or {})  # reason -> count of tests
        self.names = {k: set(v) for k, v in (names or {}).items()}  # reason -> the binaries it names
        self.unsupported = dict(unsupported or {})  # cell id -> reason
        self.cell_items = cell_items

    def add(self, why: str | tuple[str, str]) -> None:
        why, name = why if isinstance(why, tuple) else (why, None)
        self.reasons[why] = self.reasons.get(why, 0) + 1
        if name is not None:
            self.names.setdefault(why, set()).add(name)

    def export(self) -> dict:
        return {"reasons": self.reasons, "names": {k: sorted(v) for k, v in self.names.items()},
                "unsupported": self.unsupported, "cell_items": self.cell_items}

    def lines(self) -> list[str]:
        if not self.reasons:
            return []
        cells: dict = {}
        for cid, why in self.unsupported.items():
            cells[f"unsupported: {why}"] = cells.get(f"unsupported: {why}", 0) + 1
        width = len(str(max(self.reasons.values())))
        out = [f"not judged, by construction (deselected at collection: {sum(self.reasons.values())} tests):"]
        for why, n in sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            where = f" [{cells[why]} cell{'s' if cells[why] > 1 else ''}]" if why in cells else ""
            named = f" {', '.join(sorted(self.names[why]))}" if why in self.names else ""
            out.append(f"  {n:{width}} {why}{named}{where}")
        return out


class _Applicable:
    """Why a test cannot apply to this run by construction (None: it can), from its cell and the
    fixtures it uses: known before any node exists, so it is deselected with its reason instead
    of reported as skipped, and a real skip stands out."""

    def __init__(self, config):
        self.config = config
        self.recorded = bool(config.getoption("am_recorded"))
        self.given = _cluster_given(config)
        self.repository = bool(config.getoption("am_image_repository"))
        self.made: dict = {}  # bootstrapper name -> the object (its plan and binaries; no node touched)
        self.installs: dict = {}  # cell -> {name: Binary} its bootstrapper installs

    def _bootstrapper(self, name):
        if name not in self.made:
            from . import bootstrap

            self.made[name] = bootstrap.get(name, bootstrap_options(self.config))
        return self.made[name]

    def why(self, item, cell) -> str | tuple[str, str] | None:
        if cell is None:
            mark = next((m for m in item.own_markers if m.name == NOT_HERE), None)
            return mark.args[0] if mark is not None else None
        if cell.unsupported:
            return f"unsupported: {cell.unsupported}"
        names = item.fixturenames
        if self.recorded and "node" in names:
            return NO_NODE_RECORDED
        if "cluster" in names and not self.given:
            from .bootstrap.capabilities import BringsUpCluster, Joins

            b = self._bootstrapper(cell.bootstrapper)
            if not isinstance(b, BringsUpCluster):
                return f"bootstrapper {cell.bootstrapper} brings up no cluster (node-level suites only)"
            if cell.control_plane and not isinstance(b, Joins):
                return f"bootstrapper {cell.bootstrapper} cannot join a control plane on another node"
        if "runtime" in names:
            from .bootstrap.capabilities import ConfiguresRuntime

            if not isinstance(self._bootstrapper(cell.bootstrapper), ConfiguresRuntime):
                return f"bootstrapper {cell.bootstrapper} configures no container runtime"
            if self.given:
                return "the cluster is given (--kubeconfig, --recorded-nodes): no node runtime was prepared"
        if item.get_closest_marker(OWN_PAUSE) and not getattr(self._bootstrapper(cell.bootstrapper), "own_pause", False):
            return f"bootstrapper {cell.bootstrapper} configures kubeadm's pause (nothing to compare)"
        if "image_repository" in names and not self.repository:
            return "no --image-repository given: registry checks run only when asked (e.g. registry.k8s.io)"
        binary = item.callspec.params.get("binary")
        if isinstance(binary, str):  # the binaries suite: one test per binary any bootstrapper installs
            if cell not in self.installs:
                self.installs[cell] = {b.name: b for b in self._bootstrapper(cell.bootstrapper).binaries(cell)}
            spec = self.installs[cell].get(binary)
            if spec is None:  # (reason, the binary): one summary line per reason names them all
                return f"bootstrapper {cell.bootstrapper} does not install", binary
            judges = next((m for m in item.own_markers if m.name == JUDGES), None)
            if judges is not None and getattr(spec, judges.args[0]) in (None, False):
                return f"bootstrapper {cell.bootstrapper} promises no {judges.args[1]} for", binary
        return None


@pytest.hookimpl(trylast=True)  # after -k and -m: what they deselect is the user's choice, not counted here
def pytest_collection_modifyitems(config, items):
    """Deselect what cannot apply by construction (counted per reason), then run each cell's tests
    together (stable sort: plain tests first, then cells longest first), so a worker holds one
    node at a time. Cheaper than session-scoped parametrization, whose generic reordering costs
    more than the rest of collection at 50,000 items."""
    cells = config.stash.get(CELLS, None)
    # longest expected cell first (matrix/order.py); cells it does not know keep matrix order after them
    known = config.stash.get(ORDER, ([], ""))[0]
    have = set(known)
    order = {cid: i for i, cid in enumerate([*known, *(c.id for c in cells or () if c.id not in have)])}
    rules = _Applicable(config)
    kept, dropped, found = [], [], Deselection()
    for item in items:
        cell = _cell_of(item)
        found.cell_items += cell is not None
        why = rules.why(item, cell)
        if why is None:
            kept.append(item)
            continue
        dropped.append(item)
        found.add(why)
        if cell is not None and cell.unsupported:
            found.unsupported[cell.id] = cell.unsupported
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept

    def key(item):
        cell = _cell_of(item)
        return -1 if cell is None else order.get(cell.id, -1)

    items.sort(key=key)
    config.stash[DESELECTED] = found
    if hasattr(config, "workeroutput"):  # xdist: the controller collects nothing; it reads this from a worker
        config.workeroutput["archmatrix_deselected"] = found.export()


def progress(config, cell, message: str) -> None:
    """A progress line for long steps; visible with or without -n (workers write to stderr)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    line = f"[archmatrix {time.strftime('%H:%M:%S')}] {cell.id}: {message}"
    # steps run inside a test's setup, where output is captured: step around it as live logging does
    with capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext():
        if reporter is not None and not hasattr(config, "workerinput"):
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr, flush=True)


class NodePool:
    """One live cell per worker. Its node, bootstrapper and cluster are made on first use and
    kept (failures too: a cell whose boot failed is not booted again for each test); all are
    released when a test of another cell starts, or at the end of the session. The services the
    cells share (the run's Lab) belong to the session, not to a cell."""

    def __init__(self, config, lab):
        self.config = config
        self.lab = lab
        self.cell = None
        self.values: dict = {}
        self.node = None
        self.failed = False  # a test of the live cell failed or errored (for --keep-nodes on-failure)
        self.keep = config.getoption("am_keep_nodes", "never")

    def get(self, cell, key, factory):
        if cell != self.cell:
            self.release()
            self.cell = cell
        if key not in self.values:
            try:
                self.values[key] = (True, factory())
            except (Exception, pytest.skip.Exception, pytest.fail.Exception) as e:
                # kept, whatever it is: every test of the cell reports this one (a failed bootstrap
                # step is not run again for each test, a product failure not retried)
                self.values[key] = (False, e)
        ok, value = self.values[key]
        if not ok:
            raise value
        return value

    def release(self):
        node, cell, failed = self.node, self.cell, self.failed
        self.node, self.values, self.cell, self.failed = None, {}, None, False
        if node is None:
            return
        if self.keep == "always" or (self.keep == "on-failure" and failed):
            how = node.detach()
            if how:
                progress(self.config, cell, f"node kept ({'failed' if failed else 'always'}): {how}")
                return
        try:
            node.teardown()
        except Exception as e:  # noqa: BLE001 - the cell's tests are judged: stopping its node never changes that
            progress(self.config, cell, f"stopping the node: {type(e).__name__}: {e} (`archmatrix gc` reaps what is left)")

    def provision(self, cell):
        from . import nodes

        out = Path(self.config.getoption("am_reports")) / "artifacts" / cell.id
        provider = nodes.get(cell.provider, progress=lambda m: progress(self.config, cell, m),
                             keep_nodes=self.keep != "never", inventory=self.config.getoption("am_inventory"),
                             lab=self.lab)
        progress(self.config, cell, f"provisioning with {cell.provider}")
        try:
            self.node = provider.provision(cell, out)
        except Unavailable as e:
            pytest.skip(f"{cell.provider}: {e}")
        except InfraError as e:
            if not e.retryable:
                raise
            progress(self.config, cell, f"infrastructure error, retrying once: {e}")
            self.node = provider.provision(cell, out)
        progress(self.config, cell, f"node ready ({self.node.facts.get('provision_seconds')} s)")
        return self.node


POOL = pytest.StashKey[NodePool]()


@pytest.fixture(scope="session")
def _archmatrix_pool(request):
    """The session's node pool and its Lab: the run starts the services it needs through them, and
    stops them here (nodes first, then the registry they pulled from and the Docker engine)."""
    from .services.lab import Lab

    with Lab(docker_host=request.config.getoption("am_docker_host")) as lab:
        pool = request.config.stash[POOL] = NodePool(request.config, lab)
        try:
            yield pool
        finally:
            pool.release()


@pytest.fixture
def node(cell, _archmatrix_pool):
    """The cell's node, provisioned once per cell; a retryable infrastructure error is retried once.
    Never with --recorded-nodes (tests that need one are deselected; this skips a dynamic ask)."""
    if _archmatrix_pool.config.getoption("am_recorded"):
        pytest.skip(NO_NODE_RECORDED)
    return _archmatrix_pool.get(cell, "node", lambda: _archmatrix_pool.provision(cell))


class _HostFixture:
    """pytest-testinfra's plugin has its own `host` fixture (parametrized by --hosts). Ours is
    registered from pytest_configure, after every entry-point plugin, so it is the one used."""

    @pytest.fixture
    def host(self, node):
        """The node as a testinfra Host (one connection per node, reused)."""
        return node.host


def bootstrap_options(config):
    from .bootstrap import airgap
    from .bootstrap.base import Options

    return Options(artifacts=airgap.find(split_values(config.getoption("am_artifacts"))),
                   package_base=config.getoption("am_package_base"), k3s_version=config.getoption("am_k3s_version"))


def _cluster_given(config) -> bool:
    """--recorded-nodes or --kubeconfig: the cluster comes from outside, no node is bootstrapped."""
    return bool(config.getoption("am_recorded") or config.getoption("am_kubeconfig"))


def _the_bootstrapper(cell, config, pool):
    """The cell's bootstrapper object (made once per cell), its node not touched yet."""
    from . import bootstrap

    return pool.get(cell, "bootstrapper", lambda: bootstrap.get(cell.bootstrapper, bootstrap_options(config),
                                                                pool.lab))


@pytest.fixture
def bootstrapper(cell, request, _archmatrix_pool):
    """The cell's bootstrapper; unless the cluster is given, the node is prepared by it once."""
    b = _the_bootstrapper(cell, request.config, _archmatrix_pool)
    if not _cluster_given(request.config):
        b.check(cell)  # a cell that cannot run is refused before its node is started
        node = request.getfixturevalue("node")

        def prepare():
            t0 = time.monotonic()
            b.prepare(node, cell, progress=lambda m: progress(request.config, cell, m))
            if "bootstrap" in node.facts:  # it did prepare something (bootstrapper none does not)
                node.facts["bootstrap_seconds"] = round(time.monotonic() - t0, 1)
            return True

        _archmatrix_pool.get(cell, "prepared", prepare)
    return b


@pytest.fixture
def runtime(cell, request, _archmatrix_pool):
    """The cell's bootstrapper as the container runtime it configured on the prepared node: the
    ConfiguresRuntime capability. Skipped when the bootstrapper configures none, or when no node
    was prepared (the cluster is given)."""
    from .bootstrap.capabilities import ConfiguresRuntime

    if not isinstance(_the_bootstrapper(cell, request.config, _archmatrix_pool), ConfiguresRuntime):
        pytest.skip(f"bootstrapper {cell.bootstrapper} configures no container runtime")
    if _cluster_given(request.config):
        pytest.skip("the cluster is given (--kubeconfig, --recorded-nodes): no node runtime was prepared")
    return request.getfixturevalue("bootstrapper")


@pytest.fixture
def cluster(cell, request, _archmatrix_pool):
    """The cell's cluster: given (--kubeconfig, --recorded-nodes), or brought up on the node by a
    bootstrapper that can (BringsUpCluster; on a control plane elsewhere, one that Joins)."""
    from .bootstrap.capabilities import BringsUpCluster, Cluster, Joins, RecordedCluster

    def make():
        recorded = split_values(request.config.getoption("am_recorded"))
        if recorded:  # checked to exist in pytest_configure
            return RecordedCluster([Path(p) for p in recorded])
        given = request.config.getoption("am_kubeconfig")
        if given:
            return Cluster(Path(given))
        b = _the_bootstrapper(cell, request.config, _archmatrix_pool)
        if not isinstance(b, BringsUpCluster):
            pytest.skip(f"bootstrapper {cell.bootstrapper} brings up no cluster (node-level suites only)")
        if cell.control_plane and not isinstance(b, Joins):
            pytest.skip(f"bootstrapper {cell.bootstrapper} cannot join a control plane on another node")
        try:
            return request.getfixturevalue("bootstrapper").install(request.getfixturevalue("node"), cell)
        except Unavailable as e:  # a rehearsal stops where a real Kubernetes binary must act: skipped, saying so
            pytest.skip(str(e))

    return _archmatrix_pool.get(cell, "cluster", make)


@pytest.fixture(scope="session")
def registry_client():
    """One OCI distribution client (one connection pool, cached tokens) for the whole run."""
    from .oci.client import Client

    return Client()


@pytest.fixture(scope="session")
def image_repository(request) -> str:
    repo = request.config.getoption("am_image_repository")
    if not repo:
        pytest.skip("no --image-repository given: pass --image-repository registry.k8s.io (or a mirror) "
                    "to check the published images")
    return repo.rstrip("/")


# ---- outcomes and properties --------------------------------------------------------------

def _cell_of(item):
    spec = getattr(item, "callspec", None)
    return spec.params.get("cell") if spec is not None else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    cell = _cell_of(item)
    if cell is not None:  # before setup, so every phase's report carries them (and they reach xdist's controller)
        item.user_properties.extend((f"archmatrix.{k}", v) for k, v in cell.axes().items())
        item.user_properties.append(("archmatrix.cell", cell.id))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    cell = _cell_of(item)
    if cell is None:
        return
    pool = item.config.stash.get(POOL, None)
    if rep.failed and pool is not None and pool.cell == cell:
        pool.failed = True
    if call.excinfo is not None and call.excinfo.errisinstance((InfraError, ProductFailure)):
        err = call.excinfo.value
        rep.longrepr = err.report()
        item.user_properties.extend((f"archmatrix.artifact.{k}", str(v)) for k, v in err.artifacts.items())
        if rep.when == "call" and isinstance(err, InfraError):  # the node went away during the test: the lab's
            item.user_properties.append(("archmatrix.infra_error", rep.when))
    if rep.when == "call":
        cl = item.funcargs.get("cluster")
        if cl is not None:
            item.user_properties.append(("archmatrix.cluster", cl.kind))
        node = item.funcargs.get("node")
        if node is not None:
            item.user_properties.extend((f"archmatrix.{k}", v) for k, v in node.facts.items())
    # the report was made before the lines above: give it what they added (artifacts of a setup error too)
    rep.user_properties = list(item.user_properties)


PRODUCT_FAILURE = pytest.StashKey[ProductFailure]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    """A product failure met while setting a test up (a bootstrap step of the product, a required
    binary missing, no node registered) is the test's verdict: the setup stops there and the
    test's call fails with it (`failed`, F, a JUnit <failure>, under xdist too), where a setup
    error would read as the lab's."""
    try:
        return (yield)
    except ProductFailure as e:
        item.stash[PRODUCT_FAILURE] = e
        return None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    failure = pyfuncitem.stash.get(PRODUCT_FAILURE, None)
    if failure is not None:
        raise failure


def pytest_report_teststatus(report, config):
    """An InfraError raised inside a test (a node lost mid-test) reads as an error, not a failure."""
    if report.when == "call" and report.failed and ("archmatrix.infra_error", "call") in report.user_properties:
        return "error", "E", "ERROR"


# ---- results.json and the terminal grid (on the controller only) -----------------------------

class ResultsCollector:
    """Gathers every phase report of every cell test (under xdist: as the controller receives
    them) and what was deselected at collection, writes results.json at the end (an unsupported
    cell as one `unsupported` record), prints the cell grid, and makes a run in which nothing was
    judged exit 5, not 0."""

    def __init__(self, config):
        self.config = config
        self.phases: dict[str, dict] = {}
        self.crashed: dict[str, object] = {}  # nodeid -> xdist's crash report
        self.judged = 0  # tests that passed or failed (cell tests or not)
        self.deselected: Deselection | None = None
        self.run = self.path = self.exitstatus = None

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and (report.passed or report.failed):
            self.judged += 1
        if any(k == "archmatrix.cell" for k, _ in report.user_properties):
            self.phases.setdefault(report.nodeid, {})[report.when] = report
        elif report.when not in ("setup", "call", "teardown") and report.failed:
            # xdist's report of a crashed worker (SIGKILL, OOM) carries none of the item's properties: it
            # joins the test's earlier phases, or stands for the test when it crashed before setup ended
            self.crashed[report.nodeid] = report

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        got = getattr(node, "workeroutput", {}).get("archmatrix_deselected")
        if got is not None and self.deselected is None:  # every worker collected the same items
            self.deselected = Deselection(**got)

    def build(self):
        from .report import results

        run = results.new_run(self.config.getoption("am_shard"))
        cells = {c.id: c for c in self.config.stash.get(CELLS, None) or ()}
        for nodeid, rep in self.crashed.items():
            cell = max((c for cid, c in cells.items() if cid in nodeid), key=lambda c: len(c.id), default=None)
            if nodeid in self.phases or cell is not None:
                phases = self.phases.setdefault(nodeid, {})
                phases["crash"] = rep
                if not any(k == "archmatrix.cell" for r in phases.values() for k, _ in r.user_properties):
                    rep.user_properties = [*((f"archmatrix.{k}", v) for k, v in cell.axes().items()),
                                           ("archmatrix.cell", cell.id)]
        for nodeid, phases in self.phases.items():
            props = {}
            for r in phases.values():
                props.update(dict(r.user_properties))
            outcome, message, seconds = results.outcome_of(phases)
            cell = props.pop("archmatrix.cell")
            short = {k.removeprefix("archmatrix."): v for k, v in props.items() if k.startswith("archmatrix.")}
            axes = {a: short.pop(a) for a in AXES if a in short}
            artifacts = {k.removeprefix("artifact."): short.pop(k) for k in list(short) if k.startswith("artifact.")}
            test = nodeid.split("@")[0]
            run.records.append(results.Record(cell, test, outcome, round(seconds, 3), message, axes, short, artifacts))
            run.inputs.setdefault(cell, results.fingerprint(axes, short))
        for cid, why in self.deselected.unsupported.items() if self.deselected else ():
            axes = cells[cid].axes() if cid in cells else {}
            run.records.append(results.Record(cid, results.WHOLE_CELL, "unsupported", 0.0, f"unsupported: {why}", axes))
            run.inputs.setdefault(cid, results.fingerprint(axes, {}))
        run.finished = time.time()
        return run

    def pytest_sessionfinish(self, session, exitstatus):
        if self.deselected is None:
            self.deselected = self.config.stash.get(DESELECTED, None)
        if self.config.option.collectonly or not self.phases and not (self.deselected and self.deselected.cell_items):
            return  # not a matrix run, or nothing run on purpose: the plugin writes nothing
        from .report import results

        self.run = self.build()
        self.path = results.save(self.run, Path(self.config.getoption("am_reports")) / "results.json")
        if self.judged == 0 and session.exitstatus == pytest.ExitCode.OK:
            # only skips (or nothing left after deselection): not a green run
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        self.exitstatus = session.exitstatus

    def pytest_terminal_summary(self, terminalreporter):
        lines = self.deselected.lines() if self.deselected else []
        if self.run is None:  # --collect-only: what would not be judged, and why
            if lines:
                terminalreporter.section("archmatrix")
                for line in lines:
                    terminalreporter.write_line(line)
            return
        from .report import console

        terminalreporter.section("archmatrix")
        for line in lines + console.grid(self.run):
            terminalreporter.write_line(line)
        if self.judged == 0:
            code = " (exit 5)" if self.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED else ""
            terminalreporter.write_line(f"run: nothing judged: no test passed or failed{code}; the lines above say why",
                                        yellow=True, bold=True)
        terminalreporter.write_line(f"results: {self.path}   dashboard: archmatrix report {self.path} --out reports/site")
