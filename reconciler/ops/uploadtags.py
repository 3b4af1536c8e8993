"""Which tags an upload sets: the one rule the plan, apply and ``reconciler upload`` share.

A file names its own tags (an OCI layout's ``org.opencontainers.image.ref.name``, a
``docker save`` tarball's ``RepoTags``, a skopeo ``dir:`` has none). An upload without a
tag sets every tag the file names. An upload with ``tag: NAME`` sets NAME on the image
the file names NAME, else on the file's only image; a file with several images none of
which is named NAME is an error, found when the plan reads the file (before anything is
stored), not halfway through an apply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconciler.errors import UploadInvalid
from reconciler.model import Digest


def entry_tags(tag: str | None, roots: Sequence[Digest], named: Mapping[str, Digest], *,
               where: str) -> dict[str, Digest]:
    """The tags one upload sets (``tag -> digest``): ``named`` (the file's own tags) when
    ``tag`` is None, else just ``tag`` (see the module doc). ``where`` names the file."""
    if tag is None:
        return dict(named)
    if tag in named:
        return {tag: named[tag]}
    if len(roots) == 1:
        return {tag: roots[0]}
    names = ", ".join(sorted(named)) or "none"
    raise UploadInvalid(
        f"{where}: tag {tag!r} needs a file with one image or an image the file names {tag!r}; this one has "
        f"{len(roots)} images (named: {names})",
        hint="name one of the file's tags, or leave tag out to set every tag the file names")
