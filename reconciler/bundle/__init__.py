"""Bundles: a store's published content in one file, for carrying across an air gap.

``format`` is the bundle manifest (``bundle.json``), ``writer`` makes a bundle from a
store (``reconciler export --all``), ``reader`` reads one as a feed: the same read
interface sync and the plan's refresh use for a registry (``UpstreamSource``), so
``feed: bundle:PATH`` works wherever a registry feed does. docs/air-gap.md describes the
format for people.
"""
