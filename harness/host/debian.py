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

from ..common.errors import InfraError, UserError
from ..common.paths import cache_dir
from .sysdeps import KEYRING

LISTS_MAX_AGE = 24 * 3600
ENV_MIRROR = "ARCHMATRIX_DEBIAN_MIRROR"
# Debian's suite names: the codenames of https://www.debian.org/releases/ (forky: "the next major Debian
# release after trixie", https://www.debian.org/releases/forky/) and their aliases. An apt source whose
# suite is one of these (or <one>-updates/-backports) is a Debian archive; Ubuntu's (jammy, noble)
# and third-party repositories are not.
DEBIAN_SUITES = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "experimental",
                 "oldoldstable", "oldstable", "stable", "testing", "unstable")


def _is_debian_archive(uri: str, suite: str) -> bool:
    return "security" not in uri and suite.split("-")[0].split("/")[0] in DEBIAN_SUITES


def _sources(sources_dir: Path, sources_list: Path):
    """(uri, suite) of every entry in apt's sources, deb822 (*.sources) and one-line (*.list)."""
    if sources_dir.is_dir():
        for f in sorted(sources_dir.glob("*.sources")):
            for stanza in re.split(r"\n\s*\n", f.read_text()):
                fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, re.M))
                if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("URIs", "").split():
                    for suite in fields.get("Suites", "").split():
                        yield uri, suite
    lists = [sources_list] + (sorted(sources_dir.glob("*.list")) if sources_dir.is_dir() else [])
    for f in lists:
        if f.is_file():
            for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", f.read_text(), re.M):
                yield m.group(1), m.group(2)


def mirror(given: str | None = None, sources_dir: str = "/etc/apt/sources.list.d",
           sources_list: str = "/etc/apt/sources.list") -> str:
    """The Debian mirror image builds and apt fetches use: `given` (--mirror), else $ARCHMATRIX_DEBIAN_MIRROR,
    else the Debian archive this machine's apt sources name. Never an Ubuntu mirror (an Ubuntu host's
    sources name none: then it must be given)."""
    url = given or os.environ.get(ENV_MIRROR)
    if url:
        if not re.match(r"^(https?|file)://\S+$", url):
            raise UserError(f"Debian mirror {url!r} (from {'--mirror' if given else ENV_MIRROR}) is not an "
                            "http(s):// or file:// URL")
        return url.rstrip("/")
    for uri, suite in _sources(Path(sources_dir), Path(sources_list)):
        if _is_debian_archive(uri, suite):
            return uri.rstrip("/")
    raise UserError(f"no Debian mirror known: the apt sources in {sources_list} and {sources_dir} name no Debian "
                    f"archive; give one with --mirror URL or {ENV_MIRROR}=URL (e.g. http://deb.debian.org/debian)")


def use_mirror(url: str | None) -> None:
    """--mirror URL: checked, then set as $ARCHMATRIX_DEBIAN_MIRROR so every build of this run (and its
    xdist workers and subprocesses) uses it."""
    if url:
        os.environ[ENV_MIRROR] = mirror(url)


def source_line(suite: str, given: str | None = None) -> str:
    """One apt source for a Debian suite: the Debian mirror, signed by Debian's keyring (on an
    Ubuntu host too, whose apt trusts only Ubuntu's keys)."""
    return f"deb [signed-by={KEYRING}] {mirror(given)} {suite} main"


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
    (root / "sources.list").write_text(source_line(suite) + "\n")
    return root, _apt_options(root, arch)


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise InfraError(f"{what} failed (exit {p.returncode}): {' | '.join(tail)}")
    return p.stdout


def download(package: str, arch: str, suite: str = "bookworm") -> Path:
    """The .deb of `package` for Debian arch `arch` from `suite`, cached. Blocks on a lock per suite+arch."""
    from filelock import FileLock  # imported here: the mirror functions above stay stdlib-only (lab.freshroot)

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
