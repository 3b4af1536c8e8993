"""Named, ordered SQLite schema migrations.

Each migration runs once, in order, inside a transaction, and is recorded by name in
``migrations``. Never edit a released migration: add a new one.

Repository content and tags use Pulp 3's range representation: a row is in version N
when ``added <= N`` and (``removed`` is NULL or ``removed > N``), so a new version only
writes what changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from reconciler.store.sql.referrers import MARK_BACKFILL
from reconciler.store.sql.refs import refs_text

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT INTO meta (key, value) VALUES ('generation', 0);

        CREATE TABLE blobs (
            digest TEXT PRIMARY KEY,
            size INTEGER NOT NULL
        );
        CREATE TABLE manifests (
            digest TEXT PRIMARY KEY,
            media_type TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('manifest', 'index')),
            size INTEGER NOT NULL
        );
        -- parent manifest/index -> child blob/manifest, in document order
        CREATE TABLE manifest_refs (
            parent TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            child TEXT NOT NULL,
            child_kind TEXT NOT NULL CHECK (child_kind IN ('blob', 'manifest', 'foreign')),
            media_type TEXT,
            size INTEGER,
            platform TEXT,
            PRIMARY KEY (parent, position)
        );
        CREATE INDEX manifest_refs_child ON manifest_refs (child);

        CREATE TABLE repositories (
            id TEXT PRIMARY KEY,
            feed TEXT,
            upstream_name TEXT,
            publish_name TEXT UNIQUE,
            protected INTEGER NOT NULL DEFAULT 0,
            latest_version INTEGER NOT NULL DEFAULT 0,
            published_version INTEGER,
            created TEXT NOT NULL
        );
        CREATE TABLE versions (
            repo_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            created TEXT NOT NULL,
            operation TEXT NOT NULL,
            summary TEXT NOT NULL,
            PRIMARY KEY (repo_id, number)
        );
        CREATE TABLE repo_content (
            repo_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            digest TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest', 'index')),
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_content_live ON repo_content (repo_id, removed, digest);
        CREATE INDEX repo_content_digest ON repo_content (digest);
        CREATE TABLE repo_tags (
            repo_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            origin TEXT NOT NULL,
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_tags_live ON repo_tags (repo_id, removed, name);
        -- one live row per tag name: one tag name maps to one target per version
        CREATE UNIQUE INDEX repo_tags_one_name ON repo_tags (repo_id, name) WHERE removed IS NULL;

        CREATE TABLE journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started TEXT NOT NULL,
            finished TEXT,
            user TEXT NOT NULL,
            host TEXT NOT NULL,
            command TEXT NOT NULL,
            plan_digest TEXT,
            result TEXT NOT NULL,
            details TEXT NOT NULL
        );
        """,
    ),
    (
        # point lookups of one tag / one digest in one version (the registry server)
        "0002_version_lookup_indexes",
        """
        CREATE INDEX repo_tags_by_name ON repo_tags (repo_id, name, added);
        CREATE INDEX repo_content_by_digest ON repo_content (repo_id, digest, added);
        """,
    ),
    (
        # each manifest's references in one compact column (see refs_text), so a plan
        # reads its graph as one row per manifest instead of one per reference
        "0003_manifest_refs_text",
        "ALTER TABLE manifests ADD COLUMN refs TEXT;",
    ),
    (
        # text settings of the store, e.g. where its blobs live ('blobs': s3://bucket/prefix)
        "0004_settings",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ),
    (
        # Docker v1 images (docs/original-system.md, "v1 images and tags") and their
        # per-version membership and tags, in the same range representation as
        # repo_content / repo_tags. The layer is a row of ``blobs`` (gc keeps the layers of
        # live images).
        "0005_v1_images",
        """
        CREATE TABLE v1_images (
            image_id TEXT PRIMARY KEY,
            parent TEXT,
            json BLOB NOT NULL,
            ancestry TEXT NOT NULL,  -- space-separated image ids, the image itself first
            layer TEXT NOT NULL,     -- digest of the layer blob (gzip'd tar)
            size INTEGER NOT NULL
        );
        CREATE TABLE repo_v1_images (
            repo_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            image_id TEXT NOT NULL,
            -- 'mask': an id deliberately left out (--mask-id), a parent allowed to be absent
            role TEXT NOT NULL CHECK (role IN ('image', 'mask')),
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_v1_images_by_id ON repo_v1_images (repo_id, image_id, added);
        CREATE INDEX repo_v1_images_image ON repo_v1_images (image_id);
        CREATE TABLE repo_v1_tags (
            repo_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            image_id TEXT NOT NULL,
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_v1_tags_by_name ON repo_v1_tags (repo_id, name, added);
        CREATE UNIQUE INDEX repo_v1_tags_one_name ON repo_v1_tags (repo_id, name) WHERE removed IS NULL;
        """,
    ),
    (
        # versions a publication left, served by digest until serve_until (unix seconds):
        # the grace period of reconciler/store/sql/grace.py
        "0006_publication_history",
        """
        CREATE TABLE publication_history (
            name TEXT NOT NULL,
            repo_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            ended REAL NOT NULL,
            serve_until REAL NOT NULL
        );
        CREATE INDEX publication_history_by_name ON publication_history (name, serve_until);
        """,
    ),
    (
        # where an apply's version came from: JSON {"desired_digest": ..., "git_commit": ...}
        # (``reconciler watch`` records the commit it applied); NULL for one-off commands
        "0007_version_provenance",
        "ALTER TABLE versions ADD COLUMN provenance TEXT;",
    ),
    (
        # index children a version deliberately lacks: a platform subset (sql/absent.py)
        "0008_repo_absent",
        """
        CREATE TABLE repo_absent (
            repo_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            digest TEXT NOT NULL,
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_absent_live ON repo_absent (repo_id, removed, digest);
        """,
    ),

    (
        # which manifest refers to which subject (OCI 1.1 ``subject``): the referrers of
        # a digest in one version are one indexed query (sql/referrers.py); a store that
        # holds OCI manifests already is marked for the backfill of their subjects
        "0009_manifest_subjects",
        """
        CREATE TABLE manifest_subjects (
            digest TEXT PRIMARY KEY REFERENCES manifests(digest) ON DELETE CASCADE,
            subject TEXT NOT NULL,
            artifact_type TEXT,
            annotations TEXT
        );
        CREATE INDEX manifest_subjects_by_subject ON manifest_subjects (subject, digest);
        """ + MARK_BACKFILL,
    ),]

#: migrations that also need Python: name -> function run in the same transaction
BACKFILLS: dict[str, Callable[[sqlite3.Connection], None]] = {}


def _backfill_refs(conn: sqlite3.Connection) -> None:
    refs: dict[str, list[tuple[str, str, str | None]]] = {}
    for parent, child, child_kind, media_type in conn.execute(
            "SELECT parent, child, child_kind, media_type FROM manifest_refs ORDER BY parent, position"):
        refs.setdefault(parent, []).append((child, child_kind, media_type))
    conn.executemany("UPDATE manifests SET refs = ? WHERE digest = ?",
                     ((refs_text(refs.get(d, [])), d) for (d,) in conn.execute("SELECT digest FROM manifests").fetchall()))


BACKFILLS["0003_manifest_refs_text"] = _backfill_refs


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        # executescript commits first; wrap the script in our own transaction
        conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO migrations (name, applied) VALUES ('{name}', datetime('now'));")
        try:
            if name in BACKFILLS:
                BACKFILLS[name](conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
