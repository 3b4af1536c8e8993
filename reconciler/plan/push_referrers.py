"""What goes along with a pushed tag (issue 23): its image's referrers, as the repository
will hold them once the plan is applied.

Two kinds, as sync brings them (docs/signatures.md):

- cosign's classic tags (``sha256-<hex>.sig``, ``.att``, ``.sbom``) are tags: a target
  selecting an image's tag also selects the cosign tags of that image's digest
  (``with_cosign_tags``), whatever its ``tags`` filter says, and they are pushed like any tag;
- OCI 1.1 referrers are untagged manifests whose ``subject`` is the image (or one of an
  index's children, or another referrer: a signature of an SBOM). ``ReferrersAfter``
  lists them, subjects before their referrers: those the repository's current version
  holds (``version_referrers``), plus those the plan's ``SyncReferrers`` actions add,
  minus what the plan's ``RemoveContent`` actions remove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from reconciler.model import Digest, Index, Manifest
from reconciler.model.referrers import breadth_first, is_cosign_tag
from reconciler.plan.actions import RemoveContent, SyncReferrers
from reconciler.plan.model import Plan
from reconciler.plan.observed import Observed
from reconciler.store.protocol import Store


@dataclass(frozen=True)
class PlannedReferrer:
    digest: Digest
    #: its artifact type ("" when unknown)
    artifact_type: str
    #: the ``SyncReferrers`` action that brings it into the repository (None: held already)
    added_by: str | None = None


def with_cosign_tags(selected: Iterable[str], tags: Mapping[str, Digest]) -> list[str]:
    """``selected`` and the cosign tags (``sha256-<hex>.sig`` ...) of the images they name."""
    chosen = set(selected)
    images = {f"{tags[t].algorithm}-{tags[t].hex}" for t in chosen}
    chosen |= {t for t in tags if is_cosign_tag(t) and t.rpartition(".")[0] in images}
    return sorted(chosen)


class ReferrersAfter:
    """The OCI 1.1 referrers of an image in ``repo`` after ``plan`` (see the module doc)."""

    def __init__(self, plan: Plan, observed: Observed, store: Store, repo: str,
                 lookup: Callable[[Digest], Manifest | Index | None]) -> None:
        self.store, self.repo, self.lookup = store, repo, lookup
        obs = observed.repos.get(repo)
        self.version = obs.repository.latest_version if obs is not None and obs.repository.latest_version else None
        self.removed: set[Digest] = set()
        #: subject -> referrers the plan adds (with the action adding them)
        self.added: dict[Digest, list[PlannedReferrer]] = {}
        upstream = observed.upstreams.get(repo)
        found = upstream.referrers if upstream is not None else {}
        for a in plan.actions_for(repo):
            if isinstance(a, RemoveContent):
                self.removed |= set(a.digests)
            elif isinstance(a, SyncReferrers):
                new = set(a.digests)
                for subject, refs in found.items():
                    for f in refs:
                        if f.digest in new and f.tag is None:  # (a cosign tag is pushed as a tag)
                            self.added.setdefault(subject, []).append(
                                PlannedReferrer(f.digest, f.artifact_type or "", a.id))

    def _direct(self, subject: Digest) -> list[PlannedReferrer]:
        held = [] if self.version is None else [
            PlannedReferrer(r.digest, r.artifact_type or "")
            for r in self.store.version_referrers(self.repo, self.version, subject)]
        return [r for r in held + self.added.get(subject, []) if r.digest not in self.removed]

    def of(self, root: Digest) -> list[PlannedReferrer]:
        """The referrers of ``root``, of the manifests an index ``root`` lists, and of
        theirs, breadth first (each after its subject), each once."""
        return breadth_first([d for d, _ in walk_under(root, self.lookup)], self._direct)


def walk_under(root: Digest, lookup: Callable[[Digest], Manifest | Index | None],
               ) -> Iterator[tuple[Digest, Manifest | Index | None]]:
    """Each digest under ``root`` (itself included) once, with what ``lookup`` knows of it
    (None: unknown here); the children of known indexes are walked."""
    stack, seen = [root], set()
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        m = lookup(d)
        if isinstance(m, Index):
            stack += m.children()
        yield d, m
