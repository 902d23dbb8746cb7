"""What staging applies to every row with a customer id: erased customers out, ids
pseudonymised.

Staging is the one door from ``raw/`` into everything the pipeline derives (features,
scores, the warehouse), so applying both here covers all of them: a day restaged after
an erasure, or with a key set, carries neither the erased customer nor a source id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cva_tasks.privacy.pseudonyms import pseudonyms
from cva_tasks.privacy.register import erased_hashes, id_hash

if TYPE_CHECKING:
    import pyarrow as pa

    from cva_tasks.lake import Lake

CUSTOMER_ID = "customer_id"


@dataclass(frozen=True)
class StagingPrivacy:
    """Attributes:
    key: the pseudonymisation key (``CVA_PSEUDONYMISE_KEY``), or None: ids as landed.
    erased: SHA-256 hashes of the erased source ids (:mod:`.register`).
    """

    key: str | None = None
    erased: Collection[str] = frozenset()

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return f"StagingPrivacy(key={'set' if self.key else None}, erased={len(self.erased)})"

    @classmethod
    def for_lake(cls, lake: Lake, key: str | None) -> StagingPrivacy:
        return cls(key=key, erased=erased_hashes(lake))

    def apply(self, table: pa.Table) -> pa.Table:
        """The rows of customers not erased, with pseudonymised ids when a key is set.

        Rows without a customer id (and tables without the column) pass as they are.
        Each distinct id is hashed once (a day of a large source repeats ids a lot).
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        if CUSTOMER_ID not in table.column_names or not (self.key or self.erased):
            return table
        if self.erased:
            encoded = pc.dictionary_encode(table[CUSTOMER_ID].combine_chunks())
            erased = pa.array(
                [id_hash(v) in self.erased for v in encoded.dictionary.to_pylist()], pa.bool_()
            )
            hit = pc.take(erased, encoded.indices).fill_null(False)
            if pc.any(hit).as_py():
                table = table.filter(pc.invert(hit))
        if self.key:
            encoded = pc.dictionary_encode(table[CUSTOMER_ID].combine_chunks())
            aliases = pa.array(pseudonyms(encoded.dictionary.to_pylist(), self.key), pa.string())
            position = table.schema.get_field_index(CUSTOMER_ID)
            table = table.set_column(
                position, table.schema.field(position), pc.take(aliases, encoded.indices)
            )
        return table
