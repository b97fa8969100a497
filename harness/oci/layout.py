"""Write multi-arch OCI image layouts without a daemon, and push them with skopeo.

Used to seed registries with the harness's own pause index (a real static binary per arch)
and, in tests, with deliberately broken images (a config that lies, a missing arch, a
single-arch tag). Layout per image-spec image-layout.md: oci-layout, index.json, blobs/sha256/.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from ..common.errors import InfraError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass
class Image:
    platform: dict  # os, architecture, [variant], [os.version]: what the index entry claims
    files: dict[str, bytes] = field(default_factory=dict)  # path in the image -> content (mode 0755)
    entrypoint: tuple[str, ...] = ("/pause",)
    config_platform: dict | None = None  # what the config says; None = the same (a liar sets it)


class Layout:
    def __init__(self, path: Path):
        self.path = Path(path)
        (self.path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        index = self.path / "index.json"
        self.index = json.loads(index.read_text()) if index.exists() else {"schemaVersion": 2, "manifests": []}

    def blob(self, data: bytes, media_type: str, **extra) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.path / "blobs" / "sha256" / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data), **extra}

    def _json(self, obj: dict, media_type: str, **extra) -> dict:
        return self.blob(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode(), media_type, **extra)

    def image(self, img: Image) -> dict:
        """Write one image (layer, config, manifest); return its manifest descriptor with platform."""
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for path, content in sorted(img.files.items()):
                info = tarfile.TarInfo(path.lstrip("/"))
                info.size, info.mode, info.mtime = len(content), 0o755, 0
                tar.addfile(info, io.BytesIO(content))
        layer_tar = raw.getvalue()
        layer = self.blob(gzip.compress(layer_tar, mtime=0), OCI_LAYER)
        says = img.config_platform or img.platform
        config = {k: v for k, v in says.items() if k in ("os", "architecture", "variant", "os.version")}
        config.update({"config": {"Entrypoint": list(img.entrypoint)},
                       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}})
        cfg = self._json(config, OCI_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cfg, "layers": [layer]}
        return self._json(manifest, OCI_MANIFEST, platform=dict(img.platform))

    def tag(self, tag: str, images: list[Image], multi_arch: bool = True) -> dict:
        """Tag an index of `images` (or, with multi_arch=False, the single image) as `tag`."""
        descs = [self.image(i) for i in images]
        if multi_arch:
            top = self._json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs}, OCI_INDEX)
        else:
            assert len(descs) == 1, "a single-arch tag holds one image"
            top = dict(descs[0])
            top.pop("platform")
        top["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index["manifests"] = [m for m in self.index["manifests"]
                                   if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
        self.index["manifests"].append(top)
        (self.path / "index.json").write_text(json.dumps(self.index, indent=1))
        return top


def require_skopeo() -> None:
    if shutil.which("skopeo") is None:
        raise InfraError("skopeo is not installed: apt-get install skopeo", retryable=False)


def push(layout: Layout, tag: str, dest: str, docker_v2s2: bool = False) -> None:
    """skopeo copy --all oci:<layout>:<tag> docker://<dest> (plain HTTP allowed for loopback)."""
    require_skopeo()
    cmd = ["skopeo", "copy", "--all", "--quiet", "--dest-tls-verify=false", "--preserve-digests"]
    if docker_v2s2:
        cmd = [c for c in cmd if c != "--preserve-digests"] + ["--format", "v2s2"]
    cmd += [f"oci:{layout.path}:{tag}", f"docker://{dest}"]
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    if p.returncode != 0:
        raise InfraError(f"skopeo copy to {dest} failed: {p.stderr.strip()[-400:]}")
