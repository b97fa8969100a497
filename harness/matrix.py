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
        node: {arch: amd64, distro: debian12}
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Iterable, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, field_validator

from . import kube_versions, platforms
from .errors import UserError

AXES = ("arch", "distro", "kubernetes", "bootstrapper", "provider")
BOOTSTRAPPERS = ("none", "distro", "kubeadm", "microk8s", "k3s")
PROVIDERS = ("qemu", "ssh", "docker", "local")


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

    def control_plane_cell(self) -> "Cell":
        """The cell of the control plane this cell's node joins (matrix `control_plane:` rules)."""
        arch, distro = self.control_plane
        return Cell(arch, distro, self.kubernetes, self.bootstrapper, self.provider)

    def sort_key(self) -> tuple:
        return (platforms.arch_order(self.arch), self.distro, kube_versions.resolve(self.kubernetes).key,
                BOOTSTRAPPERS.index(self.bootstrapper), PROVIDERS.index(self.provider))

    def __str__(self) -> str:
        return self.id


# ---- schema: structure by pydantic, names normalised through the tables --------------------

def _norm(axis: str, value: str) -> str:
    try:
        if axis == "arch":
            return platforms.arch(value).name
        if axis == "distro":
            return platforms.distro(value).name
        if axis == "kubernetes":
            return kube_versions.resolve(value).minor
    except UserError as e:
        raise ValueError(str(e)) from None
    choices = BOOTSTRAPPERS if axis == "bootstrapper" else PROVIDERS
    if value not in choices:
        near = platforms._nearest(value, choices)
        raise ValueError(f"unknown {axis} '{value}'{near}; known: {', '.join(choices)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _name(axis: str):
    return Annotated[str, AfterValidator(lambda v: _norm(axis, v))]


Arch, DistroName, Kube, Boot, Prov = (_name(a) for a in AXES)


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

def _line_map(node, path=(), out=None) -> dict[tuple, int]:
    """YAML node tree -> {('axes', 'arch', 2): line} for error messages (1-based)."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[path + (k.value,)] = k.start_mark.line + 1
            _line_map(v, path + (k.value,), out)
            out[path + (k.value,)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)
    return out


def _dotted(loc: tuple) -> str:
    s = ""
    for part in loc:
        s += f"[{part}]" if isinstance(part, int) else (f".{part}" if s else str(part))
    return s or "(top level)"


def load(path: str | Path) -> MatrixFile:
    return parse(path, MatrixFile, "matrix file")


def parse(path: str | Path, model: type[BaseModel], kind: str):
    """A YAML file validated by a pydantic model; any problem is one UserError line naming the
    file, line and key (shared by matrix.yaml and the ssh inventory)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: {kind} does not exist")
    text = p.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.BaseLoader)
        # BaseLoader keeps every scalar a string: 1.30 stays "1.30", not the float 1.3
        data = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{p}{where}: malformed YAML: {e.problem or e.context}") from None
    if not isinstance(data, dict):
        top = ", ".join(f"'{k}'" for k, f in model.model_fields.items() if f.is_required())
        raise UserError(f"{p}: expected a mapping with {top} at the top level")
    lines = _line_map(node) if node is not None else {}
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = tuple(err["loc"])
        # pydantic adds the model name for unions; drop anything that isn't a real path element
        line = next((lines[loc[:i]] for i in range(len(loc), -1, -1) if loc[:i] in lines), None)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1])
            msg = f"unknown key '{loc[-1]}'" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        elif err["type"] == "missing":
            msg = f"missing key '{loc[-1]}'"
        elif err["type"] in ("list_type", "string_type", "model_type", "dict_type"):
            msg = f"wrong type: {msg.lower()}"
        where = f":{line}" if line else ""
        raise UserError(f"{p}{where}: {_dotted(loc)}: {msg}") from None


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    for part in loc:
        if isinstance(part, int):
            continue
        ann = model.model_fields[part].annotation
        model = getattr(ann, "__args__", (ann,))[0]
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            return []
    return list(model.model_fields)


# ---- expansion ------------------------------------------------------------------------------

