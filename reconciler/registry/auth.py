"""Registry authentication: ``WWW-Authenticate`` challenges, credential sources and a
per-scope Bearer token cache.

The flow (Docker token authentication, as the distribution spec and Docker Hub use it):
the registry answers 401 with ``WWW-Authenticate: Bearer realm="...",service="...",
scope="..."``; we GET the realm with ``service`` and ``scope`` (Basic credentials if we
have any, sent to the realm only), take ``token`` or ``access_token`` from the JSON, and
repeat the request with ``Authorization: Bearer <token>``. Tokens are cached per scope
until they expire or a request with them gets 401. A ``Basic`` challenge means sending the
credentials to the registry itself.

Credentials come from environment variables named in the config, or from a docker/podman
``auth.json`` (``auths[host].auth`` = base64 ``user:password``, or ``username``/``password``).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from reconciler.errors import ConfigError
from reconciler.model import jsonsafe
from reconciler.model.reference import is_docker_hub
from reconciler.model.registry import RegistryConfig

log = logging.getLogger(__name__)

#: a token without ``expires_in`` lives 60 s (the token spec's default)
DEFAULT_TOKEN_TTL = 60.0
#: refresh a little early so a token never expires in flight
EXPIRY_MARGIN = 5.0
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PARAM_RE = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_UNQUOTED_RE = re.compile(r"[^,\s]*")


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge: lowercase scheme and lowercase parameter names."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """A quoted-string starting at ``text[pos] == '"'``: (value, position after it)."""
    out, i = [], pos + 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i  # unterminated: take the rest, be lenient


def parse_www_authenticate(header: str | None) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value (RFC 7235), leniently.

    ``Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"`` gives
    ``[Challenge("bearer", {"realm": ..., "service": "reg", "scope": "repository:x:pull,push"})]``.
    Commas inside quoted values stay in the value; several challenges may follow each other.
    """
    text = header or ""
    out: list[Challenge] = []
    pos, n = 0, len(text)
    while pos < n:
        while pos < n and text[pos] in " \t,":
            pos += 1
        m = _TOKEN_RE.match(text, pos)
        if not m:
            break
        scheme, pos = m.group(0).lower(), m.end()
        params: dict[str, str] = {}
        while pos < n:
            while pos < n and text[pos] in " \t,":
                pos += 1
            t68 = _TOKEN68_RE.match(text, pos)
            if not params and t68 and (t68.end() == n or text[t68.end()] in " \t,") and t68.group(0).endswith("="):
                params[""] = t68.group(0)  # a bare token68 right after the scheme (e.g. Negotiate)
                pos = t68.end()
                continue
            pm = _PARAM_RE.match(text, pos)
            if not pm:
                break  # not name=value: the next challenge starts here
            name, pos = pm.group(1).lower(), pm.end()
            if pos < n and text[pos] == '"':
                value, pos = _quoted(text, pos)
            else:
                vm = _UNQUOTED_RE.match(text, pos)
                assert vm is not None
                value, pos = vm.group(0), vm.end()
            params[name] = value
        out.append(Challenge(scheme, params))
    return out


@dataclass(frozen=True)
class Credentials:
    """A username and password; ``repr`` never shows the password."""

    username: str
    password: str = field(repr=False)
    #: where they came from, for an error that says which were refused (never the secret)
    source: str = field(default="", compare=False)

    def basic_header(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def _host_key(key: str) -> str:
    """``https://index.docker.io/v1/`` -> ``index.docker.io``; ``quay.io`` -> ``quay.io``."""
    rest = key.split("://", 1)[-1]
    return rest.split("/", 1)[0].lower()


def parse_auth_json(text: str, host: str, *, source: str = "auth.json") -> Credentials | None:
    """Credentials for ``host`` from a docker ``config.json`` / podman ``auth.json``, or None."""
    try:
        doc = jsonsafe.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}", hint="fix or regenerate it with 'podman login'") from exc
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        raise ConfigError(f"{source}: no 'auths' object", hint="expected {\"auths\": {\"HOST\": {\"auth\": ...}}}")
    wanted = {host.lower()}
    if is_docker_hub(host):  # docker login stores Hub credentials under the v1 index URL
        wanted |= {"index.docker.io", "docker.io", "registry-1.docker.io", "registry.docker.io"}
    for key, entry in auths.items():
        if _host_key(key) not in wanted or not isinstance(entry, dict):
            continue
        where = f"{source}: auths[{key!r}]"
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                decoded = base64.b64decode(entry["auth"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise ConfigError(f"{where}.auth is not base64 'user:password'") from exc
            user, sep, password = decoded.partition(":")
            if not sep:
                raise ConfigError(f"{where}.auth does not decode to 'user:password'")
            return Credentials(user, password, source=f"{source} ({key})")
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"], source=f"{source} ({key})")
        log.warning("%s has no 'auth' or username/password (identity tokens are not supported)", where)
    return None


def load_credentials(config: RegistryConfig, host: str, env: Mapping[str, str] | None = None) -> Credentials | None:
    """The credentials ``config`` names for ``host``: environment variables first, then
    the auth file; None means anonymous."""
    environ = os.environ if env is None else env
    if config.username_env or config.password_env:
        if not (config.username_env and config.password_env):
            raise ConfigError(f"registry {config.url}: set both username_env and password_env, or neither")
        missing = [v for v in (config.username_env, config.password_env) if v not in environ]
        if missing:
            what = "variable" if len(missing) == 1 else "variables"
            verb = "is" if len(missing) == 1 else "are"
            raise ConfigError(f"registry {config.url}: environment {what} {' and '.join(missing)} {verb} not set",
                              hint=f"export {missing[0]}=... before running, or remove it from the registry config")
        return Credentials(environ[config.username_env], environ[config.password_env],
                           source=f"{config.username_env}/{config.password_env}")
    if config.auth_file:
        path = os.path.expanduser(config.auth_file)
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigError(f"registry {config.url}: cannot read auth file {path}: {exc.strerror}",
                              hint="create it with 'podman login' / 'docker login', or fix auth_file") from exc
        return parse_auth_json(text, host, source=path)
    return None


def repository_scope(name: str, actions: str = "pull") -> str:
    return f"repository:{name}:{actions}"


class TokenCache:
    """Bearer tokens by scope, with expiry; safe to share between threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock()

    def get(self, scope: str) -> str | None:
        with self._lock:
            item = self._tokens.get(scope)
        if item is None or item[1] <= self._now():
            return None
        return item[0]

    def put(self, scope: str, token: str, expires_in: float | None) -> None:
        ttl = expires_in if expires_in and expires_in > 0 else DEFAULT_TOKEN_TTL
        with self._lock:
            self._tokens[scope] = (token, self._now() + max(1.0, ttl - EXPIRY_MARGIN))

    def invalidate(self, scope: str, token: str | None = None) -> None:
        """Forget ``scope``'s token (only if it is still ``token``, when given)."""
        with self._lock:
            item = self._tokens.get(scope)
            if item is not None and (token is None or item[0] == token):
                del self._tokens[scope]


def token_from_response(doc: object) -> tuple[str, float | None] | None:
    """(token, expires_in) from a token endpoint's JSON: ``token`` or ``access_token``."""
    if not isinstance(doc, dict):
        return None
    token = doc.get("token") or doc.get("access_token")
    if not isinstance(token, str) or not token:
        return None
    expires = doc.get("expires_in")
    return token, float(expires) if isinstance(expires, (int, float)) else None
