"""Which Kubernetes releases exist: asked of upstream at run time, the built-in table as fallback.

Kubernetes publishes its newest release in https://dl.k8s.io/release/stable.txt and the newest
patch of each minor in stable-1.X.txt (kubernetes.io "Install and Set Up kubectl on Linux";
kubernetes/release's `krel` writes them at every release). Asking them is what keeps `latest` from
rotting silently in kube_versions' table.

ARCHMATRIX_RELEASES chooses where the answer comes from:
  upstream (default)   https://dl.k8s.io/release; when it does not answer, the table, and the run says so
  table                the built-in table only; nothing is fetched (the harness's own tests)
  http://HOST[:PORT]/P a mirror in dl.k8s.io/release's layout (stable.txt, stable-1.X.txt)

An environment variable, not a command-line option, because the answer is needed wherever a
matrix is read -- the CLI, the pytest plugin in every xdist worker, nox sessions, benchmarks --
and the environment reaches all of them with no plumbing; `nox -s tests` sets it to `table`.
Each answer (including "unreachable") is cached for the process, with one bounded request each.
"""
from __future__ import annotations

import os
import urllib.error
import urllib.request

from ..common.errors import UserError

ENV = "ARCHMATRIX_RELEASES"
UPSTREAM = "https://dl.k8s.io/release"
TIMEOUT = 5.0  # seconds per request; one request per file per run

_cache: dict[str, str | None] = {}  # file name -> its first line, or None for 404
_unreachable: list[str] = []  # the first failure: later requests are not tried
_asked: list[str] = []  # the base the two above belong to
_warnings: list[str] = []


def mode() -> str:
    """'table', or the base URL to ask."""
    raw = os.environ.get(ENV, "upstream").strip()
    if raw in ("", "upstream"):
        return UPSTREAM
    if raw == "table":
        return "table"
    if raw.startswith(("http://", "https://")):
        return raw.rstrip("/")
    raise UserError(f"{ENV}={raw}: expected 'upstream', 'table' or an http(s):// URL in dl.k8s.io/release's layout")


def describe_base() -> str:
    base = mode()
    return "dl.k8s.io" if base == UPSTREAM else base


def _opener(base: str):
    # a loopback mirror is reached directly, never through a proxy from the environment
    host = base.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _fetch(name: str) -> str | None:
    """First line of BASE/name; None when upstream says it does not exist (404); UserError when
    upstream cannot be asked (table mode, or unreachable: the reason is kept for the run)."""
    base = mode()
    if base == "table":
        raise UserError(f"{ENV}=table: upstream is not asked")
    if _asked != [base]:  # ARCHMATRIX_RELEASES changed: earlier answers were another source's
        _cache.clear()
        _unreachable.clear()
        _asked[:] = [base]
    if name in _cache:
        return _cache[name]
    if _unreachable:
        raise UserError(_unreachable[0])
    try:
        with _opener(base).open(f"{base}/{name}", timeout=TIMEOUT) as r:
            text = r.read(200).decode("ascii", "replace").strip().splitlines()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            _cache[name] = None
            return None
        why = f"HTTP {e.code} for {name}"
    except (urllib.error.URLError, OSError, ValueError) as e:
        why = str(getattr(e, "reason", e))
    else:
        value = text[0].strip() if text else ""
        if not value.startswith("v") or value.count(".") < 2:
            why = f"{name} says {value[:40]!r}, not a version"
        else:
            _cache[name] = value
            return value
    _unreachable.append(f"{describe_base()} unreachable: {why}")
    raise UserError(_unreachable[0])


def latest() -> str | None:
    """Upstream's newest release ('v1.37.2'), or None (table mode, or upstream did not answer)."""
    if mode() == "table":  # (a malformed setting raises here, naming it)
        return None
    try:
        return _fetch("stable.txt")
    except UserError:
        return None


def stable(minor: str) -> str | None:
    """The newest patch of a minor per upstream ('v1.38.1'); None when upstream has no such file
    (not released). UserError naming why when upstream cannot be asked."""
    try:
        return _fetch(f"stable-{minor}.txt")
    except UserError as e:
        raise UserError(f"kubernetes {minor}: newer than the built-in table and its facts cannot come from "
                        f"upstream ({e}); set {ENV} to a reachable mirror or use a release the table has") from None


def warn(message: str) -> None:
    if message not in _warnings:
        _warnings.append(message)


def warnings() -> list[str]:
    return list(_warnings)


def unreachable() -> str | None:
    """Why upstream did not answer this run, or None."""
    return _unreachable[0] if _unreachable else None


def reset() -> None:
    """Forget every cached answer (tests switch ARCHMATRIX_RELEASES between cases)."""
    _cache.clear()
    _unreachable.clear()
    _asked.clear()
    _warnings.clear()


def export() -> dict:
    """The cached answers, for xdist workers (they then ask nothing)."""
    return {"asked": list(_asked), "cache": dict(_cache), "unreachable": list(_unreachable)}


def load(state: dict) -> None:
    _asked[:] = state.get("asked", [])
    _cache.update(state.get("cache", {}))
    _unreachable[:] = state.get("unreachable", [])
