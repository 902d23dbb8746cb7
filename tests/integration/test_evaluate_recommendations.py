"""``cva evaluate recommendations`` on the real Online Retail export (issue 6, section 3).

Protocol (see :mod:`cva_tasks.evaluation.recommendations`): fit on the purchases
before 2011-11-01, recommend 10 items each customer had not bought, and compare with
the items they bought for the first time from 2011-11-01 to the end of the export
(customers with a purchase in both periods and at least one new item).

Measured (1,449 customers, 33,453 new (customer, item) pairs, 3,607 items; seed 0):
NDCG@10 0.0377 all-time bestsellers, 0.0779 last-30-days bestsellers, 0.0946
item-based CF, 0.1194 ALS (chosen on the October validation window, 1.53 x the recent
bestsellers); ablations 0.0846 item-CF without the trend blend, 0.1025 ALS without it,
0.1002 ALS on raw line counts (the issue's reference setup gave 0.100). The thresholds
hold these figures with a small margin, upper bounds included, so a leak of the test
period shows as surely as a regression.
"""

from __future__ import annotations

import pytest

from cva_tasks.evaluation import recommendations as evaluation


@pytest.fixture(scope="module")
def result(evaluate) -> dict:
    """The evaluation, run once for the module."""
    return evaluate(evaluation)


def ndcg(result: dict, row: str) -> float:
    return result["models"][row]["ndcg_at_10"]


def test_protocol_and_data(result: dict) -> None:
    assert result["split"] == "2011-11-01"
    assert result["test_customers"] == 1449
    assert result["test_new_items"] == 33453
    assert result["catalogue_items"] == 3607
    for row in result["models"].values():
        assert row["customers"] == 1449
    text = result["text"]
    assert "train: purchases before 2011-11-01" in text
    assert "had not bought before" in text
    assert "already-bought items excluded" in text


def test_baselines_reproduce_the_issue_reference(result: dict) -> None:
    assert ndcg(result, "bestsellers_all_time") == pytest.approx(0.038, abs=0.002)
    assert ndcg(result, "bestsellers_recent") == pytest.approx(0.078, abs=0.002)
    assert ndcg(result, "als_raw_counts") == pytest.approx(0.100, abs=0.004)


def test_models_hold_their_figures(result: dict) -> None:
    assert 0.090 <= ndcg(result, "item_cf") <= 0.100
    assert 0.113 <= ndcg(result, "als") <= 0.126
    assert 0.080 <= ndcg(result, "item_cf_no_trend") <= 0.090
    assert 0.097 <= ndcg(result, "als_no_trend") <= 0.108
    als = result["models"]["als"]
    assert als["precision_at_10"] >= 0.092
    assert als["recall_at_10"] >= 0.064
    assert als["map_at_10"] >= 0.056
    # Personal lists spread over the catalogue; a bestseller list cannot.
    assert (
        als["coverage_at_10"]
        >= 0.15
        > 10 * result["models"]["bestsellers_recent"]["coverage_at_10"]
    )
    for row in result["models"].values():
        assert row["fit_seconds"] < 60


def test_goal_chosen_out_of_time_beats_every_row(result: dict) -> None:
    # The choice is made on the validation window before the split, not on the test.
    validation = result["validation"]
    assert validation["validation"]["end"].startswith("2011-11-01")
    assert result["chosen"] == validation["chosen"] == "als"
    best = ndcg(result, result["chosen"])
    assert best >= 1.4 * ndcg(result, "bestsellers_recent")
    assert result["ratio_to_recent_bestsellers"] >= 1.45
    for row in result["models"]:
        if row != result["chosen"]:
            assert best > ndcg(result, row), row
    assert result["ok"] is True
    assert "ok" in result["text"].splitlines()[-2]
