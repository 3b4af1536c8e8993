"""One ``requests.Session`` per upstream registry: connection pool, TLS options, and the
authenticated, redirect-safe sending of a single request.

``AuthSession.send`` adds the right ``Authorization`` (Basic to the registry, or a cached
Bearer token for the request's scope), answers one 401 challenge (fetching a token from the
realm, where Basic credentials go, and only there), and follows redirects itself so that a
redirect to another origin (blob storage) never carries our credentials or tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from reconciler.errors import ConfigError, RegistryError
from reconciler.model import jsonsafe
from reconciler.model.registry import RegistryConfig
from reconciler.registry.auth import (
    Challenge,
    Credentials,
    TokenCache,
    load_credentials,
    parse_www_authenticate,
    token_from_response,
)
from reconciler.registry.transport import (
    HINT_FORBIDDEN_ANONYMOUS,
    HINT_UNAUTHORIZED,
    MAX_TOKEN_BODY,
    connection_error,
    error_from_response,
    finish,
    read_limited,
    released,
)

if TYPE_CHECKING:
    from requests.sessions import _Settings

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
USER_AGENT = "reconciler-registry-client/0.1"
#: a request body (pushes): bytes, or an iterator of chunks sent once
Body = bytes | Iterator[bytes] | None


def base_url(url: str) -> str:
    """``registry.example.com`` -> ``https://registry.example.com``; plain HTTP only when
    the URL says ``http://``. ``user:password@`` is dropped (see ``url_credentials``)."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    url = urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))
    scheme = parts.scheme
    if scheme not in ("http", "https"):
        raise ConfigError(f"registry URL {url!r}: scheme must be https:// (or http:// for a plain-HTTP registry)")
    url = url.removesuffix("/v2")
    return url


def url_credentials(url: str) -> Credentials | None:
    """``https://user:pw@host`` -> Credentials("user", "pw") (percent-decoded), else None."""
    parts = urlsplit(url if "://" in url else "https://" + url)
    if parts.username is None:
        return None
    return Credentials(unquote(parts.username), unquote(parts.password or ""), source="the user:password in the URL")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.rsplit("@", 1)[-1].lower()


class _Session(requests.Session):
    """``requests.Session`` that works out each origin's environment settings once.

    For every request, ``requests`` reads the proxy variables, ``no_proxy`` and the CA
    bundle variables from ``os.environ``, iterating the whole environment twice: measured,
    a third of the CPU time of a small request (a no-change refresh makes a hundred of
    them). The environment of one plan or apply does not change while it runs, so the
    answer is kept per (scheme, host) and per the request's own settings; it is the same
    answer ``requests`` would give."""

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple[object, ...], _Settings] = {}

    def merge_environment_settings(self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> _Settings:
        if proxies or not isinstance(url, str):  # a per-request proxy map: nothing to reuse
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert if cert is None or isinstance(cert, str)
               else tuple(cert))
        found = self._environment.get(key)
        if found is None:
            found = super().merge_environment_settings(url, proxies, stream, verify, cert)
            self._environment[key] = found
        copy = found.copy()  # the caller may change what it gets
        copy["proxies"] = dict(found["proxies"])
        return copy


def make_session(config: RegistryConfig) -> requests.Session:
    """A session with a pool as large as the client's concurrency and the TLS options."""
    session = _Session()
    size = max(1, config.max_concurrency)
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = config.ca_file if (config.tls_verify and config.ca_file) else config.tls_verify
    if config.client_cert:
        session.cert = (config.client_cert, config.client_key) if config.client_key else config.client_cert
    elif config.client_key:
        raise ConfigError(f"registry {config.url}: client_key given without client_cert")
    session.headers["User-Agent"] = USER_AGENT
    # registry clients keep no cookies (docker and skopeo neither): a jar that refuses all
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


