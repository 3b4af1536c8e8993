"""Crane mode's routing table: every branch of the Accept negotiation
(docs/original-system.md, "Manifest negotiation"), the v2 / v1 / admin routes and the
error bodies (docs/original-system.md, "Crane routes"), through the pure ``handle``
function."""

from __future__ import annotations

import hmac
import json
from dataclasses import replace

import pytest

from reconciler.model import mediatypes as mt
from reconciler.server.crane.appfile import AppFile
from reconciler.server.crane.config import CraneConfig
from reconciler.server.crane.index import Snapshot
from reconciler.server.crane.negotiate import choose_manifest, parse_accept
from reconciler.server.crane.routes import handle
from reconciler.server.crane.values import CraneRequest, Reply

S2, LIST, S1 = mt.DOCKER_SCHEMA2, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_SCHEMA1_SIGNED
D_LIST, D_S2, D_AMD = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
URL = "https://cdn.example.com/pulp/docker/v2/synctest/"

V4 = AppFile(path="v4.json", version=4, registry_id="pulpdemo/synctest", url=URL, repository="synctest",
             schema2_data=frozenset({D_S2, "latest", "s2only", "both"}),
             manifest_list_data=frozenset({D_LIST, "multi", "multi1", "multi2", "both"}),
             amd64_tags={"multi": (D_AMD, 2), "multi1": (D_AMD, 1), "both": (D_AMD, 2)})
V3 = AppFile(path="v3.json", version=3, registry_id="old/v3", url=URL, schema2_data=frozenset({"latest"}))
V3_EMPTY = replace(V3, registry_id="old/v3empty", schema2_data=frozenset())
V4_EMPTY = replace(V4, registry_id="old/v4empty", schema2_data=frozenset(), manifest_list_data=frozenset(),
                   amd64_tags={})
V2 = AppFile(path="v2.json", version=2, registry_id="old/v2", url=URL.rstrip("/"))

ALL = frozenset({S2, LIST, S1})
NONE: frozenset[str] = frozenset()


@pytest.mark.parametrize(("app", "ref", "accept", "path", "media_type"), [
    # 1. a version 2 file: flat layout, whatever the client accepts
    (V2, "latest", ALL, "manifests/latest", None),
    # 1. a v3/v4 file listing nothing: everything is schema1
    (V3_EMPTY, "latest", ALL, "manifests/1/latest", None),
    (V4_EMPTY, "latest", ALL, "manifests/1/latest", None),
    # 2. list accepted and listed (tag or digest)
    (V4, "multi", ALL, "manifests/list/multi", LIST),
    (V4, D_LIST, frozenset({LIST}), f"manifests/list/{D_LIST}", LIST),
    (V4, "both", ALL, "manifests/list/both", LIST),
    # 3. list not accepted, tag of a list with an amd64 child
    (V4, "multi", frozenset({S2, S1}), f"manifests/2/{D_AMD}", S2),             # s2 accepted, v2 child
    (V4, "multi1", frozenset({S2}), f"manifests/1/{D_AMD}", None),              # s2 accepted, v1 child
    (V4, "multi1", frozenset({S1}), f"manifests/1/{D_AMD}", None),              # s2 not accepted, v1 child
    (V4, "multi", frozenset({S1}), "manifests/1/multi", None),                  # s2 not accepted, v2 child
    (V4, "multi", NONE, "manifests/1/multi", None),                             # an old client
    (V4, "both", frozenset({S2}), f"manifests/2/{D_AMD}", S2),                  # step 3 wins over step 4
    # a list digest asked by a list-unaware client: the amd64 table has tags only -> schema1
    (V4, D_LIST, frozenset({S2}), f"manifests/1/{D_LIST}", None),
    # a list tag without amd64 child, list not accepted -> 5
    (V4, "multi2", frozenset({S2}), "manifests/1/multi2", None),
    # 4. schema2 accepted and listed
    (V4, "latest", ALL, "manifests/2/latest", S2),
    (V4, D_S2, frozenset({S2}), f"manifests/2/{D_S2}", S2),
    (V3, "latest", frozenset({S2}), "manifests/2/latest", S2),
    # 5. everything else is schema1
    (V4, "latest", frozenset({S1}), "manifests/1/latest", None),                # s2 not accepted
    (V4, "latest", frozenset({LIST}), "manifests/1/latest", None),              # only lists accepted
    (V4, "oldtag", ALL, "manifests/1/oldtag", None),                            # listed nowhere
    (V3, "latest", NONE, "manifests/1/latest", None),
    (V3, "latest", frozenset({LIST}), "manifests/1/latest", None),              # v3 knows no lists
], ids=["v2-flat", "v3-empty", "v4-empty", "list-tag", "list-digest", "list-beats-s2",
        "amd64-s2", "amd64-v1-s2-accepted", "amd64-v1", "amd64-s1-fallback", "amd64-no-accept", "amd64-beats-s2",
        "list-digest-old-client", "list-no-amd64", "s2-tag", "s2-digest", "v3-s2",
        "s2-not-accepted", "list-only-accept", "unlisted", "v3-no-accept", "v3-list-accept"])
