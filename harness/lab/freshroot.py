"""A fresh Debian machine, made on this one, for CI (`.ci/run`) and rehearsals (`nox -s fresh`):
the README's own command (the fenced blocks under its set-up heading: README and CI cannot drift)
run in a clone of this checkout inside a root made from Debian's packages alone
(`mmdebstrap --variant=minbase` + python3, python3-venv, git, ca-certificates), then removed.

Entered with `unshare --mount --pid --fork` + pivot_root: every mount made for it lives in a private
mount namespace (the kernel removes them all when it ends) and every process it starts lives in a
PID namespace (the kernel kills them all when its first process ends: QEMU, dockerd, sshd). This
module then checks that nothing is mounted under the root and no process runs in it, and removes it.

From the host, only what cannot be installed: the image cache (content-addressed and verified, bind
mounted), the proxy's CA certificates (/usr/local/share/ca-certificates) and apt's `Acquire::` settings for
the mirror (/etc/apt/apt.conf.d), kernel state (binfmt_misc
registrations, mounted read-only so a run cannot change them; /dev/kvm, /dev/net/tun, loop devices;
cgroups) and the proxy/pip environment. No host /usr, venv, pip cache or apt cache.

Stdlib only: it runs from a checkout before any venv exists (`python3 -m harness.lab.freshroot`).
"""
from __future__ import annotations

import argparse
import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..common.errors import UserError
from ..host import debian, sysdeps
from ..services import procs

CHECKOUT = Path(__file__).resolve().parents[2]
SETUP_HEADING = "## Two commands on a fresh Debian/Ubuntu machine"
SUITE = "bookworm"
PACKAGES = ("python3", "python3-venv", "git", "ca-certificates")  # what a new user is told to have
HOST_PROGRAMS = ("mmdebstrap", "mount", sysdeps.KEYRING, "unshare", "pivot_root", "chroot", "git")
INSIDE = "/work/archmatrix"  # the clone, inside the root
CA_DIR = "/usr/local/share/ca-certificates"  # the proxy's CA: without it pip cannot reach PyPI here
DEVICES = ("null", "zero", "full", "random", "urandom", "tty", "kvm", "fuse", "net/tun", "loop-control")
# what crosses into the root from the host's environment; a value naming a host path that the root
# does not have (PIP_FIND_LINKS=/opt/wheels) is left out, and said so
PASSED = re.compile(r"^(CI|(HTTPS?|NO|ALL)_PROXY|(https?|no|all)_proxy|PIP_[A-Z_]+|SSL_CERT_(FILE|DIR)|"
                    r"REQUESTS_CA_BUNDLE|ARCHMATRIX_DEBIAN_MIRROR)$")
# a guard against a hung run, not the budget: CI measures its own time (well under 45 min alone), but a
# machine shared with other jobs can be 2x slower
TIMEOUT = 90 * 60
# PID 1 of the root's PID namespace, as init is on a machine: it starts the command and reaps every
# orphan, so a process killed after its parent died is gone, not a zombie that still looks alive
# (tests check that QEMU dies with a crashed owner). Its exit status is the command's.
INIT = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
while True:
    pid, status = os.wait()
    if pid == child.pid:
        code = os.waitstatus_to_exitcode(status)
        sys.exit(code if code >= 0 else 128 - code)
