"""matrix.yaml -> validated axes -> frozen Cells with stable ids -> filters and shards.

File format (see README "matrix.yaml reference"):

    axes:          # the product of these is the matrix
      arch: [amd64, arm64]
      distro: [debian12]
      kubernetes: [latest, -1]
      bootstrapper: [none]
      provider: [qemu]
    exclude:       # partial cells removed from the product
      - {arch: arm64, kubernetes: -1}
    include:       # whole cells added to it
      - {arch: amd64, distro: debian12, kubernetes: "1.32", bootstrapper: none, provider: local}
    unsupported:   # capability rules: matching cells are reported as skipped, with the reason
      - match: {arch: s390x, provider: ssh}
        reason: our s390x host is reserved this month
    taints:        # taints the node registration suite expects on matching cells' nodes
      - match: {distro: windows2022}
        taints: [{key: os, value: windows, effect: NoSchedule}]
    control_plane: # matching cells' nodes join (kubeadm join) a control plane on another node
      - match: {distro: windows2022, bootstrapper: kubeadm}
        node: {arch: amd64, distro: debian12}   # kubernetes: "1.36" when the control plane runs
                                                # another version than the cell's node (skew)
"""
from __future__ import annotations

import fnmatch
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from ..bootstrap import BOOTSTRAPPERS
from ..common.errors import UserError
from ..common.names import nearest
from ..nodes import PROVIDERS
from . import inventory as inventory_file
from . import kube_versions, platforms, upstream, yamlfile
from .axes import AXES, FLAGS, Arch, Boot, DistroName, Kube, Prov, normalise


@dataclass(frozen=True, order=False)
class Cell:
    arch: str
    distro: str
    kubernetes: str  # a concrete minor, "1.32"
    bootstrapper: str
    provider: str
    unsupported: str | None = field(default=None, compare=False)  # the reason, when it cannot exist
    taints: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)  # declared (key, value, effect)
    control_plane: tuple[str, str] | None = field(default=None, compare=False)  # (arch, distro) this node joins
    # the control plane's Kubernetes minor when the matrix names one (else it is the cell's own)
    control_plane_kubernetes: str | None = field(default=None, compare=False)

    @property
    def id(self) -> str:
        return f"{self.arch}-{self.distro}-v{self.kubernetes}-{self.bootstrapper}-{self.provider}"

    @property
    def platform(self) -> platforms.Platform:
        return platforms.arch(self.arch)

    @property
    def os(self) -> platforms.Distro:
        return platforms.distro(self.distro)

    @property
    def release(self) -> kube_versions.Release:
        return kube_versions.resolve(self.kubernetes)

    def axes(self) -> dict[str, str]:
        return {a: getattr(self, a) for a in AXES}

    @property
    def control_plane_release(self) -> kube_versions.Release | None:
        """The control plane's release when the matrix says it differs from the cell's (skew)."""
        return kube_versions.resolve(self.control_plane_kubernetes) if self.control_plane_kubernetes else None

    def control_plane_cell(self) -> "Cell":
        """The cell of the control plane this cell's node joins (matrix `control_plane:` rules)."""
        arch, distro = self.control_plane
        return Cell(arch, distro, self.control_plane_kubernetes or self.kubernetes, self.bootstrapper, self.provider)

    def sort_key(self) -> tuple:
        return (platforms.arch_order(self.arch), self.distro, kube_versions.resolve(self.kubernetes).key,
                list(BOOTSTRAPPERS).index(self.bootstrapper), list(PROVIDERS).index(self.provider))

    def __str__(self) -> str:
        return self.id


# ---- schema: structure by pydantic, names normalised through the tables --------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Axes(_Strict):
    arch: list[Arch]
    distro: list[DistroName]
    kubernetes: list[Kube]
    bootstrapper: list[Boot]
    provider: list[Prov]

    @field_validator(*AXES)
    @classmethod
    def _not_empty(cls, values: list[str], info) -> list[str]:
        if not values:
            raise ValueError(f"axis '{info.field_name}' is empty: give at least one value")
        return values


class Partial(_Strict):
    arch: Arch | None = None
    distro: DistroName | None = None
    kubernetes: Kube | None = None
    bootstrapper: Boot | None = None
    provider: Prov | None = None

    def matches(self, cell: Cell) -> bool:
        return all(getattr(self, a) in (None, getattr(cell, a)) for a in AXES)


