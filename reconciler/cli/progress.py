"""Download progress on stderr, for ``reconciler sync`` and ``reconciler apply`` alike.

The library only emits ``ProgressEvent``s (a phase, done/total, bytes); all rendering is
here, in one renderer fed ``(repository, event)``. On a terminal: one status line,
rewritten in place, and permanent lines for what is done. Elsewhere (CI logs): plain lines
only. Two levels of detail:

- several repositories at once (apply): per repository, a line when its blob download
  starts and one when it is done; on a terminal the status line shows every repository
  still downloading (blobs done/total and bytes);
- one repository, every phase (sync, ``phases=True``): resolving tags, fetching
  manifests, downloading blobs, each with done/total (a line at most every tenth of the
  phase in a log); on a terminal the status line shows the current phase and a finished
  phase leaves its last count.

``-q`` passes no renderer at all.
"""

from __future__ import annotations

import shutil
import sys
import threading
from dataclasses import dataclass
from typing import TextIO

from reconciler.cli.context import human_bytes
from reconciler.ops.parallel import Progress, ProgressEvent

_PHASES = {"tags": "resolving tags", "manifests": "fetching manifests", "blobs": "downloading blobs",
           "upload": "uploading blobs"}
#: phase -> (starting, done, nothing to move): a download, or a push's upload (issue 23)
_VERBS = {"blobs": ("downloading", "downloaded", "already stored"),
          "upload": ("uploading", "uploaded", "already there")}


def _blobs(n: int) -> str:
    return "1 blob" if n == 1 else f"{n} blobs"


@dataclass
class _Repo:
    blobs_done: int = 0
    blobs_total: int = 0
    bytes: int = 0
    finished: bool = False
    phase: str = "blobs"


class ProgressRenderer:
    """A progress callback ``(repository id, event)`` (the apply runner's ``RepoProgress``;
    ``for_repository`` gives a sync's one-repository callback); thread-safe."""

    def __init__(self, tty: bool, stream: TextIO | None = None, *, phases: bool = False) -> None:
        self.tty = tty
        self.stream = stream or sys.stderr
        self.phases = phases
        self._repos: dict[str, _Repo] = {}
        self._step: dict[str, int] = {}  # phases, in a log: the tenth of each phase last shown
        self._lock = threading.Lock()
        self._status_shown = False

    def for_repository(self, repo: str) -> Progress:
        return lambda event: self(repo, event)

    def __call__(self, repo: str, event: ProgressEvent) -> None:
        with self._lock:
            if self.phases:
                self._phase(event)
            else:
                self._download(repo, event)

    # -- one repository, every phase ---------------------------------------------------
    def _phase(self, event: ProgressEvent) -> None:
        label = _PHASES.get(event.phase, event.phase)
        size = f" ({human_bytes(event.bytes)})" if event.bytes and event.phase in _VERBS else ""
        count = f"{label}: {event.done}/{event.total}{size}"
        if self.tty:
            if event.done == event.total:
                self._line(count)
            else:
                self._show(count)
            return
        step = event.done * 10 // max(event.total, 1)
        if event.done == 0:
            self._step[event.phase] = -1
        if step == self._step.get(event.phase, -1) and event.done != event.total:
            return
        self._step[event.phase] = step
        self._line(count)

    # -- several repositories, their downloads -----------------------------------------
    def _download(self, repo: str, event: ProgressEvent) -> None:
        state = self._repos.setdefault(repo, _Repo())
        if event.phase not in _VERBS:
            return
        starting_verb, done_verb, nothing = _VERBS[event.phase]
        starting = event.done == 0
        state.blobs_done, state.blobs_total, state.bytes = event.done, event.total, event.bytes
        state.phase = event.phase
        if starting and not self.tty:
            self._line(f"{repo}: {starting_verb} {_blobs(event.total)}")
        if event.done == event.total and not state.finished:
            state.finished = True
            if event.bytes:
                self._line(f"{repo}: {done_verb} {_blobs(event.total)}, {human_bytes(event.bytes)}")
            else:  # another repository's download (or an earlier run) brought them
                self._line(f"{repo}: {_blobs(event.total)} {nothing}")
        elif self.tty:
            self._status()

    def _status(self) -> None:
        moving = [s for s in self._repos.items() if not s[1].finished and s[1].blobs_total]
        active = [f"{r} {s.blobs_done}/{s.blobs_total} {human_bytes(s.bytes)}" for r, s in moving]
        if active:
            verbs = {_VERBS[s.phase][0] for _, s in moving}
            self._show(f"{verbs.pop() if len(verbs) == 1 else 'transferring'}: " + " | ".join(active))
        else:
            self._erase()

    # -- the terminal ------------------------------------------------------------------
    def _line(self, text: str) -> None:
        """A permanent line (on a terminal, above the status line)."""
        self._erase()
        self.stream.write(text + "\n")
        if self.tty and not self.phases:
            self._status()
        self.stream.flush()

    def _show(self, text: str) -> None:
        """The status line, rewritten in place."""
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r\x1b[K" + text[:width])
        self._status_shown = True
        self.stream.flush()

    def _erase(self) -> None:
        if self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False

    def close(self) -> None:
        with self._lock:
            if self._status_shown:
                self._erase()
                self.stream.flush()
