"""Request and response values, and their translation to and from WSGI.

Handlers get a ``Request`` and return a ``Response`` whose body is bytes or a
``FileBody`` (a window of an open file). A ``FileBody`` goes out through the server's
``wsgi.file_wrapper``, which lets gunicorn use ``sendfile`` from the current file offset
for ``Content-Length`` bytes; without a wrapper it is streamed in chunks. Blob bodies are
therefore never read whole into memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import parse_qs

CHUNK = 256 * 1024


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    environ: Mapping[str, Any]
    user: str | None = None
    #: the user name of credentials that were refused (wrong, or throttled): logged
    tried_user: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, Any]) -> Request:
        return cls(
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            path=str(environ.get("PATH_INFO", "") or "/"),
            query=parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True),
            environ=environ,
        )

    @property
    def client(self) -> str:
        """The client's address (the proxy's client when the peer is a trusted proxy)."""
        return str(self.environ.get("REMOTE_ADDR") or "-")

    def header(self, name: str) -> str | None:
        key = "HTTP_" + name.upper().replace("-", "_")
        value = self.environ.get(key)
        return str(value) if value is not None else None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


class FileBody:
    """``length`` bytes of ``file`` starting at ``offset``; the file is positioned at
    ``offset`` so ``sendfile`` starts there. ``close`` closes the file and runs the
    callbacks (the access log)."""

    def __init__(self, file: BinaryIO, offset: int, length: int) -> None:
        self.file = file
        self.length = length
        self._left = length
        self.on_close: list[Callable[[], None]] = []
        file.seek(offset)

    def fileno(self) -> int:
        return self.file.fileno()

    def read(self, size: int = CHUNK) -> bytes:
        if self._left <= 0:
            return b""
        data = self.file.read(min(size if size > 0 else CHUNK, self._left))
        self._left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def close(self) -> None:
        if self.file.closed:
            return
        self.file.close()
        for callback in self.on_close:
            callback()


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | FileBody = b""

    @property
    def length(self) -> int:
        return self.body.length if isinstance(self.body, FileBody) else len(self.body)


REASONS = {200: "OK", 201: "Created", 206: "Partial Content", 302: "Found", 304: "Not Modified",
           307: "Temporary Redirect", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           416: "Range Not Satisfiable", 500: "Internal Server Error",
           503: "Service Unavailable"}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def send(response: Response, environ: Mapping[str, Any], start_response: Callable[..., Any],
         on_done: Callable[[], None]) -> Iterable[bytes]:
    """Start the WSGI response and return its body iterable; ``on_done`` runs once the
    body has been sent (or at once for small bodies)."""
    status = f"{response.status} {REASONS.get(response.status) or _phrase(response.status)}"
    start_response(status, list(response.headers.items()))
    body = response.body
    if isinstance(body, FileBody):
        body.on_close.append(on_done)
        wrapper = environ.get("wsgi.file_wrapper")
        return wrapper(body, CHUNK) if wrapper else body
    on_done()
    return [body] if body else []
