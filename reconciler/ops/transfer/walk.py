"""``transfer(source, sink, roots, *, policy)``: the one walk that moves content.

Sync, apply's downloads, upload, export and the plan's refresh all move content the same
way; only the two ends (``ops.transfer.interface``) and the ``TransferPolicy`` differ:

1. Manifests and indexes, level by level (an index's children are the next level).
   Those the sink holds are read back from it (``descend_held``) or not walked; the
   rest are fetched from the source in parallel, and each must hash to the digest it
   was asked for. Indexes nested more than ``max_depth`` deep are refused (real ones
   nest once or twice; digests make a cycle impossible, but a hostile source can still
   chain indexes without end).
2. Blobs (``policy.blobs``): every blob those manifests need that the sink lacks, and
   only those. Before any is read, each descriptor's size is checked against the size
   the source knows without reading (a file in an archive): a lying file is refused
   before anything is written. Then they are streamed in parallel (at most
   ``policy.jobs``), each through one check of its size and digest (``_verified``):
   the sink gets a ``VerifiedStream`` that raises at its end unless the bytes are right.
   Downloads already under way in another transfer sharing the ``InFlight`` table are
   waited for, not repeated. Foreign (non-distributable) layers are never read.
3. The fetched manifests go to the sink, children before the indexes listing them. The
   caller commits the sink (a caller may share one sink across several transfers).

This is the one place that checks digests and sizes on the way, the one depth bound and
the one parallelism bound. Errors: the first failure raises ``TransferFailed`` (the
item, the tag it belongs to, the cause), which each caller words for its user; with
``keep_going`` (the plan's refresh) a failure fails the roots above it only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.errors import DigestMismatch, InvalidInput, ManifestInvalid, ReconcilerError
from reconciler.model import Descriptor, Digest, Index, Manifest, VerifiedStream
from reconciler.model.manifest import MAX_INDEX_DEPTH
from reconciler.model.platforms import PlatformFilter
from reconciler.ops.parallel import Counter, ItemFailed, Progress, run_bounded
from reconciler.ops.stop import StopToken, check
from reconciler.ops.transfer.interface import AnyManifest, ContentSink, ContentSource, is_not_found


@dataclass(frozen=True)
class TransferPolicy:
    """What a transfer moves and how far it goes.

    ``platforms`` (issue 18) says which children of an index to follow; issue 22's
    referrer following will join here (walk the manifests whose ``subject`` is one met);
    issue 23's registry sink needs nothing here (it is a sink)."""

    #: blobs read at once, and manifests fetched at once per level
    jobs: int = 6
    #: index levels below a root that may hold indexes
    max_depth: int = MAX_INDEX_DEPTH
    #: move blobs too (False: manifests only, e.g. the plan's refresh)
    blobs: bool = True
    #: walk on below a manifest the sink holds (to know the whole closure); False: stop there
    descend_held: bool = True
    #: a root the source does not have (404) is left out (``missing_roots``), not an error
    skip_missing_roots: bool = False
    #: a failing manifest fails only the roots above it (``TransferResult.failed``)
    keep_going: bool = False
    #: follow only these platforms' entries of an index (``PlatformFilter.split``); the
    #: index itself moves byte for byte, and ``TransferResult.left_out`` says what it lacks
    platforms: PlatformFilter | None = None
    #: index children the source lacks on purpose (a stored platform subset: the
    #: version's ``absent`` set): not followed, as the filter that left them out did not
    absent: frozenset[Digest] = frozenset()


class TransferFailed(Exception):
    """The first failure of a transfer: ``kind`` (``manifest``/``blob``) ``digest``,
    ``label`` (the root's name, e.g. its tag, when the caller gave one) and the cause."""

    def __init__(self, kind: str, digest: Digest, label: str, error: BaseException) -> None:
        super().__init__(f"{kind} {digest}: {error}")
        self.kind, self.digest, self.label, self.error = kind, digest, label, error


