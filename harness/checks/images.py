"""Verdicts on OCI indexes, manifest lists and image configs (facts read by harness.registry)."""
from __future__ import annotations

from ..matrix import platforms
from . import Verdict


def _variant(p: dict, row: platforms.Platform | None) -> str | None:
    v = p.get("variant")
    return v if v else (row.default_variant if row else None)


def platform_of(p: dict) -> str:
    s = f"{p.get('os', '?')}/{p.get('architecture', '?')}"
    if p.get("variant"):
        s += f"/{p['variant']}"
    if p.get("os.version"):
        s += f" ({p['os.version']})"
    return s


def matches(p: dict, row: platforms.Platform, os: str = "linux", os_version: str | None = None) -> bool:
    """Does an index entry's platform serve this arch/os? An absent variant counts as what
    containerd normalizes it to (arm -> v7, arm64 -> v8: the row's default_variant); Windows
    entries must carry an os.version of that build."""
    if p.get("os") != os or p.get("architecture") != row.name:
        return False
    if _variant(p, row) != (row.oci_variant or row.default_variant):
        return False
    if os_version and not str(p.get("os.version", "")).startswith(os_version):
        return False
    return True


def check_is_index(ref: str, media_type: str, body: dict) -> Verdict:
    """A multi-arch tag must be an OCI index or Docker manifest list; a single image is flagged."""
    if body.get("manifests") is not None:
        n = len(body["manifests"])
        return Verdict(True, f"{ref}: {media_type} with {n} entries")
    return Verdict(False, f"{ref}: expected a multi-arch index or manifest list, found a single-arch "
                          f"image ({media_type or 'no mediaType'})")


def find_entry(body: dict, row: platforms.Platform, os: str = "linux", os_version: str | None = None) -> dict | None:
    for d in body.get("manifests") or ():
        if matches(d.get("platform") or {}, row, os, os_version):
            return d
    return None


def check_has_platform(ref: str, body: dict, row: platforms.Platform, os: str = "linux",
                       os_version: str | None = None) -> Verdict:
    want = platform_of({**row.oci_platform(os), **({"os.version": os_version + ".*"} if os_version else {})})
    entry = find_entry(body, row, os, os_version)
    found = ", ".join(platform_of(d.get("platform") or {}) for d in body.get("manifests") or ()) or "no entries"
    if entry is None:
        return Verdict(False, f"{ref}: expected an entry for {want}, found {found}")
    said = entry.get("platform") or {}
    why = ""
    if row.oci_variant and not said.get("variant"):
        why = (f" (the entry says {platform_of(said)} with no variant, which containerd pulls for "
               f"{row.name}/{row.default_variant}: its platform normalization defaults {row.name} to {row.default_variant})")
    return Verdict(True, f"{ref}: {want} -> {entry['digest']}{why}")


def check_config(ref: str, descriptor_platform: dict, config: dict) -> Verdict:
    """The image config really says the architecture/os/variant its index entry claims."""
    row = None
    try:
        row = platforms.arch(descriptor_platform.get("architecture", ""))
    except Exception:
        pass
    claimed = platform_of(descriptor_platform)
    said = platform_of({k: config.get(k) for k in ("os", "architecture", "variant") if config.get(k)})
    ok = (config.get("architecture") == descriptor_platform.get("architecture")
          and config.get("os") == descriptor_platform.get("os")
          and _variant(config, row) == _variant(descriptor_platform, row))
    return Verdict(ok, f"{ref}: index entry says {claimed}, image config says {said}")


def check_sandbox_image(where: str, configured: str | None, expected_version: str, image: str = "pause") -> Verdict:
    """The runtime's sandbox (pause) image tag equals the one expected for the release (kubeadm's,
    or the pause a bootstrapper ships itself: k3s' `image` is rancher/mirrored-pause)."""
    short = image.rsplit("/", 1)[-1]
    if not configured:
        return Verdict(False, f"{where}: expected a sandbox image {short}:{expected_version}, found none configured")
    name, _, tag = configured.rpartition(":")
    ok = name.rsplit("/", 1)[-1] == short and tag == expected_version
    return Verdict(ok, f"{where}: expected sandbox image {short}:{expected_version}, found {configured}")


def check_pause_agrees(where: str, shipped: str, kubeadm_pause: str | None, minor: str) -> Verdict:
    """A bootstrapper's own pause (e.g. MicroK8s 1.31's registry.k8s.io/pause:3.7) against the one
    kubeadm uses for the release: a difference is a warning naming both (the runtime runs what it
    ships; kubeadm's is what upstream tests the release with), never a failure."""
    if kubeadm_pause is None:
        return Verdict(True, f"{where}: {shipped}; kubeadm {minor}'s pause is not in the table", warning=True)
    tag = shipped.rpartition(":")[2]
    if tag == kubeadm_pause:
        return Verdict(True, f"{where}: {shipped}, as kubeadm {minor} (pause:{kubeadm_pause})")
    return Verdict(True, f"{where}: ships {shipped}, kubeadm {minor} uses pause:{kubeadm_pause}", warning=True)
