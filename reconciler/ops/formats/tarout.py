"""Writing a tar file all at once or not at all (exports and bundles).

``atomic_tar(target)`` gives a ``TarWriter`` over a temporary file next to ``target``;
leaving the block normally fsyncs the file, renames it into place and fsyncs the
directory, so a crash or an error leaves the old file (or none), never a partial one.
Members get fixed ownership and one mtime; blob members are streamed from their files,
never held in memory.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from reconciler.errors import InvalidInput


class TarWriter:
    """Adds members to a tar with fixed ownership and one mtime; counts the bytes."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.mtime = int(time.time())
        self.bytes = 0

    def _info(self, name: str, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid = size, self.mtime, 0o644, 0, 0
        return info

    def data(self, name: str, data: bytes) -> None:
        self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        self.bytes += len(data)

    def stream(self, name: str, size: int, file: BinaryIO) -> None:
        with file:
            self.tar.addfile(self._info(name, size), file)
        self.bytes += size

    def chunks(self, name: str, size: int, chunks: Iterator[bytes]) -> int:
        """A member of ``size`` bytes from ``chunks``, read to their end (a verified
        stream raises there when its bytes are wrong; the file is then never renamed
        into place)."""
        reader = _ChunkReader(chunks)
        self.tar.addfile(self._info(name, size), reader)
        for extra in reader.rest():
            if extra:
                raise InvalidInput(f"{name}: more than the announced {size} bytes")
        self.bytes += size
        return size

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(info)


class _ChunkReader(io.RawIOBase):
    """A file object over an iterator of byte chunks (what ``tarfile`` reads a member from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = iter(chunks)
        self._chunk = memoryview(b"")
        self._at = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # whole buffers until the end: tarfile takes a short read for the end of the data
        done, want = 0, len(buffer)
        while done < want:
            if self._at >= len(self._chunk):
                try:
                    self._chunk, self._at = memoryview(next(self._chunks)), 0
                except StopIteration:
                    break
                continue
            n = min(want - done, len(self._chunk) - self._at)
            buffer[done:done + n] = self._chunk[self._at:self._at + n]
            self._at += n
            done += n
        return done

    def rest(self) -> Iterator[bytes]:
        """What is left, to the end of the chunks."""
        yield bytes(self._chunk[self._at:])
        self._chunk, self._at = memoryview(b""), 0
        yield from self._chunks


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


@contextmanager
def atomic_tar(target: Path) -> Iterator[TarWriter]:
    """A ``TarWriter`` whose tar becomes ``target`` when the block ends without an error
    (see the module doc); ``InvalidInput`` when the file cannot be written."""
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InvalidInput(f"cannot write to {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as raw_out:
            # mkstemp makes the file 0600; an export is shared (a web server serves a
            # Crane tree), so give it the mode a plainly created file would have
            os.fchmod(raw_out.fileno(), 0o666 & ~_umask())
            with tarfile.open(fileobj=raw_out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                yield TarWriter(tar)
            raw_out.flush()
            os.fsync(raw_out.fileno())
        os.replace(tmp_name, target)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise InvalidInput(f"cannot write {target}: {exc}") from exc
        raise
