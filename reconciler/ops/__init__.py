"""Operations over the store: sync, upload, tag, copy, remove, publish, export."""
