"""``loads``: ``json.loads`` for bytes we did not write (manifests, upload metadata,
registry responses, saved plans, auth files).

Python's decoder recurses once per nesting level, so a document of 100,000 ``[`` raises
``RecursionError``, which no caller expects and which would surface as a traceback
(or a 500). Here it becomes a ``json.JSONDecodeError`` (a ``ValueError``), so every
caller's existing "not valid JSON" handling reports it.
"""

from __future__ import annotations

import json
from typing import Any


def loads(data: bytes | str) -> Any:
    """Parse ``data``; nesting too deep for the decoder is a ``json.JSONDecodeError``."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply to parse", "", 0) from None
