"""Upstream files a stand-in serves exactly as upstream publishes them (the k3s install script,
MicroK8s' containerd template): read when the stand-ins are built, from local copies of the upstream
repositories, never kept in this repository. Two places, each a directory tree one can point
elsewhere:

- ARCHMATRIX_UPSTREAM_MIRRORS (default /work/.mirror): bare git mirrors `<owner>+<name>/repo`, read
  with `git show <ref>:<path>` (e.g. canonical/microk8s at its vX.Y tags);
- ARCHMATRIX_UPSTREAM_COPIES (default ~/.cache/archmatrix/upstream): single files
  `<owner>+<name>/<commit>/<path>`, for repositories too large to mirror (k3s-io/k3s).

A pinned file is checked against the sha256 its caller records, so a different file is refused."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from ..common.errors import InfraError


def _mirrors() -> Path:
    return Path(os.environ.get("ARCHMATRIX_UPSTREAM_MIRRORS", "/work/.mirror"))


def _copies() -> Path:
    return Path(os.environ.get("ARCHMATRIX_UPSTREAM_COPIES", Path.home() / ".cache/archmatrix/upstream"))


def _slug(repo: str) -> str:
    return repo.replace("/", "+")


def git_show(repo: str, ref: str, path: str) -> bytes:
    """`path` at `ref` in the local mirror of `repo` (InfraError naming the mirror when absent)."""
    git_dir = _mirrors() / _slug(repo) / "repo"
    if not git_dir.is_dir():
        raise InfraError(f"no local mirror of {repo} at {git_dir} (ARCHMATRIX_UPSTREAM_MIRRORS): the stand-in "
                         f"needs its {path} at {ref}", retryable=False)
    r = subprocess.run(["git", "--git-dir", str(git_dir), "show", f"{ref}:{path}"], capture_output=True)
    if r.returncode != 0:
        raise InfraError(f"{repo} mirror {git_dir} has no {path} at {ref}: "
                         f"{r.stderr.decode(errors='replace').strip()}", retryable=False)
    return r.stdout


def pinned_file(repo: str, commit: str, path: str, sha256: str) -> bytes:
    """`path` of `repo` at `commit`, from a local copy or the mirror, checked against `sha256`."""
    copy = _copies() / _slug(repo) / commit / path
    if copy.is_file():
        data = copy.read_bytes()
    else:
        try:
            data = git_show(repo, commit, path)
        except InfraError:
            raise InfraError(f"no local copy of {repo} {path} at {commit}: put it at {copy} "
                             f"(ARCHMATRIX_UPSTREAM_COPIES) or a mirror of {repo} under {_mirrors()}",
                             retryable=False) from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        raise InfraError(f"{copy}: sha256 {got}, expected {sha256} ({repo} {path} at {commit})", retryable=False)
    return data
