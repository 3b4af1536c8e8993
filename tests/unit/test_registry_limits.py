"""RegistryClient against hostile or broken servers (``responses``): bodies of many
megabytes are refused after a bounded read, Link pagination that loops stops, every
request carries a timeout, and only temporary statuses are retried."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Unpack

import pytest
import responses

from reconciler.errors import RegistryError
from reconciler.model.manifest import MAX_MANIFEST_BYTES
from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from reconciler.registry.retry import RetryPolicy
from tests.support.options import ClientOptions

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

BASE = "https://reg.example"
REALM = "https://auth.example/token"
TAGS_URL = f"{BASE}/v2/lib/app/tags/list"
HUGE = 256 * 1024 * 1024


class _Zeros(io.RawIOBase):
    """``size`` bytes produced on demand, counting how many were read."""

    def __init__(self, size: int, fill: bytes = b"0") -> None:
        self.left, self.read_bytes, self.fill = size, 0, fill

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer) -> int:
        view = memoryview(buf)
        n = min(len(view), self.left)
        view[:n] = self.fill * n
        self.left -= n
        self.read_bytes += n
        return n


def huge_body(fill: bytes = b"0") -> tuple[io.BufferedReader, _Zeros]:
    raw = _Zeros(HUGE, fill)
    return io.BufferedReader(raw, 64 * 1024), raw


@pytest.fixture
def sleeps() -> list[float]:
    return []


def client(sleeps: list[float], **kw: Unpack[ClientOptions]) -> RegistryClient:
    return RegistryClient(RegistryConfig(BASE), retry=RetryPolicy(attempts=3, sleep=sleeps.append),
                          **kw)


def test_huge_manifest_is_refused_after_a_bounded_read(sleeps: list[float]) -> None:
    body, raw = huge_body(b" ")
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=200)
        rsps.add(responses.Response(responses.GET, f"{BASE}/v2/lib/app/manifests/v1", body=body,
                                    content_type="application/vnd.oci.image.manifest.v1+json",
                                    auto_calculate_content_length=False))
        with client(sleeps) as c, pytest.raises(RegistryError, match="larger than"):
            c.manifest_get("lib/app", "v1")
    assert raw.read_bytes < MAX_MANIFEST_BYTES + 1024 * 1024
    assert sleeps == []  # not retried: it would be as big again


def test_huge_token_response_is_refused_after_a_bounded_read(sleeps: list[float]) -> None:
    body, raw = huge_body()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401,
                 headers={"WWW-Authenticate": f'Bearer realm="{REALM}",service="reg"'})
        rsps.add(responses.Response(responses.GET, REALM, body=body, content_type="application/json",
                                    auto_calculate_content_length=False))
        with client(sleeps) as c, pytest.raises(RegistryError, match="larger than"):
            c.tag_list("lib/app")
    assert raw.read_bytes < 2 * 1024 * 1024


def test_huge_ping_body_is_not_read(sleeps: list[float]) -> None:
    body, raw = huge_body()
    with responses.RequestsMock() as rsps:
        rsps.add(responses.Response(responses.GET, f"{BASE}/v2/", body=body, auto_calculate_content_length=False))
        rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["a"]})
        with client(sleeps) as c:
            assert c.tag_list("lib/app") == ["a"]
    assert raw.read_bytes < 1024 * 1024


@pytest.mark.parametrize("links", [
    ['</v2/lib/app/tags/list?n=1000>; rel="next"'],                                  # to the first page
    ['</v2/lib/app/tags/list?n=1&last=a>; rel="next"', '</v2/lib/app/tags/list?n=1000>; rel="next"'],
], ids=["self", "two-cycle"])
def test_link_pagination_loop_stops(sleeps: list[float], links: list[str]) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=200)
        for link in links * 3:
            rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["a"]}, headers={"Link": link})
        with client(sleeps) as c, pytest.raises(RegistryError, match="loops"):
            c.tag_list("lib/app")
        pages = sum(1 for call in rsps.calls if call.request.url and call.request.url.startswith(TAGS_URL))
    assert pages == len(links)  # each distinct page once, then the repeat is recognised


def test_link_to_another_host_stays_on_the_registry(sleeps: list[float]) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=200)
        rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["a"]},
                 headers={"Link": '<https://evil.example/v2/lib/app/tags/list?n=1&last=a>; rel="next"'})
        rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["b"]})
        with client(sleeps) as c:
            assert c.tag_list("lib/app") == ["a", "b"]
        assert all(call.request.url and call.request.url.startswith(BASE) for call in rsps.calls)


@pytest.mark.parametrize("status,attempts", [
    (400, 1), (401, 1), (403, 1), (404, 1), (405, 1), (408, 3), (429, 3), (500, 3), (502, 3), (503, 3),
], ids=lambda v: str(v))
def test_only_temporary_statuses_are_retried_and_boundedly(sleeps: list[float], status: int, attempts: int) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=200)
        rsps.add(responses.GET, TAGS_URL, status=status)
        with client(sleeps) as c, pytest.raises(RegistryError):
            c.tag_list("lib/app")
        tries = sum(1 for call in rsps.calls if call.request.url and call.request.url.startswith(TAGS_URL))
    assert tries == attempts and len(sleeps) == attempts - 1


def test_every_request_has_a_timeout(sleeps: list[float]) -> None:
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401,
                 headers={"WWW-Authenticate": f'Bearer realm="{REALM}",service="reg"'})
        rsps.add(responses.GET, REALM, json={"token": "t"})
        rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["a"]})
        rsps.add(responses.HEAD, f"{BASE}/v2/lib/app/manifests/a", status=404)
        rsps.add(responses.GET, f"{BASE}/v2/lib/app/manifests/a", status=404)  # the GET that confirms a HEAD 404
        with client(sleeps, timeout=(3.0, 7.0)) as c:
            c.tag_list("lib/app")
            c.manifest_head("lib/app", "a")
        # req_kwargs: responses records them on each request; not in its types
        timeouts = [call.request.req_kwargs.get("timeout") for call in rsps.calls]  # type: ignore[attr-defined]
    assert len(timeouts) == 5 and all(t == (3.0, 7.0) for t in timeouts)


def test_credentials_never_go_to_a_plain_http_realm_of_an_https_registry(sleeps: list[float]) -> None:
    """A registry reached over TLS that names an http:// token realm would have our
    password sent in clear text; we refuse instead (anonymous tokens may still go)."""
    realm = "http://auth.example/token"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401,
                 headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})
        rsps.add(responses.GET, realm, json={"token": "t"})
        rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["a"]})
        cfg = RegistryConfig(BASE, username_env="U", password_env="P")
        with RegistryClient(cfg, env={"U": "bob", "P": "hunter2"}, retry=RetryPolicy(sleep=sleeps.append)) as c, \
                pytest.raises(RegistryError, match="http://auth.example") as err:
            c.tag_list("lib/app")
        assert not any(call.request.url and call.request.url.startswith(realm) for call in rsps.calls)
    assert err.value.hint and "https" in err.value.hint
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:  # anonymous: fine
        rsps.add(responses.GET, f"{BASE}/v2/", status=401,
                 headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg"'})
        rsps.add(responses.GET, realm, json={"token": "t"})
        rsps.add(responses.GET, TAGS_URL, json={"name": "lib/app", "tags": ["a"]})
        with client(sleeps) as c:
            assert c.tag_list("lib/app") == ["a"]
