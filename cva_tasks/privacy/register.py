"""The erasure register: ``privacy/erased.json`` in the lake.

It lists a SHA-256 hash of each erased customer's source id (never the id itself: the
register is kept for good), with when it was erased. Staging drops rows of these
customers, so a day landed or restaged after the erasure does not bring them back.

Ids are short and guessable, so the hash can be matched by trying ids: the register
shows that a given id was erased, not who the customer was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime

from cva_tasks import storage
from cva_tasks.lake import Lake

VERSION = 1


def id_hash(customer_id: str) -> str:
    return hashlib.sha256(customer_id.encode("utf-8")).hexdigest()


def read_register(lake: Lake) -> dict[str, str]:
    """Erased id hashes with the time each was erased (empty when none)."""
    uri = lake.erasure_register()
    if not storage.exists(uri):
        return {}
    try:
        record = storage.read_json(uri)
    except ValueError:  # JSONDecodeError: the message below says what to do
        record = None
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise ValueError(
            f"{uri}: not an erasure register of version {VERSION}; restore it from a backup "
            "before staging (it keeps erased customers out of the lake)"
        )
    return {item["id_sha256"]: item["erased_at"] for item in record["erased"]}


def erased_hashes(lake: Lake) -> frozenset[str]:
    return frozenset(read_register(lake))


def add_to_register(lake: Lake, customer_ids: Iterable[str]) -> list[str]:
    """Record ``customer_ids`` as erased (written whole, atomically); returns new hashes.

    Under the register's writer lock: two erasures at once both end up in it.
    """
    uri = lake.erasure_register()
    with storage.writer_lock(uri):
        current = read_register(lake)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        added = [h for h in dict.fromkeys(id_hash(i) for i in customer_ids) if h not in current]
        current.update(dict.fromkeys(added, now))
        record = {
            "version": VERSION,
            "about": "SHA-256 of the source customer ids erased by `cva forget`; "
            "staging drops them",
            "erased": [{"id_sha256": h, "erased_at": t} for h, t in sorted(current.items())],
        }
        storage.write_json_atomic(record, uri)
    return added