def test_negotiation(app: AppFile, ref: str, accept: frozenset[str], path: str, media_type: str | None) -> None:
    assert choose_manifest(app, ref, accept) == (path, media_type)


@pytest.mark.parametrize(("header", "expected"), [
    (None, set()),
    ("", set()),
    (S2, {S2}),
    (f"{S2}, {LIST};q=0.9 ,{S1}; q=0.5", {S2, LIST, S1}),   # parameters dropped, spaces trimmed
    (f"{S1},{S2}", {S1, S2}),                                # two Accept headers joined by WSGI
], ids=["absent", "empty", "one", "params", "joined"])
def test_parse_accept(header: str | None, expected: set[str]) -> None:
    assert parse_accept(header) == expected


V1 = AppFile(path="v1.json", version=1, registry_id="busybox", url="https://h/pulp/docker/v1/busybox",
             repository="busybox", images=("img1", "img2"), tags={"latest": "img1"})
V1_SECRET = AppFile(path="s.json", version=1, registry_id="ns/secret", url="https://h/v1/secret/",
                    protected=True, repository="secret", images=("img2", "img3"), tags={"x": "img3"})
V4_SECRET = replace(V4, registry_id="ns/secret", protected=True)
SNAP = Snapshot(v1={"busybox": V1, "ns/secret": V1_SECRET},
                v2={a.registry_id: a for a in (V4, V3, V2, V4_SECRET, replace(V4, registry_id="x/blobstore"))},
                images={"img1": ("busybox",), "img2": ("busybox", "ns/secret"), "img3": ("ns/secret",)})
CFG = CraneConfig()


def call(path: str, *, accept: str | None = None, method: str = "GET", authorised: bool = False,
         config: CraneConfig = CFG, query: dict[str, list[str]] | None = None) -> Reply:
    return handle(SNAP, config, CraneRequest(method=method, path=path, query=query or {}, accept=accept,
                                             host="crane.example.com:5000",
                                             user="alice" if authorised else None))


NOT_FOUND_V2 = {"errors": [{"code": "404", "message": "Not Found"}]}


@pytest.mark.parametrize(("path", "accept", "location"), [
    ("/v2/pulpdemo/synctest/manifests/latest", f"{S2},{LIST}", URL + "manifests/2/latest"),
    ("/v2/pulpdemo/synctest/manifests/multi", LIST, URL + "manifests/list/multi"),
    ("/v2/pulpdemo/synctest/manifests/multi", None, URL + "manifests/1/multi"),
    (f"/v2/pulpdemo/synctest/blobs/{D_S2}", None, URL + f"blobs/{D_S2}"),
    ("/v2/pulpdemo/synctest/tags/list", None, URL + "tags/list"),
    ("/v2/old/v2/manifests/latest", S2, URL + "manifests/latest"),        # url without '/' gets one
    ("/v2/x/blobstore/manifests/latest", S2, URL + "manifests/2/latest"),  # Crane split at 'blobs' here
], ids=["s2", "list", "old-client", "blob", "tags", "v2-flat", "name-with-keyword"])
def test_v2_redirects(path: str, accept: str | None, location: str) -> None:
    reply = call(path, accept=accept)
    assert (reply.status, reply.headers["Location"]) == (302, location)
    assert reply.headers["Content-Type"].startswith("text/html") and location.encode() in reply.body
    assert "Docker-Distribution-API-Version" not in reply.headers   # only 200s carry it


