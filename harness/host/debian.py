"""Real Debian packages for any arch and suite, fetched with apt into a private root
(never touching the host's apt configuration), cached and locked.

Used by image builds and by tests that need real foreign-arch binaries
(`kubectl:s390x` from trixie, `busybox-static:riscv64`, ...).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from filelock import FileLock

from ..common.errors import InfraError, UserError
from ..common.paths import cache_dir

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
LISTS_MAX_AGE = 24 * 3600


def mirror(sources_dir: str = "/etc/apt/sources.list.d", sources_list: str = "/etc/apt/sources.list") -> str:
    """The Debian mirror this machine is configured with (deb822 or one-line format)."""
    candidates = sorted(Path(sources_dir).glob("*.sources")) if Path(sources_dir).is_dir() else []
    for f in candidates:
        for m in re.finditer(r"^URIs:\s*(\S+)", f.read_text(), re.M):
            if "security" not in m.group(1):
                return m.group(1).rstrip("/")
    files = [Path(sources_list)] + (sorted(Path(sources_dir).glob("*.list")) if Path(sources_dir).is_dir() else [])
    for f in files:
        if f.is_file():
            for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+", f.read_text(), re.M):
                if "security" not in m.group(1):
                    return m.group(1).rstrip("/")
    raise UserError(f"no Debian mirror found in {sources_dir} or {sources_list}")


def _apt_options(root: Path, arch: str) -> list[str]:
    opts = {
        "Dir::State": root / "state", "Dir::State::status": root / "status", "Dir::Cache": root / "cache",
        "Dir::Etc::SourceList": root / "sources.list", "Dir::Etc::SourceParts": root / "parts",
        "Dir::Etc::Preferences": root / "none", "Dir::Etc::PreferencesParts": root / "parts",
        "APT::Architecture": arch, "APT::Architectures::": arch, "Acquire::Languages": "none",
        "Debug::NoLocking": "1", "APT::Get::AllowUnauthenticated": "false",
    }
    return [x for k, v in opts.items() for x in ("-o", f"{k}={v}")]


def _apt_root(suite: str, arch: str) -> tuple[Path, list[str]]:
    root = cache_dir() / "apt" / f"{suite}-{arch}"
    for d in ("state/lists/partial", "cache/archives/partial", "parts"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {mirror()} {suite} main\n")
    return root, _apt_options(root, arch)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise InfraError(f"{what} failed (exit {p.returncode}): {' | '.join(tail)}")
    return p.stdout


def download(package: str, arch: str, suite: str = "bookworm") -> Path:
    """The .deb of `package` for Debian arch `arch` from `suite`, cached. Blocks on a lock per suite+arch."""
    root, opts = _apt_root(suite, arch)
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    with FileLock(str(root) + ".lock"):
        existing = sorted(debs.glob(f"{package}_*_{arch}.deb")) + sorted(debs.glob(f"{package}_*_all.deb"))
        if existing:
            return existing[-1]
        stamp = root / "state" / "updated"
        if not stamp.exists() or time.time() - stamp.stat().st_mtime > LISTS_MAX_AGE:
            _run(["apt-get", *opts, "update"], f"apt-get update for {suite}/{arch}")
            stamp.touch()
        tmp = debs / ".partial"
        tmp.mkdir(exist_ok=True)
        _run(["apt-get", *opts, "download", f"{package}:{arch}"], f"apt-get download {package}:{arch} ({suite})",
             cwd=tmp)
        got = sorted(tmp.glob("*.deb"))
        if not got:
            raise InfraError(f"apt-get download {package}:{arch} ({suite}) produced no .deb")
        final = debs / got[0].name.replace("%3a", "_")
        os.replace(got[0], final)  # atomic: a half download never looks cached
        return final


def extract(deb: Path, dest: Path) -> Path:
    """Unpack a .deb's files into dest (idempotent). Returns dest."""
    done = dest / ".extracted"
    if not done.exists():
        dest.mkdir(parents=True, exist_ok=True)
        _run(["dpkg-deb", "-x", str(deb), str(dest)], f"dpkg-deb -x {deb.name}")
        done.touch()
    return dest


def fetch_file(package: str, arch: str, member: str, suite: str = "bookworm") -> Path:
    """One file (e.g. 'usr/bin/kubectl') from a package, extracted under the cache."""
    deb = download(package, arch, suite)
    root = extract(deb, cache_dir() / "unpacked" / deb.stem)
    # trixie moved /bin into /usr/bin (merged /usr): accept either spelling
    for candidate in (member, "usr/" + member, member.removeprefix("usr/")):
        if (root / candidate).exists():
            return root / candidate
    raise InfraError(f"{deb.name} has no {member}")
