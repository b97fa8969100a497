"""`archmatrix` command line. Every subcommand turns a UserError into one line on stderr and exit 2."""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .common.errors import InfraError, Unavailable, UserError
from .matrix.axes import AXES, FLAGS
from .matrix.cells import Cell, cells_for, default_matrix, split_values


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--matrix", default=None, metavar="FILE", help="matrix file (default: ./matrix.yaml)")
    for axis, flag in FLAGS.items():
        p.add_argument(flag, dest=axis, action="append", default=[], metavar="NAME[,NAME...]",
                       help=f"only cells with this {axis} (repeatable, comma-separated, aliases accepted)")
    p.add_argument("--cell", action="append", default=[], metavar="ID[,ID...]",
                   help="only these cells: an id, a prefix of one (s390x-debian12) or a glob ('s390x-*-distro-*')")
    p.add_argument("--shard", metavar="K/N", help="the K-th of N deterministic slices")
    p.add_argument("--inventory", metavar="FILE", help="hosts.yaml: adds provider ssh cells for its hosts")


def _cells(args) -> list[Cell]:
    path = args.matrix or default_matrix()
    return cells_for(path, args.shard, args.cell, inventory=getattr(args, "inventory", None),
                     **{a: getattr(args, a) for a in AXES})


def _one_cell(args, own_binaries: bool = False) -> Cell:
    """The one cell `archmatrix plan|up CELL` acts on (CELL as --cell takes it: id, prefix or glob)."""
    cells = cells_for(args.matrix or default_matrix(), cell_ids=[args.cell], inventory=args.inventory,
                      own_binaries=own_binaries)
    if len(cells) > 1:
        more = ", ".join(c.id for c in cells[:3]) + (", ..." if len(cells) > 3 else "")
        raise UserError(f"{args.cell}: matches {len(cells)} cells ({more}); give one cell")
    return cells[0]


def _release_source() -> None:
    """Where the release list came from, and any warning about it: on stderr, so stdout stays the ids."""
    from .matrix import kube_versions, releases

    for line in [kube_versions.source_summary()] + [f"warning: {w}" for w in releases.warnings()]:
        print(line, file=sys.stderr)


def cmd_list(args) -> int:
    cells = _cells(args)
    _release_source()
    if args.image_keys:
        from .nodes import PROVIDERS
        from .nodes.images import build as images

        # what a CI cache of the image cache is keyed by: these names are the cache's entries
        for k in sorted({images.key(c.platform, c.os) for c in cells
                         if not c.unsupported and PROVIDERS.entry(c.provider).base_image}):
            print(k)
    elif args.json:
        json.dump([{"id": c.id, **c.axes(), "unsupported": c.unsupported} for c in cells], sys.stdout, indent=1)
        print()
    else:
        for c in cells:
            print(c.id + (f"  (unsupported: {c.unsupported})" if c.unsupported else ""))
    return 0


def cmd_deps(args) -> int:
    from .host import sysdeps

    pkgs = sysdeps.test_packages() if args.tests else sysdeps.for_cells(_cells(args))
    if args.suites:
        pkgs = pkgs | sysdeps.packages(sysdeps.REGISTRY_PROGRAMS)
    done = sysdeps.ensure(pkgs, install=args.install)
    gone = sysdeps.missing(pkgs)
    print(f"archmatrix: system packages ready ({len(pkgs)} needed, {len(done)} installed now)"
          if not gone else f"archmatrix: still missing: {' '.join(gone)}")
    return 0 if not gone else 1


def cmd_doctor(args) -> int:
    from .host import debian
    from .host import doctor

    debian.use_mirror(args.mirror)
    cells = [] if args.tests and not any(getattr(args, a) for a in AXES) and not args.cell else _cells(args)
    checks, users = doctor.run(cells, suites=args.suites, tests=args.tests, given_mirror=args.mirror)
    blocked = doctor.report(checks, users)
    runnable = [c for c in cells if not c.unsupported]
    if blocked:
        sys.stdout.flush()
        print(f"archmatrix doctor: {len(blocked)} of {len(runnable) + args.tests} selected cannot run here "
              f"({', '.join(blocked[:3])}{', ...' if len(blocked) > 3 else ''}): fix the FAIL lines above",
              file=sys.stderr)
        return 1
    what = " and ".join(([f"{len(runnable)} selected cell{'s' * (len(runnable) != 1)}"] if cells else [])
                        + (["the harness's tests"] if args.tests else []))
    print(f"archmatrix doctor: {what} can run here")
    return 0