class Whole(Partial):
    arch: Arch
    distro: DistroName
    kubernetes: Kube
    bootstrapper: Boot
    provider: Prov


class Rule(_Strict):
    match: Partial
    reason: str


class Taint(_Strict):
    key: str
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


class TaintRule(_Strict):
    match: Partial
    taints: list[Taint]


class ControlPlaneNode(_Strict):
    arch: Arch
    distro: DistroName
    kubernetes: Kube | None = None  # the control plane's version, when not the cell's


class ControlPlaneRule(_Strict):
    match: Partial
    node: ControlPlaneNode


class MatrixFile(_Strict):
    axes: Axes
    include: list[Whole] = []
    exclude: list[Partial] = []
    unsupported: list[Rule] = []
    taints: list[TaintRule] = []
    control_plane: list[ControlPlaneRule] = []


# ---- loading ------------------------------------------------------------------------------

def load(path: str | Path) -> MatrixFile:
    return yamlfile.parse(path, MatrixFile, "matrix file")


# ---- expansion ------------------------------------------------------------------------------

def capability(cell: Cell, own_binaries: bool = False, recorded_nodes: bool = False) -> str | None:
    """Why this combination cannot exist, from the platform table, the providers' and
    bootstrappers' registry lines and the table of what each upstream publishes per arch
    (upstream.py); None when it can. `own_binaries`: the bootstrappers' binaries come from
    --artifacts, not from upstream. `recorded_nodes`: the cell's nodes are Node objects recorded
    from a real cluster, judged whatever provider and bootstrapper the cell names."""
    d = cell.os
    provider = PROVIDERS[cell.provider]
    if cell.arch not in d.arches:
        return f"{d.name} has no {cell.arch} port (it exists for {', '.join(d.arches)})"
    if recorded_nodes:
        # nothing is provisioned or bootstrapped: what a provider can run or a bootstrapper can
        # install does not limit a node that already exists (a recorded Windows node is judged
        # without a provider that can run Windows)
        return None
    if d.os == "windows":
        if not (provider.windows or provider.this_machine):
            return (f"{cell.provider} provider cannot run Windows nodes here: use provider "
                    f"{' or '.join(PROVIDERS.having(windows=True))}")
        if not BOOTSTRAPPERS[cell.bootstrapper].windows:
            return (f"bootstrapper {cell.bootstrapper} has no Windows nodes: use "
                    f"{' or '.join(BOOTSTRAPPERS.having(windows=True))}")
    if provider.this_machine:
        local = platforms.host().name
        if cell.arch != local:
            return f"{cell.provider} provider runs only this machine's arch ({local})"
        here = platforms.host_distro()
        if here is not None and cell.distro != here.name:
            return f"{cell.provider} provider runs only this machine's distro ({here.name})"
    release = cell.release
    if not release.in_table and cell.bootstrapper in ("none", "distro"):
        return (f"kubernetes {release.minor} is newer than the built-in table: its image facts come from the "
                f"bootstrapper's own tools (kubeadm, microk8s, k3s), and {cell.bootstrapper} has none")
    return upstream.refusal(cell.bootstrapper, cell.arch, release, d, own_binaries=own_binaries)


def expand(m: MatrixFile, source: str = "matrix.yaml", extra: Iterable[tuple[str, str]] = (),
           own_binaries: bool = False, recorded_nodes: bool = False) -> list[Cell]:
    """The matrix's cells; `extra` (arch, distro) pairs (ssh inventory hosts) add ssh cells."""
    a = m.axes
    seen: dict[str, Cell] = {}
    for combo in itertools.product(a.arch, a.distro, a.kubernetes, a.bootstrapper, a.provider):
        cell = Cell(*combo)
        if not any(x.matches(cell) for x in m.exclude):
            seen[cell.id] = cell
    for i, inc in enumerate(m.include):
        cell = Cell(inc.arch, inc.distro, inc.kubernetes, inc.bootstrapper, inc.provider)
        if cell.id in seen:
            raise UserError(f"{source}: include[{i}]: cell {cell.id} is already in the matrix (duplicate)")
        seen[cell.id] = cell
    for arch, distro in extra:
        for k, b in itertools.product(a.kubernetes, a.bootstrapper):
            cell = Cell(arch, distro, k, b, "ssh")
            if not any(x.matches(cell) for x in m.exclude):
                seen.setdefault(cell.id, cell)
    cells = []
    for cell in seen.values():
        reason = capability(cell, own_binaries, recorded_nodes) or next((r.reason for r in m.unsupported if r.match.matches(cell)), None)
        taints = tuple((t.key, t.value, t.effect) for r in m.taints if r.match.matches(cell) for t in r.taints)
        rule = next((r for r in m.control_plane if r.match.matches(cell)), None)
        cp = (rule.node.arch, rule.node.distro) if rule else None
        cells.append(Cell(**cell.axes(), unsupported=reason, taints=taints, control_plane=cp,
                          control_plane_kubernetes=rule.node.kubernetes if rule else None)
                     if reason or taints or cp else cell)
    return sorted(cells, key=Cell.sort_key)


