"""Wiring of ``reconciler watch``: one reconcile (plan, then apply under the store lock),
the checkout folder, the metrics port, and the loop put together.

``reconcile_once`` plans without the lock (a tick with nothing to do never blocks a
manual apply), then takes the lock only to apply; if the store changed in between (a
manual apply got there first), it plans again under the lock. When an upstream cannot be
refreshed, the repositories that do not need it are still applied (``--target`` of the
others) and the rest wait for the next tick: one registry's outage does not freeze every
repository.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler import api
from reconciler.apply.runner import Runner
from reconciler.desired.loader import load_desired
from reconciler.desired.model import DesiredState
from reconciler.errors import InvalidInput
from reconciler.plan.diff import with_sources
from reconciler.plan.drift import STORE, drift_for
from reconciler.plan.model import Plan
from reconciler.server.probes import SideServer
from reconciler.store.protocol import Store
from reconciler.watch.git import GitCheckout
from reconciler.watch.loop import Outcome, StopFlag, TickReport, WatchLoop
from reconciler.watch.metrics import WatchMetrics


def healthy_repositories(desired: DesiredState, plan: Plan) -> set[str]:
    """Declared repositories whose plan did not fail and whose sources (copies, pins)
    did not either."""
    bad = {r.id for r in plan.repositories if r.error}
    return {r for r in desired.repositories if not with_sources(desired.repositories, [r]) & bad}


def _drift(store: Store, desired: DesiredState, plan: Plan) -> dict[str, int]:
    return {c: n for c, n in drift_for(store, desired, plan).counts().items() if n and c != STORE}


def reconcile_once(store: Store, path: Path, provenance: Mapping[str, str], *, lock_timeout: float,
                   command: str) -> Outcome:
    desired = load_desired(path)
    with api.UpstreamPool() as sources:
        plan, observed = api.plan_observed(store, desired, sources)
        upstreams, tags = plan.refresh.upstreams, plan.refresh.tags
        errors: tuple[str, ...] = ()
        waiting: tuple[str, ...] = ()
        targets: Sequence[str] = ()
        if plan.errors:
            errors = tuple(str(e) for e in plan.errors)
            healthy = healthy_repositories(desired, plan)
            waiting = tuple(sorted(set(desired.repositories) - healthy))
            if not healthy:
                return Outcome(errors=errors, waiting=waiting, upstreams=upstreams, tags=tags)
            targets = sorted(healthy)
            plan, observed = api.plan_observed(store, desired, sources, targets=targets)
        if not plan.has_changes:
            # tags that failed on their own are errors of the tick (with changes, apply reports them)
            failed_tags = tuple(f"{f.repo}: tag {f.tag}: {f.error}" for f in plan.failed_tags)
            return Outcome(errors=errors + failed_tags, waiting=waiting, upstreams=upstreams, tags=tags)
        with store.lock(lock_timeout):
            if store.generation() != plan.store_generation:
                # another writer got the lock first: plan again against what it left
                plan, observed = api.plan_observed(store, desired, sources, targets=targets)
                if not plan.has_changes:
                    return Outcome(errors=errors, waiting=waiting, upstreams=upstreams, tags=tags)
            drift = _drift(store, desired, plan)
            started = time.monotonic()
            result = Runner(plan, store, desired, sources=sources, command=command, manifests=observed.manifests,
                            v1_sources=api.v1_source, provenance=provenance).run()
            seconds = time.monotonic() - started
    outcome = result.outcome  # ok, partial, failed or interrupted (a lost lock)
    failed = tuple(f"{r.id}: {r.error}" for r in result.results if r.error)
    return Outcome(len(plan.actions), drift, outcome, result.journal_id, seconds, waiting, errors + failed,
                   upstreams, tags)


def checkout_folder(store: Store, url: str, explicit: str | None) -> Path:
    """Where ``--git`` clones to: ``--checkout-dir``, else a folder of a directory store."""
    if explicit:
        return Path(explicit)
    if "://" in store.location:
        raise InvalidInput(f"the store {store.location} has no folder to keep the git checkout in",
                           hint="give one with --checkout-dir DIR")
    return Path(store.location) / "watch" / hashlib.sha256(url.encode()).hexdigest()[:16]


def run_watch(store: Store, file: str, *, git_url: str | None, ref: str | None, checkout_dir: str | None,
              interval: float, jitter: float, max_backoff: float, lock_timeout: float, git_timeout: float,
              metrics_port: int | None, metrics_host: str, stop: StopFlag,
              on_tick: Callable[[TickReport], None], on_listen: Callable[[int], None] | None = None) -> None:
    """Run the loop until ``stop``; ``on_tick`` renders each tick (the CLI's log line)."""
    git = None
    if git_url is not None:
        git = GitCheckout(git_url, checkout_folder(store, git_url, checkout_dir), ref=ref, timeout=git_timeout)
    elif ref is not None:
        raise InvalidInput("--ref needs --git", hint="give the repository: --git URL --ref BRANCH")
    command = f"watch -f {file}" + (f" --git {git.shown_url}" if git else "")

    def reconcile(path: Path, provenance: Mapping[str, str]) -> Outcome:
        at = f" @ {provenance['git_commit'][:12]}" if "git_commit" in provenance else ""
        return reconcile_once(store, path, provenance, lock_timeout=lock_timeout, command=command + at)

    metrics = WatchMetrics()
    side = None
    if metrics_port is not None:
        def ready() -> str | None:
            store.generation()  # raises when the store cannot be reached
            return None

        side = SideServer(metrics_host, metrics_port, metrics=metrics.exposition, check=ready).start()
        if on_listen is not None:
            on_listen(side.port)
    loop = WatchLoop(file, reconcile, git=git, interval=interval, jitter=jitter, max_backoff=max_backoff,
                     stop=stop, observers=(metrics.observe, on_tick))
    try:
        loop.run()
    finally:
        if side is not None:
            side.stop()
