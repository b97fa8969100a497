"""What a run starts and must stop, each by its own PID: process groups (procs.py), loopback ports,
the wait-until-ready loop, Debian's docker-registry (registry.py), a private dockerd (dockerd.py), and the
run's Lab that owns them (lab.py)."""
