"""``paused_gc()``: no cyclic garbage collection while a bulk of long-lived objects is built.

Python's cyclic collector runs a full collection over every tracked object each time
enough new ones have survived; loading a large repos.yaml (a node, a dict or a tuple per
value) and reading a large store's latest versions (a digest, tag entry and set per row)
create hundreds of thousands of objects that all survive, so each full collection walks
more than the last and finds nothing: at 10,000 repositories it was half the time of
loading repos.yaml and of reading the store (``bench/README.md``, plan scale). Those
phases make no reference cycles worth collecting early; the collector runs again as usual
once the outermost pause ends.

Thread-safe and nestable: the collector is switched off by the first pause that finds it
on and back on when the last pause ends (a pause that finds it off, because the program
turned it off, leaves it off).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_active = 0
_switched_off = False


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the body with the cyclic garbage collector off (see the module doc)."""
    global _active, _switched_off
    with _lock:
        if _active == 0:
            _switched_off = gc.isenabled()
            if _switched_off:
                gc.disable()
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _switched_off:
                _switched_off = False
                gc.enable()
