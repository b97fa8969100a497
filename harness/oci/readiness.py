"""Port readiness: does every image a release needs exist for every platform, with a config
that agrees? Concurrent reads over one pooled client; no node is booted."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ..checks import images
from ..common.errors import UserError
from ..matrix import kube_versions, platforms
from .client import Client, RegistryError


@dataclass
class Row:
    image: str  # short name (pause, etcd, ...) or the workload reference
    reference: str
    platform: str  # linux/arm/v7
    status: str  # present | missing (404, denied) | mismatch | error (registry unreachable, 5xx: the lab)
    digest: str | None = None
    message: str = ""
    workload: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "present"


def load_images(path: str | Path) -> list[str]:
    """A YAML list of image references (workload images to check beside the release's)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: images file does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{p}: malformed YAML: {getattr(e, 'problem', e)}") from None
    if isinstance(data, dict):
        data = data.get("images")
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise UserError(f"{p}: expected a list of image references (or images: [...])")
    return data


def _check_one(client: Client, name: str, ref: str, index, row: platforms.Platform, os: str,
               os_version: str | None, workload: bool) -> Row:
    plat = images.platform_of(row.oci_platform(os))
    r = Row(name, ref, plat, "error", workload=workload)
    if isinstance(index, RegistryError):  # unreachable, 5xx: error; 404, denied: not there for us
        r.status = "error" if index.lab else "missing"
        r.message = str(index)
        return r
    if not index.is_index:
        config = client.config(ref, index)
        if images.matches({k: config.get(k) for k in ("os", "architecture", "variant")}, row, os):
            r.status, r.digest, r.message = "present", index.digest, f"{ref}: single-arch image for {plat}"
        else:
            r.status, r.message = "missing", f"{ref}: single-arch image of {images.platform_of(config)}, not {plat}"
    else:
        entry = images.find_entry(index.body, row, os, os_version)
        if entry is None:
            r.status = "missing"
            r.message = images.check_has_platform(ref, index.body, row, os, os_version).message
        else:
            r.digest = entry["digest"]
            try:
                config = client.config(ref, client.manifest(ref, entry["digest"]))
            except RegistryError as e:  # an entry the index names that cannot be read
                r.status, r.message = ("error" if e.lab else "missing"), str(e)
                return r
            v = images.check_config(f"{ref}@{entry['digest']}", entry["platform"], config)
            r.status, r.message = ("present" if v.ok else "mismatch"), v.message
    if workload and r.status in ("missing", "mismatch"):
        r.message += f" — would fail with exec format error on {row.name}"
    return r


def check(release: kube_versions.Release, arches: list[platforms.Platform], repository: str = "registry.k8s.io",
          extra: list[str] = (), os: str = "linux", os_version: str | None = None,
          client: Client | None = None, workers: int = 16) -> list[Row]:
    client = client or Client()
    refs = {name: ref for name, ref in release.images(repository).items()}
    refs.update({ref: ref for ref in extra})
    with ThreadPoolExecutor(workers) as pool:
        def top(ref):
            try:
                return client.manifest(ref)
            except RegistryError as e:
                return e
        indexes = dict(zip(refs, pool.map(top, refs.values())))
        jobs = [pool.submit(_check_one, client, name, refs[name], indexes[name], row, os, os_version, name in extra)
                for name in refs for row in arches]
        rows = []
        for job in jobs:
            try:
                rows.append(job.result())
            except RegistryError as e:  # a single-arch image's config could not be read
                rows.append(Row("?", "?", "?", "error" if e.lab else "missing", message=str(e)))
    return rows


def table(rows: list[Row]) -> str:
    width = max(len(r.image) for r in rows)
    plats = sorted({r.platform for r in rows})
    out = [f"{'image':{width}}  " + "  ".join(f"{p:14}" for p in plats)]
    for name in dict.fromkeys(r.image for r in rows):
        cells = {r.platform: r.status for r in rows if r.image == name}
        out.append(f"{name:{width}}  " + "  ".join(f"{cells.get(p, '-'):14}" for p in plats))
    bad = [r for r in rows if not r.ok]
    out += [""] + [f"{r.status.upper()}: {r.message}" for r in bad]
    out.append(f"{len(rows) - len(bad)} present, {len(bad)} not ready "
               f"({sum(r.status == 'error' for r in rows)} errors)")
    return "\n".join(out)


def to_json(rows: list[Row]) -> str:
    return json.dumps([asdict(r) for r in rows], indent=1)


def to_junit(rows: list[Row], suite: str) -> str:
    from ..report import junit

    cases = [junit.Case(f"readiness.{suite}", f"{r.image}[{r.platform}]",
                        "error" if r.status == "error" else "passed" if r.ok else "failed", r.message,
                        stdout=r.digest or "") for r in rows]
    return junit.to_string(f"readiness {suite}", {f"readiness-{suite}": cases})
