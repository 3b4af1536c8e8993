"""The serving worker's front end: when a request has arrived whole (``framing``), and
whose address a request comes from (``limits.TrustedProxies``)."""

from __future__ import annotations

import pytest

from reconciler.errors import InvalidInput
from reconciler.server.framing import MAX_BUFFERED_BODY, MAX_HEAD, Framed, HeadTooLarge, find_request
from reconciler.server.limits import TrustedProxies

GET = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
HEAD = -1  # "the request ends where the headers end"


@pytest.mark.parametrize(("data", "expected"), [
    (GET, Framed(len(GET), whole=True)),
    (GET + b"GET /v2/_catalog HTTP/1.1\r\n", Framed(len(GET), whole=True)),  # pipelined: the first one
    (b"GET /v2/ HTTP/1.1\r\nHost: x\r\n", None),                            # headers not finished
    (b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r", None),
    (b"POST /v2/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel", None),          # body still coming
    (b"POST /v2/ HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET", Framed(46, whole=True)),
    (b"POST /v2/ HTTP/1.1\r\ncontent-length:  0 \r\n\r\n", Framed(HEAD, whole=True)),
    # a body we do not wait for: answered without it, then the connection closes
    (b"PUT /v2/ HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BUFFERED_BODY + 1), Framed(HEAD, whole=False)),
    (b"PUT /v2/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", Framed(HEAD, whole=False)),
    (b"PUT /v2/ HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", Framed(HEAD, whole=False)),
    # ambiguous framing: handed over for gunicorn's parser to refuse, never kept alive
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", Framed(HEAD, whole=False)),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", Framed(HEAD, whole=False)),
    (b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", Framed(HEAD, whole=False)),
], ids=["get", "pipelined", "head-open", "head-almost", "body-partial", "body-whole", "empty-body", "big-body",
        "chunked", "expect", "two-lengths", "negative-length", "huge-length"])
def test_find_request(data: bytes, expected: Framed | None) -> None:
    if expected is not None and expected.length == HEAD:
        expected = Framed(data.index(b"\r\n\r\n") + 4, expected.whole)
    assert find_request(data)[0] == expected


def test_a_client_sending_one_byte_at_a_time_is_not_rescanned() -> None:
    """Each call resumes where the last one stopped looking; the result is the same as
    for the whole buffer at once."""
    buf, resume, calls = bytearray(), 0, 0
    for byte in GET:
        buf.append(byte)
        framed, resume = find_request(buf, resume)
        calls += 1
        assert resume <= len(buf)
        if framed is not None:
            break
        assert resume >= len(buf) - 3
    assert framed == Framed(len(GET), whole=True) and calls == len(GET)


def test_headers_over_the_limit_are_refused() -> None:
    with pytest.raises(HeadTooLarge):
        find_request(b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_HEAD)
    assert find_request(b"GET / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD - 100) + b"\r\n\r\n")[0] is not None


@pytest.mark.parametrize(("peer", "forwarded", "client"), [
    ("127.0.0.1", "203.0.113.5", "203.0.113.5"),
    ("127.0.0.1", "198.51.100.9, 203.0.113.5", "203.0.113.5"),           # the proxy appended the real one
    ("127.0.0.1", "203.0.113.5, 10.1.2.3", "203.0.113.5"),               # a second trusted proxy in the chain
    ("127.0.0.1", "10.1.2.3", "127.0.0.1"),                              # only proxies: keep the peer
    ("127.0.0.1", "not-an-address", "127.0.0.1"),
    ("127.0.0.1", None, "127.0.0.1"),
    ("192.0.2.7", "203.0.113.5", "192.0.2.7"),                           # an untrusted peer cannot say
    ("::1", "2001:db8::1", "2001:db8::1"),
])
def test_the_client_address_is_taken_from_trusted_proxies_only(peer: str, forwarded: str | None,
                                                                 client: str) -> None:
    proxies = TrustedProxies.parse("127.0.0.1,::1,10.0.0.0/8")
    assert proxies.client(peer, forwarded) == client


def test_the_scheme_is_taken_from_trusted_proxies_only() -> None:
    proxies = TrustedProxies.parse("127.0.0.1")
    assert proxies.scheme("127.0.0.1", "https") == "https"
    assert proxies.scheme("127.0.0.1", "HTTPS, http") == "https"
    assert proxies.scheme("127.0.0.1", "gopher") is None
    assert proxies.scheme("192.0.2.7", "https") is None  # an untrusted peer cannot say


def test_no_proxy_is_trusted_by_default_and_bad_entries_are_errors() -> None:
    assert not TrustedProxies.parse("") and not TrustedProxies.parse(None).trusts("127.0.0.1")
    assert [str(n) for n in TrustedProxies.parse(" 127.0.0.1 , ::1").networks] == ["127.0.0.1/32", "::1/128"]
    for bad in ("localhost", "10.0.0.1/8", "300.1.1.1"):
        with pytest.raises(InvalidInput) as err:
            TrustedProxies.parse(bad)
        assert bad in err.value.message and err.value.hint
