"""HTTP helpers for the registry client: turning responses and ``requests`` exceptions
into ``RegistryError``, and parsing the headers the distribution API relies on
(``Link`` for tag-list pages, ``Retry-After`` for 429/503, ``Content-Type``).

Everything here is pure or works on a finished response; no request is sent.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from reconciler.errors import RegistryError, redact_url
from reconciler.model import jsonsafe

#: how much of an error body we read and show (registries send small JSON documents)
MAX_ERROR_BODY = 64 * 1024
#: an unread body up to this size is read to its end when a response is done with, so that
#: the connection serves the next request (see ``finish``)
DRAIN_LIMIT = 64 * 1024
#: a token endpoint's JSON beyond this is refused (real tokens are a few kilobytes)
MAX_TOKEN_BODY = 1024 * 1024
_LINK_PART_RE = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL_RE = re.compile(r"""rel\s*=\s*"?([^";]+)"?""", re.IGNORECASE)

HINT_UNAUTHORIZED = (
    "check the credentials for {host} (username_env/password_env or auth_file in the registry "
    "config); registries such as Docker Hub also answer 401 for repositories that do not exist, "
    "so check the upstream name too"
)


def finish(resp: requests.Response) -> None:
    """Done with ``resp``: close it, handing its connection back to the pool when that is cheap.

    ``Response.close`` on a streamed response whose body was not read to its end closes the
    socket, because urllib3 cannot know where the next response would start. Every HEAD (no
    body) and every short unread body (a ping's ``{}``, a 401's or a redirect's JSON) then
    cost a new TCP connection, and against a real registry a new TLS handshake, for the next
    request: measured, 100 manifest HEADs opened 100 connections. Those bodies are read to
    their end first; a long one (a blob we stop reading) is still cut off by closing.
    """
    raw = resp.raw
    remaining = getattr(raw, "length_remaining", None)  # urllib3's HTTPResponse (1.26 and 2.x)
    if remaining is not None and remaining <= DRAIN_LIMIT and hasattr(raw, "drain_conn"):
        raw.drain_conn()  # reads the rest and releases the connection; swallows socket errors
    resp.close()


@contextlib.contextmanager
def released(resp: requests.Response) -> Iterator[requests.Response]:
    """``with released(resp):`` as ``with resp:``, but ending in ``finish``. After an error
    the response is only closed: draining a stalled or broken body could wait a whole read
    timeout."""
    try:
        yield resp
    except BaseException:
        resp.close()
        raise
    finish(resp)


def parse_link_next(header: str | None) -> str | None:
    """The target of the ``rel="next"`` entry of a ``Link`` header, or None.

    ``Link: </v2/x/tags/list?n=2&last=b>; rel="next"`` gives ``/v2/x/tags/list?n=2&last=b``.
    Several comma-separated links are allowed; the target may be relative or absolute.
    """
    if not header:
        return None
    for m in _LINK_PART_RE.finditer(header):
        target, params = m.group(1).strip(), m.group(2)
        rel = _REL_RE.search(params)
        if rel and "next" in rel.group(1).lower().split():
            return target or None
    return None


def resolve_link(base_url: str, target: str) -> str:
    """Resolve a ``Link`` target against the registry: only its path and query are used,
    so a Link can never send us (and our credentials) to another host."""
    base = urlsplit(base_url)
    link = urlsplit(target)
    path = link.path if link.path.startswith("/") else "/" + link.path
    return urlunsplit((base.scheme, base.netloc, path, link.query, ""))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.
    Returns None for a missing or unparsable value; never negative."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def media_type_of(resp: requests.Response) -> str | None:
    """The Content-Type without parameters, or None."""
    ctype = resp.headers.get("Content-Type")
    if not ctype:
        return None
    return ctype.split(";", 1)[0].strip() or None


def _error_codes(body: bytes) -> tuple[list[str], str]:
    """OCI error codes and the first message from an error body (``{"errors": [...]}``)."""
    try:
        doc = jsonsafe.loads(body)
    except (UnicodeDecodeError, ValueError):
        return [], ""
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list):
        return [], ""
    codes, message = [], ""
    for err in doc["errors"]:
        if isinstance(err, dict):
            if isinstance(err.get("code"), str):
                codes.append(err["code"])
            if not message and isinstance(err.get("message"), str):
                message = err["message"]
    return codes, message


