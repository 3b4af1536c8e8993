"""Named, ordered PostgreSQL schema migrations: the SQLite schema's twins.

The names match ``reconciler.store.sqlite.migrations`` so both backends have the same
schema history; the types differ where the dialects do (BIGINT sizes, an identity
column for the journal, ``COLLATE "C"`` so names sort and page by bytes as SQLite's do,
whatever the database's locale). All pending migrations run in one transaction under a
transaction-scoped advisory lock, so two processes opening a new store at once do not
race. Never edit a released migration: add a new one.
"""

from __future__ import annotations

from typing import Any

import psycopg

from reconciler.store.sql.referrers import MARK_BACKFILL

#: pg_advisory_xact_lock key serialising migrations (the apply lock uses another)
MIGRATE_LOCK_KEY = 0x52454D47  # "REMG"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
        INSERT INTO meta (key, value) VALUES ('generation', 0);

        CREATE TABLE blobs (
            digest TEXT COLLATE "C" PRIMARY KEY,
            size BIGINT NOT NULL
        );
        CREATE TABLE manifests (
            digest TEXT COLLATE "C" PRIMARY KEY,
            media_type TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('manifest', 'index')),
            size BIGINT NOT NULL
        );
        CREATE TABLE manifest_refs (
            parent TEXT COLLATE "C" NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            child TEXT COLLATE "C" NOT NULL,
            child_kind TEXT NOT NULL CHECK (child_kind IN ('blob', 'manifest', 'foreign')),
            media_type TEXT,
            size BIGINT,
            platform TEXT,
            PRIMARY KEY (parent, position)
        );
        CREATE INDEX manifest_refs_child ON manifest_refs (child);

        CREATE TABLE repositories (
            id TEXT COLLATE "C" PRIMARY KEY,
            feed TEXT,
            upstream_name TEXT,
            publish_name TEXT COLLATE "C" UNIQUE,
            protected INTEGER NOT NULL DEFAULT 0,
            latest_version INTEGER NOT NULL DEFAULT 0,
            published_version INTEGER,
            created TEXT NOT NULL
        );
        CREATE TABLE versions (
            repo_id TEXT COLLATE "C" NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            number INTEGER NOT NULL,
            created TEXT NOT NULL,
            operation TEXT NOT NULL,
            summary TEXT NOT NULL,
            PRIMARY KEY (repo_id, number)
        );
        CREATE TABLE repo_content (
            repo_id TEXT COLLATE "C" NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            digest TEXT COLLATE "C" NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest', 'index')),
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_content_live ON repo_content (repo_id, removed, digest);
        CREATE INDEX repo_content_digest ON repo_content (digest);
        CREATE TABLE repo_tags (
            repo_id TEXT COLLATE "C" NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            name TEXT COLLATE "C" NOT NULL,
            digest TEXT COLLATE "C" NOT NULL,
            origin TEXT NOT NULL,
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_tags_live ON repo_tags (repo_id, removed, name);
        CREATE UNIQUE INDEX repo_tags_one_name ON repo_tags (repo_id, name) WHERE removed IS NULL;

        CREATE TABLE journal (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started TEXT NOT NULL,
            finished TEXT,
            "user" TEXT NOT NULL,
            host TEXT NOT NULL,
            command TEXT NOT NULL,
            plan_digest TEXT,
            result TEXT NOT NULL,
            details TEXT NOT NULL
        );
        """,
    ),
    (
        "0002_version_lookup_indexes",
        """
        CREATE INDEX repo_tags_by_name ON repo_tags (repo_id, name, added);
        CREATE INDEX repo_content_by_digest ON repo_content (repo_id, digest, added);
        """,
    ),
    (
        # no backfill: there were no PostgreSQL stores before this column
        "0003_manifest_refs_text",
        "ALTER TABLE manifests ADD COLUMN refs TEXT;",
    ),
    (
        # text settings of the store; 'blobs': where its blobs were first put (binding.py)
        "0004_settings",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    ),
    (
        # Docker v1 images, as in the SQLite store (reconciler/store/sql/v1.py)
        "0005_v1_images",
        """
        CREATE TABLE v1_images (
            image_id TEXT COLLATE "C" PRIMARY KEY,
            parent TEXT COLLATE "C",
            json BYTEA NOT NULL,
            ancestry TEXT NOT NULL,
            layer TEXT COLLATE "C" NOT NULL,
            size BIGINT NOT NULL
        );
        CREATE TABLE repo_v1_images (
            repo_id TEXT COLLATE "C" NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            image_id TEXT COLLATE "C" NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('image', 'mask')),
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_v1_images_by_id ON repo_v1_images (repo_id, image_id, added);
        CREATE INDEX repo_v1_images_image ON repo_v1_images (image_id);
        CREATE TABLE repo_v1_tags (
            repo_id TEXT COLLATE "C" NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            name TEXT COLLATE "C" NOT NULL,
            image_id TEXT COLLATE "C" NOT NULL,
            added INTEGER NOT NULL,
            removed INTEGER
        );
        CREATE INDEX repo_v1_tags_by_name ON repo_v1_tags (repo_id, name, added);
        CREATE UNIQUE INDEX repo_v1_tags_one_name ON repo_v1_tags (repo_id, name) WHERE removed IS NULL;
        """,
    ),
    (
        # the grace period of a publication that moved (reconciler/store/sql/grace.py)
        "0006_publication_history",
        """
        CREATE TABLE publication_history (
            name TEXT COLLATE "C" NOT NULL,
            repo_id TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            ended DOUBLE PRECISION NOT NULL,
            serve_until DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX publication_history_by_name ON publication_history (name, serve_until);
        """,
    ),
    (
        # the provenance of an apply's version, as in the SQLite store
        "0007_version_provenance",
        "ALTER TABLE versions ADD COLUMN provenance TEXT;",
    ),
    (
        # index children a version deliberately lacks: a platform subset (sql/absent.py)
        "0008_repo_absent",
        """
        CREATE TABLE repo_absent (
            repo_id TEXT COLLATE "C" NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
            digest TEXT COLLATE "C" NOT NULL,
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
            digest TEXT COLLATE "C" PRIMARY KEY REFERENCES manifests(digest) ON DELETE CASCADE,
            subject TEXT COLLATE "C" NOT NULL,
            artifact_type TEXT,
            annotations TEXT
        );
        CREATE INDEX manifest_subjects_by_subject ON manifest_subjects (subject, digest);
        """ + MARK_BACKFILL,
    ),]


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply every migration not yet recorded, in one transaction; return their names."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))
        conn.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
        done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            conn.execute(sql.encode())  # several statements: no parameters, simple protocol
            conn.execute("INSERT INTO migrations (name, applied) VALUES (%s, now()::text)", (name,))
            applied.append(name)
    return applied
