"""Run examples/ci/ as their runners would, on this machine, for tests/test_ci_examples.py.

GitHub Actions: each job's steps in order, `run:` steps as an unprivileged runner user through
`bash -e` (what a step without `shell:` runs on Linux), with passwordless `sudo`; `if:`,
`continue-on-error`, step outputs, `${{ }}` expressions, the strategy matrix and `needs`. Prow: the
container's `command` + `args` as root. What cannot exist here is stood in for, each named:

- `sudo`: this machine has none; a root helper in the test process, reached by the runner user over
  a unix socket (its uid checked with SO_PEERCRED), runs the command as root with the caller's
  stdin/stdout/stderr, with sudo's secure_path and its env_reset (kept with -E)
- actions/checkout: a copy of the worktree's tracked files, as they are now, plus the project's
  overlay (the rehearsal's matrix.yaml and planted suite); Prow's extra_refs clone: the same
- actions/setup-python: a venv of this machine's python3 put on PATH (the version must match)
- actions/upload-artifact, download-artifact, upload-pages-artifact: folders copied to and from an
  artifact store, with upload-artifact's rule for the root (the paths' common folder)
- actions/cache: a folder per key; restored on an exact hit, saved after a successful job on a miss
- actions/configure-pages, deploy-pages: the published site is a folder; `curl` of a URL under
  its base_url reads it, any other URL fails (no network)
- PyPI: wheels repacked from the test's own environment, given to pip as --find-links with
  --no-index (PIP_FIND_LINKS, PIP_NO_INDEX)
- apt-get: `update` does nothing; `install` succeeds only when the packages are installed already
  (this machine is never changed)
- dl.k8s.io: the built-in release table (ARCHMATRIX_RELEASES=table)

Every step runs in a network namespace made for the rehearsal that has only loopback: nothing can
leave this machine even if a stand-in is missing (the step then fails)."""
from __future__ import annotations

import ctypes
import fnmatch
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECURE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Debian's and Ubuntu's sudoers
PAGES = "https://rehearsal.github.io/archmatrix"  # the rehearsed repository's Pages site


# ---- ${{ }} expressions -------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(\d+(?:\.\d+)?)|(==|!=|<=|>=|&&|\|\||[!<>()])"
                    r"|([A-Za-z_][\w-]*(?:\.[\w*-]+)*)(\(\))?)")
_STATUS = ("always", "success", "failure", "cancelled")


def evaluate(expr: str, ctx: dict, failed: bool = False):
    """A GitHub Actions expression (the subset the examples use: contexts, literals, ==, !=, &&, ||,
    !, and the status functions) -> its value. Anything else is an error, not a guess."""
    out, pos, expr = [], 0, expr.strip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"expression {expr!r}: cannot read it at column {pos}")
        pos = m.end()
        s, num, op, name, call = m.groups()
        if s:
            out.append(repr(s[1:-1].replace("''", "'")))
        elif num:
            out.append(num)
        elif op:
            out.append({"&&": " and ", "||": " or ", "!": " not "}.get(op, op))
        elif call:
            if name not in _STATUS:
                raise ValueError(f"expression {expr!r}: function {name}() is not rehearsed")
            out.append(repr({"always": True, "success": not failed, "failure": failed, "cancelled": False}[name]))
        elif name in ("true", "false", "null"):
            out.append({"true": "True", "false": "False", "null": "None"}[name])
        else:
            out.append(f"_get({name!r})")
    return eval("".join(out), {"__builtins__": {}, "_get": lambda path: _lookup(ctx, path)})  # noqa: S307


def _lookup(ctx: dict, path: str):
    v = ctx
    for part in path.split("."):
        if not isinstance(v, dict) or part not in v:
            return None
        v = v[part]
    return v


def interpolate(text, ctx: dict):
    if not isinstance(text, str):
        return text
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: "" if (v := evaluate(m.group(1), ctx)) is None else str(v), text)


def condition(step_if, ctx: dict, failed: bool) -> bool:
    """`if:` with GitHub's implied success() when no status function is named."""
    if step_if is None:
        return not failed
    expr = str(step_if).strip()
    expr = expr[3:-2] if expr.startswith("${{") and expr.endswith("}}") else expr
    if not any(f"{f}()" in expr for f in _STATUS):
        expr = f"success() && ({expr})"
    return bool(evaluate(expr, ctx, failed))


