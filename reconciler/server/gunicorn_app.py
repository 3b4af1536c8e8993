"""Run a WSGI application under gunicorn in this process tree (``reconciler serve``).

A ``BaseApplication`` with our settings instead of gunicorn's command line: our own
worker class (``reconciler.server.worker``: requests read whole by an event loop, then
answered by a few threads each; blob bodies go out with ``sendfile``), the app built by
``load()`` in every worker after the fork (so each worker opens its own store), closed
by the ``worker_exit`` hook. gunicorn itself trusts no forwarding header from anyone
(it trusts loopback peers by default): ``X-Forwarded-For`` and ``X-Forwarded-Proto`` from
the configured proxies are read by our worker, and ``SCRIPT_NAME`` / ``PATH_INFO``
headers are never used: the registry API lives at the root of its host, so no proxy has
a prefix to tell us about. The workers share a connection board
(``reconciler.server.balance``) so that a burst of connections spreads over all of them.
SIGTERM makes the master stop accepting, let workers finish in-flight requests
(``graceful_timeout``), and exit 0; SIGINT (Ctrl-C) and SIGQUIT are gunicorn's quick
shutdown, which cuts in-flight transfers.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from reconciler import logfmt
from reconciler.server.balance import ConnectionBoard
from reconciler.server.limits import ClientLimits
from reconciler.server.worker import BufferingWorker

AppFactory = Callable[[], Any]


class GunicornServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: AppFactory, *, host: str, port: int, workers: int, threads: int = 4,
                 graceful_timeout: int = 10, clients: ClientLimits | None = None) -> None:
        self._factory = factory
        self._app: Any = None
        limits = clients or ClientLimits()
        # shared by the workers to spread connections evenly; room for the replacements
        # gunicorn starts before it stops the old workers (HUP, TTIN)
        self._board = ConnectionBoard(2 * workers + 2) if workers > 1 else None
        # the worker reads its limits from the class: it is built in the master and forked
        worker = type("BufferingWorker", (BufferingWorker,), {"limits": limits, "board": self._board})
        self._options = {
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": workers,
            "worker_class": worker,
            "threads": threads,
            "graceful_timeout": graceful_timeout,
            # whole seconds in gunicorn; 0 turns keep-alive off
            "keepalive": int(limits.keepalive) if limits.keepalive >= 1 else 0,
            # gunicorn trusts loopback peers by default (FORWARDED_ALLOW_IPS) to set the
            # scheme and SCRIPT_NAME; the worker reads X-Forwarded-For and -Proto from
            # --forwarded-allow-ips itself, and SCRIPT_NAME from nobody
            "forwarded_allow_ips": "",
            "forwarder_headers": "",
            "accesslog": None,  # our own access log (reconciler.server.accesslog) goes to stderr
            "errorlog": "-",
            "loglevel": "info",
            "preload_app": False,
            "proc_name": "reconciler-serve",
            "worker_exit": self._worker_exit,
            "pre_fork": self._pre_fork,
            "post_fork": self._post_fork,
            "child_exit": self._child_exit,
        }
        logconfig = logfmt.gunicorn_logconfig()  # --log-format json: gunicorn's own lines too
        if logconfig is not None:
            self._options["logconfig_dict"] = logconfig
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 24 opens a control socket in ~/.gunicorn by default: one path shared
            # by every server on the machine; we manage the process with signals instead
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        # called in each worker after fork (preload_app is off): a fresh store per worker
        self._app = self._factory()
        return self._app

    def _pre_fork(self, server: Any, worker: Any) -> None:
        # in the master, before the fork: the new worker is not in WORKERS yet
        if self._board is not None:
            worker.board_slot = self._board.assign(w.board_slot for w in server.WORKERS.values())

    @staticmethod
    def _post_fork(server: Any, worker: Any) -> None:
        setup_access_log()

    def _child_exit(self, server: Any, worker: Any) -> None:
        # in the master, once the worker is reaped: its count must not hold others back
        if self._board is not None:
            self._board.release(worker.board_slot)

    def _worker_exit(self, server: Any, worker: Any) -> None:
        close = getattr(self._app, "close", None)
        if close is not None:
            close()


def setup_access_log() -> None:
    """Access lines on stderr, whatever level the CLI's -v/-q set for other loggers."""
    access = logging.getLogger("reconciler.server.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logfmt.formatter("%(message)s"))
        access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
