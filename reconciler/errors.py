"""The project's error hierarchy: every error says what, where, and what next.

::

    ReconcilerError                 exit 1 unless stated; ``hint`` says what to do next
    ├── InvalidInput                bad user input (names, digests, files, arguments)
    │   ├── DigestInvalid           not an ``algorithm:hex`` digest we support
    │   ├── NameInvalid             repository / publish name breaks Docker's rules
    │   ├── TagInvalid              tag name breaks ``[A-Za-z0-9_][A-Za-z0-9._-]{0,127}``
    │   ├── ReferenceInvalid        ``host:port/name:tag@digest`` cannot be parsed
    │   ├── ManifestInvalid         manifest / index bytes cannot be parsed
    │   ├── UploadInvalid           an upload file is malformed or hostile
    │   ├── PlanTampered            a saved plan's digest or HMAC does not match its content
    │   └── CraneDataInvalid        a Crane app file or crane.conf is malformed
    ├── NotFound                    something named does not exist
    │   ├── RepositoryNotFound
    │   └── ContentNotFound         a digest or tag is not in the repository / store
    ├── Conflict                    the request contradicts the current state
    │   ├── RemovalRefused          removing it would corrupt an index
    │   ├── StalePlan               a saved plan no longer matches the store or the file
    │   ├── BundleBaseMissing       a delta bundle's base was never applied here
    │   └── PlanIncomplete          a plan with errors (an upstream could not be refreshed)
    ├── DigestMismatch              bytes do not hash to the expected digest (never retried)
    ├── SyncFailed                  a sync could not finish (names tag, digest, URL; carries
    │                               the cause); nothing was committed
    ├── ConfigError                 repos.yaml diagnostics (carries the full list)
    ├── StoreError                  the store cannot do what was asked
    │   ├── StoreCorrupt            ``store check`` found problems
    │   ├── LockTimeout             the apply lock is held by another process
    │   ├── LockLost                the apply lock this process held was lost (its
    │   │                           PostgreSQL session ended); writes are refused
    │   ├── StoreMissing            no store at the location a read or check was given
    │   ├── StoreIdentityError      a copied store or a foreign blob storage: no writes, no gc
    │   └── BlobStorageError        the blob storage (a folder, S3) failed or refused
    ├── RegistryError               an upstream registry answered with an error
    │   │                           (status, OCI codes, method, redacted URL, temporary)
    │   └── RateLimited             a rate limit that resets later than retries wait
    │                               (``until``: when, as a Unix time); never retried
    └── GitError                    ``watch --git``: a git command failed (redacted URL)

    Interrupted                     not a ReconcilerError: a stop was requested (SIGINT,
                                    SIGTERM, a lost lock); ``exit_code`` says which

The CLI catches ``ReconcilerError`` (and ``Interrupted``) only, prints ``error: <message>``
and the hint, and exits with ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit


class ReconcilerError(Exception):
    """Base class: a message for the user plus an optional hint on what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class Interrupted(Exception):
    """An operation stopped because a stop was requested (``ops.stop.StopToken``).

    Not a ``ReconcilerError`` on purpose: code that records an action's failure and
    carries on (``except ReconcilerError``) must let it through. ``exit_code`` is 130 for
    SIGINT and 143 for SIGTERM (128 + the signal), 1 otherwise."""

    def __init__(self, reason: str, *, exit_code: int = 1, hint: str | None = None) -> None:
        super().__init__(reason)
        self.message = reason
        self.exit_code = exit_code
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InvalidInput(ReconcilerError):
    """The user gave us something malformed."""


class DigestInvalid(InvalidInput):
    """A string is not a supported ``algorithm:hex`` digest."""


class NameInvalid(InvalidInput):
    """A repository or publish name breaks Docker's name rules."""


class TagInvalid(InvalidInput):
    """A tag name breaks the OCI tag grammar."""


class ReferenceInvalid(InvalidInput):
    """An image reference cannot be parsed."""


class ManifestInvalid(InvalidInput):
    """Manifest or index bytes cannot be parsed or are inconsistent."""


class UploadInvalid(InvalidInput):
    """An upload file is malformed, incomplete or hostile."""


class PlanTampered(InvalidInput):
    """A saved plan was changed after it was written (its digest does not match), or
    its HMAC does not match ``RECONCILER_PLAN_KEY``."""


class CraneDataInvalid(InvalidInput):
    """A Crane app file (``*.json`` in the data directory) or a ``crane.conf`` file is
    malformed; the message names the file (and section/key or JSON key)."""


class NotFound(ReconcilerError):
    """Something that was named does not exist."""


class RepositoryNotFound(NotFound):
    """No repository with that id."""


class ContentNotFound(NotFound):
    """A digest or tag is not present where it was looked for."""


