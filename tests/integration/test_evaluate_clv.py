"""``cva evaluate clv`` on the real Online Retail export: the figures the README quotes.

Protocol (see :mod:`cva_tasks.evaluation.clv`): fit on the production features as of
2011-06-10, predict each customer's counted orders and spend in [2011-06-10,
2011-12-10), compare with the actual orders, next to the naive baselines.

Measured (2,800 customers, 7,730 actual holdout orders): model MAE 1.758, Spearman
0.516, total 7,095; calibration-rate baseline MAE 1.685, Spearman 0.544, total 7,571;
rate-since-first-order baseline MAE 5.237, Spearman 0.387. The model beats the literal
"past rate since the first order" baseline by far and loses narrowly to repeating the
calibration count. ``ok`` judges the issue's baseline (each customer repeats their own
past rate), so it is True, and the output states the loss to the stronger heuristic; the
thresholds below hold these figures with a small margin, so a regression shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cva_tasks.evaluation import clv as evaluation
from cva_tasks.models.clv import MAX_PENALTY_COST


@pytest.fixture(scope="module")
def result(evaluate) -> dict:
    """The evaluation, run once for the module."""
    return evaluate(evaluation)


def test_protocol_and_data(result: dict, shared_data: Path) -> None:
    figures = result["figures"]
    assert result["horizon_days"] == 183
    assert figures["n_customers"] == 2800
    assert figures["actual_orders"] == 7730
    assert figures["actual_spend"] == pytest.approx(4_188_200, rel=1e-4)
    assert "holdout [2011-06-10, 2011-12-10) UTC = 183 days" in result["text"]


def test_model_fit_is_sound_and_everything_is_published(result: dict) -> None:
    params = result["params"]
    assert params["degenerate_reasons"] == []
    assert all(params["published"].values())
    assert params["bg_nbd_fit"] == "maximum_likelihood"
    bg = params["bg_nbd"]
    assert bg["r"] == pytest.approx(0.615, rel=0.02)
    assert bg["alpha"] == pytest.approx(42.3, rel=0.02)  # days
    assert bg["a"] == pytest.approx(0.0267, rel=0.05)
    assert bg["b"] == pytest.approx(3.02, rel=0.05)
    gg = params["gamma_gamma"]
    assert gg["q"] > 1  # finite mean spend


def test_model_accuracy_out_of_time(result: dict) -> None:
    figures = result["figures"]
    model, calibration, since_first = (
        figures[name] for name in ("model", "calibration_rate", "rate_since_first_order")
    )
    orders, spend = model["orders"], model["spend"]
    assert orders["mae"] <= 1.80
    assert orders["spearman"] >= 0.50
    assert orders["predicted_total"] == pytest.approx(figures["actual_orders"], rel=0.12)
    assert spend["mae"] <= 1_050
    assert spend["spearman"] >= 0.55
    assert figures["p_alive_auc_repeaters"] >= 0.67
    # far better than each customer repeating their rate since their first order
    assert orders["mae"] < since_first["orders"]["mae"]
    assert orders["spearman"] > since_first["orders"]["spearman"]
    assert spend["mae"] < since_first["spend"]["mae"]
    assert spend["spearman"] > since_first["spend"]["spearman"]
    assert result["verdicts"]["rate_since_first_order"] == {
        "mae_no_worse": True,
        "spearman_no_worse": True,
    }
    # within a narrow margin of repeating the calibration count (which it does not beat)
    assert orders["mae"] <= 1.06 * calibration["orders"]["mae"]
    assert orders["spearman"] >= calibration["orders"]["spearman"] - 0.04
    assert result["ok"] is True, "no worse than the issue's baseline (own past rate)"
    assert "WORSE on MAE and Spearman" in result["text"], "the stronger heuristic's win is shown"


def test_degenerate_fit_on_purchase_days_is_detected_and_not_published(result: dict) -> None:
    """Same-day orders merged: the fit the field notes describe (a -> 0, b huge)."""
    check = result["degeneracy_check"]
    mle = check["null"]["params"]
    assert mle["bg_nbd"]["a"] < 1e-3 and mle["bg_nbd"]["b"] > 1e3
    reasons = " ".join(mle["degenerate_reasons"])
    assert "dropout probability ~0" in reasons and "P(alive) is nearly flat" in reasons
    assert check["mle_p_alive_std"] < 1e-6
    for policy in ("null", "penalized"):
        published = check[policy]["published"]
        assert published["p_alive"] is False, policy
        assert published["expected_orders_90d"] and published["clv_365d"], policy
    # The first sound penalized fit exists but the likelihood-ratio test rejects it...
    first = check["penalized"]["first_sound_penalized"]
    assert first["log_likelihood_cost"] > MAX_PENALTY_COST
    assert "the data reject it" in check["penalized"]["fallback"]["outcome"]
    # ...although its P(alive) ranks holdout activity better than the flat one does.
    assert first["p_alive_std"] >= 0.01
    assert first["p_alive_auc_repeaters"] > check["mle_p_alive_auc_repeaters"]