def cmd_check_artifacts(args) -> int:
    from .binaries import release as artifacts
    from .matrix import kube_versions

    release = kube_versions.resolve(args.k8s) if args.k8s else None
    failed = total = 0
    for path in args.paths:
        for a in artifacts.scan(path, args.arch):
            for v in artifacts.check(a, release):
                total += 1
                failed += not v.ok
                tag = "FAIL" if not v.ok else ("WARN" if v.warning else "ok  ")
                if not v.ok or v.warning or args.verbose:
                    print(f"{tag} {v.message}")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_readiness(args) -> int:
    import time

    from .matrix import kube_versions, platforms
    from .oci import readiness

    release = kube_versions.resolve(args.k8s)
    arches = [platforms.arch(a) for a in split_values(args.arch)] or [
        platforms.arch(a) for a in platforms.distro("debian13").arches]
    extra = readiness.load_images(args.images) if args.images else []
    t0 = time.perf_counter()
    rows = readiness.check(release, arches, args.registry.rstrip("/"), extra, args.os, args.os_version)
    took = time.perf_counter() - t0
    print(readiness.table(rows))
    print(f"Kubernetes {release.minor} at {args.registry}: {len(rows)} image x platform checks in {took:.2f} s")
    if args.json:
        Path(args.json).write_text(readiness.to_json(rows))
    if args.junit:
        Path(args.junit).write_text(readiness.to_junit(rows, release.minor))
    return 0 if all(r.ok for r in rows) else 1


def cmd_report(args) -> int:
    from .report import dashboard, results, testgrid

    paths = []
    for given in args.results:
        p = Path(given)
        paths += sorted(p.rglob("results.json")) if p.is_dir() else [p]
    if not paths:
        raise UserError(f"report: no results.json under {' '.join(args.results)}")
    runs = [results.load(p) for p in paths]
    if len(runs) > 1 and not args.merge:
        raise UserError(f"report: {len(runs)} results given; pass --merge to join the shards of one run")
    run = results.merge(runs) if args.merge else runs[0]
    history = []
    if args.history:
        hdir = Path(args.history)
        if hdir.exists() and not hdir.is_dir():
            raise UserError(f"--history {hdir}: not a directory")
        if not hdir.exists():
            print(f"archmatrix report: no history yet ({hdir} does not exist): this run starts it")
        else:
            history = [h for h in (results.load(p) for p in sorted(hdir.rglob("*.json"))) if h.id != run.id]
    history.sort(key=lambda r: r.started)
    out = Path(args.out)
    saved = results.save(run, out / "results.json")
    (out / "history").mkdir(exist_ok=True)
    shutil.copyfile(saved, out / "history" / f"{run.id}.json")  # publish this dir; feed it back as --history
    testgrid.write(run, out / "testgrid")
    page = dashboard.render(history + [run], out)
    print(f"archmatrix report: {len(run.records)} records, {len(history)} earlier runs -> {page}")
    print(f"  TestGrid layout: {out / 'testgrid'}   JUnit: {out / 'testgrid' / 'artifacts'}")
    return 0


def cmd_verdict(args) -> int:
    """Exit 1 when a cell of the run failed or errored: a CI's last step, after it published the dashboard."""
    from collections import Counter

    from .report import results

    run = results.load(args.results)
    bad = sorted({r.cell for r in run.records if r.outcome in ("failed", "error")})
    counts = Counter(r.outcome for r in run.records)
    print(f"archmatrix verdict: run {run.id}: {len({r.cell for r in run.records})} cells, "
          + ", ".join(f"{n} {o}" for o, n in counts.most_common()))
    for cell in bad:
        print(f"  failed or errored: {cell}")
    return 1 if bad else 0