class Conflict(ReconcilerError):
    """The request contradicts the current state."""


class RemovalRefused(Conflict):
    """Removing the content would leave an index pointing at nothing."""


class StalePlan(Conflict):
    """A saved plan was made against a different store generation or desired file."""


class BundleBaseMissing(Conflict):
    """A delta bundle lacks content its base carried, and the store does not hold it."""


class PlanIncomplete(Conflict):
    """A plan that could not plan every repository; apply refuses it."""


class DigestMismatch(ReconcilerError):
    """Bytes did not hash to the digest they were announced with."""

    def __init__(self, expected: str, actual: str, *, where: str = "", hint: str | None = None) -> None:
        where_part = f"{where}: " if where else ""
        super().__init__(
            f"{where_part}digest mismatch: expected {expected}, got {actual}",
            hint=hint or "the source sent corrupted or different content; nothing was stored",
        )
        self.expected = expected
        self.actual = actual


class SyncFailed(ReconcilerError):
    """A sync stopped before committing: ``cause`` is the error that stopped it (a
    ``RegistryError``, ``DigestMismatch``, ...); the message names the tag, digest and URL."""

    def __init__(self, message: str, *, cause: ReconcilerError | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or (cause.hint if cause else None)
                         or "nothing was committed; fix the cause and run the sync again")
        self.cause = cause


class ConfigError(ReconcilerError):
    """The desired-state file has problems; ``diagnostics`` holds every one of them."""

    def __init__(self, message: str, diagnostics: Sequence[object] = (), *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.diagnostics = list(diagnostics)


class StoreError(ReconcilerError):
    """The store cannot do what was asked."""


class StoreCorrupt(StoreError):
    """The store failed its consistency check."""


class LockTimeout(StoreError):
    """Another process holds the store's apply lock."""


class LockLost(StoreError):
    """The apply lock this process held is gone (its PostgreSQL session ended: a database
    restart, a network cut), so another apply may hold it now: nothing more may be
    written under it."""


class StoreMissing(StoreError):
    """There is no store at the location given to a command that only reads or checks."""


class StoreIdentityError(StoreError):
    """The store and its blob storage are not bound to each other (a copied store, a
    wrong or claimed blob storage): writes and gc are refused."""


class BlobStorageError(StoreError):
    """The blob storage failed or refused: an S3 error (access denied, no such bucket,
    unreachable endpoint) translated at the adapter boundary."""


def redact_url(url: str) -> str:
    """Drop user:password from a URL so it can be logged or shown."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class GitError(ReconcilerError):
    """A git command of ``reconciler watch --git`` failed (clone, fetch, a missing ref)."""


class RegistryError(ReconcilerError):
    """An upstream registry answered with an error, or could not be reached.

    ``status`` is the HTTP status (0 for a connection failure), ``codes`` the OCI error
    codes from the body, ``temporary`` whether a retry may help (connection errors, 408,
    429, 5xx; the raiser may override it). ``retry_after`` carries a 429's ``Retry-After`` in seconds when given.
    """

    def __init__(
        self,
        method: str,
        url: str,
        status: int,
        *,
        codes: Sequence[str] = (),
        detail: str = "",
        retry_after: float | None = None,
        hint: str | None = None,
        temporary: bool | None = None,
    ) -> None:
        self.method = method
        self._temporary = temporary
        self.url = redact_url(url)
        self.status = status
        self.codes = tuple(codes)
        self.detail = detail
        self.retry_after = retry_after
        what = ", ".join(self.codes) if self.codes else (f"HTTP {status}" if status else "connection failed")
        text = f"{method} {self.url}: {what}"
        if detail:
            text += f": {detail}"
        super().__init__(text, hint=hint)

    @property
    def temporary(self) -> bool:
        if self._temporary is not None:  # the raiser knows better (e.g. a TLS failure)
            return self._temporary
        return self.status == 0 or self.status in (408, 429) or self.status >= 500


class RateLimited(RegistryError):
    """The registry rate-limits us and asks to wait longer than a retry may wait (a pull
    limit that resets in hours): failing at once, saying when it resets, beats sleeping
    through every retry and failing anyway. ``until`` is the Unix time it resets."""

    def __init__(self, method: str, url: str, status: int, *, until: float, wait: float,
                 codes: Sequence[str] = ()) -> None:
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(until))
        super().__init__(method, url, status, codes=codes, temporary=False,
                         detail=f"rate limited until {when} (the registry asks to wait {wait:.0f} s)",
                         hint=f"the limit resets at {when}: run again after that, authenticate for a higher "
                              "limit (username_env/password_env or auth_file), or sync fewer tags")
        self.until = until
        self.retry_after = wait
