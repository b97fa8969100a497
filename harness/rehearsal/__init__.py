"""The rehearsal (`archmatrix rehearse`, `nox -s rehearse`): every upstream plan's plumbing run for real
on emulated nodes against local stand-ins of the upstream sources, in their upstream layout, up to the
first step where a real Kubernetes binary must act (none exists here). Results say `cluster: rehearsal`
and never count as the real bootstrapper passing."""
