"""Pure parsers of the registry client: WWW-Authenticate, auth.json, Link, Retry-After,
registry URLs, Docker Hub names, retry waits and error classification."""

from __future__ import annotations

import base64
import email.utils
import json

import pytest

from reconciler.errors import ConfigError, RegistryError
from reconciler.model.reference import normalize_upstream_name
from reconciler.model.registry import RegistryConfig
from reconciler.registry.auth import Challenge, Credentials, TokenCache, parse_auth_json, parse_www_authenticate
from reconciler.registry.retry import RetryPolicy
from reconciler.registry.session import base_url, make_session, url_credentials
from reconciler.registry.transport import parse_link_next, parse_retry_after, resolve_link
from tests.support.options import TLSOptions

HUB = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'

WWW_AUTH = [
    ("docker-hub", HUB, [Challenge("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                                              "scope": "repository:library/busybox:pull"})]),
    ("comma-in-scope", 'Bearer realm="https://a/t",scope="repository:x:pull,push"',
     [Challenge("bearer", {"realm": "https://a/t", "scope": "repository:x:pull,push"})]),
    ("spaces-and-case", 'BEARER  Realm = "https://a/t" , Service="s"',
     [Challenge("bearer", {"realm": "https://a/t", "service": "s"})]),
    ("basic", 'Basic realm="Registry Realm"', [Challenge("basic", {"realm": "Registry Realm"})]),
    ("basic-and-bearer", 'Basic realm="r", Bearer realm="https://a/t",service="s"',
     [Challenge("basic", {"realm": "r"}), Challenge("bearer", {"realm": "https://a/t", "service": "s"})]),
    ("unquoted-values", "Bearer realm=https://a/t,service=reg", [Challenge("bearer", {"realm": "https://a/t",
                                                                                      "service": "reg"})]),
    ("escaped-quote", r'Basic realm="say \"hi\""', [Challenge("basic", {"realm": 'say "hi"'})]),
    ("error-param", 'Bearer realm="https://a/t",error="insufficient_scope",scope="repository:x:pull"',
     [Challenge("bearer", {"realm": "https://a/t", "error": "insufficient_scope", "scope": "repository:x:pull"})]),
    ("scheme-only", "Negotiate", [Challenge("negotiate", {})]),
    ("token68", "Negotiate abc123==", [Challenge("negotiate", {"": "abc123=="})]),
    ("unterminated-quote", 'Bearer realm="https://a/t', [Challenge("bearer", {"realm": "https://a/t"})]),
    ("empty", "", []),
    ("none", None, []),
]


@pytest.mark.parametrize(("header", "expected"), [(h, e) for _, h, e in WWW_AUTH], ids=[i for i, _, _ in WWW_AUTH])
def test_parse_www_authenticate(header: str | None, expected: list[Challenge]) -> None:
    assert parse_www_authenticate(header) == expected


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


AUTH_JSON = [
    ("auth-field", {"auths": {"reg.example:5000": {"auth": _b64("u:p:with:colons")}}}, "reg.example:5000",
     Credentials("u", "p:with:colons")),
    ("username-password", {"auths": {"reg.example": {"username": "u", "password": "p"}}}, "reg.example",
     Credentials("u", "p")),
    ("url-key", {"auths": {"https://reg.example/v2/": {"auth": _b64("u:p")}}}, "reg.example", Credentials("u", "p")),
    ("docker-hub-v1-key", {"auths": {"https://index.docker.io/v1/": {"auth": _b64("hub:tok")}}},
     "registry-1.docker.io", Credentials("hub", "tok")),
    ("other-host", {"auths": {"other.example": {"auth": _b64("u:p")}}}, "reg.example", None),
    ("identity-token-only", {"auths": {"reg.example": {"identitytoken": "x"}}}, "reg.example", None),
    ("case-insensitive-host", {"auths": {"REG.Example": {"auth": _b64("u:p")}}}, "reg.example", Credentials("u", "p")),
]


@pytest.mark.parametrize(("doc", "host", "expected"), [(d, h, e) for _, d, h, e in AUTH_JSON],
                         ids=[i for i, *_ in AUTH_JSON])
def test_parse_auth_json(doc: dict[str, object], host: str, expected: Credentials | None) -> None:
    assert parse_auth_json(json.dumps(doc), host) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"credHelpers": {}}', "no 'auths'"),
    ('{"auths": {"reg.example": {"auth": "!!!"}}}', "not base64"),
    (json.dumps({"auths": {"reg.example": {"auth": _b64("nocolon")}}}), "user:password"),
], ids=["bad-json", "no-auths", "bad-base64", "no-colon"])
def test_parse_auth_json_errors_name_the_file(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        parse_auth_json(text, "reg.example", source="/home/u/auth.json")
    assert "/home/u/auth.json" in str(err.value)


def test_credentials_repr_hides_password() -> None:
    assert "hunter2" not in repr(Credentials("bob", "hunter2"))


LINKS = [
    ("relative", '</v2/x/tags/list?n=2&last=b>; rel="next"', "/v2/x/tags/list?n=2&last=b"),
    ("absolute", '<https://reg.example/v2/x/tags/list?last=b&n=2>; rel="next"',
     "https://reg.example/v2/x/tags/list?last=b&n=2"),
    ("unquoted-rel", "</v2/x/tags/list?last=b>; rel=next", "/v2/x/tags/list?last=b"),
    ("several-links", '</first>; rel="first", </v2/x/tags/list?last=c>; rel="next"', "/v2/x/tags/list?last=c"),
    ("no-next", '</v2/x/tags/list?last=a>; rel="prev"', None),
    ("missing", None, None),
]


@pytest.mark.parametrize(("header", "expected"), [(h, e) for _, h, e in LINKS], ids=[i for i, *_ in LINKS])
def test_parse_link_next(header: str | None, expected: str | None) -> None:
    assert parse_link_next(header) == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("/v2/x/tags/list?n=2&last=b", "https://reg.example/v2/x/tags/list?n=2&last=b"),
    ("https://evil.example/v2/x/tags/list?last=b", "https://reg.example/v2/x/tags/list?last=b"),
    ("v2/x/tags/list?last=b", "https://reg.example/v2/x/tags/list?last=b"),
], ids=["relative", "absolute-other-host-stays-on-registry", "no-leading-slash"])
def test_resolve_link_stays_on_the_registry(target: str, expected: str) -> None:
    assert resolve_link("https://reg.example", target) == expected


