"""``remove``: take tags, manifests or indexes out of a repository with the cascade rules
of ``reconciler.ops.cascade`` (docs/original-system.md, "The cascade rules"). The pure
check; the command plans and applies the repos.yaml ``remove:`` entry
(``apply.content_commands.remove_command``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from reconciler.errors import ContentNotFound, InvalidInput
from reconciler.ops.cascade import RefGraph, Removal, cascade_remove
from reconciler.ops.result import resolve_digests
from reconciler.ops.state import RepoState

RemoveKind = Literal["tag", "manifest", "index"]
KINDS: tuple[RemoveKind, ...] = ("tag", "manifest", "index")


def remove_state(state: RepoState, graph: RefGraph, kind: RemoveKind, names: Sequence[str], *,
                 repo_id: str = "the repository") -> Removal:
    """Resolve ``names`` in ``state`` and cascade; ``Removal.state`` is the new state.
    Unknown names are all reported at once; nothing is removed then."""
    if kind not in KINDS:
        raise InvalidInput(f"cannot remove {kind!r}: expected one of {', '.join(KINDS)}")
    if not names:
        raise InvalidInput(f"remove {kind}: name at least one {kind}")
    if kind == "tag":
        unknown = [n for n in names if n not in state.tags]
        if unknown:
            raise ContentNotFound(f"tags not in {repo_id}: {', '.join(unknown)}",
                                  hint=f"see `reconciler repo show {repo_id.split()[-1]}`")
        return cascade_remove(state, graph, tags=names)
    digests = resolve_digests(state, names, kind=kind, where=repo_id)
    if kind == "manifest":
        return cascade_remove(state, graph, manifests=digests)
    return cascade_remove(state, graph, indexes=digests)