# ---- filters and shards -------------------------------------------------------------------

def split_values(values: Iterable[str] | None) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c']: each option is repeatable and comma-separated."""
    return [v.strip() for raw in (values or ()) for v in str(raw).split(",") if v.strip()]


def cell_matches(pattern: str, cell_id: str) -> bool:
    """--cell: a cell id; a prefix of one that ends where a part of the id ends (`s390x-debian12`
    selects every s390x Debian 12 cell, `arm` no arm64 cell); or a glob (`s390x-*-distro-*`)."""
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(cell_id, pattern)
    return cell_id == pattern or cell_id.startswith(pattern.rstrip("-") + "-")


def select(cells: list[Cell], source: str = "matrix.yaml", cell_ids: Iterable[str] = (),
           **filters: Iterable[str]) -> list[Cell]:
    """Keep cells matching every given filter; a filter value that matches nothing is an error."""
    chosen = cells
    for axis in AXES:
        raw = split_values(filters.get(axis))
        if not raw:
            continue
        opt = FLAGS[axis]
        wanted = set()
        for v in raw:
            try:
                norm = normalise(axis, v)
            except UserError as e:
                raise UserError(f"{opt} {v}: {e}") from None
            if not any(getattr(c, axis) == norm for c in cells):
                raise UserError(f"{opt} {v}: matches no cell in {source}")
            wanted.add(norm)
        chosen = [c for c in chosen if getattr(c, axis) in wanted]
    ids = split_values(cell_ids)
    if ids:
        known = {c.id for c in cells}
        for i in ids:
            if not any(cell_matches(i, k) for k in known):
                raise UserError(f"--cell {i}: no such cell in {source}{nearest(i, known)}")
        chosen = [c for c in chosen if any(cell_matches(i, c.id) for i in ids)]
    if not chosen:
        given = " ".join(f"{FLAGS[a]} {','.join(split_values(filters.get(a)))}"
                         for a in AXES if filters.get(a))
        raise UserError(f"filters {given}{' --cell ' + ','.join(ids) if ids else ''} together "
                        f"match no cell in {source}")
    return chosen


def shard(cells: list[Cell], spec: str | None) -> list[Cell]:
    """--shard K/N: every N-th cell of the sorted matrix starting at K (1-based): balanced, stable."""
    if not spec:
        return cells
    try:
        k, n = (int(x) for x in spec.split("/"))
        if not (1 <= k <= n):
            raise ValueError
    except ValueError:
        raise UserError(f"--shard {spec}: expected K/N with 1 <= K <= N, e.g. 2/4") from None
    return cells[k - 1::n]


def cells_for(path: str | Path, shard_spec: str | None = None, cell_ids: Iterable[str] = (),
              inventory: str | Path | None = None, own_binaries: bool = False, recorded_nodes: bool = False,
              **filters: Iterable[str]) -> list[Cell]:
    """The one entry point used by both the CLI and the pytest plugin, so they always agree.
    An ssh inventory adds a cell per host's (arch, distro) x the matrix's kubernetes and
    bootstrapper axes, with provider ssh. `own_binaries`: --artifacts replaces upstream's binaries;
    `recorded_nodes`: --recorded-nodes judges recorded Node objects (see capability)."""
    m = load(path)
    extra = []
    if inventory is not None:
        hosts = inventory_file.load(inventory).hosts
        extra = sorted({(h.arch, h.distro) for h in hosts})
    cells = expand(m, source=str(path), extra=extra, own_binaries=own_binaries, recorded_nodes=recorded_nodes)
    return shard(select(cells, source=str(path), cell_ids=cell_ids, **filters), shard_spec)


def default_matrix(base: str | Path = ".") -> Path:
    """The matrix used when --matrix is not given: matrix.yaml in `base` (cwd, or pytest's rootdir)."""
    return Path(base) / "matrix.yaml"
