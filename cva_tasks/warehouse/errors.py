"""What can go wrong with the warehouse, and whether a retry can help (``retryable``).

:func:`cva_tasks.steps.failures.fail_fast` fails a task at once on an error whose
class says ``retryable = False``.
"""

from __future__ import annotations


class WarehouseError(RuntimeError):
    """The warehouse refused or lost an operation."""


class WarehouseUnavailable(WarehouseError):
    """The warehouse cannot be reached (down, wrong address, file locked)."""

    retryable = True


class WarehouseConfigError(WarehouseError, ValueError):
    """The connection is defined but cannot be used as a warehouse; a retry cannot help."""

    retryable = False


class WarehouseSchemaError(WarehouseError):
    """Live tables differ from their specs (:mod:`cva_tasks.warehouse.checks`); a retry
    cannot help."""

    retryable = False
