"""Typed keyword arguments for tests that build a registry client or its config from a
table of options (``**kw`` in a parametrized test): a wrong key or type is a mypy error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict


class ClientOptions(TypedDict, total=False):
    """``RegistryClient`` options besides its config and retry policy."""

    env: Mapping[str, str] | None
    tag_page_size: int | None
    timeout: tuple[float, float] | None
    chunk_size: int


class TLSOptions(TypedDict, total=False):
    """``RegistryConfig``'s TLS fields."""

    tls_verify: bool
    ca_file: str | None
    client_cert: str | None
    client_key: str | None