def read_error_body(resp: requests.Response) -> bytes:
    """At most ``MAX_ERROR_BODY`` bytes of an error response (it may be streamed)."""
    if resp.request is not None and resp.request.method == "HEAD":
        return b""
    try:
        data = b""
        for chunk in resp.iter_content(8192):
            data += chunk
            if len(data) >= MAX_ERROR_BODY:
                break
        return data[:MAX_ERROR_BODY]
    except requests.RequestException:
        return b""


def read_limited(resp: requests.Response, method: str, url: str, limit: int) -> bytes:
    """A streamed response's (small) body, refused (``RegistryError``, not temporary) once
    it passes ``limit`` bytes: a broken or hostile server must not make us hold gigabytes.
    A body shorter than its ``Content-Length`` is a temporary error (cut short)."""
    data = bytearray()
    try:
        for chunk in resp.iter_content(64 * 1024):
            data += chunk
            if len(data) > limit:
                raise RegistryError(method, url, resp.status_code, temporary=False,
                                    detail=f"response larger than {limit} bytes")
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise connection_error(method, url, exc) from exc
    want = resp.headers.get("Content-Length")
    if want and want.isdigit() and not resp.headers.get("Content-Encoding") and len(data) < int(want):
        raise RegistryError(method, url, resp.status_code, detail=f"body cut short: {len(data)} of {want} bytes",
                            temporary=True)
    return bytes(data)


#: a 403 to a client that sent no credentials says nothing about credentials being wrong
HINT_FORBIDDEN_ANONYMOUS = (
    "{host} refused anonymous access: the repository may need credentials (username_env/password_env or "
    "auth_file in the registry config), or the upstream name may be wrong"
)


def error_from_response(method: str, url: str, resp: requests.Response, *, what: str = "",
                        anonymous: bool = False) -> RegistryError:
    """A ``RegistryError`` for a non-success response: status, OCI codes, message, hint.
    ``anonymous``: the request carried no credentials of ours (a 403 hint then does not
    blame them)."""
    body = read_error_body(resp)
    finish(resp)
    codes, message = _error_codes(body)
    status = resp.status_code
    retry_after = parse_retry_after(resp.headers.get("Retry-After")) if status in (429, 503) else None
    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    hint = None
    if status == 401:
        detail = "unauthorized or not found"
        if message and message.lower() not in ("authentication required", "unauthorized"):
            detail += f" ({message})"
        hint = HINT_UNAUTHORIZED.format(host=host)
    elif status == 403:
        detail = message or "access denied"
        hint = HINT_FORBIDDEN_ANONYMOUS.format(host=host) if anonymous else \
            f"the credentials for {host} are valid but may not pull this repository"
    else:
        detail = message or what
        if status == 404 and not detail:
            detail = "not found"
        if status == 429:
            hint = "the registry is rate limiting; wait, authenticate, or lower the number of parallel jobs"
        elif status >= 500:
            hint = "the registry failed; it may be temporary, try again later"
    return RegistryError(method, url, status, codes=codes, detail=detail, retry_after=retry_after, hint=hint)


def connection_error(method: str, url: str, exc: BaseException) -> RegistryError:
    """A ``RegistryError`` (status 0, temporary) for a failure below HTTP."""
    text = redact_url(str(exc)) if "://" in str(exc) else str(exc)
    # requests repeats the URL (with credentials if any) inside its messages; strip userinfo anywhere
    text = re.sub(r"(\w+://)[^/@\s]+@", r"\1", text)
    if len(text) > 300:
        text = text[:300] + "..."
    kind = type(exc).__name__
    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    if isinstance(exc, requests.exceptions.SSLError):
        # a certificate problem does not go away by retrying
        hint = f"TLS to {host} failed: check ca_file / client_cert / client_key, or the feed URL's scheme"
        return RegistryError(method, url, 0, detail=f"{kind}: {text}", hint=hint, temporary=False)
    hint = f"check that {host} is reachable (network, proxy, DNS)"
    return RegistryError(method, url, 0, detail=f"{kind}: {text}", hint=hint)
