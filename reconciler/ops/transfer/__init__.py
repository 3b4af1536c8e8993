"""One content path: the source/sink interface (``interface``), the one walk
(``walk.transfer``) and the adapters of the store and an upstream (``adapters``)."""
