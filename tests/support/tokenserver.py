"""A tiny Docker registry token server for tests, run in a thread of the test process.

``GET /token?service=S&scope=repository:NAME:pull,push`` answers ``{"token",
"access_token", "expires_in", "issued_at"}`` with an RS256 JWT that a distribution 2.x
registry trusts when its ``auth.token.rootcertbundle`` is our certificate: the JWT
header's ``kid`` is the *libtrust key ID* of the certificate's public key (base32 of the
first 240 bits of the SHA-256 of the DER SubjectPublicKeyInfo, in groups of four).

Anonymous callers get ``pull`` only; callers with the configured Basic credentials get every
action they ask for; wrong credentials get 401. Every request is recorded in ``requests``
so tests can count token fetches.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SERVICE = "reconciler-test-registry"
ISSUER = "reconciler-test-issuer"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key ID format docker/libtrust (and so distribution 2.x) uses for ``kid``."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def make_signing_cert(directory: Path) -> tuple[rsa.RSAPrivateKey, Path]:
    """A fresh RSA key and a self-signed certificate written to ``directory/token.crt``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "reconciler-test-token")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    path = directory / "token.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, path


@dataclass
class TokenRequest:
    """One request the token server answered (for counting in tests)."""

    scopes: list[str]
    service: str | None
    user: str | None
    status: int


@dataclass
class TokenServer:
    """Issues registry tokens on ``127.0.0.1:port``; ``start()`` / ``stop()``."""

    directory: Path
    username: str
    password: str
    ttl: int = 300
    #: which JSON field(s) carry the token: "both", "token" or "access_token"
    token_field: str = "both"
    requests: list[TokenRequest] = field(default_factory=list)

    def start(self) -> TokenServer:
        self._key, self.cert_path = make_signing_cert(self.directory)
        self._kid = libtrust_key_id(self._key.public_key())
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    # -- token making ------------------------------------------------------------------

    def issue(self, scopes: list[str], service: str, user: str | None) -> str:
        access = []
        for scope in scopes:
            for item in scope.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                wanted = [a for a in actions.split(",") if a]
                granted = wanted if user else [a for a in wanted if a == "pull"]
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": service, "iat": now, "nbf": now - 10,
                  "exp": now + self.ttl, "jti": _b64url(os.urandom(12)), "access": access}
        header = {"typ": "JWT", "alg": "RS256", "kid": self._kid}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self
        good = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                scopes, service = query.get("scope", []), query.get("service", [None])[0]
                auth = self.headers.get("Authorization")
                if url.path != "/token":
                    return self._reply(404, {"error": "not found"}, scopes, service, None)
                if auth is not None and auth != good:
                    return self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]},
                                       scopes, service, None)
                user = server.username if auth else None
                token = server.issue(scopes, service or SERVICE, user)
                body: dict[str, object] = {"expires_in": server.ttl,
                                           "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                if server.token_field in ("both", "token"):
                    body["token"] = token
                if server.token_field in ("both", "access_token"):
                    body["access_token"] = token
                self._reply(200, body, scopes, service, user)

            def _reply(self, status: int, body: dict[str, object], scopes: list[str], service: str | None,
                       user: str | None) -> None:
                with server._lock:
                    server.requests.append(TokenRequest(scopes, service, user, status))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
                pass

        return Handler
