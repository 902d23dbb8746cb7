"""Lifetime-value models with closed-form likelihoods: BG/NBD, Gamma-Gamma, CLV.

* BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2).
* Gamma-Gamma: Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves
  for Customer Base Analysis", Journal of Marketing Research 42(4); the
  likelihood as written in Fader & Hardie's note "The Gamma-Gamma Model of
  Monetary Value" (2013).

The fitters follow scikit-learn conventions: the constructor only stores its
arguments, ``fit`` returns ``self`` and learned attributes end in ``_``. All
likelihoods are computed in logs (``gammaln``, ``betaln``, ``logaddexp``) so
large frequencies or ages do not overflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, expit, gammaln, hyp2f1

# Optimisation happens on log-parameters inside these bounds; a parameter that
# ends up on a bound means the likelihood kept improving towards 0 or infinity.
LOG_BOUND = 12.0  # parameters live in [e^-12, e^12] ~ [6e-6, 1.6e5]
_BOUND_TOL = 1e-3
A_MIN = 1e-3
B_MAX = 1e3
ALIVE_STD_MIN = 0.01

CDNOW_CALIBRATION_START = pd.Timestamp("1997-01-01")
CDNOW_CALIBRATION_END = pd.Timestamp("1997-09-30")
CDNOW_HOLDOUT_END = pd.Timestamp("1998-06-30")


def _as_array(values: object) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _check_fitted(model: object) -> None:
    if not hasattr(model, "params_"):
        raise RuntimeError(f"{type(model).__name__} is not fitted: call fit() first")


def _minimise(
    objective, n_params: int, names: tuple[str, ...]
) -> tuple[dict[str, float], float, bool, np.ndarray]:
    """Minimise ``objective`` over log-parameters from a deterministic start of zeros."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * n_params
    result = minimize(
        objective,
        x0=np.zeros(n_params),
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
    )
    # Polish with Nelder-Mead: L-BFGS-B with numerical gradients can stop a
    # little short on the flat ridges of these likelihoods.
    polish = minimize(
        lambda z: objective(np.clip(z, -LOG_BOUND, LOG_BOUND)),
        x0=result.x,
        method="Nelder-Mead",
        options={"maxiter": 20_000, "xatol": 1e-10, "fatol": 1e-14},
    )
    best = polish if polish.fun <= result.fun else result
    log_params = np.clip(best.x, -LOG_BOUND, LOG_BOUND)
    converged = bool(result.success or polish.success)
    params = dict(zip(names, np.exp(log_params).tolist(), strict=True))
    return params, float(best.fun), converged, log_params


class BetaGeoFitter:
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    Purchases follow a Poisson process with rate ``lambda ~ Gamma(r, alpha)``;
    after each repeat purchase the customer drops out with probability
    ``p ~ Beta(a, b)``.

    Args:
        penalizer: L2 penalty on the parameters, added to the mean negative
            log-likelihood (0 gives the maximum-likelihood estimate).

    Attributes:
        params_: Fitted ``{"r", "alpha", "a", "b"}``.
        log_likelihood_: Total log-likelihood at the optimum (without penalty).
        converged_: Whether the optimiser reported success.
    """

    param_names = ("r", "alpha", "a", "b")

    def __init__(self, penalizer: float = 0.0) -> None:
        self.penalizer = penalizer

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

    def fit(self, frequency: object, recency: object, T: object) -> BetaGeoFitter:
        """Fit by maximum likelihood.

        Args:
            frequency: Repeat-purchase counts ``x`` (the first purchase excluded).
            recency: Time of the last repeat purchase ``t_x`` since the first
                purchase (0 when ``x == 0``).
            T: Age of each customer: time from first purchase to the end of
                calibration, in the same unit as ``recency``.

        Returns:
            The fitted model.
        """
        x, t_x, age = _as_array(frequency), _as_array(recency), _as_array(T)
        if not (x.shape == t_x.shape == age.shape) or x.size == 0:
            raise ValueError("frequency, recency and T must be non-empty and of equal length")
        if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > age + 1e-9):
            raise ValueError("need frequency >= 0 and 0 <= recency <= T")
        n = x.size

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = self._log_likelihood(params, x, t_x, age).sum()
            value = -ll / n + self.penalizer * float(np.sum(params**2))
            return float(value) if np.isfinite(value) else 1e300

        params, _, converged, log_params = _minimise(objective, 4, self.param_names)
        self.params_ = params
        self.log_params_ = log_params
        self.log_likelihood_ = float(
            self._log_likelihood(np.array(list(params.values())), x, t_x, age).sum()
        )
        self.converged_ = converged
        self.n_customers_ = n
        self._fit_data = (x, t_x, age)
        return self

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
        _check_fitted(self)
        x, t_x, age = _as_array(frequency), _as_array(recency), _as_array(T)
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
        _check_fitted(self)
        p = self.params_
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        x, t_x, age = _as_array(frequency), _as_array(recency), _as_array(T)
        t = _as_array(t)
        if np.any(t < 0):
            raise ValueError("t must be >= 0")
        z = t / (alpha + age + t)
        log_ratio = (r + x) * (np.log(alpha + age) - np.log(alpha + age + t))
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, z)
        bracket = -np.expm1(log_ratio + np.log(hyp))
        factor = (a + b + x - 1) / (a - 1)
        return factor * bracket * expit(-self._log_odds_dead(x, t_x, age))

    def expected_purchases_unconditional(self, t: float | np.ndarray) -> np.ndarray:
        """E[X(t)]: expected repeat purchases in ``(0, t]`` of a new customer (eq. 9).

        Args:
            t: Time since the first purchase (scalar or array).

        Returns:
            Expected repeat-purchase counts.
        """
        _check_fitted(self)
        p = self.params_
        r, alpha, a, b = p["r"], p["alpha"], p["a"], p["b"]
        t = _as_array(t)
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
        _check_fitted(self)
        reasons: list[str] = []
        for name, log_value in zip(self.param_names, self.log_params_, strict=True):
            if abs(abs(log_value) - LOG_BOUND) < _BOUND_TOL:
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


class GammaGammaFitter:
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

    param_names = ("p", "q", "v")

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

    def fit(self, frequency: object, monetary_value: object) -> GammaGammaFitter:
        """Fit on customers with at least one transaction.

        Args:
            frequency: Number of transactions whose values are averaged.
            monetary_value: Mean value of those transactions.

        Returns:
            The fitted model.
        """
        x, m = _as_array(frequency), _as_array(monetary_value)
        if x.shape != m.shape:
            raise ValueError("frequency and monetary_value must have equal length")
        keep = x > 0
        x, m = x[keep], m[keep]
        if x.size == 0:
            raise ValueError("no customer with frequency > 0")
        if np.any(m <= 0):
            raise ValueError("monetary_value must be > 0 for customers with frequency > 0")
        n = x.size

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            value = -self._log_likelihood(params, x, m).sum() / n + self.penalizer * float(
                np.sum(params**2)
            )
            return float(value) if np.isfinite(value) else 1e300

        params, _, converged, log_params = _minimise(objective, 3, self.param_names)
        self.params_ = params
        self.log_params_ = log_params
        self.log_likelihood_ = float(
            self._log_likelihood(np.array(list(params.values())), x, m).sum()
        )
        self.converged_ = converged
        return self

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
        _check_fitted(self)
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        if q <= 1:
            raise ValueError(f"q={q:.3g} <= 1: the population mean spend is infinite")
        x, m = _as_array(frequency), _as_array(monetary_value)
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


def cdnow_summary(path: str | Path) -> pd.DataFrame:
    """Calibration/holdout summary of the CDNOW sample with the BG/NBD paper's protocol.

    Calibration is 1997-01-01..1997-09-30 (39 weeks), holdout the next 39 weeks
    (1997-10-01..1998-06-30), time unit one week. Purchases on the same day are
    one transaction; the first transaction of a customer is not a repeat.
    ``T`` and ``recency`` are measured in days to 1997-09-30 (not 10-01)
    divided by 7: a customer first seen on 1997-01-01 gets ``T = 272/7 =
    38.86``, the value in Fader & Hardie's published data set, and this
    reproduces the paper's estimates.

    Args:
        path: ``CDNOW_sample.txt`` (no header; customer id, id in the full set,
            date YYYYMMDD, number of CDs, dollar value).

    Returns:
        One row per customer (index ``customer_id``) with ``frequency``,
        ``recency``, ``T``, ``monetary_value`` (mean value of calibration repeat
        transactions, 0 without any), ``frequency_holdout`` and
        ``duration_holdout`` (39.0).
    """
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["customer_id", "full_id", "date", "cds", "value"],
        dtype={"customer_id": "int64", "full_id": "int64", "date": "str"},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    daily = raw.groupby(["customer_id", "date"], as_index=False)["value"].sum()
    daily = daily.sort_values(["customer_id", "date"])
    first = daily.groupby("customer_id")["date"].transform("min")
    daily = daily[first >= CDNOW_CALIBRATION_START]
    first = first.loc[daily.index]
    daily = daily[first <= CDNOW_CALIBRATION_END]
    first = first.loc[daily.index]

    calibration = daily[daily["date"] <= CDNOW_CALIBRATION_END]
    holdout = daily[(daily["date"] > CDNOW_CALIBRATION_END) & (daily["date"] <= CDNOW_HOLDOUT_END)]
    cal_first = first.loc[calibration.index]
    repeats = calibration[calibration["date"] > cal_first]

    week = pd.Timedelta(days=7)
    first_by_customer = calibration.groupby("customer_id")["date"].min()
    summary = pd.DataFrame(index=first_by_customer.index)
    summary["frequency"] = repeats.groupby("customer_id").size()
    summary["frequency"] = summary["frequency"].fillna(0).astype(float)
    last = calibration.groupby("customer_id")["date"].max()
    summary["recency"] = (last - first_by_customer) / week
    summary["T"] = (CDNOW_CALIBRATION_END - first_by_customer) / week
    summary["monetary_value"] = repeats.groupby("customer_id")["value"].mean()
    summary["monetary_value"] = summary["monetary_value"].fillna(0.0)
    summary["frequency_holdout"] = holdout.groupby("customer_id").size()
    summary["frequency_holdout"] = summary["frequency_holdout"].fillna(0).astype(float)
    summary["duration_holdout"] = (CDNOW_HOLDOUT_END - CDNOW_CALIBRATION_END).days / 7
    summary.index.name = "customer_id"
    return summary
