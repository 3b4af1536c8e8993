"""Token buckets keyed by client address or user name: how many failed logins are allowed.

Each key starts with ``capacity`` tokens; a failure takes one, and tokens come back at
``rate`` per second up to ``capacity``. A key with no token left is throttled until one
comes back (``wait()`` says how long). A full bucket is the same as no bucket, so only
keys that failed recently take memory, and at most ``max_keys`` of them: beyond that
the least recently failed are forgotten (which only ever lets someone try again sooner).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """``capacity`` failures at once, then one every ``1 / per_second`` seconds."""

    capacity: int
    per_second: float


class Buckets:
    """Thread-safe; ``clock`` is injectable for tests."""

    def __init__(self, rate: Rate, *, max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, when they were counted); oldest update first
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def _tokens(self, key: Hashable, now: float) -> float:
        entry = self._buckets.get(key)
        if entry is None:
            return float(self.rate.capacity)
        tokens, then = entry
        return min(float(self.rate.capacity), tokens + (now - then) * self.rate.per_second)

    def wait(self, key: Hashable) -> float:
        """Seconds until ``key`` may fail again (0: now)."""
        with self._lock:
            tokens = self._tokens(key, self._clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate.per_second

    def take(self, key: Hashable) -> float:
        """Record a failure of ``key``; the seconds it must now wait (0: it may fail again)."""
        with self._lock:
            now = self._clock()
            tokens = max(0.0, self._tokens(key, now) - 1)
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            # forget the oldest buckets that have filled up again
            while self._buckets:
                oldest = next(iter(self._buckets))
                if self._tokens(oldest, now) < self.rate.capacity:
                    break
                del self._buckets[oldest]
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate.per_second

    def __len__(self) -> int:
        return len(self._buckets)
