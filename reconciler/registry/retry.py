"""Retries for temporary registry failures, with bounded exponential backoff (tenacity).

Only a ``RegistryError`` whose ``temporary`` is true is retried: connection failures, 408,
429 and 5xx. A 429/503 with ``Retry-After`` waits that long (capped by
``max_retry_after``); otherwise waits grow ``initial``, ``2*initial``, ... up to
``maximum``. ``DigestMismatch`` and every other error propagate at once. The ``sleep``
function is injectable so tests can check the waits without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from reconciler.errors import RegistryError

log = logging.getLogger(__name__)
T = TypeVar("T")


def is_temporary(exc: BaseException) -> bool:
    return isinstance(exc, RegistryError) and exc.temporary


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry. ``attempts`` counts the first try too."""

    attempts: int = 5
    initial: float = 0.5
    maximum: float = 30.0
    #: never wait longer than this for a server's Retry-After
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(exc, RegistryError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_retry_after)
        return float(min(self.initial * (2 ** (attempt - 1)), self.maximum))


def call_with_retry(policy: RetryPolicy, fn: Callable[[], T], *, what: str = "request") -> T:
    """Run ``fn`` until it succeeds, raises a non-temporary error, or attempts run out
    (then the last error is raised as it was)."""

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return policy.wait_for(state.attempt_number, exc)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("%s failed (%s); retry %d of %d in %.1f s", what, exc, state.attempt_number,
                    policy.attempts - 1, state.next_action.sleep if state.next_action else 0.0)

    retrying = Retrying(
        stop=stop_after_attempt(max(1, policy.attempts)),
        wait=wait,
        retry=retry_if_exception(is_temporary),
        sleep=policy.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
