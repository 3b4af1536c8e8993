"""Plan-wide bookkeeping of the diff, shared by every repository's ``RepoDiff``.

``Ledger`` holds what one repository's diff leaves for the next ones: the predicted state
of every repository after the plan, which action sets each tag and brings each digest
(the dependencies of copies and pins), what is already counted as a download, the
warnings, the per-repository and per-tag failures, and the action ids in use.
``Unplannable`` is how a repository's diff says that repos.yaml asks the impossible of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.errors import ContentNotFound
from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.ops.cascade import RefGraph
from reconciler.ops.state import RepoState
from reconciler.plan import model as pm
from reconciler.plan.actions import Download
from reconciler.plan.observed import Observed


class Unplannable(ContentNotFound):
    """repos.yaml asks for something this repository cannot do after the plan (a copied
    tag its source will not have, a pinned digest it will not hold). ``path`` locates the
    entry in repos.yaml; the diff reports it as a plan error and plans the rest."""

    def __init__(self, message: str, *, path: tuple[str | int, ...], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.path = path


@dataclass
class Ledger:
    """Plan-wide bookkeeping shared by every repository's diff."""

    observed: Observed
    #: predicted state of every repository after this plan
    after: dict[str, RepoState] = field(default_factory=dict)
    #: (repo, tag) -> id of the action that sets it; (repo, digest) -> action bringing it
    tag_setter: dict[tuple[str, str], str] = field(default_factory=dict)
    provider: dict[tuple[str, Digest], str] = field(default_factory=dict)
    counted_blobs: set[Digest] = field(default_factory=set)
    counted_manifests: set[Digest] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    #: repository id -> why it could not be planned
    errors: dict[str, str] = field(default_factory=dict)
    #: upstream tags that fail on their own (the rest of their repository is planned)
    failed_tags: list[pm.FailedTag] = field(default_factory=list)
    #: repositories left out: a new repository whose upstream lists no tags (allow_empty)
    not_created: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @property
    def graph(self) -> RefGraph:
        return self.observed.graph

    def download_for(self, content: ContentSet) -> Download:
        """Upstream content in ``content`` the store lacks and no earlier action fetches."""
        missing = self.observed.missing_blobs
        blobs = [b for b in content.blobs if b in missing and b not in self.counted_blobs]
        manifests = [m for m in (content.manifests | content.indexes)
                     if m in self.observed.missing_manifests and m not in self.counted_manifests]
        self.counted_blobs.update(blobs)
        self.counted_manifests.update(manifests)
        return Download(len(blobs), sum(missing[b] for b in blobs), len(manifests))

    def forget(self, action_ids: Iterable[str]) -> None:
        """Drop what actions that will not be in the plan were recorded as bringing."""
        gone = set(action_ids)
        self.tag_setter = {k: v for k, v in self.tag_setter.items() if v not in gone}
        self.provider = {k: v for k, v in self.provider.items() if v not in gone}

    def unique_id(self, base: str) -> str:
        candidate, n = base, 2
        while candidate in self.ids:
            candidate, n = f"{base}#{n}", n + 1
        self.ids.add(candidate)
        return candidate
