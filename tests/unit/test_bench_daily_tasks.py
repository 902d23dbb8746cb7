"""``cva bench daily`` runs each part of the mapped tasks in its own process."""

from __future__ import annotations

from benchmarks.bench_daily import TASKS, task_names


def test_one_part_keeps_the_dag_task_names():
    assert task_names(1) == list(TASKS)


def test_each_part_of_score_and_recommend_is_a_task_of_its_own():
    names = task_names(3)
    assert names[names.index("score[0]") : names.index("score[0]") + 3] == [
        "score[0]",
        "score[1]",
        "score[2]",
    ]
    assert "recommend[2]" in names and "score" not in names and "recommend" not in names
    assert len(names) == len(TASKS) + 4
    assert names.index("publish") > max(names.index("score[2]"), names.index("recommend[2]"))
