"""Content operations (sync, upload, tag, copy, remove, publish, export) and the cascade rules
they share.

Each content operation has a pure state transformer (``RepoState -> RepoState``) used by
the plan to compose several operations into one version, and a committing wrapper that
reads the latest version, transforms it and makes exactly one new version. Publish
(``publish.py``) switches a publication atomically; export (``export.py``) writes a
version to a tar.
"""
