"""Bundles: a store's published content in one file, for carrying across an air gap.

``format`` is the bundle manifest (``bundle.json``), ``writer`` makes a bundle from a
store (``reconciler export --all``), ``reader`` reads one as a feed: the same read
interface sync and the plan's refresh use for a registry (``UpstreamSource``), so
``feed: bundle:PATH`` works wherever a registry feed does. docs/air-gap.md describes the
format for people.
"""

from __future__ import annotations

from pathlib import Path

#: a feed that is a bundle file or folder (``feed: bundle:PATH``) instead of a registry
SCHEME = "bundle:"


def feed_location(feed: str) -> str:
    """A feed as it is recorded: ``bundle:PATH`` with PATH made absolute (it is read from
    wherever later commands run), a registry URL as given."""
    if feed.startswith(SCHEME):
        return SCHEME + str(Path(feed[len(SCHEME):]).expanduser().resolve())
    return feed
