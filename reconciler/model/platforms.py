"""Platform subsets: which children of a multi-platform index a walk follows.

``PlatformFilter`` is the one policy the content walks share (the fetch of a sync or an
apply, the plan's refresh, and a copy): given an index, ``split`` says which entries to
follow and which to leave out. The index itself is always kept byte for byte (its
digest, and every signature over it, stays valid); only what it points at is chosen.

- An entry whose platform matches one of the filter's is followed. Matching is by OS and
  architecture, and by variant when the filter names one; platforms are normalised the
  way containerd does (``aarch64`` is ``arm64``, ``x86_64`` is ``amd64``, ``arm64``
  without a variant is ``arm64/v8``, ``arm`` without a variant is ``arm/v7``), so
  ``linux/arm64/v8`` matches an entry written ``linux/arm64``.
- An attestation manifest (BuildKit: platform ``unknown/unknown`` with the annotation
  ``vnd.docker.reference.type: attestation-manifest``) follows the entry it describes
  (``vnd.docker.reference.digest``).
- An entry without a platform (a nested index, or a writer that left it out) cannot be
  judged and is followed: leaving out content we cannot place would lose it silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.errors import InvalidInput
from reconciler.model.descriptor import Descriptor, Platform
from reconciler.model.digest import Digest
from reconciler.model.manifest import Index

REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"
ATTESTATION = "attestation-manifest"

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}
_ALIAS_VARIANTS = {"armhf": "v7", "armel": "v6"}
_DEFAULT_VARIANTS = {"arm64": "v8", "arm": "v7"}
_PART_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
PLATFORM_HINT = "write OS/ARCH or OS/ARCH/VARIANT, e.g. linux/amd64, linux/arm64/v8, windows/amd64"


def normalize(p: Platform) -> tuple[str, str, str | None]:
    """(os, architecture, variant) as containerd compares them."""
    os_, arch = p.os.lower(), p.architecture.lower()
    variant = p.variant.lower() if p.variant else None
    if arch in _ALIAS_VARIANTS and variant is None:
        variant = _ALIAS_VARIANTS[arch]
    arch = _ARCH_ALIASES.get(arch, arch)
    if variant is None:
        variant = _DEFAULT_VARIANTS.get(arch)
    if arch == "amd64" and variant == "v1":
        variant = None  # amd64's baseline, written or not
    return os_, arch, variant


def parse_platform(text: str) -> Platform:
    """``linux/amd64`` or ``linux/arm64/v8``; ``InvalidInput`` with a hint otherwise."""
    if not isinstance(text, str):
        raise InvalidInput(f"invalid platform {text!r}: expected a string", hint=PLATFORM_HINT)
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts) or any(not _PART_CHARS.issuperset(p.lower()) for p in parts):
        raise InvalidInput(f"invalid platform {text!r}: expected OS/ARCH or OS/ARCH/VARIANT", hint=PLATFORM_HINT)
    if parts[0].lower() == "unknown" or parts[1].lower() == "unknown":
        raise InvalidInput(f"invalid platform {text!r}: unknown/unknown marks attestations, which follow the "
                           "platform they describe", hint=PLATFORM_HINT)
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


@dataclass(frozen=True)
class IndexSplit:
    """An index's entries, as a filter divides them."""

    followed: tuple[Descriptor, ...]
    skipped: tuple[Descriptor, ...]

    @property
    def skipped_digests(self) -> frozenset[Digest]:
        return frozenset(d.digest for d in self.skipped)


@dataclass(frozen=True)
class PlatformFilter:
    """The platforms to keep (see the module docstring). Written by users as
    ``linux/amd64``; kept as parsed ``Platform`` values."""

    platforms: tuple[Platform, ...]

    @classmethod
    def parse(cls, texts: Iterable[str]) -> PlatformFilter:
        platforms = tuple(parse_platform(t) for t in texts)
        if not platforms:
            raise InvalidInput("platforms must name at least one platform", hint=PLATFORM_HINT)
        return cls(platforms)

    def matches(self, platform: Platform) -> bool:
        os_, arch, variant = normalize(platform)
        for wanted in self.platforms:
            w_os, w_arch, w_variant = normalize(wanted)
            if (w_os, w_arch) == (os_, arch) and (wanted.variant is None or w_variant == variant):
                return True
        return False

    def split(self, index: Index) -> IndexSplit:
        """Which entries of ``index`` to follow, which to leave out."""
        followed: list[Descriptor] = []
        attestations: list[Descriptor] = []
        for d in index.manifests:
            if is_attestation(d):
                attestations.append(d)
            elif d.platform is None or self.matches(d.platform) or _unknown(d.platform):
                followed.append(d)
        kept = {d.digest for d in followed}
        followed += [d for d in attestations if d.annotations.get(REFERENCE_DIGEST) in {str(k) for k in kept}]
        # in the index's order, each digest once
        chosen = {d.digest for d in followed}
        return IndexSplit(tuple(d for d in index.manifests if d.digest in chosen),
                          tuple(d for d in index.manifests if d.digest not in chosen))

    def __str__(self) -> str:
        return ", ".join(str(p) for p in self.platforms)

    def texts(self) -> list[str]:
        return [str(p) for p in self.platforms]


def is_attestation(d: Descriptor) -> bool:
    return d.annotations.get(REFERENCE_TYPE) == ATTESTATION and REFERENCE_DIGEST in d.annotations


def _unknown(p: Platform) -> bool:
    # unknown/unknown that is not an attestation of an entry: we cannot tell what it is
    return p.os == "unknown" and p.architecture == "unknown"


def describe(d: Descriptor) -> str:
    """How the plan names an index entry: its platform, or what it attests."""
    if is_attestation(d):
        return f"attestation of {d.annotations[REFERENCE_DIGEST][:19]}"
    return str(d.platform) if d.platform is not None else str(d.digest)
