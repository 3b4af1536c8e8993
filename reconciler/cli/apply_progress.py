"""Progress of ``reconciler apply`` on stderr, per repository (several download at once).

On a terminal: one status line, rewritten in place, with every repository that is
downloading (blobs done/total and bytes), and a permanent line per repository when its
download ends. Elsewhere (CI logs): plain lines only, when a repository starts
downloading and when it is done. The library only emits ``ProgressEvent``s (through
the runner's callback); all rendering is here. ``-q`` passes no renderer at all.
"""

from __future__ import annotations

import shutil
import sys
import threading
from dataclasses import dataclass
from typing import TextIO

from reconciler.cli.context import human_bytes
from reconciler.ops.parallel import ProgressEvent


def _blobs(n: int) -> str:
    return "1 blob" if n == 1 else f"{n} blobs"


@dataclass
class _Repo:
    blobs_done: int = 0
    blobs_total: int = 0
    bytes: int = 0
    finished: bool = False


class ApplyProgress:
    """A ``RepoProgress`` callback (``(repository id, event)``); thread-safe."""

    def __init__(self, tty: bool, stream: TextIO | None = None) -> None:
        self.tty = tty
        self.stream = stream or sys.stderr
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.Lock()
        self._status_shown = False

    def __call__(self, repo: str, event: ProgressEvent) -> None:
        with self._lock:
            state = self._repos.setdefault(repo, _Repo())
            if event.phase != "blobs":
                return
            starting = event.done == 0
            state.blobs_done, state.blobs_total, state.bytes = event.done, event.total, event.bytes
            if starting and not self.tty:
                self._line(f"{repo}: downloading {_blobs(event.total)}")
            if event.done == event.total and not state.finished:
                state.finished = True
                if event.bytes:
                    self._line(f"{repo}: downloaded {_blobs(event.total)}, {human_bytes(event.bytes)}")
                else:  # another repository's download (or an earlier run) brought them
                    self._line(f"{repo}: {_blobs(event.total)} already stored")
            elif self.tty:
                self._status()

    def _line(self, text: str) -> None:
        """A permanent line (on a terminal, above the status line)."""
        if self.tty and self._status_shown:
            self.stream.write("\r\x1b[K")
        self.stream.write(text + "\n")
        self._status_shown = False
        if self.tty:
            self._status()
        self.stream.flush()

    def _status(self) -> None:
        active = [f"{r} {s.blobs_done}/{s.blobs_total} {human_bytes(s.bytes)}"
                  for r, s in self._repos.items() if not s.finished and s.blobs_total]
        if not active:
            if self._status_shown:
                self.stream.write("\r\x1b[K")
                self._status_shown = False
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = "downloading: " + " | ".join(active)
        self.stream.write("\r\x1b[K" + text[:width])
        self._status_shown = True
        self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._status_shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._status_shown = False