"""
# /etc/hosts as debian-installer writes it (minbase has none; a fresh install has this)
HOSTS = "127.0.0.1\tlocalhost\n127.0.1.1\tfresh\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class Clock:
    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        print(f"fresh [{self():5.0f} s] {msg}", flush=True)


def readme_commands(readme: Path = CHECKOUT / "README.md") -> dict[str, str]:
    """The fenced shell blocks under the set-up heading, by the nox session each runs."""
    try:
        text = readme.read_text()
    except OSError as e:
        raise UserError(f"{readme}: {e.strerror}") from None
    if SETUP_HEADING not in text.splitlines():
        raise UserError(f"{readme}: no heading '{SETUP_HEADING}' (the commands CI runs are taken from it)")
    section = text.split(SETUP_HEADING + "\n", 1)[1].split("\n## ", 1)[0]
    found = {}
    for block in re.findall(r"^```(?:sh|bash|console)?\n(.*?)^```", section, re.M | re.S):
        cmd = block.strip()
        m = re.search(r"\bnox -s (\w+)", cmd)
        if m and "\n" not in cmd:
            found[m.group(1)] = cmd
    if set(found) != {"matrix", "tests"}:
        raise UserError(f"{readme}: under '{SETUP_HEADING}' expected one-line ```sh blocks running `nox -s matrix` "
                        f"and `nox -s tests`, found {sorted(found) or 'none'}")
    return found


def with_posargs(command: str, posargs: list[str]) -> str:
    """The README's command, with `posargs` instead of its own arguments after `--`."""
    if not posargs:
        return command
    return command.split(" -- ", 1)[0] + " -- " + shlex.join(posargs)


def environment(host: dict[str, str], root: Path) -> tuple[dict[str, str], list[str]]:
    """The root's environment: a login's basics plus the PASSED variables whose paths exist in the root."""
    env = {"HOME": "/root", "USER": "root", "LOGNAME": "root", "SHELL": "/bin/bash", "LANG": "C.UTF-8",
           "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    left_out = []
    for k, v in sorted(host.items()):
        if not PASSED.match(k):
            continue
        paths = [t.removeprefix("file://") for t in v.split() if t.startswith(("/", "file://"))]
        gone = [p for p in paths if not (root / p.lstrip("/")).exists()]
        if gone:
            left_out.append(f"{k} ({gone[0]} is not in the root)")
        else:
            env[k] = v
    return env, left_out


def check_host() -> None:
    if os.geteuid() != 0:
        raise UserError("a fresh root needs root (mmdebstrap, mount and PID namespaces, pivot_root)")
    sysdeps.require(HOST_PROGRAMS, "making a fresh root")


def _log_tail(log: Path, n: int = 15) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-n:])


def build_root(root: Path, suite: str, log: Path) -> None:
    """mmdebstrap minbase in its own mount and PID namespaces: the proc/sys/dev it mounts in the root
    while installing go away with it, even when it is killed."""
    sources = [debian.source_line(suite), debian.source_line(f"{suite}-updates")]
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL", "--propagation", "private",
            "mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), suite, str(root), *sources]
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=procs.die_with_parent())
        try:
            p.wait()
        except BaseException:
            procs.stop(p, grace=5)
            raise
    if p.returncode != 0:
        raise UserError(f"mmdebstrap failed (exit {p.returncode}); the end of {log}:\n{_log_tail(log)}")


def host_apt_acquire(conf_dir: Path = Path("/etc/apt/apt.conf.d"), conf: Path = Path("/etc/apt/apt.conf")) -> list[str]:
    """The host's one-line apt settings for reaching its mirror (proxies, the mirror's date checks), in apt's
    order; other Acquire settings (index compression, languages) are the host's taste, not the network's."""
    files = ([conf] if conf.is_file() else []) + (sorted(conf_dir.iterdir()) if conf_dir.is_dir() else [])
    lines = []
    for f in files:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        lines += [x.strip() for x in text.splitlines()
                  if re.match(r"\s*Acquire::(Check-Valid-Until|Check-Date|Max-ValidTime|https?::Proxy)\S*\s+\"[^\"]*\";\s*$", x)]
    return lines


