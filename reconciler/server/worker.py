"""The serving worker: requests are read whole by an event loop, then answered by threads.

A gunicorn worker class (``reconciler serve`` runs N of these processes). gunicorn's own
``gthread`` worker hands a connection to a thread as soon as its first bytes arrive, and
the thread then waits for the rest of the headers: eight clients that send one header
line a second hold every thread of a 2 x 4 server, and nobody else gets an answer. Here
the worker's main thread runs one ``selectors`` loop over every connection and reads
each request itself, without blocking, until it is complete (``reconciler.server.framing``
says when); only then does a thread from the pool parse it (gunicorn's parser, over the
bytes already read) and run the WSGI application. So:

- a client that has not finished sending its request holds no thread, only a socket
  and its bytes so far; it has ``request_timeout`` seconds to finish (then 408, close);
- an idle kept-alive connection waits in the loop too, for at most ``keepalive`` seconds;
- a handler blocked on the store (a stalled database or object storage) holds its own
  thread, never the loop: other connections keep being accepted and read, and their
  requests are answered as soon as a thread is free;
- a response that makes no progress for ``send_timeout`` seconds (a client that stopped
  reading) is abandoned and its connection closed;
- one client address may hold at most ``max_client_connections`` connections in each
  worker process (trusted proxies excepted); more are answered 429 and closed; the
  worker as a whole holds at most gunicorn's ``worker_connections``;
- the peer's address is the client's unless the peer is a trusted proxy
  (``--forwarded-allow-ips``), in which case ``REMOTE_ADDR`` becomes the client named by
  its ``X-Forwarded-For`` (the access log and the login throttle use it) and
  ``wsgi.url_scheme`` what its ``X-Forwarded-Proto`` says.

SIGTERM stops accepting, closes connections that are not being answered, and lets the
threads finish in-flight responses for up to ``graceful_timeout`` seconds; SIGINT and
SIGQUIT exit at once (the threads are daemons), as gunicorn's workers do.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import resource
import selectors
import socket
import threading
import time
from collections import Counter
from datetime import datetime
from typing import Any, ClassVar

from gunicorn import util  # type: ignore[import-untyped]
from gunicorn.http import RequestParser  # type: ignore[import-untyped]
from gunicorn.http import wsgi as gwsgi
from gunicorn.http.errors import NoMoreData  # type: ignore[import-untyped]
from gunicorn.workers.base import Worker  # type: ignore[import-untyped]

from reconciler.server import balance
from reconciler.server.framing import HeadTooLarge, find_request
from reconciler.server.limits import ClientLimits

log = logging.getLogger(__name__)

_RECV = 64 * 1024
_ACCEPT_BATCH = 64
#: a connection closed after its answer keeps being read (and discarded) this long, so
#: that unread request bytes do not turn the close into a reset that loses the answer
_LINGER = 2.0
_LINGER_BYTES = 64 * 1024
#: sockets the process keeps for everything but client connections (store, logs, ...)
_SPARE_FDS = 64
#: a client address refused or timed out is logged at most this often
_LOG_EVERY = 60.0


class _Conn:
    __slots__ = ("addr", "buf", "closing", "deadline", "idle", "linger_left", "peer", "resume", "server",
                 "sock", "watched")

    def __init__(self, sock: socket.socket, addr: Any, server: Any, peer: str, deadline: float) -> None:
        self.sock = sock
        self.addr = addr
        self.server = server
        self.peer = peer
        self.buf = bytearray()
        self.resume = 0
        self.deadline = deadline
        self.idle = False  # kept alive, no byte of the next request yet
        self.closing = False  # answered with "Connection: close": only draining
        self.linger_left = _LINGER_BYTES
        self.watched = False


def _canned(status: str, body: str = "", extra: str = "") -> bytes:
    data = body.encode()
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


_TIMEOUT = _canned("408 Request Timeout", "the request did not arrive in time\n")
_TOO_LARGE = _canned("431 Request Header Fields Too Large", "request headers too large\n")
_TOO_MANY = _canned("429 Too Many Requests", "too many connections from your address\n", "Retry-After: 1\r\n")
_BAD = _canned("400 Bad Request", "malformed request\n")


class BufferingWorker(Worker):  # type: ignore[misc]
    """Set ``limits`` on a subclass (``GunicornServer`` does) to change the defaults, and
    ``board`` to spread connections over the workers (``reconciler.server.balance``); the
    master sets each worker's ``board_slot`` before it forks."""

    limits: ClassVar[ClientLimits] = ClientLimits()
    board: ClassVar[balance.ConnectionBoard | None] = None
    board_slot: int = -1
    alive: bool  # gunicorn's: False once the worker is to stop

    # -- process start ------------------------------------------------------------------
    def init_process(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._jobs: queue.SimpleQueue[tuple[_Conn, bytes, bool] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[tuple[_Conn, bool]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._watching: set[_Conn] = set()
        self._per_peer: Counter[str] = Counter()
        self._logged: dict[tuple[str, str], float] = {}
        self._open = 0
        self._inflight = 0
        self._accepting = False
        self._accept_paused_until = 0.0
        self._max_conns = self._connection_budget(int(self.cfg.worker_connections))
        self._seat = balance.Seat(self.board, self.board_slot, os.getpid())
        for i in range(max(1, int(self.cfg.threads))):
            threading.Thread(target=self._work, name=f"serve-{i}", daemon=True).start()
        super().init_process()

    @staticmethod
    def _connection_budget(wanted: int) -> int:
        """``worker_connections``, within the open-files limit (raised up to the hard
        limit if needed): running out of descriptors would fail accept() and store opens."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = wanted + _SPARE_FDS
        if soft != resource.RLIM_INFINITY and soft < need:
            target = need if hard == resource.RLIM_INFINITY else min(need, hard)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY and soft < need:
            budget = max(16, soft - _SPARE_FDS)
            log.warning("open-files limit %d allows %d connections per worker, not %d (raise `ulimit -n`)",
                        soft, budget, wanted)
            return budget
        return wanted

    # -- the loop -----------------------------------------------------------------------
    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
        self._sel.register(self.PIPE[0], selectors.EVENT_READ, self._drain)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._finished)
        next_sweep = 0.0
        while self.alive:
            self.notify()
            now = time.monotonic()
            paused = self._accept_paused_until - now
            self._set_accepting(self._open < self._max_conns and paused <= 0)
            # at most a second between heartbeats; a pause after EMFILE ends on time
            self._poll(min(1.0, paused) if paused > 0 else 1.0)
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            now = time.monotonic()
            if now >= next_sweep:
                self._expire(now)
                next_sweep = now + 0.25
        self._shutdown()

    def _shutdown(self) -> None:
        self._set_accepting(False)
        for conn in list(self._watching):
            self._close(conn)  # nobody is answering these: a client retries elsewhere
        deadline = time.monotonic() + float(self.cfg.graceful_timeout)
        while self._inflight and time.monotonic() < deadline:
            self.notify()
            self._poll(0.5)
        for _ in range(max(1, int(self.cfg.threads))):
            self._jobs.put(None)

    def _poll(self, timeout: float) -> None:
        try:
            events = self._sel.select(timeout)
        except InterruptedError:
            return
        for key, _ in events:
            if isinstance(key.data, _Conn):
                self._readable(key.data)
            else:
                key.data(key.fileobj)

    @staticmethod
    def _drain(fd: int) -> None:
        """Empty a wake-up pipe (signals, finished requests)."""
        try:
            while os.read(fd, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _set_accepting(self, on: bool) -> None:
        if on == self._accepting:
            return
        for listener in self.sockets:
            if on:
                self._sel.register(listener, selectors.EVENT_READ, self._accept)
            else:
                self._sel.unregister(listener)
        self._accepting = on

    # -- connections --------------------------------------------------------------------
    def _accept(self, listener: Any) -> None:
        for _ in range(_ACCEPT_BATCH):
            if self._open >= self._max_conns:
                return
            if self._step_back():
                return
            try:
                sock, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                self._seat.accepted()  # nothing left: other workers took the rest
                return
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._once("accept", "", "cannot accept connections: %s; pausing accept for 1 s", exc)
                    self._accept_paused_until = time.monotonic() + 1.0
                    return
                raise
            self._seat.accepted()
            sock.setblocking(False)
            peer = addr[0] if isinstance(addr, tuple) else ""
            limits = self.limits
            if (peer and self._per_peer[peer] >= limits.max_client_connections
                    and not limits.trusted_proxies.trusts(peer)):
                self._once("cap", peer, "%s holds %d connections (--max-client-connections): refusing more",
                           peer, limits.max_client_connections)
                self._send_and_close(sock, _TOO_MANY)
                continue
            conn = _Conn(sock, addr, listener.getsockname(), peer, time.monotonic() + limits.request_timeout)
            self._per_peer[peer] += 1
            self._count_open(1)
            self._watch(conn)

    def _step_back(self) -> bool:
        """Leave a connection to a less loaded worker: stop accepting for a moment when
        this one holds more than its share, but never twice without an accept between."""
        if not self._seat.step_back(self._open):
            return False
        self._accept_paused_until = max(self._accept_paused_until, time.monotonic() + balance.PAUSE)
        return True

    def _count_open(self, delta: int) -> None:
        self._open += delta
        self._seat.publish(self._open)

    def _watch(self, conn: _Conn) -> None:
        if not conn.watched:
            self._sel.register(conn.sock, selectors.EVENT_READ, conn)
            self._watching.add(conn)
            conn.watched = True

    def _unwatch(self, conn: _Conn) -> None:
        if conn.watched:
            self._sel.unregister(conn.sock)
            self._watching.discard(conn)
            conn.watched = False

    def _readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if conn.closing:
            conn.linger_left -= len(data)
            if conn.linger_left <= 0:
                self._close(conn)
            return
        if conn.idle:
            # the first byte of the next request: its clock starts now
            conn.idle = False
            conn.deadline = time.monotonic() + self.limits.request_timeout
        conn.buf += data
        self._dispatch(conn)

    def _dispatch(self, conn: _Conn) -> None:
        """Hand the connection's first request to a thread once it is all there."""
        try:
            framed, conn.resume = find_request(conn.buf, conn.resume)
        except HeadTooLarge:
            self._once("large", conn.peer, "%s sent request headers over the size limit", conn.peer)
            self._finish(conn, _TOO_LARGE)
            return
        if framed is None:
            return
        data = bytes(conn.buf[:framed.length])
        del conn.buf[:framed.length]
        conn.resume = 0
        self._unwatch(conn)
        self._inflight += 1
        self._jobs.put((conn, data, framed.whole))

    def _finished(self, fd: int) -> None:
        """Threads report answered requests here: keep the connection or close it."""
        self._drain(fd)
        while True:
            try:
                conn, keep = self._done.get_nowait()
            except queue.Empty:
                return
            self._inflight -= 1
            if not (keep and self.alive):
                self._linger(conn)
                continue
            try:
                conn.sock.setblocking(False)
            except OSError:
                self._close(conn)
                continue
            now = time.monotonic()
            conn.idle = not conn.buf
            conn.deadline = now + (self.limits.keepalive if conn.idle else self.limits.request_timeout)
            self._watch(conn)
            if conn.buf:
                self._dispatch(conn)  # a pipelined request may already be complete

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._watching if c.deadline <= now]:
            if conn.closing or conn.idle:
                self._close(conn)
            else:
                self._once("slow", conn.peer, "%s did not send a whole request within %g s: closed",
                           conn.peer, self.limits.request_timeout)
                self._finish(conn, _TIMEOUT)

    def _finish(self, conn: _Conn, reply: bytes) -> None:
        """Answer from the loop (best effort, never blocking), then close."""
        try:
            conn.sock.send(reply)
        except OSError:
            pass
        self._linger(conn)

    def _linger(self, conn: _Conn) -> None:
        """Half-close, then discard what the client still sends for a moment before the
        close, so that the kernel does not reset the connection under the answer."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(conn)
            return
        conn.closing = True
        conn.buf = bytearray()
        conn.deadline = time.monotonic() + _LINGER
        self._watch(conn)

    def _close(self, conn: _Conn) -> None:
        self._unwatch(conn)
        util.close(conn.sock)
        self._count_open(-1)
        self._per_peer[conn.peer] -= 1
        if self._per_peer[conn.peer] <= 0:
            del self._per_peer[conn.peer]

    @staticmethod
    def _send_and_close(sock: socket.socket, reply: bytes) -> None:
        try:
            sock.send(reply)
        except OSError:
            pass
        util.close(sock)

    def _once(self, what: str, peer: str, message: str, *args: Any) -> None:
        """Log ``message`` at most once a minute per (what, peer): hundreds of slow or
        refused connections must not flood the log."""
        now = time.monotonic()
        key = (what, peer)
        if now - self._logged.get(key, -_LOG_EVERY) < _LOG_EVERY:
            return
        if len(self._logged) > 10_000:
            self._logged.clear()
        self._logged[key] = now
        log.warning(message, *args)

    # -- the threads --------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            conn, data, whole = job
            keep = False
            try:
                keep = self._serve(conn, data, whole)
            finally:
                self._done.put((conn, keep))
                try:
                    os.write(self._wake_w, b"\0")
                except OSError:
                    pass  # the pipe is full: the loop is already due to wake up

    def _serve(self, conn: _Conn, data: bytes, whole: bool) -> bool:
        """Parse and answer one request; True to keep the connection."""
        sock = conn.sock
        req = None
        try:
            sock.setblocking(True)
            # every read is from ``data``; this bounds the writes: a client that stops
            # reading the answer cannot hold this thread longer than that
            sock.settimeout(self.limits.send_timeout)
            req = next(RequestParser(self.cfg, [data], conn.addr))
            return self._respond(req, conn, whole)
        except StopIteration:
            return False
        except NoMoreData:
            self._send_and_keep(sock, _BAD)
            return False
        except TimeoutError:
            log.info("%s stopped reading the answer for %g s: connection dropped", conn.peer,
                     self.limits.send_timeout)
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                log.exception("socket error answering %s", conn.peer)
            return False
        except Exception as exc:  # noqa: BLE001 - gunicorn answers parse errors (400, 431, ...) and logs the rest
            self.handle_error(req, sock, conn.addr, exc)
            return False

    @staticmethod
    def _send_and_keep(sock: socket.socket, reply: bytes) -> None:
        try:
            sock.sendall(reply)
        except OSError:
            pass

    def _respond(self, req: Any, conn: _Conn, whole: bool) -> bool:
        """gthread's ``handle_request``, with the client address from a trusted proxy and
        "Connection: close" when the request body was left unread."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = gwsgi.create(req, conn.sock, conn.addr, conn.server, self.cfg)
            environ["wsgi.multithread"] = True
            environ["reconciler.peer_addr"] = conn.peer
            proxies = self.limits.trusted_proxies
            if proxies:
                environ["REMOTE_ADDR"] = proxies.client(conn.peer, environ.get("HTTP_X_FORWARDED_FOR"))
                scheme = proxies.scheme(conn.peer, environ.get("HTTP_X_FORWARDED_PROTO"))
                if scheme is not None:
                    environ["wsgi.url_scheme"] = scheme
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
            if not (whole and self.alive and self.cfg.keepalive):
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            return not resp.should_close()
        except OSError:
            raise
        except Exception:
            if resp is not None and resp.headers_sent:
                # the answer has started: a 500 now would corrupt it
                log.exception("error while sending the answer to %s", conn.peer)
                return False
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:  # noqa: BLE001 - a hook's bug must not kill the thread
                log.exception("error in the post_request hook")
