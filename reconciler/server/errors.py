"""Registry errors as the OCI distribution spec writes them.

A handler raises ``RegistryHTTPError``; the app turns it into
``{"errors": [{"code", "message", "detail"}]}`` with the right status and headers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

#: code -> (HTTP status, default message), from the distribution spec's error table
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "RANGE_INVALID": (416, "requested range not satisfiable"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "NOT_FOUND": (404, "not found"),
    "UNKNOWN": (500, "unknown error"),
    # not in the OCI table; the distribution registry's code for 503 (with Retry-After)
    "UNAVAILABLE": (503, "service unavailable"),
}


class RegistryHTTPError(Exception):
    """An error response: OCI code, message, optional detail and extra headers."""

    def __init__(self, code: str, message: str | None = None, *, detail: object = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status, default_message = CODES[code]
        self.code = code
        self.message = message or default_message
        self.detail = detail
        self.headers = dict(headers or {})
        super().__init__(f"{self.status} {code}: {self.message}")

    def body(self) -> bytes:
        entry: dict[str, object] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return json.dumps({"errors": [entry]}).encode()
