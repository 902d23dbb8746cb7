"""The steps the DAG tasks call: one module per step, nothing else calls a task.

Source DAGs: :mod:`~cva_tasks.steps.land` (extract, validate, land, Data Docs).
The daily DAG: :mod:`~cva_tasks.steps.stage`, :mod:`~cva_tasks.steps.features`,
:mod:`~cva_tasks.steps.train`, :mod:`~cva_tasks.steps.feedback`,
:mod:`~cva_tasks.steps.score`, :mod:`~cva_tasks.steps.recommend`,
:mod:`~cva_tasks.steps.publish`,
:mod:`~cva_tasks.steps.audiences`.

Each function takes plain values (the day, the run id, names), builds the
:class:`~cva_tasks.settings.Settings` once, reads and writes the lake, and returns a
small JSON-able summary for XCom; frames travel through the lake, never through
XCom. Steps import the domain packages (sources, quality, features, models,
warehouse), never each other's internals, and nothing below imports a step.
"""
