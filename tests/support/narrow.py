"""``narrow(kind, value)``: a value of a union type as the one type the test expects (a plan
action as ``SyncTag``, a parsed manifest as ``Manifest``). It checks at run time, so a wrong
type fails the test here, naming what came instead, rather than on the first missing field."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

T = TypeVar("T")


def narrow(kind: type[T], value: object) -> T:
    assert isinstance(value, kind), f"expected a {kind.__name__}, got {type(value).__name__}: {value!r}"
    return value


def narrow_all(kind: type[T], values: Iterable[object]) -> list[T]:
    """Each of ``values`` narrowed to ``kind`` (``ConfigError.diagnostics`` as ``Diagnostic``)."""
    return [narrow(kind, v) for v in values]
