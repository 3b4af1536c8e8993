"""Prometheus metrics of ``reconciler watch`` (``--metrics-port``), in their own registry.

What an operator alerts on: the time of the last tick that left the store in sync and
of the last successful apply, applies by result, the drift each apply corrected by
cause, consecutive failures, and how long applies and ticks take.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from reconciler.plan.drift import CAUSES
from reconciler.watch.loop import APPLIED, FAILED, NO_CHANGES, PARTIAL, TickReport

_DURATIONS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class WatchMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.ticks = Counter("reconciler_watch_ticks", "Ticks of the watch loop, by result", ["result"], registry=r)
        self.applies = Counter("reconciler_watch_applies", "Applies, by journal result", ["result"], registry=r)
        self.corrected = Counter("reconciler_watch_drift_corrected",
                                 "Plan actions applied to correct drift, by cause", ["cause"], registry=r)
        self.drift = Gauge("reconciler_watch_drift_actions", "Plan actions the last tick found, by cause",
                           ["cause"], registry=r)
        self.last_sync = Gauge("reconciler_watch_last_sync_timestamp_seconds",
                               "When a tick last left the store matching repos.yaml (no changes, or applied)",
                               registry=r)
        self.last_apply = Gauge("reconciler_watch_last_successful_apply_timestamp_seconds",
                                "When an apply last ended ok", registry=r)
        self.failures = Gauge("reconciler_watch_consecutive_failures", "Failed ticks in a row", registry=r)
        self.apply_seconds = Histogram("reconciler_watch_apply_duration_seconds", "Seconds per apply",
                                       buckets=_DURATIONS, registry=r)
        self.tick_seconds = Histogram("reconciler_watch_tick_duration_seconds",
                                      "Seconds per tick (fetch, plan and apply)", buckets=_DURATIONS, registry=r)
        for result in (NO_CHANGES, APPLIED, PARTIAL, FAILED):
            self.ticks.labels(result)
        for result in ("ok", "partial", "failed", "interrupted"):
            self.applies.labels(result)
        for cause in CAUSES:
            self.corrected.labels(cause)
            self.drift.labels(cause).set(0)

    def observe(self, report: TickReport) -> None:
        o = report.outcome
        self.ticks.labels(report.result).inc()
        self.tick_seconds.observe(report.duration)
        self.failures.set(report.failures)
        for cause in CAUSES:
            self.drift.labels(cause).set(o.drift.get(cause, 0))
        if o.apply_result is not None:
            self.applies.labels(o.apply_result).inc()
            if o.apply_seconds is not None:
                self.apply_seconds.observe(o.apply_seconds)
            if o.apply_result == "ok":
                self.last_apply.set(report.started + report.duration)
                for cause, n in o.drift.items():
                    self.corrected.labels(cause).inc(n)
        if report.result in (NO_CHANGES, APPLIED):
            self.last_sync.set(report.started + report.duration)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