@pytest.mark.parametrize("path", [
    "/v2/nope/manifests/latest",                        # unknown name
    "/v2/ns/secret/manifests/latest",                   # protected, not authorised: hidden
    "/v2/pulpdemo/synctest",                            # no file part
    "/v2/pulpdemo/synctest/manifests",
    "/v2/pulpdemo/synctest/layers/x",
    "/v2/pulpdemo/synctest/tags/other",
    "/v2/pulpdemo/synctest/blobs/latest",               # not a digest
    "/v2/pulpdemo/synctest/manifests/..",               # not a tag or digest
    "/v2/pulpdemo/synctest/manifests/",
    "/v2/busybox/manifests/latest",                     # v1 app files are not served on v2
], ids=["unknown", "protected", "no-file", "no-ref", "bad-kind", "bad-tags", "bad-digest", "dotdot", "empty-ref",
        "v1-repo"])
def test_v2_not_found(path: str) -> None:
    reply = call(path, accept=S2)
    assert reply.status == 404
    assert reply.headers["Content-Type"] == "application/json"
    assert json.loads(reply.body) == NOT_FOUND_V2


def test_v2_base_and_protected_with_credentials() -> None:
    base = call("/v2/")
    assert (base.status, base.body, base.headers["Docker-Distribution-API-Version"]) == (200, b"{}", "registry/2.0")
    assert call("/v2/ns/secret/manifests/latest", accept=S2, authorised=True).status == 302


def test_v2_write_is_405_with_crane_error_body() -> None:
    reply = call("/v2/pulpdemo/synctest/manifests/latest", method="PUT")
    assert (reply.status, reply.headers["Allow"]) == (405, "GET, HEAD")
    assert json.loads(reply.body) == {"errors": [{"code": "405", "message": "Method Not Allowed"}]}


def test_catalog_lists_visible_v2_names_with_paging() -> None:
    everything = json.loads(call("/v2/_catalog").body)["repositories"]
    assert everything == sorted(["pulpdemo/synctest", "old/v3", "old/v2", "x/blobstore"])
    page = call("/v2/_catalog", query={"n": ["2"]})
    assert json.loads(page.body)["repositories"] == ["old/v2", "old/v3"]
    assert page.headers["Link"] == '</v2/_catalog?n=2&last=old/v3>; rel="next"'
    assert "ns/secret" in json.loads(call("/v2/_catalog", authorised=True).body)["repositories"]


@pytest.mark.parametrize("n", ["²", "9" * 5000, "-1", "two"])
def test_catalog_refuses_a_bad_page_size_with_400(n: str) -> None:
    """The registry's own check of ``n``: '²' passes str.isdigit() and then broke int()
    (a 500), as did a number thousands of digits long."""
    reply = call("/v2/_catalog", query={"n": [n]})
    assert reply.status == 400


def test_cdn_url_rewrite() -> None:
    config = CraneConfig(url_match="https://cdn.example.com/", url_replace="https://mirror.example.org/")
    reply = call("/v2/pulpdemo/synctest/tags/list", config=config)
    assert reply.headers["Location"] == "https://mirror.example.org/pulp/docker/v2/synctest/tags/list"


@pytest.mark.parametrize("algo", ["sha256", "sha1", "md5"])
def test_cdn_auth_token(algo: str) -> None:
    """``?_auth_=exp=<now+ttl>~hmac=<hex>`` over ``exp=<exp>~url=<path>`` with the
    hex-decoded secret, computed after the URL rewrite (11.1)."""
    config = CraneConfig(url_match="cdn.example.com", url_replace="edge.example.net",
                         url_auth_secret="0a1b2c3d", url_auth_ttl=300, url_auth_algo=algo)
    reply = handle(SNAP, config, CraneRequest("GET", "/v2/pulpdemo/synctest/tags/list", time=1_700_000_000.7))
    path = "/pulp/docker/v2/synctest/tags/list"
    mac = hmac.new(bytes.fromhex("0a1b2c3d"), f"exp=1700000300~url={path}".encode(), algo).hexdigest()
    assert reply.headers["Location"] == f"https://edge.example.net{path}?_auth_=exp=1700000300~hmac={mac}"


