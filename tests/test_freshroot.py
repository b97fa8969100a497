"""The fresh root CI runs in (harness/lab/freshroot.py): the commands come from README.md itself, the
environment crosses only what the root has, and (slow) a real root is made, entered and removed:
host packages are invisible inside, the image cache is visible, and nothing stays mounted or running."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.common.errors import UserError
from harness.lab import freshroot
from conftest import ROOT, need


def test_the_commands_are_the_readmes_own():
    cmds = freshroot.readme_commands(ROOT / "README.md")
    readme = (ROOT / "README.md").read_text()
    assert set(cmds) == {"matrix", "tests"}
    for cmd in cmds.values():
        assert f"```sh\n{cmd}\n```" in readme  # verbatim, as a reader copies it
    assert cmds["tests"].endswith("nox -s tests")


def test_it_runs_on_a_bare_python():
    """.ci/run starts it before any venv exists: stdlib only (-I -S: no site-packages at all)."""
    out = subprocess.run([sys.executable, "-I", "-S", "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                          "import harness.lab.freshroot as f; print(f.readme_commands()['tests'])"],
                         capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and out.stdout.strip().endswith("nox -s tests"), out.stderr


def test_posargs_replace_the_readme_commands_own():
    cmd = "python3 -m venv .venv && .venv/bin/nox -s matrix -- --arch ppc64le --distro debian12"
    assert freshroot.with_posargs(cmd, []) == cmd
    assert freshroot.with_posargs(cmd, ["--arch", "s390x"]) == \
        "python3 -m venv .venv && .venv/bin/nox -s matrix -- --arch s390x"
    assert freshroot.with_posargs("x && nox -s tests", ["-k", "a b"]) == "x && nox -s tests -- -k 'a b'"


def test_a_readme_without_the_commands_is_one_clear_error(tmp_path):
    bad = tmp_path / "README.md"
    bad.write_text("# x\n\n## Two commands on a fresh Debian/Ubuntu machine\n\n```sh\nnox -s tests\n```\n")
    with pytest.raises(UserError, match=r"README.md: under '.*' expected one-line ```sh blocks .* found \['tests'\]"):
        freshroot.readme_commands(bad)
    bad.write_text("# x\n")
    with pytest.raises(UserError, match="no heading '## Two commands"):
        freshroot.readme_commands(bad)
    work = tmp_path / "work"
    out = subprocess.run([sys.executable, "-m", "harness.lab.freshroot", "--exec", "true", "--workdir",
                          str(work)], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "ARCHMATRIX_DEBIAN_MIRROR": "ftp://nowhere", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and out.stderr.strip() == ("fresh: error: Debian mirror 'ftp://nowhere' (from "
                                                          "ARCHMATRIX_DEBIAN_MIRROR) is not an http(s):// or "
                                                          "file:// URL"), out.stderr
    assert not work.exists()  # nothing made


def test_only_what_the_root_has_crosses_in(tmp_path):
    (tmp_path / "etc/ssl/certs").mkdir(parents=True)
    (tmp_path / "etc/ssl/certs/ca-certificates.crt").write_text("x")
    host = {"CI": "true", "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt", "PIP_FIND_LINKS": "/opt/wheels",
            "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple", "https_proxy": "http://proxy:3128",
            "VIRTUAL_ENV": "/work/.venv", "PATH": "/work/.venv/bin:/usr/bin", "PYTHONPATH": "/work"}
    env, left_out = freshroot.environment(host, tmp_path)
    assert env["CI"] == "true" and env["PIP_CERT"] == host["PIP_CERT"] and env["https_proxy"] == host["https_proxy"]
    assert env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" and env["HOME"] == "/root"
    assert not {"PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "VIRTUAL_ENV", "PYTHONPATH"} & set(env)
    assert left_out == ["PIP_EXTRA_INDEX_URL (/opt/pypi/simple is not in the root)",
                        "PIP_FIND_LINKS (/opt/wheels is not in the root)"]


def _cmdlines() -> list[str]:
    found = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit():
                found.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except OSError:
            pass
    return found


def test_leftovers_finds_processes_in_the_namespace_and_nested_ones(tmp_path):
    """The check after a run: a process of the root's PID namespace, or of one nested in it (a
    container's), is found; this process (outside) is not."""
    need("unshare")
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
                              "sleep 30 & unshare --pid --fork --kill-child sleep 30"], start_new_session=True)
    try:
        ns = freshroot._pid_namespace(outer.pid)
        assert ns is not None
        for _ in range(100):
            left = freshroot.leftovers(tmp_path, ns)
            if len(left) >= 4:
                break
            time.sleep(0.05)
        cmds = sorted(x.split(" ", 2)[2] for x in left)
        # sh (its PID 1), the first sleep, the nested unshare and the sleep in the nested namespace
        assert cmds == ["sh -c sleep 30 & unshare --pid --fork --kill-child sleep 30", "sleep 30", "sleep 30",
                        "unshare --pid --fork --kill-child sleep 30"], left
        assert not freshroot._within(str(os.getpid()), ns)
    finally:
        os.killpg(outer.pid, signal.SIGKILL)
        outer.wait()
    for _ in range(100):
        if not freshroot.leftovers(tmp_path, ns):
            break
        time.sleep(0.05)
    assert freshroot.leftovers(tmp_path, ns) == []


