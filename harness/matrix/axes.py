"""The five axes of a cell: their order, the command-line flag of each (the plugin's and the CLI's
filters), and how a name given for one (in matrix.yaml, the ssh inventory or a filter) becomes its
canonical spelling: arches and distros through the platform table, versions through the release
table, bootstrappers and providers through their registries."""
from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ..bootstrap import BOOTSTRAPPERS
from ..common.errors import UserError
from ..nodes import PROVIDERS
from . import kube_versions, platforms

AXES = ("arch", "distro", "kubernetes", "bootstrapper", "provider")
FLAGS = {"arch": "--arch", "distro": "--distro", "kubernetes": "--k8s", "bootstrapper": "--bootstrapper",
         "provider": "--provider"}


def normalise(axis: str, value: str) -> str:
    """The canonical name (aarch64 -> arm64, trixie -> debian13, latest -> 1.36); UserError otherwise."""
    if axis == "arch":
        return platforms.arch(value).name
    if axis == "distro":
        return platforms.distro(value).name
    if axis == "kubernetes":
        return kube_versions.resolve(value).minor
    registry = {"bootstrapper": BOOTSTRAPPERS, "provider": PROVIDERS}[axis]
    registry.entry(value)
    return value


def _validator(axis: str):
    def check(value: str) -> str:
        try:
            return normalise(axis, value)
        except UserError as e:  # pydantic reports a ValueError with the file's line and key
            raise ValueError(str(e)) from None
    return check


def name(axis: str):
    """A pydantic field type for one axis value, normalised (matrix.yaml, the ssh inventory)."""
    return Annotated[str, AfterValidator(_validator(axis))]


Arch, DistroName, Kube, Boot, Prov = (name(a) for a in AXES)
