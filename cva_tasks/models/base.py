"""The contract every model kind follows, and the error that says "not yet".

A model class (one per kind, listed in :mod:`cva_tasks.models.kinds`) follows
scikit-learn's habits: the constructor only stores hyper-parameters, :meth:`Model.fit`
learns and returns the model itself, :meth:`Model.predict` returns one row per
scored entity as a DataFrame. What a kind fits on differs (feature rows, purchase
lines, texts), so ``fit`` and ``predict`` take the kind's own arguments; the rest of
the contract is the same for all and is checked for every kind by
``tests/unit/models/test_model_contract.py``: fitting twice with one seed gives the
same predictions, a save/load round trip gives identical predictions, ``params`` and
``metrics`` are plain JSON, too little data raises :class:`NotEnoughData`.

A trainer (:data:`Trainer`) turns a day of the lake into a fitted model and its
training report; :func:`cva_tasks.steps.train.train_model` saves it as a model run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from cva_tasks.features.snapshots import DayData
    from cva_tasks.settings import Settings


class NotEnoughData(ValueError):
    """Too little data to train a kind yet: the day goes on without (or with the old) model.

    A ``ValueError``, so callers that validate inputs catch it too; the training step
    catches exactly this class and records "not enough data" instead of failing.
    """


@runtime_checkable
class Model(Protocol):
    """What the pipeline needs of a model of any kind."""

    #: The kind's name in :mod:`cva_tasks.models.kinds`.
    kind: ClassVar[str]

    @property
    def params(self) -> dict[str, Any]:
        """Everything that defines the fitted model, as plain JSON."""
        ...

    @property
    def metrics(self) -> dict[str, Any]:
        """The figures of its fit and validation, as plain JSON."""
        ...

    def fit(self, *args: Any, **kwargs: Any) -> Self:
        """Learn from the kind's training data; return ``self``."""
        ...

    def predict(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        """Score the kind's inputs: one row per scored entity."""
        ...

    def save(self, directory: Path) -> None:
        """Write the model's files into ``directory``."""
        ...

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        ...


#: ``train(day, champion, settings) -> (model, report)``: fit a kind on what the lake
#: knew at the end of ``day.ds``. ``champion`` is the model in force before that day
#: (or None); the report holds ``algorithm``, ``metric``, ``metric_value``,
#: ``higher_is_better``, ``champion_metric``, ``training_window``,
#: ``validation_window`` and ``params`` (see :func:`cva_tasks.models.registry.new_run`).
#: Raises :class:`NotEnoughData` when the day's data cannot train the kind yet.
Trainer = Callable[["DayData", Any, "Settings"], tuple[Any, dict[str, Any]]]