@pytest.mark.slow
def test_a_fresh_root_sees_no_host_install_and_leaves_nothing(tmp_path, capfd):
    """A real root (mmdebstrap minbase, ~2 min), entered the way CI enters it. The host has
    qemu-user-static (the deps of these tests): the root must not. A process left in the background
    inside must be gone afterwards, and so must every mount and the root itself."""
    need("mmdebstrap")
    host_has = subprocess.run(["dpkg", "-s", "qemu-user-static"], capture_output=True).returncode == 0
    assert host_has, "the host has qemu-user-static (archmatrix deps --tests) for this comparison"
    images = Path(os.environ.get("HOME", "/root")) / ".cache/archmatrix/images"
    script = ("dpkg -s qemu-user-static >/dev/null 2>&1; echo host-package-inside=$?; "
              "test -x /usr/bin/qemu-s390x-static; echo qemu-user-inside=$?; "
              "ls /root/.cache/archmatrix/images | sed 's/^/image: /'; "
              "git -C /work/archmatrix log -1 --format=commit=%H; "
              "echo processes=$(ls -d /proc/[0-9]* | wc -l); "
              "echo root-entries=$(ls -A / | tr '\\n' ,); "
              "sh -c 'sleep 0.2 & echo $! > /tmp/orphan'; sleep 2; "
              "if [ -e /proc/$(cat /tmp/orphan) ]; then echo orphan=zombie; else echo orphan=reaped; fi; "
              "sleep 6061 & echo background=$!")
    code = freshroot.run(script, workdir=str(tmp_path), timeout=600, reports_to=None)
    out = capfd.readouterr().out
    assert code == 0, out
    assert "host-package-inside=1" in out and "qemu-user-inside=1" in out, out
    inside = {x.split("image: ", 1)[1].strip() for x in out.splitlines() if "] image: " in x}
    assert {p.name for p in images.iterdir() if (p / "manifest.json").is_file()} <= inside, out  # the host's cache
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert f"commit={head.strip()}" in out  # a clone of this checkout
    processes = int(next(x for x in out.splitlines() if "] processes=" in x).split("=")[1])
    assert processes < 10, out  # its own PID namespace: only the command's processes are visible
    assert "orphan=reaped" in out  # its PID 1 reaps, as init does
    entries = next(x for x in out.splitlines() if "] root-entries=" in x).split("=", 1)[1].strip(",").split(",")
    assert "usr" in entries and ".host" not in entries, out  # pivoted: the host's tree is not reachable
    assert "nothing was left mounted or running" in out
    assert list(tmp_path.iterdir()) == []  # the root is gone
    assert not [p for p in _cmdlines() if p == "sleep 6061"]  # the background sleep died with the namespace
    with open("/proc/self/mountinfo") as f:
        assert not [x for x in f if str(tmp_path) in x]


def test_the_root_gets_the_hosts_mirror_access_settings_only(tmp_path):
    """apt's Valid-Until/Check-Date/proxy settings say how this network reaches its mirror (here a snapshot
    whose sid Release file is past Valid-Until: without them the fresh root's `apt-get update` of sid fails);
    the host's other apt taste stays out."""
    d = tmp_path / "apt.conf.d"
    d.mkdir()
    (d / "99mirror").write_text('Acquire::Check-Valid-Until "false";\nAcquire::http::Proxy "http://127.0.0.1:3142";\n')
    (d / "docker-gzip-indexes").write_text('Acquire::GzipIndexes "true";\nAPT::Install-Recommends "false";\n')
    (d / "50multi").write_text('Acquire::Languages {\n  "none";\n};\n')
    got = freshroot.host_apt_acquire(d, tmp_path / "absent.conf")
    assert got == ['Acquire::Check-Valid-Until "false";', 'Acquire::http::Proxy "http://127.0.0.1:3142";']
    assert freshroot.host_apt_acquire(tmp_path / "none", tmp_path / "absent.conf") == []


def test_a_killed_runs_root_is_removed_by_the_next_and_a_live_one_is_not(tmp_path):
    """A SIGKILLed run cannot remove its root (2.4 GB were found left by a killed session): the next run
    does, when nobody holds the root's lock; a live run's root (its lock held) is left alone."""
    dead, live, legacy = (tmp_path / f"archmatrix-fresh-{n}" for n in ("dead", "live", "legacy"))
    for d in (dead, live, legacy):
        (d / "root/etc").mkdir(parents=True)
    for d in (dead, live):
        (d / ".owner.lock").write_text("")
        os.utime(d / ".owner.lock", (time.time() - 120, time.time() - 120))
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\nf = open(sys.argv[1])\n"
                               "fcntl.flock(f, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(60)",
                               str(live / ".owner.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert freshroot.remove_stale(tmp_path) == [dead]
        assert not dead.exists() and (live / "root/etc").is_dir() and (legacy / "root/etc").is_dir()
    finally:
        holder.kill()
        holder.wait()
    assert freshroot.remove_stale(tmp_path) == [live]  # its owner is gone now
