"""Human rendering of a ``Plan`` in the Terraform style (DESIGN.md section 5).

Pure: ``render_text(plan, color=False) -> str``. One block per repository (``+`` new,
``~`` changed, ``-`` deleted, ``=`` unchanged), one line per action with shortened
digests and human-readable sizes, then unmanaged content, warnings and the summary line
``Plan: N to add, N to change, N to remove.`` or ``No changes.``. The CLI decides on
colour (a TTY and no ``NO_COLOR``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reconciler.model import Digest
from reconciler.plan.model import Action, Change, Op, Plan, RepoSummary
from reconciler.store.protocol import version_ranges

_COLORS = {"+": "\x1b[32m", "~": "\x1b[33m", "-": "\x1b[31m", "=": "\x1b[2m"}
_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"


def human_bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"1 {word}"
    return f"{n} {word}es" if word.endswith("x") else f"{n} {word}s"


def counts_text(counts: Mapping[str, int], order: tuple[str, ...] = ("tags", "indexes", "manifests", "blobs")) -> str:
    """``{"indexes": 1, "blobs": 5}`` -> ``1 index, 5 blobs``."""
    singular = {"tags": "tag", "indexes": "index", "manifests": "manifest", "blobs": "blob",
                "v1_images": "v1 image", "v1_tags": "v1 tag"}
    return ", ".join(_plural(int(counts.get(k, 0)), singular[k]) for k in order if counts.get(k, 0))


def _download_text(a: Action) -> str:
    d = a.download
    if d.empty:
        return ""
    if d.blobs:
        return f"{_plural(d.blobs, 'blob')}, {human_bytes(d.bytes)} to download"
    return f"{_plural(d.manifests, 'manifest')} to download"


def _skipped_text(a: Action) -> str:
    """``platforms not mirrored: linux/arm/v7, linux/s390x (41.0 MiB not downloaded)``."""
    if not a.skipped:
        return ""
    n = len(a.skipped)
    what = ", ".join(a.platforms_skipped) or f"{n} index {'entry' if n == 1 else 'entries'}"
    saved = f" ({human_bytes(a.saved_bytes)} not downloaded)" if a.saved_bytes else ""
    return f"platforms not mirrored: {what}{saved}"


def _cascade_text(a: Action) -> str:
    rest = {k: v for k, v in a.removes.items() if k != "tags"}
    text = counts_text(rest)
    return f"cascade: {text}" if text else ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def action_line(a: Action, plan: Plan | None = None, *, full: bool = False) -> str:
    """The words after the symbol, e.g. ``tag latest   sha256:9e1f2a3b4c5d… -> sha256:4c1a0b1c2d3e…   tag
    moved upstream``; ``full`` writes digests whole (the Markdown details)."""
    def _short(d: Digest | None) -> str:
        return "?" if d is None else (str(d) if full else d.short())

    after = ""
    if a.source_repo and plan is not None and any(
            plan_action_repo(plan, dep) == a.source_repo for dep in a.depends_on):
        after = f"(after {a.source_repo})"
    if a.op in (Op.SYNC_TAG, Op.COPY_TAG, Op.PIN_TAG, Op.REMOVE_TAG):
        prefix = "copy tag" if a.op is Op.COPY_TAG else "tag"
        head = f"{prefix} {a.tag}"
        if a.op is Op.COPY_TAG:
            head += f" from {a.source_repo}"
        if a.op is Op.REMOVE_TAG:
            digests = _short(a.old_digest)
        elif a.old_digest is None and a.old_origin is not None and a.change is Change.UPDATE:
            # same digest, another origin: say what changes, or the line shows none
            digests = f"{_short(a.digest)}   origin {a.old_origin} -> {_origin(a.op)}"
        elif a.old_digest is not None:
            digests = f"{_short(a.old_digest)} -> {_short(a.digest)}"
        elif a.op is Op.PIN_TAG and a.source_repo:
            digests = f"-> {a.source_repo}:{a.source_tag} = {_short(a.digest)}"
        elif a.op is Op.PIN_TAG:
            digests = f"-> {_short(a.digest)}"
        else:
            digests = _short(a.digest)
        if a.op is Op.PIN_TAG and a.source_repo and a.old_digest is not None:
            digests += f" ({a.source_repo}:{a.source_tag})"
        return "   ".join(x for x in (head, digests, _join(a.reason, _download_text(a), _skipped_text(a),
                                                         _cascade_text(a)), after) if x)
    if a.op is Op.COPY_CONTENT:
        head = f"copy {_plural(len(a.digests), a.kind or 'manifest')} from {a.source_repo}"
        return "   ".join(x for x in (head, _join(a.reason, counts_text(dict(a.adds)), _skipped_text(a)), after) if x)
    if a.op is Op.REMOVE_CONTENT:
        kind = a.kind or "manifest"
        subject = _short(a.digests[0]) if len(a.digests) == 1 else _plural(len(a.digests), kind)
        head = f"{kind} {subject}" if len(a.digests) == 1 else subject
        return "   ".join(x for x in (head, _join(a.reason, _cascade_text(a))) if x)
    if a.op is Op.UPLOAD:
        shown = a.file or ""
        if plan is not None and shown.startswith(str(Path(plan.desired_path).parent) + "/"):
            shown = shown[len(str(Path(plan.desired_path).parent)) + 1:]  # as written in repos.yaml
        head = f"upload {shown}" + (f" as tag {a.tag}" if a.tag else (
            f" (tags {', '.join(a.upload_tags)})" if a.upload_tags else ""))
        return "   ".join(x for x in (head, _join(a.reason, counts_text(dict(a.adds)))) if x)
    if a.op is Op.V1_UPLOAD:
        shown = a.file or ""
        if plan is not None and shown.startswith(str(Path(plan.desired_path).parent) + "/"):
            shown = shown[len(str(Path(plan.desired_path).parent)) + 1:]
        head = f"v1 upload {shown}" + (f" masking {a.mask_id[:12]}" if a.mask_id else "")
        return "   ".join(x for x in (head, _join(a.reason, counts_text(dict(a.adds), ("v1_images", "v1_tags"))))
                           if x)
    if a.op is Op.V1_SYNC:
        head = f"v1 sync {a.upstream_name} ({_plural(len(a.v1_tags), 'v1 tag')})"
        return "   ".join(x for x in (head, _join(a.reason, counts_text(dict(a.adds), ("v1_tags",)))) if x)
    if a.op is Op.PUBLISH:
        what = f"publish as {a.publish_name}" + (" (protected)" if a.protected else "")
        takes = f"takes the name from {a.release_from}" if a.release_from else ""
        together = ("in one switch with " + ", ".join(sorted({o.repo for o in plan.actions if o.handover == a.handover
                                                              and o.repo != a.repo}))
                    if plan is not None and a.handover else "")
        return "   ".join((what, _join(a.reason, takes, together)))
    if a.op is Op.UNPUBLISH:
        return "   ".join((f"unpublish {a.publish_name}", a.reason))
    if a.op is Op.CREATE_REPOSITORY:
        return "   ".join(x for x in ("create repository", a.reason) if x)
    if a.op is Op.UPDATE_REPOSITORY:
        return "   ".join((f"feed {a.feed or '-'} {a.upstream_name or ''}".rstrip(), a.reason))
    if a.op is Op.DELETE_REPOSITORY:
        return "   ".join(x for x in ("delete repository", _join(a.reason, counts_text(dict(a.removes)))) if x)
    if a.op is Op.DROP_VERSIONS:
        return "   ".join((drop_versions_text(a), a.reason))
    return f"{a.op.value} {a.reason}"  # pragma: no cover - every op is handled above


def drop_versions_text(a: Action) -> str:
    """``drop versions 3-7 (frees ~212.4 MiB once gc runs)``."""
    noun = "version" if len(a.versions) == 1 else "versions"
    frees = f" (frees ~{human_bytes(a.frees_bytes)} once gc runs)" if a.frees_bytes is not None else ""
    return f"drop {noun} {version_ranges(a.versions)}{frees}"
def _origin(op: Op) -> str:
    return {Op.SYNC_TAG: "sync", Op.COPY_TAG: "copy", Op.PIN_TAG: "pin", Op.UPLOAD: "upload"}.get(op, op.value)


def plan_action_repo(plan: Plan, action_id: str) -> str | None:
    try:
        return plan.action(action_id).repo  # a dict lookup: asked for every dependency of every action
    except KeyError:
        return None


def incomplete_text(plan: Plan) -> str:
    """``1 repository could not be refreshed; 1 error in what repos.yaml asks`` ('' when complete)."""
    refresh = len({e.repo for e in plan.errors if e.kind == "refresh"})
    blocked = len({e.repo for e in plan.errors if e.kind == "blocked"})
    others = sum(1 for e in plan.errors if e.kind not in ("refresh", "blocked"))
    parts = []
    if refresh:
        parts.append(f"{refresh} {'repository' if refresh == 1 else 'repositories'} could not be refreshed")
    if blocked:
        parts.append(f"{blocked} {'waits' if blocked == 1 else 'wait'} for {'it' if refresh == 1 else 'them'}")
    if others:
        parts.append(f"{others} {'error' if others == 1 else 'errors'} in what repos.yaml asks")
    return "; ".join(parts)


def summary_line(plan: Plan) -> str:
    """``Plan: N to add, ...``, ``No changes.``, or for a plan with errors ``Plan incomplete:
    ...`` (never ``No changes.``: what could not be seen may well have changed)."""
    counts = (f"{plan.count(Change.CREATE)} to add, {plan.count(Change.UPDATE)} to change, "
              f"{plan.count(Change.DELETE)} to remove.")
    d = plan.download
    if d.blobs:
        counts += f" {human_bytes(d.bytes)} to download."
    if plan.failed_tags:
        counts += f" {_plural(len(plan.failed_tags), 'tag')} failed."
    if plan.errors:
        return f"Plan incomplete: {incomplete_text(plan)}. For the rest: {counts}"
    if not plan.has_changes and not plan.failed_tags:
        return "No changes."
    return f"Plan: {counts}"


def _header(r: RepoSummary, failed: bool = False) -> str:
    parts = [f"{r.status} {r.id}"]
    if r.label:
        parts.append(f"({r.label})")
    if r.publish_name:
        parts.append(f"published as {r.publish_name}")
    if r.error:
        parts.append("could not be planned: see the error below")
    elif r.status == "=" and not failed:
        parts.append("no changes")
    return "  ".join(parts)


def render_text(plan: Plan, *, color: bool = False, refresh_line: bool = True) -> str:
    """``refresh_line`` False leaves out the ``Refreshed ...`` line (a saved plan being
    applied: that refresh happened when it was made, not now)."""
    def paint(symbol: str, text: str) -> str:
        return f"{_COLORS[symbol]}{text}{_RESET}" if color and symbol in _COLORS else text

    lines: list[str] = []
    r = plan.refresh
    if refresh_line:
        if r.refreshed:
            noun = "repository" if r.upstreams == 1 else "repositories"
            unread = min(r.upstreams, len({e.repo for e in plan.errors if e.kind == "refresh"}))
            count = f"{r.upstreams - unread} of {r.upstreams}" if unread else f"{r.upstreams}"
            lines.append(f"Refreshed {count} upstream {noun} ({_plural(r.tags, 'tag')}) in {r.seconds:.1f} s")
        else:
            lines.append("Upstreams not refreshed (--no-refresh): sync changes are not shown")
        lines.append("")
    failed: dict[str, list[str]] = {}
    for f in plan.failed_tags:
        failed.setdefault(f.repo, []).append(f"! tag {f.tag}   FAILED: {f.error}")
    for repo in plan.repositories:
        lines.append("  " + paint(repo.status, _header(repo, repo.id in failed)))
        if repo.selection:
            lines.append(f"      {repo.selection}")
        lines += [f"      {note}" for note in repo.notes]
        for a in plan.actions_for(repo.id):
            if a.op in (Op.CREATE_REPOSITORY, Op.DELETE_REPOSITORY) and repo.status in ("+", "-"):
                continue  # the header already says it
            lines.append("      " + paint(a.change.value, f"{a.change.value} {action_line(a, plan)}"))
        lines += ["      " + paint("-", line) for line in failed.get(repo.id, ())]
    if plan.repositories:
        lines.append("")
    unmanaged = [u for u in plan.unmanaged if u.tags or u.untagged_manifests or u.untagged_indexes]
    if unmanaged:
        parts = []
        for u in unmanaged:
            bits = []
            if u.tags:
                bits.append(f"{'tag' if len(u.tags) == 1 else 'tags'} {', '.join(u.tags)}")
            untagged = counts_text({"indexes": u.untagged_indexes, "manifests": u.untagged_manifests})
            if untagged:
                bits.append(f"untagged {untagged}")
            parts.append(f"{u.repo} has {' and '.join(bits)}")
        lines.append("Unmanaged, kept because prune is off: " + "; ".join(parts))
    if plan.unknown_repositories:
        lines.append("Not in repos.yaml, kept (use --prune-repositories to remove): "
                     + ", ".join(plan.unknown_repositories))
    for w in plan.warnings:
        lines.append(paint("~", f"Warning: {w}"))
    for e in plan.errors:
        lines.append(paint("-", f"Error: {e}"))
        if e.hint:
            lines.append(f"  hint: {e.hint}")
    if unmanaged or plan.unknown_repositories or plan.warnings or plan.errors:
        lines.append("")
    summary = summary_line(plan)
    lines.append(f"{_BOLD}{summary}{_RESET}" if color else summary)
    return "\n".join(lines) + "\n"
