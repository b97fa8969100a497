"""What a run starts and must stop, each by its own PID: the run's Lab that owns them (lab.py),
Debian's docker-registry (registry.py) and what it serves the nodes (noderegistry.py), a private
dockerd (dockerd.py); and their plumbing: process groups (procs.py), loopback ports (ports.py), the
wait-until-ready loop (waiting.py)."""
