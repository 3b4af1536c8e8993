"""Crane compatibility mode: serve Pulp/Crane app files (versions 1 to 4) the way Crane
did, without a store (``reconciler serve --crane-data-dir DIR``).

Modules: appfile (parse and validate one app file), index (the loaded snapshot and its
reload on change), config (``crane.conf`` reader), negotiate (Crane's manifest choice by
``Accept``), routes (the v2 and admin routing table), v1 (the v1 endpoints), values
(request/reply values of the pure routing functions), app (the WSGI application).
"""

from reconciler.server.crane.app import CraneApp
from reconciler.server.crane.config import CraneConfig, read_config

__all__ = ["CraneApp", "CraneConfig", "read_config"]