def test_serve_content_names_the_file_under_the_repository_id() -> None:
    config = CraneConfig(serve_content=True, content_dir_v2="/srv/v2", content_dir_v1="/srv/v1")
    reply = call("/v2/pulpdemo/synctest/manifests/multi", accept=LIST, config=config)
    assert (reply.status, reply.file, reply.kind, reply.headers["Content-Type"]) == (
        200, "/srv/v2/synctest/manifests/list/multi", "manifest", LIST)
    blob = call(f"/v2/pulpdemo/synctest/blobs/{D_S2}", config=config)
    assert (blob.file, blob.headers["Content-Type"]) == (f"/srv/v2/synctest/blobs/{D_S2}", "application/octet-stream")
    layer = call("/v1/images/img1/layer", config=config)
    assert (layer.file, layer.headers["Content-Type"]) == ("/srv/v1/busybox/img1/layer", "application/octet-stream")


@pytest.mark.parametrize("repository", [None, "..", "a/b", ".hidden"], ids=["missing", "dotdot", "slash", "dot"])
def test_serve_content_refuses_unsafe_repository_ids(repository: str | None) -> None:
    """``repository`` comes from a file on disk: it may only ever be one plain component."""
    config = CraneConfig(serve_content=True, content_dir_v2="/srv/v2")
    snap = Snapshot(v2={"evil": replace(V4, registry_id="evil", repository=repository)})
    reply = handle(snap, config, CraneRequest("GET", "/v2/evil/tags/list"))
    assert reply.status == 404 and reply.file is None


V1_HEADERS = {"X-Docker-Registry-Version": "0.6.6", "X-Docker-Registry-Config": "common"}


@pytest.mark.parametrize(("method", "path", "status", "body"), [
    ("GET", "/v1/_ping", 200, True),
    ("GET", "/v1/users", 200, "OK"),
    ("GET", "/v1/users/", 200, "OK"),
    ("POST", "/v1/users/", 201, "User Created"),
    ("GET", "/v1/repositories/busybox/images", 200, [{"id": "img1"}, {"id": "img2"}]),
    ("GET", "/v1/repositories/library/busybox/images", 200, [{"id": "img1"}, {"id": "img2"}]),
    ("GET", "/v1/repositories/busybox/tags", 200, {"latest": "img1"}),
    ("GET", "/v1/repositories/library/busybox/tags", 200, {"latest": "img1"}),
    ("GET", "/v1/repositories/busybox/tags/latest", 200, "img1"),
], ids=["ping", "users", "users-slash", "users-post", "images", "images-library", "tags", "tags-library", "tag"])
def test_v1_ok(method: str, path: str, status: int, body: object) -> None:
    reply = call(path, method=method)
    assert (reply.status, json.loads(reply.body)) == (status, body)
    assert V1_HEADERS.items() <= reply.headers.items()
    assert reply.headers["Content-Type"] == "application/json"


def test_v1_endpoints_header() -> None:
    assert call("/v1/repositories/busybox/images").headers["X-Docker-Endpoints"] == "crane.example.com:5000"
    configured = call("/v1/repositories/busybox/images", config=CraneConfig(endpoint="registry.example.com"))
    assert configured.headers["X-Docker-Endpoints"] == "registry.example.com"
    assert call("/v1/_ping").headers["X-Docker-Registry-Standalone"] == "True"