class AuthSession:
    """Authenticated sending for one registry. ``count(kind)`` is called once per HTTP request."""

    def __init__(self, config: RegistryConfig, count: Callable[[str], None], *,
                 env: Mapping[str, str] | None = None, timeout: tuple[float, float] | None = None) -> None:
        self.base = base_url(config.url)
        # env vars / auth file from the config, else user:password in the URL; read before
        # the HTTP session exists, so a bad credentials config leaves nothing to close
        self.credentials = load_credentials(config, self.host, env) or url_credentials(config.url)
        self.http = make_session(config)
        self.tokens = TokenCache()
        #: (connect, read) seconds: the registry's ``timeout`` for reads, at most 10 s to connect
        self.timeout = timeout or (min(10.0, config.timeout), config.timeout)
        self._count = count
        self._challenge: Challenge | None = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    def close(self) -> None:
        self.http.close()

    # -- what we know about the registry's auth -------------------------------------------

    def learn(self, challenges: list[Challenge]) -> Challenge | None:
        """Remember the scheme the registry asks for: Bearer (with a realm) over Basic."""
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.params.get("realm")), None)
        chosen = bearer or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is not None:
            with self._lock:
                self._challenge = chosen
        return chosen

    def _authorization(self, scope: str | None) -> str | None:
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self.credentials.basic_header() if self.credentials else None
        if scope is None:
            return None
        token = self.tokens.get(scope) or self.fetch_token(challenge, scope, scope)
        return f"Bearer {token}"

    def fetch_token(self, challenge: Challenge, scope: str, cache_key: str) -> str:
        """GET a token from the challenge's realm (credentials go here and only here)."""
        realm = challenge.params.get("realm", "")
        if self.credentials is not None and urlsplit(self.base).scheme == "https" and \
                urlsplit(realm).scheme.lower() != "https":
            # the registry is reached over TLS; its token service must be too, or the
            # password would cross the network in clear text
            raise RegistryError("GET", realm, 0, temporary=False,
                                detail="the registry's token realm is not https; credentials withheld",
                                hint=f"{self.host} names a plain-HTTP token service; fix the registry's auth "
                                     "config to use an https realm, or pull anonymously")
        # several scopes (a cross-repository mount wants push on one, pull on the other)
        # go as several ``scope`` parameters, as the token protocol has it
        params = [(k, v) for k, v in (("service", challenge.params.get("service")),
                                      *(("scope", s) for s in scope.split())) if v]
        basic = self.credentials.basic_header() if self.credentials else None
        url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(params) if params else realm
        # credentials go to the realm's origin only, also across its redirects
        resp = self.send_following("GET", url, {}, basic, "token", True, origin=realm)
        with released(resp):
            if resp.status_code != 200:
                err = error_from_response("GET", realm, resp)
                if resp.status_code in (401, 403) and self.credentials is None:
                    err.hint = HINT_FORBIDDEN_ANONYMOUS.format(host=self.host)
                elif resp.status_code in (401, 403):
                    err.hint = (f"the token service rejected the credentials for {self.host}; check "
                                "username_env/password_env or auth_file")
                    self._name_credentials(err)
                raise err
            body = read_limited(resp, "GET", realm, MAX_TOKEN_BODY)
            try:
                found = token_from_response(jsonsafe.loads(body))
            except ValueError:
                found = None
        if found is None:
            raise RegistryError("GET", realm, 200, detail="token response has neither 'token' nor 'access_token'",
                                temporary=False, hint="the registry's token service is not Docker-compatible")
        token, expires_in = found
        self.tokens.put(cache_key, token, expires_in)
        return token

    # -- sending ------------------------------------------------------------------------------

    def send(self, method: str, url: str, *, kind: str, scope: str | None, headers: dict[str, str] | None = None,
             stream: bool = True, data: Body = None) -> requests.Response:
        """Send one logical request; returns the final response whatever its status, except
        that a 401 the credentials cannot answer raises ``RegistryError``. ``data``: a body
        (a push); one that is not ``bytes`` can be sent once only, so a 401 to it is a
        temporary error (the caller's retry starts its upload again, now authorized)."""
        sent_auth = self._authorization(scope)
        resp = self.send_following(method, url, headers or {}, sent_auth, kind, stream, data=data)
        if resp.status_code != 401:
            return resp
        challenges = parse_www_authenticate(resp.headers.get("WWW-Authenticate"))
        if not challenges:
            raise RegistryError(method, url, 401, codes=(), detail="unauthorized or not found, and the registry "
                                "sent no WWW-Authenticate challenge", hint=HINT_UNAUTHORIZED.format(host=self.host))
        chosen = self.learn(challenges)
        retry_auth: str | None = None
        if chosen is not None and chosen.scheme == "bearer" and scope is not None:
            if sent_auth and sent_auth.startswith("Bearer "):
                self.tokens.invalidate(scope, sent_auth[len("Bearer "):])
            token = self.fetch_token(chosen, chosen.params.get("scope") or scope, scope)
            retry_auth = f"Bearer {token}"
        elif chosen is not None and chosen.scheme == "basic" and self.credentials is not None:
            retry_auth = self.credentials.basic_header()
        if retry_auth is None or retry_auth == sent_auth:
            raise self._name_credentials(error_from_response(method, url, resp))
        finish(resp)
        if data is not None and not isinstance(data, bytes):
            raise RegistryError(method, url, 401, temporary=True,
                                detail="authorization expired while a streamed body was sent")
        resp = self.send_following(method, url, headers or {}, retry_auth, kind, stream, data=data)
        if resp.status_code == 401:
            raise self._name_credentials(error_from_response(method, url, resp))
        return resp

    def _name_credentials(self, err: RegistryError) -> RegistryError:
        """Say whose credentials were refused (where they came from, never the secret), or
        that none were sent: the first thing to check when a pipeline's secret rotated."""
        if self.credentials is not None:
            source = self.credentials.source or "the registry config"
            err.message = f"credentials from {source} were refused by {self.host}: {err.message}"
        else:
            err.message = f"{self.host} refused anonymous access: {err.message}"
            err.hint = err.hint or HINT_UNAUTHORIZED.format(host=self.host)
        err.args = (err.message,)
        return err

    def _request(self, method: str, url: str, headers: dict[str, str], stream: bool, data: Body = None
                 ) -> requests.Response:
        """What ``Session.request`` does, minus what registry traffic never uses.

        ``Session.request`` also merges the session's cookie jar into every request and looks
        the host up in ``~/.netrc``; with its per-request type checks that was half the CPU
        time of a small request (measured: 1.6-2.3 ms against 0.9-1.1 ms per manifest HEAD;
        a cold sync makes hundreds). Registry clients do not use cookies or netrc (docker and
        skopeo neither send cookies nor read netrc; our credentials come from the registry
        config). Headers, proxies, CA bundle and client certificate are merged exactly as
        ``requests`` merges them."""
        merged = CaseInsensitiveDict(self.http.headers)  # the session's, then the request's
        merged.update(headers)
        prepared = requests.PreparedRequest()
        prepared.prepare(method=method, url=url, headers=merged, data=data)
        # the registry's own TLS choice (ca_file, tls_verify: false) is passed per request:
        # given only on the session, requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override
        # it (psf/requests#3829), and a private CA was refused wherever those are set
        own = self.http.verify if self.http.verify is not True else None
        settings = self.http.merge_environment_settings(prepared.url, {}, stream, own, None)
        return self.http.send(prepared, allow_redirects=False, timeout=self.timeout, **settings)

    def send_following(self, method: str, url: str, headers: dict[str, str], authorization: str | None,
                       kind: str, stream: bool, *, origin: str | None = None, data: Body = None
                       ) -> requests.Response:
        """Send one request and follow its redirects; ``authorization`` goes only to
        ``origin``'s scheme and host (default: the registry's). Counts ``kind`` for the
        first request and ``redirect`` for each hop."""
        home = _origin(origin or self.base)
        current, auth = url, authorization
        for hop in range(MAX_REDIRECTS + 1):
            h = dict(headers)
            if auth:
                h["Authorization"] = auth
            try:
                resp = self._request(method, current, h, stream, data)
            except requests.RequestException as exc:
                raise connection_error(method, current, exc) from exc
            finally:
                self._count(kind if hop == 0 else "redirect")
            location = resp.headers.get("Location")
            if resp.status_code not in _REDIRECTS or not location:
                return resp
            finish(resp)
            nxt = urljoin(current, location)
            if _origin(nxt) != home:
                auth = None  # storage backends get no registry credentials, ever
            log.debug("%s %s redirected to another location", method, kind)
            current = nxt
        raise RegistryError(method, url, 0, detail=f"more than {MAX_REDIRECTS} redirects", temporary=False)
