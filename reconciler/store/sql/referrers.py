"""Subject links of the SQL stores: which stored manifest refers to which subject.

Every manifest or index with an OCI ``subject`` gets a row in ``manifest_subjects``
(its digest, the subject's digest, the ``artifactType`` the referrers API lists, its
annotations as JSON), written in the same transaction as its ``manifests`` row and
removed with it (``ON DELETE CASCADE``). The referrers of a digest in one repository
version are then one query on the subject index joined with the version's membership
(``version_referrers``), whatever the size of the store.

Stores made before migration 0009 may already hold manifests with a subject (synced
through a tag filter that matched the tag-schema index). The migration marks such a store
(``settings.subjects_backfill``); ``backfill`` then reads the bytes of its OCI manifests
and indexes once, records their subjects and clears the mark, all in one transaction: a
crash leaves the mark, and the next open does it again (the inserts ignore rows already
there). Bytes that cannot be read now (object storage down) leave the mark too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from reconciler.errors import ContentNotFound, ManifestInvalid, ReconcilerError
from reconciler.model import Digest, Index, Manifest, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.model.digest import parse_recorded
from reconciler.model.referrers import Referrer, annotations_of, annotations_text
from reconciler.store.sql.connection import Connection

if TYPE_CHECKING:
    from reconciler.store.blobs import BlobStorage

log = logging.getLogger(__name__)

#: the settings key that marks a store whose older manifests' subjects are not recorded yet
BACKFILL_KEY = "subjects_backfill"

#: the migration's SQL after its table: mark a store holding OCI manifests for ``backfill``
MARK_BACKFILL = (f"INSERT INTO settings (key, value) SELECT '{BACKFILL_KEY}', 'pending' "
                 f"WHERE EXISTS (SELECT 1 FROM manifests WHERE media_type IN ('{mt.OCI_MANIFEST}', '{mt.OCI_INDEX}'));")

_INSERT = ("INSERT INTO manifest_subjects (digest, subject, artifact_type, annotations) VALUES (?, ?, ?, ?) "
           "ON CONFLICT DO NOTHING")


def subject_rows(manifests: Iterable[Manifest | Index]) -> list[tuple[str, str, str | None, str | None]]:
    """The ``manifest_subjects`` rows of those of ``manifests`` that have a subject."""
    return [(str(r.digest), str(m.subject.digest), r.artifact_type, annotations_text(r.annotations))
            for m in manifests if m.subject is not None for r in (Referrer.of(m),)]


def record(conn: Connection, rows: Sequence[tuple[str, str, str | None, str | None]]) -> None:
    if rows:
        conn.executemany(_INSERT, rows)


def version_referrers(conn: Connection, repo_id: str, version: int, subject: Digest, *,
                      artifact_type: str | None = None, after: str | None = None,
                      limit: int | None = None) -> list[Referrer]:
    """The manifests of that version whose subject is ``subject``, by digest; only those of
    ``artifact_type`` when given; after the digest ``after``, at most ``limit``."""
    sql = ("SELECT s.digest, m.media_type, m.size, s.artifact_type, s.annotations "
           "FROM manifest_subjects s JOIN manifests m ON m.digest = s.digest "
           "WHERE s.subject = ? AND EXISTS (SELECT 1 FROM repo_content c WHERE c.digest = s.digest "
           "AND c.repo_id = ? AND c.added <= ? AND (c.removed IS NULL OR c.removed > ?))")
    args: list[object] = [str(subject), repo_id, version, version]
    if artifact_type is not None:
        sql += " AND s.artifact_type = ?"
        args.append(artifact_type)
    if after is not None:
        sql += " AND s.digest > ?"
        args.append(after)
    sql += " ORDER BY s.digest"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return [Referrer(parse_recorded(d), media_type, int(size), art, annotations_of(ann))
            for d, media_type, size, art, ann in conn.execute(sql, args)]


def backfill_pending(conn: Connection) -> bool:
    return conn.execute("SELECT 1 FROM settings WHERE key = ?", (BACKFILL_KEY,)).fetchone() is not None


def backfill(read: Callable[[], Connection], write: Callable[[], AbstractContextManager[Connection]],
             manifest_files: BlobStorage) -> int:
    """Record the subjects of the OCI manifests stored before migration 0009 (see the
    module doc); return how many had one. ``write()`` is a context manager giving the
    one transaction; ``read()`` a connection for the scan."""
    if not backfill_pending(read()):
        return 0
    digests = [d for (d,) in read().execute("SELECT digest FROM manifests WHERE media_type IN (?, ?) "
                                            "ORDER BY digest", (mt.OCI_MANIFEST, mt.OCI_INDEX))]
    found: list[Manifest | Index] = []
    for text in digests:
        digest = parse_recorded(text)
        try:
            with manifest_files.open(digest) as f:
                raw = f.read()
            found.append(parse_manifest(raw))
        except (ManifestInvalid, ContentNotFound):
            # stored before stricter parsing (no usable subject), or its bytes are lost
            # (``store check`` reports that): nothing to record
            continue
        except ReconcilerError as exc:
            log.warning("the subjects of stored manifests are not all recorded yet (%s: %s); the referrers "
                        "API may miss some until the store is opened again", digest, exc.message)
            return 0
    rows = subject_rows(found)
    with write() as conn:
        record(conn, rows)
        conn.execute("DELETE FROM settings WHERE key = ?", (BACKFILL_KEY,))
    return len(rows)
