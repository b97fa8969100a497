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
    session.run("pytest", "suites", "-rfEs", "--junitxml=reports/junit.xml", *session.posargs)


@nox.session
def tests(session):
    """The harness's own tests: unit tests and real integration (qemu-user, registry, sshd)."""
    session.install("-e", ".[test]")
    session.run("archmatrix", "deps", "--tests", "--install")
    session.run("pytest", "tests", "-rfEs", *session.posargs)


@nox.session
def bench(session):
    """Speed and scale figures (benchmarks/). `nox -s bench -- collect` runs one of them."""
    session.install("-e", ".")
    session.run("python", "benchmarks/run.py", *session.posargs)
