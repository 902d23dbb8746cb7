"""The models: one package per kind, each following :class:`cva_tasks.models.base.Model`.

:mod:`cva_tasks.models.kinds` lists the kinds; :mod:`cva_tasks.models.registry` keeps
their trained runs in the lake. Importing this package imports nothing heavy.
"""
