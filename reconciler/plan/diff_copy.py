"""The copy step of a repository's diff (pure): ``copy:`` entries -> ``CopyTag`` and
``CopyContent`` actions, against what each source repository will hold after this plan
(``RepoDiff._source_state``: its planned state when it is planned first, else the store's).

A copied tag is owned by the copy: the repository's own sync leaves a tag of that name
alone (``copied_tags``), as it does for pins and uploads; otherwise the two would take the
tag from each other on every plan and apply would never converge. With ``tags: all`` the
copy owns every tag the source will have.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from reconciler.desired.model import ALL, Selection
from reconciler.errors import ContentNotFound
from reconciler.model import Digest
from reconciler.ops.copy import check_references
from reconciler.ops.state import RepoState
from reconciler.plan import model as pm
from reconciler.plan import steps, subsets
from reconciler.plan.actions import Change, CopyContent, CopyTag, Op
from reconciler.plan.diff_sync import few
from reconciler.plan.ledger import Unplannable

if TYPE_CHECKING:
    from reconciler.plan.diff_repo import RepoDiff


def copy_names(selection: Selection, available: Iterable[str]) -> list[str]:
    """The names a copy selects: all of ``available`` (sorted) or the ones it lists."""
    return sorted(available) if selection == ALL else list(selection)


def copied_tags(diff: RepoDiff) -> set[str]:
    """The tag names the repository's copies set (module docstring)."""
    owned: set[str] = set()
    for n, copy in enumerate(diff.spec.copies):
        if copy.tags != ALL:
            owned.update(copy.tags)
        elif copy.from_repo != diff.repo:
            # every tag the source will have after this plan (as ``plan_copies`` reads it)
            owned.update(diff._source_state(copy.from_repo, ("repositories", diff.repo, "copy", n)).tags)
    return owned


def plan_copies(diff: RepoDiff) -> None:
    """The repository's ``copy:`` entries: a ``CopyTag`` per copied tag, a ``CopyContent``
    per kind of copied manifests or indexes that brings something new."""
    for n, copy in enumerate(diff.spec.copies):
        source = copy.from_repo
        at: tuple[str | int, ...] = ("repositories", diff.repo, "copy", n)
        src = diff._source_state(source, at)
        for i, tag in enumerate(copy_names(copy.tags, src.tags)):
            entry = src.tags.get(tag)
            if entry is None and diff._failed_upstream(source, tag, f"copy from {source}"):
                continue
            if entry is None:
                raise Unplannable(
                    f"copies tag {tag!r} from {source!r}, which will not have it "
                    f"after this plan (it has {few(src.tags)})", path=(*at, "tags", i),
                    hint="fix the tag name in repos.yaml or make the source repository provide it")
            diff.declared_tags.add(tag)
            _check_references(diff, src, [entry.digest], "tag", source, (*at, "tags", i))
            skip, entries = diff._skips([entry.digest], copy.platforms, src.absent)
            closure = diff.graph.closure([entry.digest], skip)
            deps = [*diff._providers(source, closure)]
            if (source, tag) in diff.ledger.tag_setter:
                deps.append(diff.ledger.tag_setter[(source, tag)])
            diff._set_tag(CopyTag, tag, entry.digest, pm.DECLARED, deps=deps, source=(source, tag), skip=skip,
                          entries=entries)
        for kind, selection, pool in (("manifest", copy.manifests, src.content.manifests),
                                      ("index", copy.indexes, src.content.indexes)):
            if selection != ALL and not selection:
                continue
            digests = sorted(pool) if selection == ALL else [Digest.parse(d) for d in selection]
            absent = [str(d) for d in digests if d not in pool]
            if absent:
                raise Unplannable(f"copies {kind} {', '.join(absent)} from {source!r}, which will not hold "
                                  "it after this plan", path=(*at, f"{kind}s" if kind == "manifest" else "indexes"),
                                  hint="fix the digest in repos.yaml or make the source repository hold it")
            _check_references(diff, src, digests, kind, source, at)
            diff.declared_roots |= set(digests)
            skip, entries = diff._skips(digests, copy.platforms if kind == "index" else None, src.absent)
            closure = diff.graph.closure(digests, skip)
            new = closure.difference(diff.state.content)
            if not len(new):
                continue
            before = diff.state
            action_id, depends_on = diff._ids(Op.COPY_CONTENT, f"{kind}-from-{source}",
                                              diff._providers(source, closure))
            sk = subsets.skipped_fields(diff.graph, diff.ledger.observed, digests, skip, entries)
            action = diff._add(CopyContent(id=action_id, repo=diff.repo, change=Change.CREATE,
                                           reason=pm.DECLARED, depends_on=depends_on, source_repo=source,
                                           kind=kind, digests=tuple(d for d in digests if d in new),
                                           adds=steps.counts(new), skipped=sk.digests,
                                           platforms_skipped=sk.platforms, saved_bytes=sk.saved_bytes))
            diff.state = diff.state.with_content(closure, diff.graph.left_out(closure, skip))
            diff._bring(action, before)


def _check_references(diff: RepoDiff, src: RepoState, digests: list[Digest], kind: str, source: str,
                      at: tuple[str | int, ...]) -> None:
    try:
        check_references(src, diff.graph, digests, kind, source_id=f"repository {source!r}")
    except ContentNotFound as exc:
        raise Unplannable(exc.message, path=at, hint=exc.hint) from exc
