"""The store's exclusive apply lock: an ``flock`` on ``<root>/lock``.

``flock`` is held by the open file description, so it excludes other *processes* and
other threads that open the file themselves, and it is released by the kernel when the
holder dies (a killed apply never leaves a stale lock). The holder writes its pid and
command so a waiting process can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from reconciler.errors import LockTimeout


@contextmanager
def exclusive_lock(path: Path, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    raise LockTimeout(
                        f"the store at {path.parent} is locked by another process{holder} "
                        f"(waited {timeout:g} s)",
                        hint="wait for that command to finish (or stop it), or raise --lock-timeout",
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (_holder_text() + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder_text() -> str:
    """Who holds the lock, for whoever waits: pid, since when, and the command line
    without ``--store`` (``reconciler apply -f repos.yaml``), cut to a readable length."""
    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    if prog == "__main__.py":  # python -m reconciler
        prog = "reconciler"
    elif prog in ("", "-c"):
        prog = "python"
    args, rest = [], iter(sys.argv[1:])
    for arg in rest:  # the message names the store already: keep the command readable
        if arg == "--store":
            next(rest, None)
        elif not arg.startswith("--store="):
            args.append(arg)
    command = shlex.join([prog, *args])
    if len(command) > 200:
        command = command[:197] + "..."
    since = datetime.now(UTC).strftime("%H:%M:%S UTC")
    return f"pid {os.getpid()} since {since}: {command}"


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


@contextmanager
def backup_lock(path: Path, *, shared: bool, timeout: float) -> Iterator[None]:
    """The lock between backups and gc (``<root>/backup.lock``): backups hold it shared
    (several may run, applies are not affected), gc exclusively (so it never deletes a
    file a backup's snapshot still names)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"the store at {path.parent} is busy: " + (
                            "store gc is running" if shared else "a backup of it is running")
                        + f" (waited {timeout:g} s)",
                        hint="wait for it to finish, or raise --lock-timeout") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
