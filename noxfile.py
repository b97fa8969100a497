"""nox sessions. `nox -s matrix -- --arch ppc64le` is the main job; `nox -s tests` the harness's tests."""
import os

import nox
import nox.command

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


def reports_dir(args) -> str:
    """The plugin's --reports-dir (default reports), as pytest will read it from the same arguments."""
    for i, a in enumerate(args):
        if a == "--reports-dir" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--reports-dir="):
            return a.split("=", 1)[1]
    return "reports"


@nox.session
def matrix(session):
    """Run the suites over the selected cells (pytest options and matrix filters after --)."""
    session.install("-e", ".")
    # system packages for the selected cells: installed when root, else the exact apt-get line
    session.run("archmatrix", "deps", "--install", "--suites", *session.posargs)
    # what the selected cells need works here (binfmt, disk, mirror, ...): one line per gap, not a traceback later
    session.run("archmatrix", "doctor", "--suites", *session.posargs)
    # pytest's exit 1 (a test failed or errored) and 5 (nothing judged: every test deselected or
    # skipped) still get their dashboard, and then fail the session; anything else fails at once
    reports = reports_dir(session.posargs)
    results, site = os.path.join(reports, "results.json"), os.path.join(reports, "site")
    code = 0
    if os.path.exists(results):  # never report the previous run's results as this one's
        os.remove(results)
    try:
        session.run("pytest", "suites", "-rfEs", f"--junitxml={os.path.join(reports, 'junit.xml')}", *session.posargs)
    except nox.command.CommandFailed as e:
        code = getattr(e, "return_code", None)
        if code not in (1, 5):
            raise
    if "--collect-only" not in session.posargs and "--co" not in session.posargs and os.path.exists(results):
        session.run("archmatrix", "report", results, "--history", os.path.join(site, "history"), "--out", site)
    if code == 1:
        session.error(f"some cells failed or errored: see {site}/index.html")
    if code == 5:
        session.error("nothing was judged: every selected test was deselected or skipped (pytest's summary "
                      "says why)")


@nox.session
def tests(session):
    """The harness's own tests: unit tests and real integration (qemu-user, registry, sshd)."""
    session.install("-e", ".[test]")
    session.env["ARCHMATRIX_RELEASES"] = "table"  # the built-in release table: tests never ask dl.k8s.io
    session.run("archmatrix", "deps", "--tests", "--install")
    session.run("archmatrix", "doctor", "--tests")
    # the QEMU and docker tests boot these: built once per machine (cached), two at a time
    session.run("archmatrix", "images", "build", "--arch", "amd64,s390x,arm64", "--distro", "debian12", "--jobs", "2")
    # --durations: CI's log names the slowest tests (the budget is 45 min on 2 cores)
    # `nox -s tests -- tests/test_x.py -k y` runs that file only (pytest's own meaning), not everything plus it
    where = [] if any(os.path.exists(a.split("::")[0]) for a in session.posargs if not a.startswith("-")) else ["tests"]
    # -m: the two-node rehearsal (two QEMU boots + two preparations, > the CI budget) is `nox -s multinode`
    # -n 2: the files that boot nodes run one after another as one group on one worker (tests/conftest.py
    # NODE_FILES); everything else runs beside them on the other (CI: 2 cores, one mostly left idle by TCG)
    session.run("pytest", *where, "-n", "2", "--dist", "loadgroup", "-rfEs", "--durations=15", "-m", "not multinode",
                *session.posargs)


@nox.session(python=False)
def fresh(session):
    """Rehearse a new machine (root): the README's test command in a fresh Debian root made here and removed
    after, as `.ci/run` does. `nox -s fresh -- matrix --arch s390x`: the README's matrix command with
    these arguments instead of its own."""
    session.run("python3", "-m", "harness.lab.freshroot", *session.posargs, external=True)


@nox.session
def dashboard(session):
    """Rebuild reports/site (dashboard, JUnit, TestGrid layout) from results: `nox -s dashboard -- DIR...`
    merges shard results; without arguments it uses reports/results.json."""
    session.install("-e", ".")
    given = session.posargs or ["reports/results.json"]
    merge = ["--merge"] if len(given) > 1 else []
    session.run("archmatrix", "report", *given, *merge, "--history", "reports/site/history", "--out", "reports/site")


@nox.session
def bench(session):
    """Speed and scale figures (benchmarks/). `nox -s bench -- collect` runs one of them."""
    session.install("-e", ".")
    session.env["ARCHMATRIX_RELEASES"] = "table"  # figures of the harness, not of the network
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def rehearse(session):
    """Each plan's steps for real on QEMU nodes against local stand-ins of pkgs.k8s.io, GitHub's release
    downloads, the Snap Store and get.k3s.io, up to the first step that needs a real Kubernetes binary
    (default: amd64,s390x x debian12,debian13 x kubeadm,microk8s,k3s; `-- --bootstrapper kubeadm` to narrow).
    Writes reports/rehearsal.json; never counted as the bootstrappers passing."""
    session.install("-e", ".")
    session.env["ARCHMATRIX_RELEASES"] = "table"  # offline: the built-in release table, said in the output
    session.run("archmatrix", "deps", "--tests", "--install")  # qemu, mmdebstrap, dpkg-deb, gpg
    session.run("archmatrix", "rehearse", *session.posargs)


@nox.session
def multinode(session):
    """The two-node kubeadm rehearsal (tests marked multinode): an amd64 control plane and an s390x
    worker on real QEMU nodes, prepared for real, joined up to `kubeadm join` with stand-ins."""
    session.install("-e", ".[test]")
    session.env["ARCHMATRIX_RELEASES"] = "table"  # the built-in release table: tests never ask dl.k8s.io
    session.run("archmatrix", "deps", "--tests", "--install")
    session.run("archmatrix", "images", "build", "--arch", "amd64,s390x", "--distro", "debian12", "--jobs", "2")
    session.run("pytest", "tests", "-m", "multinode", "-rfEs", "--durations=5", *session.posargs)


@nox.session
def faults(session):
    """Fault injection, the long set (issue #17): the frozen guest and whole runs with faults, with
    and without -n 2, beside what `nox -s tests` runs of tests/test_faults.py. Real QEMU, sshd, registry."""
    session.install("-e", ".[test]")
    session.env["ARCHMATRIX_RELEASES"] = "table"
    session.env["ARCHMATRIX_FAULTS"] = "1"
    session.run("archmatrix", "images", "build", "--arch", "amd64", "--distro", "debian12")
    session.run("pytest", "tests/test_faults.py", "-rfEs", "--durations=0", "-s", *session.posargs)
