"""nox sessions. `nox -s matrix -- --arch ppc64le` is the main job; `nox -s tests` the harness's tests."""
import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True


@nox.session
def matrix(session):
    """Run the suites over the selected cells (pytest options and matrix filters after --)."""
    session.install("-e", ".")
    # system packages for the selected cells: installed when root, else the exact apt-get line
    session.run("archmatrix", "deps", "--install", "--suites", *session.posargs)
    # pytest's exit 1 (some cell failed) still gets its dashboard; anything else (5: nothing ran) fails here
    session.run("pytest", "suites", "-rfEs", "--junitxml=reports/junit.xml", *session.posargs, success_codes=[0, 1])
    if "--collect-only" not in session.posargs and "--co" not in session.posargs:
        session.run("archmatrix", "report", "reports/results.json", "--history", "reports/site/history",
                    "--out", "reports/site")
        # the session's exit code: 1 when a cell failed or errored (session.run returns True, not
        # pytest's code, so the verdict is read from results.json)
        session.run("archmatrix", "verdict", "reports/results.json")


@nox.session
def tests(session):
    """The harness's own tests: unit tests and real integration (qemu-user, registry, sshd)."""
    session.install("-e", ".[test]")
    session.env["ARCHMATRIX_RELEASES"] = "table"  # the built-in release table: tests never ask dl.k8s.io
    session.run("archmatrix", "deps", "--tests", "--install")
    # the QEMU and docker tests boot these: built once per machine (cached), two at a time
    session.run("archmatrix", "images", "build", "--arch", "amd64,s390x,arm64", "--distro", "debian12", "--jobs", "2")
    session.run("pytest", "tests", "-rfEs", *session.posargs)


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
