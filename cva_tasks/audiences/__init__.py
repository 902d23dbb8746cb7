"""Named marketing audiences: definitions from configuration, evaluated on a day's scores.

:mod:`.definitions` reads and checks the definitions file (``CVA_AUDIENCES``);
:mod:`.evaluation` applies them to the day's ``customer_scores`` and recommendations.
The daily step that publishes them is :mod:`cva_tasks.steps.audiences`.
"""
