"""A real CNCF distribution registry (Debian ``docker-registry``) for integration tests.

``start_registry(directory, auth=...)`` writes a config (filesystem storage, delete
enabled, fixed ``http.secret``, access log on), starts ``docker-registry serve`` on a free
loopback port and waits until ``/v2/`` answers. ``auth`` is ``"none"``, ``"basic"``
(bcrypt htpasswd written with ``htpasswd -bBC 4``: the registry checks bcrypt on every
request, cost 4 keeps that cheap) or ``"token"`` (our own ``TokenServer`` in a thread).

The registry's access log (Combined Log Format, in the same file as its app log) lets a
test count what a client really sent: ``mark()`` then ``requests_since(mark)``.

A missing binary makes the test FAIL naming the Debian package; nothing is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support.tokenserver import ISSUER, SERVICE, TokenServer

REGISTRY_BIN = os.environ.get("REGISTRY_BIN", "/usr/bin/docker-registry")
_ACCESS_RE = re.compile(r'^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                        r'(?P<status>\d{3}) (?P<size>\d+|-) "[^"]*" "(?P<agent>[^"]*)"')
_SENTINEL_AGENT = "reconciler-test-sentinel"


def require_binary(path: str, apt_package: str) -> str:
    """The path of an executable, or fail the test saying which Debian package to install."""
    found = path if os.path.isabs(path) and os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        pytest.fail(f"{path} not found: install the Debian package '{apt_package}' "
                    f"(apt-get install -y {apt_package}, or run scripts/setup.sh --test)", pytrace=False)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class AccessLine:
    """One request from the registry's access log."""

    method: str
    path: str
    status: int
    size: int
    agent: str

    @property
    def kind(self) -> str:
        """Coarse request kind: ping, tags, manifest, blob, upload, catalog."""
        p = self.path.split("?", 1)[0]
        if p in ("/v2/", "/v2"):
            return "ping"
        for marker, kind in (("/tags/list", "tags"), ("/manifests/", "manifest"), ("/blobs/uploads", "upload"),
                             ("/blobs/", "blob"), ("/_catalog", "catalog")):
            if marker in p:
                return kind
        return "other"


@dataclass
class RunningRegistry:
    """A started registry: ``url``, ``port``, credentials, its log, and ``stop()``."""

    directory: Path
    port: int
    auth: str
    username: str | None = None
    password: str | None = None
    token_server: TokenServer | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def credentials(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    @property
    def log_path(self) -> Path:
        return self.directory / "registry.log"

    def log_lines(self) -> list[str]:
        """Every line the registry wrote so far (app log and access log)."""
        return self.log_path.read_text(errors="replace").splitlines()

    def access_lines(self) -> list[AccessLine]:
        out = []
        for line in self.log_lines():
            m = _ACCESS_RE.match(line)
            if m:
                size = m["size"]
                out.append(AccessLine(m["method"], m["path"], int(m["status"]), 0 if size == "-" else int(size),
                                      m["agent"]))
        return out

    def mark(self) -> int:
        """A position in the access log; pass it to ``requests_since``."""
        return len(self._settled_access_lines())

    def requests_since(self, mark: int) -> list[AccessLine]:
        """Requests logged after ``mark`` (sentinels excluded), once the log has caught up."""
        return [a for a in self._settled_access_lines()[mark:] if not a.agent.startswith(_SENTINEL_AGENT)]

    def _settled_access_lines(self) -> list[AccessLine]:
        # The registry writes an access line when its handler returns, which can be a moment
        # after the client read the body. A sentinel request sent now is logged after every
        # request that completed before it, so wait (bounded) until the sentinel shows up.
        sentinel = f"{_SENTINEL_AGENT}/{uuid.uuid4().hex}"
        requests.get(f"{self.url}/v2/", headers={"User-Agent": sentinel}, timeout=10).close()
        for _ in range(200):
            lines = self.access_lines()
            if any(a.agent == sentinel for a in lines):
                return lines
            time.sleep(0.02)
        raise AssertionError(f"registry access log {self.log_path} never showed the sentinel request")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.token_server is not None:
            self.token_server.stop()


def _config(directory: Path, port: int, auth_section: str) -> str:
    return f"""version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {directory}/data
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: reconciler-tests-not-a-secret
{auth_section}"""


def _write_htpasswd(directory: Path, username: str, password: str) -> Path:
    htpasswd = require_binary("htpasswd", "apache2-utils")
    line = subprocess.run([htpasswd, "-nbBC", "4", username, password], check=True, capture_output=True,
                          text=True).stdout.strip()
    path = directory / "htpasswd"
    path.write_text(line + "\n")
    return path


def start_registry(directory: Path, *, auth: str = "none", username: str = "alice",
                   password: str = "s3cret-pw") -> RunningRegistry:
    """Start a registry in ``directory`` (created). Caller must ``stop()`` it."""
    binary = require_binary(REGISTRY_BIN, "docker-registry")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(exist_ok=True)
    token_server = None
    if auth == "none":
        auth_section, username_, password_ = "", None, None
    elif auth == "basic":
        path = _write_htpasswd(directory, username, password)
        auth_section = f"auth:\n  htpasswd:\n    realm: reconciler-tests\n    path: {path}\n"
        username_, password_ = username, password
    elif auth == "token":
        token_server = TokenServer(directory, username, password).start()
        auth_section = (f"auth:\n  token:\n    realm: {token_server.realm}\n    service: {SERVICE}\n"
                        f"    issuer: {ISSUER}\n    rootcertbundle: {token_server.cert_path}\n")
        username_, password_ = username, password
    else:
        raise ValueError(f"unknown auth mode {auth!r}")
    last_error = ""
    for _attempt in range(3):  # another process may grab the free port before the registry binds it
        port = free_port()
        config = directory / "config.yml"
        config.write_text(_config(directory, port, auth_section))
        log_path = directory / "registry.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        reg = RunningRegistry(directory, port, auth, username_, password_, token_server, proc)
        if _wait_ready(reg):
            return reg
        reg.process = None
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        last_error = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
    if token_server is not None:
        token_server.stop()
    raise AssertionError(f"{binary} did not come up (log {directory}/registry.log):\n{last_error}")


def _wait_ready(reg: RunningRegistry) -> bool:
    assert reg.process is not None
    for _ in range(200):
        if reg.process.poll() is not None:
            return False
        try:
            r = requests.get(f"{reg.url}/v2/", timeout=2)
            r.close()
            if r.status_code in (200, 401):
                return True
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    return False
