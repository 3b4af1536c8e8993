"""The store's push-record role: which tag we pushed to which repository of which
registry, and at which digest (issue 23). ``prune: true`` on a push target deletes only
tags recorded here, and a push to another repository of the same registry mounts the
blobs recorded pushes hold instead of uploading them again.

A record is written *before* its tag is moved at the target (write-ahead), so a crash
between the two never leaves a tag we moved unrecorded; a record whose tag the target
does not (or no longer) points at its digest is never used to delete anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.model import Digest


@dataclass(frozen=True)
class PushRecord:
    #: the target registry's base URL (``https://harbor.example.com``)
    registry: str
    #: the repository there (``team/app``)
    name: str
    tag: str
    digest: Digest
    #: when (ISO 8601 UTC)
    pushed: str


class PushRecords(Protocol):
    def pushed(self, registry: str, name: str | None = None) -> list[PushRecord]:
        """The records of ``registry`` (of its repository ``name`` only, when given)."""
        ...

    def push_record(self, registry: str, name: str, tag: str, digest: Digest | None) -> None:
        """Record that ``tag`` of ``registry``/``name`` is (about to be) ``digest``; None:
        forget it (the tag was deleted)."""
        ...