def prepare(root: Path, checkout: Path, say) -> None:
    """What a new user has done before the README's command: the clone; and what only this machine
    needs (its proxy's CA certificates)."""
    (root / "etc/hosts").write_text(HOSTS)
    certs = sorted(Path(CA_DIR).glob("**/*.crt"))
    if certs:
        for c in certs:
            dest = root / c.relative_to("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(c, dest)
        subprocess.run(["chroot", str(root), "/usr/sbin/update-ca-certificates"], check=True, capture_output=True,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        say(f"root trusts this machine's {len(certs)} CA certificate(s) from {CA_DIR}")
    acquire = host_apt_acquire()
    if acquire:  # how this network reaches its mirror (here: a snapshot whose sid/trixie Release files are
        # past Valid-Until, which the host's apt is told to accept); a setting, not an installed package
        (root / "etc/apt/apt.conf.d/99archmatrix-host-acquire").write_text(
            "// copied from the host by harness/lab/freshroot.py: how this machine's apt reaches its mirror\n"
            + "".join(line + "\n" for line in acquire))
        say(f"root uses this machine's apt mirror access settings: {' '.join(acquire)}")
    head = subprocess.run(["git", "-C", str(checkout), "log", "-1", "--format=%h %s"], capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    dest = root / INSIDE.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(checkout), str(dest)], check=True,
                   capture_output=True)
    say(f"cloned {checkout} at {head} to {INSIDE}" + (" (its uncommitted changes are NOT in the clone)"
                                                      if dirty else ""))
    (root / "root/.cache/archmatrix/images").mkdir(parents=True, exist_ok=True)


def enter_script(root: Path, images: Path, env: dict[str, str], command: str) -> str:
    """The shell that runs as the new namespaces' first process: mounts, then pivot_root."""
    r = shlex.quote(str(root))
    lines = ["set -eu",
             # the root a mount point of its own, to pivot_root into below
             f"mount --bind {r} {r}",
             f"mount -t proc proc {r}/proc",  # this PID namespace's
             f"mount --rbind /sys {r}/sys",  # cgroups (a v1 hierarchy here) come with it
             f"mount -t binfmt_misc -o ro binfmt_misc {r}/proc/sys/fs/binfmt_misc",
             f"mount -t tmpfs -o mode=755,nosuid,size=16m dev {r}/dev",
             f"mkdir -p {r}/dev/pts {r}/dev/shm {r}/dev/net"]
    loops = sorted(x.name for x in Path("/dev").glob("loop[0-9]*"))
    for dev in [*DEVICES, *loops]:
        if Path("/dev", dev).exists():
            lines.append(f"touch {r}/dev/{dev} && mount --bind /dev/{dev} {r}/dev/{dev}")
    lines += [f"mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts {r}/dev/pts",
              f"ln -s pts/ptmx {r}/dev/ptmx",
              f"ln -s /proc/self/fd {r}/dev/fd",
              *(f"ln -s /proc/self/fd/{i} {r}/dev/{n}" for i, n in enumerate(("stdin", "stdout", "stderr"))),
              f"mount -t tmpfs -o mode=1777,nosuid,nodev shm {r}/dev/shm",
              f"mount -t tmpfs -o mode=755,nosuid,nodev run {r}/run",  # ip netns, sshd, dockerd
              f"mount --bind {shlex.quote(str(images))} {r}/root/.cache/archmatrix/images",
              # pivot_root, not chroot: the root must be the mount namespace's root. A container runtime
              # inside (runc) pivots into its rootfs and `docker exec` later setns()es into that namespace,
              # whose root would otherwise still be the host's / (docker exec ran host binaries there)
              f"cd {r} && mkdir -p .host && pivot_root . .host && cd /",
              "umount -l /.host && rmdir /.host",  # nothing of the host's tree stays reachable
              f"exec /usr/bin/python3 -I -S -c {shlex.quote(INIT)} /usr/bin/env -i "
              + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
              + " /bin/bash -c " + shlex.quote(f"cd {INSIDE} && {command}")]
    return "\n".join(lines) + "\n"


def _pid_namespace(unshare_pid: int, seconds: float = 10) -> int | None:
    """The inode of the PID namespace unshare made (its forked child's), None if that child is already gone."""
    children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            kids = children.read_text().split()
            if kids:
                return os.stat(f"/proc/{kids[0]}/ns/pid").st_ino
        except OSError:
            return None
        time.sleep(0.05)
    return None


def enter(root: Path, images: Path, env: dict[str, str], command: str, clock: Clock, timeout: float,
          namespace: dict) -> int:
    """Run `command` in the root; its output line by line, stamped with the seconds since the start.
    namespace["pid"]: the inode of its PID namespace, for the check afterwards."""
    argv = ["unshare", "--mount", "--pid", "--fork", "--kill-child=SIGKILL", "--propagation", "private",
            "sh", "-c", enter_script(root, images, env, command)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, preexec_fn=procs.die_with_parent())
    namespace["pid"] = _pid_namespace(p.pid)
    expired = threading.Event()

    def expire():
        expired.set()
        procs.stop(p, grace=5)  # unshare dies; --kill-child takes its namespace with it

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        for raw in p.stdout:
            sys.stdout.write(f"[{clock():5.0f} s] {raw.decode(errors='replace')}")
            sys.stdout.flush()
        p.wait()
    except BaseException:
        procs.stop(p, grace=5)
        raise
    finally:
        timer.cancel()
    if expired.is_set():
        raise UserError(f"the command in the fresh root ran past {timeout / 60:.0f} min and was stopped")
    return p.returncode


def _unescape(path: str) -> str:
    return re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), path)


