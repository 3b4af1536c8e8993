"""The store's roles: small protocols, one per kind of caller (``reconciler.store.protocol``
unites them as ``Store``)."""
