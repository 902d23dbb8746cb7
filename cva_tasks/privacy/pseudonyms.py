"""Pseudonymised customer ids: a keyed hash (HMAC-SHA256) of the source's id.

Stable (the same id and key always give the same pseudonym, so days staged apart join),
not reversible without the key, and not recomputable from a list of guessed ids without it
(a plain hash of a numeric id is). Truncated to 128 bits: collisions among even billions
of customers are out of reach.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

PREFIX = "p_"
_HEX_CHARS = 32  # 128 bits


def pseudonym(customer_id: str, key: str) -> str:
    """``p_`` and 32 hex digits of HMAC-SHA256(key, id)."""
    digest = hmac.new(key.encode("utf-8"), customer_id.encode("utf-8"), hashlib.sha256)
    return PREFIX + digest.hexdigest()[:_HEX_CHARS]


def pseudonyms(customer_ids: Iterable[str | None], key: str) -> list[str | None]:
    """:func:`pseudonym` of each id; a missing id stays missing."""
    cache: dict[str, str] = {}
    out: list[str | None] = []
    for value in customer_ids:
        if value is None:
            out.append(None)
            continue
        if value not in cache:
            cache[value] = pseudonym(value, key)
        out.append(cache[value])
    return out
