"""Retries for temporary registry failures, with bounded exponential backoff (tenacity).

Only a ``RegistryError`` whose ``temporary`` is true is retried: connection failures, 408,
429 and 5xx. A 429/503 with ``Retry-After`` waits that long; otherwise waits grow
``initial``, ``2*initial``, ... up to ``maximum``. A ``Retry-After`` longer than
``max_retry_after`` (a pull-rate limit that resets in six hours) is not waited for at
all: it fails at once as ``RateLimited``, naming when the limit resets. ``DigestMismatch``
and every other error propagate at once. The ``sleep`` function is injectable so tests
can check the waits without waiting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from reconciler.errors import RateLimited, RegistryError

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
    #: the longest Retry-After we wait for; a longer one fails at once (``RateLimited``)
    max_retry_after: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    clock: Callable[[], float] = field(default=time.time, compare=False)

    def wait_for(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if isinstance(exc, RegistryError) and exc.retry_after is not None:
            return min(max(exc.retry_after, 0.0), self.max_retry_after)  # (longer ones never get here)
        return float(min(self.initial * (2 ** (attempt - 1)), self.maximum))


def rate_limited(policy: RetryPolicy, exc: RegistryError) -> RateLimited | None:
    """``RateLimited`` for a temporary error whose Retry-After is longer than the policy
    waits, else None."""
    wait = exc.retry_after
    if isinstance(exc, RateLimited) or not exc.temporary or wait is None or wait <= policy.max_retry_after:
        return None
    return RateLimited(exc.method, exc.url, exc.status, until=policy.clock() + wait, wait=wait, codes=exc.codes)


def call_with_retry(policy: RetryPolicy, fn: Callable[[], T], *, what: str = "request") -> T:
    """Run ``fn`` until it succeeds, raises a non-temporary error, or attempts run out
    (then the last error is raised as it was)."""

    def attempt() -> T:
        try:
            return fn()
        except RegistryError as exc:
            limited = rate_limited(policy, exc)
            if limited is not None:
                raise limited from exc
            raise

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
    return retrying(attempt)