NOW = 1_700_000_000.0


@pytest.mark.parametrize(("value", "expected"), [
    ("7", 7.0),
    ("0", 0.0),
    ("1.5", 1.5),
    (email.utils.formatdate(NOW + 42, usegmt=True), 42.0),
    (email.utils.formatdate(NOW - 42, usegmt=True), 0.0),
    ("soon", None),
    ("", None),
    (None, None),
], ids=["seconds", "zero", "fraction", "http-date", "date-in-past", "garbage", "empty", "missing"])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(("url", "expected"), [
    ("https://reg.example/", "https://reg.example"),
    ("reg.example:5000", "https://reg.example:5000"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("https://bob:pw@reg.example/v2/", "https://reg.example"),
], ids=["trailing-slash", "no-scheme-means-https", "explicit-http", "userinfo-and-v2-dropped"])
def test_base_url(url: str, expected: str) -> None:
    assert base_url(url) == expected


def test_base_url_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError, match="scheme"):
        base_url("ftp://reg.example")


def test_url_credentials() -> None:
    assert url_credentials("https://bob:p%40ss@reg.example") == Credentials("bob", "p@ss")
    assert url_credentials("https://reg.example") is None


@pytest.mark.parametrize(("url", "name", "expected"), [
    ("https://registry-1.docker.io", "busybox", "library/busybox"),
    ("https://registry.docker.io", "busybox", "library/busybox"),
    ("docker.io", "busybox", "library/busybox"),
    ("https://registry-1.docker.io", "bitnami/redis", "bitnami/redis"),
    ("https://quay.io", "busybox", "busybox"),
    ("https://notregistry.docker.io.evil.example", "busybox", "busybox"),
    ("http://127.0.0.1:5000", "busybox", "busybox"),
], ids=["hub", "hub-alias", "docker-io", "two-components", "other-registry", "lookalike-host", "local"])
def test_normalize_upstream_name(url: str, name: str, expected: str) -> None:
    assert normalize_upstream_name(url, name) == expected