# ---- the network namespace, sudo, PyPI ----------------------------------------------------------

@contextmanager
def loopback_only():
    """This thread (and every process and thread it starts) in a new network namespace with only
    `lo`, until the block ends."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newnet = 0x40000000
    with open("/proc/self/task/%d/ns/net" % threading.get_native_id()) as home:
        if libc.unshare(clone_newnet) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            yield
        finally:
            if libc.setns(home.fileno(), clone_newnet) != 0:
                raise OSError(ctypes.get_errno(), "setns back to this machine's network namespace")


class Sudo:
    """Stand-in for sudo (see the module's docstring). `client` is the `sudo` the runner user runs."""

    def __init__(self, where: Path, uid: int):
        self.uid, self.path = uid, where / "sudo.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(str(self.path))
        os.chown(self.path, uid, uid)
        os.chmod(self.path, 0o600)
        self.sock.listen(8)
        self.calls: list[list[str]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket):
        with conn:
            _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
            if uid != self.uid:
                return
            msg, fds, _, _ = socket.recv_fds(conn, 1 << 22, 3)
            try:
                req = json.loads(msg)
                argv, given = req["argv"], req["env"]
                keep = req["keep"]  # True: all (-E); a list: those names; []: env_reset
                env = dict(given) if keep is True else {k: given[k] for k in keep if k in given}
                for k in ("TERM", "LANG", "LC_ALL", "DISPLAY", "ARCHMATRIX_TEST_SESSION"):
                    if k in given:
                        env.setdefault(k, given[k])
                if keep is not True:
                    env.update(HOME="/root", USER="root", LOGNAME="root", SHELL="/bin/bash")
                env.update(PATH=SECURE_PATH, SUDO_USER=str(self.uid), SUDO_UID=str(self.uid), SUDO_GID=str(self.uid))
                self.calls.append(argv)
                exe = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=SECURE_PATH)
                if exe is None:
                    os.write(fds[2], f"sudo: {argv[0]}: command not found\n".encode())
                    rc = 1
                else:
                    rc = subprocess.run([exe, *argv[1:]], stdin=fds[0], stdout=fds[1], stderr=fds[2], env=env,
                                        cwd=req["cwd"]).returncode
                    rc = 128 - rc if rc < 0 else rc
            finally:
                for fd in fds:
                    os.close(fd)
            conn.send(json.dumps({"rc": rc}).encode())

    def stop(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)

    def client(self) -> str:
        return f'''#!/usr/bin/python3 -I
"""sudo stand-in (tests/cirehearsal.py): -E, --preserve-env[=A,B], -n; the command runs as root."""
import json, os, socket, sys
args, keep = sys.argv[1:], []
while args and args[0].startswith("-"):
    a = args.pop(0)
    if a == "--":
        break
    if a in ("-E", "--preserve-env"):
        keep = True
    elif a.startswith("--preserve-env="):
        keep = a.split("=", 1)[1].split(",")
    elif a != "-n":
        sys.exit(f"sudo (rehearsal stand-in): option {{a}} is not rehearsed")
if not args:
    sys.exit("usage: sudo [-E] command ...")
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect({str(self.path)!r})
socket.send_fds(s, [json.dumps({{"argv": args, "env": dict(os.environ), "keep": keep, "cwd": os.getcwd()}}).encode()],
                [0, 1, 2])
sys.exit(json.loads(s.recv(4096))["rc"])
'''


def _requirements(dist) -> list[str]:
    from packaging.requirements import Requirement

    out = []
    for line in dist.requires or []:
        r = Requirement(line)
        if r.marker is None or r.marker.evaluate({"extra": ""}):
            out.append(r.name)
    return out


