"""OCI descriptors and platforms.

A ``Descriptor`` points at content by digest with its media type and size. A
``Platform`` is ``os/architecture[/variant]`` as written by Docker and the OCI spec,
e.g. ``linux/arm64/v8``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import ManifestInvalid
from reconciler.model.digest import Digest
from reconciler.model.mediatypes import is_foreign_layer


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``linux/amd64`` or ``linux/arm64/v8``."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ManifestInvalid(f"invalid platform {text!r}: expected os/architecture[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, where: str = "platform") -> Platform:
        if not isinstance(obj, Mapping):
            raise ManifestInvalid(f"{where}: expected an object")
        os_, arch = obj.get("os"), obj.get("architecture")
        if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
            raise ManifestInvalid(f"{where}: 'os' and 'architecture' are required strings")
        variant = obj.get("variant")
        return cls(
            os=os_,
            architecture=arch,
            variant=variant if isinstance(variant, str) and variant else None,
            os_version=obj.get("os.version") or None,
            os_features=tuple(obj.get("os.features") or ()),
            features=tuple(obj.get("features") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.features:
            out["features"] = list(self.features)
        return out

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@dataclass(frozen=True)
class Descriptor:
    """Content addressed by digest. ``size`` is None only for schema1 layers."""

    media_type: str
    digest: Digest
    size: int | None
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    #: what the content is, for an artifact (the referrers API lists it per referrer)
    artifact_type: str | None = field(default=None, compare=False, hash=False)

    @property
    def foreign(self) -> bool:
        return is_foreign_layer(self.media_type)

    @classmethod
    def from_json(cls, obj: Any, *, where: str, default_media_type: str = "") -> Descriptor:
        if not isinstance(obj, Mapping):
            raise ManifestInvalid(f"{where}: expected a descriptor object")
        digest_text = obj.get("digest")
        if not isinstance(digest_text, str):
            raise ManifestInvalid(f"{where}: 'digest' is required")
        try:
            digest = Digest.parse(digest_text)
        except Exception as exc:
            raise ManifestInvalid(f"{where}: {exc}") from exc
        media_type = obj.get("mediaType", default_media_type)
        if not isinstance(media_type, str):
            raise ManifestInvalid(f"{where}: 'mediaType' must be a string")
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise ManifestInvalid(f"{where}: 'size' must be a non-negative integer")
        platform = None
        if "platform" in obj and obj["platform"] is not None:
            platform = Platform.from_json(obj["platform"], where=f"{where}.platform")
        urls = obj.get("urls") or ()
        annotations = obj.get("annotations") or {}
        artifact_type = obj.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ManifestInvalid(f"{where}: 'artifactType' must be a string")
        return cls(media_type, digest, size, platform, tuple(urls), dict(annotations), artifact_type or None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest)}
        if self.size is not None:
            out["size"] = self.size
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out
