"""Misbehaving HTTP clients for the server's availability tests, on loopback only.

``Drippers`` opens many connections that send a request one header line at a time (or
nothing at all), from chosen loopback source addresses (all of 127.0.0.0/8 is loopback
on Linux, so tests can play several client addresses). ``timed_get`` is the well-behaved
client whose latency the tests watch. Every socket has a timeout, and the helpers close
what they opened, so a test never waits longer than it says.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager


def connect(port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_reply(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (or the socket times out)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


class Drippers:
    """``count`` connections spread over ``sources``; each has sent a request line and
    sends one more header line on every ``drip()``, never the blank line that ends
    the headers (``finish()`` sends it). ``idle=True``: connections that send nothing."""

    def __init__(self, port: int, count: int, sources: list[str], *, idle: bool = False) -> None:
        self.socks: list[socket.socket] = []
        self.lines = 0
        try:
            for i in range(count):
                sock = connect(port, sources[i % len(sources)])
                if not idle:
                    sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: test\r\n")
                self.socks.append(sock)
        except BaseException:
            self.close()
            raise

    def drip(self) -> None:
        self.lines += 1
        for sock in self.socks:
            sock.sendall(f"X-Drip-{self.lines}: slowly\r\n".encode())

    def finish(self) -> list[bytes]:
        """End every request; the first line of each answer."""
        for sock in self.socks:
            sock.sendall(b"Connection: close\r\n\r\n")
        return [read_reply(sock).split(b"\r\n", 1)[0] for sock in self.socks]

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []


@contextmanager
def drippers(port: int, count: int, sources: list[str], *, idle: bool = False) -> Iterator[Drippers]:
    d = Drippers(port, count, sources, idle=idle)
    try:
        yield d
    finally:
        d.close()


def timed_get(port: int, path: str, *, timeout: float = 5.0) -> tuple[int | None, float]:
    """(status or None when no answer came, seconds) for one GET on a new connection
    from 127.0.0.1."""
    started = time.monotonic()
    try:
        with connect(port, timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
            head = read_reply(sock).split(b"\r\n", 1)[0]
    except OSError:
        return None, time.monotonic() - started
    parts = head.split(b" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    return status, time.monotonic() - started
