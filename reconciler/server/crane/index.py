"""The app files Crane mode serves: one immutable snapshot, reloaded when the data
directory changes.

``load_snapshot`` walks the data directory recursively, following symlinks (as Crane did:
docs/original-system.md, "Loading app files"), reads every ``*.json`` file, and builds the
v1 table (plus image id -> repositories) and the v2 table keyed by ``repo-registry-id``. A
bad file is skipped with an error log naming it; the others load (pulp.plan.io #3111).

``Watcher`` hands out the current snapshot; at most once per polling interval a request
re-stats the tree and, if anything changed, loads a new snapshot and swaps it in whole.
Fixes over Crane: the fingerprint covers every directory **and every ``*.json`` file**
(mtime, size, inode), so an in-place edit is noticed (Crane compared directory mtimes
only); a symlink loop is walked once instead of forever; files are read in sorted
order and a duplicate ``repo-registry-id`` is logged, the later path winning, instead of
depending on the filesystem's walk order.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.errors import CraneDataInvalid
from reconciler.server.crane.appfile import AppFile, load_app_file

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True)
class Snapshot:
    """What one request sees: v1 and v2 repositories by registry id, image id -> the
    registry ids of the v1 repositories holding it (sorted), and the files skipped."""

    v1: Mapping[str, AppFile] = field(default_factory=dict)
    v2: Mapping[str, AppFile] = field(default_factory=dict)
    images: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()


def walk(data_dir: str) -> Iterator[tuple[str, bool]]:
    """(path, is_dir) of every directory and ``*.json`` file under ``data_dir``,
    following symlinks but entering each real directory once, in sorted order."""
    seen: set[tuple[int, int]] = set()
    todo = [data_dir]
    while todo:
        current = todo.pop()
        try:
            st = os.stat(current)
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError:
            continue  # vanished or unreadable mid-walk: the next poll sees the result
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        yield current, True
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                continue
            if is_dir:
                subdirs.append(entry.path)
            elif entry.name.endswith(".json"):
                yield entry.path, False
        todo.extend(reversed(subdirs))


def fingerprint(data_dir: str) -> Fingerprint:
    out = []
    for path, _ in walk(data_dir):
        try:
            st = os.stat(path)
        except OSError:
            continue
        out.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(out)


def load_snapshot(data_dir: str) -> Snapshot:
    v1: dict[str, AppFile] = {}
    v2: dict[str, AppFile] = {}
    errors: list[str] = []
    if not os.path.isdir(data_dir):
        log.error("crane data directory %s does not exist or is not a directory: serving nothing", data_dir)
        return Snapshot(errors=(f"{data_dir}: not a directory",))
    for path, is_dir in walk(data_dir):
        if is_dir:
            continue
        try:
            app = load_app_file(path)
        except CraneDataInvalid as exc:
            log.error("skipping crane app file: %s", exc)
            errors.append(str(exc))
            continue
        table = v1 if app.is_v1 else v2
        old = table.get(app.registry_id)
        if old is not None:
            log.warning("crane app files %s and %s both define %s; using %s",
                        old.path, app.path, app.registry_id, app.path)
        table[app.registry_id] = app
    images: dict[str, set[str]] = {}
    for registry_id, app in v1.items():
        for image_id in app.images:
            images.setdefault(image_id, set()).add(registry_id)
    log.info("loaded crane app files from %s: %d v1 and %d v2 repositories, %d skipped",
             data_dir, len(v1), len(v2), len(errors))
    return Snapshot(v1, v2, {i: tuple(sorted(r)) for i, r in images.items()}, tuple(errors))


class Watcher:
    """The current ``Snapshot`` of ``data_dir``, re-checked at most every ``interval``
    seconds by whichever request comes first (the others keep using the old snapshot
    meanwhile, so a reload never blocks them)."""

    def __init__(self, data_dir: str, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.data_dir = data_dir
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._fingerprint = fingerprint(data_dir)
        self._snapshot = load_snapshot(data_dir)
        self._checked = clock()

    def current(self) -> Snapshot:
        if self._clock() - self._checked >= self.interval and self._lock.acquire(blocking=False):
            try:
                self._refresh()
            finally:
                self._lock.release()
        return self._snapshot

    def _refresh(self) -> None:
        self._checked = self._clock()
        now = fingerprint(self.data_dir)
        if now != self._fingerprint:
            log.info("crane data directory %s changed: reloading", self.data_dir)
            self._fingerprint = now
            self._snapshot = load_snapshot(self.data_dir)
            # loading may take a while: the interval counts from when it finished
            self._checked = self._clock()
