"""``reconciler serve`` (a real gunicorn process) against slow, idle and greedy clients,
on loopback, bounded in count and time.

gunicorn's ``gthread`` worker gave a thread to a connection as soon as its first bytes
arrived and then waited for the rest of its headers: 8 clients sending one header line a
second held every thread of a 2 x 4 server. Our worker reads requests in its event loop
and hands only whole ones to threads, so hundreds of such clients cost sockets, not
threads; each has ``--client-timeout`` seconds to finish, an idle kept-alive connection
``--keepalive`` seconds, and one address ``--max-client-connections`` connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from tests.support.serving import Server, fill_store, filled_store, run_serve_command, run_server
from tests.support.slowclients import Drippers, connect, drippers, read_reply, timed_get

pytestmark = pytest.mark.integration

#: the answers a normal client must keep getting, each within this many seconds
PROMPT = 1.0
#: drip-feeding clients come from these addresses (50 each, under the default cap of 100)
DRIP_SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]


def port_of(server: Server) -> int:
    return int(server.host.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return filled_store(tmp_path_factory.mktemp("slow"))


@pytest.fixture(scope="module")
def server(store_path: Path) -> Iterator[Server]:
    """The defaults, one worker (4 threads): the smallest server there is."""
    with run_server(store_path, store_path.parent / "serve.log", workers=1) as srv:
        yield srv


@pytest.fixture(scope="module")
def strict(store_path: Path) -> Iterator[Server]:
    """Short timeouts and a small per-address cap, so the tests of them stay short;
    127.0.0.9 is a trusted proxy (exempt from the cap)."""
    args = ["--client-timeout", "2", "--keepalive", "1", "--max-client-connections", "10",
            "--forwarded-allow-ips", "127.0.0.9"]
    with run_server(store_path, store_path.parent / "strict.log", workers=1, serve_args=args) as srv:
        yield srv


def probe(port: int, seconds: float, between: float = 0.2, tick: Drippers | None = None) -> list[tuple[int | None, float]]:
    """A normal client's tags-list GETs for ``seconds``; ``tick`` drips a line before each."""
    results = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if tick is not None:
            tick.drip()
        results.append(timed_get(port, "/v2/test/docker/tags/list"))
        time.sleep(between)
    return results


def test_200_drip_feeding_clients_do_not_starve_a_normal_client(server: Server) -> None:
    port = port_of(server)
    with drippers(port, 200, DRIP_SOURCES) as slow:
        results = probe(port, 3.0, tick=slow)
        assert len(results) >= 5
        assert all(status == 200 and took < PROMPT for status, took in results), results
        # all 200 were held open (none refused or dropped): each is answered once it ends
        answers = slow.finish()
    assert answers == [b"HTTP/1.1 200 OK"] * 200


def test_200_idle_connections_do_not_starve_a_normal_client(server: Server) -> None:
    port = port_of(server)
    with drippers(port, 200, DRIP_SOURCES, idle=True):
        results = probe(port, 2.0)
    assert len(results) >= 5
    assert all(status == 200 and took < PROMPT for status, took in results), results


def test_a_request_not_sent_within_the_client_timeout_gets_408(strict: Server) -> None:
    with drippers(port_of(strict), 1, ["127.0.0.1"]) as slow:
        started = time.monotonic()
        reply = read_reply(slow.socks[0])  # nothing more is sent; the socket times out after 10 s
        took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert 1.5 < took < 6, took


def test_an_idle_kept_alive_connection_is_closed_after_the_keepalive_time(strict: Server) -> None:
    with connect(port_of(strict)) as sock:
        sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: test\r\n\r\n")
        first = b""
        while not first.endswith(b"\r\n\r\n{}"):  # the whole answer: headers and the 2-byte body
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200 ") and b"keep-alive" in first.lower()
        started = time.monotonic()
        rest = read_reply(sock)  # the server closes it: recv returns b""
        took = time.monotonic() - started
    assert rest == b"" and 0.5 < took < 5, (rest, took)


def test_one_address_holds_at_most_max_client_connections(strict: Server) -> None:
    port = port_of(strict)
    with drippers(port, 10, ["127.0.0.7"]):
        time.sleep(0.2)  # the server has accepted them all
        with connect(port, "127.0.0.7") as extra:
            assert read_reply(extra).startswith(b"HTTP/1.1 429 ")
        # another address is served as usual
        assert timed_get(port, "/v2/")[0] == 200
        # a trusted proxy (--forwarded-allow-ips) carries many clients: it is not capped
        with drippers(port, 15, ["127.0.0.9"]) as proxy:
            assert proxy.finish() == [b"HTTP/1.1 200 OK"] * 15


def test_a_store_call_that_blocks_every_thread_does_not_stop_reading_requests(
        postgres_server: PostgresServer, tmp_path: Path) -> None:
    """Every thread stuck in a database call (a table lock held elsewhere): the event
    loop still reads other connections and times them out; the stuck requests are
    answered once the database moves again."""
    import psycopg

    from reconciler.store.postgres import PostgresStore

    url = postgres_server.checkout()
    try:
        store = PostgresStore(url, blobs=tmp_path / "blobs")
        try:
            fill_store(store)
        finally:
            store.close()
        args = ["--store", url, "--blobs", str(tmp_path / "blobs"), "serve", "--client-timeout", "2"]
        with run_serve_command(args, tmp_path / "serve.log", workers=1) as srv, psycopg.connect(url) as lock:
            port = port_of(srv)
            lock.execute("LOCK TABLE repositories IN ACCESS EXCLUSIVE MODE")
            results: list[tuple[int | None, float]] = []
            stuck = [threading.Thread(target=lambda: results.append(timed_get(port, "/v2/test/docker/tags/list",
                                                                                   timeout=30)))
                     for _ in range(4)]  # the worker's 4 threads
            for t in stuck:
                t.start()
            time.sleep(0.5)
            with drippers(port, 1, ["127.0.0.1"]) as slow:
                started = time.monotonic()
                reply = read_reply(slow.socks[0])
                took = time.monotonic() - started
            assert reply.startswith(b"HTTP/1.1 408 ") and took < 6, (reply, took)
            assert results == []  # still stuck
            lock.rollback()
            for t in stuck:
                t.join(30)
        assert [status for status, _ in results] == [200] * 4
    finally:
        postgres_server.checkin(url)
