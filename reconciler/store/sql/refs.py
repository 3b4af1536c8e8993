"""The compact form of a manifest's references kept in ``manifests.refs``."""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.mediatypes import is_index


def refs_text(rows: Iterable[tuple[str, str, str | None]]) -> str:
    """``manifests.refs`` from (child, child_kind, media_type) rows in document order:
    space-separated ``<k><digest>`` with k = ``b`` blob, ``m`` manifest, ``i`` index
    (an index entry whose media type is an index); foreign layers and repeats left out."""
    seen: set[str] = set()
    out: list[str] = []
    for child, child_kind, media_type in rows:
        if child_kind == "foreign" or child in seen:
            continue
        seen.add(child)
        k = "b" if child_kind == "blob" else ("i" if media_type and is_index(media_type) else "m")
        out.append(k + child)
    return " ".join(out)
