"""Human rendering of a ``Plan`` in the Terraform style (docs/architecture.md, "The plan").

Pure: ``render_text(plan, color=False) -> str``. One block per repository (``+`` new,
``~`` changed, ``-`` deleted, ``=`` unchanged), one line per action with shortened
digests and human-readable sizes, then unmanaged content, warnings and the summary line
``Plan: N to add, N to change, N to remove.`` or ``No changes.``. The CLI decides on
colour (a TTY and no ``NO_COLOR``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import singledispatch
from pathlib import Path

from reconciler.model import Digest
from reconciler.model.repository import version_ranges
from reconciler.plan.actions import (
    Action,
    BaseAction,
    Change,
    CopyContent,
    CopyTag,
    CreateRepository,
    DeleteRepository,
    DropVersions,
    Op,
    PinTag,
    Publish,
    RemoveContent,
    RemoveTag,
    SetTag,
    SyncReferrers,
    SyncTag,
    Unpublish,
    UpdateRepository,
    Upload,
    V1Sync,
    V1Upload,
)
from reconciler.plan.model import Plan, RepoSummary

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


def _download_text(a: BaseAction) -> str:
    d = a.download
    if d.empty:
        return ""
    if d.blobs:
        return f"{_plural(d.blobs, 'blob')}, {human_bytes(d.bytes)} to download"
    return f"{_plural(d.manifests, 'manifest')} to download"


def _skipped_text(a: SetTag | CopyContent) -> str:
    """``platforms not mirrored: linux/arm/v7, linux/s390x (41.0 MiB not downloaded)``."""
    if not a.skipped:
        return ""
    n = len(a.skipped)
    what = ", ".join(a.platforms_skipped) or f"{n} index {'entry' if n == 1 else 'entries'}"
    saved = f" ({human_bytes(a.saved_bytes)} not downloaded)" if a.saved_bytes else ""
    return f"platforms not mirrored: {what}{saved}"


def _cascade_text(a: BaseAction) -> str:
    rest = {k: v for k, v in a.removes.items() if k != "tags"}
    text = counts_text(rest)
    return f"cascade: {text}" if text else ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _line(*parts: str) -> str:
    """The columns of an action line; empty ones left out."""
    return "   ".join(p for p in parts if p)


def action_line(a: Action, plan: Plan | None = None, *, full: bool = False) -> str:
    """The words after the symbol, e.g. ``tag latest   sha256:9e1f2a3b4c5d… -> sha256:4c1a0b1c2d3e…   tag
    moved upstream``; ``full`` writes digests whole (the Markdown details). Each action type
    has its words (``_words``)."""
    return _words(a, _Context(plan, full))


@dataclass(frozen=True)
class _Context:
    plan: Plan | None
    full: bool

    def short(self, d: Digest | None) -> str:
        return "?" if d is None else (str(d) if self.full else d.short())

    def after(self, a: BaseAction) -> str:
        """``(after SOURCE)`` when the action waits for an action of its source repository."""
        source = a.source_repo
        if source and self.plan is not None and any(plan_action_repo(self.plan, dep) == source
                                                    for dep in a.depends_on):
            return f"(after {source})"
        return ""

    def file(self, file: str) -> str:
        """An upload file as written in repos.yaml (relative to its folder)."""
        if self.plan is not None and file.startswith(str(Path(self.plan.desired_path).parent) + "/"):
            return file[len(str(Path(self.plan.desired_path).parent)) + 1:]
        return file


@singledispatch
def _words(a: BaseAction, c: _Context) -> str:
    return f"{a.op.value} {a.reason}"  # pragma: no cover - every action type registers its words


def _set_tag(a: SetTag, c: _Context, head: str, target: str = "", source: str = "") -> str:
    """A tag set by a sync, copy or pin: ``target`` how a new tag's digest is shown,
    ``source`` named after a moved one."""
    if a.old_digest is None and a.old_origin is not None and a.change is Change.UPDATE:
        # same digest, another origin: say what changes, or the line shows none
        digests = f"{c.short(a.digest)}   origin {a.old_origin} -> {a.new_origin.value}"
    elif a.old_digest is not None:
        digests = f"{c.short(a.old_digest)} -> {c.short(a.digest)}" + (f" ({source})" if source else "")
    else:
        digests = target or c.short(a.digest)
    return _line(head, digests, _join(a.reason, _download_text(a), _skipped_text(a), _cascade_text(a)), c.after(a))


@_words.register
def _sync_tag(a: SyncTag, c: _Context) -> str:
    return _set_tag(a, c, f"tag {a.tag}")


@_words.register
def _sync_referrers(a: SyncReferrers, c: _Context) -> str:
    n = len(set(a.digests) | {Digest.parse(d) for d in a.referrer_tags.values()})
    kinds = referrer_kinds(a.artifact_types)
    head = f"{_plural(n, 'referrer')} of {a.tag}" + (f": {kinds}" if kinds else "")
    return _line(head, _join(a.reason, _download_text(a)))


def referrer_kinds(artifact_types: Iterable[str]) -> str:
    """``signature, SBOM``: what referrers are, in words people use, each kind once."""
    words = set(referrer_kind(t) for t in artifact_types)
    return ", ".join(sorted(words, key=lambda w: (_KIND_ORDER.index(w) if w in _KIND_ORDER else len(_KIND_ORDER), w)))


_KIND_ORDER = ("signature", "SBOM", "attestation", "scan report")


def referrer_kind(artifact_type: str) -> str:
    t = artifact_type.lower()
    for needles, word in ((("simplesigning", "sigstore.bundle", "signature", "notary"), "signature"),
                          (("spdx", "cyclonedx", "syft", "sbom"), "SBOM"),
                          (("in-toto", "dsse", "attestation", "provenance"), "attestation"),
                          (("vuln", "sarif", "scan"), "scan report")):
        if any(n in t for n in needles):
            return word
    return artifact_type or "referrer"


@_words.register
def _copy_tag(a: CopyTag, c: _Context) -> str:
    return _set_tag(a, c, f"copy tag {a.tag} from {a.source_repo}")


@_words.register
def _pin_tag(a: PinTag, c: _Context) -> str:
    if a.source_repo:
        source = f"{a.source_repo}:{a.source_tag}"
        return _set_tag(a, c, f"tag {a.tag}", f"-> {source} = {c.short(a.digest)}", source)
    return _set_tag(a, c, f"tag {a.tag}", f"-> {c.short(a.digest)}")


@_words.register
def _remove_tag(a: RemoveTag, c: _Context) -> str:
    return _line(f"tag {a.tag}", c.short(a.old_digest), _join(a.reason, _download_text(a), _cascade_text(a)),
                 c.after(a))


@_words.register
def _copy_content(a: CopyContent, c: _Context) -> str:
    head = f"copy {_plural(len(a.digests), a.kind or 'manifest')} from {a.source_repo}"
    return _line(head, _join(a.reason, counts_text(dict(a.adds)), _skipped_text(a)), c.after(a))


@_words.register
def _remove_content(a: RemoveContent, c: _Context) -> str:
    kind = a.kind or "manifest"
    head = f"{kind} {c.short(a.digests[0])}" if len(a.digests) == 1 else _plural(len(a.digests), kind)
    return _line(head, _join(a.reason, _cascade_text(a)))


@_words.register
def _upload(a: Upload, c: _Context) -> str:
    head = f"upload {c.file(a.file)}" + (f" as tag {a.tag}" if a.tag else (
        f" (tags {', '.join(a.upload_tags)})" if a.upload_tags else ""))
    return _line(head, _join(a.reason, counts_text(dict(a.adds))))


@_words.register
def _v1_upload(a: V1Upload, c: _Context) -> str:
    head = f"v1 upload {c.file(a.file)}" + (f" masking {a.mask_id[:12]}" if a.mask_id else "")
    return _line(head, _join(a.reason, counts_text(dict(a.adds), ("v1_images", "v1_tags"))))


@_words.register
def _v1_sync(a: V1Sync, c: _Context) -> str:
    head = f"v1 sync {a.upstream_name} ({_plural(len(a.v1_tags), 'v1 tag')})"
    return _line(head, _join(a.reason, counts_text(dict(a.adds), ("v1_tags",))))


@_words.register
def _publish(a: Publish, c: _Context) -> str:
    what = f"publish as {a.publish_name}" + (" (protected)" if a.protected else "")
    takes = f"takes the name from {a.release_from}" if a.release_from else ""
    together = ""
    if c.plan is not None and a.handover:
        others = {o.repo for o in c.plan.actions if isinstance(o, (Publish, Unpublish))
                  and o.handover == a.handover and o.repo != a.repo}
        together = "in one switch with " + ", ".join(sorted(others))
    return "   ".join((what, _join(a.reason, takes, together)))


@_words.register
def _unpublish(a: Unpublish, c: _Context) -> str:
    return "   ".join((f"unpublish {a.publish_name}", a.reason))


@_words.register
def _create_repository(a: CreateRepository, c: _Context) -> str:
    return _line("create repository", a.reason)


@_words.register
def _update_repository(a: UpdateRepository, c: _Context) -> str:
    return "   ".join((f"feed {a.feed or '-'} {a.upstream_name or ''}".rstrip(), a.reason))


@_words.register
def _delete_repository(a: DeleteRepository, c: _Context) -> str:
    return _line("delete repository", _join(a.reason, counts_text(dict(a.removes))))


@_words.register
def _drop_versions(a: DropVersions, c: _Context) -> str:
    return "   ".join((drop_versions_text(a), a.reason))


def drop_versions_text(a: DropVersions) -> str:
    """``drop versions 3-7 (frees ~212.4 MiB once gc runs)``."""
    noun = "version" if len(a.versions) == 1 else "versions"
    frees = f" (frees ~{human_bytes(a.frees_bytes)} once gc runs)" if a.frees_bytes is not None else ""
    return f"drop {noun} {version_ranges(a.versions)}{frees}"


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
