"""Content operations (sync, upload, tag, copy, remove, publish, export, retention) and the
cascade rules they share.

Each content operation has a pure part (a state transformer ``RepoState -> RepoState``,
or the check of a request) that the plan composes into one version; the one-off commands
are planned and applied like repos.yaml (``reconciler.apply.oneoff``), so no operation
here commits a v2 version by itself. Publish (``publish.py``) switches a publication
atomically; export (``export.py``) writes a version to a tar; the v1 operations
(``v1/``) still commit their own versions.

Sub-packages: ``formats/`` the file formats uploads read and exports write (no repository
or registry known there), ``v1/`` the Docker v1 image model's operations. The rest is
plumbing the operations share: the reference graph and cascade (``cascade``, ``graph``),
the upstream refresh (``refresh``), fetching content (``fetch``), bounded parallelism and
stopping (``parallel``, ``stop``), the repository state and a command's result
(``state``, ``result``).
"""
