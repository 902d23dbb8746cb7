"""The ``cva`` command: demo, data generation, sources, warehouse check.

Every command that prints figures also takes ``--json`` and then prints one
JSON document on stdout (logs go to stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger("cva")


_RESULT_STREAM = sys.stdout


def _print(result: dict, as_json: bool, text: str) -> None:
    out = json.dumps(result, indent=1, default=str, sort_keys=True) if as_json else text
    print(out, file=_RESULT_STREAM, flush=True)


def cmd_sources(args: argparse.Namespace) -> int:
    from cva_tasks.settings import Settings
    from cva_tasks.sources.registry import all_sources

    settings = Settings.from_env()
    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "dag_id": f"cva_source_{s.name}",
            "entities": [e.entity for e in s.entities],
            "suites": [e.suite for e in s.entities],
            "conn_id": s.conn_id,
            "location_env": s.location_env,
            "lookback_hours": s.lookback(settings).total_seconds() / 3600,
            "description": s.description,
        }
        for s in all_sources(settings.source_modules)
    ]
    text = "\n".join(
        f"{r['name']:<16} {r['dag_id']:<28} {', '.join(r['entities'])}  "
        f"(lookback {r['lookback_hours']:g} h; {r['description']})"
        for r in rows
    )
    _print({"sources": rows}, args.json, text)
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    """What a source entity-day quarantined: rows per rule, and the first rows' keys.

    Prints keys and rules only, never the rows' other values (they may hold PII).
    """
    from collections import Counter
    from datetime import date

    from cva_tasks import storage
    from cva_tasks.entities import KEYS
    from cva_tasks.settings import Settings
    from cva_tasks.sources.canonical import rule_of

    lake = Settings.from_env().lake
    ds = date.fromisoformat(args.day)
    where = f"{args.source}.{args.entity} ds={ds}"
    if args.entity not in KEYS:
        raise SystemExit(f"cva quarantine: unknown entity {args.entity!r}; one of {list(KEYS)}")
    summary_uri = lake.dq_summary(args.source, args.entity, ds)
    summary = storage.read_json(summary_uri) if storage.exists(summary_uri) else None
    uri = lake.quarantine(args.source, args.entity, ds)
    table = storage.read_table(uri) if storage.exists(uri) else None
    rows = table.select([KEYS[args.entity], "dq_rules"]).to_pylist() if table else []
    mapping = "mapping: "
    by_rule: Counter[str] = Counter()
    for row in rows:
        rules = row["dq_rules"]
        if rules.startswith(mapping):  # one reason, with its value: count it by its rule
            by_rule[mapping + rule_of(rules[len(mapping) :])] += 1
        else:
            by_rule.update(rules.split("; "))
    result = {
        "source": args.source,
        "entity": args.entity,
        "ds": ds.isoformat(),
        "quarantine": uri if table else None,
        "rows_quarantined": len(rows),
        "rows_by_rule": dict(by_rule.most_common()),
        "first_rows": rows[: args.limit],
        "summary": summary,
    }
    lines = [f"{where}: {len(rows)} rows quarantined" + (f" at {uri}" if table else "")]
    if summary is None:
        lines.append("  no passed validation summary for this day (not run, failed, or bulk)")
    lines += [f"  {count:>7}  {rule}" for rule, count in by_rule.most_common()]
    if rows:
        lines.append(f"first rows ({KEYS[args.entity]}: rules):")
        lines += [f"  {r[KEYS[args.entity]]}: {r['dq_rules']}" for r in rows[: args.limit]]
    _print(result, args.json, "\n".join(lines))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Every setting: its variable, default and the value this process resolves."""
    from cva_tasks.settings import Settings, markdown_table, setting_fields

    if args.markdown:
        print(markdown_table(), file=_RESULT_STREAM, flush=True)
        return 0
    settings = Settings.from_env()
    rows = [
        {
            "variable": spec.metadata["env"],
            "default": spec.metadata["default"],
            "value": _shown(getattr(settings, spec.name), spec.metadata.get("secret", False)),
            "set": spec.metadata["env"] in settings.environ,
            "meaning": spec.metadata["doc"],
        }
        for spec in setting_fields()
    ]
    text = "\n".join(
        f"{r['variable']:<28} {r['value']!s:<40} {'(set)' if r['set'] else '(default)'}"
        for r in rows
    )
    _print({"settings": rows}, args.json, text)
    return 0


