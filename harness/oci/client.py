"""A small OCI distribution API client: manifests (index / list / image), blobs, anonymous
token auth, one pooled session shared by threads.

Why not a library: python-dxf 12 raises DXFAuthInsecureError for token auth over plain HTTP
(so it cannot be exercised against a loopback registry) and keeps one token per repository
object; oras-py targets artifact push/pull. This sits on urllib3 (requests' own transport):
one thread-safe PoolManager, and ~1 ms less per request than requests' Session on loopback.

Spec references (opencontainers/distribution-spec spec.md): GET /v2/<name>/manifests/<ref>
with Accept for every manifest type; GET /v2/<name>/blobs/<digest> (may redirect);
401 + `WWW-Authenticate: Bearer realm=...,service=...,scope=...` -> GET realm anonymously
-> `token`/`access_token` (docker/distribution docs/spec/auth/token.md).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import threading
import time
from dataclasses import dataclass

import urllib3

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


class RegistryError(Exception):
    """One reference could not be read. str() names the reference and what happened. `lab`: the
    registry could not be reached or could not answer (connection failed, timed out, 5xx, 429,
    its token service down), so nothing was learnt about the image; else it answered about the
    image (404, denied, a digest or body that is wrong), which is what a registry check judges."""

    def __init__(self, message: str, status: int | None = None, lab: bool | None = None):
        super().__init__(message)
        self.status = status
        self.lab = (status is None or status >= 500 or status == 429) if lab is None else lab

    def outcome(self) -> Exception:
        """What a check raises for it: InfraError (`error`) when the lab could not get an answer,
        ProductFailure (`failed`) when the registry answered that the image is not there for us."""
        from ..common.errors import InfraError, ProductFailure

        return InfraError(str(self), retryable=False) if self.lab else ProductFailure(str(self))


@dataclass(frozen=True)
class Reference:
    host: str  # registry host[:port]
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def ref(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}" + (f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}")


def parse(ref: str) -> Reference:
    """'registry.k8s.io/pause:3.10', '127.0.0.1:5000/pause@sha256:..', 'busybox' (Docker Hub rules)."""
    name, digest = (ref.split("@", 1) + [None])[:2]
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repo = first, rest
    else:
        host, repo = "registry-1.docker.io", name if "/" in name else f"library/{name}"
    if not re.fullmatch(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*", repo):
        raise ValueError(f"invalid image reference '{ref}'")
    return Reference(host, repo, tag if not digest or tag else None, digest)


def _is_loopback(host: str) -> bool:
    """host[:port], [v6]:port or a bare v6 address -> is it a loopback address (or localhost)?"""
    if host.startswith("["):
        h = host[1:].split("]", 1)[0]
    else:
        h = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Manifest:
    media_type: str
    digest: str
    body: dict
    size: int

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


class Client:
    """Thread-safe: one session, one pool, tokens cached per (realm, service, scope)."""

    def __init__(self, timeout: float = 10.0, retries: int = 2, pool: int = 32, insecure: set[str] | None = None):
        self.timeout, self.retries = timeout, retries
        self.insecure = set(insecure or ())
        # proxies from the environment apply to remote registries only, never to loopback
        self._direct = urllib3.PoolManager(num_pools=pool, maxsize=pool, retries=False)
        proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
        self._remote = urllib3.ProxyManager(proxy, num_pools=pool, maxsize=pool, retries=False) if proxy else self._direct
        self._tokens: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self.requests = 0  # for benchmarks: how many HTTP requests were made

    def _scheme(self, host: str) -> str:
        return "http" if host in self.insecure or _is_loopback(host) else "https"

    def _get(self, ref: Reference, path: str, headers: dict) -> urllib3.BaseHTTPResponse:
        url = f"{self._scheme(ref.host)}://{ref.host}/v2/{ref.repository}/{path}"
        scope = f"repository:{ref.repository}:pull"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            token = self._token_for(ref.host, scope)
            h = dict(headers, **({"Authorization": f"Bearer {token}"} if token else {}))
            try:
                with self._lock:
                    self.requests += 1
                r = self._http(ref.host).request("GET", url, headers=h, timeout=self.timeout, redirect=True)
            except urllib3.exceptions.HTTPError as e:
                last = RegistryError(f"{ref}: cannot reach {ref.host}: {type(e).__name__}")
                time.sleep(0.2 * (attempt + 1))
                continue
            if r.status == 401 and not token and "bearer" in r.headers.get("WWW-Authenticate", "").lower():
                self._authenticate(ref, r.headers["WWW-Authenticate"], scope)
                continue
            if r.status >= 500 or r.status == 429:
                last = RegistryError(f"{ref}: {ref.host} answered {r.status} {r.reason}", r.status)
                time.sleep(0.2 * (attempt + 1))
                continue
            if r.status == 404:
                raise RegistryError(f"{ref}: not found (404)", 404)
            if r.status == 401:
                raise RegistryError(f"{ref}: unauthorized (401): anonymous pull refused", 401)
            if r.status >= 400:
                raise RegistryError(f"{ref}: {ref.host} answered {r.status} {r.reason}", r.status)
            return r
        raise last or RegistryError(f"{ref}: gave up after {self.retries + 1} attempts")

    def _http(self, host: str):
        return self._direct if _is_loopback(host) else self._remote

    def _token_for(self, host: str, scope: str) -> str | None:
        with self._lock:
            return self._tokens.get((host, scope))

    def _authenticate(self, ref: Reference, challenge: str, scope: str) -> None:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise RegistryError(f"{ref}: 401 with a Bearer challenge that names no realm", 401, lab=False)
        params.setdefault("scope", scope)
        host = urllib3.util.parse_url(realm).netloc or ""
        try:
            r = self._http(host).request("GET", realm, fields=params, timeout=self.timeout)
        except urllib3.exceptions.HTTPError as e:
            raise RegistryError(f"{ref}: token endpoint {realm} unreachable: {type(e).__name__}") from None
        if r.status >= 400:
            raise RegistryError(f"{ref}: token endpoint {realm} answered {r.status}", r.status)
        try:
            data = json.loads(r.data)
        except ValueError:
            raise RegistryError(f"{ref}: token endpoint {realm} answered no JSON", lab=True) from None
        token = data.get("token") or data.get("access_token")
        if not token:
            raise RegistryError(f"{ref}: token endpoint {realm} returned no token", lab=True)
        with self._lock:
            self._tokens[(ref.host, scope)] = token

    def manifest(self, ref: Reference | str, digest: str | None = None) -> Manifest:
        ref = parse(ref) if isinstance(ref, str) else ref
        r = self._get(ref, f"manifests/{digest or ref.ref}", {"Accept": ACCEPT})
        raw = r.data
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        expected = digest or ref.digest
        if expected and expected != actual:
            raise RegistryError(f"{ref}: manifest digest {actual} differs from the requested {expected}", lab=False)
        try:
            body = json.loads(raw)
        except ValueError:
            raise RegistryError(f"{ref}: manifest is not JSON", lab=False) from None
        media = body.get("mediaType") or r.headers.get("Content-Type", "").split(";")[0]
        return Manifest(media, actual, body, len(raw))

    def blob(self, ref: Reference | str, digest: str) -> bytes:
        ref = parse(ref) if isinstance(ref, str) else ref
        data = self._get(ref, f"blobs/{digest}", {}).data
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise RegistryError(f"{ref}: blob {digest} has content {actual}", lab=False)
        return data

    def config(self, ref: Reference | str, manifest: Manifest) -> dict:
        return json.loads(self.blob(ref, manifest.body["config"]["digest"]))
