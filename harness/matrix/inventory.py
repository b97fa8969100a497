"""hosts.yaml: the real machines the ssh provider may use. Keys only, never passwords (an
unknown key such as `password:` is refused), and host keys must already be in known_hosts.

    hosts:
      - name: pi4                 # unique; also the lock name
        arch: arm64               # what the host claims; verified with `uname -m` before use
        distro: debian12
        address: 192.0.2.10
        port: 22                  # default 22
        user: root                # default root
        key: ~/.ssh/id_ed25519    # private key file (its content never reaches a report)
        known_hosts: ~/.ssh/known_hosts   # default ~/.ssh/known_hosts
        jump: admin@bastion:22    # optional ProxyJump
    wait: 300                     # seconds a cell waits for a busy host before it is skipped
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from . import platforms, yamlfile
from .axes import Arch, DistroName
from ..common.errors import UserError


def _int(v: str) -> int:
    if not str(v).isdigit():
        raise ValueError(f"expected a whole number, got '{v}'")
    return int(v)


class Host(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    arch: Arch
    distro: DistroName
    address: str
    port: Annotated[str, AfterValidator(_int)] = 22
    user: str = "root"
    key: str
    known_hosts: str = "~/.ssh/known_hosts"
    jump: str | None = None

    @property
    def os(self) -> str:
        return platforms.distro(self.distro).os

    def key_path(self) -> Path:
        return Path(self.key).expanduser()

    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts).expanduser()


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    hosts: list[Host]
    wait: Annotated[str, AfterValidator(_int)] = 300

    @field_validator("hosts")
    @classmethod
    def _unique(cls, hosts: list[Host]) -> list[Host]:
        if not hosts:
            raise ValueError("no hosts: give at least one")
        names = [h.name for h in hosts]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"host name '{dup}' appears twice")
        return hosts


def load(path: str | Path) -> Inventory:
    inv = yamlfile.parse(path, Inventory, "inventory")
    for i, h in enumerate(inv.hosts):
        for what, f in (("key", h.key_path()), ("known_hosts", h.known_hosts_path())):
            if not f.is_file():
                raise UserError(f"{path}: hosts[{i}] ({h.name}).{what}: {f} does not exist")
    return inv
