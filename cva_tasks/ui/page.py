"""The "Customer value" page: HTML around the charts of :mod:`cva_tasks.ui.charts`.

Pure functions from the figures of :func:`cva_tasks.ui.figures.day_report` to one
self-contained HTML document (inline CSS and SVG, no script, no external resource), so
the page works inside Airflow's iframe, behind a proxy (every link is relative to the
page, ``/cva/``) and with no internet access. Every value from the warehouse is escaped.
"""

from __future__ import annotations

from datetime import date
from html import escape
from typing import Any

from cva_tasks.ui import charts
from cva_tasks.ui.charts import PALETTE, Series, number, percent

TIER_COLORS = {"Low": "#009E73", "Medium": "#E69F00", "High": "#D55E00"}
NOT_SCORED = "#9aa5b1"
#: Width of a chart that spans a wide card (others are charts.WIDTH).
WIDE = 1100

STYLE = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: #1f2933; background: #f5f7fa; }
header { background: #fff; border-bottom: 1px solid #e4e7eb; padding: 16px 24px;
  display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: center;
  justify-content: space-between; }
h1 { font-size: 22px; margin: 0; }
h2 { font-size: 16px; margin: 0 0 4px; }
h3 { font-size: 13px; margin: 12px 0 2px; color: #3e4c59; }
.sub { color: #616e7c; font-size: 13px; }
main { padding: 16px 24px 32px; max-width: 1320px; margin: 0 auto; }
form { display: flex; gap: 8px; align-items: center; }
select, button { font: inherit; padding: 4px 8px; border: 1px solid #cbd2d9;
  border-radius: 4px; background: #fff; }
button { background: #0072B2; color: #fff; border-color: #0072B2; cursor: pointer; }
.nav a { margin-left: 8px; }
a { color: #0063a0; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr));
  gap: 12px; margin-bottom: 16px; }
.kpi { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px; padding: 10px 14px; }
.kpi .value { font-size: 22px; font-weight: 600; }
.kpi .label { color: #616e7c; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 600px), 1fr));
  gap: 16px; }
.card { background: #fff; border: 1px solid #e4e7eb; border-radius: 6px;
  padding: 14px 16px; min-width: 0; }
.wide { grid-column: 1 / -1; }
.multiples { display: grid;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 560px), 1fr)); gap: 4px 24px; }
svg.chart { max-width: 100%; height: auto; display: block; margin-top: 6px; }
table { border-collapse: collapse; width: 100%; margin-top: 8px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e7eb;
  vertical-align: top; }
th { color: #616e7c; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; }
.tag.yes { background: #e3f4ec; color: #1b6e4a; }
.tag.no { background: #fdeee6; color: #9a3c0b; }
.empty { max-width: 720px; margin: 48px auto; background: #fff; border: 1px solid #e4e7eb;
  border-radius: 6px; padding: 24px 28px; }
code { background: #eef2f6; padding: 1px 4px; border-radius: 3px; }
footer { color: #616e7c; font-size: 12px; margin-top: 20px; }
"""


def document(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def nothing_published_page(location: str) -> str:
    """The page of a warehouse without any published day: what to run, not an error."""
    return document(
        "Customer value: nothing published yet",
        '<div class="empty" id="nothing-published"><h1>Nothing published yet</h1>'
        f"<p>The warehouse ({escape(location)}) holds no published day: the daily "
        "pipeline <code>cva_customer_value</code> has not finished a run yet.</p>"
        "<p>Unpause <code>cva_customer_value</code> (its sources first) or run "
        "<code>make demo</code>; this page shows each day the pipeline publishes.</p></div>",
    )


def message_page(title: str, message: str, link: tuple[str, str] | None = None) -> str:
    """A short page for a day not published or a warehouse that cannot be read."""
    extra = f'<p><a href="{escape(link[0])}">{escape(link[1])}</a></p>' if link else ""
    return document(
        f"Customer value: {title}",
        f'<div class="empty"><h1>{escape(title)}</h1><p>{escape(message)}</p>{extra}</div>',
    )


def day_page(report: dict[str, Any], days: list[str], location: str) -> str:
    """The whole page of one day (``report`` from :func:`figures.day_report`)."""
    ds = report["as_of_date"]
    summary = report["summary"]
    body = [
        _header(ds, days, summary),
        "<main>",
        _kpis(report),
        '<div class="grid">',
        _segments_card(report["segments"]),
        _clusters_card(report["clusters"]),
        _tiers_card(report["churn_tiers"], summary),
        _clv_card(report["clv"]),
        _models_card(report["model_runs"]),
        _quality_card(report["quality"]),
        _drift_card(report["drift"]),
        _audiences_card(report["audiences"], summary),
        "</div>",
        f'<footer>Read from {escape(location)}. The same figures as JSON: <a href="api/days/'
        f'{escape(ds)}">api/days/{escape(ds)}</a>.</footer>',
        "</main>",
    ]
    return document(f"Customer value {ds}", "".join(body))


def _header(ds: str, days: list[str], summary: dict[str, Any]) -> str:
    options = "".join(
        f'<option value="{escape(d)}"{" selected" if d == ds else ""}>{escape(d)}</option>'
        for d in days
    )
    index = days.index(ds) if ds in days else -1
    links = []
    if 0 <= index < len(days) - 1:
        links.append(f'<a href="?ds={escape(days[index + 1])}">← earlier day</a>')
    if index > 0:
        links.append(f'<a href="?ds={escape(days[index - 1])}">later day →</a>')
    loaded = summary.get("loaded_at") or ""
    return (
        f'<header><div><h1>Customer value · <span id="day">{escape(ds)}</span></h1>'
        f'<div class="sub">Published by run <code>{escape(str(summary.get("run_id")))}</code>'
        f" at {escape(loaded[:19].replace('T', ' '))} UTC</div></div>"
        f'<form method="get" action="./"><label for="ds">Day</label>'
        f'<select id="ds" name="ds">{options}</select><button type="submit">Show</button>'
        f'<span class="nav">{"".join(links)}</span></form></header>'
    )


def _kpis(report: dict[str, Any]) -> str:
    summary = report["summary"]
    scored = summary["customers_scored"] or 0
    on_day = [e["on_day"] for e in report["quality"]["entities"] if e["on_day"]]
    quarantined = sum(int(d["rows_quarantined"]) for d in on_day)
    checked = sum(int(d["rows_checked"]) for d in on_day)
    figures = [
        ("Customers scored", number(scored), ""),
        (
            "Active (RFM scored)",
            number(summary["active_customers"]),
            percent(summary["active_customers"] / scored) if scored else "",
        ),
        ("365-day CLV, all customers", number(summary["total_clv_365d"]), ""),
        (
            "High churn risk",
            number(summary["high_churn_customers"]),
            percent(summary["high_churn_customers"] / scored) if scored else "",
        ),
        ("Models trained this day", str(len(report["model_runs"]["on_day"])), ""),
        (
            "Rows quarantined this day",
            number(quarantined) if on_day else "—",
            f"of {number(checked)} checked" if on_day else "no validation",
        ),
    ]
    cards = "".join(
        f'<div class="kpi"><div class="value">{escape(value)}</div>'
        f'<div class="label">{escape(label)}{" · " + escape(extra) if extra else ""}</div></div>'
        for label, value, extra in figures
    )
    return f'<section class="kpis" id="kpis">{cards}</section>'


def _card(card_id: str, title: str, subtitle: str, content: str, wide: bool = False) -> str:
    css = "card wide" if wide else "card"
    return (
        f'<section class="{css}" id="{card_id}"><h2>{escape(title)}</h2>'
        f'<div class="sub">{escape(subtitle)}</div>{content}</section>'
    )


def _count_label(total: int) -> Any:
    return lambda v: f"{v:,.0f} ({percent(v / total)})" if total else f"{v:,.0f}"


def _segments_card(data: dict[str, Any]) -> str:
    rows = data["segments"]
    total = sum(r["customers"] for r in rows)
    chart = charts.bar_chart(
        [(r["segment"] or "(none)", r["customers"]) for r in rows],
        chart_id="segments",
        title="Customers per RFM segment",
        value_label=_count_label(total),
    )
    return _card("rfm-segments", "RFM segments", "customers per segment on the day", chart)


def _clusters_card(data: dict[str, Any]) -> str:
    rows = data["clusters"]
    if not rows:
        content = charts.empty_chart("clusters", "Cluster sizes", "no cluster model on this day")
        return _card("clusters", "Behavioural clusters", "segment_profiles", content)
    total = sum(r["customers"] for r in rows)
    chart = charts.bar_chart(
        [(f"{r['cluster_id']}: {r['label']}", r["customers"]) for r in rows],
        chart_id="clusters",
        title="Customers per behavioural cluster",
        value_label=_count_label(total),
        colors=PALETTE,
    )
    lines = "".join(
        f"<tr><td>{escape(str(r['cluster_id']))}: {escape(r['label'])}</td>"
        f'<td class="num">{percent(r["share_of_revenue"])}</td>'
        f'<td class="num">{number(r["median_frequency"], 1)}</td>'
        f'<td class="num">{number(r["median_monetary_value"])}</td>'
        f'<td class="num">{number(r["median_recency_days"])}</td></tr>'
        for r in rows
    )
    table = (
        '<table><tr><th>cluster</th><th class="num">share of revenue</th>'
        '<th class="num">median orders</th><th class="num">median net spend</th>'
        '<th class="num">median days since last order</th></tr>'
        f"{lines}</table>"
    )
    version = rows[0]["model_version"]
    return _card("clusters", "Behavioural clusters", f"model {version}", chart + table)


def _tiers_card(data: dict[str, Any], summary: dict[str, Any]) -> str:
    rows = data["tiers"]
    total = sum(r["customers"] for r in rows)
    chart = charts.bar_chart(
        [(r["tier"] or "not scored", r["customers"]) for r in rows],
        chart_id="churn-tiers",
        title="Customers per churn risk tier",
        value_label=_count_label(total),
        colors=[TIER_COLORS.get(r["tier"] or "", NOT_SCORED) for r in rows],
    )
    mean = summary.get("mean_churn_probability")
    return _card(
        "churn-tiers",
        "Churn risk tiers",
        f"mean churn probability {percent(mean)} over the next 90 days",
        chart,
    )


def _clv_card(data: dict[str, Any]) -> str:
    above = data["above"]
    chart = charts.histogram(
        [(b["low"], b["high"], b["customers"]) for b in data["bins"]],
        chart_id="clv",
        title="Customers by 365-day CLV",
        overflow=(f"> {charts.compact(above['low'])}", above["customers"]) if above else None,
        x_label="365-day CLV (discounted), last bar: above the 99th percentile",
    )
    subtitle = (
        f"median {number(data['median'])}, 99th percentile {number(data['p99'])}, "
        f"highest {number(data['max'])}; {number(data['not_scored'])} customers without a CLV"
    )
    return _card("clv", "Lifetime value distribution", subtitle, chart)


def _models_card(data: dict[str, Any]) -> str:
    champions = data["champions"]
    on_day = {run["kind"]: run for run in data["on_day"]}
    rows = []
    for kind in sorted(set(champions) | set(on_day)):
        champion = champions.get(kind) or {}
        run = on_day.get(kind)
        decision = "—"
        if run:
            tag = "yes" if run["promoted"] else "no"
            text = "promoted" if run["promoted"] else "champion kept"
            decision = (
                f'<span class="tag {tag}">{text}</span> {escape(run["version"])}: '
                f"{escape(run.get('reason') or '')}"
            )
        rows.append(
            f"<tr><td>{escape(kind)}</td><td>{escape(champion.get('version') or '—')}</td>"
            f"<td>{escape(champion.get('metric') or '')}</td>"
            f'<td class="num">{number(champion.get("metric_value"), 4)}</td>'
            f"<td>{decision}</td></tr>"
        )
    table = (
        "<table><tr><th>kind</th><th>champion in force</th><th>metric</th>"
        '<th class="num">value</th><th>trained this day</th></tr>'
        f"{''.join(rows)}</table>"
        if rows
        else "<p class='sub'>No model trained up to this day.</p>"
    )
    multiples = []
    for kind, runs in sorted(data["history"].items()):
        metric = runs[-1]["metric"] or "metric"
        better = {True: "higher is better", False: "lower is better"}.get(
            runs[-1]["higher_is_better"], ""
        )
        series = [
            Series(
                "new model",
                [(date.fromisoformat(r["as_of_date"]), r["metric_value"]) for r in runs],
                PALETTE[0],
                hollow=[not r["promoted"] for r in runs],
            ),
            Series(
                "champion it faced",
                [(date.fromisoformat(r["as_of_date"]), r["champion_metric_value"]) for r in runs],
                PALETTE[1],
                dashed=True,
            ),
        ]
        multiples.append(
            f"<div><h3>{escape(kind)}: {escape(metric)} ({escape(better)})</h3>"
            + charts.line_chart(
                series,
                chart_id=f"model-{kind}",
                title=f"{kind}: {metric} of each model run; open circle = not promoted",
                y_format=lambda v: f"{v:.3g}",
            )
            + "</div>"
        )
    content = table + f'<div class="multiples">{"".join(multiples)}</div>'
    return _card(
        "models",
        "Models: champions and challengers",
        "out-of-time validation metric of every run up to the day; "
        "filled = promoted, open = champion kept",
        content,
        wide=True,
    )


def _quality_card(data: dict[str, Any]) -> str:
    entities = data["entities"]
    docs = data["data_docs"]
    rows = []
    for e in entities:
        d = e["on_day"]
        link = docs.get(e["source"])
        docs_cell = f'<a href="{escape(link)}">Data Docs</a>' if link else "not built"
        if d:
            rows.append(
                f"<tr><td>{escape(e['source'])}.{escape(e['entity'])}</td>"
                f'<td class="num">{number(d["rows_extracted"])}</td>'
                f'<td class="num">{number(d["rows_rejected_by_mapping"])}</td>'
                f'<td class="num">{number(d["rows_checked"])}</td>'
                f'<td class="num">{number(d["rows_quarantined"])}</td>'
                f'<td class="num">{percent(d["failing_share"], 2)}</td>'
                f"<td>{escape(d['failed_rules'] or '—')}</td><td>{docs_cell}</td></tr>"
            )
        else:
            rows.append(
                f"<tr><td>{escape(e['source'])}.{escape(e['entity'])}</td>"
                f'<td colspan="6" class="sub">not validated on this day</td>'
                f"<td>{docs_cell}</td></tr>"
            )
    table = (
        '<table><tr><th>source entity</th><th class="num">extracted</th>'
        '<th class="num">rejected by mapping</th><th class="num">checked</th>'
        '<th class="num">quarantined</th><th class="num">failing share</th>'
        f"<th>failed rules</th><th>docs</th></tr>{''.join(rows)}</table>"
        if rows
        else "<p class='sub'>No validation recorded in dq_results up to this day "
        "(days landed in bulk, like the demo's history, have none).</p>"
    )
    limit = data.get("max_failing_share")
    share_chart = charts.line_chart(
        [
            Series(
                f"{e['source']}.{e['entity']}",
                [(date.fromisoformat(h["as_of_date"]), h["failing_share"]) for h in e["history"]],
                PALETTE[i % len(PALETTE)],
            )
            for i, e in enumerate(entities)
        ],
        chart_id="dq-failing-share",
        title="Failing share per source entity and day",
        y_format=lambda v: percent(v, 1),
        reference=(limit, f"limit {percent(limit, 0)}") if limit is not None else None,
        y_floor=0.0,
        width=WIDE,
    )
    volumes = [
        "<div><h3>"
        + escape(f"{e['source']}.{e['entity']}: rows checked per day")
        + "</h3>"
        + charts.stacked_bars(
            [date.fromisoformat(h["as_of_date"]) for h in e["history"]],
            [
                ("clean", PALETTE[0], [float(h["rows_clean"]) for h in e["history"]]),
                ("quarantined", "#D55E00", [float(h["rows_quarantined"]) for h in e["history"]]),
            ],
            chart_id=f"dq-rows-{e['source']}-{e['entity']}",
            title=f"{e['source']}.{e['entity']}: clean and quarantined rows per day",
        )
        + "</div>"
        for e in entities
    ]
    content = (
        table
        + "<h3>Failing share over time</h3>"
        + share_chart
        + f'<div class="multiples">{"".join(volumes)}</div>'
    )
    return _card(
        "quality",
        "Data quality per source entity",
        f"Great Expectations results in dq_results, {data['since']} to {data['as_of_date']}",
        content,
        wide=True,
    )


def _drift_card(data: dict[str, Any]) -> str:
    threshold = data["threshold"]
    record = data["on_day"]
    if record:
        psi = sorted(
            ((name, value) for name, value in record["psi"].items() if value is not None),
            key=lambda item: -item[1],
        )
        over = record["over_threshold"]
        day_chart = charts.bar_chart(
            psi,
            chart_id="drift-features",
            title="Population stability index per churn feature",
            value_label=lambda v: f"{v:.3f}",
            colors=["#D55E00" if name in over else PALETTE[4] for name, _ in psi],
            marker=(threshold, f"retrain above {threshold:g}"),
        )
        verdict = (
            f"features over the threshold: {', '.join(over)} (churn retrains)"
            if over
            else "no feature over the threshold"
        )
        day_part = (
            f"<h3>This day, against {escape(record['champion_version'])}: "
            f"{escape(verdict)}</h3>{day_chart}"
        )
    else:
        day_part = (
            "<p class='sub'>No drift check on this day: churn trained on its schedule "
            "or had no champion yet (the check runs on the other days).</p>"
        )
    history = charts.line_chart(
        [
            Series(
                "largest PSI of the day",
                [(date.fromisoformat(h["as_of_date"]), h["max_psi"]) for h in data["history"]],
                PALETTE[4],
            )
        ],
        chart_id="drift-history",
        title="Largest feature PSI per day",
        y_format=lambda v: f"{v:.2g}",
        reference=(threshold, f"threshold {threshold:g}"),
        y_floor=0.0,
    )
    return _card(
        "drift",
        "Churn feature drift",
        "population stability index of the churn features against the champion's reference",
        f'<div class="multiples"><div>{day_part}</div>'
        f"<div><h3>Largest PSI per day</h3>{history}</div></div>",
        wide=True,
    )


def _audiences_card(data: dict[str, Any], summary: dict[str, Any]) -> str:
    on_day = data["on_day"]
    scored = summary.get("customers_scored") or 0
    rows = "".join(
        f"<tr><td>{escape(r['audience'])}</td><td>{escape(r['description'] or '')}</td>"
        f'<td class="num">{number(r["customers"])}</td>'
        f'<td class="num">{percent(r["customers"] / scored) if scored else "—"}</td></tr>'
        for r in on_day
    )
    table = (
        "<table><tr><th>audience</th><th>what it is</th>"
        '<th class="num">customers</th><th class="num">of customers scored</th></tr>'
        f"{rows}</table>"
        if on_day
        else "<p class='sub'>No audiences published for this day (the <code>audiences</code> "
        "task of <code>cva_customer_value</code> has not run for it).</p>"
    )
    history = data["history"]
    chart = charts.line_chart(
        [
            Series(
                name,
                [(date.fromisoformat(h["as_of_date"]), h["customers"]) for h in points],
                PALETTE[i % len(PALETTE)],
            )
            for i, (name, points) in enumerate(sorted(history.items()))
        ],
        chart_id="audience-sizes",
        title="Customers per audience and day",
        y_floor=0.0,
        width=WIDE,
    )
    return _card(
        "audiences",
        "Marketing audiences",
        f"audience_sizes, {data['since']} to {data['as_of_date']}; members in "
        "audience_members and exports/audiences/",
        table + "<h3>Audience sizes over time</h3>" + chart,
        wide=True,
    )
