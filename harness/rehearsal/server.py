"""A static HTTP server on the host's loopback that serves stand-ins of upstream download sites in
their own layout (pkgs.k8s.io's apt repositories, GitHub release downloads, get.k3s.io, ...). QEMU
nodes reach it at the user-net gateway (10.0.2.2); nothing leaves the machine. Started and stopped by
whoever owns the rehearsal; it is a thread of this process, so it dies with it."""
from __future__ import annotations

import http.server
import threading
from functools import partial
from pathlib import Path

from ..services.noderegistry import GUEST_GATEWAY


class _Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, server_ref=None, **kw):
        self._ref = server_ref
        super().__init__(*a, **kw)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        self._ref.requests.append(path)
        target = self._ref.redirects.get(path)
        if target is not None:  # e.g. update.k3s.io/v1-release/channels/v1.32 -> .../releases/tag/v1.32.3+k3s1
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, fmt, *args):  # the request list is the log; keep pytest's output clean
        pass


class StandIns:
    """Serve `root` on 127.0.0.1:<free port>. `redirects`: request path -> Location (absolute or
    path), for upstream endpoints that answer with a redirect. `requests` records every GET path, so
    a test can say what a node fetched."""

    def __init__(self, root: Path, redirects: dict[str, str] | None = None):
        self.root = Path(root)
        self.redirects = dict(redirects or {})
        self.requests: list[str] = []
        handler = partial(_Handler, directory=str(self.root), server_ref=self)
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="archmatrix-standins", daemon=True)
        self._thread.start()

    @property
    def host_url(self) -> str:
        """As this machine reaches it."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def node_url(self) -> str:
        """As a QEMU user-net node reaches it (the host's loopback at the gateway)."""
        return f"http://{GUEST_GATEWAY}:{self.port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
