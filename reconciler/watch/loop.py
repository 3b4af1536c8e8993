"""The ``reconciler watch`` loop: fetch, plan, apply when something changed, sleep.

Each tick: with ``--git``, fetch the branch and check out its newest commit (a git
outage keeps the last commit fetched, so upstream drift is still corrected); plan
repos.yaml against the store and the upstreams; apply when the plan has changes (new
commit, moved upstream tags, a hand change to undo); report one ``TickReport``. A tick
with any failure makes the next wait exponentially longer (``interval * 2**failures``,
at most ``max_backoff``), so an outage is retried, never spun on; a good tick resets it.
``jitter`` adds a random delay so replicas do not tick in step.

Stopping (``StopFlag``): the first SIGTERM/SIGINT ends the loop after the current apply
(a wait ends at once); a second one abandons the apply in progress (it is journaled
``interrupted``, and the next apply converges from what was committed). Either way the
watch exits 0. The loop itself does no I/O of its own: ``reconcile`` (plan + apply, from
``watch.run``) and ``GitCheckout`` do, which keeps it testable with fakes.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.watch.git import GitCheckout

log = logging.getLogger(__name__)

NO_CHANGES, APPLIED, PARTIAL, FAILED = "no_changes", "applied", "partial", "failed"


class Abandon(BaseException):  # noqa: N818 - not an error: the operator asked to stop now
    """Raised by the second stop signal inside an apply: the runner journals it
    ``interrupted``; the loop catches it and ends."""


@dataclass(frozen=True)
class Outcome:
    """What one reconcile did (``watch.run.reconcile_once``)."""

    actions: int = 0
    #: plan actions per drift cause (what the apply corrected, or would have)
    drift: Mapping[str, int] = field(default_factory=dict)
    apply_result: str | None = None  # ok | partial | failed | interrupted; None: nothing applied
    journal_id: int | None = None
    apply_seconds: float | None = None
    #: repositories not applied this tick because their upstream could not be refreshed
    waiting: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    upstreams: int = 0
    tags: int = 0


@dataclass(frozen=True)
class TickReport:
    number: int
    started: float  # unix time
    commit: str | None
    result: str  # NO_CHANGES | APPLIED | PARTIAL | FAILED
    outcome: Outcome
    errors: tuple[str, ...]
    duration: float
    next_in: float
    failures: int  # failed ticks in a row, this one included

    def to_json(self) -> dict[str, object]:
        o = self.outcome
        return {"tick": self.number, "started": round(self.started, 3), "commit": self.commit, "result": self.result, "actions": o.actions,
                "drift": dict(o.drift), "apply_result": o.apply_result, "journal_id": o.journal_id,
                "waiting": list(o.waiting), "errors": list(self.errors), "duration_s": round(self.duration, 3),
                "next_in_s": round(self.next_in, 1), "failures": self.failures}


#: (desired file, provenance for the journal and each version) -> what happened
Reconcile = Callable[[Path, Mapping[str, str]], Outcome]


class StopFlag:
    """Set by signals: ``request()`` once asks the loop to stop after the current apply;
    a second ``request()`` raises ``Abandon`` in the main thread if an apply is running."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.requests = 0
        self.applying = False

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        self.requests += 1
        self._event.set()
        if self.requests > 1 and self.applying:
            raise Abandon

    def wait(self, seconds: float) -> None:
        self._event.wait(max(0.0, seconds))


@dataclass
class WatchLoop:
    file: str
    reconcile: Reconcile
    git: GitCheckout | None = None
    interval: float = 60.0
    jitter: float = 0.0
    max_backoff: float = 900.0
    stop: StopFlag = field(default_factory=StopFlag)
    observers: Sequence[Callable[[TickReport], None]] = ()
    rng: Callable[[], float] = random.random
    failures: int = 0
    ticks: int = 0

    def delay(self) -> float:
        """The wait before the next tick: the interval, doubled per failure in a row
        (capped), plus jitter."""
        base = self.interval if not self.failures else min(self.interval * 2 ** self.failures,
                                                            max(self.interval, self.max_backoff))
        return base + self.jitter * self.rng()

    def run(self) -> None:
        while not self.stop.requested:
            report = self.tick()
            for observe in self.observers:
                observe(report)
            if report.result == FAILED and report.outcome.apply_result == "interrupted":
                break
            self.stop.wait(report.next_in)

    def _desired_path(self) -> Path:
        return self.git.root / self.file if self.git is not None else Path(self.file)

    def tick(self) -> TickReport:
        self.ticks += 1
        started, t0 = time.time(), time.monotonic()
        errors: list[str] = []
        commit = None
        provenance: dict[str, str] = {}
        if self.git is not None:
            try:
                commit = self.git.update()
            except ReconcilerError as exc:
                errors.append(exc.message)
                commit = self.git.commit  # the last commit fetched, if any: keep reconciling it
            if commit is not None:
                provenance = {"git_commit": commit, "git_url": self.git.shown_url}
                if self.git.ref:
                    provenance["git_ref"] = self.git.ref
        outcome = Outcome()
        if self.git is None or commit is not None:
            self.stop.applying = True
            try:
                outcome = self.reconcile(self._desired_path(), provenance)
            except ReconcilerError as exc:
                errors.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
            except Abandon:
                outcome = Outcome(apply_result="interrupted")
                errors.append("stopped during an apply: it was abandoned and journaled interrupted")
            finally:
                self.stop.applying = False
        errors += outcome.errors
        failed = bool(errors) or outcome.apply_result not in (None, "ok")
        self.failures = self.failures + 1 if failed else 0
        if outcome.apply_result == "ok":
            result = PARTIAL if errors else APPLIED  # errors: some repositories wait for their upstream
        elif outcome.apply_result == "partial":
            result = PARTIAL
        elif outcome.apply_result in ("failed", "interrupted"):
            result = FAILED
        else:
            result = FAILED if errors else NO_CHANGES
        return TickReport(self.ticks, started, commit, result, outcome, tuple(errors),
                          time.monotonic() - t0, self.delay(), self.failures)
