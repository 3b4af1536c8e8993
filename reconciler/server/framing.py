"""Where one HTTP/1.1 request ends in the bytes read so far (the serving worker's front end).

The worker (``reconciler.server.worker``) reads requests in its event loop and hands a
request to a thread only once it has arrived whole, so a client that sends its headers
slowly holds no thread. This module answers the one question that needs: given the bytes
received on a connection, is a complete request there, and how long is it?

It does not parse the request: gunicorn's parser does that in the thread, and refuses
malformed, ambiguous or oversized requests (two ``Content-Length`` values, both
``Content-Length`` and ``Transfer-Encoding``, bad header names, ...). So whenever the
framing is unclear, ``find_request`` says "hand it over now, and close the connection
after the answer": the parser then rejects it or the application answers it, and no
byte after it is ever read as another request. A read-only registry accepts no request
body; a small one (``Content-Length`` up to ``MAX_BUFFERED_BODY``) is read along with
the headers so that the connection can be kept alive, any other one is left unread.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the most header bytes one request may have (request line included); more is a 431.
#: gunicorn's own limits (a 4094-byte request line, 100 fields of 8190 bytes) still
#: apply to what is below it
MAX_HEAD = 64 * 1024
#: a body up to this size is read before the request is handed over
MAX_BUFFERED_BODY = 64 * 1024

_END_OF_HEAD = b"\r\n\r\n"


class HeadTooLarge(Exception):
    """No end of the header section within ``MAX_HEAD`` bytes."""


@dataclass(frozen=True)
class Framed:
    """A request of ``length`` bytes at the start of the buffer. ``whole`` is False when
    its body (if any) was not read: the connection must close after the answer."""

    length: int
    whole: bool


def find_request(buf: bytes | bytearray, resume: int = 0) -> tuple[Framed | None, int]:
    """``(request, resume)``: the first request in ``buf``, or None while more bytes are
    needed, and where the next call on the same (grown) buffer may resume looking for
    the end of the header section (so a client sending one byte at a time does not make
    each call rescan them all). ``HeadTooLarge`` when the header section is over
    ``MAX_HEAD`` bytes."""
    end = buf.find(_END_OF_HEAD, resume, MAX_HEAD + len(_END_OF_HEAD))
    if end < 0:
        if len(buf) > MAX_HEAD:
            raise HeadTooLarge(f"no end of the request headers in {MAX_HEAD} bytes")
        return None, max(0, len(buf) - len(_END_OF_HEAD) + 1)
    head_end = end + len(_END_OF_HEAD)
    lengths: list[bytes] = []
    for line in bytes(buf[:end]).split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue  # malformed: the parser refuses it
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            # a chunked body (its end is only known by decoding it), or a client that
            # waits for "100 Continue" before sending the body: answer without it
            return Framed(head_end, whole=False), 0
        if name == b"content-length":
            lengths.append(value.strip())
    if not lengths:
        return Framed(head_end, whole=True), 0
    if len(lengths) > 1 or not lengths[0].isdigit() or len(lengths[0]) > 18:
        return Framed(head_end, whole=False), 0  # ambiguous: the parser answers 400
    size = int(lengths[0])
    if size > MAX_BUFFERED_BODY:
        return Framed(head_end, whole=False), 0
    if len(buf) < head_end + size:
        return None, end
    return Framed(head_end + size, whole=True), 0
