"""A TCP proxy on 127.0.0.1 that puts a network's round-trip time between a client and a
registry: ``python -m bench.latency --upstream 127.0.0.1:5000 --rtt-ms 50``.

Every byte is delivered half the round trip after it was read, in each direction, so a
request and its response cost one full round trip more than on loopback, whatever the
protocol (HTTP/1.1 keep-alive, TLS, pipelining) and whoever the client (ours, skopeo,
regsync, curl). A new connection costs one round trip more again (its first bytes wait a
whole round trip, as they would behind a TCP handshake). Bandwidth is not limited and
nothing is lost or reordered: the proxy models distance, not a bad link.

It runs as its own process (asyncio, one thread): in the harness's process its event loop
would compete with the harness for the GIL and add jitter of its own. It prints
``listening on 127.0.0.1:PORT`` once it accepts connections, and stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
from collections import deque
from pathlib import Path

CHUNK = 1 << 18


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, first_extra: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it arrived (the
    first ``first_extra`` seconds later still)."""
    loop = asyncio.get_running_loop()
    queue: deque[tuple[float, bytes]] = deque()
    ready = asyncio.Event()
    extra = first_extra

    async def deliver() -> None:
        while True:
            while not queue:
                ready.clear()
                await ready.wait()
            due, data = queue.popleft()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    task = asyncio.ensure_future(deliver())
    try:
        while True:
            data = await reader.read(CHUNK)
            queue.append((loop.time() + delay + extra, data))
            extra = 0.0
            ready.set()
            if not data:
                break
        await task
    except (ConnectionError, OSError):
        task.cancel()
    finally:
        if not task.done():
            await asyncio.wait([task])


async def _serve(upstream: tuple[str, int], rtt: float, listen_port: int) -> None:
    half = rtt / 2

    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        sock = c_writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            u_reader, u_writer = await asyncio.open_connection(*upstream)
        except OSError:
            c_writer.close()
            return
        u_sock = u_writer.get_extra_info("socket")
        if u_sock is not None:
            u_sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            # the request's first bytes wait a handshake's round trip as well
            await asyncio.gather(_pipe(c_reader, u_writer, half, rtt), _pipe(u_reader, c_writer, half, 0.0))
        finally:
            for w in (u_writer, c_writer):
                w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port, backlog=256)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with server:
        await stop.wait()


class LatencyProxy:
    """The proxy as a child process of the harness: ``start()`` returns once it listens."""

    def __init__(self, upstream_host: str, rtt_ms: float, log: Path) -> None:
        self.upstream_host, self.rtt_ms, self.log = upstream_host, rtt_ms, log
        self.proc: subprocess.Popen[str] | None = None
        self.host = self.url = ""

    def start(self) -> LatencyProxy:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.latency", "--upstream", self.upstream_host,
                                      "--rtt-ms", str(self.rtt_ms)], stdout=subprocess.PIPE,
                                     stderr=open(self.log, "ab"), stdin=subprocess.DEVNULL, text=True,
                                     cwd=Path(__file__).resolve().parent.parent)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"the latency proxy did not start: {line!r} (log {self.log})")
        self.host = line.removeprefix("listening on ")
        self.url = f"http://{self.host}"
        return self

    def stop(self) -> None:
        if self.proc is not None:
            from bench.proc import stop_server

            stop_server(self.proc)  # type: ignore[arg-type]  # a text-mode Popen stops the same way
        self.proc = None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--upstream", required=True, metavar="HOST:PORT")
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: a free one)")
    a = ap.parse_args(argv)
    host, _, port = a.upstream.rpartition(":")
    asyncio.run(_serve((host, int(port)), a.rtt_ms / 1000, a.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
