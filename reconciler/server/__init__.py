"""The read-only registry server: the OCI distribution-spec pull API over the store.

``RegistryApp`` (app.py) is a plain WSGI application; ``gunicorn_app`` runs it under
gunicorn. Only published names are served, each at its published version. Modules:
routing (paths to routes), httpio (request/response values, WSGI output), errors (OCI
error bodies), auth (HTTP Basic against htpasswd/bcrypt), manifests (Accept
negotiation), blobs (Range), listing (tags/list and _catalog paging), accesslog; the
``crane`` subpackage is Crane compatibility mode (app files instead of the store).
"""

from reconciler.server.app import RegistryApp

__all__ = ["RegistryApp"]
