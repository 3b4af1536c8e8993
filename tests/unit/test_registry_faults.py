"""RegistryClient under faults a real registry cannot produce on demand (``responses``):
429 with Retry-After, 503s, truncated and corrupted bodies, odd 401s, redirects to storage,
credentials in URLs. Waits are checked through an injected sleep, never wall time."""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Unpack

import pytest
import requests
import responses

from reconciler.errors import DigestMismatch, RateLimited, RegistryError
from reconciler.model import Digest, Manifest
from reconciler.model import mediatypes as mt
from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from reconciler.registry.retry import RetryPolicy
from tests.support.imagegen import build_image
from tests.support.narrow import narrow
from tests.support.options import ClientOptions, TLSOptions

BASE = "https://reg.example"
BLOB = b"layer bytes " * 1000
BLOB_DIGEST = Digest.of(BLOB)
TAGS_URL = f"{BASE}/v2/lib/app/tags/list"
BLOB_URL = f"{BASE}/v2/lib/app/blobs/{BLOB_DIGEST}"


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        r.add(responses.GET, f"{BASE}/v2/", status=200)
        yield r


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(sleeps: list[float], url: str = BASE, **kw: Unpack[ClientOptions]) -> RegistryClient:
    return RegistryClient(RegistryConfig(url), retry=RetryPolicy(attempts=4, initial=0.5, maximum=4.0,
                                                                  sleep=sleeps.append), **kw)


def calls(rsps: responses.RequestsMock, url_prefix: str) -> int:
    return sum(1 for c in rsps.calls if c.request.url and c.request.url.startswith(url_prefix))


def tags_body(*tags: str) -> dict[str, object]:
    return {"name": "lib/app", "tags": list(tags)}


