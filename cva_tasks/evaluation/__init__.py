"""Out-of-time evaluations of the models on real public data (``cva evaluate <name>``).

Each module defines ``add_arguments(parser)`` and ``command(args) -> dict``; the
dict holds the figures, ``text`` (the printed table, with the protocol) and
``ok`` (False when a goal of the evaluation is missed). Modules import light at
top so ``cva --help`` stays fast.
"""
