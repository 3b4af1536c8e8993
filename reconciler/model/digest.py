"""Content digests (``algorithm:hex``) as defined by the OCI image spec.

A ``Digest`` is validated on construction: the algorithm must be one we can compute
(sha256, sha512) and the hex part must have that algorithm's exact length in lowercase.
``DigestHasher`` hashes a stream incrementally so blobs are never held whole in memory.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from reconciler.errors import DigestInvalid, DigestMismatch

#: hex length per supported algorithm
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


@dataclass(frozen=True, order=True)
class Digest:
    """A validated content digest; ``str(d)`` gives ``sha256:<hex>``."""

    algorithm: str
    hex: str
    #: ``hash(hex)``, worked out once: sets and dicts of digests are the inner loops of a big
    #: plan (800,000 hashes for 1,000 x 50), and ``__hash__`` runs as Python code
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        want = ALGORITHMS.get(self.algorithm)
        if want is None:
            raise DigestInvalid(
                f"unsupported digest algorithm {self.algorithm!r}",
                hint=f"use one of {', '.join(sorted(ALGORITHMS))}",
            )
        if len(self.hex) != want or not _HEX.fullmatch(self.hex):
            raise DigestInvalid(
                f"invalid {self.algorithm} digest {self.algorithm}:{self.hex!r}: "
                f"expected {want} lowercase hex characters",
            )
        object.__setattr__(self, "_hash", hash(self.hex))

    def __hash__(self) -> int:
        # the hex alone (the algorithm follows from its length): no tuple per lookup
        return self._hash

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``; raises ``DigestInvalid`` with the offending text."""
        if not isinstance(text, str) or ":" not in text:
            raise DigestInvalid(
                f"invalid digest {text!r}: expected 'sha256:<64 hex characters>'"
            )
        if cls is Digest:
            return _parse_cached(text)
        algorithm, _, hexpart = text.partition(":")
        return cls(algorithm, hexpart)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        try:
            cls.parse(text)
        except DigestInvalid:
            return False
        return True

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """Digest of in-memory bytes (manifests, configs: small things)."""
        hasher = DigestHasher(algorithm)
        hasher.update(data)
        return hasher.digest()

    def hasher(self) -> DigestHasher:
        """A fresh streaming hasher of this digest's algorithm."""
        return DigestHasher(self.algorithm)

    def verify(self, data: bytes, *, where: str = "") -> None:
        """Raise ``DigestMismatch`` unless ``data`` hashes to this digest."""
        actual = Digest.of(data, self.algorithm)
        if actual != self:
            raise DigestMismatch(str(self), str(actual), where=where)

    def short(self) -> str:
        """Abbreviated form for humans: ``sha256:07f1a3b2c4d5…`` (12 hex digits, as docker
        shows image ids: enough to tell digests apart and to search a log for one)."""
        return f"{self.algorithm}:{self.hex[:12]}…"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


class DigestHasher:
    """Incremental hasher that also counts bytes."""

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in ALGORITHMS:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm!r}")
        self.algorithm = algorithm
        self._h = hashlib.new(algorithm)
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._h.update(chunk)
        self.size += len(chunk)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._h.hexdigest())


class VerifiedStream:
    """Byte chunks whose producer has promised to verify them: iterating to the end
    raises (``DigestMismatch``, or an error for a cut-short body) unless the bytes hash
    to ``digest``. The registry client hashes a blob as it arrives; a store that writes
    such a stream to a temporary file and makes it visible only after the stream ended
    cleanly need not hash every byte a second time."""

    def __init__(self, chunks: Iterator[bytes], digest: Digest) -> None:
        self._chunks = chunks
        self.digest = digest

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)


def parse_recorded(text: str) -> Digest:
    """``Digest.parse`` for text a store recorded after validating it: no re-checks of
    the shape (a big plan reads tens of thousands of them; validating each cost 4 us)."""
    ref = _INTERNED_REFS.get(text)
    found = ref() if ref is not None else None
    if found is None:
        algorithm, _, hexpart = text.partition(":")
        made = object.__new__(Digest)
        object.__setattr__(made, "algorithm", algorithm)
        object.__setattr__(made, "hex", hexpart)
        object.__setattr__(made, "_hash", hash(hexpart))
        found = _INTERNED.setdefault(text, made)
    return found


#: every Digest alive, by text: a big plan meets the same digests many times (store rows,
#: references, tags), and shares one object each instead of validating and holding
#: copies. Weak values: the table never outlives the digests (a server cannot grow it).
_INTERNED: weakref.WeakValueDictionary[str, Digest] = weakref.WeakValueDictionary()


#: the table's own dict (text -> weak reference): ``WeakValueDictionary.get`` is Python
#: code and was a third of a big plan's digest parsing; a dict lookup and a call are not
_INTERNED_REFS: dict[str, Callable[[], Digest | None]] = _INTERNED.data  # type: ignore[attr-defined]


def _parse_cached(text: str) -> Digest:
    ref = _INTERNED_REFS.get(text)
    found = ref() if ref is not None else None
    if found is None:
        algorithm, _, hexpart = text.partition(":")
        found = _INTERNED.setdefault(text, Digest(algorithm, hexpart))
    return found
