"""Progress of the upstream refresh (``plan``, ``apply -f``) on stderr.

A large repos.yaml takes seconds to refresh (one tag list and a HEAD per tag of each
upstream). On a terminal: one status line rewritten in place (``refreshing upstreams
37/200: web``), erased when done. Elsewhere (CI logs): a plain line at most every
``interval`` seconds, so a slow refresh shows it is alive without flooding the log.
``-q`` passes no renderer at all.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

#: seconds between plain progress lines in a log
LOG_INTERVAL = 10.0


class RefreshProgress:
    """A refresh progress callback ``(done, total, repository id)``; thread-safe."""

    def __init__(self, tty: bool, stream: TextIO | None = None, *, interval: float = LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.tty, self.stream, self.interval, self.clock = tty, stream or sys.stderr, interval, clock
        self._lock = threading.Lock()
        self._last = clock()
        self._shown = False

    def __call__(self, done: int, total: int, repo: str) -> None:
        with self._lock:
            if self.tty:
                width = shutil.get_terminal_size((100, 20)).columns - 1
                self.stream.write("\r\x1b[K" + f"refreshing upstreams {done}/{total}: {repo}"[:width])
                self._shown = True
            elif self.clock() - self._last >= self.interval:
                self._last = self.clock()
                self.stream.write(f"refreshing upstreams: {done}/{total} done\n")
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False
