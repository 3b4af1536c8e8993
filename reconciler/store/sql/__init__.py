"""What the SQL store backends (``sqlite``, ``postgres``) share: the store logic in one
dialect both speak (``base``), point lookups (``lookup``), invariant checks, ``check`` and
``gc`` (``maintenance``), and group commit of content rows (``groupcommit``)."""
