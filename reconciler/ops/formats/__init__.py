"""File formats the operations read and write, and nothing else: the upload readers
(skopeo ``dir:``, OCI layout and archive, ``docker save``, index JSON) over a safe view of
a tar or directory (``archive``, ``tarsafe``), the OCI layout pieces exports and bundles
share (``ocilayout``, ``ociconvert``), Crane's static tree (``crane``) and all-or-nothing
tar output (``tarout``). No repository, version or registry is known here."""
