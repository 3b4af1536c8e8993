"""The store: repositories, immutable repository versions, tags, manifests, blobs,
publications and the apply journal. ``protocol`` defines the interface; adapters
(``sqlite`` for the embedded default) implement it."""