def test_retry_waits_grow_and_are_bounded() -> None:
    policy = RetryPolicy(initial=0.5, maximum=3.0, max_retry_after=60.0)
    assert [policy.wait_for(n, None) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    slow = RegistryError("GET", "https://r/v2/", 429, retry_after=600.0)
    assert policy.wait_for(1, slow) == 60.0


@pytest.mark.parametrize(("status", "temporary"), [
    (0, True), (408, True), (429, True), (500, True), (503, True), (400, False), (401, False), (403, False),
    (404, False),
], ids=lambda v: str(v))
def test_which_errors_are_temporary(status: int, temporary: bool) -> None:
    assert RegistryError("GET", "https://r/v2/", status).temporary is temporary


def test_token_cache_expiry_and_invalidation() -> None:
    now = [100.0]
    cache = TokenCache(clock=lambda: now[0])
    cache.put("repository:a:pull", "tok", 60)
    assert cache.get("repository:a:pull") == "tok" and cache.get("repository:b:pull") is None
    now[0] += 56  # within EXPIRY_MARGIN of the end: refresh early
    assert cache.get("repository:a:pull") is None
    cache.put("repository:a:pull", "tok2", None)
    cache.invalidate("repository:a:pull", "stale")  # another token: kept
    assert cache.get("repository:a:pull") == "tok2"
    cache.invalidate("repository:a:pull", "tok2")
    assert cache.get("repository:a:pull") is None


@pytest.mark.parametrize(("kw", "verify", "cert"), [
    ({}, True, None),
    ({"ca_file": "/etc/ca.pem"}, "/etc/ca.pem", None),
    ({"tls_verify": False, "ca_file": "/etc/ca.pem"}, False, None),
    ({"client_cert": "/c.pem", "client_key": "/k.pem"}, True, ("/c.pem", "/k.pem")),
    ({"client_cert": "/both.pem"}, True, "/both.pem"),
], ids=["verify-by-default", "ca-file", "verify-off", "cert-and-key", "combined-cert"])
def test_session_tls_options(kw: TLSOptions, verify: object, cert: object) -> None:
    session = make_session(RegistryConfig("https://reg.example", max_concurrency=9, **kw))
    try:
        assert session.verify == verify and session.cert == cert
        # requests keeps the pool size in a private attribute its types do not name
        assert session.get_adapter("https://reg.example")._pool_maxsize == 9  # type: ignore[attr-defined]
    finally:
        session.close()


def test_client_key_without_cert_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="client_key"):
        make_session(RegistryConfig("https://reg.example", client_key="/k.pem"))


@pytest.mark.parametrize(("url", "proxy"), [
    ("https://registry.test/v2/lib/app/manifests/v1", "http://proxy.test:3128"),
    ("http://registry.test/v2/", "http://plain-proxy.test:3128"),
    ("https://internal.test/v2/", None),  # NO_PROXY
], ids=["https", "http", "no-proxy"])
def test_session_environment_settings_are_what_requests_computes(url: str, proxy: str | None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The session works each origin's proxy/CA settings out once (requests reads the
    whole environment per request); the answers must stay those of requests itself."""
    import requests

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://plain-proxy.test:3128")
    monkeypatch.setenv("NO_PROXY", "internal.test")
    session = make_session(RegistryConfig("https://registry.test"))
    plain = requests.Session()
    try:
        for _ in range(2):  # computed, then reused
            got = session.merge_environment_settings(url, {}, True, None, None)
            assert got == plain.merge_environment_settings(url, {}, True, None, None)
            assert got["proxies"].get(url.split(":")[0]) == proxy
            got["proxies"]["https"] = "http://changed.test"  # a caller's change stays its own
    finally:
        session.close()
        plain.close()
