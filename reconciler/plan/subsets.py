"""Platform subsets in the diff: which index children an action leaves out, and how the
plan names them.

The decision is ``PlatformFilter.split`` over the indexes refresh parsed
(``Observed.indexes``), walked by ``ops.platforms.skips_under`` exactly as the apply's
fetch walks them, so the predicted state is what apply commits. A copy also leaves out
what its source lacks on purpose (the source's absent children).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.model import Descriptor, Digest
from reconciler.model.platforms import PlatformFilter, is_attestation
from reconciler.ops.cascade import RefGraph
from reconciler.ops.platforms import skips_under
from reconciler.plan.observed import Observed


def skips(graph: RefGraph, observed: Observed, roots: Iterable[Digest], platforms: PlatformFilter | None,
          absent: frozenset[Digest] = frozenset()) -> tuple[frozenset[Digest], tuple[Descriptor, ...]]:
    """The index children to leave out below ``roots`` (those ``platforms`` does not
    select, and ``absent``: those the source lacks on purpose) and the entries naming them."""
    if platforms is None:
        return absent, ()
    skip, entries = skips_under(graph, roots, observed.indexes, platforms)
    return skip | absent, entries


@dataclass(frozen=True)
class Skipped:
    """What an action leaves out: its ``skipped`` digests, ``platforms_skipped`` (the
    platforms they are for) and ``saved_bytes`` (None: nothing saved)."""

    digests: tuple[Digest, ...] = ()
    platforms: tuple[str, ...] = ()
    saved_bytes: int | None = None


def skipped_fields(graph: RefGraph, observed: Observed, roots: Iterable[Digest], skip: frozenset[Digest],
                   entries: tuple[Descriptor, ...]) -> Skipped:
    """What an action setting or copying ``roots`` leaves out, for its plan fields."""
    left = graph.left_out(graph.closure(roots, skip), skip)
    if not left:
        return Skipped()
    names = sorted({str(e.platform) for e in entries if e.digest in left and e.platform and not is_attestation(e)})
    saved = sum(observed.skipped_sizes.get(d, 0) for d in left)
    return Skipped(tuple(sorted(left, key=str)), tuple(names), saved or None)
