"""``cva evaluate clusters``: behavioural clusters on the UCI Online Retail export (issue 4).

Clusters have no ground truth, so this evaluation reports what a marketer relies on:

* The fit: customer features as of ``--as-of`` (events before that day 00:00 UTC,
  through the project's own source mapping and staging,
  :mod:`cva_tasks.evaluation.online_retail`), clustered by
  :class:`cva_tasks.models.clusters.ClusterModel` with the pipeline's defaults. Printed:
  the silhouette of every k tried (the criterion that picks k; an in-sample internal
  measure, not a quality score), and each cluster's label, share of customers and share
  of revenue.
* Stability over retrains, as the pipeline runs them: a model fitted ``--retrain-days``
  earlier (7 = the weekly default, 28 = a monthly schedule) is the *previous* model; the
  model of ``--as-of`` is matched to it. ``same_id_share`` is the share of today's
  customers who keep the id the previous model gives them.
* Stability over seeds: the same day fitted with other seeds; the adjusted Rand index
  between the assignments (1 = the same partition) and whether k stays the same.

Figures of the last measurement: ``docs/evaluations.md``.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

DEFAULT_AS_OF = "2011-12-10"


def _positive_days(text: str) -> list[int]:
    try:
        days = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of days, e.g. 7,28") from None
    if any(day < 1 for day in days):
        raise argparse.ArgumentTypeError(f"{text!r}: days must be positive, e.g. 7,28")
    return days


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cva evaluate clusters``."""
    parser.add_argument(
        "--as-of",
        default=DEFAULT_AS_OF,
        type=date.fromisoformat,
        help="features use events before this day 00:00 UTC (default %(default)s)",
    )
    parser.add_argument(
        "--retrain-days",
        default="7,28",
        type=_positive_days,
        help="days before --as-of at which the previous model is fitted (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--other-seeds", type=int, default=2, help="extra seeds for the seed stability"
    )
    parser.add_argument("--export", default=None, help="Online Retail export (default: source)")


def command(args: argparse.Namespace) -> dict:
    """Fit, profile and measure the stability; return the figures and the printed text."""
    import logging
    import time

    from sklearn.metrics import adjusted_rand_score

    from cva_tasks.evaluation.online_retail import features_as_of, staged_lake
    from cva_tasks.models.clusters import ClusterModel

    log = logging.getLogger(__name__)
    started = time.perf_counter()
    lake = staged_lake(export=args.export)
    features = features_as_of(args.as_of, lake)
    log.info("clusters: %d customers as of %s", len(features), args.as_of)
    model = ClusterModel(seed=args.seed).fit(features)
    fit_seconds = time.perf_counter() - started
    ids = model.assign(features)

    retrains = {}
    for days in args.retrain_days:
        earlier = args.as_of - timedelta(days=days)
        previous = ClusterModel(seed=args.seed).fit(features_as_of(earlier, lake))
        matched = ClusterModel(seed=args.seed).fit(features, previous=previous)
        retrains[days] = {
            "previous_as_of": earlier.isoformat(),
            "previous_k": int(previous.metrics["k"]),
            "k": int(matched.metrics["k"]),
            "same_id_share": round(float(matched.metrics["same_id_share"]), 4),
            "new_ids": sorted(
                set(matched.cluster_ids.tolist()) - set(previous.cluster_ids.tolist())
            ),
        }
        log.info(
            "clusters: retrain after %d days keeps %.3f of ids",
            days,
            retrains[days]["same_id_share"],
        )

    seeds = {}
    for seed in range(args.seed + 1, args.seed + 1 + args.other_seeds):
        other = ClusterModel(seed=seed).fit(features)
        seeds[seed] = {
            "k": int(other.metrics["k"]),
            "adjusted_rand_index": round(
                float(adjusted_rand_score(ids, other.assign(features))), 4
            ),
        }

    profiles = model.profiles(features, ids)
    clusters = [
        {
            "cluster_id": int(row.cluster_id),
            "label": row.label,
            "customers": int(row.customers),
            "share_of_customers": round(float(row.share_of_customers), 4),
            "share_of_revenue": round(float(row.share_of_revenue), 4),
        }
        for row in profiles.itertuples()
    ]
    silhouettes = {int(k): v for k, v in model.metrics["silhouette_by_k"].items()}
    seconds = time.perf_counter() - started

    lines = [
        "Behavioural clusters on Online Retail (issue 4)",
        f"features as of {args.as_of} (events before it): {len(features)} customers; "
        f"k chosen in {model.params['k_range']} by the silhouette on "
        f"{model.metrics['silhouette_sample_size']} sampled customers",
        "silhouette by k (in-sample criterion, not a quality score): "
        + ", ".join(f"k={k} {v:.3f}" for k, v in sorted(silhouettes.items())),
        f"chosen k = {model.metrics['k']} (silhouette {model.metrics['silhouette']:.3f})",
        "",
        f"{'id':>3} {'label':<40} {'customers':>9} {'share':>6} {'revenue':>8}",
    ]
    lines += [
        f"{c['cluster_id']:>3} {c['label']:<40} {c['customers']:>9} "
        f"{c['share_of_customers']:>6.1%} {c['share_of_revenue']:>8.1%}"
        for c in clusters
    ]
    lines += ["", "stability over retrains (previous model fitted earlier, then matched):"]
    lines += [
        f"  previous as of {r['previous_as_of']} ({days} days before, k={r['previous_k']}): "
        f"k={r['k']}, {r['same_id_share']:.1%} of customers keep their id, "
        f"new ids {r['new_ids'] or 'none'}"
        for days, r in retrains.items()
    ]
    lines += ["stability over seeds (same day, other K-Means and sample seeds):"]
    lines += [
        f"  seed {seed}: k={s['k']}, adjusted Rand index {s['adjusted_rand_index']:.3f}"
        for seed, s in seeds.items()
    ]
    lines.append(f"time: {seconds:.0f} s (first fit {fit_seconds:.0f} s)")
    return {
        "as_of": args.as_of.isoformat(),
        "customers": len(features),
        "k": int(model.metrics["k"]),
        "silhouette": model.metrics["silhouette"],
        "silhouette_by_k": silhouettes,
        "clusters": clusters,
        "retrains": retrains,
        "seeds": seeds,
        "seconds": round(seconds, 1),
        "text": "\n".join(lines),
    }
