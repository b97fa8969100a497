"""The rehearsal (`archmatrix rehearse`, `nox -s rehearse`): every upstream plan's plumbing run for real
on emulated nodes against local stand-ins of the upstream sources, in their upstream layout, up to the
first step where a real Kubernetes binary must act (none exists here). Results say `cluster: rehearsal`
and never count as the real bootstrapper passing.

The contract between the runner and the stand-in sources (issue #16):
- `Step.kubernetes` (bootstrap/steps.py) marks a step that needs a real Kubernetes binary to act; the
  runner runs a plan's node steps up to, not including, the first such step.
- A stand-in source is a module here with
    build(root: Path, cells: list[Cell], progress) -> dict[str, str]
        writes its files under `root` in the upstream layout; returns the redirects it needs
        (request path -> Location) for the StandIns server (server.py)
    options(node_url: str) -> dict
        the bootstrap Options fields that point the plans at it (e.g. package_base, release_base)
  The runner lists the sources in one place (runner.SOURCES): pkgs (pkgs.k8s.io), github (containerd,
  runc, flannel release downloads); k3s and microk8s come from their own modules.
"""
