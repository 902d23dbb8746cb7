"""``cva evaluate recommendations``: next-best-item models out of time on Online Retail.

Protocol (issue 6): the purchase lines of the UCI Online Retail export, through the
project's own ``online_retail`` source mapping (:func:`cva_tasks.evaluation.
online_retail.purchase_lines`: product lines of non-cancelled invoices of identified
customers). Every model is fitted on the purchases before 2011-11-01 and recommends
10 items per customer, already-bought items excluded. The truth of a customer is the
set of items they bought on or after 2011-11-01 (until the end of the export,
2011-12-09) that they had not bought before; customers count if they bought in both
periods and at least one such new item. Metrics at 10: precision (hits / 10), recall
(hits / new items), NDCG (binary gains), MAP (average precision over
min(new items, 10)), catalogue coverage (distinct recommended items / items sold
before the split) and the fitting time on the training purchases.

Rows: all-time bestsellers, last-30-days bestsellers (the baseline), item-based CF,
``implicit`` ALS; plus two ablations showing where the gain comes from (item-CF and
ALS without the recent-bestseller trend blend, and ALS on raw line counts, the
issue's reference setup). The chosen model is picked by
:func:`cva_tasks.models.recommend.train_recommenders` on a validation window that
ends at the split (fit before 2011-10-02, validate on the new items of the next 30
days): the test period plays no part in the choice, nor in the defaults, which were
tuned on training before 2011-10-01 and validation in October 2011.

``ok``: the chosen model's NDCG@10 is at least 1.4 x the last-30-days bestsellers'
and above every other row of the same run.

Figures of the last measurement: ``docs/evaluations.md``.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SPLIT = "2011-11-01"
GOAL_RATIO = 1.4
BASELINE = "bestsellers_recent"
LABELS = {
    "bestsellers_all_time": "bestsellers, all time",
    "bestsellers_recent": "bestsellers, last 30 days",
    "item_cf": "item-based CF (BM25 cosine, 50 nb) + trend",
    "als": "implicit ALS (64 factors) + trend",
    "item_cf_no_trend": "  ablation: item-based CF, no trend blend",
    "als_no_trend": "  ablation: ALS, no trend blend",
    "als_raw_counts": "  ablation: ALS on raw line counts, no trend",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``cva evaluate recommendations``."""
    parser.add_argument(
        "--export",
        default=None,
        help="Online Retail export file or folder (default: the online_retail source's)",
    )
    parser.add_argument("--split", default=SPLIT, help="first day of the test period (UTC)")
    parser.add_argument("--k", type=int, default=10, help="list length and metric cut-off")
    parser.add_argument(
        "--validation-days", type=int, default=30, help="validation window that picks the model"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the stochastic models")
    parser.add_argument(
        "--no-ablations", action="store_true", help="skip the ablation rows (faster)"
    )


def frames_from_lines(lines) -> tuple[Any, Any, Any]:
    """Purchase lines -> ``(interactions, items, customers)`` for the recommenders.

    ``items.name`` is an item's most frequent name; ``customers.country`` the one on
    the lines (the customer's latest country).
    """
    import pandas as pd

    # A fixed line order: the lake may be read in any order, and "latest country"
    # must not depend on it.
    lines = lines.sort_values(
        ["occurred_at", "customer_id", "order_id", "item_id", "quantity"], kind="stable"
    ).reset_index(drop=True)
    interactions = lines[["customer_id", "item_id", "quantity", "occurred_at"]]
    names = lines.groupby(["item_id", "item_name"], sort=True).size().rename("n").reset_index()
    names = names.sort_values(["item_id", "n", "item_name"], ascending=[True, False, True])
    items = names.drop_duplicates("item_id")[["item_id", "item_name"]].rename(
        columns={"item_name": "name"}
    )
    customers = lines.drop_duplicates("customer_id", keep="last")[["customer_id", "country"]]
    return interactions, items.reset_index(drop=True), pd.DataFrame(customers)


def command(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation (the ``cva evaluate recommendations`` entry point)."""
    import pandas as pd

    from cva_tasks.evaluation.online_retail import purchase_lines
    from cva_tasks.models import recommend as rec

    started = time.perf_counter()
    lines = purchase_lines(args.export)
    interactions, items, customers = frames_from_lines(lines)
    split = pd.Timestamp(args.split, tz="UTC")
    relevant = rec.new_items_after(interactions, split)
    k = args.k
    log.info(
        "Online Retail: %d lines; %d test customers with %d new items from %s",
        len(interactions),
        relevant["customer_id"].nunique(),
        len(relevant),
        split.date(),
    )

    # Every function below uses only the lines before its as-of instant (the split).
    chosen_model, report = rec.train_recommenders(
        interactions,
        items,
        customers,
        split,
        validation_days=args.validation_days,
        seed=args.seed,
        k=k,
    )
    chosen = report["chosen"]

    variants: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        (name, name, {}, {}) for name in rec.CANDIDATES
    ]
    if not args.no_ablations:
        variants += [
            ("item_cf_no_trend", "item_cf", {}, {"trend_weight": 0.0}),
            ("als_no_trend", "als", {}, {"trend_weight": 0.0}),
            (
                "als_raw_counts",
                "als",
                {"weighting": rec.Weighting()},
                {"trend_weight": 0.0},
            ),
        ]
    rows: dict[str, dict[str, Any]] = {}
    for row, name, model_params, options in variants:
        fit_started = time.perf_counter()
        model = rec.Recommender(name, seed=args.seed, model_params=model_params, **options).fit(
            interactions, items, customers, split
        )
        fit_seconds = time.perf_counter() - fit_started
        score_started = time.perf_counter()
        figures = rec.evaluate_model(
            model, interactions, relevant, k, as_of=split, customers=customers
        )
        rows[row] = {
            **figures,
            "fit_seconds": round(fit_seconds, 2),
            "score_seconds": round(time.perf_counter() - score_started, 2),
        }
        log.info("%s: NDCG@%d %.4f", row, k, figures[f"ndcg_at_{k}"])

    ndcg = f"ndcg_at_{k}"
    baseline = rows[BASELINE][ndcg]
    best = rows[chosen][ndcg]
    others = {name: r[ndcg] for name, r in rows.items() if name != chosen}
    ratio = best / baseline if baseline > 0 else float("inf")
    ok = ratio >= GOAL_RATIO and all(best > value for value in others.values())
    result = {
        "split": split.date().isoformat(),
        "k": k,
        "test_customers": int(relevant["customer_id"].nunique()),
        "test_new_items": len(relevant),
        "catalogue_items": len(chosen_model.item_ids),
        "chosen": chosen,
        "chosen_params": chosen_model.params,
        "validation": report,
        "models": rows,
        "ratio_to_recent_bestsellers": round(ratio, 3),
        "goal": {"ratio_to_recent_bestsellers": GOAL_RATIO, "beats_every_other_row": True},
        "ok": ok,
        "seconds": round(time.perf_counter() - started, 1),
    }
    result["text"] = format_report(result)
    return result


def format_report(result: dict[str, Any]) -> str:
    """The result as a text table with its protocol."""
    k = result["k"]
    header = (
        f"{'model':<46} {'P@' + str(k):>7} {'R@' + str(k):>7} {'NDCG@' + str(k):>8} "
        f"{'MAP@' + str(k):>7} {'cov@' + str(k):>7} {'fit s':>7}"
    )
    lines = [
        "Recommendations, out of time on Online Retail (issue 6 protocol)",
        f"train: purchases before {result['split']}; test: items each customer bought on or "
        f"after {result['split']} that they had not bought before",
        f"({result['test_customers']} customers with a purchase in both periods and a new "
        f"item, {result['test_new_items']} new (customer, item) pairs; catalogue "
        f"{result['catalogue_items']} items; already-bought items excluded)",
        header,
    ]
    for name, row in result["models"].items():
        marker = " <- chosen" if name == result["chosen"] else ""
        lines.append(
            f"{LABELS.get(name, name):<46} {row[f'precision_at_{k}']:>7.4f} "
            f"{row[f'recall_at_{k}']:>7.4f} {row[f'ndcg_at_{k}']:>8.4f} "
            f"{row[f'map_at_{k}']:>7.4f} {row[f'coverage_at_{k}']:>7.3f} "
            f"{row['fit_seconds']:>7.1f}{marker}"
        )
    validation = result["validation"]
    lines += [
        f"chosen on validation ({validation['validation']['protocol']}; "
        f"{validation['validation']['customers']} customers): "
        + ", ".join(
            f"{name} {figures[validation['comparison_metric']]:.4f}"
            for name, figures in validation["models"].items()
        ),
        f"chosen {result['chosen']}: NDCG@{k} = {result['ratio_to_recent_bestsellers']:.2f} x "
        f"last-30-days bestsellers (goal >= {GOAL_RATIO}, and above every other row): "
        + ("ok" if result["ok"] else "GOAL MISSED"),
        f"done in {result['seconds']} s",
    ]
    return "\n".join(lines)