def wheelhouse(dest: Path, roots=("archmatrix", "nox", "setuptools")) -> Path:
    """PyPI stand-in: the installed distributions `pip install nox -e .` needs (the closure of
    `roots`' requirements, the project itself excepted), each repacked as the wheel it was
    installed from (its files per RECORD, its tag per WHEEL); pip regenerates scripts and RECORD."""
    from importlib import metadata

    def norm(n):
        return re.sub(r"[-_.]+", "-", n).lower()

    dists = {norm(d.metadata["Name"]): d for d in metadata.distributions()}
    todo, seen = list(roots), set()
    while todo:
        name = norm(todo.pop())
        if name in seen or name not in dists:
            continue
        seen.add(name)
        todo += _requirements(dists[name])
    dest.mkdir(parents=True, exist_ok=True)
    for name in sorted(seen - {"archmatrix"}):
        d = dists[name]
        info = Path(d._path)  # the .dist-info folder
        tags = [line.split(":", 1)[1].strip().split("-") for line in (info / "WHEEL").read_text().splitlines()
                if line.startswith("Tag:")]
        if len({tuple(t[1:]) for t in tags}) == 1:  # py2-none-any + py3-none-any -> py2.py3-none-any
            tag = "-".join([".".join(t[0] for t in tags), *tags[0][1:]])
        else:
            tag = "-".join(next(t for t in tags if t[0].startswith(("cp3", "py3"))))
        base = info.parent
        whl = dest / f"{d.metadata['Name'].replace('-', '_')}-{d.version}-{tag}.whl"
        with zipfile.ZipFile(whl, "w", zipfile.ZIP_STORED) as z:
            for f in d.files or []:
                p = str(f)
                if p.startswith("..") or "__pycache__" in p or p.endswith((".pyc", "INSTALLER", "REQUESTED",
                                                                               "direct_url.json")):
                    continue
                if (base / p).is_file():
                    z.write(base / p, p)
    return dest


def _standin_bin(where: Path, sudo: Sudo | None) -> Path:
    """sudo, curl and apt-get stand-ins (see the module's docstring), first on the runners' PATH."""
    b = where / "standin-bin"
    b.mkdir(parents=True, exist_ok=True)
    py = "#!/usr/bin/python3 -I\n"  # the runner user cannot reach the test's own venv
    (b / "curl").write_text(py + f'''"""curl stand-in: URLs under the rehearsed Pages site read the published folder; nothing else."""
import os, shutil, sys
args, out, url = sys.argv[1:], None, None
while args:
    a = args.pop(0)
    if a in ("-o", "--output"):
        out = args.pop(0)
    elif not a.startswith("-"):
        url = a
site = os.environ["REHEARSAL_PAGES_DIR"]
if not url or not url.startswith({PAGES!r} + "/"):
    sys.exit(f"curl (rehearsal stand-in): {{url}}: no network here")
src = os.path.join(site, url[len({PAGES!r}) + 1:])
if not os.path.isfile(src):
    print(f"curl: (22) The requested URL returned error: 404", file=sys.stderr)
    sys.exit(22)
if out:
    shutil.copyfile(src, out)
else:
    sys.stdout.buffer.write(open(src, "rb").read())
''')
    (b / "apt-get").write_text(py + '''"""apt-get stand-in: install succeeds only for packages installed already."""
import subprocess, sys
args = [a for a in sys.argv[1:] if not a.startswith("-")]
if args[:1] == ["update"]:
    sys.exit(0)
if args[:1] == ["install"]:
    missing = [p for p in args[1:] if "install ok installed" not in subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
    if missing:
        sys.exit("apt-get (rehearsal stand-in): would install " + " ".join(missing))
    print("apt-get (rehearsal stand-in): already installed: " + " ".join(args[1:]))
    sys.exit(0)
sys.exit(f"apt-get (rehearsal stand-in): {' '.join(sys.argv[1:])} is not rehearsed")
''')
    if sudo is not None:
        (b / "sudo").write_text(sudo.client())
    for f in b.iterdir():
        f.chmod(0o755)
    return b


# ---- the lab: folders, the runner user, the stores ----------------------------------------------

@dataclass
class Lab:
    base: Path  # world-readable: the runner user reaches everything below it
    uid: int
    overlay: dict  # path in the checkout -> text (the rehearsed project's own files)
    env: dict  # stand-in environment every runner gets
    replace: dict  # literal text in scripts and env -> its stand-in (registry.k8s.io -> loopback)
    sudo: Sudo | None = None
    standins: Path | None = None
    wheels: Path | None = None
    log: list = field(default_factory=list)

    def mkdir(self, *parts, owner: bool = True) -> Path:
        d = self.base.joinpath(*parts)
        d.mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(d, self.uid, self.uid)
        return d

    def chown_tree(self, d: Path):
        subprocess.run(["chown", "-R", f"{self.uid}:{self.uid}", str(d)], check=True)

    def checkout(self, dest: Path, night_overlay: dict):
        files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        for rel in filter(None, files.decode().split("\0")):
            src = ROOT / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
        for rel, text in {**self.overlay, **night_overlay}.items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_text(text)

    def sub(self, text):
        if isinstance(text, str):
            for k, v in self.replace.items():
                text = text.replace(k, v)
        return text


