"""Invariant checks, ``store check`` and ``store gc`` for the SQL stores.

``validate_new_state`` runs inside every version commit and costs O(changes): added
manifests must find their references in the new content, removed content must not be
referenced by what remains, every tag must point at a manifest or index that is there.
``check`` re-verifies everything from scratch, including every file's bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from reconciler.errors import InvalidInput, StoreError
from reconciler.model import Digest, DigestHasher, Index, Manifest, parse_manifest
from reconciler.model.content import ContentSet, Kind, TagEntry
from reconciler.model.reports import CheckReport, GcReport, Problem
from reconciler.store.sql import absent
from reconciler.store.sql.connection import Connection, chunks
from reconciler.store.sql.v1 import check_v1, gc_v1

if TYPE_CHECKING:
    from reconciler.store.blobs import BlobStorage
    from reconciler.store.sql.base import SQLStore

_CHUNK = 1024 * 1024
#: temp files younger than this may belong to a running writer; gc leaves them
TEMP_GRACE_SECONDS = 3600.0


def manifest_refs(m: Manifest | Index) -> list[tuple[str, int, str, str, str | None, int | None, str | None]]:
    """Rows for ``manifest_refs``: (parent, position, child, child_kind, media_type, size, platform)."""
    rows: list[tuple[str, int, str, str, str | None, int | None, str | None]] = []
    if isinstance(m, Index):
        for i, d in enumerate(m.manifests):
            rows.append((str(m.digest), i, str(d.digest), "manifest", d.media_type, d.size,
                         str(d.platform) if d.platform else None))
    else:
        descs = ((m.config,) if m.config else ()) + m.layers
        for i, d in enumerate(descs):
            rows.append((str(m.digest), i, str(d.digest), "foreign" if d.foreign else "blob",
                         d.media_type, d.size, None))
    return rows


def validate_new_state(conn: Connection, content: ContentSet, added: ContentSet, removed: ContentSet,
                       tags: Mapping[str, TagEntry], absent: frozenset[Digest] = frozenset()) -> None:
    """``absent``: index children the new version lacks on purpose (``sql/absent.py``)."""
    problems: list[str] = []
    # added content must be known to the store, with the right kind
    for kind, table_kind in ((Kind.MANIFEST, "manifest"), (Kind.INDEX, "index")):
        digests = [str(d) for d in added.of(kind)]
        for chunk in chunks(digests):
            marks = ",".join("?" * len(chunk))
            found = {r[0]: r[1] for r in conn.execute(
                f"SELECT digest, kind FROM manifests WHERE digest IN ({marks})", chunk)}
            for d in chunk:
                if d not in found:
                    problems.append(f"{kind.value} {d} is not in the store")
                elif found[d] != table_kind:
                    problems.append(f"{d} is an {found[d]}, not an {table_kind}")
    blob_digests = [str(d) for d in added.blobs]
    for chunk in chunks(blob_digests):
        marks = ",".join("?" * len(chunk))
        found_blobs = {r[0] for r in conn.execute(f"SELECT digest FROM blobs WHERE digest IN ({marks})", chunk)}
        problems += [f"blob {d} is not in the store" for d in chunk if d not in found_blobs]
    # added manifests and indexes need their references in the new content
    parents = [str(d) for d in added.manifests | added.indexes]
    for chunk in chunks(parents):
        marks = ",".join("?" * len(chunk))
        for parent, child, child_kind in conn.execute(
            f"SELECT parent, child, child_kind FROM manifest_refs WHERE parent IN ({marks})", chunk
        ):
            if child_kind == "foreign":
                continue
            child_d = Digest.parse(child)
            ok = child_d in content.blobs if child_kind == "blob" else (
                child_d in content.manifests or child_d in content.indexes or child_d in absent)
            if not ok:
                problems.append(f"{parent} needs {child_kind} {child}, which the new version lacks")
    # removed content must not be referenced by what remains
    gone = [str(d) for d, _ in removed.items()]
    remaining = content.manifests | content.indexes
    for chunk in chunks(gone):
        marks = ",".join("?" * len(chunk))
        for parent, child in conn.execute(
            f"SELECT parent, child FROM manifest_refs WHERE child IN ({marks}) AND child_kind != 'foreign'", chunk
        ):
            if Digest.parse(parent) in remaining and Digest.parse(child) not in absent:
                problems.append(f"{child} is removed but {parent} still refers to it")
    for name, entry in tags.items():
        if entry.digest not in content.manifests and entry.digest not in content.indexes:
            problems.append(f"tag {name!r} points at {entry.digest}, which the new version lacks")
    if problems:
        raise StoreError("refusing to commit an inconsistent repository version: " + "; ".join(sorted(problems)[:20]),
                         hint="this is a bug in the operation that built the version; nothing was changed")


def _hash_blob(store: SQLStore, digest: Digest) -> Digest:
    h = DigestHasher(digest.algorithm)
    with store.blob_files.open(digest) as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.digest()


def check(store: SQLStore, *, verify_content: bool = True) -> CheckReport:
    conn = store._conn()
    problems: list[Problem] = []
    blobs = {r[0]: r[1] for r in conn.execute("SELECT digest, size FROM blobs")}
    manifests = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT digest, media_type, kind FROM manifests")}
    refs: dict[str, list[tuple[str, str]]] = {}
    for parent, child, child_kind in conn.execute("SELECT parent, child, child_kind FROM manifest_refs"):
        refs.setdefault(parent, []).append((child, child_kind))
    # referrer -> its subject: a version must hold the subject of every referrer it holds
    subjects = dict(conn.execute("SELECT digest, subject FROM manifest_subjects").fetchall())

    # 1. every recorded blob is stored (a local file or an object) and hashes to its digest
    for digest, size in blobs.items():
        d = Digest.parse(digest)
        stored = store.blob_files.size(d)
        if stored is None:
            problems.append(Problem("missing", digest, f"blob is missing from {store.blob_files.location}"))
            continue
        if stored != size:
            problems.append(Problem("corrupt", digest, f"stored blob has {stored} bytes, expected {size}"))
            continue
        if verify_content and _hash_blob(store, d) != d:
            problems.append(Problem("corrupt", digest, "blob bytes do not hash to the digest"))
    for digest, (media_type, _kind) in manifests.items():
        d = Digest.parse(digest)
        if store.manifest_files.size(d) is None:
            problems.append(Problem("missing", digest, f"manifest is missing from {store.manifest_files.location}"))
            continue
        if verify_content:
            try:
                with store.manifest_files.open(d) as f:
                    raw = f.read()
                parsed = parse_manifest(raw, media_type)
            except InvalidInput as exc:
                problems.append(Problem("corrupt", digest, f"manifest no longer parses: {exc}"))
                continue
            if parsed.digest != d:
                problems.append(Problem("corrupt", digest, "manifest bytes do not hash to the digest"))

    # 2. every version of every repository is complete (the versions it still has: retention
    # drops old ones; a referrer's subject included), and its latest and published versions exist
    versions = 0
    numbers = existing_versions(conn)
    for (repo_id, latest, published) in conn.execute(
            "SELECT id, latest_version, published_version FROM repositories ORDER BY id").fetchall():
        for what, n in (("latest", latest), ("published", published)):
            if n is not None and n not in numbers.get(repo_id, ()):
                problems.append(Problem("dangling", f"{repo_id}@{n}", f"the {what} version does not exist"))
        content_rows = conn.execute("SELECT digest, kind, added, removed FROM repo_content WHERE repo_id = ?",
                                    (repo_id,)).fetchall()
        tag_rows = conn.execute("SELECT name, digest, added, removed FROM repo_tags WHERE repo_id = ?",
                                (repo_id,)).fetchall()
        absent_rows = absent.ranges(conn, repo_id)
        for n in numbers.get(repo_id, ()):
            versions += 1
            live = {(d, k) for d, k, a, r in content_rows if a <= n and (r is None or r > n)}
            live_digests = {d for d, _ in live}
            # index children left out on purpose (a platform subset) may be missing; nothing else
            left_out = {d for d, a, r in absent_rows if a <= n and (r is None or r > n)}
            where = f"{repo_id}@{n}"
            for d, k in live:
                if k == "blob":
                    if d not in blobs:
                        problems.append(Problem("dangling", where, f"blob {d} is not in the store"))
                    continue
                if d not in manifests:
                    problems.append(Problem("dangling", where, f"{k} {d} is not in the store"))
                    continue
                subject = subjects.get(d)
                if subject is not None and subject not in live_digests and subject not in left_out:
                    problems.append(Problem("dangling", where, f"referrer {d} refers to subject {subject}, "
                                                               "which the version lacks"))
                for child, child_kind in refs.get(d, ()):
                    if child_kind == "manifest" and k == "index" and child in left_out:
                        continue
                    if child_kind != "foreign" and child not in live_digests:
                        problems.append(Problem("incomplete", where, f"{d} refers to {child_kind} {child}, "
                                                                     "which the version lacks"))
            for name, d, a, r in tag_rows:
                if a <= n and (r is None or r > n) and d not in live_digests:
                    problems.append(Problem("dangling", where, f"tag {name!r} points at missing {d}"))
    problems += check_v1(conn, blobs, numbers)
    problems.sort(key=lambda p: (p.subject, p.kind, p.message))
    return CheckReport(tuple(problems), len(blobs), len(manifests), versions)


def existing_versions(conn: Connection) -> dict[str, list[int]]:
    """repository id -> the numbers of the versions it has, ascending."""
    out: dict[str, list[int]] = {}
    for repo_id, n in conn.execute("SELECT repo_id, number FROM versions ORDER BY repo_id, number"):
        out.setdefault(repo_id, []).append(int(n))
    return out


def gc(store: SQLStore, *, dry_run: bool = False, events: Callable[[str], None] | None = None) -> GcReport:
    """Remove blobs and manifests no existing repository version holds, and the temp files
    of dead writers (or old ones). The caller holds the store lock (``SQLStore.gc``
    makes sure), so no apply is between 'bytes stored' and 'version committed': content
    an in-flight apply fetched but has not committed yet is never taken from under it.

    What stays is decided by the rows of existing versions alone. Protected versions
    (``lifecycle.PROTECTED_VERSIONS``) are never dropped, so everything they hold stays.

    Order: the rows in one transaction, then the files. A kill in between leaves files no
    row names: invisible, and the next gc removes them. ``dry_run`` reads in a snapshot,
    writes nothing (the generation stays, saved plans stay fresh) and reports what a gc
    now would remove. ``events`` is told each step (``rows``, ``file N``) for crash tests."""
    note = events or (lambda _what: None)
    with (store._read() if dry_run else store._write()) as conn:
        referenced = {r[0] for r in conn.execute("SELECT DISTINCT digest FROM repo_content")}
        dead_manifests = {r[0]: int(r[1]) for r in conn.execute("SELECT digest, size FROM manifests")
                          if r[0] not in referenced}
        referenced |= gc_v1(conn, delete=not dry_run)  # the layers of v1 images some version still holds
        dead_blobs = {r[0]: int(r[1]) for r in conn.execute("SELECT digest, size FROM blobs") if r[0] not in referenced}
        if not dry_run:
            for table, dead in (("manifests", dead_manifests), ("blobs", dead_blobs)):
                for chunk in chunks(list(dead)):
                    conn.execute(f"DELETE FROM {table} WHERE digest IN ({','.join('?' * len(chunk))})", chunk)
        known_blobs = {r[0] for r in conn.execute("SELECT digest FROM blobs")} - dead_blobs.keys()
        known_manifests = {r[0] for r in conn.execute("SELECT digest FROM manifests")} - dead_manifests.keys()
    note("rows")
    removed = {"blobs": 0, "manifests": 0}
    freed = 0
    files_done = 0

    def remove(files: BlobStorage, digest: Digest, what: str, size: int | None) -> None:
        nonlocal freed, files_done
        if dry_run:
            freed += size if size is not None else files.size(digest) or 0
        else:
            freed += files.remove(digest)
        removed[what] += 1
        files_done += 1
        note(f"file {files_done}")

    # files after the rows: a crash in between leaves unreferenced files, which are harmless
    for d, size in sorted(dead_manifests.items()):
        remove(store.manifest_files, Digest.parse(d), "manifests", size)
    for d, size in sorted(dead_blobs.items()):
        remove(store.blob_files, Digest.parse(d), "blobs", size)
    # files with no row at all (a writer killed between rename and insert, or a gc between
    # its rows and its files); listed after the rows are gone, so a dry run skips the dead
    for files, known, what, dead in ((store.blob_files, known_blobs, "blobs", dead_blobs),
                                     (store.manifest_files, known_manifests, "manifests", dead_manifests)):
        for d, _path in list(files.all_digests()):
            if str(d) not in known and str(d) not in dead:
                remove(files, d, what, None)
    # uploads a killed writer left (temp files, incomplete S3 multipart uploads)
    temps = 0
    for files in (store.blob_files, store.manifest_files):
        count, size = files.remove_stale_uploads(TEMP_GRACE_SECONDS, dry_run=dry_run)
        temps += count
        freed += size
    return GcReport(removed["blobs"], removed["manifests"], freed, temps, dry_run=dry_run)

