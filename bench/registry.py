"""A CNCF distribution registry (Debian ``docker-registry``) on loopback for the benchmarks.

The registry runs from a temporary directory on a free port of 127.0.0.1 with its access
log kept on (its application log at ``warn``: at ``info`` it writes a second line per
request, which costs it a quarter of its manifest requests per second here): the access log is how the harness counts the requests and body bytes a client
asked of it (the same accounting as /work/shared/testbed/bench_skopeo.sh).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REGISTRY_BIN = os.environ.get("REGISTRY_BIN", "/usr/bin/docker-registry")

CONFIG = """\
version: 0.1
log:
  level: warn
  formatter: text
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: bench-not-a-secret
"""

# Combined Log Format line of the registry's access log:
# 127.0.0.1 - - [date] "GET /v2/x/blobs/sha256:.. HTTP/1.1" 200 1048576 "" "ua"
_ACCESS = re.compile(r'^127\.0\.0\.1 \S+ \S+ \[[^\]]+\] "(\w+) (\S+) [^"]*" (\d{3}) (\d+|-)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Traffic:
    """Requests a client made of the registry between two marks of its access log."""

    requests: int = 0
    get_bytes: int = 0
    by_method: dict[str, int] | None = None
    manifest_requests: int = 0
    blob_requests: int = 0

    def to_json(self) -> dict[str, object]:
        return {"requests": self.requests, "get_bytes": self.get_bytes, "by_method": self.by_method or {},
                "manifest_requests": self.manifest_requests, "blob_requests": self.blob_requests}


class Registry:
    """``with Registry(dir) as reg:`` starts the registry, stops it on exit."""

    def __init__(self, root: Path) -> None:
        if not Path(REGISTRY_BIN).is_file():
            raise RuntimeError(f"{REGISTRY_BIN} is missing: apt-get install -y docker-registry")
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.log_path = root / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Registry:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        cfg = self.root / "config.yml"
        cfg.write_text(CONFIG.format(data=self.root / "data", port=self.port))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(cfg)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/v2/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.url} within 15 s (log {self.log_path})")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def peak_rss_kib(self) -> int:
        """VmHWM of the running registry (peak resident set since it started)."""
        assert self.proc is not None
        return proc_peak_rss_kib(self.proc.pid)

    # -- access-log accounting --------------------------------------------------------
    def mark(self) -> int:
        """Position in the access log; pass it to ``traffic_since``."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def traffic_since(self, mark: int, settle: float = 0.3) -> Traffic:
        time.sleep(settle)  # the registry writes its access-log line after the response
        with open(self.log_path, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        t = Traffic(by_method={})
        for line in text.splitlines():
            m = _ACCESS.match(line)
            if not m:
                continue
            method, path, _status, size = m.groups()
            t.requests += 1
            assert t.by_method is not None
            t.by_method[method] = t.by_method.get(method, 0) + 1
            if "/manifests/" in path:
                t.manifest_requests += 1
            elif "/blobs/" in path:
                t.blob_requests += 1
            if method == "GET" and size != "-":
                t.get_bytes += int(size)
        return t


def proc_peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0
