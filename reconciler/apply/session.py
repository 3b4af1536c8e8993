"""An apply around its runner: ``apply_desired`` (``apply -f``: plan and apply under one
hold of the store lock) and ``apply_saved`` (``apply PLAN``: check the plan is fresh, then
apply it), each showing the plan (``on_plan``) before anything is applied.

``locked`` waits for the store lock in short slices and looks at the stop token between
them, so Ctrl-C while another apply holds the lock ends the wait at once instead of after
``--lock-timeout``; a wait that runs out still fails with ``LockTimeout`` naming the
holder and the whole time waited.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

from reconciler.apply.checks import check_fresh
from reconciler.apply.result import ApplyResult
from reconciler.apply.runner import RepoProgress, Runner
from reconciler.desired.loader import load_desired
from reconciler.desired.model import DesiredState
from reconciler.errors import Interrupted, LockTimeout
from reconciler.ops.stop import StopToken
from reconciler.plan.make import make_plan
from reconciler.plan.model import Plan
from reconciler.plan.observe import RefreshProgress, SourceFactory, file_sha256
from reconciler.plan.v1refresh import V1SourceFactory
from reconciler.store.protocol import Store

#: called with the plan before anything of it is applied (the CLI prints it)
OnPlan = Callable[[Plan], None]

#: the lock is waited for in slices this long (seconds), looking at the stop token between them
LOCK_SLICE = 0.25


@contextmanager
def locked(store: Store, timeout: float, stop: StopToken | None) -> Iterator[None]:
    """The store lock, as ``store.lock(timeout)``, unless ``stop`` is requested first."""
    if stop is None:
        with store.lock(timeout):
            yield
        return
    deadline = time.monotonic() + max(timeout, 0.0)
    with ExitStack() as held:
        while True:
            stop.check()
            left = deadline - time.monotonic()
            try:
                held.enter_context(store.lock(max(0.0, min(LOCK_SLICE, left))))
                break
            except LockTimeout as exc:
                if time.monotonic() < deadline:
                    continue
                raise LockTimeout(re.sub(r"\(waited [0-9.e+-]+ s\)", f"(waited {timeout:g} s)", exc.message),
                                  hint=exc.hint) from None
        yield


def journal_stopped_while_planning(store: Store, command: str, reason: str) -> None:
    """An apply stopped while it was still planning: nothing was written but this entry."""
    entry = store.journal_start(command=command, plan_digest=None, details={})
    store.journal_finish(entry, result="interrupted",
                         details={"summary": f"stopped while planning: {reason}; nothing was changed",
                                  "stopped": reason})


def apply_desired(store: Store, desired: DesiredState, sources: SourceFactory, *, command: str,
                  targets: Sequence[str] = (), lock_timeout: float = 60.0, prune_repositories: bool = False,
                  progress: RepoProgress | None = None, refresh_progress: RefreshProgress | None = None,
                  stop: StopToken | None = None, skip_unavailable: bool = False, on_plan: OnPlan | None = None,
                  v1_sources: V1SourceFactory | None = None, publish_grace: bool = True) -> tuple[Plan, ApplyResult]:
    """Plan ``desired`` and apply it, under one hold of the store lock."""
    with locked(store, lock_timeout, stop):
        try:
            plan, observed = make_plan(store, desired, sources, targets=targets,
                                       prune_repositories=prune_repositories, progress=refresh_progress, stop=stop,
                                       v1_sources=v1_sources, publish_grace=publish_grace)
        except Interrupted as exc:
            journal_stopped_while_planning(store, command, exc.message)
            raise
        if on_plan is not None:
            on_plan(plan)
        result = Runner(plan, store, desired, sources=sources, command=command, manifests=observed.manifests,
                        progress=progress, v1_sources=v1_sources, stop=stop, skip_unavailable=skip_unavailable).run()
    return plan, result


def apply_saved(store: Store, plan: Plan, sources: SourceFactory, *, command: str, lock_timeout: float = 60.0,
                progress: RepoProgress | None = None, stop: StopToken | None = None, skip_unavailable: bool = False,
                on_plan: OnPlan | None = None, v1_sources: V1SourceFactory | None = None) -> ApplyResult:
    """Apply a saved plan exactly, unless the store, repos.yaml or an upload file changed
    since it was made (``check_fresh``)."""
    desired = load_desired(plan.desired_path)
    with locked(store, lock_timeout, stop):
        check_fresh(plan, store, desired, file_sha256)
        if on_plan is not None:
            on_plan(plan)
        return Runner(plan, store, desired, sources=sources, command=command, progress=progress,
                      v1_sources=v1_sources, stop=stop, skip_unavailable=skip_unavailable).run()
