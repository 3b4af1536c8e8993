"""Crane's manifest negotiation (docs/original-system.md, "Manifest negotiation"),
exactly, as a pure function.

``choose_manifest(app, ref, accept)`` returns the path under the app file's ``url``
(``manifests/<1|2|list>/<ref or digest>``, or ``manifests/<ref>`` for a version-2 file)
and the media type Crane labelled the answer with in serve-content mode (None: Crane's
default ``application/json``). The order of the checks is Crane's:

1. version 2 file (no ``schema2_data``) -> flat ``manifests/<ref>``; a v3/v4 file with
   empty ``schema2_data`` and ``manifest_list_data`` -> ``manifests/1/<ref>``;
2. list type accepted and ``ref`` in ``manifest_list_data`` -> ``manifests/list/<ref>``;
3. ``ref`` a key of ``manifest_list_amd64_tags`` = (d, v): schema2 accepted ->
   ``manifests/<v>/<d>``; else v == 1 -> ``manifests/1/<d>``; else ``manifests/1/<ref>``;
4. schema2 accepted and ``ref`` in ``schema2_data`` -> ``manifests/2/<ref>``;
5. else ``manifests/1/<ref>``.
"""

from __future__ import annotations

from reconciler.model import mediatypes as mt
from reconciler.server.crane.appfile import AppFile

SCHEMA2 = mt.DOCKER_SCHEMA2
LIST = mt.DOCKER_MANIFEST_LIST


def parse_accept(header: str | None) -> frozenset[str]:
    """Media types of an ``Accept`` header: comma-split (WSGI joins repeated headers
    with commas), parameters such as ``;q=0.5`` dropped."""
    if not header:
        return frozenset()
    return frozenset(part.partition(";")[0].strip() for part in header.split(","))


def choose_manifest(app: AppFile, ref: str, accept: frozenset[str]) -> tuple[str, str | None]:
    if app.schema2_data is None:
        return f"manifests/{ref}", None                                   # 1: version 2, flat layout
    if not app.schema2_data and not app.manifest_list_data:
        return f"manifests/1/{ref}", None                                 # 1: nothing but schema1
    if LIST in accept and ref in app.manifest_list_data:
        return f"manifests/list/{ref}", LIST                              # 2
    if ref in app.amd64_tags:                                             # 3: list-unaware client
        digest, version = app.amd64_tags[ref]
        if SCHEMA2 in accept:
            return f"manifests/{version}/{digest}", SCHEMA2 if version == 2 else None
        if version == 1:
            return f"manifests/1/{digest}", None
        return f"manifests/1/{ref}", None                                 # the same-name s1 tag
    if SCHEMA2 in accept and ref in app.schema2_data:
        return f"manifests/2/{ref}", SCHEMA2                              # 4
    return f"manifests/1/{ref}", None                                     # 5
