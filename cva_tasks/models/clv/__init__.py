"""Lifetime value: BG/NBD and Gamma-Gamma on closed-form likelihoods, and the pipeline's model.

Modules, by concern:

* :mod:`~cva_tasks.models.clv.optimise`: the bounded log-parameter minimiser and the
  fitters' common base;
* :mod:`~cva_tasks.models.clv.beta_geo`: :class:`BetaGeoFitter` (BG/NBD);
* :mod:`~cva_tasks.models.clv.gamma_gamma`: :class:`GammaGammaFitter` and
  :func:`customer_lifetime_value`;
* :mod:`~cva_tasks.models.clv.inputs`: customer features (or counted orders) to model
  inputs;
* :mod:`~cva_tasks.models.clv.model`: :class:`LifetimeValueModel` (degenerate fits and
  their fallback, outputs, persistence);
* :mod:`~cva_tasks.models.clv.validation`: out-of-time scores next to naive baselines;
* :mod:`~cva_tasks.models.clv.training`: :func:`train_clv` (validate, score the
  champion, refit) and the pipeline's day trainer.

Why these likelihoods are written here rather than taken from ``lifetimes`` or
PyMC-Marketing, and the figures measured on CDNOW and Online Retail:
``docs/models/clv.md``.
"""

from cva_tasks.models.clv.beta_geo import BetaGeoFitter
from cva_tasks.models.clv.gamma_gamma import GammaGammaFitter, customer_lifetime_value
from cva_tasks.models.clv.inputs import clv_inputs, purchase_day_inputs
from cva_tasks.models.clv.model import (
    DROPOUT_PENALIZERS,
    MAX_PENALTY_COST,
    MODEL_FILE,
    OUTPUT_COLUMNS,
    LifetimeValueModel,
)
from cva_tasks.models.clv.training import train_clv
from cva_tasks.models.clv.validation import (
    holdout_actuals,
    naive_forecasts,
    rank_auc,
    validate_out_of_time,
)

__all__ = [
    "DROPOUT_PENALIZERS",
    "MAX_PENALTY_COST",
    "MODEL_FILE",
    "OUTPUT_COLUMNS",
    "BetaGeoFitter",
    "GammaGammaFitter",
    "LifetimeValueModel",
    "clv_inputs",
    "customer_lifetime_value",
    "holdout_actuals",
    "naive_forecasts",
    "purchase_day_inputs",
    "rank_auc",
    "train_clv",
    "validate_out_of_time",
]
