"""The diff of one repository: desired spec + predicted state -> actions (pure).

``RepoDiff`` walks a repository's declaration in the order apply executes it (sync,
uploads, copies, tag pins, removals, prune, publish), transforming a ``RepoState`` the
way each action will, so later steps see the state earlier ones leave behind. It records
which action brings each digest and sets each tag: those are the dependencies (a copy
depends on the source repository's action that set the tag it copies).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from reconciler.desired.model import RepositorySpec
from reconciler.model import Descriptor, Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.platforms import PlatformFilter
from reconciler.ops.cascade import unreferenced
from reconciler.ops.state import RepoState
from reconciler.ops.uploadtags import entry_tags
from reconciler.plan import model as pm
from reconciler.plan import steps, subsets
from reconciler.plan.actions import (
    Action,
    Change,
    CopyTag,
    CreateRepository,
    Op,
    PinTag,
    RemoveContent,
    RemoveTag,
    SetTag,
    SyncTag,
    UpdateRepository,
    Upload,
)
from reconciler.plan.diff_copy import copied_tags
from reconciler.plan.diff_publish import publish_step
from reconciler.plan.diff_referrers import copies_with_referrers, keep_unseen, plan_referrers
from reconciler.plan.diff_retain import retain_step
from reconciler.plan.diff_sync import few, outranked_note, owned_elsewhere, sync_reason, sync_warnings
from reconciler.plan.diff_v1 import v1_steps
from reconciler.plan.ledger import Ledger, Unplannable
from reconciler.plan.observed import ObservedRepo


class RepoDiff:
    def __init__(self, spec: RepositorySpec, observed: ObservedRepo | None, ledger: Ledger) -> None:
        self.spec = spec
        self.repo = spec.id
        self.obs = observed
        self.ledger = ledger
        self.graph = ledger.graph
        self.state = observed.state if observed else RepoState()
        self.actions: list[Action] = []
        self.base_deps: tuple[str, ...] = ()
        self.declared_tags: set[str] = set()
        self.declared_roots: set[Digest] = set()
        self.prune_safe = True  # False when an upload's content is unknown (never prune blind)
        self.unmanaged: pm.Unmanaged | None = None
        #: action id -> (content, tags count) it removes at its step (before ``_recount``)
        self.removed: dict[str, tuple[ContentSet, int]] = {}
        #: lines for the repository's block that are not actions (RepoSummary.notes)
        self.notes: list[str] = []
        #: (the state it was worked out for, ``unreferenced`` of it): see ``unreferenced``
        self._unreferenced: tuple[RepoState, ContentSet] | None = None

    # -- helpers --------------------------------------------------------------------------
    def _ids(self, op: Op, subject: str, deps: Iterable[str] = ()) -> tuple[str, tuple[str, ...]]:
        """The id of the next action (``REPO/OP/SUBJECT``, unique in the plan) and what it
        depends on: the repository's creation, then ``deps``."""
        action_id = self.ledger.unique_id(f"{self.repo}/{op.value}/{subject}")
        return action_id, tuple(dict.fromkeys([*self.base_deps, *(d for d in deps if d != action_id)]))

    def unreferenced(self) -> ContentSet:
        """``ops.cascade.unreferenced`` of the state as it is now, worked out once per state:
        it walks every tag, and a repository whose upstream was not refreshed asks for it
        twice with nothing changed in between (``keep_unseen``, then ``_prune``): a third
        of a big ``plan --no-refresh``'s graph walks."""
        if self._unreferenced is None or self._unreferenced[0] is not self.state:
            self._unreferenced = (self.state, unreferenced(self.state, self.graph))
        return self._unreferenced[1]

    def _add(self, action: Action) -> Action:
        self.actions.append(action)
        return action

    def _bring(self, action: Action, before: RepoState) -> None:
        """Record that ``action`` brings the content and tags it added."""
        for digest, _ in self.state.content.difference(before.content).items():
            self.ledger.provider.setdefault((self.repo, digest), action.id)
        for name, entry in self.state.tags.items():
            if before.tags.get(name) != entry:
                self.ledger.tag_setter[(self.repo, name)] = action.id

    def _providers(self, repo: str, content: ContentSet) -> list[str]:
        return sorted({self.ledger.provider[(repo, d)] for d, _ in content.items()
                       if (repo, d) in self.ledger.provider})

    def _source_state(self, source: str, path: tuple[str | int, ...]) -> RepoState:
        if source == self.repo:
            return self.state
        if source in self.ledger.after:
            return self.ledger.after[source]
        obs = self.ledger.observed.repos.get(source)
        if obs is None:
            raise Unplannable(f"copies from {source!r}, which is neither in repos.yaml nor in the store",
                              path=path, hint="declare the source repository")
        return obs.state

    def _failed_upstream(self, source: str, tag: str, what: str, name: str | None = None) -> bool:
        """When ``source``'s tag ``tag`` is missing because it failed upstream, this
        repository's tag ``name`` (default ``tag``) fails with it instead of the plan."""
        cause = next((f for f in self.ledger.failed_tags if (f.repo, f.tag) == (source, tag)), None)
        if cause is None:
            return False
        self.declared_tags.add(name or tag)
        self.ledger.failed_tags.append(pm.FailedTag(self.repo, name or tag,
                                                    f"{what}: tag {tag} failed there: {cause.error}"))
        return True

    def _skips(self, roots: Iterable[Digest], platforms: PlatformFilter | None,
               absent: frozenset[Digest] = frozenset()) -> tuple[frozenset[Digest], tuple[Descriptor, ...]]:
        return subsets.skips(self.graph, self.ledger.observed, roots, platforms, absent)

    def _set_tag(self, kind: type[SetTag], tag: str, digest: Digest, reason: str, *,
                 deps: Iterable[str] = (), cascade: bool = False, source: tuple[str, str] | None = None,
                 skip: frozenset[Digest] = frozenset(), entries: tuple[Descriptor, ...] = (),
                 origin: Origin | None = None) -> None:
        """A ``SyncTag`` (``cascade``: a mirror), ``CopyTag`` or ``PinTag`` (``source``:
        the repository and tag it copies or pins to; ``origin``: another than ``pin``) of
        ``tag`` to ``digest``, leaving out the index children ``skip`` (``entries``: the
        index entries naming them)."""
        current = self.state.tags.get(tag)
        origin = origin or kind.origin
        step = steps.set_tag(self.state, self.graph, tag, digest, origin, cascade=cascade, skip=skip)
        if step.state == self.state:
            return
        if step.state.tags == self.state.tags and step.state.content == self.state.content:
            return  # only what the version records as absent changed: nothing to do
        new = step.state.content.difference(self.state.content)
        change = Change.CREATE if current is None else Change.UPDATE
        before, same = self.state, current is not None and current.digest == digest
        action_id, depends_on = self._ids(kind.op, tag, deps)
        old_digest = current.digest if current and not same else None
        old_origin = current.origin.value if current and same and current.origin != origin else None
        adds, removes = steps.counts(new), steps.counts(step.removed)
        sk = subsets.skipped_fields(self.graph, self.ledger.observed, [digest], skip, entries)
        action: SetTag
        if kind is SyncTag:
            action = SyncTag(id=action_id, repo=self.repo, change=change, reason=reason, depends_on=depends_on,
                             tag=tag, digest=digest, old_digest=old_digest, old_origin=old_origin,
                             download=self.ledger.download_for(new), adds=adds, removes=removes,
                             cascade=cascade and bool(len(step.removed)), skipped=sk.digests,
                             platforms_skipped=sk.platforms, saved_bytes=sk.saved_bytes)
        elif kind is CopyTag:
            assert source is not None  # a copy always names its source
            action = CopyTag(id=action_id, repo=self.repo, change=change, reason=reason, depends_on=depends_on,
                             tag=tag, digest=digest, old_digest=old_digest, old_origin=old_origin, adds=adds,
                             removes=removes, source_repo=source[0], source_tag=source[1], skipped=sk.digests,
                             platforms_skipped=sk.platforms, saved_bytes=sk.saved_bytes)
        else:
            action = PinTag(id=action_id, repo=self.repo, change=change, reason=reason, depends_on=depends_on,
                            tag=tag, digest=digest, old_digest=old_digest, old_origin=old_origin, adds=adds,
                            removes=removes, source_repo=source[0] if source else None,
                            source_tag=source[1] if source else None, skipped=sk.digests,
                            platforms_skipped=sk.platforms, saved_bytes=sk.saved_bytes,
                            tag_origin=None if origin is PinTag.origin else origin.value)
        self._add(action)
        self.removed[action.id] = (step.removed, 0)
        self.state = step.state
        self._bring(action, before)

    def _remove_tag(self, tag: str, reason: str, *, cascade: bool = False) -> None:
        step = steps.remove_tag(self.state, self.graph, tag, cascade=cascade)
        action_id, depends_on = self._ids(Op.REMOVE_TAG, tag)
        action = self._add(RemoveTag(id=action_id, repo=self.repo, change=Change.DELETE, reason=reason,
                                     depends_on=depends_on, tag=tag, old_digest=self.state.tags[tag].digest,
                                     cascade=cascade, removes=steps.counts(step.removed, tags=step.removed_tags)))
        self.removed[action.id] = (step.removed, step.removed_tags)
        self.state = step.state

    # -- steps, in apply order --------------------------------------------------------------
    def run(self) -> list[Action]:
        if self._empty_and_new():
            self.ledger.not_created.add(self.repo)
            self.ledger.after[self.repo] = self.state
            return []
        self._repository()
        self._sync()
        self._uploads()
        copies_with_referrers(self)  # the copies, then what refers to what they bring
        self._pins()
        self._removals()
        self._prune()
        self._v1()
        self._publish()
        self._recount()
        self._retain()
        self.ledger.after[self.repo] = self.state
        return self.actions

    def _recount(self) -> None:
        """What each action is shown to remove, counted against the whole plan: content a
        later action of this repository brings back (a copy or pin of the same manifest)
        is not removed, and is not counted (the apply still takes the same steps)."""
        final = self.state.content
        for i, a in enumerate(self.actions):
            removed, tags = self.removed.get(a.id, (ContentSet(), 0))
            if len(removed) and len(removed.difference(final)) != len(removed):
                self.actions[i] = dataclasses.replace(a, removes=steps.counts(removed.difference(final), tags=tags))

    def _repository(self) -> None:
        spec = self.spec
        feed = spec.feed.url if spec.feed else None
        if self.obs is None:
            action_id, depends_on = self._ids(Op.CREATE_REPOSITORY, "repository")
            a = self._add(CreateRepository(id=action_id, repo=self.repo, change=Change.CREATE, reason=pm.DECLARED,
                                           depends_on=depends_on, feed=feed, upstream_name=spec.upstream_name))
            self.base_deps = (a.id,)
        elif (self.obs.repository.feed, self.obs.repository.upstream_name) != (feed, spec.upstream_name):
            action_id, depends_on = self._ids(Op.UPDATE_REPOSITORY, "repository")
            self._add(UpdateRepository(id=action_id, repo=self.repo, change=Change.UPDATE, reason=pm.DECLARED,
                                       depends_on=depends_on, feed=feed, upstream_name=spec.upstream_name))

    def _empty_and_new(self) -> bool:
        """A repository that does not exist yet, whose only content would come from an
        upstream that lists no tags: creating it empty helps nobody (and an unknown
        name on registries that answer 200 with no tags looks exactly like this), so it
        is not created unless ``allow_empty``."""
        spec = self.spec
        upstream = self.ledger.observed.upstreams.get(self.repo)
        if self.obs is not None or upstream is None or upstream.error or upstream.listed or spec.allow_empty:
            return False
        if spec.uploads or spec.copies or spec.pins or spec.enable_v1:
            return False
        self.ledger.warnings.append(
            f"{self.repo}: upstream {upstream.name} lists no tags, so the repository is not created "
            "(a wrong upstream_name looks exactly like this on registries that answer an unknown name with an "
            "empty list); allow_empty: true creates it empty")
        return True

    def _excluded(self) -> set[str]:
        """Tag names another declaration owns: a pin, an upload, a copy or a removal wins
        over the sync (otherwise the sync and the copy take the tag from each other on
        every plan, and apply never converges)."""
        return owned_elsewhere(self.spec, self.ledger.observed.uploads) | copied_tags(self)

    def _sync(self) -> None:
        spec = self.spec
        if spec.feed is None:
            return
        excluded = self._excluded()
        upstream = self.ledger.observed.upstreams.get(self.repo)
        synced = [t for t, e in self.state.tags.items() if e.origin is Origin.SYNC]
        synced_here = spec.tag_filter.matching(synced) - excluded
        if upstream is None or upstream.error:
            # not refreshed (or the refresh failed): what was synced stays declared, nothing moves
            self.declared_tags |= synced_here
            if spec.referrers.enabled:
                keep_unseen(self, synced)
            if upstream is not None and upstream.error:
                self.ledger.errors[self.repo] = f"refreshing upstream {upstream.name} failed: {upstream.error}"
            return
        matching = {t: d for t, d in upstream.tags.items() if spec.tag_filter.matches(t)}
        selected = {t: d for t, d in matching.items() if t not in excluded}
        self.declared_tags |= set(selected)
        # listed upstream but without a digest here (failed, or deleted while we looked):
        # they stay declared and keep what they point at; a mirror never removes them
        unresolved = {t for t in upstream.unresolved if spec.tag_filter.matches(t) and t not in excluded}
        self.declared_tags |= unresolved
        for tag in sorted(t for t in upstream.failed if t in unresolved):
            self.ledger.failed_tags.append(pm.FailedTag(self.repo, tag, upstream.failed[tag]))
        self.ledger.warnings += [f"{self.repo}: {note}" for note in upstream.notes]
        for tag, why in sorted(upstream.refused.items()):
            if tag in unresolved:
                self.notes.append(f"tag {tag} not synced: {why}")
        for tag in sorted(selected):
            reason = sync_reason(self.state.tags.get(tag), selected[tag], self.obs)
            skip, entries = self._skips([selected[tag]], spec.platforms)
            self._set_tag(SyncTag, tag, selected[tag], reason, cascade=spec.mirror, skip=skip, entries=entries)
        if spec.referrers.enabled:
            plan_referrers(self, upstream, selected, excluded)
        gone = sorted(synced_here - set(selected) - unresolved)
        refused = spec.mirror and bool(gone) and not selected and not unresolved and not spec.allow_empty
        self.ledger.warnings += sync_warnings(self.repo, spec, upstream, matching=bool(matching),
                                              unresolved=bool(unresolved), gone=gone, refused=refused)
        outranked = sorted(t for t in gone if t in upstream.outranked)
        if not spec.mirror:
            self.declared_tags |= synced_here  # additive sync: vanished tags stay and stay declared
            if outranked:
                self.notes.append(outranked_note(outranked, spec.tag_filter.latest))
            return
        if refused:
            self.declared_tags |= synced_here
            return
        for tag in gone:
            reason = pm.OUTRANKED.format(n=spec.tag_filter.latest) if tag in outranked else pm.TAG_GONE_UPSTREAM
            self._remove_tag(tag, reason, cascade=True)

    def _uploads(self) -> None:
        for upload in self.spec.uploads:
            if upload.v1:
                continue  # planned by _v1
            key = (self.repo, str(upload.file))
            info = self.ledger.observed.uploads.get(key)
            if upload.tag:
                self.declared_tags.add(upload.tag)
            if info is None or info.content is None:
                # cannot see inside the file without importing it: import when the tag is
                # missing, and never prune this repository blind
                self.prune_safe = False
                if upload.tag is None or upload.tag not in self.state.tags:
                    action_id, depends_on = self._ids(Op.UPLOAD, str(upload.file))
                    self._add(Upload(id=action_id, repo=self.repo, change=Change.CREATE, reason=pm.DECLARED,
                                     depends_on=depends_on, file=str(upload.file), tag=upload.tag,
                                     file_digest=info.file_digest if info else None))
                continue
            self.declared_roots |= set(info.roots)
            # the tags the import will set: every tag the file names, or just ``tag:``
            wanted = entry_tags(upload.tag, info.roots, info.tags, where=str(upload.file))
            self.declared_tags |= set(wanted)
            moved = {t: d for t, d in wanted.items() if (cur := self.state.tags.get(t)) is None or cur.digest != d}
            # a tag already at its target that another origin set becomes the upload's, as a
            # pin or copy of it does (and the one-off ``upload --tag`` always did): a mirror
            # must not remove a tag the file declares when the upstream drops it
            taken = {t for t, d in wanted.items() if (cur := self.state.tags.get(t)) is not None
                     and cur.digest == d and cur.origin is not Origin.UPLOAD}
            new = info.content.difference(self.state.content)
            if not len(new) and not moved and not taken:
                continue
            target = wanted.get(upload.tag) if upload.tag else None
            current = self.state.tags.get(upload.tag) if upload.tag else None
            before = self.state
            change = Change.UPDATE if taken or any(t in self.state.tags for t in moved) else Change.CREATE
            action_id, depends_on = self._ids(Op.UPLOAD, str(upload.file))
            action = self._add(Upload(id=action_id, repo=self.repo, change=change, reason=pm.DECLARED,
                                      depends_on=depends_on, file=str(upload.file), tag=upload.tag, digest=target,
                                      file_digest=info.file_digest,
                                      old_digest=current.digest if current and current.digest != target else None,
                                      upload_tags={t: str(d) for t, d in sorted(wanted.items())},
                                      adds=steps.counts(new)))
            self.state = self.state.with_content(info.content)
            self.state = self.state.with_tags({t: TagEntry(d, Origin.UPLOAD) for t, d in wanted.items()})
            self._bring(action, before)

    def _pins(self) -> None:
        for pin in self.spec.pins:
            self.declared_tags.add(pin.name)
            at: tuple[str | int, ...] = ("repositories", self.repo, "pins", pin.name)
            if pin.source_repo and pin.source_tag:
                src = self._source_state(pin.source_repo, at)
                entry = src.tags.get(pin.source_tag)
                if entry is None and self._failed_upstream(pin.source_repo, pin.source_tag,
                                                           f"pin to {pin.source_repo}:{pin.source_tag}", pin.name):
                    continue
                if entry is None:
                    raise Unplannable(f"pins tag {pin.name!r} to {pin.source_repo}:{pin.source_tag}, a tag that "
                                      f"will not exist after this plan ({pin.source_repo} will have "
                                      f"{few(src.tags)})", path=at, hint="fix the tag in repos.yaml")
                digest = entry.digest
                closure = self.graph.closure([digest], src.absent)
                deps = self._providers(pin.source_repo, closure)
                setter = self.ledger.tag_setter.get((pin.source_repo, pin.source_tag))
                if setter:
                    deps.append(setter)
                self._set_tag(PinTag, pin.name, digest, pm.DECLARED, deps=deps,
                              source=(pin.source_repo, pin.source_tag), skip=src.absent, origin=pin.origin)
            else:
                assert pin.digest is not None
                if pin.digest not in self.state.content.manifests | self.state.content.indexes:
                    raise Unplannable(f"pins tag {pin.name!r} to {pin.digest}, which the repository will not "
                                      "hold after this plan", path=at,
                                      hint="copy or upload that manifest first, or fix the digest")
                deps = self._providers(self.repo, self.graph.closure([pin.digest], self.state.absent))
                self._set_tag(PinTag, pin.name, pin.digest, pm.DECLARED, deps=deps, skip=self.state.absent,
                              origin=pin.origin)

    def _removals(self) -> None:
        rm = self.spec.remove
        for tag in rm.tags:
            if tag in self.state.tags:
                self._remove_tag(tag, pm.DECLARED)
        for kind, digests in (("index", rm.indexes), ("manifest", rm.manifests)):
            pool = self.state.content.indexes if kind == "index" else self.state.content.manifests
            present = tuple(sorted(d for d in digests if d in pool))
            if not present:
                continue
            step = steps.remove_content(self.state, self.graph, kind, present)
            action_id, depends_on = self._ids(Op.REMOVE_CONTENT, f"{kind}s")
            action = self._add(RemoveContent(id=action_id, repo=self.repo, change=Change.DELETE, reason=pm.DECLARED,
                                             depends_on=depends_on, kind=kind, digests=present,
                                             removes=steps.counts(step.removed, tags=step.removed_tags)))
            self.removed[action.id] = (step.removed, step.removed_tags)
            self.state = step.state

    def _prune(self) -> None:
        undeclared = sorted(t for t in self.state.tags if t not in self.declared_tags)
        declared_content = self.graph.closure(self.declared_roots)
        if not self.spec.prune:
            orphans = self.unreferenced().difference(declared_content)
            if undeclared or orphans.manifests or orphans.indexes:
                self.unmanaged = pm.Unmanaged(self.repo, tuple(undeclared), len(orphans.manifests),
                                              len(orphans.indexes))
            return
        if not self.prune_safe:
            self.ledger.warnings.append(f"{self.repo}: prune skipped: an upload's content is not known "
                                        "before import; run apply again to prune")
            return
        for tag in undeclared:
            self._remove_tag(tag, pm.REMOVED_FROM_DESIRED)
        orphans = self.unreferenced().difference(declared_content)
        roots = tuple(sorted(orphans.manifests | orphans.indexes))
        step = steps.remove_content(self.state, self.graph, "untagged", roots)
        if not len(step.removed):
            return
        action_id, depends_on = self._ids(Op.REMOVE_CONTENT, "untagged")
        action = self._add(RemoveContent(id=action_id, repo=self.repo, change=Change.DELETE,
                                         reason=pm.REMOVED_FROM_DESIRED, depends_on=depends_on, kind="untagged",
                                         digests=roots, removes=steps.counts(step.removed)))
        self.removed[action.id] = (step.removed, 0)
        self.state = step.state

    def _v1(self) -> None:
        for action in v1_steps(self.spec, self.ledger.observed, self.ledger.errors, self._ids):
            self._add(action)

    def _retain(self) -> None:
        observed = self.ledger.observed
        action = retain_step(self.spec, observed.history.get(self.repo), self.actions,
                             self.obs.state if self.obs else RepoState(), self.state, self._ids,
                             publish_grace=observed.publish_grace)
        if action is not None:
            self._add(action)

    def _publish(self) -> None:
        action = publish_step(self.spec, self.obs.repository if self.obs else None, self.actions, self._ids)
        if action is not None:
            self._add(action)
