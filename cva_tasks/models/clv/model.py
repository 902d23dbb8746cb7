"""The lifetime-value model of the pipeline: customer features in, per-customer outputs out.

:class:`LifetimeValueModel` fits BG/NBD (:mod:`~cva_tasks.models.clv.beta_geo`) and
Gamma-Gamma (:mod:`~cva_tasks.models.clv.gamma_gamma`) on the inputs of
:func:`~cva_tasks.models.clv.inputs.clv_inputs`, detects degenerate fits, falls back to
a dropout-penalized fit only when the data do not reject it (likelihood-ratio test),
and publishes only the outputs that hold: ``p_alive``, ``expected_orders_90d``,
``expected_orders_365d``, ``clv_365d`` (discounted), ``expected_next_order_at``.
``save`` / ``load`` as one JSON file.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.clv.beta_geo import BetaGeoFitter
from cva_tasks.models.clv.gamma_gamma import GammaGammaFitter
from cva_tasks.models.clv.inputs import TIME_UNIT_DAYS, as_of_timestamp, clv_inputs
from cva_tasks.models.untrusted import refuse_unsafe_files

log = logging.getLogger(__name__)

DEFAULT_DISCOUNT_RATE = 0.10
DROPOUT_PENALIZERS = (1e-4, 1e-3, 1e-2, 1e-1)
# A penalized fit "fits" when a likelihood-ratio test against the maximum-likelihood
# fit does not reject it: 2 * (LL_mle - LL_penalized) <= chi2(2 df, 0.95) = 5.991, i.e.
# a log-likelihood cost <= 2.996 (two penalized parameters, a and b).
MAX_PENALTY_COST = 5.991464547107979 / 2
FALLBACKS = ("penalized", "null")
NEXT_ORDER_HORIZON_DAYS = 365.0
MODEL_FILE = "clv_model.json"
MODEL_FORMAT = "cva.clv.v1"
OUTPUT_COLUMNS = (
    "customer_id",
    "p_alive",
    "expected_orders_90d",
    "expected_orders_365d",
    "clv_365d",
    "expected_next_order_at",
)
_BISECTION_STEPS = 48  # 365 days / 2^48 is far below a second


def _check_discount_rate(value: object, where: str) -> float:
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not a number (annual rate, e.g. 0.10)") from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{where}: {rate} is not an annual rate in [0, 1] (e.g. 0.10)")
    return rate


class LifetimeValueModel:
    """BG/NBD + Gamma-Gamma lifetime-value model on the point-in-time customer features.

    Fitting (:meth:`fit`):

    1. BG/NBD by maximum likelihood on every customer with a counted order
       (:func:`clv_inputs`; time unit one day).
    2. If that fit is degenerate (:meth:`BetaGeoFitter.degenerate_reasons`: a parameter on
       its bound, ``a < 1e-3`` or ``b > 1e3`` i.e. nobody drops out, P(alive) flat with
       std < 0.01, no convergence) and ``fallback == "penalized"``, it is refitted with
       the dropout penalty ``lambda * (log(a)^2 + log(b)^2)`` for each ``lambda`` of
       ``dropout_penalizers`` in increasing order (default 1e-4, 1e-3, 1e-2, 0.1) until
       a fit is not degenerate: the smallest such ``lambda`` is the variant closest to
       the data that still has a dropout process. It is used only if it still *fits*:
       its log-likelihood may be at most ``max_penalty_cost`` (default 2.996, the 5%
       likelihood-ratio test with 2 degrees of freedom) below the maximum-likelihood
       fit's. Otherwise its dropout process is the penalty's, not the data's, and the
       variant is rejected (larger ``lambda`` only cost more).
    3. If no variant is sound and fits (or ``fallback == "null"``) the
       maximum-likelihood fit is kept and P(alive) is not published (null). Expected
       orders, the next-order date and CLV stay published as long as the purchase-rate
       part ``(r, alpha)`` is sound: with ``a -> 0`` BG/NBD tends to the NBD model
       (nobody drops out), whose expected purchases remain a valid forecast. If
       ``(r, alpha)`` is on a bound or the optimiser failed, nothing is published.
    4. Gamma-Gamma on every customer with a counted order and positive spend
       (``n_orders`` orders with mean ``spend_per_order``); CLV is null for everyone if
       that fit is unusable (``q <= 1``, a bound, no convergence) and for customers
       without spend.

    What was found and what is published: :attr:`degenerate_reasons`,
    :attr:`published`, :attr:`fallback_`.

    Outputs (:meth:`predict`), per customer:

    * ``p_alive``: P(still active at ``as_of``) under BG/NBD; null for one-time buyers
      (no repeat order): BG/NBD lets nobody drop out before a first repeat purchase, so
      its P(alive) is exactly 1 for every one of them, however long ago they bought.
    * ``expected_orders_90d`` / ``expected_orders_365d``: conditional expected counted
      orders in ``[as_of, as_of + 90 / 365 days)``.
    * ``clv_365d``: expected gross spend over the next 365 days, month by month (the
      increments of expected orders over twelve 365/12-day months, times the
      Gamma-Gamma expected spend per order), each month discounted at the end of the
      month at the annual rate ``discount_rate`` (``(1 + d) ** (i / 12)``).
    * ``expected_next_order_at``: the instant at which the conditional expected number
      of orders since ``as_of`` reaches 1, when that happens within 365 days; null
      otherwise. Unlike ``as_of + 1 / rate`` it accounts for P(alive) (a customer who
      has probably left never reaches one expected order), and it is null exactly when
      ``expected_orders_365d < 1``. It is not the mean waiting time, which is infinite
      whenever the customer may have dropped out.

    Args:
        discount_rate: Annual discount rate in [0, 1] (the pipeline passes
            ``CVA_CLV_DISCOUNT_RATE``); None means 0.10.
        fallback: ``"penalized"`` (refit with the dropout penalty) or ``"null"``
            (publish P(alive) as null) when the maximum-likelihood fit degenerates.
        dropout_penalizers: The ``lambda`` ladder tried in order.
        max_penalty_cost: Largest log-likelihood loss accepted for a penalized fit.
    """

    kind: ClassVar[str] = "clv"

    # Learned state, set by fit() or load().
    bgf_: BetaGeoFitter
    bgf_mle_: BetaGeoFitter
    ggf_: GammaGammaFitter | None
    discount_rate_: float
    fitted_as_of_: str
    fallback_: dict[str, Any]
    degenerate_reasons_: list[str]
    published_: dict[str, bool]
    unpublished_reasons_: dict[str, list[str]]
    fit_metrics_: dict[str, Any]
    validation_: dict[str, Any] | None

    def __init__(
        self,
        discount_rate: float | None = None,
        fallback: str = "penalized",
        dropout_penalizers: tuple[float, ...] = DROPOUT_PENALIZERS,
        max_penalty_cost: float = MAX_PENALTY_COST,
    ) -> None:
        self.discount_rate = discount_rate
        self.fallback = fallback
        self.dropout_penalizers = dropout_penalizers
        self.max_penalty_cost = max_penalty_cost

    # ---- fitting -------------------------------------------------------------------

    def fit(self, features: pd.DataFrame, as_of: datetime) -> Self:
        """Fit on the customer features as of ``as_of`` (see the class docstring).

        Args:
            features: The customer feature table as of ``as_of``.
            as_of: The instant the features are as of.

        Returns:
            The fitted model.
        """
        return self.fit_inputs(clv_inputs(features, as_of), as_of)

    def fit_inputs(self, inputs: pd.DataFrame, as_of: datetime) -> Self:
        """Fit on inputs shaped like :func:`clv_inputs` (another transaction definition).

        Args:
            inputs: Columns ``is_modelled, has_spend, x, t_x, T, n_orders,
                spend_per_order``.
            as_of: The instant the inputs are as of (recorded with the model).

        Returns:
            The fitted model.

        Raises:
            NotEnoughData: with no modelled customer.
            ValueError: for a bad setting.
        """
        started = time.perf_counter()
        if self.fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}, got {self.fallback!r}")
        rate = DEFAULT_DISCOUNT_RATE if self.discount_rate is None else self.discount_rate
        self.discount_rate_ = _check_discount_rate(rate, "discount_rate")
        modelled = inputs[inputs["is_modelled"].to_numpy(dtype=bool)]
        if modelled.empty:
            raise NotEnoughData("LifetimeValueModel: no customer with a counted order to fit on")
        x, t_x, age = (modelled[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))

        mle = BetaGeoFitter().fit(x, t_x, age)
        mle_reasons = mle.degenerate_reasons()
        log.info(
            "BG/NBD maximum likelihood on %d customers: %s%s",
            len(modelled),
            _fmt_params(mle.params_),
            f"; degenerate: {'; '.join(mle_reasons)}" if mle_reasons else "",
        )
        chosen, penalizer, attempts, outcome = mle, 0.0, [], None
        if mle_reasons and self.fallback == "penalized":
            outcome = "every penalized fit of the ladder is still degenerate"
            for lam in sorted(self.dropout_penalizers):
                candidate = BetaGeoFitter(dropout_penalizer=lam).fit(x, t_x, age)
                reasons = candidate.degenerate_reasons()
                cost = mle.log_likelihood_ - candidate.log_likelihood_
                attempts.append(
                    {
                        "dropout_penalizer": lam,
                        "params": candidate.params_,
                        "log_likelihood": candidate.log_likelihood_,
                        "log_likelihood_cost": cost,
                        "degenerate_reasons": reasons,
                    }
                )
                log.info(
                    "BG/NBD with dropout penalty %g: %s; log-likelihood cost %.2f%s",
                    lam,
                    _fmt_params(candidate.params_),
                    cost,
                    f"; still degenerate: {'; '.join(reasons)}" if reasons else "; sound",
                )
                if reasons:
                    continue
                if cost <= self.max_penalty_cost:
                    chosen, penalizer = candidate, lam
                    outcome = f"penalty {lam:g} accepted (log-likelihood cost {cost:.2f})"
                else:
                    outcome = (
                        f"penalty {lam:g} gives the first sound fit but the data reject it: "
                        f"log-likelihood cost {cost:.2f} > {self.max_penalty_cost:.3f} "
                        "(likelihood-ratio test, 2 df, 5%)"
                    )
                break
        elif mle_reasons:
            outcome = "fallback 'null': P(alive) not published"
        rate_reasons = chosen.rate_reasons()
        p_alive_ok = not chosen.degenerate_reasons()
        self.bgf_ = chosen
        self.bgf_mle_ = mle
        self.fallback_ = {
            "policy": self.fallback,
            "mle_degenerate": bool(mle_reasons),
            "used": "dropout_penalized" if penalizer else "maximum_likelihood",
            "dropout_penalizer": penalizer,
            "log_likelihood_mle": mle.log_likelihood_,
            "log_likelihood_used": chosen.log_likelihood_,
            "log_likelihood_cost": mle.log_likelihood_ - chosen.log_likelihood_,
            "max_penalty_cost": self.max_penalty_cost,
            "outcome": outcome,
            "attempts": attempts,
        }
        reasons = [f"BG/NBD: {r}" for r in mle_reasons]

        self.ggf_ = None
        gg_reasons: list[str] = []
        spenders = modelled[modelled["has_spend"].to_numpy(dtype=bool)]
        if len(spenders) < 2:
            gg_reasons.append(f"only {len(spenders)} customer(s) with spend: cannot fit")
        else:
            ggf = GammaGammaFitter().fit(spenders["n_orders"], spenders["spend_per_order"])
            gg_reasons = ggf.degenerate_reasons()
            if not gg_reasons:
                self.ggf_ = ggf
            log.info(
                "Gamma-Gamma on %d customers: %s%s",
                len(spenders),
                _fmt_params(ggf.params_),
                f"; unusable: {'; '.join(gg_reasons)}" if gg_reasons else "",
            )
        reasons += [f"Gamma-Gamma: {r}" for r in gg_reasons]
        self.degenerate_reasons_ = reasons

        orders_ok = not rate_reasons
        self.published_ = {
            "p_alive": orders_ok and p_alive_ok,
            "expected_orders_90d": orders_ok,
            "expected_orders_365d": orders_ok,
            "expected_next_order_at": orders_ok,
            "clv_365d": orders_ok and self.ggf_ is not None,
        }
        self.unpublished_reasons_ = {
            name: (
                rate_reasons
                if not orders_ok
                else (
                    [
                        f"BG/NBD fit used is degenerate: {'; '.join(chosen.degenerate_reasons())}",
                        f"fallback: {outcome}",
                    ]
                    if name == "p_alive"
                    else [f"Gamma-Gamma: {'; '.join(gg_reasons)}"]
                )
            )
            for name, shown in self.published_.items()
            if not shown
        }
        self.fitted_as_of_ = as_of_timestamp(as_of).isoformat()
        alive = chosen.probability_alive(x, t_x, age)
        spend = spenders["spend_per_order"].to_numpy(dtype=float)
        from scipy.stats import spearmanr

        repeat_spenders = spenders["n_orders"].to_numpy() >= 2
        self.fit_metrics_ = {
            "n_customers": len(modelled),
            "n_repeat_customers": int((x > 0).sum()),
            "n_customers_with_spend": len(spenders),
            "log_likelihood_bg_nbd": chosen.log_likelihood_,
            "p_alive_std": float(np.std(alive)),
            "mean_spend_per_order": float(spend.mean()) if spend.size else None,
            # Gamma-Gamma assumes spend per order independent of the number of orders.
            "spearman_orders_vs_spend_repeaters": (
                float(
                    spearmanr(
                        spenders["n_orders"].to_numpy()[repeat_spenders], spend[repeat_spenders]
                    )[0]
                )
                if repeat_spenders.sum() > 2
                else None
            ),
            "fit_seconds": round(time.perf_counter() - started, 2),
        }
        self.validation_ = None
        return self

    # ---- outputs -------------------------------------------------------------------

    def _check(self) -> None:
        if not hasattr(self, "bgf_"):
            raise RuntimeError("LifetimeValueModel is not fitted: call fit() or load() first")

    def _expected(self, inputs: pd.DataFrame, horizon_days: float) -> np.ndarray:
        out = np.full(len(inputs), np.nan)
        rows = inputs["is_modelled"].to_numpy(dtype=bool)
        if rows.any():
            out[rows] = self.bgf_.expected_purchases(
                horizon_days / TIME_UNIT_DAYS,
                inputs["x"].to_numpy(dtype=float)[rows],
                inputs["t_x"].to_numpy(dtype=float)[rows],
                inputs["T"].to_numpy(dtype=float)[rows],
            )
        return out

    def _spend_per_order(self, inputs: pd.DataFrame) -> np.ndarray:
        out = np.full(len(inputs), np.nan)
        rows = inputs["has_spend"].to_numpy(dtype=bool)
        if self.ggf_ is not None and rows.any():
            out[rows] = self.ggf_.conditional_expected_average_profit(
                inputs["n_orders"].to_numpy(dtype=float)[rows],
                inputs["spend_per_order"].to_numpy(dtype=float)[rows],
            )
        return out

    def forecast(
        self, features: pd.DataFrame, as_of: datetime, horizon_days: float
    ) -> pd.DataFrame:
        """Expected orders and (undiscounted) spend in ``[as_of, as_of + horizon_days)``.

        Args:
            features: Customer features as of ``as_of``.
            as_of: Their instant.
            horizon_days: Length of the window in days.

        Returns:
            ``customer_id``, ``expected_orders``, ``expected_spend`` (expected orders x
            Gamma-Gamma spend per order); NaN where not modelled or not published.
        """
        self._check()
        if horizon_days <= 0:
            raise ValueError(f"horizon_days must be > 0, got {horizon_days}")
        inputs = clv_inputs(features, as_of)
        orders = self._expected(inputs, horizon_days)
        if not self.published_["expected_orders_90d"]:
            orders[:] = np.nan
        spend = orders * self._spend_per_order(inputs)
        if not self.published_["clv_365d"]:
            spend[:] = np.nan
        return pd.DataFrame(
            {
                "customer_id": inputs["customer_id"].to_numpy(),
                "expected_orders": orders,
                "expected_spend": spend,
            }
        )

    def _next_order_days(self, inputs: pd.DataFrame) -> np.ndarray:
        """Days until the conditional expected orders reach 1, NaN if not within 365 days."""
        days = np.full(len(inputs), np.nan)
        within = self._expected(inputs, NEXT_ORDER_HORIZON_DAYS) >= 1.0
        if not within.any():
            return days
        x, t_x, age = (inputs[c].to_numpy(dtype=float)[within] for c in ("x", "t_x", "T"))
        low = np.zeros(x.size)
        high = np.full(x.size, NEXT_ORDER_HORIZON_DAYS)
        for _ in range(_BISECTION_STEPS):  # E[orders in (0, t]] increases with t
            middle = (low + high) / 2
            reached = self.bgf_.expected_purchases(middle / TIME_UNIT_DAYS, x, t_x, age) >= 1.0
            high = np.where(reached, middle, high)
            low = np.where(reached, low, middle)
        days[within] = high
        return days

    def _clv(self, inputs: pd.DataFrame, months: int = 12) -> np.ndarray:
        spend = self._spend_per_order(inputs)
        month = (365.0 / 12) / TIME_UNIT_DAYS
        value = np.zeros(len(inputs))
        previous = np.zeros(len(inputs))
        for i in range(1, months + 1):
            cumulative = self._expected(inputs, i * month * TIME_UNIT_DAYS)
            value += (cumulative - previous) * spend / (1 + self.discount_rate_) ** (i / 12)
            previous = cumulative
        return value

    def predict(self, features: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
        """Per-customer lifetime-value outputs as of ``as_of`` (see the class docstring).

        Args:
            features: Customer features as of ``as_of`` (any day: the parameters are
                the population's, the per-customer inputs are read from ``features``).
            as_of: The instant the features are as of.

        Returns:
            One row per input row, same order, columns ``OUTPUT_COLUMNS``:
            ``customer_id`` (as given), ``p_alive``, ``expected_orders_90d``,
            ``expected_orders_365d``, ``clv_365d`` (float64, NaN = null) and
            ``expected_next_order_at`` (timestamp UTC, NaT = null). Null where an output
            is not published (:attr:`published`), for customers without a counted order,
            ``p_alive`` for one-time buyers and ``clv_365d`` for customers without spend.
        """
        self._check()
        stamp = as_of_timestamp(as_of)
        inputs = clv_inputs(features, as_of)
        n = len(inputs)
        nothing = np.full(n, np.nan)
        published = self.published_
        p_alive = nothing.copy()
        # A one-time buyer's BG/NBD P(alive) is 1 by construction, not a number to act on.
        repeaters = inputs["x"].to_numpy(dtype=float) > 0  # x is NaN when not modelled
        if published["p_alive"] and repeaters.any():
            p_alive[repeaters] = self.bgf_.probability_alive(
                *(inputs[c].to_numpy(dtype=float)[repeaters] for c in ("x", "t_x", "T"))
            )
        orders_ok = published["expected_orders_90d"]
        next_days = self._next_order_days(inputs) if orders_ok else nothing
        next_at = pd.Series(
            stamp + pd.to_timedelta(np.round(next_days * 86_400.0), unit="s")
        ).astype("datetime64[us, UTC]")
        return pd.DataFrame(
            {
                "customer_id": inputs["customer_id"].to_numpy(),
                "p_alive": p_alive,
                "expected_orders_90d": self._expected(inputs, 90.0) if orders_ok else nothing,
                "expected_orders_365d": self._expected(inputs, 365.0) if orders_ok else nothing,
                "clv_365d": self._clv(inputs) if published["clv_365d"] else nothing,
                "expected_next_order_at": next_at.to_numpy(),
            },
            columns=list(OUTPUT_COLUMNS),
        )

    # ---- reporting and persistence ---------------------------------------------------

    @property
    def degenerate_reasons(self) -> list[str]:
        """What was degenerate in the maximum-likelihood fits (empty when sound)."""
        self._check()
        return list(self.degenerate_reasons_)

    @property
    def published(self) -> dict[str, bool]:
        """Which output columns carry values (False: the column is null for everyone)."""
        self._check()
        return dict(self.published_)

    @property
    def params(self) -> dict[str, Any]:
        """JSON-able parameters: the fits used, the settings, what was published."""
        self._check()
        return {
            "time_unit_days": TIME_UNIT_DAYS,
            "fitted_as_of": self.fitted_as_of_,
            "discount_rate": self.discount_rate_,
            "bg_nbd": dict(self.bgf_.params_),
            "bg_nbd_fit": self.fallback_["used"],
            "dropout_penalizer": self.fallback_["dropout_penalizer"],
            "bg_nbd_maximum_likelihood": dict(self.bgf_mle_.params_),
            "gamma_gamma": dict(self.ggf_.params_) if self.ggf_ is not None else None,
            "degenerate_reasons": list(self.degenerate_reasons_),
            "published": dict(self.published_),
        }

    @property
    def metrics(self) -> dict[str, Any]:
        """Fit diagnostics (in sample, not quality) and the out-of-time validation if run."""
        self._check()
        return {
            "fit": dict(self.fit_metrics_),
            "fallback": self.fallback_,
            "unpublished_reasons": dict(self.unpublished_reasons_),
            "validation": self.validation_,
        }

    def save(self, directory: Path) -> None:
        """Write the model as ``clv_model.json`` into an existing folder."""
        self._check()
        directory = Path(directory)
        if not directory.is_dir():
            raise FileNotFoundError(f"LifetimeValueModel.save: {directory} is not a folder")
        document = {
            "format": MODEL_FORMAT,
            "config": {
                "discount_rate": self.discount_rate,
                "fallback": self.fallback,
                "dropout_penalizers": list(self.dropout_penalizers),
                "max_penalty_cost": self.max_penalty_cost,
            },
            "fitted_as_of": self.fitted_as_of_,
            "discount_rate": self.discount_rate_,
            "time_unit_days": TIME_UNIT_DAYS,
            "bg_nbd": dict(self.bgf_.params_),
            "bg_nbd_maximum_likelihood": dict(self.bgf_mle_.params_),
            "gamma_gamma": dict(self.ggf_.params_) if self.ggf_ is not None else None,
            "fallback": self.fallback_,
            "degenerate_reasons": list(self.degenerate_reasons_),
            "published": dict(self.published_),
            "unpublished_reasons": dict(self.unpublished_reasons_),
            "fit_metrics": dict(self.fit_metrics_),
            "validation": self.validation_,
        }
        (directory / MODEL_FILE).write_text(json.dumps(document, indent=1, sort_keys=True))

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`.

        Raises:
            ValueError: when the file is not a model of this format.
        """
        refuse_unsafe_files(Path(directory), cls.kind)
        path = Path(directory) / MODEL_FILE
        document = json.loads(path.read_text())
        if document.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: format {document.get('format')!r} is not {MODEL_FORMAT}")
        if document.get("time_unit_days") != TIME_UNIT_DAYS:
            raise ValueError(f"{path}: time unit {document.get('time_unit_days')} days unsupported")
        config = document["config"]
        model = cls(
            discount_rate=config["discount_rate"],
            fallback=config["fallback"],
            dropout_penalizers=tuple(config["dropout_penalizers"]),
            max_penalty_cost=config["max_penalty_cost"],
        )
        model.fitted_as_of_ = document["fitted_as_of"]
        model.discount_rate_ = float(document["discount_rate"])
        model.bgf_ = BetaGeoFitter.from_params(document["bg_nbd"])
        model.bgf_mle_ = BetaGeoFitter.from_params(document["bg_nbd_maximum_likelihood"])
        gamma = document["gamma_gamma"]
        model.ggf_ = GammaGammaFitter.from_params(gamma) if gamma is not None else None
        model.fallback_ = document["fallback"]
        model.degenerate_reasons_ = list(document["degenerate_reasons"])
        model.published_ = dict(document["published"])
        model.unpublished_reasons_ = dict(document["unpublished_reasons"])
        model.fit_metrics_ = dict(document["fit_metrics"])
        model.validation_ = document["validation"]
        return model


def _fmt_params(params: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in params.items())
