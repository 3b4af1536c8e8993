"""Saved plans are tamper-evident: a digest of the canonical body, and an HMAC with a key.

``plan --out`` writes the plan document with two more top-level fields:

- ``digest``: ``sha256:`` of the canonical JSON (keys sorted, no whitespace, ASCII) of
  every other field. ``apply PLAN`` recomputes it before it reads anything from the
  document, so an edit made after the plan was written (a renamed tag, a digest swapped
  in review) is refused instead of applied. The digest alone catches mistakes and naive
  edits, not someone who recomputes it;
- ``hmac``: ``hmac-sha256:`` of the same bytes with the key in ``RECONCILER_PLAN_KEY``,
  when that variable is set. An apply that has the key refuses a plan without a valid
  HMAC, so a CI apply job accepts only plans made by a job holding the same secret.

The digest is also the plan's identity: the journal records it (``Plan.digest``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from reconciler.errors import PlanTampered

log = logging.getLogger(__name__)

KEY_ENV = "RECONCILER_PLAN_KEY"
DIGEST_FIELD = "digest"
HMAC_FIELD = "hmac"
HMAC_PREFIX = "hmac-sha256:"


def key_from_env() -> bytes | None:
    """The key that signs saved plans and that ``apply PLAN`` checks (``RECONCILER_PLAN_KEY``)."""
    value = os.environ.get(KEY_ENV, "")
    return value.encode() if value else None


def canonical(body: Mapping[str, Any]) -> bytes:
    """The bytes the digest and the HMAC cover."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def body_digest(body: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def signature(body: Mapping[str, Any], key: bytes) -> str:
    return HMAC_PREFIX + hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def seal(body: Mapping[str, Any], key: bytes | None) -> dict[str, Any]:
    """``body`` with its ``digest`` (and ``hmac`` when a key is given)."""
    out = dict(body)
    out[DIGEST_FIELD] = body_digest(body)
    if key:
        out[HMAC_FIELD] = signature(body, key)
    return out


def unseal(doc: Mapping[str, Any], key: bytes | None, *, where: str) -> dict[str, Any]:
    """The body of a sealed document, after checking its digest (and its HMAC when
    ``key`` is given); ``PlanTampered`` naming what does not match."""
    body = {k: v for k, v in doc.items() if k not in (DIGEST_FIELD, HMAC_FIELD)}
    remake = "make the plan again with `reconciler plan -f repos.yaml --out PLAN` and review that one"
    recorded = doc.get(DIGEST_FIELD)
    if not isinstance(recorded, str):
        raise PlanTampered(f"{where}: the plan has no digest, so edits to it cannot be detected; refusing it",
                           hint=remake)
    actual = body_digest(body)
    if not hmac.compare_digest(recorded, actual):
        raise PlanTampered(f"{where}: the plan was changed after it was written (it records digest {recorded}, "
                           f"its content hashes to {actual}); refusing it", hint=remake)
    signed = doc.get(HMAC_FIELD)
    if key:
        if not isinstance(signed, str):
            raise PlanTampered(f"{where}: {KEY_ENV} is set, but the plan is not signed: it was made without "
                               "the key; refusing it", hint=f"make the plan where {KEY_ENV} holds the same key")
        if not hmac.compare_digest(signed, signature(body, key)):
            raise PlanTampered(f"{where}: the plan's HMAC does not match {KEY_ENV}: it was signed with another "
                               "key, or changed and re-hashed; refusing it",
                               hint=f"make the plan where {KEY_ENV} holds the same key")
    elif signed is not None:
        log.warning("%s is signed, but %s is not set here: its HMAC was not checked (its digest was)",
                    where, KEY_ENV)
    return body