@pytest.mark.parametrize(("path", "status"), [
    ("/v1/repositories/a/b/c/images", 404),              # more than one '/'
    ("/v1/repositories/nope/tags", 404),
    ("/v1/repositories/busybox/tags/missing", 404),
    ("/v1/repositories/ns/secret/tags", 404),            # protected, not authorised
    ("/v1/images/img1/other", 404),                       # not ancestry/json/layer
    ("/v1/images/unknown/json", 404),
    ("/v1/images/img3/json", 404),                        # only in a protected repository
    ("/v1/search", 400),                                  # q is required
    ("/v1/search?q=x", 404),                              # no search backend
    ("/v1/nothing", 404),
], ids=["deep-name", "unknown", "unknown-tag", "protected", "bad-file", "unknown-image", "protected-image",
        "search-no-q", "search", "unknown-route"])
def test_v1_errors(path: str, status: int) -> None:
    path, _, q = path.partition("?")
    reply = call(path, query={"q": [q[2:]]} if q else None)
    assert reply.status == status
    assert V1_HEADERS.items() <= reply.headers.items()
    assert not reply.headers["Content-Type"].startswith("application/json")   # plain reason phrase


@pytest.mark.parametrize(("image", "authorised", "location"), [
    ("img1", False, "https://h/pulp/docker/v1/busybox/img1/ancestry"),
    ("img2", False, "https://h/pulp/docker/v1/busybox/img2/ancestry"),   # the unprotected holder
    ("img3", True, "https://h/v1/secret/img3/ancestry"),
], ids=["plain", "first-visible", "authorised"])
def test_v1_image_redirects(image: str, authorised: bool, location: str) -> None:
    reply = call(f"/v1/images/{image}/ancestry", authorised=authorised)
    assert (reply.status, reply.headers["Location"]) == (302, location)


BUSYBOX = {"image_ids": ["img1", "img2"], "tags": {"latest": "img1"}, "protected": False}
SECRET_V1 = {"image_ids": ["img2", "img3"], "tags": {"x": "img3"}, "protected": True}
PUBLIC_V2 = {"old/v2": {"protected": False}, "old/v3": {"protected": False},
             "pulpdemo/synctest": {"protected": False}, "x/blobstore": {"protected": False}}


@pytest.mark.parametrize(("path", "authorised", "expected"), [
    ("/crane/repositories", True, {"busybox": BUSYBOX, "ns/secret": SECRET_V1}),
    ("/crane/repositories/v1", True, {"busybox": BUSYBOX, "ns/secret": SECRET_V1}),
    ("/crane/repositories/v2", True, {"ns/secret": {"protected": True}, **PUBLIC_V2}),
    # anonymous clients see the public repositories only: Crane showed protected ones'
    # names, v1 tags and image ids to anyone
    ("/crane/repositories", False, {"busybox": BUSYBOX}),
    ("/crane/repositories/v1", False, {"busybox": BUSYBOX}),
    ("/crane/repositories/v2", False, PUBLIC_V2),
], ids=["default", "v1", "v2", "default-anonymous", "v1-anonymous", "v2-anonymous"])
def test_admin_views(path: str, authorised: bool, expected: dict[str, object]) -> None:
    reply = call(path, accept="application/json", authorised=authorised)
    assert (reply.status, json.loads(reply.body)) == (200, expected)
    page = call(path, accept="text/html,application/json", authorised=authorised)  # JSON only for exactly that
    assert page.headers["Content-Type"].startswith("text/html") and b"<table>" in page.body
    assert (b"ns/secret" in page.body) is authorised


def test_v1_routes_follow_the_access_rules() -> None:
    """A valid user the access rules do not grant a protected v1 repository gets Crane's
    404 for it and for its image files; a granted one gets them."""
    from pathlib import Path

    from reconciler.server.access import AccessRules, Rule, compile_pattern

    access = AccessRules(Path("access.yaml"), (Rule("ns/*", frozenset({"alice"}), 2, compile_pattern("ns/*")),))

    def v1(path: str, user: str) -> int:
        return handle(SNAP, CFG, CraneRequest(method="GET", path=path, user=user, access=access)).status

    assert v1("/v1/repositories/ns/secret/tags", "bob") == 404
    assert v1("/v1/repositories/ns/secret/tags", "alice") == 200
    assert v1("/v1/images/img3/ancestry", "bob") == 404
    assert v1("/v1/images/img3/ancestry", "alice") == 302
