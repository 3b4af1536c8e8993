"""Blob storage in a local folder: ``<root>/<area>/<algorithm>/<2 hex>/<hex>``.

Writes go to a temporary file in ``<root>/tmp`` while hashing, are verified against the
expected digest, fsynced, then renamed into place (and the directory fsynced), so a
reader never sees a partial file and a crash leaves at most a temp file that ``gc``
removes. A digest mismatch leaves nothing behind. Temp files are named
``put-<pid>-...`` so ``gc`` can tell one whose writer is dead (a killed apply) from one a
live process is still writing.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from reconciler.errors import BlobStorageError, ContentNotFound, DigestMismatch, InvalidInput
from reconciler.model import Digest, DigestHasher, VerifiedStream

CHUNK = 1024 * 1024


class ContentFiles:
    """``BlobStorage`` in a folder (``LocalBlobs``); the embedded store also keeps its
    manifest files in one (area ``manifests``)."""

    def __init__(self, root: Path, area: str = "blobs", *, durable: bool = True) -> None:
        self.root = root
        self.location = str(root)
        self.durable = durable
        self.area = root / area
        self.tmp = root / "tmp"
        self.area.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: Digest) -> Path:
        # Digest is validated (fixed-length lowercase hex), so this can never escape root
        return self.area / digest.algorithm / digest.hex[:2] / digest.hex

    def exists(self, digest: Digest) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: Digest) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, digest: Digest) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise ContentNotFound(f"blob {digest} is not in the store") from None

    def presigned_url(self, digest: Digest, *, expires: int) -> str | None:
        return None  # a local folder has no URL of its own

    def close(self) -> None:
        pass

    def write(
        self,
        chunks: Iterable[bytes] | BinaryIO,
        expected: Digest,
        *,
        size: int | None = None,
        where: str = "",
    ) -> int:
        """Stream ``chunks`` into place under ``expected``; return the byte count."""
        tmp_name, n = self.stage(chunks, expected, size=size, where=where, sync=True)
        try:
            self._place(tmp_name, self.path(expected))
        except BaseException:
            discard(tmp_name)
            raise
        return n

    def stage(
        self,
        chunks: Iterable[bytes] | BinaryIO,
        expected: Digest,
        *,
        size: int | None = None,
        where: str = "",
        sync: bool = False,
    ) -> tuple[str, int]:
        """Stream ``chunks`` into a temporary file, verified against ``expected`` (and
        fsynced when ``sync``): (its name, the byte count). Nothing is left on failure.
        ``place`` (or a batch's own rename) puts it into place."""
        # a stream its producer verifies (the registry client hashed it on arrival, and
        # it raises at its end on a mismatch): count bytes, do not hash them again
        pre_verified = isinstance(chunks, VerifiedStream) and chunks.digest == expected
        if hasattr(chunks, "read"):
            stream = chunks
            chunks = iter(lambda: stream.read(CHUNK), b"")
        h: DigestHasher | Counting = Counting(expected) if pre_verified else expected.hasher()
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(), dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    h.update(chunk)
                    out.write(chunk)
                    if size is not None and h.size > size:
                        raise InvalidInput(f"{where or expected}: more than the announced {size} bytes")
                if sync:
                    self._sync(out)
            if size is not None and h.size != size:
                raise InvalidInput(
                    f"{where or expected}: got {h.size} bytes, expected {size}",
                    hint="the transfer was cut short or the source is corrupt; nothing was stored",
                )
            actual = h.digest()
            if actual != expected:
                raise DigestMismatch(str(expected), str(actual), where=where)
            return tmp_name, h.size
        except BaseException:
            discard(tmp_name)
            raise

    def write_bytes(self, data: bytes, digest: Digest) -> None:
        """Store small content whose digest the caller already verified."""
        final = self.path(digest)
        if final.is_file():
            return
        tmp_name = self.stage_bytes(data, sync=True)
        try:
            self._place(tmp_name, final)
        except BaseException:
            discard(tmp_name)
            raise

    def stage_bytes(self, data: bytes, *, sync: bool = False) -> str:
        """``data`` (already verified) in a temporary file (fsynced when ``sync``): its name."""
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(), dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                if sync:
                    self._sync(out)
        except BaseException:
            discard(tmp_name)
            raise
        return tmp_name

    def _sync(self, out: BinaryIO) -> None:
        """The bytes written so far, durable (unless the store is not ``durable``)."""
        out.flush()
        if self.durable:
            os.fsync(out.fileno())

    def _place(self, tmp_name: str, final: Path) -> None:
        """Rename a synced temporary file into place, and make the rename durable."""
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_name, final)
        if self.durable:
            fsync_path(final.parent)

    def read_marker(self, name: str) -> str | None:
        try:
            return (self.root / name).read_text()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BlobStorageError(f"cannot read {self.root / name}: {exc}",
                                   hint="check the folder's permissions and mount") from exc

    def write_marker(self, name: str, text: str) -> None:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{name}-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(text.encode())
                self._sync(out)
            self._place(tmp_name, self.root / name)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def remove(self, digest: Digest) -> int:
        p = self.path(digest)
        try:
            size = p.stat().st_size
            p.unlink()
            return size
        except FileNotFoundError:
            return 0

    def remove_stale_uploads(self, older_than: float, *, dry_run: bool = False) -> tuple[int, int]:
        count = freed = 0
        now = time.time()
        for f in self.tmp.iterdir():
            try:
                st = f.stat()
                if writer_gone(f.name) or now - st.st_mtime > older_than:
                    if not dry_run:
                        f.unlink()
                    count += 1
                    freed += st.st_size
            except FileNotFoundError:
                continue
        return count, freed

    def all_digests(self) -> Iterable[tuple[Digest, Path | str]]:
        if not self.area.is_dir():
            return
        for algo_dir in sorted(self.area.iterdir()):
            for prefix in sorted(algo_dir.iterdir()) if algo_dir.is_dir() else ():
                for f in sorted(prefix.iterdir()):
                    try:
                        yield Digest(algo_dir.name, f.name), f
                    except InvalidInput:
                        continue


#: the name the blob-storage layer uses for a folder
LocalBlobs = ContentFiles


def temp_prefix() -> str:
    return f"put-{os.getpid()}-"


def temp_writer_pid(name: str) -> int | None:
    """The pid in a temp file name (``put-<pid>-...``), None for another name."""
    parts = name.split("-", 2)
    if len(parts) == 3 and parts[0] == "put" and parts[1].isdigit():
        return int(parts[1])
    return None


def writer_gone(name: str) -> bool:
    """Whether the process that wrote temp file ``name`` is dead (then the file is
    garbage at once). Unknown writers, live ones and this process (one of its threads
    may be writing) keep the file until it is older than the grace period; a reused pid
    only delays the removal."""
    pid = temp_writer_pid(name)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class Counting:
    """Stands in for the hasher when the stream verifies itself: sizes only."""

    def __init__(self, digest: Digest) -> None:
        self._digest = digest
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def digest(self) -> Digest:
        return self._digest


def fsync_path(path: str | Path) -> None:
    """fsync a file or directory by name (a directory: the entries renamed into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def discard(tmp_name: str) -> None:
    try:
        os.unlink(tmp_name)
    except FileNotFoundError:
        pass