@dataclass
class TransferResult:
    """What a transfer walked and moved."""

    #: every manifest and index of the closure (read from the sink or the source)
    manifests: dict[Digest, AnyManifest] = field(default_factory=dict)
    #: those fetched from the source (and put into the sink), children first
    fetched: list[AnyManifest] = field(default_factory=list)
    #: every blob the closure needs (foreign layers are not blobs here)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)
    foreign: set[Digest] = field(default_factory=set)
    blobs_put: int = 0
    blob_bytes: int = 0
    manifest_bytes: int = 0
    #: roots the source does not have (``skip_missing_roots``)
    missing_roots: set[Digest] = field(default_factory=set)
    #: (``keep_going``) root -> the error that failed it
    failed: dict[Digest, ReconcilerError] = field(default_factory=dict)
    #: manifests the sink holds that the walk did not go below (``descend_held`` off)
    held: set[Digest] = field(default_factory=set)
    #: children walked, by parent (the roots have none)
    parents: dict[Digest, set[Digest]] = field(default_factory=dict)
    #: index -> its children not followed (``policy.platforms`` or ``policy.absent``)
    left_out: dict[Digest, frozenset[Digest]] = field(default_factory=dict)

    @property
    def skipped(self) -> set[Digest]:
        """Index children left out by the platform filter and not walked through another
        index either: what the sink lacks on purpose (a version records them absent)."""
        return {c for cs in self.left_out.values() for c in cs if c not in self.manifests}


class InFlight:
    """Blob reads under way, shared by transfers that run at the same time (apply fetches
    several repositories at once, and repositories share base layers): the first transfer
    that needs a blob reads it, the others wait for it instead of reading it again.
    Transfers that share one share one sink too (the waiter finds the blob there; with
    sinks of their own it would read it again, as the other sink is not committed yet).
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Digest, threading.Event] = {}

    def claim(self, digest: Digest) -> threading.Event | None:
        """None: the caller reads ``digest`` and must ``release`` it. Otherwise the event
        another transfer sets when its read ends (successfully or not)."""
        with self._lock:
            event = self._running.get(digest)
            if event is not None:
                return event
            self._running[digest] = threading.Event()
            return None

    def release(self, digest: Digest) -> None:
        with self._lock:
            event = self._running.pop(digest, None)
        if event is not None:
            event.set()


def transfer(source: ContentSource, sink: ContentSink, roots: Iterable[Digest], *,
             policy: TransferPolicy = TransferPolicy(), progress: Progress | None = None,
             stop: StopToken | None = None, inflight: InFlight | None = None,
             labels: Mapping[Digest, str] | None = None,
             prefetched: Mapping[Digest, AnyManifest] | None = None) -> TransferResult:
    """Move ``roots`` and everything under them from ``source`` into ``sink`` (see the
    module doc); the sink is not committed. ``labels`` names roots for errors (a tag);
    ``prefetched``: manifests the caller already fetched from this source (verified);
    ``stop`` is checked before every read and between a blob's chunks."""
    walk = _Walk(source, sink, policy, progress, stop, dict(labels or {}), prefetched or {})
    walk.manifests(list(dict.fromkeys(roots)))
    if policy.blobs:
        walk.blobs(inflight)
    sink.manifests_put(walk.result.fetched)
    return walk.result


