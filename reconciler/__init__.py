"""reconciler: declarative, GitOps-style management of container image repositories.

Users describe the repositories they want in ``repos.yaml``; ``reconciler plan`` shows
what would change and ``reconciler apply`` makes it so. Content lives in a store
(SQLite + content-addressed files by default) and is served read-only to OCI clients.
"""

__version__ = "0.1.0"
