"""Per-invocation state shared by the commands: the store location and the open store."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import click

from reconciler import api
from reconciler.store.protocol import Store


@dataclass
class AppContext:
    store_location: str | None = None
    blobs_location: str | None = None
    quiet: bool = False
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = api.open_store(self.store_location, self.blobs_location)
        return self._store

    @property
    def existing_store(self) -> Store:
        """The store for a command that only reads or checks: a location without one is
        an error, and nothing is created there."""
        if self._store is None:
            self._store = api.open_store(self.store_location, self.blobs_location, create=False)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(AppContext)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, sort_keys=True, default=str))


def human_bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
