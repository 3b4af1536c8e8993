"""Wiring of the server commands (``reconciler serve``, with or without Crane mode): the
access file, the registry and Crane WSGI apps, gunicorn, and the folder prometheus_client's
multiprocess mode needs. Split from ``reconciler.api`` (which opens the stores these use);
like it, this is wiring and may import any layer."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.api import ServingLimits, blobs_location, open_store, store_location
from reconciler.errors import InvalidInput

if TYPE_CHECKING:
    from reconciler.server import RegistryApp
    from reconciler.server.access import AccessRules
    from reconciler.server.crane import CraneApp, CraneConfig
    from reconciler.server.limits import ClientLimits

#: how long a presigned blob URL of `serve --blob-redirect` stays valid, in seconds
DEFAULT_REDIRECT_EXPIRES = 300


def access_rules(access: str | None, htpasswd: str | None) -> AccessRules | None:
    """The access file ``access`` read and checked against the users of ``htpasswd``
    (``serve --access``); None without one. ``InvalidInput`` naming FILE:LINE."""
    from reconciler.server.access import load_access
    from reconciler.server.auth import Htpasswd

    if access is None:
        return None
    if not htpasswd:
        raise InvalidInput(f"--access {access} needs --htpasswd: the access file names users of an htpasswd file",
                           hint="add --htpasswd FILE (users made with `htpasswd -B`)")
    return load_access(access, Htpasswd(htpasswd).users(), users_file=htpasswd)


def make_server_app(location: str | None = None, *, htpasswd: str | None = None, blobs: str | None = None,
                    blob_redirect: int | None = None, access: AccessRules | None = None,
                    limits: ServingLimits | None = None, manifest_cache: int | None = None) -> RegistryApp:
    """The registry WSGI app over the store at ``location``; the store itself is opened
    on the first request (in each worker process after the fork). ``blob_redirect``:
    seconds a presigned blob URL is valid, None to stream blobs through the server.
    ``access``: per-repository rules from ``access_rules()``. ``limits``: the worker's
    connections and S3 timeouts; ``manifest_cache``: bytes of manifests it keeps."""
    from reconciler.server import RegistryApp
    from reconciler.server.auth import Htpasswd
    from reconciler.server.manifestcache import DEFAULT_BYTES

    loc, blobs = store_location(location), blobs_location(blobs)
    users = Htpasswd(htpasswd) if htpasswd else None
    limits = limits or ServingLimits()
    # create=False: a worker reopening a store that is being swapped into place must not
    # make an empty one at its path meanwhile (the request fails; the next one reopens)
    return RegistryApp(lambda: open_store(loc, blobs, serving=limits, create=False), htpasswd=users,
                       access=access, blob_redirect=blob_redirect,
                       manifest_cache=DEFAULT_BYTES if manifest_cache is None else manifest_cache,
                       # a thread is always left for what needs no object storage
                       storage_slots=max(1, limits.connections - 1))


def serve(location: str | None = None, *, host: str = "127.0.0.1", port: int = 5000, workers: int = 2,
          threads: int = 4, htpasswd: str | None = None, blobs: str | None = None,
          blob_redirect: int | None = None, access: str | None = None, s3_timeout: float = 3.0,
          s3_attempts: int = 2, manifest_cache: int | None = None, clients: ClientLimits | None = None) -> None:
    """Run the registry server under gunicorn until SIGTERM/SIGINT. ``access``: an access file (per-repository
    read rules), read once here, before the workers fork. Each worker has ``threads`` database connections at
    most, S3 requests of ``s3_timeout`` seconds per attempt and ``s3_attempts`` attempts, and keeps
    ``manifest_cache`` bytes of manifests (default 64 MiB). ``clients``: ``ClientLimits``."""
    with _metrics_folder():  # first: the env var must be set before prometheus_client is imported
        _serve(location, host=host, port=port, workers=workers, threads=threads, htpasswd=htpasswd, blobs=blobs,
               blob_redirect=blob_redirect, access=access, s3_timeout=s3_timeout, s3_attempts=s3_attempts,
               manifest_cache=manifest_cache, clients=clients)


def _serve(location: str | None, *, host: str, port: int, workers: int, threads: int, htpasswd: str | None,
           blobs: str | None, blob_redirect: int | None, access: str | None, s3_timeout: float,
           s3_attempts: int, manifest_cache: int | None, clients: ClientLimits | None) -> None:
    from reconciler.model.content import Kind
    from reconciler.server.auth import Htpasswd
    from reconciler.server.gunicorn_app import GunicornServer, setup_access_log

    limits = ServingLimits(connections=threads, s3_timeout=s3_timeout, s3_attempts=s3_attempts)
    loc, blobs = store_location(location), blobs_location(blobs)
    # fail before forking: a bad htpasswd or access file or store path is an error now, not
    # per request; an object storage that does not answer yet is not (see open_store)
    if htpasswd:
        Htpasswd(htpasswd)
    rules = access_rules(access, htpasswd)
    store = open_store(loc, blobs, serving=limits, create=False)
    try:
        if blob_redirect is not None and not store.bytes_remote(Kind.BLOB):
            raise InvalidInput(
                f"--blob-redirect needs blobs in object storage, but the store at {store.location} keeps "
                "its blobs in local files", hint="drop --blob-redirect, or use a store created with --blobs s3://...")
    finally:
        store.close()
    setup_access_log()
    GunicornServer(lambda: make_server_app(loc, htpasswd=htpasswd, blobs=blobs, blob_redirect=blob_redirect,
                                           access=rules, limits=limits, manifest_cache=manifest_cache),
                   host=host, port=port, workers=workers, threads=threads, clients=clients).run()


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def _metrics_folder() -> Iterator[None]:
    """/metrics sums every gunicorn worker's values (prometheus_client's multiprocess
    mode): a fresh folder in PROMETHEUS_MULTIPROC_DIR before anything imports the library
    and before the workers fork, removed when serve ends. An operator's own folder is
    kept, and only its old value files are cleared (the library needs that between runs)."""
    import shutil
    import tempfile

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        for old in Path(given).glob("*.db"):
            old.unlink()
        yield
        return
    folder = tempfile.mkdtemp(prefix="reconciler-metrics-")
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(MULTIPROC_ENV, None)


def crane_config(config_file: str | None = None, *, data_dir: str | None = None,
                 polling_interval: float | None = None) -> CraneConfig:
    """Crane mode's settings: ``crane.conf`` (if given), then the command-line overrides;
    checked (directories exist) so that mistakes fail before any worker starts."""
    from reconciler.server.crane import CraneConfig, read_config

    base = read_config(config_file) if config_file else CraneConfig()
    config = base.with_overrides(data_dir=data_dir, polling_interval=polling_interval)
    config.check()
    return config


def make_crane_app(config: CraneConfig, *, htpasswd: str | None = None, access: AccessRules | None = None) -> CraneApp:
    """The Crane-mode WSGI app: app files loaded now, reloaded when they change."""
    from reconciler.server.auth import Htpasswd
    from reconciler.server.crane import CraneApp

    return CraneApp(config, htpasswd=Htpasswd(htpasswd) if htpasswd else None, access=access)


def serve_crane(config: CraneConfig, *, host: str = "127.0.0.1", port: int = 5000, workers: int = 2, threads: int = 4,
                htpasswd: str | None = None, access: str | None = None, clients: ClientLimits | None = None) -> None:
    """Run Crane compatibility mode under gunicorn until SIGTERM/SIGINT (no store)."""
    import logging

    with _metrics_folder():  # first: before prometheus_client is imported
        from reconciler.server.auth import Htpasswd
        from reconciler.server.gunicorn_app import GunicornServer, setup_access_log

        if htpasswd:
            Htpasswd(htpasswd)
        rules = access_rules(access, htpasswd)
        if config.debug:
            logging.getLogger("reconciler.server.crane").setLevel(logging.DEBUG)
        setup_access_log()
        GunicornServer(lambda: make_crane_app(config, htpasswd=htpasswd, access=rules), host=host, port=port,
                       workers=workers, threads=threads, clients=clients).run()