def capability(cell: Cell, own_binaries: bool = False) -> str | None:
    """Why this combination cannot exist, from the platform table and the table of what each
    upstream publishes per arch (upstream.py); None when it can. `own_binaries`: the bootstrappers'
    binaries come from --artifacts, not from upstream."""
    from . import upstream

    d = cell.os
    if cell.arch not in d.arches:
        return f"{d.name} has no {cell.arch} port (it exists for {', '.join(d.arches)})"
    if d.os == "windows":
        if cell.provider in ("qemu", "docker"):
            return f"{cell.provider} provider cannot run Windows nodes here: use provider ssh"
        if cell.bootstrapper in ("distro", "microk8s", "k3s"):
            return f"bootstrapper {cell.bootstrapper} has no Windows nodes: use kubeadm or none"
    if cell.provider == "local":
        local = platforms.host().name
        if cell.arch != local:
            return f"local provider runs only this machine's arch ({local})"
        here = platforms.host_distro()
        if here is not None and cell.distro != here.name:
            return f"local provider runs only this machine's distro ({here.name})"
    release = cell.release
    if not release.in_table and cell.bootstrapper in ("none", "distro"):
        return (f"kubernetes {release.minor} is newer than the built-in table: its image facts come from the "
                f"bootstrapper's own tools (kubeadm, microk8s, k3s), and {cell.bootstrapper} has none")
    return upstream.refusal(cell.bootstrapper, cell.arch, release, d, own_binaries=own_binaries)


def expand(m: MatrixFile, source: str = "matrix.yaml", extra: Iterable[tuple[str, str]] = (),
           own_binaries: bool = False) -> list[Cell]:
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
        reason = capability(cell, own_binaries) or next((r.reason for r in m.unsupported if r.match.matches(cell)), None)
        taints = tuple((t.key, t.value, t.effect) for r in m.taints if r.match.matches(cell) for t in r.taints)
        cp = next(((r.node.arch, r.node.distro) for r in m.control_plane if r.match.matches(cell)), None)
        cells.append(Cell(**cell.axes(), unsupported=reason, taints=taints, control_plane=cp)
                     if reason or taints or cp else cell)
    return sorted(cells, key=Cell.sort_key)


# ---- filters and shards -------------------------------------------------------------------

def split_values(values: Iterable[str] | None) -> list[str]:
    """['a,b', 'c'] -> ['a', 'b', 'c']: each option is repeatable and comma-separated."""
    return [v.strip() for raw in (values or ()) for v in str(raw).split(",") if v.strip()]


def select(cells: list[Cell], source: str = "matrix.yaml", cell_ids: Iterable[str] = (),
           **filters: Iterable[str]) -> list[Cell]:
    """Keep cells matching every given filter; a filter value that matches nothing is an error."""
    flag = {"kubernetes": "--k8s"}
    chosen = cells
    for axis in AXES:
        raw = split_values(filters.get(axis))
        if not raw:
            continue
        opt = flag.get(axis, f"--{axis}")
        wanted = set()
        for v in raw:
            try:
                norm = _norm(axis, v)
            except ValueError as e:
                raise UserError(f"{opt} {v}: {e}") from None
            if not any(getattr(c, axis) == norm for c in cells):
                raise UserError(f"{opt} {v}: matches no cell in {source}")
            wanted.add(norm)
        chosen = [c for c in chosen if getattr(c, axis) in wanted]
    ids = split_values(cell_ids)
    if ids:
        known = {c.id for c in cells}
        for i in ids:
            if i not in known:
                raise UserError(f"--cell {i}: no such cell in {source}{platforms._nearest(i, known)}")
        chosen = [c for c in chosen if c.id in set(ids)]
    if not chosen:
        given = " ".join(f"{flag.get(a, '--' + a)} {','.join(split_values(filters.get(a)))}"
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
              inventory: str | Path | None = None, own_binaries: bool = False,
              **filters: Iterable[str]) -> list[Cell]:
    """The one entry point used by both the CLI and the pytest plugin, so they always agree.
    An ssh inventory adds a cell per host's (arch, distro) x the matrix's kubernetes and
    bootstrapper axes, with provider ssh. `own_binaries`: --artifacts replaces upstream's binaries."""
    m = load(path)
    extra = []
    if inventory is not None:
        from . import inventory as inv

        hosts = inv.load(inventory).hosts
        extra = sorted({(h.arch, h.distro) for h in hosts})
    cells = expand(m, source=str(path), extra=extra, own_binaries=own_binaries)
    return shard(select(cells, source=str(path), cell_ids=cell_ids, **filters), shard_spec)


def default_matrix(base: str | Path = ".") -> Path:
    """The matrix used when --matrix is not given: matrix.yaml in `base` (cwd, or pytest's rootdir)."""
    return Path(base) / "matrix.yaml"
