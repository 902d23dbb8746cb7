from __future__ import annotations

import pandas as pd
import pytest

from cva_tasks.segments.rfm import RuleTableError, load_rules, quintile_scores, score_rfm
from cva_tasks.settings import Settings


def test_quintiles_are_even_and_ordered():
    scores = quintile_scores(pd.Series(range(100)))
    assert scores.value_counts().to_dict() == {1: 20, 2: 20, 3: 20, 4: 20, 5: 20}
    assert scores.iloc[0] == 1 and scores.iloc[-1] == 5
    low_is_good = quintile_scores(pd.Series(range(100)), higher_is_better=False)
    assert low_is_good.iloc[0] == 5


def test_ties_share_one_score():
    values = pd.Series([1] * 60 + list(range(2, 42)))
    scores = quintile_scores(values)
    assert scores.iloc[:60].nunique() == 1
    assert scores.iloc[:60].iloc[0] == 2, "60 tied at the bottom: average rank is the 30th pct"
    assert scores.iloc[-1] == 5


def features(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], **columns})


def test_segments_follow_the_rule_table():
    frame = features(
        recency_days=[1.0, 2.0, 300.0, 200.0, 3.0, 900.0, 50.0, 60.0, 70.0, 80.0],
        frequency=[20, 1, 15, 2, 5, 30, 3, 4, 6, 7],
        monetary_value=[900.0, 10.0, 800.0, 5.0, 100.0, 2000.0, 50.0, 60.0, 70.0, 80.0],
    )
    out = score_rfm(frame).set_index("customer_id")
    assert out.loc["c0", "segment"] == "Champions"
    assert out.loc["c1", "segment"] == "New"
    assert out.loc["c2", "segment"] in {"Can't Lose Them", "At Risk"}
    assert out.loc["c3", "segment"] == "Hibernating"
    assert out.loc["c5", "segment"] == "Lost", "no order within 365 days"
    assert pd.isna(out.loc["c5", "r_score"])
    assert pd.isna(out.loc["c5", "rfm_cell"])
    assert out.loc["c0", "rfm_cell"] == f"{out.loc['c0', 'r_score']}{out.loc['c0', 'f_score']}" + (
        f"{out.loc['c0', 'm_score']}"
    )


def test_default_table_covers_every_cell():
    rules = load_rules()
    assert {r.name for r in rules.rules} >= {"Champions", "Loyal", "At Risk", "Hibernating"}


def test_table_with_a_gap_is_refused(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("segments:\n  - name: Champions\n    r: [4, 5]\n")
    with pytest.raises(RuleTableError, match=r"no segment covers the cell r=1 f=1 m=1"):
        load_rules(path)


def test_marketer_can_change_the_table_without_code(tmp_path, monkeypatch):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "active_within_days: null\nsegments:\n  - name: Best\n    r: [5, 5]\n  - name: Rest\n"
    )
    monkeypatch.setenv("CVA_RFM_RULES", str(path))
    frame = features(recency_days=[1.0, 500.0], frequency=[1, 1], monetary_value=[1.0, 1.0])
    rules = load_rules(Settings.from_env().rfm_rules)
    assert score_rfm(frame, rules)["segment"].tolist() == ["Best", "Rest"]


def test_bad_range_names_the_segment(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("segments:\n  - name: Odd\n    f: [0, 7]\n")
    with pytest.raises(RuleTableError, match="segment 'Odd': f range"):
        load_rules(path)


def test_one_order_is_f1_and_repeat_buyers_take_the_higher_scores():
    """A shop where almost everyone buys once: one-time buyers are F=1, not the middle."""
    frequency = pd.Series([1] * 90 + [2, 2, 2, 3, 3, 4, 5, 8, 12, 20])
    frame = features(
        recency_days=[10.0] * 100, frequency=frequency.tolist(), monetary_value=[50.0] * 100
    )
    f = score_rfm(frame)["f_score"]
    assert set(f.iloc[:90]) == {1}
    repeat = f.iloc[90:].tolist()
    assert min(repeat) >= 2 and repeat[-1] == 5
    assert repeat == sorted(repeat), "more orders never score lower"
    assert len(set(repeat[:3])) == 1, "ties share a score"
    assert set(repeat) == {2, 3, 4, 5}


def test_no_counted_order_is_f1_and_nulls_stay_null():
    from cva_tasks.segments.rfm import frequency_scores

    scores = frequency_scores(pd.Series([0, 1, None, 2, 6], dtype="Int64"))
    assert scores.iloc[0] == 1 and scores.iloc[1] == 1 and pd.isna(scores.iloc[2])
    assert scores.iloc[3] < scores.iloc[4] == 5
