"""The store logic both SQL backends share: repositories, versions, publication,
content rows and the journal, written once in the SQL that SQLite and PostgreSQL both
speak (``?`` placeholders; the PostgreSQL connection translates them).

A backend subclasses ``SQLStore`` and provides connections and transactions
(``_conn``, ``_write``, ``_read``), the store generation, the apply lock and where
the bytes live (``blob_files``, ``manifest_files``: ``BlobStorage``). ``_write`` must give one writer at a
time the whole store (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the generation row's lock
taken first), because ``version_commit`` reads the latest version and then writes the
next one in the same transaction.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from reconciler.errors import Conflict, ContentNotFound, NotFound, RepositoryNotFound, StoreError
from reconciler.model import Digest, Index, Manifest, parse_manifest, validate_repository_name
from reconciler.model.content import ContentSet, Kind, Origin, TagEntry
from reconciler.model.digest import parse_recorded
from reconciler.model.reports import CheckReport, GcReport, JournalEntry, Problem
from reconciler.model.repository import ContentSummary, Repository, RepositoryVersion, VersionInfo
from reconciler.store.sql import absent, grace, identity, lifecycle, maintenance, publication, referrers
from reconciler.store.sql.batch import SQLContentBatch, content_rows
from reconciler.store.sql.connection import Connection, chunks
from reconciler.store.sql.groupcommit import GroupCommit
from reconciler.store.sql.hooks import BackendHooks
from reconciler.store.sql.lifecycle_methods import VersionLifecycle
from reconciler.store.sql.lookup import IN_VERSION, VersionLookups
from reconciler.store.sql.pushes import PushRecordsSQL
from reconciler.store.sql.v1 import V1Images

if TYPE_CHECKING:
    from reconciler.store.blobs import BlobStorage

_REPO_FIELDS = {"feed", "upstream_name", "publish_name", "protected"}
_ANY_DIGEST = Digest.parse("sha256:" + "0" * 64)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class SQLStore(VersionLookups, V1Images, VersionLifecycle, BackendHooks, publication.PublicationSwitch,
               PushRecordsSQL):
    """The shared part of ``SQLiteStore`` and ``PostgresStore`` (see the module doc)."""

    location: str
    blob_files: BlobStorage
    manifest_files: BlobStorage
    _content_rows: GroupCommit
    #: False only for test and benchmark fixtures: no fsync (``SQLiteStore(durable=False)``)
    durable: bool = True
    #: the thread that holds the store lock through this object, if any (set by ``lock``)
    _lock_owner: int | None = None

    def _conn(self) -> Connection:
        raise NotImplementedError

    def _write(self, *, binding: bool = False) -> AbstractContextManager[Connection]:
        """One write transaction, alone in the store, that bumps the store generation,
        once the store may write to its blob storage (``identity.gate``). ``binding``: a
        write of that binding itself (no gate, no new generation: it changes no content)."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:
        """A consistent snapshot for several SELECTs."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def generation(self) -> int:
        return int(self._conn().execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0])

    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        raise NotImplementedError

    def lock_lost(self) -> bool:
        """Whether the apply lock this store holds was lost. An ``flock`` (the embedded
        store) cannot be: the kernel keeps it until this process lets go or dies."""
        return False

    def check_blob_storage(self, *, probe: bool = False) -> None:
        """Raise unless the blob storage is known to be this store's (see PostgresStore;
        the embedded store records its storage in its own database). ``probe``: also
        make one small request to it now (``BlobStorageError`` when it cannot)."""
        if probe:
            self.blob_files.read_marker("store-id")

    def ping(self) -> None:
        """One round trip to the database (``StoreError`` when it fails)."""
        self._conn().execute("SELECT 1").fetchone()

    def bytes_remote(self, kind: Kind) -> bool:
        """Whether blob (``Kind.BLOB``) or manifest bytes are read from remote object
        storage, where each read is a request that can stall (``path`` is None there)."""
        files = self.blob_files if kind is Kind.BLOB else self.manifest_files
        return files.path(_ANY_DIGEST) is None

    def _backfill_subjects(self) -> None:
        """Record the subjects of manifests stored before they were recorded (once; see
        ``sql/referrers.py``). A binding write: it adds no content, so no new generation."""
        referrers.backfill(self._conn, lambda: self._write(binding=True), self.manifest_files)

    def _journal_write(self) -> AbstractContextManager[Connection]:
        """The transaction that closes a journal entry (a backend may relax its lock check)."""
        return self._write()

    @staticmethod
    def _repo(row: Any) -> Repository:
        return Repository(id=row[0], feed=row[1], upstream_name=row[2], publish_name=row[3],
                          protected=bool(row[4]), latest_version=row[5], published_version=row[6],
                          created=row[7])

    _REPO_SELECT = ("SELECT id, feed, upstream_name, publish_name, protected, latest_version, "
                    "published_version, created FROM repositories")

    def repository_list(self) -> list[Repository]:
        return [self._repo(r) for r in self._conn().execute(self._REPO_SELECT + " ORDER BY id")]

    def repository_find(self, repo_id: str) -> Repository | None:
        row = self._conn().execute(self._REPO_SELECT + " WHERE id = ?", (repo_id,)).fetchone()
        return self._repo(row) if row else None

    def repository_get(self, repo_id: str) -> Repository:
        repo = self.repository_find(repo_id)
        if repo is None:
            raise RepositoryNotFound(f"no repository {repo_id!r} in the store at {self.location}",
                                     hint="see `reconciler repo list`")
        return repo

    def repository_by_publish_name(self, name: str) -> Repository | None:
        row = self._conn().execute(self._REPO_SELECT + " WHERE publish_name = ?", (name,)).fetchone()
        return self._repo(row) if row else None

    def repository_create(self, repo_id: str, *, feed: str | None = None,
                          upstream_name: str | None = None) -> Repository:
        if not repo_id or "/" in repo_id or len(repo_id) > 255 or not repo_id.isprintable():
            raise StoreError(f"invalid repository id {repo_id!r}",
                             hint="use letters, digits, '.', '_' and '-' (no '/')")
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM repositories WHERE id = ?", (repo_id,)).fetchone():
                raise Conflict(f"repository {repo_id!r} already exists")
            now = _now()
            conn.execute("INSERT INTO repositories (id, feed, upstream_name, created) VALUES (?, ?, ?, ?)",
                         (repo_id, feed, upstream_name, now))
            conn.execute("INSERT INTO versions (repo_id, number, created, operation, summary) VALUES (?, 0, ?, ?, ?)",
                         (repo_id, now, "create", json.dumps(ContentSummary().to_json())))
        return self.repository_get(repo_id)

    def repository_update(self, repo_id: str, **fields: object) -> Repository:
        unknown = set(fields) - _REPO_FIELDS
        if unknown:
            raise StoreError(f"cannot update repository fields {sorted(unknown)}")
        if fields.get("publish_name") is not None:
            validate_repository_name(str(fields["publish_name"]), what="publish name")
        self.repository_get(repo_id)
        if not fields:
            return self.repository_get(repo_id)
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as conn:
            self._check_publish_name_free(conn, repo_id, fields.get("publish_name"))
            # protected is an INTEGER column in both dialects; PostgreSQL will not take a bool for it
            values = [int(v) if isinstance(v, bool) else v for v in fields.values()]
            conn.execute(f"UPDATE repositories SET {sets} WHERE id = ?", (*values, repo_id))
        return self.repository_get(repo_id)

    def repository_delete(self, repo_id: str) -> None:
        self.repository_get(repo_id)
        with self._write() as conn:
            conn.execute("DELETE FROM repo_tags WHERE repo_id = ?", (repo_id,))
            conn.execute("DELETE FROM repo_content WHERE repo_id = ?", (repo_id,))
            conn.execute("DELETE FROM repo_absent WHERE repo_id = ?", (repo_id,))
            conn.execute("DELETE FROM versions WHERE repo_id = ?", (repo_id,))
            conn.execute("DELETE FROM publication_history WHERE repo_id = ?", (repo_id,))
            conn.execute("DELETE FROM repositories WHERE id = ?", (repo_id,))

    # -- versions ---------------------------------------------------------------------
    def _version_rows(self, conn: Connection, repo_id: str, number: int,
                      latest: bool) -> tuple[ContentSet, dict[str, TagEntry]]:
        if latest:
            where, args = "repo_id = ? AND removed IS NULL", (repo_id,)
        else:
            where = IN_VERSION
            args = (repo_id, number, number)  # type: ignore[assignment]
        sets: dict[str, set[Digest]] = {"blob": set(), "manifest": set(), "index": set()}
        for digest, kind in conn.execute(f"SELECT digest, kind FROM repo_content WHERE {where}", args):
            sets[kind].add(Digest.parse(digest))
        tags = {
            name: TagEntry(Digest.parse(digest), Origin(origin))
            for name, digest, origin in conn.execute(f"SELECT name, digest, origin FROM repo_tags WHERE {where}", args)
        }
        content = ContentSet(frozenset(sets["blob"]), frozenset(sets["manifest"]), frozenset(sets["index"]))
        return content, tags

    def version_get(self, repo_id: str, number: int | None = None) -> RepositoryVersion:
        with self._read() as conn:
            repo = self.repository_get(repo_id)
            n = repo.latest_version if number is None else number
            if n < 0 or n > repo.latest_version or not conn.execute(
                "SELECT 1 FROM versions WHERE repo_id = ? AND number = ?", (repo_id, n)
            ).fetchone():
                raise NotFound(f"repository {repo_id!r} has no version {n}",
                               hint=f"see `reconciler repo history {repo_id}`")
            content, tags = self._version_rows(conn, repo_id, n, latest=n == repo.latest_version)
            left_out = absent.live(conn, repo_id, None if n == repo.latest_version else n)
        return RepositoryVersion(repo_id, n, content, tags, left_out)

    def versions_latest(self) -> dict[str, RepositoryVersion]:
        """Two scans of the live rows instead of two queries per repository; the tags of
        one digest and origin share one (frozen) ``TagEntry``."""
        parse = parse_recorded  # the store validated these when it wrote them
        with self._read() as conn:
            latest = dict(conn.execute("SELECT id, latest_version FROM repositories"))
            content: dict[str, dict[str, set[Digest]]] = {
                r: {"blob": set(), "manifest": set(), "index": set()} for r in latest}
            for repo_id, digest, kind in conn.execute(
                    "SELECT repo_id, digest, kind FROM repo_content WHERE removed IS NULL"):
                content[repo_id][kind].add(parse(digest))
            tags: dict[str, dict[str, TagEntry]] = {r: {} for r in latest}
            entries: dict[str, tuple[Origin, dict[str, TagEntry]]] = {o.value: (o, {}) for o in Origin}
            for repo_id, name, text, origin in conn.execute(
                    "SELECT repo_id, name, digest, origin FROM repo_tags WHERE removed IS NULL"):
                which, same = entries[origin]
                entry = same.get(text)
                if entry is None:
                    entry = same[text] = TagEntry(parse(text), which)
                tags[repo_id][name] = entry
            left_out = absent.live_all(conn)
        return {r: RepositoryVersion(r, n, ContentSet(frozenset(content[r]["blob"]), frozenset(content[r]["manifest"]),
                                                      frozenset(content[r]["index"])), tags[r],
                                     left_out.get(r, frozenset()))
                for r, n in latest.items()}

    def version_list(self, repo_id: str) -> list[VersionInfo]:
        self.repository_get(repo_id)
        rows = self._conn().execute(
            "SELECT number, created, operation, summary, provenance FROM versions WHERE repo_id = ? ORDER BY number",
            (repo_id,))
        out = []
        for number, created, operation, summary, provenance in rows:
            s = json.loads(summary)
            out.append(VersionInfo(repo_id, number, created, operation, ContentSummary(s["added"], s["removed"]),
                                   json.loads(provenance) if provenance else {}))
        return out

    def version_commit(self, repo_id: str, *, base: int, content: ContentSet, tags: Mapping[str, TagEntry],
                       operation: str, provenance: Mapping[str, str] | None = None, drop: Iterable[int] = (),
                       absent: Iterable[Digest] = ()) -> VersionInfo | None:
        """The next version of ``repo_id`` (None: no change), ``drop`` dropped in its transaction.
        ``provenance``: where an apply's version came from (recorded with it as JSON);
        ``absent``: index children left out on purpose (``sql/absent.py``)."""
        drop = list(drop)
        try:
            return self._commit(repo_id, base, content, tags, operation, dict(provenance or {}), drop, absent)
        except _NoChange:
            self.versions_drop(repo_id, drop)  # nothing new, but the planned retention still applies
            return None

    @staticmethod
    def _latest_at(conn: Any, repo_id: str, base: int) -> int:
        """The latest version of ``repo_id`` inside a write transaction, which must still be
        ``base``, the version the writer computed its new state from (else ``Conflict``)."""
        row = conn.execute("SELECT latest_version FROM repositories WHERE id = ?", (repo_id,)).fetchone()
        if row is None:
            raise RepositoryNotFound(f"no repository {repo_id!r}")
        latest = int(row[0])
        if latest != base:
            raise Conflict(f"repository {repo_id!r} changed while this operation ran "
                           f"(version {base} -> {latest})", hint="run the command again")
        return latest

    def _commit(self, repo_id: str, base: int, content: ContentSet, tags: Mapping[str, TagEntry], operation: str,
                provenance: dict[str, str], drop: Iterable[int] = (), left_out: Iterable[Digest] = ()) -> VersionInfo:
        """Make ``content`` + ``tags`` the next version of ``repo_id`` if anything changed.

        Refuses (``Conflict``) when the repository moved past ``base`` meanwhile, and
        (``StoreError``) when the new state breaks an invariant: unknown content, a
        manifest without its blobs, an index without its children, a dangling tag.
        """
        with self._write() as conn:
            latest = self._latest_at(conn, repo_id, base)
            old_content, old_tags = self._version_rows(conn, repo_id, latest, latest=True)
            added = content.difference(old_content)
            removed = old_content.difference(content)
            tag_removed = {n for n, e in old_tags.items() if tags.get(n) != e}
            tag_added = {n for n, e in tags.items() if old_tags.get(n) != e}
            if not len(added) and not len(removed) and not tag_removed and not tag_added:
                raise _NoChange
            old_absent, new_absent = absent.live(conn, repo_id), absent.normalize(conn, content, left_out)
            maintenance.validate_new_state(conn, content, added, removed, tags, new_absent)
            new = latest + 1
            absent.record(conn, repo_id, new, old_absent, new_absent)
            for digest, kind in removed.items():
                conn.execute("UPDATE repo_content SET removed = ? WHERE repo_id = ? AND digest = ? AND kind = ? "
                             "AND removed IS NULL", (new, repo_id, str(digest), kind.value))
            conn.executemany("INSERT INTO repo_content (repo_id, digest, kind, added) VALUES (?, ?, ?, ?)",
                             [(repo_id, str(d), k.value, new) for d, k in added.items()])
            for name in sorted(tag_removed):
                conn.execute("UPDATE repo_tags SET removed = ? WHERE repo_id = ? AND name = ? AND removed IS NULL",
                             (new, repo_id, name))
            conn.executemany(
                "INSERT INTO repo_tags (repo_id, name, digest, origin, added) VALUES (?, ?, ?, ?, ?)",
                [(repo_id, n, str(tags[n].digest), Origin(tags[n].origin).value, new) for n in sorted(tag_added)])
            summary = ContentSummary(
                added={**added.counts(), "tags": len(tag_added)},
                removed={**removed.counts(), "tags": len(tag_removed)},
            )
            created = _now()
            conn.execute("INSERT INTO versions (repo_id, number, created, operation, summary, provenance) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (repo_id, new, created, operation, json.dumps(summary.to_json()),
                                                       json.dumps(provenance, sort_keys=True) if provenance else None))
            conn.execute("UPDATE repositories SET latest_version = ? WHERE id = ?", (new, repo_id))
            lifecycle.drop_versions(conn, repo_id, drop)
        return VersionInfo(repo_id, new, created, operation, summary, provenance)

    # -- publication ------------------------------------------------------------------
    def _check_publish_name_free(self, conn: Connection, repo_id: str, name: object) -> None:
        if name is None:
            return
        other = conn.execute("SELECT id FROM repositories WHERE publish_name = ? AND id != ?",
                             (name, repo_id)).fetchone()
        if other:
            raise Conflict(f"publish name {name!r} is already used by repository {other[0]!r}",
                           hint=f"names are unique: pick another, or free it: reconciler unpublish {other[0]} --release")

    def publish(self, repo_id: str, *, name: str, version: int, protected: bool) -> Repository:
        validate_repository_name(name, what="publish name")
        repo = self.repository_get(repo_id)
        if version < 0 or version > repo.latest_version:
            raise NotFound(f"repository {repo_id!r} has no version {version} (latest is {repo.latest_version})")
        with self._write() as conn:
            lifecycle.require_version(conn, repo_id, version)  # not one retention dropped
            self._check_publish_name_free(conn, repo_id, name)
            old = conn.execute("SELECT publish_name, published_version FROM repositories WHERE id = ?",
                               (repo_id,)).fetchone()
            grace.record_move(conn, repo_id, old[0], old[1], name, version)
            # one UPDATE: readers see the old publication or the new one, never a mix
            conn.execute("UPDATE repositories SET publish_name = ?, published_version = ?, protected = ? WHERE id = ?",
                         (name, version, int(protected), repo_id))
        return self.repository_get(repo_id)

    def unpublish(self, repo_id: str) -> Repository:
        self.repository_get(repo_id)
        with self._write() as conn:
            conn.execute("UPDATE repositories SET published_version = NULL WHERE id = ?", (repo_id,))
        return self.repository_get(repo_id)

    def grace_versions(self, name: str) -> list[tuple[str, int]]:
        """(repository, version) that ``name`` pointed at before its publication moved and
        still serves by digest (``grace.py``), most recent first."""
        return grace.grace_versions(self._conn(), name)

    # -- content ----------------------------------------------------------------------
    def blob_has(self, digest: Digest) -> bool:
        return not self.blobs_missing([digest])

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        """One query per 500 digests (a plan asks for every blob of every new manifest,
        and each query is a round trip to PostgreSQL). A lost local file counts as
        missing (the next sync fetches it again); remote objects are trusted to the row (a
        HEAD per blob would make every plan slow), and ``store check`` finds losses."""
        wanted = {str(d): d for d in digests}
        recorded: set[str] = set()
        conn = self._conn()
        for chunk in chunks(list(wanted)):
            marks = ",".join("?" * len(chunk))
            recorded.update(r[0] for r in conn.execute(f"SELECT digest FROM blobs WHERE digest IN ({marks})", chunk))
        missing = {d for text, d in wanted.items() if text not in recorded}
        for text in recorded:
            path = self.blob_files.path(wanted[text])
            if path is not None and not path.is_file():
                missing.add(wanted[text])
        return missing

    def blob_size(self, digest: Digest) -> int:
        row = self._conn().execute("SELECT size FROM blobs WHERE digest = ?", (str(digest),)).fetchone()
        if row is None:
            raise ContentNotFound(f"blob {digest} is not in the store")
        return int(row[0])

    def blob_path(self, digest: Digest) -> Path | None:
        p = self.blob_files.path(digest)
        return p if p is not None and p.is_file() else None

    def blob_open(self, digest: Digest) -> BinaryIO:
        return self.blob_files.open(digest)

    def blob_url(self, digest: Digest, *, expires: int) -> str | None:
        return self.blob_files.presigned_url(digest, expires=expires)

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        identity.gate(self)  # before the bytes: a copy must not write into another store's storage
        written = self.blob_files.write(chunks, expected, size=size, where=where)
        self.record_content([(expected, written)], ())
        return written

    def manifest_has(self, digest: Digest) -> bool:
        return self._conn().execute("SELECT 1 FROM manifests WHERE digest = ?", (str(digest),)).fetchone() is not None

    def manifest_get(self, digest: Digest) -> Manifest | Index:
        media_type, raw = self.manifest_raw(digest)
        return parse_manifest(raw, media_type)

    def manifest_put(self, manifest: Manifest | Index) -> None:
        self.manifests_put([manifest])

    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        """Store several manifests: every file durable first, then the rows in one
        transaction (shared with concurrent writers), so an index and its children become
        known together."""
        todo = [m for m in dict((m.digest, m) for m in manifests).values()
                if not (self.manifest_has(m.digest) and self.manifest_files.exists(m.digest))]
        if not todo:
            return
        identity.gate(self)
        for m in todo:
            self.manifest_files.write_bytes(m.raw, m.digest)
        self.record_content((), todo)

    def content_batch(self) -> SQLContentBatch:
        """Blobs and manifests written now, made durable and known together by
        ``commit`` (``batch.SQLContentBatch``)."""
        identity.gate(self)
        return SQLContentBatch(self)

    def record_content(self, blobs: Iterable[tuple[Digest, int]], manifests: Sequence[Manifest | Index]) -> None:
        """Rows for content whose bytes are durable in place: ``(digest, size)`` blobs and
        manifests, in one transaction (shared with concurrent writers)."""
        blobs = list(blobs)
        if blobs or manifests:  # nothing new (a no-change sync): no write, no new generation
            self._content_rows.run(content_rows(blobs, manifests))

    def manifest_kind(self, digest: Digest) -> Kind | None:
        row = self._conn().execute("SELECT kind FROM manifests WHERE digest = ?", (str(digest),)).fetchone()
        return Kind(row[0]) if row else None

    # -- maintenance ------------------------------------------------------------------
    def check(self, *, verify_content: bool = True) -> CheckReport:
        report = maintenance.check(self, verify_content=verify_content)
        refused = [Problem("identity", self.location, text) for text in identity.problems(self)]
        return dataclasses.replace(report, problems=tuple(refused) + report.problems) if refused else report

    def gc(self, *, dry_run: bool = False, lock_timeout: float = 60.0,
           events: Callable[[str], None] | None = None) -> GcReport:
        """Under the store lock: taken here unless this thread holds it already, so gc
        can never run between another writer's 'bytes stored' and 'version committed'.
        Only on the store's own blob storage, checked afresh (``identity.gate``): gc on a
        copy would delete what the original needs. gc's one entry point; ``events``: told
        each step (``apply.observer``: the crash tests' points)."""
        if self._lock_owner == threading.get_ident():
            return self._gc(lock_timeout, dry_run, events)
        with self.lock(lock_timeout):
            return self._gc(lock_timeout, dry_run, events)

    def _gc(self, lock_timeout: float, dry_run: bool, events: Callable[[str], None] | None) -> GcReport:
        with self.gc_barrier(lock_timeout):  # never while a backup copies what its snapshot names
            identity.gate(self, fresh=True)
            return maintenance.gc(self, dry_run=dry_run, events=events)

    # -- journal ------------------------------------------------------------------------
    def journal_start(self, *, command: str, plan_digest: str | None, details: Mapping[str, object]) -> int:
        try:
            user = getpass.getuser()
        except Exception:  # noqa: BLE001 - no passwd entry in some containers
            user = "unknown"
        with self._write() as conn:
            cur = conn.execute(
                # "user" quoted: a reserved word in PostgreSQL
                'INSERT INTO journal (started, "user", host, command, plan_digest, result, details) '
                "VALUES (?, ?, ?, ?, ?, 'running', ?) RETURNING id",
                (_now(), user, socket.gethostname(), command, plan_digest, json.dumps(details, default=str)))
            return int(cur.fetchall()[0][0])

    def journal_finish(self, entry_id: int, *, result: str, details: Mapping[str, object]) -> None:
        with self._journal_write() as conn:
            conn.execute("UPDATE journal SET finished = ?, result = ?, details = ? WHERE id = ?",
                         (_now(), result, json.dumps(details, default=str), entry_id))

    def journal_list(self, limit: int = 50) -> list[JournalEntry]:
        rows = self._conn().execute(
            'SELECT id, started, finished, "user", host, command, plan_digest, result, details FROM journal '
            "ORDER BY id DESC LIMIT ?", (limit,))
        return [JournalEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8])) for r in rows]


class _NoChange(Exception):
    """Raised inside the write transaction to roll it back when nothing changed."""
