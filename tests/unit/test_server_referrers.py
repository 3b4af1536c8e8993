"""``GET /v2/<name>/referrers/<digest>`` in-process (WSGI), on both backends: the index of
descriptors, the artifactType filter and its header, an unknown digest, paging by
``Link``, only the published version, access rules; and the tag-schema and cosign tags
served as ordinary tags."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from reconciler.model import Descriptor, Digest
from reconciler.model import mediatypes as mt
from reconciler.server import RegistryApp, referrers
from tests.support import supplychain as sc
from tests.support.imagegen import build_image, build_multiarch
from tests.support.narrow import narrow
from tests.support.serving import backend_opener, commit_tags, wsgi_call


class World:
    def __init__(self) -> None:
        self.image = build_image("app", oci=True)
        self.multi = build_multiarch("multi", oci=True)
        self.sbom = sc.oci_referrer(self.image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}',
                                    annotations={"org.opencontainers.image.created": "2026-12-03T05:00:00Z"})
        self.bundle = sc.oci_referrer(self.image, sc.SIGSTORE_BUNDLE, b'{"sig":1}')
        self.old_style = sc.oci_referrer(self.image, "application/vnd.example.scan", b"scan", empty_config=False,
                                         config_type="application/vnd.example.scan.config.v1+json")
        self.on_index = sc.oci_referrer(self.multi, sc.SPDX, b'{"spdxVersion":"SPDX-2.3","x":1}')
        self.cosign_sig = sc.cosign_signature(self.image)
        self.tag_index = sc.tag_schema_index([self.sbom, self.bundle])
        self.later = sc.oci_referrer(self.image, sc.IN_TOTO, b'{"later":1}')


Served = tuple[RegistryApp, World]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("referrers")
    w = World()
    with backend_opener(request, root) as opener:
        store = opener()
        tags = {"1.0": w.image, "multi": w.multi, sc.cosign_tag(w.image.digest): w.cosign_sig,
                sc.tag_schema_tag(w.image.digest): w.tag_index}
        extra = (w.sbom, w.bundle, w.old_style, w.on_index)
        v = commit_tags(store, "app", tags, extra=extra)
        store.publish("app", name="team/app", version=v, protected=False)
        # a newer, unpublished version with one more referrer: not served
        commit_tags(store, "app", tags, extra=(*extra, w.later))
        app = RegistryApp(opener)
        yield app, w
        app.close()
        store.close()


def get(app: RegistryApp, path: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
    return wsgi_call(app, "GET", path, query=query)


def descriptors(body: bytes) -> list[dict[str, Any]]:
    """The descriptors of a referrers response (JSON: their values are str, int or a map)."""
    doc = json.loads(body)
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == mt.OCI_INDEX
    listed: list[dict[str, Any]] = doc["manifests"]
    return listed


def test_referrers_of_an_image(served: Served) -> None:
    app, w = served
    status, headers, body = get(app, f"/v2/team/app/referrers/{w.image.digest}")
    assert status == 200 and headers["Content-Type"] == mt.OCI_INDEX
    assert int(headers["Content-Length"]) == len(body) and "OCI-Filters-Applied" not in headers
    want = sorted([w.sbom, w.bundle, w.old_style], key=lambda i: str(i.digest))
    assert descriptors(body) == [sc.referrer_descriptor(i) for i in want]
    by_digest = {d["digest"]: d for d in descriptors(body)}
    assert by_digest[str(w.sbom.digest)]["annotations"] == {"org.opencontainers.image.created": "2026-12-03T05:00:00Z"}
    # without artifactType, the config's media type is listed
    assert by_digest[str(w.old_style.digest)]["artifactType"] == "application/vnd.example.scan.config.v1+json"
    # the referrer added in an unpublished version is not served
    assert str(w.later.digest) not in by_digest


def test_referrers_of_an_index_and_of_a_referrer(served: Served) -> None:
    app, w = served
    _, _, body = get(app, f"/v2/team/app/referrers/{w.multi.digest}")
    assert [d["digest"] for d in descriptors(body)] == [str(w.on_index.digest)]
    _, _, body = get(app, f"/v2/team/app/referrers/{w.sbom.digest}")
    assert descriptors(body) == []


def test_artifact_type_filter(served: Served) -> None:
    app, w = served
    status, headers, body = get(app, f"/v2/team/app/referrers/{w.image.digest}",
                                 urlencode({"artifactType": sc.SPDX}))
    assert status == 200 and headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["digest"] for d in descriptors(body)] == [str(w.sbom.digest)]
    _, headers, body = get(app, f"/v2/team/app/referrers/{w.image.digest}", "artifactType=text/nothing")
    assert headers["OCI-Filters-Applied"] == "artifactType" and descriptors(body) == []


def test_unknown_digest_is_an_empty_index_and_bad_ones_are_refused(served: Served) -> None:
    app, _ = served
    status, headers, body = get(app, f"/v2/team/app/referrers/{Digest.of(b'nothing')}")
    assert (status, descriptors(body)) == (200, []) and headers["Content-Type"] == mt.OCI_INDEX
    status, _, body = get(app, "/v2/team/app/referrers/sha256:abc")
    assert status == 400 and json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
    status, _, body = get(app, f"/v2/team/nothing/referrers/{Digest.of(b'x')}")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN"


def test_pages_follow_the_link(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    app, w = served
    monkeypatch.setattr(referrers, "PAGE", 2)
    path, query, seen = f"/v2/team/app/referrers/{w.image.digest}", "", []
    for _ in range(5):
        status, headers, body = get(app, path, query)
        assert status == 200
        seen += [d["digest"] for d in descriptors(body)]
        if "Link" not in headers:
            break
        assert len(descriptors(body)) == 2 and headers["Link"].endswith('>; rel="next"')
        url = urlsplit(headers["Link"][1:].split(">")[0])
        path, query = url.path, url.query
    assert seen == sorted(str(i.digest) for i in (w.sbom, w.bundle, w.old_style))
    # the filter applies before paging: one SPDX referrer, one page
    _, headers, _ = get(app, f"/v2/team/app/referrers/{w.image.digest}", urlencode({"n": 1, "artifactType": sc.SPDX}))
    assert "Link" not in headers


def test_tag_schema_and_cosign_tags_are_ordinary_tags(served: Served) -> None:
    app, w = served
    _, _, body = get(app, "/v2/team/app/tags/list")
    tags = json.loads(body)["tags"]
    assert sc.cosign_tag(w.image.digest) in tags and sc.tag_schema_tag(w.image.digest) in tags
    for tag, img in ((sc.cosign_tag(w.image.digest), w.cosign_sig), (sc.tag_schema_tag(w.image.digest), w.tag_index)):
        status, headers, body = wsgi_call(app, "GET", f"/v2/team/app/manifests/{tag}",
                                          headers={"Accept": mt.ACCEPT_ALL})
        assert (status, body) == (200, img.manifest.raw)
        assert headers["Docker-Content-Digest"] == str(img.digest)
    # the simple-signing layer and the empty config are served as blobs
    empty_config = narrow(Descriptor, sc.oci_referrer(w.image, sc.SPDX, b"").manifest.config)
    for blob in (*w.cosign_sig.blobs, str(empty_config.digest)):
        status, _, data = get(app, f"/v2/team/app/blobs/{blob}")
        assert status == 200 and Digest.of(data) == Digest.parse(blob)


