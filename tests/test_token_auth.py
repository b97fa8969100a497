"""Anonymous Bearer token auth as real registries do it (docker/distribution docs/spec/auth/token.md),
against Debian's docker-registry configured with `auth: token`. The token service is this
test's own small HTTP server on loopback: it signs JWTs with a key whose certificate the
registry trusts (rootcertbundle), so the registry really verifies every token."""
import base64
import datetime
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from harness.matrix import platforms
from harness.oci import client as registry
from harness.oci.layout import Image, Layout, push
from harness.services.registry import LocalRegistry
from conftest import need

SERVICE, ISSUER = "archmatrix-registry", "archmatrix-test-issuer"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """`grant=False`: every token carries no access (a private repository to an anonymous client)."""

    def __init__(self, tmp, grant: bool = True):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "archmatrix token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(hours=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.bundle = tmp / "token-ca.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests = []
        self.grant = grant
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                service.requests.append(q)
                access = []
                for scope in q.get("scope", []) if service.grant else ():
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": service.jwt(access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_port}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwt(self, access) -> str:
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "", "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        signing = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        sig = self.key.sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing}.{b64url(sig)}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def token_registry(tmp_path):
    need("docker-registry")
    need("skopeo")
    tokens = TokenService(tmp_path)
    # seed with auth off, then serve the same storage with token auth on
    seed = LocalRegistry(tmp_path / "reg")
    lay = Layout(tmp_path / "layout")
    lay.tag("3.10", [Image(platforms.arch(a).oci_platform(), {"/pause": a.encode()}) for a in ("amd64", "s390x")])
    push(lay, "3.10", f"{seed.host}/pause:3.10")
    seed.stop()
    reg = LocalRegistry(tmp_path / "reg", port=seed.port, extra_config=(
        f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {SERVICE}\n"
        f"    issuer: {ISSUER}\n    rootcertbundle: {tokens.bundle}\n"))
    yield reg, tokens
    reg.stop()
    tokens.stop()


def test_anonymous_token_flow_and_reuse(token_registry):
    reg, tokens = token_registry
    c = registry.Client(timeout=5, retries=1)
    ref = f"{reg.host}/pause:3.10"
    index = c.manifest(ref)
    assert index.is_index and len(index.body["manifests"]) == 2
    for entry in index.body["manifests"]:
        config = c.config(ref, c.manifest(ref, entry["digest"]))
        assert config["architecture"] == entry["platform"]["architecture"]
    # one token for the repository's pull scope, reused for the 5 requests after it
    assert len(tokens.requests) == 1
    assert tokens.requests[0]["scope"] == ["repository:pause:pull"] and tokens.requests[0]["service"] == [SERVICE]


def test_without_a_token_the_registry_refuses(token_registry):
    reg, _ = token_registry
    import requests

    r = requests.get(f"http://{reg.host}/v2/pause/manifests/3.10", timeout=5)
    assert r.status_code == 401 and "Bearer" in r.headers["WWW-Authenticate"]
