"""Content operations (sync, upload, tag, copy, remove): pure decisions over repository
state plus the store calls that carry them out."""
