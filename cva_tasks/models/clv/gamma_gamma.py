"""Gamma-Gamma model of spend per transaction, and the discounted CLV it values.

Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
Analysis", Journal of Marketing Research 42(4); the likelihood as written in Fader &
Hardie's note "The Gamma-Gamma Model of Monetary Value" (2013), computed in logs.
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
from scipy.special import gammaln

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.clv.beta_geo import BetaGeoFitter
from cva_tasks.models.clv.optimise import LogParameterFitter, as_array, minimise, on_bound


class GammaGammaFitter(LogParameterFitter):
    """Gamma-Gamma model of spend per transaction.

    Each transaction value is ``Gamma(p, nu)`` with ``nu ~ Gamma(q, v)``
    across customers; the model assumes spend is independent of frequency.

    Args:
        penalizer: L2 penalty on the parameters, added to the mean negative
            log-likelihood.

    Attributes:
        params_: Fitted ``{"p", "q", "v"}``.
        log_likelihood_: Total log-likelihood at the optimum (without penalty).
        converged_: Whether the optimiser reported success.
    """

    param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

    @staticmethod
    def _log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
        p, q, v = params
        px = p * x
        return (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(v)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(v + m * x)
        )

    def fit(self, frequency: object, monetary_value: object) -> Self:
        """Fit on customers with at least one transaction.

        Args:
            frequency: Number of transactions whose values are averaged.
            monetary_value: Mean value of those transactions.

        Returns:
            The fitted model.

        Raises:
            NotEnoughData: with no customer with ``frequency > 0``.
            ValueError: for inputs of unequal length or a non-positive value.
        """
        x, m = as_array(frequency), as_array(monetary_value)
        if x.shape != m.shape:
            raise ValueError("frequency and monetary_value must have equal length")
        keep = x > 0
        x, m = x[keep], m[keep]
        if x.size == 0:
            raise NotEnoughData("no customer with frequency > 0")
        if np.any(m <= 0):
            raise ValueError("monetary_value must be > 0 for customers with frequency > 0")
        n = x.size

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            value = -self._log_likelihood(params, x, m).sum() / n + self.penalizer * float(
                np.sum(params**2)
            )
            return float(value) if np.isfinite(value) else 1e300

        params, _, converged, log_params = minimise(objective, 3, self.param_names)
        self.params_ = params
        self.log_params_ = log_params
        self.log_likelihood_ = float(
            self._log_likelihood(np.array(list(params.values())), x, m).sum()
        )
        self.converged_ = converged
        return self

    def degenerate_reasons(self) -> list[str]:
        """Reasons the fit cannot value spend (a bound, ``q <= 1``, no convergence)."""
        self._check_fitted()
        reasons = []
        for name, log_value in zip(self.param_names, self.log_params_, strict=True):
            if on_bound(log_value):
                reasons.append(f"{name}={self.params_[name]:.3g} is at its optimisation bound")
        if self.params_["q"] <= 1:
            reasons.append(f"q={self.params_['q']:.3g} <= 1: the mean spend per order is infinite")
        if not self.converged_:
            reasons.append("the optimiser did not converge")
        return reasons

    def conditional_expected_average_profit(
        self, frequency: object, monetary_value: object
    ) -> np.ndarray:
        """E[spend per transaction | x, mean m]: a weighted mean of m and the population mean.

        Args:
            frequency: Transaction counts (0 gives the population mean).
            monetary_value: Observed mean spend (ignored where frequency is 0).

        Returns:
            Expected spend per transaction.
        """
        self._check_fitted()
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        if q <= 1:
            raise ValueError(f"q={q:.3g} <= 1: the population mean spend is infinite")
        x, m = as_array(frequency), as_array(monetary_value)
        m = np.where(x > 0, m, 0.0)
        population_mean = p * v / (q - 1)
        weight = (q - 1) / (p * x + q - 1)
        return weight * population_mean + (1 - weight) * m


def customer_lifetime_value(
    bgf: BetaGeoFitter,
    ggf: GammaGammaFitter,
    frequency: object,
    recency: object,
    T: object,
    monetary_value: object,
    months: int = 12,
    discount_rate_monthly: float = 0.01,
    time_unit_days: float = 7.0,
) -> np.ndarray:
    """Discounted customer lifetime value over the next ``months`` months.

    For month ``i`` the expected purchases are ``E[Y(i)] - E[Y(i-1)]`` (a month
    is 365.25 / 12 days, converted to the model's time unit), valued at the
    Gamma-Gamma expected spend and discounted by ``(1 + d) ** i``.

    Args:
        bgf: Fitted BG/NBD model.
        ggf: Fitted Gamma-Gamma model.
        frequency: Repeat-purchase counts.
        recency: Time of the last repeat purchase (model time unit).
        T: Customer ages (model time unit).
        monetary_value: Mean spend per repeat transaction.
        months: Horizon in months.
        discount_rate_monthly: Monthly discount rate ``d``.
        time_unit_days: Length of the model's time unit in days (7 for weeks).

    Returns:
        CLV per customer.
    """
    if months < 0:
        raise ValueError("months must be >= 0")
    spend = ggf.conditional_expected_average_profit(frequency, monetary_value)
    month_units = (365.25 / 12) / time_unit_days
    clv = np.zeros_like(spend, dtype=float)
    previous = bgf.expected_purchases(0.0, frequency, recency, T)
    for i in range(1, months + 1):
        cumulative = bgf.expected_purchases(i * month_units, frequency, recency, T)
        clv += (cumulative - previous) * spend / (1 + discount_rate_monthly) ** i
        previous = cumulative
    return clv
