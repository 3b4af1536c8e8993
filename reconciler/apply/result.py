"""What an apply did: each action's outcome, the versions it made, the publications it
switched, and whether it was interrupted; ``journal()`` is what the journal keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.errors import ReconcilerError

DONE, FAILED, SKIPPED = "done", "failed", "skipped"
#: the error of an action skipped because the apply stopped first
NOT_STARTED = "not started: the apply stopped"


@dataclass
class ActionResult:
    id: str
    status: str
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in (("id", self.id), ("status", self.status), ("error", self.error)) if v is not None}


@dataclass
class ApplyResult:
    plan_digest: str
    results: list[ActionResult] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    #: every publish name whose publication changed: name, repo/version now, from_repo/from_version before
    publications: list[dict[str, object]] = field(default_factory=list)
    journal_id: int | None = None

    #: why the apply stopped before its end (Ctrl-C, SIGTERM, the apply lock lost), if it
    #: did, and the exit code that asks for (130 / 143 for the signals)
    stopped: str | None = None
    exit_code: int = 1
    #: tags the plan already knew failed (``Plan.failed_tags``), reported as failed actions
    planned_failures: int = 0
    #: action id -> the error it failed with (a one-off command raises it: its type, hint
    #: and exit code); not part of the JSON form
    errors: dict[str, ReconcilerError] = field(default_factory=dict, repr=False)

    def status(self, status: str) -> list[ActionResult]:
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> bool:
        return not self.status(FAILED) and not self.status(SKIPPED) and self.stopped is None

    @property
    def outcome(self) -> str:
        """The journal's word: ``ok``, ``partial``, ``failed`` or ``interrupted``."""
        if self.stopped is not None:
            return "interrupted"
        if self.ok:
            return "ok"
        # failed: something was to be done and none of it was (tags that failed when
        # planned are reported, but the rest being applied makes it partial)
        return "failed" if not self.status(DONE) and len(self.results) > self.planned_failures else "partial"

    def summary(self) -> str:
        """One line for ``reconciler history``."""
        if not self.results and self.stopped is None:
            return "no changes"
        counts = ", ".join(f"{len(self.status(s))} {s}" for s in (DONE, FAILED, SKIPPED) if self.status(s))
        text = counts or "nothing done"
        if self.publications:
            text += "; " + ", ".join(
                f"{p['name']} -> {p['repo']}@{p['version']}" if p["repo"] else f"{p['name']} unpublished"
                for p in self.publications)
        if self.stopped is not None:
            text += f"; stopped: {self.stopped}"
        return text

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "plan_digest": self.plan_digest, "journal_id": self.journal_id,
                "versions": self.versions, "published": self.published, "publications": self.publications,
                **({"stopped": self.stopped} if self.stopped is not None else {}),
                "actions": [r.to_json() for r in self.results]}

    def journal(self) -> dict[str, object]:
        """What the journal keeps: a short entry when nothing had to change."""
        if not self.results and self.stopped is None:
            return {"summary": "no changes", "ok": True}
        return {"summary": self.summary(), **self.to_json()}