def cmd_images(args) -> int:
    from .matrix import platforms
    from .nodes.images import build as images
    from .nodes.images import cache

    if args.action == "list":
        for d in sorted(images.images_dir().iterdir()):
            if d.is_dir() and not d.name.startswith("."):
                ok = cache.complete(d)
                m = json.loads((d / "manifest.json").read_text()) if ok else {}
                size = sum(f.stat().st_size for f in d.iterdir()) / 1e6
                print(f"{d.name:32} {'complete' if ok else 'INCOMPLETE'} {size:7.0f} MB "
                      f"{m.get('kernel', '')} built in {m.get('build_seconds', '?')} s")
        return 0
    pairs = [(platforms.arch(a), platforms.distro(d)) for a in split_values(args.arch) or ["amd64"]
             for d in split_values(args.distro) or ["debian12"]]
    bad = 0
    if args.action == "import":
        from .nodes.images import cloud

        if len(pairs) != 1 or not (args.source and args.kernel and args.initrd):
            raise UserError("images import: give one --arch, one --distro, the image, --kernel and --initrd")
        (p, d), = pairs
        print(cloud.import_image(p, d, args.source, args.kernel, args.initrd, images.images_dir() / images.key(p, d),
                                 progress=lambda m: print(f"archmatrix: {m}", flush=True)))
        return 0
    if args.action == "build":
        from concurrent.futures import ThreadPoolExecutor

        from .host import debian

        debian.use_mirror(args.mirror)

        def one(pair):  # each build is mostly one emulated process: two at once use both cores
            return images.build(*pair, progress=lambda m: print(f"archmatrix: {m}", flush=True))

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            try:
                for img in pool.map(one, pairs):
                    print(f"{img.path}")
            except KeyboardInterrupt:
                cache.cancel()  # Ctrl-C reaches this thread only: stop the builds in the others
                raise
        return 0
    for p, d in pairs:
        if args.action == "verify":
            img = images.lookup(p, d)
            problems = ["not built (or incomplete)"] if img is None else cache.verify(img)
            bad += bool(problems)
            print(f"{d.name}/{p.name}: " + ("ok" if not problems else "; ".join(problems)))
        elif args.action == "rm":
            path = images.images_dir() / images.key(p, d)
            shutil.rmtree(path, ignore_errors=True)
            print(f"removed {path}")
    return 1 if bad else 0


def cmd_gc(args) -> int:
    from .nodes import qemu
    from .services import dockerd

    engines = dockerd.reap(dry_run=args.list)
    for d in engines:
        print(f"{'would remove' if args.list else 'removed'} docker engine dir {d} (owner is gone)")
    found = qemu.reap(dry_run=args.list, kept=args.kept)
    for f in found:
        why = "kept by --keep-nodes" if f.get("kept") else f"owner {f['owner']} is gone"
        print(f"{'would stop' if args.list else 'stopped'}: {f['cell']} qemu pid {f['pid']} ({why})")
    shown = [f["pid"] for f in found]
    for rec in sorted(qemu.run_dir().glob("*.json")) if args.list else ():
        f = json.loads(rec.read_text())
        if f["pid"] in shown:
            continue
        state = "kept" if f.get("kept") else f"running (owner {f['owner']})"
        reach = f.get("ssh") or "port %s" % f["port"]
        print(f"{state}: {f['cell']} qemu pid {f['pid']}: {reach}")
        shown.append(f["pid"])
    if not shown and not engines:
        print("archmatrix gc: nothing to do")
    return 0


def cmd_testhosts(args) -> int:
    from .lab import testhosts

    inv = Path(args.inventory)
    if args.action == "up":
        hosts = testhosts.up(inv, split_values(args.host) or ["alpha:amd64:debian12"])
        for h in hosts:
            print(f"{h.name}: sshd pid {h.pid} in netns {h.ns} at {h.address}:22 (claims {h.claims_arch}/"
                  f"{h.claims_distro})")
        print(f"inventory: {inv}   stop them: archmatrix testhosts down --inventory {inv}")
    else:
        for h in testhosts.down(inv):
            print(f"{h.name}: stopped sshd pid {h.pid}, deleted netns {h.ns}")
    return 0


