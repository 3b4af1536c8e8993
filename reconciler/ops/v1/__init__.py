"""The Docker v1 image model's operations (docs/original-system.md, "Docker v1 content"):
reading a ``docker save`` tarball as v1 images (``save``), uploading it (``upload``),
syncing from a v1 registry API (``sync``), copying and removing v1 images and tags
(``content``), and the ``crane-v1`` export (``export``)."""
