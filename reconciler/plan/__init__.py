"""Planning: refresh (I/O) then a pure diff into a ``Plan`` value, and its renderers."""