def cmd_plan(args) -> int:
    """Every command the cell's bootstrapper would run, on which node, without running it."""
    from . import bootstrap
    from .bootstrap import airgap
    from .bootstrap.base import Options

    cell = _one_cell(args, own_binaries=bool(args.artifacts))
    if cell.unsupported:
        print(f"{cell.id}: unsupported: {cell.unsupported}")
    art = None
    if args.artifacts:
        art = airgap.find([args.artifacts])
        if art is None:
            raise UserError(f"--artifacts {args.artifacts}: not a directory laid out as DIR/<arch>/bin|images|snap")
    opts = Options(artifacts=art, package_base=args.package_base, k3s_version=args.k3s_version)
    steps = bootstrap.get(cell.bootstrapper, opts).plan(cell)
    if not steps:
        print(f"{cell.id}: bootstrapper {cell.bootstrapper} runs nothing")
    heads = {"prepare": "prepare: node-level, before any suite runs",
             "install": "install: the cluster (when a suite asks for one)"}
    phase = None
    for i, st in enumerate(steps, 1):
        if st.phase != phase:
            phase = st.phase
            print(f"# {heads.get(phase, phase)}")
        why = st.why + (" (the lab's step: its failure is an error, not the product's)" if st.lab else "")
        print(f"{i:2}. [{st.where}] {st.command}" + (f"\n      # {why}" if why else ""))
    return 0


def cmd_up(args) -> int:
    """Boot one cell's node and keep it until Ctrl-C, printing the ssh command."""
    import signal as _signal

    from . import nodes
    from .services.lab import Lab

    cell = _one_cell(args)
    if cell.unsupported:
        raise UserError(f"{cell.id} is unsupported: {cell.unsupported}")
    with Lab(docker_host=args.docker_host) as lab:  # a container node's engine stops with the command
        provider = nodes.get(cell.provider, progress=lambda m: print(f"archmatrix: {m}", flush=True),
                             inventory=args.inventory, lab=lab)
        node = provider.provision(cell, Path(args.reports_dir) / "artifacts" / cell.id)
        try:
            print(f"{cell.id} is up ({node.facts}).")
            if node.transport.login():
                print(f"  {node.transport.login()}")
            print("Ctrl-C stops it.", flush=True)
            _signal.pthread_sigmask(_signal.SIG_BLOCK, {_signal.SIGINT, _signal.SIGTERM})
            _signal.sigwait({_signal.SIGINT, _signal.SIGTERM})
        finally:
            node.teardown()
    return 0


