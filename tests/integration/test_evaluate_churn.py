"""``cva evaluate churn`` on the real Online Retail export (issue 5, section 4).

Protocol (see :mod:`cva_tasks.evaluation.churn`): 8 snapshots 2011-02-23..2011-06-01
every 14 days (labels known by 2011-08-30) train, tune, calibrate and choose; the test
is every customer active before 2011-09-10, churned = no counted order in
[2011-09-10, 2011-12-09).

Measured (3,370 test customers, churn rate 0.431; seed 0):

=============================  ======  ========  ======  ========
row                            AUC     log loss  Brier   lift@10%
=============================  ======  ========  ======  ========
days since last order          0.6830  0.6668    0.2372  1.523
BG/NBD P(no order in 90 days)  0.7364  0.6231    0.2178  1.585
logistic regression, classic   0.7372  0.5932    0.2058  1.592
logistic regression (chosen)   0.7460  0.5897    0.2044  1.592
HistGradientBoosting           0.7411  0.5977    0.2070  1.613
=============================  ======  ========  ======  ========

The issue's goal (AUC >= 0.76 and log loss < 0.58) is not reached: ``ok`` is False and
the test says so. The thresholds hold these figures with a small margin, upper bounds
included, so a leak of the test period shows as surely as a regression.
"""

from __future__ import annotations

import pytest

from cva_tasks.evaluation import churn as evaluation


@pytest.fixture(scope="module")
def result(evaluate) -> dict:
    """The evaluation, run once for the module."""
    return evaluate(evaluation)


def test_protocol_and_data(result: dict) -> None:
    protocol = result["protocol"]
    assert protocol["test_as_of"] == "2011-09-10"
    assert protocol["train_snapshots"][-1] == "2011-06-01"
    assert protocol["train_labels_known_by"] == "2011-08-30"
    assert protocol["windows"]["validation_label_window"] == ["2011-06-01", "2011-08-30"]
    assert result["test_customers"] == 3370
    assert result["test_churn_rate"] == pytest.approx(0.4306, abs=1e-4)
    assert "churned = no counted order in [2011-09-10, 2011-12-09)" in result["text"]
    for row in result["rows"].values():
        assert row["n"] == 3370


def test_baselines_reproduce_the_issue(result: dict) -> None:
    rows = result["rows"]
    # The issue's quick run: 0.684 recency, 0.734 BG/NBD, 0.736 classic LR (0.595).
    assert 0.675 <= rows["days_since_last_order"]["auc"] <= 0.69
    assert 0.728 <= rows["bgnbd_p_no_order"]["auc"] <= 0.745
    assert 0.73 <= rows["logistic_regression_classic"]["auc"] <= 0.745
    assert 0.585 <= rows["logistic_regression_classic"]["log_loss"] <= 0.60


def test_chosen_model_beats_every_baseline(result: dict) -> None:
    rows = result["rows"]
    chosen = rows["chosen"]
    assert result["chosen"] in ("logistic_regression", "hist_gradient_boosting")
    assert 0.742 <= chosen["auc"] <= 0.755
    assert 0.582 <= chosen["log_loss"] <= 0.595
    assert chosen["brier"] <= 0.206
    assert chosen["top_decile_lift"] >= 1.55
    for name in ("days_since_last_order", "bgnbd_p_no_order", "logistic_regression_classic"):
        assert chosen["auc"] > rows[name]["auc"], name
        assert chosen["log_loss"] < rows[name]["log_loss"], name
    assert all(result["beats"].values())
    # The other family is reported too, and holds its own against the baselines.
    other = next(
        f for f in ("logistic_regression", "hist_gradient_boosting") if f != result["chosen"]
    )
    assert rows[other]["auc"] > rows["logistic_regression_classic"]["auc"]


def test_goal_is_reported_honestly(result: dict) -> None:
    """The issue's goal is missed on this protocol; ``ok`` and the text must say so."""
    goal = result["goal"]
    chosen = result["rows"]["chosen"]
    assert goal["reached"]["auc"] == (chosen["auc"] >= 0.76)
    assert goal["reached"]["log_loss"] == (chosen["log_loss"] < 0.58)
    assert result["ok"] is all(goal["reached"].values())
    assert result["ok"] is False
    assert "NOT REACHED" in result["text"]


def test_validation_is_held_out_and_calibration_table_is_printed(result: dict) -> None:
    windows = result["protocol"]["windows"]
    assert windows["calibration_snapshot"] < windows["validation_snapshot"]
    assert max(windows["fit_snapshots"]) < windows["calibration_snapshot"]
    assert windows["rows"]["validation"] > 700
    for figures in result["validation"].values():
        assert 0.75 <= figures["auc"] <= 0.80
    table = result["rows"]["chosen"]["calibration"]
    assert sum(b["n"] for b in table) == 3370 and len(table) >= 8
    assert "calibration of the chosen model on the test" in result["text"]


def test_ceiling_explains_the_miss_and_stays_apart(result: dict) -> None:
    """Cross-validation inside the test snapshot: printed as a diagnostic, never a row.

    Measured: 0.7500 / 0.7496 on the model's features, 0.7537 at best with 25 more;
    0.7462 / 0.7500 / 0.7505 fitted on 50% / 80% / 90% of the test's customers.
    """
    ceiling = result["ceiling"]
    assert set(ceiling) == {
        f"{features}/{family}"
        for features in ("model_features", "model_features_plus_extras")
        for family in ("logistic_regression", "hist_gradient_boosting")
    }
    for name, figures in ceiling.items():
        assert 0.74 <= figures["auc"] < 0.76, name
        assert figures["n_features"] >= 20
    extras = ceiling["model_features_plus_extras/logistic_regression"]
    assert extras["n_features"] > ceiling["model_features/logistic_regression"]["n_features"]
    curve = ceiling["model_features/logistic_regression"]["auc_by_training_share"]
    assert sorted(curve) == [0.5, 0.8, 0.9]
    assert abs(curve[0.9] - curve[0.8]) < 0.005  # more rows of the same kind: no lift
    # The chosen model is judged out of time; the diagnostic never enters the table.
    assert not set(ceiling) & set(result["rows"])
    assert "ceiling (NOT a result)" in result["text"]
    assert result["rows"]["chosen"]["auc"] <= max(c["auc"] for c in ceiling.values())
    # Knowing the test's churn rate (no model can) would still leave log loss >= 0.58.
    shifted = result["chosen_at_test_rate"]
    assert shifted["log_odds_shift"] < 0  # the season lowered the churn rate
    assert 0.578 <= shifted["log_loss"] <= result["rows"]["chosen"]["log_loss"]
