"""The shared store: PostgreSQL for metadata (psycopg 3), content-addressed files in a
folder (``--blobs``) for bytes. Import needs the ``postgresql`` extra."""

from reconciler.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
