"""Content operations (sync, upload, tag, copy, remove, publish, export, retention) and the
cascade rules they share.

Each content operation has a pure state transformer (``RepoState -> RepoState``) used by
the plan to compose several operations into one version, and a committing wrapper that
reads the latest version, transforms it and makes exactly one new version. Publish
(``publish.py``) switches a publication atomically; export (``export.py``) writes a
version to a tar.

Sub-packages: ``formats/`` the file formats uploads read and exports write (no repository
or registry known there), ``v1/`` the Docker v1 image model's operations. The rest is
plumbing the operations share: the reference graph and cascade (``cascade``, ``graph``),
the upstream refresh (``refresh``), fetching content (``fetch``), bounded parallelism and
stopping (``parallel``, ``stop``), the repository state and its commit (``state``,
``result``).
"""
