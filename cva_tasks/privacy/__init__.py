"""Privacy: pseudonymised customer ids, the erasure register and ``cva forget``.

Modules: :mod:`.pseudonyms` (the keyed hash of a customer id), :mod:`.register` (who was
erased, kept in the lake), :mod:`.policy` (what staging applies: erased customers out,
ids pseudonymised) and :mod:`.forget` (removing customers from every zone of the lake and
the warehouse). See ``docs/privacy.md``.
"""