# ---- GitHub Actions -----------------------------------------------------------------------------

@dataclass
class StepRun:
    name: str
    outcome: str  # success, failure, skipped, not-rehearsed
    log: Path | None = None


@dataclass
class JobRun:
    name: str
    result: str
    steps: list[StepRun]


class Night:
    """One scheduled run of the workflow: every job, in `needs` order, against shared stores."""

    def __init__(self, lab: Lab, workflow: dict, number: int, matrix_override: dict, not_run: dict,
                 overlay: dict):
        self.lab, self.wf, self.n, self.override, self.not_run, self.overlay = (
            lab, workflow, number, matrix_override, not_run, overlay)
        self.dir = lab.mkdir(f"night{number}")
        self.artifacts = lab.mkdir(f"night{number}", "artifacts", owner=False)
        self.pages_dir = lab.mkdir("pages", owner=False)  # the site as published (by the latest deploy)
        self.caches = lab.mkdir("actions-cache", owner=False)
        self.jobs: dict[str, list[JobRun]] = {}
        self.github = {"run_id": str(1000 + number), "repository": "rehearsal/archmatrix",
                       "repository_owner": "rehearsal", "event_name": "schedule",
                       "event": {"repository": {"name": "archmatrix"}}}

    def run(self) -> dict[str, list[JobRun]]:
        for name, job in self.wf["jobs"].items():
            needs = job.get("needs", [])
            needs = [needs] if isinstance(needs, str) else needs
            results = {n: {"result": "failure" if any(j.result != "success" for j in self.jobs[n]) else "success"}
                       for n in needs}
            ctx = {"github": self.github, "needs": results}
            if not condition(job.get("if"), ctx, failed=any(r["result"] != "success" for r in results.values())):
                self.jobs[name] = [JobRun(name, "skipped", [])]
                continue
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as pool:  # a matrix's jobs run at once, as on GitHub
                self.jobs[name] = list(pool.map(lambda im: self._job(name, job, *im), enumerate(self._matrix(job))))
        return self.jobs

    def _matrix(self, job):
        m = (job.get("strategy") or {}).get("matrix")
        if not m:
            return [{}]
        m = {**m, **self.override}
        keys = [k for k in m if k not in ("include", "exclude")]
        if "include" in m or "exclude" in m:
            raise ValueError("matrix include/exclude are not rehearsed")
        return [dict(zip(keys, combo)) for combo in itertools.product(*(m[k] for k in keys))]

    def _job(self, name, job, index, matrix) -> JobRun:
        lab = self.lab
        jd = f"{name}-{index}"
        work, home, temp, logs = (lab.mkdir(f"night{self.n}", jd, d) for d in ("work", "home", "temp", "logs"))
        path = [str(lab.standins), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        env = {**lab.env, "HOME": str(home), "USER": "runner", "LOGNAME": "runner", "CI": "true",
               "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(work), "RUNNER_TEMP": str(temp),
               "GITHUB_RUN_ID": self.github["run_id"], "GITHUB_REPOSITORY": self.github["repository"],
               "GITHUB_REPOSITORY_OWNER": self.github["repository_owner"], "REHEARSAL_PAGES_DIR": str(self.pages_dir),
               "TMPDIR": str(temp)}  # each job is a fresh machine: its own /tmp
        ctx = {"github": self.github, "matrix": matrix, "strategy": {"job-index": index},
               "runner": {"os": "Linux", "temp": str(temp)}, "steps": {}, "env": env}
        for scope in (self.wf.get("env") or {}, job.get("env") or {}):
            for k, v in scope.items():
                env[k] = lab.sub(interpolate(v, ctx))
        env.update(lab.env)  # the stand-ins' values win (ARCHMATRIX_CACHE, ...)
        failed, steps, posts = False, [], []
        for i, step in enumerate(job["steps"]):
            label = step.get("name") or step.get("uses") or step["run"].splitlines()[0]
            sid = step.get("id")
            if not condition(step.get("if"), ctx, failed):
                steps.append(StepRun(label, "skipped"))
                outcome = "skipped"
            elif label in self.not_run:
                steps.append(StepRun(label, "not-rehearsed"))
                outcome = "success"
            else:
                log = logs / f"{i:02d}.log"
                step_env = {**env, **{k: lab.sub(interpolate(v, ctx)) for k, v in (step.get("env") or {}).items()}}
                step_env["PATH"] = ":".join(path)
                out_file = temp / f"output-{i}"
                out_file.touch()
                os.chown(out_file, lab.uid, lab.uid)
                step_env["GITHUB_OUTPUT"] = str(out_file)
                if "uses" in step:
                    with_ = {k: lab.sub(interpolate(v, ctx)) for k, v in (step.get("with") or {}).items()}
                    ok, outputs = self._uses(step["uses"], with_, work, path, matrix, posts, log)
                else:
                    script = temp / f"step-{i}.sh"
                    script.write_text(lab.sub(interpolate(step["run"], ctx)))
                    os.chown(script, lab.uid, lab.uid)
                    with open(log, "w") as f:
                        rc = subprocess.run(["setpriv", f"--reuid={lab.uid}", f"--regid={lab.uid}", "--clear-groups",
                                             "bash", "-e", str(script)], cwd=work, env=step_env, stdout=f,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
                    ok, outputs = rc == 0, _outputs(out_file)
                outcome = "success" if ok else "failure"
                steps.append(StepRun(label, outcome, log))
                if not ok and not step.get("continue-on-error"):
                    failed = True
                if sid:
                    ctx["steps"][sid] = {"outputs": outputs}
            if sid:
                ctx["steps"].setdefault(sid, {"outputs": {}})
                ctx["steps"][sid].update(outcome=outcome, conclusion="success" if step.get("continue-on-error")
                                         and outcome == "failure" else outcome)
        if not failed:
            for post in posts:
                post()
        return JobRun(name, "failure" if failed else "success", steps)

    def _uses(self, uses: str, with_: dict, work: Path, path: list, matrix: dict, posts: list, log: Path):
        action = uses.split("@")[0]
        lab = self.lab
        note = lambda msg: log.write_text(log.read_text() + msg + "\n" if log.exists() else msg + "\n")  # noqa: E731
        if action == "actions/checkout":
            lab.checkout(work, self.overlay)
            lab.chown_tree(work)
            return True, {}
        if action == "actions/setup-python":
            want = str(with_.get("python-version", ""))
            have = f"{sys.version_info.major}.{sys.version_info.minor}"
            if want and want != have:
                note(f"setup-python stand-in: {want} asked, this machine has {have}")
                return False, {}
            venv = lab.mkdir(f"night{self.n}", work.parent.name, "tool-python")
            subprocess.run(["setpriv", f"--reuid={lab.uid}", f"--regid={lab.uid}", "--clear-groups",
                            "/usr/bin/python3", "-m", "venv", str(venv)], check=True, env={"PATH": "/usr/bin:/bin"})
            path.insert(1, str(venv / "bin"))
            return True, {"python-version": have}
        if action == "actions/cache":
            key = with_["key"]
            src = [work / p if not os.path.isabs(p) else Path(p) for p in with_["path"].split("\n") if p.strip()]
            store = self.caches / hashlib.sha256(key.encode()).hexdigest()[:16]
            hit = store.is_dir()
            if hit:
                for p, saved in zip(src, sorted(store.iterdir())):
                    shutil.copytree(saved, p, dirs_exist_ok=True, symlinks=True)
                lab.log.append(f"cache hit {key}")
            else:
                def save():
                    try:
                        store.mkdir()
                    except FileExistsError:  # another job saved this key first: GitHub warns and goes on
                        lab.log.append(f"cache exists {key}")
                        return
                    for i, p in enumerate(src):
                        if p.exists():
                            shutil.copytree(p, store / f"{i:02d}", symlinks=True)
                    lab.log.append(f"cache saved {key}")
                posts.append(save)
                lab.log.append(f"cache miss {key}")
            return True, {"cache-hit": str(hit).lower()}
        if action == "actions/upload-artifact":
            paths = [work / p.strip() for p in with_["path"].split("\n") if p.strip()]
            found = [p for p in paths if p.exists()]
            if not found:
                how = with_.get("if-no-files-found", "warn")
                note(f"upload-artifact stand-in: no files at {with_['path']!r} ({how})")
                return how != "error", {}
            root = Path(os.path.commonpath(found))
            root = root.parent if root.is_file() else root
            dest = self.artifacts / with_["name"]
            if dest.exists():
                note(f"upload-artifact stand-in: artifact {with_['name']} exists already")
                return False, {}
            for p in found:
                rel = p.relative_to(root)
                if p.is_dir():
                    shutil.copytree(p, dest / rel, symlinks=True)
                else:
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(p, dest / rel)
            return True, {}
        if action == "actions/download-artifact":
            target = work / with_.get("path", ".")
            names = sorted(a.name for a in self.artifacts.iterdir())
            if with_.get("name"):
                chosen, single = [with_["name"]], True
            else:
                chosen, single = [n for n in names if fnmatch.fnmatch(n, with_.get("pattern", "*"))], False
            for n in chosen:
                shutil.copytree(self.artifacts / n, target if single or with_.get("merge-multiple") else target / n,
                                dirs_exist_ok=True)
            lab.chown_tree(target) if target.exists() else None
            return True, {"download-path": str(target)}
        if action == "actions/configure-pages":
            return True, {"base_url": PAGES, "base_path": "/archmatrix", "origin": PAGES.rsplit("/", 1)[0]}
        if action == "actions/upload-pages-artifact":
            dest = self.artifacts / "github-pages"
            shutil.copytree(work / with_.get("path", "_site"), dest, symlinks=False)
            return True, {}
        if action == "actions/deploy-pages":
            site = self.artifacts / "github-pages"
            if not site.is_dir():
                note("deploy-pages stand-in: no github-pages artifact")
                return False, {}
            shutil.rmtree(self.pages_dir)
            shutil.copytree(site, self.pages_dir)
            lab.log.append(f"night {self.n}: deployed")
            return True, {"page_url": PAGES + "/"}
        raise ValueError(f"{uses}: no stand-in for this action: add one to tests/cirehearsal.py")


def _outputs(path: Path) -> dict:
    """$GITHUB_OUTPUT: name=value lines and name<<DELIM blocks."""
    out, lines = {}, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delim = line.split("<<", 1)
            j = lines.index(delim, i + 1)
            out[name] = "\n".join(lines[i + 1:j])
            i = j
        elif "=" in line:
            name, value = line.split("=", 1)
            out[name] = value
        i += 1
    return out


# ---- Prow ---------------------------------------------------------------------------------------

def prow(lab: Lab, periodic: dict, where: Path, env_override: dict, overlay: dict) -> tuple[int, Path, Path]:
    """The periodic's container `command` + `args` as root, in a checkout of the first extra_ref
    (workdir: true), with $ARTIFACTS (what the decoration uploads). Returns (exit code, artifacts, log)."""
    refs = periodic.get("extra_refs") or []
    assert refs and refs[0].get("workdir"), "the periodic must start in its clone: extra_refs[0].workdir: true"
    c = periodic["spec"]["containers"][0]
    work, home, artifacts = where / "work", where / "home", where / "artifacts"
    for d in (work, home, artifacts):
        d.mkdir(parents=True)
    lab.checkout(work, overlay)
    env = {**lab.env, "HOME": str(home), "ARTIFACTS": str(artifacts), "CI": "true",
           "PATH": f"{lab.standins}:{SECURE_PATH}",
           **{e["name"]: lab.sub(e.get("value", "")) for e in c.get("env") or []}, **env_override}
    log = where / "prow.log"
    with open(log, "w") as f:
        rc = subprocess.run([*c["command"], *[lab.sub(a) for a in c["args"]]], cwd=work, env=env, stdout=f,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    return rc, artifacts, log


def setup(base: Path, uid: int, overlay: dict, env: dict, replace: dict, sudo: bool = True) -> Lab:
    lab = Lab(base, uid, overlay, env, replace)
    lab.sudo = Sudo(base, uid) if sudo else None
    lab.standins = _standin_bin(base, lab.sudo)
    lab.wheels = wheelhouse(base / "wheels")
    lab.env.update(PIP_NO_INDEX="1", PIP_NO_COMPILE="1", PIP_FIND_LINKS=str(lab.wheels), PIP_DISABLE_PIP_VERSION_CHECK="1",
                   VIRTUALENV_NO_PERIODIC_UPDATE="1")
    return lab