class _Walk:
    def __init__(self, source: ContentSource, sink: ContentSink, policy: TransferPolicy, progress: Progress | None,
                 stop: StopToken | None, owner: dict[Digest, str], prefetched: Mapping[Digest, AnyManifest]) -> None:
        self.source, self.sink, self.policy = source, sink, policy
        self.progress, self.stop, self.owner, self.prefetched = progress, stop, owner, prefetched
        self.result = TransferResult()

    def label(self, d: Digest) -> str:
        return self.owner.get(d, "")

    def fail(self, kind: str, d: Digest, error: BaseException) -> TransferFailed:
        return TransferFailed(kind, d, self.label(d), error)

    # -- 1. manifests, level by level ---------------------------------------------------
    def manifests(self, roots: list[Digest]) -> None:
        r, policy, source = self.result, self.policy, self.source
        levels: list[list[AnyManifest]] = []
        counter = Counter("manifests", 0, None)

        def get(d: Digest) -> AnyManifest | ReconcilerError | None:
            check(self.stop)
            try:
                m = source.manifest(d)
            except ReconcilerError as exc:
                if policy.skip_missing_roots and d in root_set and is_not_found(exc):
                    return None
                if policy.keep_going:
                    return exc
                raise
            if m.digest != d:
                raise DigestMismatch(str(d), str(m.digest), where=source.location("manifest", d))
            counter.step(str(d), len(m.raw))
            return m

        root_set = set(roots)
        level, depth = roots, 1
        while level:
            wanted = [d for d in level if d not in r.manifests and d not in r.held]
            held = self.sink.manifests_held(wanted) if wanted else set()
            to_fetch: list[Digest] = []
            fresh: list[AnyManifest] = []
            for d in wanted:
                if d in held:
                    m = self.sink.manifest_read(d) if policy.descend_held else None
                    if m is not None:
                        r.manifests[d] = m
                    else:
                        r.held.add(d)
                elif d in self.prefetched:
                    r.manifests[d] = self.prefetched[d]
                    fresh.append(self.prefetched[d])
                else:
                    to_fetch.append(d)
            counter = Counter("manifests", len(to_fetch), self.progress)
            try:
                got = run_bounded(get, to_fetch, jobs=policy.jobs, stop=self.stop)
            except ItemFailed as failed:
                raise self.fail("manifest", failed.item, failed.error) from failed.error  # type: ignore[arg-type]
            for d, outcome in got:
                if outcome is None:
                    r.missing_roots.add(d)
                elif isinstance(outcome, ReconcilerError):
                    self._failed(d, outcome)
                else:
                    r.manifests[d] = outcome
                    fresh.append(outcome)
            r.manifest_bytes += sum(len(m.raw) for m in fresh)
            levels.append(fresh)
            next_level: list[Digest] = []
            for d in level:
                index = r.manifests.get(d)
                if not isinstance(index, Index):
                    continue
                if depth > policy.max_depth and self.children(index):
                    error = ManifestInvalid(
                        f"indexes nested more than {policy.max_depth} deep at {source.location('manifest', d)}",
                        hint="the index chain is malformed or hostile; nothing was committed")
                    if not policy.keep_going:
                        raise self.fail("manifest", d, error)
                    self._failed(d, error)
                    continue
                for child in self.children(index):
                    self.owner.setdefault(child, self.label(d))
                    r.parents.setdefault(child, set()).add(d)
                    if child not in r.manifests:
                        next_level.append(child)
            level, depth = list(dict.fromkeys(next_level)), depth + 1
        r.fetched = [m for fresh in reversed(levels) for m in fresh]

    def children(self, index: Index) -> tuple[Digest, ...]:
        """The children of ``index`` to walk: those the platform filter selects (all
        without one) less those the source lacks on purpose."""
        platforms, absent = self.policy.platforms, self.policy.absent
        if platforms is None:
            children = index.children()
        else:
            children = tuple(dict.fromkeys(e.digest for e in platforms.split(index).followed))
        left = frozenset(index.children()) - frozenset(children) | (absent & frozenset(children))
        if left:
            self.result.left_out[index.digest] = left
            children = tuple(c for c in children if c not in left)
        return children

    def _failed(self, d: Digest, error: ReconcilerError) -> None:
        """(keep_going) ``d`` failed: so does every root above it."""
        stack, seen = [d], set()
        while stack:
            x = stack.pop()
            if x in seen:
                continue
            seen.add(x)
            above = self.result.parents.get(x)
            if above:
                stack += above
            else:
                self.result.failed.setdefault(x, error)

    # -- 2. blobs --------------------------------------------------------------------------
    def blobs(self, inflight: InFlight | None) -> None:
        r, source, sink = self.result, self.source, self.sink
        for d, m in r.manifests.items():
            if isinstance(m, Manifest):
                for desc in m.blobs():
                    r.blobs.setdefault(desc.digest, desc)
                    self.owner.setdefault(desc.digest, self.label(d))
                r.foreign |= {desc.digest for desc in m.foreign_layers()}
        missing = sorted(sink.blobs_missing(r.blobs), key=str)
        self._check_sizes(missing)
        counter = Counter("blobs", len(missing), self.progress)

        def read(d: Digest) -> int:
            desc = r.blobs[d]
            where = source.location("blob", d)

            # (schema1 layers declare no size: the source's, when it knows it)
            size = desc.size if desc.size is not None else source.blob_size(d)

            def put(chunks: Iterator[bytes]) -> int:
                return sink.blob_put(d, _verified(chunks, desc, where, self.stop, hashed=not source.trusted),
                                     size=size, where=where)

            check(self.stop)  # no new read once a stop is requested
            n = source.read_blob(d, put)
            counter.step(str(d), n)
            return n

        def held(d: Digest) -> bool:
            return not sink.blobs_missing([d])

        def one(d: Digest) -> int | None:
            """Bytes read, None when another transfer read it meanwhile."""
            if inflight is None:
                return read(d)
            other = inflight.claim(d)
            if other is None:
                try:
                    # another transfer may have read it (into the shared sink) and released
                    # its claim between our ``missing`` query and this claim (seen under
                    # load): do not read it twice
                    if held(d):
                        counter.step(str(d), 0)
                        return None
                    return read(d)
                finally:
                    inflight.release(d)
            other.wait()  # another transfer is reading it: wait, then check
            if held(d):
                counter.step(str(d), 0)
                return None
            return read(d)  # that read failed: try it here

        try:
            done = run_bounded(one, missing, jobs=self.policy.jobs, stop=self.stop)
        except ItemFailed as failed:
            raise self.fail("blob", failed.item, failed.error) from failed.error  # type: ignore[arg-type]
        r.blobs_put = sum(1 for _, n in done if n is not None)
        r.blob_bytes = sum(n or 0 for _, n in done)

    def _check_sizes(self, digests: Iterable[Digest]) -> None:
        problem = size_problem(self.source, self.result.manifests.values(), digests)
        if problem is not None:
            raise self.fail("blob", *problem)


