"""BG/NBD model of repeat purchasing.

Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to
the Pareto/NBD Model", Marketing Science 24(2). The likelihood is computed in logs
(``gammaln``, ``betaln``, ``logaddexp``) so large frequencies or ages do not overflow.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

from cva_tasks.models.base import NotEnoughData
from cva_tasks.models.clv.optimise import (
    LOG_BOUND,
    LogParameterFitter,
    Objective,
    as_array,
    minimise,
    on_bound,
)

#: Below this ``a`` nobody ever drops out: a degenerate fit.
A_MIN = 1e-3
#: Above this ``b`` the dropout probability is pinned to ~0: a degenerate fit.
B_MAX = 1e3
#: A P(alive) flatter than this over the fitted customers says nothing per customer.
ALIVE_STD_MIN = 0.01


class BetaGeoFitter(LogParameterFitter):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    Purchases follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
    after each repeat purchase the customer drops out with probability
    ``p ~ Beta(a, b)``.

    Args:
        penalizer: L2 penalty on the parameters, added to the mean negative
            log-likelihood (0 gives the maximum-likelihood estimate).
        dropout_penalizer: Penalty ``lambda * (log(a)^2 + log(b)^2)`` added to the
            mean negative log-likelihood: a log-normal prior centred on ``a = b = 1``
            (a uniform dropout probability) on the dropout part only. Unlike the L2
            penalty it is free of the time unit and leaves the purchase-rate part
            ``(r, alpha)`` alone; it keeps a fit whose likelihood runs off to
            ``a -> 0`` (nobody drops out) at a finite, interior point.

    Attributes:
        params_: Fitted ``{"r", "alpha", "a", "b"}``.
        log_likelihood_: Total log-likelihood at the optimum (without penalty).
        converged_: Whether the optimiser reported success.
        rate_converged_: Whether the purchase rate ``(r, alpha)`` converged: the same as
            ``converged_``, or, when the full fit did not, the rate settled with the
            dropout held (:meth:`_settle_rate`).
    """

    param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    rate_converged_: bool

    def __init__(self, penalizer: float = 0.0, dropout_penalizer: float = 0.0) -> None:
        self.penalizer = penalizer
        self.dropout_penalizer = dropout_penalizer

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        fitter = super().from_params(params)
        fitter.rate_converged_ = True
        return fitter

    @staticmethod
    def _log_likelihood(
        params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """Per-customer log-likelihood (eq. 6 of the paper), computed in logs."""
        r, alpha, a, b = params
        a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        a2 = betaln(a, b + x) - betaln(a, b)
        a3 = -(r + x) * np.log(alpha + T)
        repeat = x > 0
        # log(a / (b + x - 1)) only exists for repeaters; use a safe dummy otherwise.
        a4 = np.where(
            repeat,
            np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
        return a1 + a2 + np.logaddexp(a3, a4)

    def fit(self, frequency: object, recency: object, T: object) -> Self:
        """Fit by maximum likelihood.

        Args:
            frequency: Repeat-purchase counts ``x`` (the first purchase excluded).
            recency: Time of the last repeat purchase ``t_x`` since the first
                purchase (0 when ``x == 0``).
            T: Age of each customer: time from first purchase to the end of
                calibration, in the same unit as ``recency``.

        Returns:
            The fitted model.

        Raises:
            NotEnoughData: with no customer to fit on.
            ValueError: for inputs of unequal length or out of range.
        """
        x, t_x, age = as_array(frequency), as_array(recency), as_array(T)
        if not (x.shape == t_x.shape == age.shape):
            raise ValueError("frequency, recency and T must be non-empty and of equal length")
        if x.size == 0:
            raise NotEnoughData("BG/NBD: no customer to fit on")
        if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > age + 1e-9):
            raise ValueError("need frequency >= 0 and 0 <= recency <= T")
        n = x.size

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = self._log_likelihood(params, x, t_x, age).sum()
            value = -ll / n + self.penalizer * float(np.sum(params**2))
            value += self.dropout_penalizer * float(log_params[2] ** 2 + log_params[3] ** 2)
            return float(value) if np.isfinite(value) else 1e300

        params, _, converged, log_params = minimise(objective, 4, self.param_names)
        self.rate_converged_ = converged
        if not converged:
            log_params, self.rate_converged_ = self._settle_rate(objective, log_params)
            params = dict(zip(self.param_names, np.exp(log_params).tolist(), strict=True))
        self.params_ = params
        self.log_params_ = log_params
        self.log_likelihood_ = float(
            self._log_likelihood(np.array(list(params.values())), x, t_x, age).sum()
        )
        self.converged_ = converged
        self.n_customers_ = n
        self._fit_data = (x, t_x, age)
        return self

    @staticmethod
    def _settle_rate(objective: Objective, log_params: np.ndarray) -> tuple[np.ndarray, bool]:
        """Optimise the purchase rate ``(r, alpha)`` with the dropout ``(a, b)`` held.

        When the likelihood keeps rising towards ``a -> 0`` (nobody drops out), the
        full optimiser ends somewhere on a nearly flat ridge in ``b`` and may report
        failure, or success, by rounding alone (measured: ``docs/models/clv.md``). The
        rate part is well determined there (it is the no-dropout NBD limit), so it is
        settled on its own; its convergence decides whether expected orders can be
        published, while P(alive) stays judged by the full fit.

        Returns:
            The log-parameters (``r`` and ``alpha`` settled when that improved the
            objective) and whether the restricted optimiser converged.
        """
        held = log_params.copy()

        def restricted(log_rate: np.ndarray) -> float:
            full = held.copy()
            full[:2] = log_rate
            return objective(full)

        result = minimize(
            restricted,
            x0=held[:2],
            method="L-BFGS-B",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * 2,
            options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
        )
        if result.fun <= objective(held):
            held[:2] = result.x
        return held, bool(result.success)

    def _log_odds_dead(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """log of ``a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x)`` for repeaters, -inf otherwise."""
        p = self.params_
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        repeat = x > 0
        safe = np.where(repeat, b + x - 1, 1.0)
        value = np.log(a) - np.log(safe) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
        return np.where(repeat, value, -np.inf)

    def probability_alive(self, frequency: object, recency: object, T: object) -> np.ndarray:
        """P(customer still active at ``T`` | x, t_x, T) (eq. 13 of the paper's appendix).

        Args:
            frequency: Repeat-purchase counts.
            recency: Time of the last repeat purchase.
            T: Customer ages.

        Returns:
            Probabilities; exactly 1 for customers without repeat purchases.
        """
        self._check_fitted()
        x, t_x, age = as_array(frequency), as_array(recency), as_array(T)
        return expit(-self._log_odds_dead(x, t_x, age))

    def expected_purchases(
        self, t: float | np.ndarray, frequency: object, recency: object, T: object
    ) -> np.ndarray:
        """Conditional expected number of purchases in ``(T, T + t]`` (eq. 10 of the paper).

        Args:
            t: Length of the forecast period (scalar or per customer).
            frequency: Repeat-purchase counts.
            recency: Time of the last repeat purchase.
            T: Customer ages.

        Returns:
            Expected purchase counts per customer.
        """
        self._check_fitted()
        p = self.params_
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        if abs(a - 1.0) < 1e-7:
            # The formula is 0/0 at a = 1 (finite limit); step off it by a hair.
            a = 1.0 + 1e-7
        x, t_x, age = as_array(frequency), as_array(recency), as_array(T)
        t = as_array(t)
        if np.any(t < 0):
            raise ValueError("t must be >= 0")
        z = t / (alpha + age + t)
        log_ratio = (r + x) * (np.log(alpha + age) - np.log(alpha + age + t))
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        # In logs where the series is positive (it can be large); when a + b < 1 the
        # third argument of 2F1 is negative for x = 0 and the value may be <= 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            log_hyp = np.log(hyp)
        bracket = np.where(hyp > 0, -np.expm1(log_ratio + log_hyp), 1.0 - np.exp(log_ratio) * hyp)
        factor = (a + b + x - 1) / (a - 1)
        return factor * bracket * expit(-self._log_odds_dead(x, t_x, age))

    def expected_purchases_unconditional(self, t: float | np.ndarray) -> np.ndarray:
        """E[X(t)]: expected repeat purchases in ``(0, t]`` of a new customer (eq. 9).

        Args:
            t: Time since the first purchase (scalar or array).

        Returns:
            Expected repeat-purchase counts.
        """
        self._check_fitted()
        p = self.params_
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        t = as_array(t)
        log_ratio = r * (np.log(alpha) - np.log(alpha + t))
        hyp = hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * -np.expm1(log_ratio + np.log(hyp))

    def degenerate_reasons(self) -> list[str]:
        """Reasons the fit should not be published, empty when it looks sound.

        Flags a parameter on its optimisation bound, ``a < 1e-3`` (nobody ever
        drops out), ``b > 1e3`` (dropout probability pinned to ~0) and a nearly
        constant P(alive) over the fitted customers (std < 0.01), which makes
        every per-customer number the same meaningless value.

        Returns:
            Human-readable reasons; an empty list means not degenerate.
        """
        self._check_fitted()
        reasons: list[str] = []
        for name, log_value in zip(self.param_names, self.log_params_, strict=True):
            if on_bound(log_value):
                reasons.append(
                    f"{name}={self.params_[name]:.3g} is at its optimisation bound "
                    f"(e^±{LOG_BOUND:g})"
                )
        if self.params_["a"] < A_MIN:
            reasons.append(f"a={self.params_['a']:.3g} < {A_MIN:g}: dropout probability ~0")
        if self.params_["b"] > B_MAX:
            reasons.append(f"b={self.params_['b']:.3g} > {B_MAX:g}: dropout probability ~0")
        if not self.converged_:
            reasons.append("the optimiser did not converge")
        alive = self.probability_alive(*self._fit_data)
        if float(np.std(alive)) < ALIVE_STD_MIN:
            reasons.append(
                f"P(alive) is nearly flat over the fitted customers "
                f"(std {float(np.std(alive)):.2g} < {ALIVE_STD_MIN:g})"
            )
        return reasons

    def rate_reasons(self) -> list[str]:
        """Reasons the purchase-rate part ``(r, alpha)`` of the fit cannot be used."""
        reasons = []
        for name in ("r", "alpha"):
            if on_bound(self.log_params_[self.param_names.index(name)]):
                reasons.append(f"{name}={self.params_[name]:.3g} is at its optimisation bound")
        if not self.rate_converged_:
            reasons.append("the optimiser did not converge on the purchase rate")
        return reasons