def cmd_rehearse(args) -> int:
    """Every selected plan's steps, for real on QEMU nodes against local stand-ins, up to the first
    step that needs a real Kubernetes binary (harness/rehearsal/runner.py)."""
    import signal as _signal

    from .rehearsal import runner

    cells = runner.select(args.arch, args.distro, args.bootstrapper, args.kubernetes)

    def stop(signum, frame):  # SIGTERM like Ctrl-C: the runner's finally blocks stop its nodes and server
        raise KeyboardInterrupt

    _signal.signal(_signal.SIGTERM, stop)
    results = runner.run(cells, Path(args.reports_dir), progress=print)
    print(runner.grid(results))
    print(f"results: {Path(args.reports_dir) / 'rehearsal.json'}")
    return runner.exit_code(results)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="archmatrix",
        description="Does Kubernetes really work on each arch, distro and release? "
                    "Run the suites with `nox -s matrix -- [filters]`; this command inspects and manages.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ls = sub.add_parser("list", help="print the cells the pytest plugin would collect, one per line")
    _filters(ls)
    ls.add_argument("--json", action="store_true", help="print JSON records instead of ids")
    ls.add_argument("--image-keys", action="store_true",
                    help="print the base image keys (image cache entries) the selected cells boot from")
    ls.set_defaults(func=cmd_list)

    deps = sub.add_parser("deps", help="check (or --install) the Debian/Ubuntu packages the selected cells need")
    _filters(deps)
    deps.add_argument("--install", action="store_true", help="apt-get install what is missing (root only)")
    deps.add_argument("--tests", action="store_true", help="what the harness's own tests need")
    deps.add_argument("--suites", action="store_true", help="also what the registry suites need")
    deps.set_defaults(func=cmd_deps)

    dr = sub.add_parser("doctor", help="what works on this machine for the selected cells, and what to do otherwise "
                                       "(exit 1 when a selected cell cannot run)")
    _filters(dr)
    dr.add_argument("--tests", action="store_true", help="what the harness's own tests need")
    dr.add_argument("--suites", action="store_true", help="also what the registry suites need")
    dr.add_argument("--mirror", metavar="URL", help="the Debian mirror image builds will use (default: "
                                                   "$ARCHMATRIX_DEBIAN_MIRROR, else this machine's apt sources)")
    dr.set_defaults(func=cmd_doctor)

    art = sub.add_parser("check-artifacts", help="check release binaries (dir, .tar.gz, .deb) for every arch they hold")
    art.add_argument("paths", nargs="+", metavar="PATH")
    art.add_argument("--arch", help="expected arch when the path does not say it")
    art.add_argument("--k8s", help="release whose Go toolchain the Kubernetes binaries must match (e.g. 1.32)")
    art.add_argument("-v", "--verbose", action="store_true", help="print passing verdicts too")
    art.set_defaults(func=cmd_check_artifacts)

    rd = sub.add_parser("readiness", help="does every image a release needs exist for these arches? (no nodes)")
    rd.add_argument("--k8s", default="latest", help="release (1.33, v1.33, latest, -1; default latest)")
    rd.add_argument("--arch", action="append", default=[], metavar="ARCH[,ARCH]",
                    help="platforms to check (default: every arch Debian 13 has)")
    rd.add_argument("--registry", default="registry.k8s.io", metavar="HOST[/PATH]",
                    help="image repository, as kubeadm's imageRepository (default registry.k8s.io)")
    rd.add_argument("--images", metavar="FILE", help="YAML list of workload images to check too")
    rd.add_argument("--os", default="linux", choices=["linux", "windows"])
    rd.add_argument("--os-version", help="Windows build the entries must carry (e.g. 10.0.20348)")
    rd.add_argument("--json", metavar="FILE", help="write the results as JSON")
    rd.add_argument("--junit", metavar="FILE", help="write the results as JUnit XML")
    rd.set_defaults(func=cmd_readiness)

    rp = sub.add_parser("report", help="dashboard, JUnit and TestGrid layout from results.json (joins shards)")
    rp.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files, or dirs holding them")
    rp.add_argument("--merge", action="store_true", help="join the results of the shards of one run")
    rp.add_argument("--history", metavar="DIR", help="earlier results (*.json) for history and flakes")
    rp.add_argument("--out", default="reports/site", metavar="DIR", help="output directory (default reports/site)")
    rp.set_defaults(func=cmd_report)

    vd = sub.add_parser("verdict", help="exit 1 when any cell of a results.json failed or errored (CI's last step)")
    vd.add_argument("results", metavar="RESULTS", help="results.json (e.g. reports/site/results.json after a merge)")
    vd.set_defaults(func=cmd_verdict)

    im = sub.add_parser("images", help="base images for QEMU nodes: build, list, verify, rm")
    im.add_argument("action", choices=["build", "list", "verify", "rm", "import"])
    im.add_argument("source", nargs="?", metavar="FILE|URL", help="import: the cloud image (Ubuntu's *.img)")
    im.add_argument("--kernel", metavar="FILE|URL", help="import: the image's kernel (unpacked/*-vmlinuz-generic)")
    im.add_argument("--initrd", metavar="FILE|URL", help="import: the image's initrd (unpacked/*-initrd-generic)")
    im.add_argument("--arch", action="append", default=[], metavar="ARCH[,ARCH]")
    im.add_argument("--distro", action="append", default=[], metavar="DISTRO[,DISTRO]")
    im.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="build: N images at once (default 1)")
    im.add_argument("--mirror", metavar="URL", help="build: the Debian mirror (default: $ARCHMATRIX_DEBIAN_MIRROR, "
                                                   "else the Debian archive in this machine's apt sources)")
    im.set_defaults(func=cmd_images)

    gc = sub.add_parser("gc", help="stop QEMU nodes whose owner process is gone (--kept: and kept nodes; --list: only show)")
    gc.add_argument("--list", action="store_true", help="list running, kept and orphaned nodes, stop nothing")
    gc.add_argument("--kept", action="store_true", help="also stop the nodes left running by --keep-nodes")
    gc.set_defaults(func=cmd_gc)

    th = sub.add_parser("testhosts", help="sshd test hosts in network namespaces on this machine, and their "
                                          "inventory (root): up | down")
    th.add_argument("action", choices=["up", "down"])
    th.add_argument("--inventory", required=True, metavar="FILE", help="the inventory to write (up) or read (down)")
    th.add_argument("--host", action="append", default=[], metavar="NAME:ARCH:DISTRO[,...]",
                    help="a host and what it claims to be (default alpha:amd64:debian12); a false claim makes "
                         "a lying host")
    th.set_defaults(func=cmd_testhosts)

    pl = sub.add_parser("plan", help="print every command a cell's bootstrapper would run, without running it")
    pl.add_argument("cell", metavar="CELL", help="a cell id (or a prefix or glob matching one cell)")
    pl.add_argument("--matrix", default=None, metavar="FILE")
    pl.add_argument("--inventory", metavar="FILE")
    pl.add_argument("--artifacts", metavar="DIR", help="air-gapped: DIR/<arch>/{bin,images,snap} instead of the network")
    pl.add_argument("--package-base", metavar="URL", help="kubeadm: a mirror of https://pkgs.k8s.io")
    pl.add_argument("--k3s-version", metavar="VERSION", help="k3s: pin INSTALL_K3S_VERSION (e.g. v1.32.3+k3s1)")
    pl.set_defaults(func=cmd_plan)

    from .rehearsal.runner import DEFAULTS as REHEARSE_DEFAULTS

    rh = sub.add_parser("rehearse", help="run each plan for real on QEMU nodes against local stand-ins of its "
                                         "upstream sources, up to the first step that needs Kubernetes")
    for axis in ("arch", "distro", "bootstrapper", "kubernetes"):
        rh.add_argument(FLAGS[axis], dest=axis, action="append", default=[], metavar="NAME[,NAME...]",
                        help=f"{axis} values (default: {','.join(REHEARSE_DEFAULTS[axis])})")
    rh.add_argument("--reports-dir", default="reports", metavar="DIR", help="where rehearsal.json and the logs go")
    rh.set_defaults(func=cmd_rehearse)

    up = sub.add_parser("up", help="boot one cell's node, print the ssh command, keep it until Ctrl-C")
    up.add_argument("cell", metavar="CELL", help="a cell id (or a prefix or glob matching one cell)")
    up.add_argument("--matrix", default=None, metavar="FILE")
    up.add_argument("--reports-dir", default="reports", metavar="DIR")
    up.add_argument("--inventory", metavar="FILE", help="hosts.yaml for ssh cells")
    up.add_argument("--docker-host", metavar="URL", help="Docker engine for docker cells")
    up.set_defaults(func=cmd_up)
    for action in sub._choices_actions:  # `archmatrix X --help` opens with the line `archmatrix --help` shows
        sub.choices[action.dest].description = sub.choices[action.dest].description or action.help
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args, extra = p.parse_known_args(argv)
    # `deps` and `doctor` see the same argument list as pytest (nox passes posargs to all): ignore pytest's own
    if extra and args.command not in ("deps", "doctor"):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except UserError as e:
        print(f"archmatrix: error: {e}", file=sys.stderr)
        return 2
    except (InfraError, Unavailable) as e:
        print(f"archmatrix: {e.report() if isinstance(e, InfraError) else e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("archmatrix: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