def size_problem(source: ContentSource, manifests: Iterable[AnyManifest], digests: Iterable[Digest] | None = None,
                 ) -> tuple[Digest, InvalidInput] | None:
    """The first blob whose size, as ``source`` knows it without reading, is not the size
    its descriptor declares, and the error refusing it: streaming it would only find out
    at the end, after writing what may be many gigabytes the descriptor says are a few
    bytes. ``digests``: check only these blobs of ``manifests`` (default: all)."""
    wanted = set(digests) if digests is not None else None
    for m in manifests:
        if not isinstance(m, Manifest):
            continue
        for desc in m.blobs():
            if wanted is not None and desc.digest not in wanted:
                continue
            actual = source.blob_size(desc.digest)
            if desc.size is not None and actual is not None and actual != desc.size:
                return desc.digest, InvalidInput(
                    f"{source.location('blob', desc.digest)}: blob {desc.digest} is {actual} bytes in the source, "
                    f"but manifest {m.digest} declares {desc.size}",
                    hint="the source is corrupt or was tampered with; nothing was stored")
    return None


def _verified(chunks: Iterator[bytes], desc: Descriptor, where: str, stop: StopToken | None, *,
              hashed: bool) -> VerifiedStream:
    """``chunks`` as a ``VerifiedStream``: raises (before its end is seen) when more than
    the declared size arrives, at its end when fewer did or the bytes do not hash to the
    digest. A stream its producer verifies already (the registry client hashes on
    arrival) and a trusted source's are counted, not hashed again."""
    pre = isinstance(chunks, VerifiedStream) and chunks.digest == desc.digest
    return VerifiedStream(_check(chunks, desc, where, stop, hashed and not pre), desc.digest)


def _check(chunks: Iterator[bytes], desc: Descriptor, where: str, stop: StopToken | None,
           hashed: bool) -> Iterator[bytes]:
    hasher = desc.digest.hasher() if hashed else None
    size, n = desc.size, 0
    for chunk in chunks:
        check(stop)
        n += len(chunk)
        if size is not None and n > size:
            raise InvalidInput(f"{where or desc.digest}: more than the announced {size} bytes")
        if hasher is not None:
            hasher.update(chunk)
        yield chunk
    if size is not None and n != size:
        raise InvalidInput(f"{where or desc.digest}: got {n} bytes, expected {size}",
                           hint="the transfer was cut short or the source is corrupt; nothing was stored")
    if hasher is not None and (actual := hasher.digest()) != desc.digest:
        raise DigestMismatch(str(desc.digest), str(actual), where=where)
