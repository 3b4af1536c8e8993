"""Credential guessing and forwarded headers against ``reconciler serve --htpasswd`` (a
real gunicorn process, raw requests from several loopback addresses): failures are
throttled per client address, a forged ``X-Forwarded-For`` does not change the address,
a trusted proxy's does, and the access log names the client and the user name tried;
``X-Forwarded-Proto`` too is believed from the trusted proxy only."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import bcrypt
import pytest

from tests.support.serving import Server, filled_store, run_server
from tests.support.slowclients import connect, read_reply

pytestmark = pytest.mark.integration

PROXY = "127.0.0.9"  # --forwarded-allow-ips


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("logins")
    store = filled_store(root)
    users = root / "htpasswd"
    users.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    with run_server(store, root / "serve.log", htpasswd=users, workers=1,
                    serve_args=["--forwarded-allow-ips", PROXY]) as srv:
        yield srv


def get(server: Server, source: str, user: str, password: str, forwarded: str | None = None) -> tuple[int, bytes]:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    extra = f"X-Forwarded-For: {forwarded}\r\n" if forwarded else ""
    with connect(int(server.host.rsplit(":", 1)[1]), source) as sock:
        sock.sendall(f"GET /v2/test/secret/tags/list HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                     f"{extra}Connection: close\r\n\r\n".encode())
        reply = read_reply(sock)
    head = reply.split(b"\r\n\r\n", 1)[0]
    return int(head.split(b" ")[1]), head


def test_guessing_from_one_address_is_throttled_whatever_it_forwards(server: Server) -> None:
    statuses = [get(server, "127.0.0.2", "bob", f"guess{i}", forwarded=f"198.51.100.{i}")[0] for i in range(12)]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429]
    status, head = get(server, "127.0.0.2", "alice", "secret")
    assert status == 429 and b"\r\nRetry-After: " in head
    assert get(server, "127.0.0.3", "alice", "secret")[0] == 200  # another address is not affected


def test_behind_a_trusted_proxy_the_forwarded_client_is_throttled_and_logged(server: Server) -> None:
    statuses = [get(server, PROXY, "mallory", f"guess{i}", forwarded="203.0.113.66")[0] for i in range(11)]
    assert statuses == [401] * 10 + [429]
    # another forwarded client guessing another name is counted on its own
    statuses = [get(server, PROXY, "eve", f"guess{i}", forwarded="203.0.113.67")[0] for i in range(11)]
    assert statuses == [401] * 10 + [429]
    # the proxy's other clients are not affected: the throttle is keyed by the real client
    assert get(server, PROXY, "alice", "secret", forwarded="203.0.113.77")[0] == 200
    log = server.log()
    assert '203.0.113.66 - mallory [' in log and '" 429 ' in log
    assert "203.0.113.77 - alice [" in log
    assert "198.51.100." not in log  # what an untrusted peer forwarded was not believed


def test_only_a_trusted_proxy_says_the_client_came_over_https(server: Server) -> None:
    """The web catalog's pull commands drop --src-tls-verify=false when the request came
    over HTTPS, which only a trusted proxy can say."""
    def page(source: str) -> bytes:
        with connect(int(server.host.rsplit(":", 1)[1]), source) as sock:
            sock.sendall(b"GET /ui/r/test/docker HTTP/1.1\r\nHost: registry.example.com\r\n"
                         b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n")
            reply = read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        return reply

    assert b"--src-tls-verify=false" not in page(PROXY)
    assert b"--src-tls-verify=false" in page("127.0.0.4")
