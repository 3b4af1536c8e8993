"""A populated large store kept between benchmark runs (opt-in: ``BENCH_LARGE_STORE_CACHE``).

Populating 100,000 manifests takes about a minute into SQLite and three into PostgreSQL,
and the ``large_store`` section used to do it on every run. With
``BENCH_LARGE_STORE_CACHE=DIR`` the first run saves what it populated under
``DIR/<key>/`` and later runs restore it instead:

* SQLite: ``store.db`` (and every other small file) is copied, the content files under
  ``blobs/`` and ``manifests/`` are hard-linked (a content-addressed file is never written
  in place, so a link is as good as a copy and takes no space);
* PostgreSQL: ``pg_dump --format=custom`` of the database, restored with ``pg_restore``
  into a new database of the run's server; its blob folder is linked the same way.

The key covers what makes the populated store what it is: the shape (repositories x
manifests), this generator's source and the schema's migration names of both backends.
A change to how the store writes its rows without a migration is not seen: clear the
folder then. The measured commands run on a restored store exactly as on a freshly
populated one (``rebind`` first binds the copy to its copy of the blobs, as
``store relocate`` would); ``settle`` (``VACUUM ANALYZE`` on PostgreSQL, as autovacuum leaves a
store that has been in use) runs on both paths, so the database's statistics do not
depend on whether the store was restored or populated a minute ago. ``make bench``
leaves the variable unset and populates afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

CACHE_ENV = "BENCH_LARGE_STORE_CACHE"
#: folders of content-addressed files: linked, not copied
_CONTENT = ("blobs", "manifests")


def cache_dir(repos: int, manifests: int) -> Path | None:
    """Where this shape's populated stores are kept, or None (no cache asked for)."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        return None
    from reconciler.store.postgres.migrations import MIGRATIONS as PG
    from reconciler.store.sqlite.migrations import MIGRATIONS as LITE

    h = hashlib.sha256((Path(__file__).parent / "large_store.py").read_bytes())
    for name, _ in [*LITE, *PG]:
        h.update(name.encode() + b"\n")
    return Path(root) / f"{repos}x{manifests}-{h.hexdigest()[:12]}"


def clone_tree(src: Path, dst: Path) -> None:
    """``dst`` as a copy of ``src``: content files hard-linked, everything else copied."""
    for here, dirs, files in os.walk(src):
        rel = Path(here).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        link = bool(rel.parts) and rel.parts[0] in _CONTENT
        for f in files:
            if link:
                os.link(Path(here) / f, dst / rel / f)
            else:
                shutil.copy2(Path(here) / f, dst / rel / f)
        dirs.sort()


def _meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "meta.json").read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _save_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / "meta.json.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(folder / "meta.json")  # last: a folder without it is an unfinished save


def restore_sqlite(cache: Path, root: Path) -> dict[str, Any] | None:
    """The cached SQLite store copied to ``root``; its meta (feed), or None if none is kept."""
    meta = _meta(cache / "sqlite")
    if meta is None:
        return None
    t0 = time.monotonic()
    clone_tree(cache / "sqlite" / "store", root)
    rebind(str(root), None)
    return {**meta, "restored_s": round(time.monotonic() - t0, 1)}


def save_sqlite(cache: Path, root: Path, meta: dict[str, Any]) -> None:
    folder = cache / "sqlite"
    shutil.rmtree(folder, ignore_errors=True)
    clone_tree(root, folder / "store")
    _save_meta(folder, meta)


def restore_postgres(cache: Path, pg: Any, blobs: Path) -> tuple[str, dict[str, Any]] | None:
    """A new database of ``pg`` restored from the cache and its blob folder linked to
    ``blobs``: (its URL, meta), or None if none is kept."""
    meta = _meta(cache / "postgresql")
    if meta is None:
        return None
    t0 = time.monotonic()
    name = f"large_{os.getpid()}_{int(t0 * 1000) % 10**9}"
    pg.admin(f"CREATE DATABASE {name} TEMPLATE template0")
    url = pg.url(name)
    subprocess.run([str(pg.bindir / "pg_restore"), "--no-owner", "--jobs", "2", "--dbname", url,
                    str(cache / "postgresql" / "db.dump")], check=True, capture_output=True, timeout=1800)
    clone_tree(cache / "postgresql" / "blobs", blobs)
    rebind(url, blobs)
    return url, {**meta, "restored_s": round(time.monotonic() - t0, 1)}


def save_postgres(cache: Path, pg: Any, url: str, blobs: Path, meta: dict[str, Any]) -> None:
    folder = cache / "postgresql"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    subprocess.run([str(pg.bindir / "pg_dump"), "--format=custom", "--compress=1", "--file",
                    str(folder / "db.dump"), url], check=True, capture_output=True, timeout=1800)
    clone_tree(blobs, folder / "blobs")
    _save_meta(folder, meta)


def rebind(location: str, blobs: Path | None) -> None:
    """A restored store is a copy somewhere else (``reconciler/store/sql/identity.py``):
    bind it to its copy of the blobs now, so no measured command does it (``store gc``
    would refuse a PostgreSQL copy, and rotate a SQLite copy's id on its way)."""
    from reconciler.store.recovery import relocate_store

    store: Any
    if blobs is None:
        from reconciler.store.sqlite import SQLiteStore

        store = SQLiteStore(location, create=False)
    else:
        from reconciler.store.postgres import PostgresStore

        store = PostgresStore(location, blobs=blobs, create=False)
    try:
        relocate_store(store, None, force=True)
    finally:
        store.close()


def settle_postgres(url: str) -> None:
    """``VACUUM ANALYZE``: the statistics and visibility map autovacuum gives a store in use."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
