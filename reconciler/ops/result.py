"""``OpResult``: what a one-off content command did to one repository (one new version,
none if nothing changed, with the same added/removed summary Pulp's ``content_summary``
shows), and ``commit_v1``, where a v1 operation's content becomes a version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.errors import ContentNotFound
from reconciler.model import Digest
from reconciler.model.content import V1Content
from reconciler.model.repository import ContentSummary, VersionInfo
from reconciler.ops.state import RepoState
from reconciler.store.protocol import Store


@dataclass(frozen=True)
class OpResult:
    """What an operation did to one repository."""

    repo_id: str
    version: VersionInfo | None  # None: nothing changed, no version was made
    summary: ContentSummary
    details: Mapping[str, object] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.version is not None

    def to_json(self) -> dict[str, object]:
        return {
            "repository": self.repo_id,
            "version": self.version.number if self.version else None,
            "changed": self.changed,
            **self.summary.to_json(),
            "details": dict(self.details),
        }


def commit_v1(store: Store, repo_id: str, content: V1Content, *, operation: str,
               details: Mapping[str, object]) -> OpResult:
    """Make ``content`` the v1 side of ``repo_id``'s next version (one ``v1_commit``,
    from the latest version: the caller holds the store lock)."""
    base = store.repository_get(repo_id).latest_version
    info = store.v1_commit(repo_id, base=base, content=content, operation=operation)
    return OpResult(repo_id, info, info.summary if info else ContentSummary(), dict(details))


def resolve_digests(state: RepoState, names: Iterable[str], *, kind: str, where: str) -> list[Digest]:
    """Turn digests (or tag names, for convenience) into digests of ``kind``
    (``manifest`` or ``index``) present in ``state``; every unknown one is reported at once."""
    pool = state.content.manifests if kind == "manifest" else state.content.indexes
    out: list[Digest] = []
    missing: list[str] = []
    wrong: list[str] = []
    for name in names:
        if Digest.is_valid(name):
            digest = Digest.parse(name)
        elif name in state.tags:
            digest = state.tags[name].digest
        else:
            missing.append(name)
            continue
        if digest in pool:
            if digest not in out:
                out.append(digest)
        elif digest in state.content:
            wrong.append(f"{name} is a {state.kind_of(digest)}")
        else:
            missing.append(name)
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"not in {where}: {', '.join(missing)}")
        if wrong:
            parts.append(f"not {'an index' if kind == 'index' else 'a manifest'}: {'; '.join(wrong)}")
        raise ContentNotFound(f"{kind}s {'; '.join(parts)}",
                              hint=f"see `reconciler repo show {where.split()[-1]}`; give full digests (sha256:...) or tag names")
    return out
