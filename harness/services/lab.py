"""The Lab: the services one run starts and must stop, owned by whoever runs (the pytest plugin's
session fixture, an `archmatrix` command) and passed to what uses them. Each service starts on
first use and `stop()` stops each by its own PID: the registry the nodes pull from, and the
private Docker engine of container nodes (unless the run was given one). No module keeps a live
service in a global, and nothing is written to os.environ."""
from __future__ import annotations

import os

from . import noderegistry
from .dockerd import DockerEngine
from .registry import LocalRegistry


class Lab:
    def __init__(self, docker_host: str | None = None):
        # an engine the run is given (--docker-host, else DOCKER_HOST) is used, never started or stopped
        self.given_docker_host = docker_host or os.environ.get("DOCKER_HOST") or None
        self.registry: LocalRegistry | None = None
        self.engine: DockerEngine | None = None
        self._seeded: set[str] = set()

    def node_registry(self, pause_tag: str, progress=print) -> LocalRegistry:
        """The registry the nodes pull from (127.0.0.1, a port the OS picked), with pause:<pause_tag>
        for every arch of the table pushed once."""
        if self.registry is None or self.registry.proc.poll() is not None:
            self.registry = LocalRegistry()
            self._seeded.clear()
            progress(f"node registry on {self.registry.host} (pid {self.registry.pid})")
        if pause_tag not in self._seeded:
            arches = noderegistry.seed(self.registry.host, pause_tag)
            self._seeded.add(pause_tag)
            progress(f"seeded pause:{pause_tag} for {', '.join(arches)}")
        return self.registry

    def docker_url(self, progress=print) -> str:
        """The Docker engine for container nodes: the one given, else a private dockerd started now."""
        if self.given_docker_host:
            return self.given_docker_host
        if self.engine is None or self.engine.proc.poll() is not None:
            self.engine = DockerEngine(progress)
            progress(f"dockerd ready in {self.engine.start_seconds} s (pid {self.engine.pid})")
        return self.engine.url

    def stop(self) -> None:
        """Every service this Lab started, each by its PID (idempotent)."""
        registry, engine, self.registry, self.engine = self.registry, self.engine, None, None
        try:
            if registry is not None:
                registry.stop()
        finally:
            if engine is not None:
                engine.stop()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
