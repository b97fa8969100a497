"""Ubuntu cloud images: not built here (Ubuntu's archive is not Debian's), but imported from a
URL or a local file the user supplies, then cached like a built image. Ubuntu publishes, per
release and arch, the disk and the kernel/initrd for direct kernel boot:
https://cloud-images.ubuntu.com/<release>/current/<release>-server-cloudimg-<arch>.img
https://cloud-images.ubuntu.com/<release>/current/unpacked/<release>-server-cloudimg-<arch>-vmlinuz-generic
(and ...-initrd-generic). cloud-init's NoCloud data source reads a `cidata` seed disk we
make: our login key and the same console markers a built image prints.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from ...common.errors import UserError
from ...common.paths import cache_dir
from ...matrix import platforms
from .cache import locked, login_key, run, write_manifest

BASE_URL = "https://cloud-images.ubuntu.com"
HEADROOM = "+4G"
USER_DATA = """#cloud-config
ssh_pwauth: false
disable_root: false
users:
  - name: root
    ssh_authorized_keys: [{key}]
runcmd:
  - echo "ARCHMATRIX-HOSTKEY $(cat /etc/ssh/ssh_host_ed25519_key.pub)" > /dev/console
  - echo ARCHMATRIX-READY > /dev/console
"""


def downloads_dir() -> Path:
    d = cache_dir() / "downloads"
    d.mkdir(parents=True, exist_ok=True)
    return d


def sources(p: platforms.Platform, d: platforms.Distro) -> dict[str, str]:
    """The three files an Ubuntu node needs: local name -> upstream URL."""
    stem = f"{d.release}-server-cloudimg-{p.debian}"
    base = f"{BASE_URL}/{d.release}/current"
    return {f"{stem}.img": f"{base}/{stem}.img",
            f"{stem}-vmlinuz-generic": f"{base}/unpacked/{stem}-vmlinuz-generic",
            f"{stem}-initrd-generic": f"{base}/unpacked/{stem}-initrd-generic"}


def fetch(url_or_path: str, dest_dir: Path) -> Path:
    """A user-supplied file, or a download into the cache (to a temp name, renamed when whole)."""
    if not url_or_path.startswith(("http://", "https://")):
        path = Path(url_or_path)
        if not path.is_file():
            raise UserError(f"{path}: no such file")
        return path
    import requests

    dest = dest_dir / url_or_path.rstrip("/").rsplit("/", 1)[-1]
    if dest.is_file():
        return dest
    tmp = dest.with_name(f".{dest.name}.part")
    try:
        with requests.get(url_or_path, stream=True, timeout=(10, 60)) as r:
            r.raise_for_status()
            with open(tmp, "wb") as out:
                for chunk in r.iter_content(1 << 20):
                    out.write(chunk)
    except (requests.RequestException, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot download {url_or_path} ({type(e).__name__}); download it where there is network "
                        f"and put it at {dest}") from None
    os.replace(tmp, dest)
    return dest


def missing_message(p: platforms.Platform, d: platforms.Distro) -> str:
    where = downloads_dir()
    lines = [f"{d.name}/{p.name}: archmatrix does not build Ubuntu images; it imports Ubuntu's cloud image. "
             f"Download these files into {where}/ (or run `archmatrix images import --distro {d.name} "
             f"--arch {p.name} FILE|URL --kernel FILE|URL --initrd FILE|URL`):"]
    lines += [f"  {url}" for url in sources(p, d).values()]
    return "\n".join(lines)


def find_downloads(p: platforms.Platform, d: platforms.Distro) -> tuple[Path, Path, Path] | None:
    files = [downloads_dir() / name for name in sources(p, d)]
    return tuple(files) if all(f.is_file() for f in files) else None


def import_image(p: platforms.Platform, d: platforms.Distro, disk: str, kernel: str, initrd: str,
                 final: Path, progress: Callable[[str], None] = print) -> Path:
    """Cache entry `final` from a cloud image: qcow2 disk grown by HEADROOM, kernel, initrd,
    a fresh login key and the NoCloud seed. Built in a temp dir, renamed, manifest last."""
    if shutil.which("genisoimage") is None:
        raise UserError("importing a cloud image needs: apt-get install -y genisoimage")
    srcs = [fetch(x, downloads_dir()) for x in (disk, kernel, initrd)]
    with locked(final, progress):
        work = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        out, log = work / "out", work / "import.log"
        out.mkdir()
        try:
            info = subprocess.run(["qemu-img", "info", "--output=json", str(srcs[0])], capture_output=True, text=True)
            if info.returncode != 0:
                raise UserError(f"{srcs[0]}: not a disk image qemu-img can read: {info.stderr.strip()}")
            progress(f"image {d.name}/{p.name}: importing {srcs[0].name}")
            run(["qemu-img", "convert", "-O", "qcow2", str(srcs[0]), str(out / "disk.qcow2")], "qemu-img convert", log)
            run(["qemu-img", "resize", "-q", str(out / "disk.qcow2"), HEADROOM], "qemu-img resize", log)
            shutil.copyfile(srcs[1], out / "kernel")
            shutil.copyfile(srcs[2], out / "initrd")
            login_key(out)
            seed = work / "seed"
            seed.mkdir()
            (seed / "user-data").write_text(USER_DATA.format(key=(out / "id_ed25519.pub").read_text().strip()))
            (seed / "meta-data").write_text(f"instance-id: archmatrix-{final.name}\nlocal-hostname: archmatrix-{p.name}\n")
            run(["genisoimage", "-quiet", "-output", str(out / "seed.iso"), "-volid", "cidata", "-joliet", "-rock",
                 str(seed / "user-data"), str(seed / "meta-data")], "genisoimage (NoCloud seed)", log)
            write_manifest(out, p, d, ("disk.qcow2", "kernel", "initrd", "id_ed25519", "id_ed25519.pub", "seed.iso"),
                           source=[str(s) for s in srcs], kernel=srcs[1].name, root="LABEL=cloudimg-rootfs",
                           seed="seed.iso", build_seconds=0)
            if final.exists():
                shutil.rmtree(final)
            os.replace(out, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    progress(f"image {d.name}/{p.name}: imported into {final}")
    return final