NS_GET_PARENT = 0xB702  # _IO(0xb7, 0x2), linux/nsfs.h: the parent of a PID namespace


def _within(pid: str, ns: int) -> bool:
    """Is process `pid` in PID namespace `ns` or one nested in it (a container's)?"""
    try:
        fd = os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY)
    except OSError:
        return False
    try:
        while os.fstat(fd).st_ino != ns:
            try:
                parent = fcntl.ioctl(fd, NS_GET_PARENT)
            except OSError:  # the top (ours): not inside
                return False
            os.close(fd)
            fd = parent
        return True
    finally:
        os.close(fd)


def leftovers(root: Path, pid_namespace: int | None) -> list[str]:
    """Mounts under the root (this mount namespace's view) and processes left in the root's PID namespace
    or one nested in it. (After pivot_root a process's /proc/PID/root no longer names the root.)"""
    prefix = str(root)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = _unescape(line.split()[4])
            if mp == prefix or mp.startswith(prefix + "/"):
                found.append(f"mount {mp}")
    if pid_namespace is not None:
        for d in Path("/proc").iterdir():
            if d.name.isdigit() and _within(d.name, pid_namespace):
                try:
                    cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                except OSError:
                    continue
                found.append(f"process {d.name} {cmd[:80]}")
    return found


