"""An observer seam for the commands that write the store (apply, ``store gc``).

One ``Observer`` per process (``install``; ``current`` hands it out) sees the store an
apply writes through (``store``: it may return a proxy of it), the points an apply passes
(``event("apply", "commit:REPO")`` after a repository's versions are committed, before its
publication; ``"repo:REPO"`` once the repository is done) and each step of ``store gc``
(``event("gc", "rows")``, ``"file N"``). The default observer sees nothing and returns
the store unchanged.

Nothing in this package installs another: the crash tests do, from outside
(``tests/support/crashpoints.py`` runs the CLI with an observer that counts store writes
and can stop the process at a chosen one), so the shipped code has no crash path of its
own. Observers must not change what a command does.
"""

from __future__ import annotations

from reconciler.store.protocol import Store


class Observer:
    """Sees nothing (the default); subclasses see what they override."""

    def store(self, store: Store) -> Store:
        """The store an apply writes through: ``store`` itself, or a proxy of it."""
        return store

    def event(self, scope: str, what: str) -> None:
        """``scope`` is ``apply`` or ``gc``; ``what`` the point passed or step done."""

    def close(self) -> None:
        """The command is done (an apply's run ended, a gc returned)."""


_current: Observer = Observer()


def install(observer: Observer) -> None:
    """Make ``observer`` the one every later apply and gc of this process reports to."""
    global _current
    _current = observer


def current() -> Observer:
    return _current
