"""``tag``: create or move a tag to a manifest or index that is in the repository
(docs/original-system.md, "Tag" and "One tag per name")."""

from __future__ import annotations

from reconciler.errors import ContentNotFound
from reconciler.model import Digest, validate_tag
from reconciler.model.content import Origin, TagEntry
from reconciler.ops.result import OpResult, commit_state
from reconciler.ops.state import RepoState
from reconciler.store.protocol import Store


def tag_state(state: RepoState, tag: str, digest: Digest | str,
              origin: Origin = Origin.MANUAL, *, repo_id: str = "the repository") -> RepoState:
    """The state with ``tag`` pointing at ``digest`` (created, or moved if it existed)."""
    validate_tag(tag)
    d = digest if isinstance(digest, Digest) else Digest.parse(digest)
    if d not in state.content.manifests and d not in state.content.indexes:
        what = "is a blob in" if d in state.content.blobs else "is not a manifest or index in"
        raise ContentNotFound(
            f"cannot tag {tag!r}: {d} {what} {repo_id}",
            hint="tag a manifest or index of this repository (see `reconciler repo show`); "
                 "upload or copy it in first")
    return state.with_tags({tag: TagEntry(d, origin)})


def tag(store: Store, repo_id: str, tag: str, digest: Digest | str, *, origin: Origin = Origin.MANUAL) -> OpResult:
    """Create or move ``tag`` in ``repo_id``: exactly one new version (none if unchanged)."""
    before = store.version_get(repo_id)
    old = before.tags.get(tag)
    after = tag_state(RepoState.of(before), tag, digest, origin, repo_id=f"repository {repo_id!r}")
    details = {"tag": tag, "digest": str(after.tags[tag].digest),
               "previous": str(old.digest) if old else None}
    return commit_state(store, before, after, operation=f"tag {tag}", details=details)