def _hold(work: Path):
    """An exclusive lock on the run's work dir, kept open for the run's life."""
    f = open(work / ".owner.lock", "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def remove_stale(base: Path) -> list[Path]:
    """Work dirs of earlier runs killed before they could remove them (SIGKILL, a lost machine
    session): nobody holds their lock and nothing is mounted under them (a dead run's namespaces took
    its mounts with them). A live run's dir is locked and left alone."""
    removed = []
    for work in sorted(base.glob("archmatrix-fresh-*")):
        lock = work / ".owner.lock"
        # no lock file: a run made before locks, or one that has not taken it yet (a minute's grace)
        if not lock.is_file() or time.time() - lock.stat().st_mtime < 60:
            continue
        try:
            with open(lock, "r") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                mounted = leftovers(work, None)
                if not any(x.startswith("mount ") for x in mounted):
                    subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
                    removed.append(work)
        except BlockingIOError:
            continue  # a live run holds it
        except OSError:
            continue  # not ours to judge (permissions, a file instead of a dir)
    return removed


def run(command: str, suite: str = SUITE, workdir: str | None = None, timeout: float = TIMEOUT,
        reports_to: Path | None = None, checkout: Path = CHECKOUT) -> int:
    clock = Clock()
    check_host()
    debian.mirror()  # a Debian mirror is known (or one clear line), before anything is made
    images = debian.cache_dir() / "images"
    images.mkdir(parents=True, exist_ok=True)
    base = Path(workdir or "/var/tmp")
    base.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale(base):
        clock.say(f"removed {stale}, left by a run that was killed")
    work = Path(tempfile.mkdtemp(prefix="archmatrix-fresh-", dir=base))
    held = _hold(work)  # released by the kernel when this process dies, however it dies
    root = work / "root"
    code, namespace = 1, {}
    try:
        clock.say(f"making a fresh Debian {suite} root in {root} (mmdebstrap --variant=minbase "
                  f"--include={','.join(PACKAGES)}, mirror {debian.mirror()})")
        t = clock()
        build_root(root, suite, work / "mmdebstrap.log")
        clock.say(f"root made in {clock() - t:.0f} s")
        prepare(root, checkout, clock.say)
        env, left_out = environment(dict(os.environ), root)
        if left_out:
            clock.say(f"not passed into the root: {', '.join(left_out)}")
        clock.say(f"shared from the host: the image cache {images} (content-addressed), binfmt_misc (read-only), "
                  f"devices {', '.join(d for d in DEVICES if Path('/dev', d).exists())}, loop devices, cgroups")
        clock.say(f"running in the root, in {INSIDE}: {command}")
        t = clock()
        code = enter(root, images, env, command, clock, timeout, namespace)
        clock.say(f"the command exited {code} after {clock() - t:.0f} s")
        made = root / INSIDE.lstrip("/") / "reports"
        if reports_to is not None and made.is_dir() and {f.name for f in made.iterdir()} - {"README.md"}:
            shutil.rmtree(reports_to, ignore_errors=True)
            shutil.copytree(made, reports_to, symlinks=True)
            clock.say(f"its reports/ copied to {reports_to}")
    finally:
        left = leftovers(root, namespace.get("pid"))
        for item in left:
            if item.startswith("process "):
                try:
                    os.kill(int(item.split()[1]), signal.SIGKILL)  # ours: it runs in our root
                except ProcessLookupError:
                    pass
        if any(x.startswith("mount ") for x in left):
            clock.say(f"NOT removing {work}: still mounted under it: {'; '.join(left)}")
        else:  # nothing is mounted under it (checked): --one-file-system only as a second guard
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False)
            clock.say(f"root removed; {'LEFT RUNNING (now killed): ' + '; '.join(left) if left else 'nothing was left mounted or running'}")
        held.close()  # after removal: a root left behind (still mounted) stays locked until this process ends
    if left:
        print(f"fresh: error: the fresh root left {len(left)} thing(s) behind: {'; '.join(left)}", file=sys.stderr)
        return 1
    clock.say(f"done in {clock():.0f} s, exit {code}")
    return code


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (a cancelled CI job) unwinds like Ctrl-C: run() removes the root


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python3 -m harness.lab.freshroot", description=__doc__.split("\n\n")[0])
    p.add_argument("--exec", metavar="SHELL", help="run this shell command in the root instead of a README command")
    p.add_argument("--suite", default=SUITE, help=f"Debian suite of the root (default {SUITE})")
    p.add_argument("--mirror", metavar="URL", help="Debian mirror (default: $ARCHMATRIX_DEBIAN_MIRROR, else the "
                                                   "Debian archive in this machine's apt sources)")
    p.add_argument("--workdir", metavar="DIR", help="where the root is made (default /var/tmp)")
    p.add_argument("--timeout", type=float, default=TIMEOUT / 60, metavar="MIN",
                   help=f"stop the command after MIN minutes (default {TIMEOUT // 60})")
    p.add_argument("--reports-to", metavar="DIR", default=str(CHECKOUT / "reports" / "fresh"),
                   help="copy the clone's reports/ here afterwards (default reports/fresh)")
    p.add_argument("--host-packages", action="store_true",
                   help="print the Debian packages this host needs to make a root, and exit")
    p.add_argument("session", nargs="?", default="tests", choices=("tests", "matrix"),
                   help="the README command to run: the one with `nox -s SESSION` (default tests)")
    p.add_argument("posargs", nargs=argparse.REMAINDER,
                   help="instead of the README command's own arguments after `--` (e.g. --arch s390x)")
    args = p.parse_args(argv)
    if args.host_packages:
        print(" ".join(sorted(sysdeps.packages(HOST_PROGRAMS))))
        return 0
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        debian.use_mirror(args.mirror)
        command = args.exec or with_posargs(readme_commands()[args.session], args.posargs)
        return run(command, args.suite, args.workdir, args.timeout * 60, Path(args.reports_to))
    except UserError as e:
        print(f"fresh: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fresh: interrupted; the root was removed", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
