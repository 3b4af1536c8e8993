"""The slice of a DB-API connection the shared store code uses.

``sqlite3.Connection`` has it as it is; the PostgreSQL backend wraps its psycopg
connection to offer the same (``?`` placeholders, ``executemany`` on the connection).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class Cursor(Protocol):
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Any: ...


def chunks(items: list[str], n: int = 500) -> Iterator[list[str]]:
    """``items`` in slices of ``n``: one ``IN (?, ...)`` query per slice, well under
    SQLite's and PostgreSQL's parameter limits."""
    for i in range(0, len(items), n):
        yield items[i:i + n]
