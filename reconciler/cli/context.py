"""Per-invocation state shared by the commands: the store location and the open store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from reconciler.errors import StoreMissing

if TYPE_CHECKING:
    from reconciler.store.protocol import Store

# ``reconciler.api`` (and with it the store and registry layers) is imported where a store
# is opened, not here: `--version`, `--help` and `validate` never open one, and the
# import was a third of their start-up.


@dataclass
class AppContext:
    store_location: str | None = None
    blobs_location: str | None = None
    quiet: bool = False
    _store: Store | None = field(default=None, repr=False)

    @property
    def store(self) -> Store:
        """The store, which must exist: read commands (and writes that need existing
        content) never create one where a typo in --store points."""
        if self._store is None:
            from reconciler import api

            self._store = api.open_store(self.store_location, self.blobs_location, create=False)
        return self._store

    @property
    def creating_store(self) -> Store:
        """The store, created when missing (apply, sync, upload, repo create)."""
        if self._store is None:
            from reconciler import api

            self._store = api.open_store(self.store_location, self.blobs_location)
        return self._store

    @property
    def existing_store(self) -> Store:
        """The store for a command that only reads or checks (the same as ``store``)."""
        return self.store

    @contextmanager
    def store_or_empty(self, doing: str) -> Iterator[Store]:
        """The store, or (when there is none at --store yet) an empty one elsewhere, with
        one line saying so: ``plan`` and ``drift`` read, and must not leave a new store
        behind a typo (a PostgreSQL database without a store counts as none)."""
        try:
            store: Store | None = self.store
        except StoreMissing:
            store = None
        if store is not None:
            yield store
            return
        from reconciler import api

        click.echo(f"store {api.store_location(self.store_location)} does not exist yet: {doing} against an "
                   "empty store", err=True)
        from reconciler.store.sqlite import temporary_store

        with temporary_store() as empty:
            yield empty

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
