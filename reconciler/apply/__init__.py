"""Apply: execute a ``Plan`` against the store under its lock, journaled."""
