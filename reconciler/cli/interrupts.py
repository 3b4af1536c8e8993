"""Ctrl-C (SIGINT) and SIGTERM during ``reconciler apply``.

The first signal requests a stop (``ops.stop.StopToken``): the apply starts no new
download or write, abandons the downloads in flight, journals itself as
``interrupted`` and exits 130 (SIGINT) or 143 (SIGTERM). Nothing partial is visible:
a repository's new version is committed whole or not at all, and publications switch
atomically. A second signal exits at once (the next apply closes the journal entry as
``interrupted`` and ``store gc`` removes what the downloads left).

``exit_now`` ends the process without waiting for abandoned worker threads (a normal
exit joins them, which is what a stalled upstream must not be able to delay).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from reconciler.ops.stop import StopToken

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _say(text: str) -> None:
    # os.write, not sys.stderr: the handler may run while the main thread is inside a
    # buffered write to stderr, and re-entering that buffer raises
    try:
        os.write(2, text.encode())
    except OSError:
        pass


@contextmanager
def stop_on_signals(stop: StopToken) -> Iterator[None]:
    """While the block runs, SIGINT/SIGTERM request ``stop``; a second one exits."""
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        received.append(signum)
        if len(received) == 1:
            stop.request(f"interrupted by {name}", exit_code=128 + signum)
            _say(f"\n{name}: stopping: no new download or write starts, the apply is journaled as interrupted "
                 "(press Ctrl-C again to exit at once)\n")
            return
        _say(f"{name} again: exiting at once (the next apply closes the journal entry)\n")
        os._exit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def exit_now(code: int) -> None:
    """Flush what was printed and end the process without joining worker threads."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
