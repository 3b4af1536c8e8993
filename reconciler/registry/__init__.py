"""The upstream registry client (Docker Registry HTTP API V2 / OCI distribution pull)."""