def _shown(value: object, secret: bool) -> object:
    """A setting's value as ``cva config`` prints it: a secret only as set or not."""
    if not secret:
        return value
    return "(hidden)" if value else None


def cmd_generate(args: argparse.Namespace) -> int:
    from cva_tasks.demo.shop import generate_shop

    summary = generate_shop(
        Path(args.out), n_customers=args.customers, seed=args.seed, db_url=args.db_url
    )
    _print(summary, args.json, json.dumps(summary, indent=1, default=str))
    return 0


DEMO_SOURCES = ("demo_shop", "demo_feedback")


def demo_pipeline_sources(settings) -> tuple[str, ...]:
    """The sources the demo's daily DAG waits for: ``CVA_PIPELINE_SOURCES``, else the demo's.

    Any other registered source active on the demo's days would hold the daily DAG's
    sensors for a day, waiting for data the demo does not make.
    """
    return settings.pipeline_sources or DEMO_SOURCES


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate the demo shop, land its history, run the source DAGs and the daily DAG."""
    from cva_tasks.airflow_runner import prepare_airflow_home
    from cva_tasks.settings import Settings

    started = time.monotonic()
    settings = Settings.from_env()
    os.environ["CVA_HOME"] = str(settings.home)
    os.environ["CVA_PIPELINE_SOURCES"] = ",".join(demo_pipeline_sources(settings))
    prepare_airflow_home()
    from cva_tasks.demo.lake import write_raw_from_frames
    from cva_tasks.demo.shop import DEFAULT_END, DEFAULT_START, generate_frames, generate_shop

    log.info("generating the demo shop (%d customers) in %s", args.customers, settings.demo_dir)
    frames = generate_frames(n_customers=args.customers, seed=args.seed)
    shop = generate_shop(
        settings.demo_dir, n_customers=args.customers, seed=args.seed, frames=frames
    )
    os.environ["AIRFLOW_CONN_CVA_DEMO_SHOP"] = f"sqlite:///{settings.demo_dir / 'shop.db'}"

    days = [DEFAULT_END - timedelta(days=n) for n in reversed(range(args.days))]
    history = [DEFAULT_START + timedelta(days=n) for n in range((days[0] - DEFAULT_START).days)]
    log.info(
        "landing %d days of history (%s..%s) in bulk; the last %d day(s) go through Airflow",
        len(history),
        history[0],
        history[-1],
        len(days),
    )
    write_raw_from_frames(
        frames, settings.data_root, days=history, pseudonymise_key=settings.pseudonymise_key
    )

    from cva_tasks.airflow_runner import output_to, run_dag_for_day

    airflow_log = settings.home / "logs" / "demo-airflow.log"
    runs = []
    for ds in days:
        for dag_id in (*(f"cva_source_{name}" for name in DEMO_SOURCES), "cva_customer_value"):
            log.info("running %s for ds=%s (Airflow's log: %s)", dag_id, ds, airflow_log)
            with output_to(airflow_log):
                state = run_dag_for_day(dag_id, ds)
            log.info("%s ds=%s: %s", dag_id, ds, state)
            runs.append({"dag_id": dag_id, "ds": ds.isoformat(), "state": state})
    result = {
        "ok": all(r["state"] == "success" for r in runs),
        "shop": shop,
        "runs": runs,
        **_demo_outputs(settings, days[-1]),
        "airflow_home": os.environ["AIRFLOW_HOME"],
        "airflow_log": str(airflow_log),
        "seconds": round(time.monotonic() - started, 1),
    }
    _print(result, args.json, _demo_text(result, args, settings))
    return 0 if result["ok"] else 1


def _demo_outputs(settings, ds) -> dict:
    """What the demo left behind for day ``ds``: partitions, warehouse rows, segments."""
    from cva_tasks import storage
    from cva_tasks.sources.registry import get_source
    from cva_tasks.warehouse import get_warehouse

    lake = settings.lake
    partitions = []
    for name in DEMO_SOURCES:
        for spec in get_source(name, settings.source_modules).entities:
            for zone, uri in (
                ("raw", lake.raw(name, spec.entity, ds)),
                ("quarantine", lake.quarantine(name, spec.entity, ds)),
            ):
                rows = storage.read_table(uri).num_rows if storage.exists(uri) else 0
                partitions.append(
                    {"source": name, "entity": spec.entity, "zone": zone, "rows": rows, "uri": uri}
                )
    warehouse = get_warehouse()
    try:
        scores = warehouse.read_table("customer_scores", ds).to_pandas()
    except Exception:  # a failed run may have published nothing: report it, don't crash
        scores = None
    segments = (
        {str(k): int(v) for k, v in scores["segment"].value_counts().items()}
        if scores is not None
        else {}
    )
    models = _demo_models(warehouse, ds, scores, settings)
    return {
        "ds": ds.isoformat(),
        "partitions": partitions,
        "features": lake.features("customer", ds),
        "customers_scored": 0 if scores is None else len(scores),
        "segments": segments,
        **models,
        "warehouse": warehouse.location,
        "table": "customer_scores",
        "lake": settings.data_root,
        "data_docs": [str(settings.home / "data_docs" / n / "index.html") for n in DEMO_SOURCES],
    }


def _demo_models(warehouse, ds, scores, settings) -> dict:
    """What the models published for ``ds``: runs, clusters, churn tiers, lists, feedback."""
    from cva_tasks.models import registry
    from cva_tasks.models.kinds import KIND_NAMES

    def counts(frame, column) -> dict:
        if frame is None or column not in frame or frame[column].isna().all():
            return {}
        return {str(k): int(v) for k, v in frame[column].value_counts().sort_index().items()}

    def rows(table_name: str):
        try:
            return warehouse.read_table(table_name, ds).to_pandas()
        except Exception:  # a failed run may have published nothing
            return None

    quality = rows("dq_results")
    recommendations = rows("customer_recommendations")
    feedback = rows("feedback_sentiment")
    topics = rows("feedback_topics")
    return {
        "models": [
            {
                "kind": kind,
                "version": run.version,
                "metric": run.metric,
                "metric_value": run.metric_value,
                "trained_as_of": run.trained_as_of.isoformat(),
            }
            for kind in KIND_NAMES
            if (run := registry.champion(kind, ds, settings.lake)) is not None
        ],
        "clusters": counts(scores, "cluster_label"),
        "churn_tiers": counts(scores, "churn_tier"),
        "recommendation_rows": 0 if recommendations is None else len(recommendations),
        "feedback_labels": counts(feedback, "label"),
        "feedback_unscored": counts(feedback, "unscored_reason"),
        "complaint_terms": [] if topics is None else topics["term"].head(8).tolist(),
        "quality": []
        if quality is None
        else quality[
            ["source", "entity", "rows_checked", "rows_clean", "rows_quarantined", "failed_rules"]
        ]
        .astype(object)
        .where(quality.notna(), None)
        .to_dict("records"),
    }


def _demo_text(result: dict, args, settings) -> str:
    landed = [p for p in result["partitions"] if p["zone"] == "raw" or p["rows"]]
    return "\n".join(
        [
            f"demo shop: {args.customers} customers in {settings.demo_dir}",
            *(f"  {r['dag_id']:<28} ds={r['ds']}: {r['state']}" for r in result["runs"]),
            f"landed for ds={result['ds']} (lake: {result['lake']}):",
            *(
                f"  {p['zone']:<10} {p['source'] + '.' + p['entity']:<24} {p['rows']:>6} rows"
                f"  {p['uri']}"
                for p in landed
            ),
            f"features: {result['features']}",
            f"customers scored for {result['ds']}: {result['customers_scored']}, by segment:",
            *(f"  {name:<20} {count:>6}" for name, count in result["segments"].items()),
            "models in force (out-of-time validation metric):",
            *(
                f"  {m['kind']:<12} {m['version']:<22} {m['metric']} "
                + ("n/a" if m["metric_value"] is None else f"{m['metric_value']:.4g}")
                for m in result["models"]
            ),
            "clusters: " + ", ".join(f"{k} {v}" for k, v in result["clusters"].items()),
            "churn tiers: " + ", ".join(f"{k} {v}" for k, v in result["churn_tiers"].items()),
            f"recommendation rows: {result['recommendation_rows']}",
            "feedback of the day: "
            + ", ".join(f"{k} {v}" for k, v in result["feedback_labels"].items()),
            "unscored feedback by reason: "
            + (", ".join(f"{k} {v}" for k, v in result["feedback_unscored"].items()) or "none"),
            "complaint terms (30 days): " + ", ".join(result["complaint_terms"]),
            "data quality of the day (dq_results):",
            *(
                f"  {q['source'] + '.' + q['entity']:<24} {q['rows_checked']:>6} checked, "
                f"{q['rows_quarantined']} quarantined"
                + (f" ({q['failed_rules']})" if q["failed_rules"] else "")
                for q in result["quality"]
            ),
            f"warehouse table {result['table']}: {result['warehouse']}",
            "data docs: " + ", ".join(result["data_docs"]),
            f"Airflow's task log: {result['airflow_log']}",
            f"done in {result['seconds']} s" + ("" if result["ok"] else " WITH FAILED RUNS"),
        ]
    )


BENCHMARKS = {
    "features": ("benchmarks.bench_features", "feature engine vs idiomatic pandas"),
    "load": ("benchmarks.bench_load", "warehouse loader vs to_sql and psql \\copy"),
    "recommendations": (
        "benchmarks.bench_recommendations",
        "train and score every customer: recommenders vs the bestseller baseline",
    ),
    "daily": (
        "benchmarks.bench_daily",
        "every task of the daily DAG at shop scale: first run and a steady day",
    ),
}


def _benchmark_module(name: str):
    """The module of benchmark ``name`` (``benchmarks`` is installed with the project)."""
    import importlib

    return importlib.import_module(BENCHMARKS[name][0])


def cmd_bench(args: argparse.Namespace) -> int:
    result = _benchmark_module(args.benchmark).command(args)
    text = result.pop("text", None) if isinstance(result, dict) else None
    _print(result, args.json, text or json.dumps(result, indent=1, default=str))
    return 1 if result.get("ok") is False else 0


# name -> (module under cva_tasks.evaluation, help)
EVALUATIONS: dict[str, tuple[str, str]] = {
    "recommendations": (
        "cva_tasks.evaluation.recommendations",
        "next-best items: bestsellers, item-CF, ALS out of time",
    ),
    "sentiment": ("cva_tasks.evaluation.sentiment", "Keras sentiment vs VADER, TF-IDF+LR"),
    "clv": ("cva_tasks.evaluation.clv", "lifetime value (BG/NBD + Gamma-Gamma) out of time"),
    "clusters": ("cva_tasks.evaluation.clusters", "behavioural clusters: k, profiles, stability"),
    "churn": ("cva_tasks.evaluation.churn", "churn risk out of time: LR vs boosting vs baselines"),
}


def cmd_evaluate(args: argparse.Namespace) -> int:
    import importlib

    result = importlib.import_module(EVALUATIONS[args.evaluation][0]).command(args)
    text = result.pop("text", None) if isinstance(result, dict) else None
    _print(result, args.json, text or json.dumps(result, indent=1, default=str))
    return 1 if result.get("ok") is False else 0


def cmd_forget(args: argparse.Namespace) -> int:
    from cva_tasks.privacy.forget import command

    result = command(args)
    text = result.pop("text")
    _print(result, args.json, text)
    return 0


def cmd_lake_check(args: argparse.Namespace) -> int:
    from cva_tasks.lake_check import command

    result = command(args)
    text = result.pop("text")
    _print(result, args.json, text)
    return 0 if result["ok"] else 1


def cmd_warehouse_check(args: argparse.Namespace) -> int:
    """Compare the warehouse's live tables with their specs; exit 1 on a difference.

    Read-only: applies no migration and creates nothing.
    """
    from cva_tasks.warehouse import WarehouseError, get_warehouse
    from cva_tasks.warehouse.checks import check

    try:
        report = check(get_warehouse(auto_migrate=False, read_only=True))
    except WarehouseError as exc:
        _print({"ok": False, "error": str(exc)}, args.json, f"warehouse: {exc}")
        return 1
    _print(report.as_dict(), args.json, report.text())
    return 0 if report.ok else 1


# name -> module under cva_tasks with HELP, DESCRIPTION, add_arguments(parser), command(args)
COMMAND_MODULES: dict[str, str] = {
    "run": "cva_tasks.commands_run",
    "land": "cva_tasks.commands_land",
}


def cmd_module(args: argparse.Namespace) -> int:
    import importlib

    result = importlib.import_module(COMMAND_MODULES[args.command]).command(args)
    text = result.pop("text")
    _print(result, args.json, text)
    return 0 if result["ok"] else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cva", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="generate the demo shop and run the pipeline on it")
    demo.add_argument("--customers", type=int, default=1000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--days", type=int, default=1, help="how many of the latest days to run")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_demo)

    gen = sub.add_parser("generate", help="generate a demo shop of any size")
    gen.add_argument("--customers", type=int, default=1000)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--out", required=True, help="output folder")
    gen.add_argument("--db-url", default=None, help="SQLAlchemy URL (default: sqlite in --out)")
    gen.add_argument("--json", action="store_true")
    gen.set_defaults(func=cmd_generate)

    bench = sub.add_parser("bench", help="benchmarks (time and memory against a baseline)")
    bench_sub = bench.add_subparsers(dest="benchmark", required=True)
    for name, (_module, help_text) in BENCHMARKS.items():
        one = bench_sub.add_parser(name, help=help_text)
        one.add_argument("--json", action="store_true")
        _benchmark_module(name).add_arguments(one)  # benchmark modules import light at top
        one.set_defaults(func=cmd_bench)

    evaluate = sub.add_parser(
        "evaluate", help="out-of-time model evaluations on the real data in ../shared/data"
    )
    evaluate_sub = evaluate.add_subparsers(dest="evaluation", required=True)
    for name, (module, help_text) in EVALUATIONS.items():
        import importlib

        one = evaluate_sub.add_parser(name, help=help_text)
        one.add_argument("--json", action="store_true")
        importlib.import_module(module).add_arguments(one)
        one.set_defaults(func=cmd_evaluate)

    config = sub.add_parser("config", help="every CVA_* setting with its value and default")
    config.add_argument("--json", action="store_true")
    config.add_argument(
        "--markdown", action="store_true", help="print the README's configuration table"
    )
    config.set_defaults(func=cmd_config)

    warehouse = sub.add_parser("warehouse", help="warehouse checks")
    warehouse_sub = warehouse.add_subparsers(dest="warehouse_command", required=True)
    warehouse_check = warehouse_sub.add_parser(
        "check", help="compare the live tables with their specs (read-only)"
    )
    warehouse_check.add_argument("--json", action="store_true")
    warehouse_check.set_defaults(func=cmd_warehouse_check)

    lake = sub.add_parser("lake", help="the lake's own integrity")
    lake_sub = lake.add_subparsers(dest="lake_command", required=True)
    check = lake_sub.add_parser(
        "check",
        help="swaps left by killed writers, staged days behind their raw inputs, "
        "missing source days (--repair fixes what it can)",
    )
    check.add_argument("--json", action="store_true")
    check.add_argument(
        "--repair",
        action="store_true",
        help="put back what killed writers took away, clean up, restage stale days",
    )
    check.set_defaults(func=cmd_lake_check)

    forget = sub.add_parser(
        "forget",
        help="erase customers (source ids) from raw, staged, features, scores and the "
        "warehouse; staging keeps them out",
    )
    forget.add_argument("customer_ids", nargs="+", metavar="CUSTOMER_ID", help="source ids")
    forget.add_argument("--json", action="store_true")
    forget.set_defaults(func=cmd_forget)

    sources = sub.add_parser("sources", help="list the registered sources")
    sources.add_argument("--json", action="store_true")
    sources.set_defaults(func=cmd_sources)

    quarantine = sub.add_parser(
        "quarantine", help="what a source entity-day quarantined, by rule (keys only)"
    )
    quarantine.add_argument("source")
    quarantine.add_argument("entity")
    quarantine.add_argument("day", help="YYYY-MM-DD")
    quarantine.add_argument("--limit", type=int, default=20, help="rows to list")
    quarantine.add_argument("--json", action="store_true")
    quarantine.set_defaults(func=cmd_quarantine)

    import importlib

    for name, module_name in COMMAND_MODULES.items():
        commands = importlib.import_module(module_name)  # light at import, like the benchmarks
        one = sub.add_parser(name, help=commands.HELP, description=commands.DESCRIPTION)
        commands.add_arguments(one)
        one.set_defaults(func=cmd_module)
    return parser


def _keep_stdout_for_results() -> None:
    """Reserve stdout for the command's result; everything else goes to stderr.

    Airflow and GX log to stdout once imported; a ``--json`` reader must get
    one clean JSON document.
    """
    global _RESULT_STREAM
    sys.stdout.flush()
    _RESULT_STREAM = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:
        _keep_stdout_for_results()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
