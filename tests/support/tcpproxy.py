"""A TCP proxy on 127.0.0.1 that can freeze: a server that stops answering without refusing.

``TcpProxy(upstream_port).start()`` relays every connection to the upstream port.
``freeze()`` makes it behave like a stalled object storage: connections already open get
no more bytes in either direction, and new ones are not accepted (the listening socket
stays open, so the kernel completes the TCP handshake and a client's connect succeeds,
then waits for an answer that never comes), which is what a hung S3 endpoint or a dead
route behind a load balancer looks like, unlike a refused connection. ``thaw()`` resumes
relaying (bytes held back are delivered) and accepting. ``stop()`` closes everything.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable

from tests.support.serving import free_port


class TcpProxy:
    def __init__(self, upstream_port: int, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._running = threading.Event()  # set: relaying and accepting; clear: frozen
        self._running.set()
        self._stopped = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(128)
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._spawn(self._accept_loop)
        return self

    def freeze(self) -> None:
        self._running.clear()

    def thaw(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stopped.set()
        self._running.set()
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=5)

    def _spawn(self, target: Callable[..., object], *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _wait_running(self) -> bool:
        """Block while frozen; False once stopped."""
        while not self._running.wait(0.1):
            pass
        return not self._stopped.is_set()

    def _accept_loop(self) -> None:
        while self._wait_running():
            readable, _, _ = select.select([self._listener], [], [], 0.1)
            if not readable or not self._running.is_set():
                continue  # frozen meanwhile: leave the connection in the backlog
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            self._spawn(self._relay, client, upstream)

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        try:
            while self._wait_running():
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                if not self._running.is_set():
                    continue  # frozen: what arrived waits in the kernel buffers
                for s in readable:
                    data = s.recv(65536)
                    if not data:
                        return
                    peers[s].sendall(data)
        except OSError:
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass
