"""The bounded log-parameter minimiser the fitters share, and their common base.

Every parameter of BG/NBD and Gamma-Gamma is positive, so the likelihoods are
optimised over log-parameters inside ``[-LOG_BOUND, LOG_BOUND]``; a parameter that
ends up on a bound means the likelihood kept improving towards 0 or infinity, which
the fitters report as a degenerate fit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
from scipy.optimize import minimize

#: Parameters live in ``[e^-12, e^12]`` ~ ``[6e-6, 1.6e5]``.
LOG_BOUND = 12.0
#: How close (in log units) to a bound counts as "on the bound".
BOUND_TOL = 1e-3

Objective = Callable[[np.ndarray], float]


def as_array(values: object) -> np.ndarray:
    """``values`` as a float array."""
    return np.asarray(values, dtype=float)


def on_bound(log_value: float) -> bool:
    """Whether a log-parameter sits on its optimisation bound."""
    return bool(abs(abs(log_value) - LOG_BOUND) < BOUND_TOL)


def minimise(
    objective: Objective, n_params: int, names: tuple[str, ...]
) -> tuple[dict[str, float], float, bool, np.ndarray]:
    """Minimise ``objective`` over log-parameters from a deterministic start of zeros.

    L-BFGS-B within the bounds, then a Nelder-Mead polish: with numerical gradients
    L-BFGS-B can stop a little short on the flat ridges of these likelihoods. An
    interior optimum polishes quickly; a likelihood that keeps rising towards a bound
    (a degenerate fit) would wander along the ridge for the whole budget, so a result
    on a bound is not polished.

    Returns:
        ``(params by name, objective at the optimum, converged, log-parameters)``.
    """
    bounds = [(-LOG_BOUND, LOG_BOUND)] * n_params
    result = minimize(
        objective,
        x0=np.zeros(n_params),
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-10},
    )
    if np.any(np.abs(np.abs(result.x) - LOG_BOUND) < BOUND_TOL):
        best, converged = result, bool(result.success)  # on a bound: nothing to polish
    else:
        polish = minimize(
            lambda z: objective(np.clip(z, -LOG_BOUND, LOG_BOUND)),
            x0=result.x,
            method="Nelder-Mead",
            options={"maxiter": 2_000, "xatol": 1e-10, "fatol": 1e-14},
        )
        best = polish if polish.fun <= result.fun else result
        converged = bool(result.success or polish.success)
    log_params = np.clip(best.x, -LOG_BOUND, LOG_BOUND)
    params = dict(zip(names, np.exp(log_params).tolist(), strict=True))
    return params, float(best.fun), converged, log_params


class LogParameterFitter:
    """What BG/NBD and Gamma-Gamma fitters share: named positive parameters.

    Follows scikit-learn conventions: the constructor only stores its arguments,
    ``fit`` returns ``self`` and learned attributes end in ``_``.

    Attributes:
        params_: Fitted parameters by name.
        log_params_: Their logs, in the order of :attr:`param_names`.
        converged_: Whether the optimiser reported success.
    """

    param_names: ClassVar[tuple[str, ...]] = ()

    params_: dict[str, float]
    log_params_: np.ndarray
    converged_: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Self:
        """A fitter with stored parameters (no data: fit diagnostics are not available)."""
        fitter = cls()
        fitter.params_ = {name: float(params[name]) for name in cls.param_names}
        fitter.log_params_ = np.log([fitter.params_[name] for name in cls.param_names])
        fitter.converged_ = True
        return fitter

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
