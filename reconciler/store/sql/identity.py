"""Store identity: every store is bound to its blob storage, so that no store ever writes
to or collects the bytes of another.

A store has a random **store id** (``meta.store_id``) and a **home**
(``settings.store_home``): where its database lives (``sqlite:<directory>``, or
``postgresql:<cluster system id>/<database oid>``). Its blob storage holds the marker
``store-id`` (``<folder>/store-id``, the object ``<prefix>/store-id``) naming the one
store it belongs to. A copy of a store (a copied directory, a restored dump) carries the
same id but finds itself somewhere else: its home does not match.

Before its first write and before every ``gc`` a store checks the binding (``gate``):

==========================  ==========================================================
what it finds               what happens
==========================  ==========================================================
no id yet                   bind: a new id (row first, then the marker); refused when
                            the storage already names a store (it is another's)
home moved, blobs inside    a copied store directory: it owns its copy of the bytes, so
the store directory         it takes a new id and rewrites its own marker
home moved, blobs outside   a copy or a moved store: writes and gc are refused, since
                            the blobs belong to the original (``store relocate`` claims
                            them after a move, or binds a copy of them)
marker missing              rewritten with the same id (a crash between row and marker;
                            it can claim nothing that another store holds)
marker names another id     refused (the storage was claimed by another store)
==========================  ==========================================================

Reads never check or write anything: a copy serves and plans like the original.
``rebind`` is the explicit form (``store relocate``, ``store restore``): under the store
lock it points the store at a blob storage whose marker is its own, and with a new id
when it claims storage from another home. The rows are written before the marker and
remember the previous id, so a crash in between leaves the original store working and
this one refused until ``relocate`` runs again.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import StoreError, StoreIdentityError

if TYPE_CHECKING:
    from reconciler.store.blobs import BlobStorage
    from reconciler.store.sql.base import SQLStore
    from reconciler.store.sql.connection import Connection

MARKER = "store-id"


class Step(enum.Enum):
    OK = "ok"
    BIND = "bind"                  # a new id, recorded with this home, then the marker
    WRITE_MARKER = "write_marker"  # the recorded id into the marker
    ROTATE = "rotate"              # a new id for a copied store that owns its bytes
    ADOPT_HOME = "adopt_home"      # a store from before homes: record this one


@dataclass(frozen=True)
class State:
    """What ``gate`` and ``store check`` look at."""

    where: str                 # the store, for messages
    storage: str               # its blob storage, for messages
    here: str                  # this store's home now
    internal: bool             # the blob storage lives inside the store directory
    store_id: int | None = None
    previous_id: int | None = None
    home: str | None = None    # the home recorded with the id
    marker: int | None = None  # the id the storage's marker names


def decide(s: State) -> Step:
    """The step that makes ``s`` a sound binding; ``StoreIdentityError`` when only the
    operator can decide (see the module doc)."""
    if s.store_id is None:
        if s.internal or s.marker is None:
            return Step.BIND
        raise StoreIdentityError(
            f"the blob storage {s.storage} belongs to another store (its {MARKER} names store {s.marker}), and "
            f"the store at {s.where} has no identity yet; it must not write there",
            hint="give this store its own blob storage: `reconciler store relocate --blobs DIR` after copying the "
                 "blobs to DIR")
    if s.home is None:
        return Step.ADOPT_HOME
    if s.home != s.here:
        if s.internal:
            return Step.ROTATE
        raise StoreIdentityError(
            f"the store at {s.where} is a copy of the store at {describe(s.home)} (or was moved from there): its "
            f"blob storage {s.storage} belongs to that store, so writes and gc are refused here",
            hint="for a copy, give it its own blobs: copy them and run `reconciler store relocate --blobs COPY` "
                 "(`reconciler store restore` does this); if the store moved and the original is gone, run "
                 "`reconciler store relocate` to claim the blobs")
    if s.marker == s.store_id:
        return Step.OK
    if s.marker is None or s.internal:
        return Step.WRITE_MARKER
    if s.marker == s.previous_id:
        raise StoreIdentityError(
            f"binding the store at {s.where} to {s.storage} was interrupted (its {MARKER} still names the previous "
            f"store id {s.marker})", hint="run `reconciler store relocate` again to finish it")
    raise StoreIdentityError(
        f"the blob storage {s.storage} belongs to another store (its {MARKER} names store {s.marker}, this store is "
        f"{s.store_id}); the store at {s.where} must not write to it or collect it",
        hint="point the store at its own blobs with `reconciler store relocate --blobs DIR`, or restore them from "
             "a backup")


def describe(home: str) -> str:
    """A home for people: the directory of an embedded store, the database of a shared one."""
    kind, _, rest = home.partition(":")
    if kind == "sqlite":
        return rest
    if kind == "postgresql":
        cluster, _, oid = rest.partition("/")
        return f"PostgreSQL database oid {oid} of cluster {cluster}"
    return home


# -- reading and writing the binding ---------------------------------------------------

def read_marker(blobs: BlobStorage) -> int | None:
    text = blobs.read_marker(MARKER)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise StoreError(f"{blobs.location}/{MARKER} does not hold a store id ({text[:40]!r})",
                         hint="it is written by reconciler; restore it from a backup of the blobs") from None


def write_marker(blobs: BlobStorage, store_id: int) -> None:
    blobs.write_marker(MARKER, f"{store_id}\n")


def new_id() -> int:
    return secrets.randbits(62)  # fits PostgreSQL's BIGINT


def _meta(conn: Connection, key: str) -> int | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return int(row[0]) if row else None


def _setting(conn: Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def state(store: SQLStore, blobs: BlobStorage | None = None) -> State:
    """The binding as it is now (of ``blobs``, default the store's own storage)."""
    blobs = blobs or store.blob_files
    with store._read() as conn:
        store_id, previous = _meta(conn, "store_id"), _meta(conn, "store_id_previous")
        home = _setting(conn, "store_home")
    return State(store.location, blobs.location, store.home(), store.blobs_internal and blobs is store.blob_files,
                 store_id, previous, home, read_marker(blobs))


def record(conn: Connection, store_id: int, home: str, previous: int | None = None) -> None:
    """The id and home rows (inside the caller's write transaction)."""
    for key, value in (("store_id", store_id), ("store_id_previous", previous)):
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        if value is not None:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
    conn.execute("DELETE FROM settings WHERE key = 'store_home'")
    conn.execute("INSERT INTO settings (key, value) VALUES ('store_home', ?)", (home,))


def gate(store: SQLStore, *, fresh: bool = False) -> None:
    """Make sure this store may write to its blob storage (once per store object, every
    time with ``fresh``); fix what needs no decision, refuse what does."""
    if store.identity_ok and not fresh:
        return
    with store.identity_guard():
        for _ in range(3):  # adopting a home is followed by the check it enables
            s = state(store)
            step = decide(s)
            if step is Step.OK:
                break
            _fix(store, s, step)
        store.identity_ok = True


def _fix(store: SQLStore, s: State, step: Step) -> None:
    if step is Step.WRITE_MARKER:
        assert s.store_id is not None
        write_marker(store.blob_files, s.store_id)
        return
    if step is Step.ADOPT_HOME:
        assert s.store_id is not None
        with store._write(binding=True) as conn:
            record(conn, s.store_id, s.here, s.previous_id)
        return
    # BIND, ROTATE: rows first, then the marker (a crash in between: WRITE_MARKER next time)
    with store._write(binding=True) as conn:
        record(conn, new_id(), s.here, s.store_id)
    with store._read() as conn:
        fresh = _meta(conn, "store_id")
    assert fresh is not None
    write_marker(store.blob_files, fresh)


def problems(store: SQLStore) -> list[str]:
    """Why this store's writes would be refused (``store check``); [] when they would not."""
    try:
        decide(state(store))
    except StoreIdentityError as exc:
        return [exc.message]
    return []


def home_exists(home: str) -> bool:
    """Whether the store recorded at ``home`` visibly still exists (an embedded store's
    database file); True when this cannot be seen from here (a PostgreSQL database)."""
    kind, _, rest = home.partition(":")
    return kind != "sqlite" or (Path(rest) / "store.db").exists()


@dataclass(frozen=True)
class Rebound:
    """What ``rebind`` did: the store's id before and after, and its blob storage."""

    old_id: int | None
    store_id: int
    storage: str
    claimed_from: str | None = None  # the home whose storage this store took over


def rebind(store: SQLStore, target: BlobStorage, *, target_internal: bool, force: bool = False) -> Rebound:
    """Bind the store to ``target`` (``store relocate``, ``store restore``); the caller
    holds the store lock. ``target`` must be this store's blobs: its marker names this
    store (or its previous id), or it has no marker and holds every blob the store
    records. A store whose home moved takes a new id (so the original, if it still
    exists, is refused from then on); claiming the storage of an original that visibly
    still exists needs ``force``."""
    with store.identity_guard():
        s = state(store, target)
        lineage = {s.store_id, s.previous_id} - {None}
        if s.marker is not None and s.marker not in lineage:
            raise StoreIdentityError(
                f"the blob storage {target.location} belongs to another store (its {MARKER} names store {s.marker}; "
                f"this store is {s.store_id})", hint="give the folder or prefix that holds this store's blobs")
        if s.marker is None:
            _check_holds_every_blob(store, target)
        moved = s.home is not None and s.home != s.here
        # a moved database pointed at the storage it was bound to takes that storage over
        claimed = s.home if moved and not target_internal and target.location == store.blob_files.location else None
        if claimed is not None and not force and home_exists(claimed):
            raise StoreIdentityError(
                f"the store at {describe(claimed)} may still use the blob storage {target.location}: taking it over "
                "locks that store out (and a copy's gc would delete what the other one needs)",
                hint="give this store a copy of the blobs (`store relocate --blobs COPY`); if the other store is "
                     "gone or is a stale copy you are retiring, add --force")
        store_id = new_id() if s.store_id is None or moved else s.store_id
        # the id the marker names until it is rewritten: a crash in between leaves a
        # store that `relocate` finishes (and an original that still works)
        previous = (s.marker if s.marker is not None else s.store_id) if store_id != s.store_id else s.previous_id
        with store._write(binding=True) as conn:
            record(conn, store_id, s.here, previous)
            conn.execute("DELETE FROM settings WHERE key = 'blobs'")
            conn.execute("INSERT INTO settings (key, value) VALUES ('blobs', ?)",
                         ("" if target_internal else target.location,))
        write_marker(target, store_id)
        store.identity_ok = False
    return Rebound(s.store_id, store_id, target.location, claimed)


def _check_holds_every_blob(store: SQLStore, target: BlobStorage) -> None:
    """A storage without a marker is this store's only if every blob it records is there."""
    present = {str(d) for d, _ in target.all_digests()}
    recorded = [r[0] for r in store._conn().execute("SELECT digest FROM blobs")]
    missing = [d for d in recorded if d not in present]
    if missing:
        raise StoreIdentityError(
            f"the blob storage {target.location} has no {MARKER} and lacks {len(missing)} of the store's "
            f"{len(recorded)} blobs (e.g. {missing[0]})",
            hint="give the folder or prefix the blobs were copied or moved to")


def check_restore_target(storage: str, *, internal: bool, marker: int | None, target_id: int | None,
                         backup_id: int | None, keep_identity: bool) -> None:
    """A restore may fill a blob storage that is empty (no marker), the target store's own
    (in place; ``target_id`` only when the target is bound here, i.e. not itself a copy),
    or, keeping the identity, the one the backed-up store used (the store is being
    replaced after a loss). Filling another store's storage, e.g. a drill pointed at
    production's bucket, would rebind it to the restored store and lock production out."""
    if internal or marker is None or marker == target_id or (keep_identity and marker == backup_id):
        return
    whose = "the store this backup was taken from" if marker == backup_id else f"store {marker}"
    raise StoreIdentityError(
        f"the blob storage {storage} belongs to {whose}; a restore must not take it over",
        hint="restore into a blob storage of its own (--blobs NEW) for a drill or a copy; if that store is lost "
             "and this restore replaces it, add --keep-identity" if marker == backup_id else
             "restore into an empty blob storage or the target store's own")


def record_restored(conn: Connection, *, here: str, backup_id: int | None, marker: int | None,
                    keep_identity: bool) -> int:
    """The identity rows of a database just restored (inside the restore's transaction):
    a new id, or the backup's with ``keep_identity``; the id the storage's marker names
    now is kept as the previous one, so that an interrupted restore is finished by
    ``store relocate``. Returns the id the marker must name next."""
    store_id = backup_id if keep_identity and backup_id is not None else new_id()
    record(conn, store_id, here, marker if marker != store_id else None)
    return store_id
