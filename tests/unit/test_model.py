"""Table-driven tests of the pure content model over real manifests of every media type."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from reconciler.errors import (
    DigestInvalid,
    DigestMismatch,
    InvalidInput,
    ManifestInvalid,
    NameInvalid,
    ReferenceInvalid,
    TagInvalid,
)
from reconciler.model import Digest, DigestHasher, Index, Manifest, Platform, parse_manifest, parse_reference
from reconciler.model import mediatypes as mt
from reconciler.model.reference import is_valid_tag, validate_repository_name, validate_tag
from reconciler.model.v1image import is_image_id, validate_image_id, validate_v1_tag
from tests.support.imagegen import Image, build_image, build_index, build_multiarch, build_schema1

HEX = "a" * 64


@pytest.mark.parametrize("text,ok", [
    (f"sha256:{HEX}", True),
    (f"sha512:{'b' * 128}", True),
    (f"sha256:{'A' * 64}", False),          # uppercase
    (f"sha256:{'a' * 63}", False),          # short
    (f"sha512:{'b' * 64}", False),          # wrong length for algorithm
    (f"md5:{'a' * 32}", False),             # unsupported algorithm
    ("sha256", False),
    ("", False),
    (f"sha256:{'a' * 62}..", False),
], ids=["sha256", "sha512", "upper", "short", "sha512-short", "md5", "no-colon", "empty", "dots"])
def test_digest_parse(text: str, ok: bool) -> None:
    if ok:
        assert str(Digest.parse(text)) == text
    else:
        with pytest.raises(DigestInvalid):
            Digest.parse(text)


def test_digests_made_every_way_are_one_key() -> None:
    """Equal digests hash equal whether constructed, parsed, or read back from a store
    (``parse_recorded`` skips validation and sets the cached hash itself): otherwise a set
    of stored digests would not find the digest a plan computed."""
    from reconciler.model.digest import parse_recorded

    hexpart = hashlib.sha256(b"one key").hexdigest()
    made = [Digest("sha256", hexpart), Digest.parse("sha256:" + hexpart), Digest.of(b"one key"),
            parse_recorded("sha256:" + hexpart)]
    assert len({*made}) == 1 and len({d: 1 for d in made}) == 1
    assert all(d == made[0] and hash(d) == hash(made[0]) for d in made)
    other = Digest("sha512", hashlib.sha512(b"one key").hexdigest())
    assert other not in set(made) and sorted([other, made[0]]) == [made[0], other]
    assert "_hash" not in repr(made[0])


def test_digest_streaming_and_verify() -> None:
    data = b"x" * 100000
    h = DigestHasher()
    for i in range(0, len(data), 4096):
        h.update(data[i:i + 4096])
    assert h.digest() == Digest.of(data)
    assert h.size == len(data)
    assert str(h.digest()) == "sha256:" + hashlib.sha256(data).hexdigest()
    Digest.of(data).verify(data)
    with pytest.raises(DigestMismatch):
        Digest.of(data).verify(data + b"!")
    d = Digest.of(b"x")
    assert d.short() == f"sha256:{d.hex[:12]}…"  # 12 hex digits, as docker shows ids


def _cases() -> list[tuple[str, Image, str, bool, int]]:
    docker = build_image("d")
    oci = build_image("o", oci=True)
    foreign = build_image("f", foreign=True)
    dlist = build_multiarch("l")
    oindex = build_multiarch("i", oci=True)
    nested = build_index([oindex, build_image("n", oci=True)], oci=True)
    return [
        ("schema2", docker, mt.DOCKER_SCHEMA2, False, 3),
        ("oci-manifest", oci, mt.OCI_MANIFEST, False, 3),
        ("foreign", foreign, mt.DOCKER_SCHEMA2, False, 3),
        ("manifest-list", dlist, mt.DOCKER_MANIFEST_LIST, True, 3),
        ("oci-index", oindex, mt.OCI_INDEX, True, 3),
        ("nested-index", nested, mt.OCI_INDEX, True, 2),
        ("schema1-signed", build_schema1("s"), mt.DOCKER_SCHEMA1_SIGNED, False, 1),
        ("schema1-unsigned", build_schema1("u", signed=False), mt.DOCKER_SCHEMA1, False, 1),
    ]


@pytest.mark.parametrize("name,image,media_type,is_index,refs", _cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_parse_every_media_type(name: str, image: Image, media_type: str, is_index: bool, refs: int) -> None:
    m = parse_manifest(image.manifest.raw)
    assert m.media_type == media_type
    assert m.raw == image.manifest.raw
    assert isinstance(m, Index) is is_index
    assert len(m.references()) == refs
    if not mt.is_schema1(media_type):
        assert m.digest == Digest.of(m.raw)
    if name == "foreign":
        assert isinstance(m, Manifest)
        assert len(m.foreign_layers()) == 1
        assert all(not d.foreign for d in m.blobs())
    if name == "schema1-signed":
        # the digest is over the payload without the signature block, not the raw bytes
        assert m.digest != Digest.of(m.raw)
        assert m.schema_version == 1


def test_index_amd64_child_and_platforms() -> None:
    idx = build_multiarch("p").manifest
    assert isinstance(idx, Index)
    amd = idx.amd64_child()
    assert amd is not None and str(amd.platform) == "linux/amd64"
    arm = idx.child_for(Platform.parse("linux/arm64/v8"))
    assert arm is not None and arm.platform is not None and arm.platform.variant == "v8"
    assert str(Platform.parse("linux/arm64/v8")) == "linux/arm64/v8"
    with pytest.raises(ManifestInvalid):
        Platform.parse("linux")


@pytest.mark.parametrize("raw,ctype,message", [
    (b"not json", None, "not valid JSON"),
    (b"[]", None, "JSON object"),
    (b'{"schemaVersion": 2}', None, "media type"),
    (json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_SCHEMA2, "config": {"digest": "sha256:zz"},
                 "layers": []}).encode(), None, "config"),
    (json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                 "manifests": [{"mediaType": mt.DOCKER_SCHEMA2, "digest": f"sha256:{HEX}", "size": 1}]}).encode(),
     None, "platform"),
    (json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}).encode(), mt.OCI_MANIFEST,
     "delivered as"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), None, "fsLayers"),
], ids=["garbage", "array", "unknown", "bad-config-digest", "list-no-platform",
        "type-contradiction", "schema1-empty"])
def test_parse_errors(raw: bytes, ctype: str | None, message: str) -> None:
    with pytest.raises(ManifestInvalid, match=message):
        parse_manifest(raw, ctype)


def _entry(media_type: str, hexdigit: str, **extra: object) -> dict[str, object]:
    return {"mediaType": media_type, "digest": f"sha256:{hexdigit * 64}", "size": 7, **extra}


def test_a_docker_manifest_list_may_list_oci_manifests() -> None:
    """Docker Hub serves such lists (older `buildx imagetools create` made them)."""
    amd64 = {"platform": {"os": "linux", "architecture": "amd64"}}
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST,
                      "manifests": [_entry(mt.OCI_MANIFEST, "a", **amd64),
                                    _entry(mt.DOCKER_SCHEMA2, "b", **amd64)]}).encode()
    idx = parse_manifest(raw)
    assert isinstance(idx, Index) and idx.raw == raw and idx.digest == Digest.of(raw)
    assert [d.media_type for d in idx.manifests] == [mt.OCI_MANIFEST, mt.DOCKER_SCHEMA2]
    assert idx.children() == (Digest.parse("sha256:" + "a" * 64), Digest.parse("sha256:" + "b" * 64))
    assert idx.skipped == ()


@pytest.mark.parametrize("outer", [mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST])
def test_index_entries_of_unknown_media_types_are_skipped_not_refused(outer: str) -> None:
    """The image spec: implementations MUST NOT error on an unknown mediaType. The entry
    stays in the bytes (the digest is of the bytes), but it is not a child to fetch."""
    platform = {"platform": {"os": "linux", "architecture": "amd64"}}
    raw = json.dumps({"schemaVersion": 2, "mediaType": outer,
                      "manifests": [_entry(mt.OCI_MANIFEST, "a", **platform),
                                    _entry("application/vnd.example.sbom.v1+json", "c"),
                                    {"digest": f"sha256:{'d' * 64}", "size": 3}]}).encode()
    idx = parse_manifest(raw)
    assert isinstance(idx, Index) and idx.raw == raw and idx.digest == Digest.of(raw)
    assert idx.children() == (Digest.parse("sha256:" + "a" * 64),)
    assert [d.media_type for d in idx.skipped] == ["application/vnd.example.sbom.v1+json", ""]
    # a skipped entry is still a descriptor: a malformed one is an error, as before
    bad = json.dumps({"schemaVersion": 2, "mediaType": outer,
                      "manifests": [{"mediaType": "application/vnd.example.x", "digest": "md5:00"}]}).encode()
    with pytest.raises(ManifestInvalid, match="manifests\\[0\\]"):
        parse_manifest(bad)


@pytest.mark.parametrize("name,ok", [
    ("busybox", True), ("pulpdemo/synctest", True), ("a/b/c/d", True), ("a.b_c__d--e", True),
    ("Busybox", False), ("-a", False), ("a-", False), ("a//b", False), ("/a", False), ("a/", False),
    ("a..b", False), ("a" * 256, False), ("", False), ("a___b", False),
])
def test_repository_names(name: str, ok: bool) -> None:
    if ok:
        assert validate_repository_name(name) == name
    else:
        with pytest.raises(NameInvalid):
            validate_repository_name(name)


@pytest.mark.parametrize("tag,ok", [
    ("latest", True), ("1.36.1-musl", True), ("_x", True), ("A" * 128, True),
    ("A" * 129, False), (".x", False), ("-x", False), ("a/b", False), ("", False), ("a:b", False),
])
def test_tags(tag: str, ok: bool) -> None:
    if ok:
        assert validate_tag(tag) == tag
    else:
        with pytest.raises(TagInvalid):
            validate_tag(tag)


@pytest.mark.parametrize("text,host,name,tag,digest", [
    ("busybox", None, "busybox", None, None),
    ("busybox:1.36", None, "busybox", "1.36", None),
    ("localhost:5000/a/b:t", "localhost:5000", "a/b", "t", None),
    ("registry-1.docker.io/library/busybox", "registry-1.docker.io", "library/busybox", None, None),
    (f"127.0.0.1:5000/x@sha256:{HEX}", "127.0.0.1:5000", "x", None, f"sha256:{HEX}"),
    (f"h.io/x:t@sha256:{HEX}", "h.io", "x", "t", f"sha256:{HEX}"),
    ("localhost/x", "localhost", "x", None, None),
])
def test_reference_parse(text: str, host: str | None, name: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.host, ref.name, ref.tag, str(ref.digest) if ref.digest else None) == (host, name, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize("text", ["", "UPPER/x", "x:bad/tag", "x@sha256:short", "h.io/", "x::t"])
def test_reference_errors(text: str) -> None:
    with pytest.raises(ReferenceInvalid):
        parse_reference(text)


def _accepts(check: Callable[[str], object]) -> Callable[[str], bool]:
    def accepts(text: str) -> bool:
        try:
            result = check(text)
        except InvalidInput:
            return False
        return result is not False
    return accepts


@pytest.mark.parametrize(("accepts", "valid"), [
    (_accepts(validate_repository_name), "pulpdemo/synctest"),
    (_accepts(validate_tag), "latest"),
    (is_valid_tag, "latest"),
    (_accepts(Digest.parse), "sha256:" + "a" * 64),
    (_accepts(parse_reference), "registry.example.com/ns/app:v1"),
    (_accepts(validate_image_id), "b" * 64),
    (is_image_id, "b" * 64),
    (_accepts(validate_v1_tag), "latest"),
], ids=["name", "tag", "is-tag", "digest", "reference", "v1-image-id", "is-v1-image-id", "v1-tag"])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\nX-Injected: 1"], ids=["lf", "crlf", "header"])
def test_validators_match_the_whole_text(accepts: Callable[[str], bool], valid: str, suffix: str) -> None:
    """``re.match`` with ``$`` also matches before a trailing newline: every validator must
    refuse what it would otherwise pass on into a path, a URL or a header."""
    assert accepts(valid)
    assert not accepts(valid + suffix)
