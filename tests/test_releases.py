"""Where `latest` comes from: upstream's stable.txt when it answers, the table otherwise -- and the
run says which. Upstream is a real HTTP server on loopback in dl.k8s.io/release's layout; the
offline case is a loopback port nothing listens on. Nothing here reaches dl.k8s.io."""
import http.server
import json
import socket
import threading

import pytest

from harness.common.errors import UserError
from harness.matrix import cells as matrix
from harness.matrix import kube_versions
from harness.matrix import kube_versions as kv
from harness.matrix import releases


class _Releases(http.server.BaseHTTPRequestHandler):
    files: dict = {}

    def do_GET(self):
        body = self.files.get(self.path)
        self.server.asked.append(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *a):
        pass


@pytest.fixture
def upstream(monkeypatch):
    """(files) -> base URL of a loopback server answering /release/<name> with files[name]."""
    servers = []

    def serve(files: dict) -> str:
        handler = type("H", (_Releases,), {"files": {f"/release/{k}": v for k, v in files.items()}})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.asked = []
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        base = f"http://127.0.0.1:{srv.server_address[1]}/release"
        monkeypatch.setenv(releases.ENV, base)
        releases.reset()
        return base

    serve.servers = servers
    yield serve
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    releases.reset()


@pytest.fixture
def offline(monkeypatch):
    """ARCHMATRIX_RELEASES pointing at a loopback port nothing listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # closed: connections are refused at once
    monkeypatch.setenv(releases.ENV, f"http://127.0.0.1:{port}/release")
    releases.reset()
    yield port
    releases.reset()


def _matrix(tmp_path, kubernetes, bootstrappers="[none, kubeadm]"):
    p = tmp_path / "matrix.yaml"
    p.write_text(f"axes:\n  arch: [amd64, s390x]\n  distro: [debian13]\n  kubernetes: {kubernetes}\n"
                 f"  bootstrapper: {bootstrappers}\n  provider: [qemu]\n")
    return p


def test_latest_comes_from_upstream_when_it_answers(upstream):
    upstream({"stable.txt": "v1.37.2\n"})
    assert kv.resolve("latest") is kv.RELEASES[-1]
    assert kube_versions.source_summary() == f"releases: upstream {releases.mode()} (latest v1.37.2)"


def test_a_newer_upstream_release_is_latest_with_a_warning_and_no_table_facts(upstream, tmp_path):
    base = upstream({"stable.txt": "v1.38.1", "stable-1.38.txt": "v1.38.1"})
    r = kv.resolve("latest")
    assert (r.minor, r.in_table, r.upstream_patch) == ("1.38", False, "v1.38.1")
    assert kv.resolve("-1") is kv.RELEASES[-1]  # 1.37, relative to upstream's latest
    assert any("1.38" in w and "kubeadm on the node" in w for w in releases.warnings())
    with pytest.raises(UserError, match="not in the built-in table"):
        r.images_at()
    cells = {c.id: c for c in matrix.cells_for(_matrix(tmp_path, "[latest]"))}
    # kubeadm can tell its own images; the node-level cells have nobody to ask
    assert cells["amd64-debian13-v1.38-kubeadm-qemu"].unsupported is None
    assert "newer than the built-in table" in cells["amd64-debian13-v1.38-none-qemu"].unsupported
    assert base in kube_versions.source_summary()


def test_explicit_newer_minor_usable_when_upstream_has_it_refused_when_not_released(upstream, tmp_path):
    upstream({"stable.txt": "v1.39.0", "stable-1.39.txt": "v1.39.0"})
    assert kv.resolve("1.39").upstream_patch == "v1.39.0"
    with pytest.raises(UserError, match=r"kubernetes 1.40: not released \(.* has no stable-1.40.txt\)"):
        kv.resolve("1.40")


def test_offline_falls_back_to_the_table_and_says_why(offline):
    assert kv.resolve("latest") is kv.RELEASES[-1]
    line = kube_versions.source_summary()
    assert line.startswith(f"releases: built-in table (latest {kv.RELEASES[-1].minor}; ")
    assert f"127.0.0.1:{offline}/release unreachable" in line
    with pytest.raises(UserError, match=r"kubernetes 1.39: newer than the built-in table and its facts cannot "
                                        r"come from upstream \(.*unreachable"):
        kv.resolve("1.39")


def test_answers_are_cached_one_request_per_file(upstream):
    upstream({"stable.txt": "v1.37.2"})
    for _ in range(3):
        kv.resolve("latest")
        kube_versions.source_summary()
    assert upstream.servers[0].asked == ["/release/stable.txt"]


def test_garbage_from_upstream_is_not_a_version(upstream):
    upstream({"stable.txt": "<html>captive portal</html>"})
    assert kv.resolve("latest") is kv.RELEASES[-1]
    assert "not a version" in kube_versions.source_summary()


def test_bad_setting_is_one_line(monkeypatch):
    monkeypatch.setenv(releases.ENV, "ftp://example")
    releases.reset()
    with pytest.raises(UserError, match="ARCHMATRIX_RELEASES=ftp://example: expected"):
        kv.resolve("latest")


# ---- the CLI and the plugin say which source they used -----------------------------------------

def test_cli_list_names_the_source_upstream_and_offline(run_cli, upstream, tmp_path):
    m = _matrix(tmp_path, "[latest]", "[kubeadm]")
    base = upstream({"stable.txt": "v1.37.2"})
    out = run_cli("list", "--matrix", str(m), env={releases.ENV: base})
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines()[0] == f"releases: upstream {base} (latest v1.37.2)"
    assert out.stdout.split() == ["amd64-debian13-v1.37-kubeadm-qemu", "s390x-debian13-v1.37-kubeadm-qemu"]


def test_cli_refuses_an_unknown_newer_release_offline_with_why(run_cli, offline, tmp_path):
    out = run_cli("list", "--matrix", str(_matrix(tmp_path, "[latest]")), "--k8s", "1.39",
                  env={releases.ENV: f"http://127.0.0.1:{offline}/release"})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--k8s 1.39: kubernetes 1.39: newer than the built-in table" in lines[0]
    assert "unreachable" in lines[0] and "Traceback" not in out.stderr


def test_cli_lists_a_newer_release_upstream_has(run_cli, upstream, tmp_path):
    base = upstream({"stable.txt": "v1.39.0", "stable-1.39.txt": "v1.39.0"})
    out = run_cli("list", "--json", "--matrix", str(_matrix(tmp_path, '["1.39"]', "[kubeadm]")),
                  env={releases.ENV: base})
    assert out.returncode == 0, out.stderr
    assert [c["id"] for c in json.loads(out.stdout)] == ["amd64-debian13-v1.39-kubeadm-qemu",
                                                         "s390x-debian13-v1.39-kubeadm-qemu"]
    assert "warning: kubernetes 1.39 (v1.39.0) is newer than the built-in table" in out.stderr


def test_1_37_cells_are_listable_offline_with_the_table(run_cli, tmp_path):
    out = run_cli("list", "--matrix", str(_matrix(tmp_path, '["1.37", "-1"]', "[kubeadm]")))
    assert out.returncode == 0, out.stderr
    assert "amd64-debian13-v1.37-kubeadm-qemu" in out.stdout.split()
    assert "amd64-debian13-v1.36-kubeadm-qemu" in out.stdout.split()
    assert out.stderr.splitlines()[0] == "releases: built-in table (latest 1.37; ARCHMATRIX_RELEASES=table)"


def test_pytest_header_names_the_source(pytester, upstream):
    base = upstream({"stable.txt": "v1.37.2"})
    (pytester.path / "matrix.yaml").write_text(
        "axes:\n  arch: [amd64]\n  distro: [debian13]\n  kubernetes: [latest]\n  bootstrapper: [none]\n"
        "  provider: [qemu]\n")
    pytester.makepyfile("def test_x():\n    pass\n")
    res = pytester.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider")
    assert f"releases: upstream {base} (latest v1.37.2)" in res.stdout.str()
