"""The content model: pure values for digests, media types, descriptors, manifests,
indexes, platforms and references. No I/O happens here; raw bytes are kept beside every
parsed manifest so that digests are always of the bytes, never of a re-serialisation.
"""

from reconciler.model.descriptor import Descriptor, Platform
from reconciler.model.digest import Digest, DigestHasher, VerifiedStream
from reconciler.model.manifest import Index, Manifest, parse_manifest
from reconciler.model.platforms import PlatformFilter
from reconciler.model.reference import (
    Reference,
    parse_reference,
    validate_repository_name,
    validate_tag,
)

__all__ = [
    "Descriptor",
    "Digest",
    "DigestHasher",
    "Index",
    "Manifest",
    "Platform",
    "PlatformFilter",
    "Reference",
    "VerifiedStream",
    "parse_manifest",
    "parse_reference",
    "validate_repository_name",
    "validate_tag",
]