def test_429_retry_after_seconds_is_honoured(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    rsps.add(responses.GET, TAGS_URL, status=429, headers={"Retry-After": "7"},
             json={"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]})
    rsps.add(responses.GET, TAGS_URL, json=tags_body("a"))
    with make_client(sleeps) as c:
        assert c.tag_list("lib/app") == ["a"]
    assert sleeps == [7.0]
    assert calls(rsps, TAGS_URL) == 2


def test_429_retry_after_http_date_is_honoured(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    rsps.add(responses.GET, TAGS_URL, status=429, headers={"Retry-After": when})
    rsps.add(responses.GET, TAGS_URL, json=tags_body("a"))
    with make_client(sleeps) as c:
        assert c.tag_list("lib/app") == ["a"]
    assert len(sleeps) == 1 and 25.0 <= sleeps[0] <= 31.0


def test_503_twice_then_success_backs_off(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    for _ in range(2):
        rsps.add(responses.HEAD, f"{BASE}/v2/lib/app/manifests/v1", status=503)
    rsps.add(responses.HEAD, f"{BASE}/v2/lib/app/manifests/v1", status=200,
             headers={"Docker-Content-Digest": str(BLOB_DIGEST), "Content-Type": "application/json"})
    with make_client(sleeps) as c:
        head = c.manifest_head("lib/app", "v1")
    assert head is not None and head.digest == BLOB_DIGEST
    assert sleeps == [0.5, 1.0]  # exponential, bounded by RetryPolicy.maximum
    assert calls(rsps, f"{BASE}/v2/lib/app/manifests/") == 3


def test_5xx_forever_gives_up_with_temporary_error(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    rsps.add(responses.GET, TAGS_URL, status=502)
    with make_client(sleeps) as c, pytest.raises(RegistryError) as err:
        c.tag_list("lib/app")
    assert err.value.status == 502 and err.value.temporary
    assert calls(rsps, TAGS_URL) == 4 and sleeps == [0.5, 1.0, 2.0]


@pytest.mark.parametrize("status", [400, 403, 404, 405], ids=["400", "403", "404", "405"])
def test_other_4xx_are_not_retried(rsps: responses.RequestsMock, sleeps: list[float], status: int) -> None:
    rsps.add(responses.GET, TAGS_URL, status=status, json={"errors": [{"code": "DENIED", "message": "no"}]})
    with make_client(sleeps) as c, pytest.raises(RegistryError) as err:
        c.tag_list("lib/app")
    assert err.value.status == status and err.value.codes == ("DENIED",)
    assert calls(rsps, TAGS_URL) == 1 and sleeps == []


def test_manifest_head_404_confirmed_by_get_is_none(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    """A HEAD 404 is only believed when a GET says 404 too (Nexus 404s HEADs that GET
    answers); when both agree, HEAD stays trusted for the next tags."""
    rsps.add(responses.HEAD, f"{BASE}/v2/lib/app/manifests/gone", status=404)
    rsps.add(responses.GET, f"{BASE}/v2/lib/app/manifests/gone", status=404)
    with make_client(sleeps) as c:
        assert c.manifest_head("lib/app", "gone") is None
        assert c.head_distrusted is None
    assert calls(rsps, f"{BASE}/v2/lib/app/manifests/") == 2


def _blob(rsps: responses.RequestsMock, body: bytes, length: int | None = None) -> None:
    headers = {"Content-Length": str(length if length is not None else len(body))}
    rsps.add(responses.Response(responses.GET, BLOB_URL, body=body, headers=headers, auto_calculate_content_length=False))


class Sink:
    """Stores a blob only once the whole stream was consumed without error."""

    def __init__(self) -> None:
        self.calls = 0
        self.stored: list[bytes] = []

    def __call__(self, chunks: Iterator[bytes]) -> int:
        self.calls += 1
        h, data = hashlib.sha256(), b""
        for c in chunks:
            h.update(c)
            data += c
        self.stored.append(data)
        return len(data)


def test_truncated_blob_is_retried_and_never_stored(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    _blob(rsps, BLOB[:1000], length=len(BLOB))
    _blob(rsps, BLOB)
    sink = Sink()
    with make_client(sleeps) as c:
        assert c.blob_fetch("lib/app", BLOB_DIGEST, sink) == len(BLOB)
    assert sink.calls == 2 and sink.stored == [BLOB]
    assert calls(rsps, BLOB_URL) == 2


def test_truncated_blob_every_time_is_an_error(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    _blob(rsps, BLOB[:1000], length=len(BLOB))
    sink = Sink()
    with make_client(sleeps) as c, pytest.raises(RegistryError) as err:
        c.blob_fetch("lib/app", BLOB_DIGEST, sink)
    assert sink.stored == [] and sink.calls == 4
    assert str(BLOB_DIGEST) in str(err.value)


def test_blob_with_wrong_bytes_is_a_digest_mismatch_fetched_once(rsps: responses.RequestsMock,
                                                                 sleeps: list[float]) -> None:
    _blob(rsps, b"not the layer you asked for")
    sink = Sink()
    with make_client(sleeps) as c, pytest.raises(DigestMismatch) as err:
        c.blob_fetch("lib/app", BLOB_DIGEST, sink)
    assert sink.stored == [] and calls(rsps, BLOB_URL) == 1 and sleeps == []
    assert err.value.expected == str(BLOB_DIGEST) and BLOB_URL in str(err.value)


def test_manifest_by_digest_with_wrong_bytes_is_a_digest_mismatch(rsps: responses.RequestsMock,
                                                                  sleeps: list[float]) -> None:
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                      "digest": str(Digest.of(b"{}"))}, "layers": []}
    wanted = Digest.of(b"something else")
    url = f"{BASE}/v2/lib/app/manifests/{wanted}"
    rsps.add(responses.GET, url, body=json.dumps(doc), content_type="application/vnd.oci.image.manifest.v1+json")
    with make_client(sleeps) as c, pytest.raises(DigestMismatch):
        c.manifest_get("lib/app", str(wanted))
    assert calls(rsps, url) == 1


def test_401_without_challenge_is_a_clear_error(rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    rsps.add(responses.GET, TAGS_URL, status=401)
    with make_client(sleeps) as c, pytest.raises(RegistryError) as err:
        c.tag_list("lib/app")
    assert err.value.status == 401 and "no WWW-Authenticate" in str(err.value)
    assert "credentials" in (err.value.hint or "") and calls(rsps, TAGS_URL) == 1


def test_credentials_in_url_are_redacted_from_errors(sleeps: list[float]) -> None:
    url = "https://bob:hunter2@reg.example"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401, headers={"WWW-Authenticate": 'Basic realm="r"'})
        rsps.add(responses.GET, TAGS_URL, status=404, json={"errors": [{"code": "NAME_UNKNOWN", "message": "x"}]})
        with make_client(sleeps, url=url) as c, pytest.raises(RegistryError) as err:
            c.tag_list("lib/app")
        assert rsps.calls[1].request.headers["Authorization"] == "Basic Ym9iOmh1bnRlcjI="  # bob:hunter2
    assert "hunter2" not in str(err.value) and "hunter2" not in err.value.url
    assert "reg.example/v2/lib/app/tags/list" in str(err.value)


def test_connection_error_message_is_redacted(sleeps: list[float]) -> None:
    url = "https://bob:hunter2@reg.example"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/",
                 body=requests.ConnectionError(f"cannot connect to {url}/v2/ (bob:hunter2)"))
        with make_client(sleeps, url=url) as c, pytest.raises(RegistryError) as err:
            c.ping()
    assert err.value.status == 0 and err.value.temporary and len(sleeps) == 3
    assert "https://reg.example/v2/" in str(err.value) and "@reg.example" not in str(err.value)


def test_blob_redirect_to_storage_carries_no_credentials(sleeps: list[float]) -> None:
    storage = f"https://storage.example/blobs/{BLOB_DIGEST.hex}?sig=abc"
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401, headers={"WWW-Authenticate": 'Basic realm="reg"'})
        rsps.add(responses.GET, BLOB_URL, status=307, headers={"Location": storage})
        rsps.add(responses.GET, storage, body=BLOB)
        cfg = RegistryConfig(BASE, username_env="U", password_env="P")
        with RegistryClient(cfg, env={"U": "bob", "P": "hunter2"}, retry=RetryPolicy(sleep=sleeps.append)) as c:
            data = c.blob_fetch("lib/app", BLOB_DIGEST, lambda chunks: b"".join(chunks))
            assert c.stats.counts == {"ping": 1, "blob_get": 1, "redirect": 1}
        registry_req, storage_req = rsps.calls[1].request, rsps.calls[2].request
    assert data == BLOB
    assert registry_req.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in storage_req.headers


def test_bearer_token_refreshed_on_401_and_access_token_accepted(sleeps: list[float]) -> None:
    realm = "https://auth.example/token"
    challenge = f'Bearer realm="{realm}",service="reg.example",scope="repository:lib/app:pull"'
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401, headers={"WWW-Authenticate": challenge})
        rsps.add(responses.GET, realm, json={"access_token": "tok-1", "expires_in": 300})
        rsps.add(responses.GET, TAGS_URL, json=tags_body("a"))
        rsps.add(responses.GET, TAGS_URL, status=401, headers={"WWW-Authenticate": challenge})  # tok-1 revoked
        rsps.add(responses.GET, realm, json={"token": "tok-2"})
        rsps.add(responses.GET, TAGS_URL, json=tags_body("a", "b"))
        with RegistryClient(RegistryConfig(BASE), retry=RetryPolicy(sleep=sleeps.append)) as c:
            assert c.tag_list("lib/app") == ["a"]
            assert c.tag_list("lib/app") == ["a", "b"]
            assert c.stats.counts["token"] == 2
        auths = [call.request.headers.get("Authorization") for call in rsps.calls
                 if call.request.url and call.request.url.startswith(TAGS_URL)]
        token_query = rsps.calls[1].request.url
    assert auths == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert token_query is not None and "service=reg.example" in token_query and "scope=repository" in token_query


def test_requests_carry_session_headers_and_proxy_but_no_cookies_or_netrc(
        rsps: responses.RequestsMock, sleeps: list[float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry requests are prepared without ``Session.request`` (for speed): the session's
    User-Agent, the caller's headers, the environment's proxy and the TLS settings still
    reach the transport; cookies and ~/.netrc, which registry clients do not use, do not."""
    home = tmp_path
    (home / ".netrc").write_text("machine reg.example login netrc-user password netrc-pw\n")
    (home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    rsps.add(responses.GET, TAGS_URL, json=tags_body("v1"), headers={"Set-Cookie": "lb=abc; Path=/"})
    rsps.add(responses.HEAD, f"{BASE}/v2/lib/app/manifests/v1", status=200,
             headers={"Docker-Content-Digest": str(BLOB_DIGEST)})
    with make_client(sleeps) as client:
        assert client.tag_list("lib/app") == ["v1"]
        head = client.manifest_head("lib/app", "v1")
    assert head is not None and head.digest == BLOB_DIGEST
    rsps.replace(responses.GET, f"{BASE}/v2/", status=200, headers={"Set-Cookie": "sticky=1; Path=/"})
    with make_client(sleeps) as client:  # a cookie set by the ping is not sent back either
        assert client.tag_list("lib/app") == ["v1"]
    sent = list(rsps.calls)
    assert [narrow(str, c.request.url).split("/v2/")[1].split("?")[0] for c in sent] == [
        "", "lib/app/tags/list", "lib/app/manifests/v1", "", "lib/app/tags/list"]
    for call in sent:
        request = call.request
        assert request.headers["User-Agent"].startswith("reconciler-registry-client/")
        assert "Cookie" not in request.headers and "Authorization" not in request.headers
        kwargs = request.req_kwargs  # type: ignore[attr-defined]  # responses records them; not in its types
        assert kwargs["proxies"].get("https") == "http://proxy.test:3128"
        # True, or the CA bundle REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE names: what requests works out
        assert kwargs["verify"] == requests.Session().merge_environment_settings(
            request.url, {}, True, None, None)["verify"]
        assert kwargs["verify"] is not False and kwargs["stream"] is True
    assert sent[2].request.headers["Accept"].startswith("application/")


@pytest.mark.parametrize(("settings", "expected"), [
    ({"ca_file": "/etc/private-ca.pem"}, "/etc/private-ca.pem"),
    ({"tls_verify": False}, False),
    ({}, "/etc/ssl/env-bundle.pem"),
], ids=["ca_file", "no-verify", "default"])
def test_the_registry_tls_settings_win_over_the_ca_bundle_variables(
        rsps: responses.RequestsMock, sleeps: list[float], monkeypatch: pytest.MonkeyPatch,
        settings: TLSOptions, expected: object) -> None:
    """requests lets REQUESTS_CA_BUNDLE override a session's own CA (psf/requests#3829): a
    registry's ``ca_file`` was ignored, and its private CA refused, wherever that variable
    is set (Debian and CI images often set it). The registry's config wins; without one, the
    variable applies as in requests."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/env-bundle.pem")
    rsps.add(responses.GET, TAGS_URL, json=tags_body("v1"))
    config = RegistryConfig(BASE, **settings)
    with RegistryClient(config, retry=RetryPolicy(attempts=1, sleep=sleeps.append)) as client:
        assert client.tag_list("lib/app") == ["v1"]
    # req_kwargs: responses records them on each request; not in its types
    assert [c.request.req_kwargs["verify"] for c in rsps.calls] == [expected, expected]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("target", "credentials_follow"), [
    ("https://auth.example/v2/token", True),
    ("https://elsewhere.example/token", False),
], ids=["same-origin", "other-origin"])
def test_token_realm_redirects_keep_credentials_on_the_realm_origin_only(
        sleeps: list[float], target: str, credentials_follow: bool) -> None:
    """The token request follows redirects itself (not through ``requests``): the Basic
    credentials go to the realm's own scheme and host and never beyond; a realm that has
    a query of its own keeps it, with service and scope appended."""
    realm = "https://auth.example/token?client=reg"
    with responses.RequestsMock() as rsps:
        rsps.add(responses.GET, f"{BASE}/v2/", status=401,
                 headers={"WWW-Authenticate": f'Bearer realm="{realm}",service="reg.example"'})
        rsps.add(responses.GET, "https://auth.example/token", status=307, headers={"Location": target})
        rsps.add(responses.GET, target, json={"token": "tok"})
        rsps.add(responses.GET, TAGS_URL, json=tags_body("a"))
        cfg = RegistryConfig(BASE, username_env="U", password_env="P")
        with RegistryClient(cfg, env={"U": "bob", "P": "hunter2"}, retry=RetryPolicy(sleep=sleeps.append)) as c:
            assert c.tag_list("lib/app") == ["a"]
            assert c.stats.counts == {"ping": 1, "token": 1, "redirect": 1, "tags": 1}
        first, hop, tags = rsps.calls[1].request, rsps.calls[2].request, rsps.calls[3].request
    assert first.url is not None and first.url.startswith("https://auth.example/token?client=reg&service=reg.example")
    assert first.headers["Authorization"].startswith("Basic ")
    assert ("Authorization" in hop.headers) is credentials_follow
    assert tags.headers["Authorization"] == "Bearer tok"


# -- registry quirks (integration tests against the real registry: tests/integration/test_upstream_quirks.py)

def _manifest_urls(rsps: responses.RequestsMock, tags: tuple[str, ...], *, head: dict[str, str] | None,
                   head_status: int = 200) -> dict[str, Manifest]:
    images = {t: build_image(f"quirk-{t}").manifest for t in tags}
    for t, m in images.items():
        url = f"{BASE}/v2/lib/app/manifests/{t}"
        rsps.add(responses.HEAD, url, status=head_status, headers=head or {})
        rsps.add(responses.GET, url, body=m.raw, headers={"Content-Type": m.media_type})
    return images


@pytest.mark.parametrize("head,status", [({"Content-Type": mt.DOCKER_SCHEMA2}, 200), (None, 405), (None, 404)],
                         ids=["no-digest-header", "head-405", "head-404-where-get-works"])
def test_a_head_that_cannot_be_trusted_costs_one_head_then_gets(rsps: responses.RequestsMock, sleeps: list[float],
                                                                head: dict[str, str] | None, status: int) -> None:
    images = _manifest_urls(rsps, ("a", "b", "c"), head=head, head_status=status)
    with make_client(sleeps) as c:
        for t, m in images.items():
            found = c.manifest_head("lib/app", t)
            assert found is not None and found.digest == m.digest and found.manifest == m
        assert c.head_distrusted is not None
    heads = sum(1 for call in rsps.calls if call.request.method == "HEAD")
    gets = sum(1 for call in rsps.calls if call.request.method == "GET" and "/manifests/" in str(call.request.url))
    assert (heads, gets) == (1, 3)


def test_a_rate_limit_longer_than_retries_wait_fails_at_once_and_for_the_next_requests(
        rsps: responses.RequestsMock, sleeps: list[float]) -> None:
    rsps.add(responses.GET, TAGS_URL, status=429, headers={"Retry-After": "21600"},
             json={"errors": [{"code": "TOOMANYREQUESTS", "message": "pull rate limit"}]})
    with make_client(sleeps) as c:
        with pytest.raises(RateLimited) as info:
            c.tag_list("lib/app")
        assert "rate limited until" in info.value.message and info.value.until > time.time() + 21000
        assert "the limit resets at" in (info.value.hint or "") and not info.value.temporary
        with pytest.raises(RateLimited):
            c.manifest_head("lib/app", "v1")  # not sent: the registry said when to come back
    assert sleeps == [] and calls(rsps, f"{BASE}/v2/lib/") == 1


@pytest.mark.parametrize("refused,asked", [({"n=1000"}, ["n=1000", "n=100"]),
                                           ({"n=1000", "n=100"}, ["n=1000", "n=100", ""])],
                         ids=["capped-at-100", "no-n-at-all"])
def test_a_refused_page_size_is_asked_smaller_then_without(rsps: responses.RequestsMock, sleeps: list[float],
                                                           refused: set[str], asked: list[str]) -> None:
    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        query = (request.url or "").partition("?")[2]
        if query in refused:
            return 400, {}, json.dumps({"errors": [{"code": "PAGINATION_NUMBER_INVALID", "message": "bad n"}]})
        return 200, {}, json.dumps(tags_body("a", "b"))

    rsps.add_callback(responses.GET, TAGS_URL, callback=answer)
    with make_client(sleeps) as c:
        assert c.tag_list("lib/app") == ["a", "b"]
        assert c.tag_list("lib/app") == ["a", "b"]  # remembered: no refused page size again
    got = [str(call.request.url).partition("?")[2] for call in rsps.calls if str(call.request.url).startswith(TAGS_URL)]
    assert got == [*asked, asked[-1]]
