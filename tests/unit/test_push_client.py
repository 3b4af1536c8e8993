"""PushClient under answers a real registry cannot give on demand (``responses``): a
``Docker-Content-Digest`` naming other bytes, an upload location on another host or
scheme, a chunked upload resumed from the ``Range`` a registry reports after a lost PATCH
(distribution 2.x cannot report one; the integration tests cover what happens there).
Waits go through an injected sleep."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import responses

from reconciler.errors import DigestMismatch, RegistryError
from reconciler.model import Digest
from reconciler.model.registry import RegistryConfig
from reconciler.registry.push import PushClient
from reconciler.registry.retry import RetryPolicy
from tests.support.imagegen import build_image

BASE = "https://reg.example"
UPLOADS = f"{BASE}/v2/team/app/blobs/uploads/"
SESSION = f"{BASE}/v2/team/app/blobs/uploads/u1"
DATA = bytes(range(256)) * 40  # 10,240 bytes
DIGEST = Digest.of(DATA)


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as r:
        r.add(responses.GET, f"{BASE}/v2/", status=200)
        yield r


def client(sleeps: list[float], *, chunk: int = 8 << 20) -> PushClient:
    return PushClient(RegistryConfig(BASE), retry=RetryPolicy(attempts=3, initial=0.5, sleep=sleeps.append),
                      chunk_threshold=chunk, chunk_size=chunk)


def test_a_digest_header_naming_other_bytes_fails_the_upload(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, UPLOADS, status=202, headers={"Location": SESSION})
    rsps.add(responses.PUT, SESSION, status=201, headers={"Docker-Content-Digest": str(Digest.of(b"other"))})
    with pytest.raises(DigestMismatch):
        client([]).blob_upload("team/app", DIGEST, iter([DATA]), len(DATA))


def test_a_manifest_put_answered_with_another_digest_fails(rsps: responses.RequestsMock) -> None:
    m = build_image("push-client").manifest
    rsps.add(responses.PUT, f"{BASE}/v2/team/app/manifests/1.0", status=201,
             headers={"Docker-Content-Digest": str(Digest.of(b"not it"))})
    with pytest.raises(DigestMismatch):
        client([]).manifest_put("team/app", "1.0", m)
    put = [c for c in rsps.calls if c.request.method == "PUT"][0]
    assert put.request.body == m.raw and put.request.headers["Content-Type"] == m.media_type


@pytest.mark.parametrize("location", ["https://storage.example/upload/u1", "http://reg.example/v2/team/app/u1"])
def test_an_upload_location_off_the_registry_gets_no_bytes_and_no_credentials(
        rsps: responses.RequestsMock, location: str) -> None:
    rsps.add(responses.POST, UPLOADS, status=202, headers={"Location": location})
    with pytest.raises(RegistryError, match="upload location is not on the registry"):
        client([]).blob_upload("team/app", DIGEST, iter([DATA]), len(DATA))
    assert [c.request.method for c in rsps.calls if "uploads" in (c.request.url or "")] == ["POST"]


def test_a_lost_patch_is_resumed_from_the_range_the_registry_reports(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, UPLOADS, status=202, headers={"Location": SESSION})
    rsps.add(responses.PATCH, SESSION, status=202, headers={"Location": SESSION, "Range": "0-4095"})
    rsps.add(responses.PATCH, SESSION, body=requests.ConnectionError("reset"))  # the second chunk's answer is lost
    # ... but the registry got 1,000 bytes of it
    rsps.add(responses.GET, SESSION, status=204, headers={"Range": "0-5095", "Location": SESSION})
    rsps.add(responses.PATCH, SESSION, status=202, headers={"Location": SESSION, "Range": "0-8191"})
    rsps.add(responses.PATCH, SESSION, status=202, headers={"Location": SESSION, "Range": "0-10239"})
    rsps.add(responses.PUT, SESSION, status=201, headers={"Docker-Content-Digest": str(DIGEST)})
    sleeps: list[float] = []
    sent = client(sleeps, chunk=4096).blob_upload(
        "team/app", DIGEST, iter([DATA[:3000], DATA[3000:]]), len(DATA))
    assert sent == len(DATA)
    patches = [c.request for c in rsps.calls if c.request.method == "PATCH"]
    assert [p.headers["Content-Range"] for p in patches] == ["0-4095", "4096-8191", "5096-8191", "8192-10239"]
    # what the registry holds: the first chunk, the 1,000 bytes of the lost one, the rest of it, the last
    bodies = [bytes(p.body or b"") for p in patches]  # type: ignore[arg-type]
    assert bodies[0] + bodies[1][:1000] + bodies[2] + bodies[3] == DATA
    assert sleeps == [0.5]
    put = [c.request for c in rsps.calls if c.request.method == "PUT"][0]
    assert (put.url or "").endswith(f"?digest={str(DIGEST).replace(':', '%3A')}")


def test_a_mount_the_registry_refuses_cancels_its_session(rsps: responses.RequestsMock) -> None:
    rsps.add(responses.POST, UPLOADS, status=202, headers={"Location": SESSION})
    rsps.add(responses.DELETE, SESSION, status=204)
    assert client([]).blob_mount("team/app", DIGEST, "team/base") is False
    post = [c.request for c in rsps.calls if c.request.method == "POST"][0]
    assert f"mount={str(DIGEST).replace(':', '%3A')}&from=team%2Fbase" in (post.url or "")
    assert [c.request.method for c in rsps.calls if c.request.url == SESSION] == ["DELETE"]
