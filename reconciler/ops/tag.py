"""``tag``: create or move a tag to a manifest or index that is in the repository
(docs/original-system.md, "Tag" and "One tag per name"). The pure check and state change;
the command plans and applies it as a pin (``apply.content_commands.tag_command``)."""

from __future__ import annotations

from reconciler.errors import ContentNotFound
from reconciler.model import Digest, validate_tag
from reconciler.model.content import Origin, TagEntry
from reconciler.ops.state import RepoState


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

