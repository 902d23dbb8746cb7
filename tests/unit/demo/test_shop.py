"""Tests of the demo shop generator (cva_tasks.demo)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from cva_tasks.demo import feedback_text
from cva_tasks.demo.shop import (
    DEFAULT_END,
    DEFAULT_START,
    TABLES,
    ShopFrames,
    generate_frames,
    generate_shop,
    write_database,
    write_feedback_drops,
    write_ground_truth,
)

N_CUSTOMERS = 1000
START = pd.Timestamp(DEFAULT_START, tz="UTC")
END = pd.Timestamp(DEFAULT_END, tz="UTC") + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
FRAME_NAMES = (
    "customers",
    "products",
    "orders",
    "order_lines",
    "returns",
    "feedback",
    "truth_customers",
    "truth_affinities",
)
TS_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def shop() -> ShopFrames:
    return generate_frames(n_customers=N_CUSTOMERS, seed=11)


def _placed_lines(shop: ShopFrames) -> pd.DataFrame:
    lines = shop.order_lines.merge(
        shop.orders[["order_id", "status", "ordered_at"]], on="order_id", validate="m:1"
    )
    return lines[lines["status"] == "placed"]


# --------------------------------------------------------------------------- #
# Determinism and scale
# --------------------------------------------------------------------------- #


def test_same_seed_gives_identical_frames() -> None:
    a = generate_frames(n_customers=300, seed=3)
    b = generate_frames(n_customers=300, seed=3)
    for name in FRAME_NAMES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)


def test_different_seed_gives_different_frames() -> None:
    a = generate_frames(n_customers=300, seed=3)
    b = generate_frames(n_customers=300, seed=4)
    assert not a.orders.equals(b.orders)
    assert not a.customers["email"].equals(b.customers["email"])
    assert not a.feedback["comment"].equals(b.feedback["comment"])


def test_volumes_scale_with_customers(shop: ShopFrames) -> None:
    counts = shop.counts()
    assert counts["customers"] == N_CUSTOMERS
    assert 150 <= counts["products"] <= 300
    assert 8 <= counts["orders"] / N_CUSTOMERS <= 12
    assert 2.0 <= counts["order_lines"] / counts["orders"] <= 3.0
    small = generate_frames(n_customers=300, seed=11)
    assert len(small.products) < len(shop.products)


def test_column_names_and_types(shop: ShopFrames) -> None:
    assert list(shop.customers.columns) == [
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "country",
        "signup_at",
        "created_at",
        "updated_at",
    ]
    assert list(shop.orders.columns) == [
        "order_id",
        "customer_id",
        "ordered_at",
        "status",
        "created_at",
        "updated_at",
    ]
    assert list(shop.feedback.columns) == [
        "feedback_id",
        "customer_id",
        "order_id",
        "rating",
        "comment",
        "submitted_at",
    ]
    assert str(shop.orders["ordered_at"].dtype) == "datetime64[us, UTC]"
    assert set(shop.orders["status"]) == {"placed", "cancelled"}
    assert (
        shop.customers["email"].str.fullmatch(r"[a-z]+\.[a-z]+\.\d+@example\.(com|org|net)").all()
    )
    assert shop.customers["country"].value_counts().index[0] == "United Kingdom"
    assert set(shop.products["category"]) >= {"Home Decor", "Kitchen", "Clothing", "Beauty"}
    assert (shop.products["unit_price"] > 0).all()
    assert shop.products["name"].is_unique


# --------------------------------------------------------------------------- #
# Integrity
# --------------------------------------------------------------------------- #


def test_primary_keys_unique(shop: ShopFrames) -> None:
    for name, key in [
        ("customers", "customer_id"),
        ("products", "product_id"),
        ("orders", "order_id"),
        ("order_lines", "order_line_id"),
        ("returns", "return_id"),
        ("feedback", "feedback_id"),
        ("truth_customers", "customer_id"),
    ]:
        assert getattr(shop, name)[key].is_unique, name
    assert not shop.truth_affinities.duplicated(["customer_id", "product_id"]).any()
    assert not shop.order_lines.duplicated(["order_id", "product_id"]).any()
    assert shop.feedback["feedback_id"].str.fullmatch(r"F\d{7}").all()


def test_referential_integrity(shop: ShopFrames) -> None:
    orders, lines, returns = shop.orders, shop.order_lines, shop.returns
    assert lines["order_id"].isin(orders["order_id"]).all()
    assert lines["product_id"].isin(shop.products["product_id"]).all()
    assert orders["order_id"].isin(lines["order_id"]).all()  # no empty orders
    assert orders["customer_id"].isin(shop.customers["customer_id"]).all()
    with_signup = orders.merge(shop.customers[["customer_id", "signup_at"]], on="customer_id")
    assert (with_signup["ordered_at"] >= with_signup["signup_at"]).all()

    placed = _placed_lines(shop).set_index("order_line_id")
    assert returns["order_line_id"].isin(placed.index).all()
    line_qty = placed.loc[returns["order_line_id"], "quantity"].to_numpy()
    assert (returns["quantity"].to_numpy() > 0).all()
    assert (returns["quantity"].to_numpy() <= line_qty).all()
    assert (lines["quantity"] > 0).all() and (lines["unit_price"] > 0).all()

    fb = shop.feedback
    assert fb["customer_id"].isin(shop.customers["customer_id"]).all()
    with_order = fb.dropna(subset=["order_id"]).merge(
        orders[["order_id", "customer_id", "status"]], on="order_id", suffixes=("", "_order")
    )
    assert len(with_order) == fb["order_id"].notna().sum()
    assert (with_order["customer_id"] == with_order["customer_id_order"]).all()
    assert (with_order["status"] == "placed").all()
    aff = shop.truth_affinities
    assert aff["customer_id"].isin(shop.customers["customer_id"]).all()
    assert aff["product_id"].isin(shop.products["product_id"]).all()


def test_no_order_after_true_churn(shop: ShopFrames) -> None:
    truth = shop.truth_customers
    assert truth["latent_segment"].nunique() >= 4
    assert 0.1 < truth["churn_at"].isna().mean() < 0.9  # some never churn in the period
    merged = shop.orders.merge(truth, on="customer_id")
    churned = merged.dropna(subset=["churn_at"])
    assert len(churned) > 0
    assert (churned["ordered_at"] <= churned["churn_at"]).all()
    # churned customers do churn inside the period, too
    assert ((truth["churn_at"] >= START) & (truth["churn_at"] <= END)).sum() > 50


def test_timestamps_within_period(shop: ShopFrames) -> None:
    o = shop.orders
    assert o["ordered_at"].between(START, END).all()
    assert (o["created_at"] == o["ordered_at"]).all()
    assert (o["updated_at"] >= o["created_at"]).all() and (o["updated_at"] <= END).all()
    for name in ("order_lines", "returns"):
        df = getattr(shop, name)
        assert df["created_at"].between(START, END).all(), name
        assert (df["updated_at"] == df["created_at"]).all(), name
    assert shop.feedback["submitted_at"].between(START, END).all()
    c = shop.customers
    assert (c["updated_at"] >= c["created_at"]).all() and (c["updated_at"] <= END).all()
    assert (c["created_at"] == c["signup_at"]).all()
    assert (c["signup_at"] < START).any() and (c["signup_at"] >= START).any()
    assert (c["updated_at"] > c["created_at"]).any()
    p = shop.products
    assert (p["updated_at"] >= p["created_at"]).all() and (p["updated_at"] <= END).all()


def test_line_times_match_order_times(shop: ShopFrames) -> None:
    lines = shop.order_lines.merge(shop.orders[["order_id", "ordered_at"]], on="order_id")
    assert (lines["created_at"] == lines["ordered_at"]).all()


# --------------------------------------------------------------------------- #
# Realistic behaviour
# --------------------------------------------------------------------------- #


def test_seasonal_peak_and_weekly_pattern(shop: ShopFrames) -> None:
    t = shop.orders["ordered_at"]
    month = t.dt.month
    days_nov_dec = 61 * 2
    days_summer = 92 * 2  # June-August of both years
    rate_peak = month.isin([11, 12]).sum() / days_nov_dec
    rate_summer = month.isin([6, 7, 8]).sum() / days_summer
    assert rate_peak > 1.6 * rate_summer
    # orders spread over every month and the evening is busier than the night
    assert month.nunique() == 12
    hour = t.dt.hour
    assert (hour.between(18, 21)).sum() > 3 * (hour.between(2, 5)).sum()


def test_cancellations_in_proportion(shop: ShopFrames) -> None:
    o = shop.orders
    cancelled = o[o["status"] == "cancelled"]
    assert 0.01 <= len(cancelled) / len(o) <= 0.04
    delay = cancelled["updated_at"] - cancelled["ordered_at"]
    at_end = cancelled["updated_at"] == END
    assert (delay[~at_end] >= pd.Timedelta(minutes=5)).all()
    assert (delay <= pd.Timedelta(days=2)).all()
    placed = o[o["status"] == "placed"]
    assert (placed["updated_at"] == placed["created_at"]).all()


def test_returns_in_proportion(shop: ShopFrames) -> None:
    placed = _placed_lines(shop)
    returns = shop.returns.merge(placed, on="order_line_id", suffixes=("", "_line"))
    assert 0.03 <= len(returns) / len(placed) <= 0.07
    after = returns["returned_at"] - returns["ordered_at"]
    assert (after >= pd.Timedelta(days=3)).all() and (after <= pd.Timedelta(days=30)).all()
    assert (returns["returned_at"] == returns["created_at"]).all()
    assert returns["reason"].nunique() >= 5
    # sized goods come back more often and mostly for size
    cat = returns.merge(shop.products[["product_id", "category"]], on="product_id")["category"]
    line_cat = placed.merge(shop.products[["product_id", "category"]], on="product_id")["category"]
    clothing_rate = (cat == "Clothing").sum() / (line_cat == "Clothing").sum()
    other_rate = (cat != "Clothing").sum() / (line_cat != "Clothing").sum()
    assert clothing_rate > 1.5 * other_rate


def test_segments_behave_differently(shop: ShopFrames) -> None:
    truth = shop.truth_customers.set_index("customer_id")
    per_customer = shop.orders.groupby("customer_id").size().reindex(truth.index, fill_value=0)
    by_segment = per_customer.groupby(truth["latent_segment"]).mean()
    assert by_segment["champion"] > 2 * by_segment["loyal"] > 2 * by_segment["occasional"]
    assert by_segment["one_time"] < 2
    prices = shop.order_lines.merge(shop.orders[["order_id", "customer_id"]], on="order_id")
    prices["segment"] = truth.loc[prices["customer_id"], "latent_segment"].to_numpy()
    mean_price = prices.groupby("segment")["unit_price"].mean()
    assert mean_price["bargain_hunter"] < mean_price["champion"]
    lines_per_order = shop.order_lines.groupby("order_id").size()
    orders = shop.orders.set_index("order_id")
    seg_of_order = truth.loc[orders.loc[lines_per_order.index, "customer_id"], "latent_segment"]
    basket = lines_per_order.groupby(seg_of_order.to_numpy()).mean()
    assert basket["champion"] > basket["occasional"]


def test_repeat_buyers_repurchase_favourites(shop: ShopFrames) -> None:
    lines = shop.order_lines.merge(shop.orders[["order_id", "customer_id"]], on="order_id")
    counts = lines.groupby("customer_id").size()
    regulars = counts[counts >= 10].index
    assert len(regulars) > 50
    lines = lines[lines["customer_id"].isin(regulars)]
    fav = shop.truth_affinities
    fav = fav[fav["customer_id"].isin(regulars)]
    fav_keys = set(zip(fav["customer_id"], fav["product_id"], strict=True))
    is_fav = [k in fav_keys for k in zip(lines["customer_id"], lines["product_id"], strict=True)]
    observed = float(np.mean(is_fav))
    # chance: each line drawn by overall product popularity
    popularity = shop.order_lines["product_id"].value_counts(normalize=True)
    chance_per_customer = fav.assign(p=popularity.reindex(fav["product_id"]).fillna(0).to_numpy())
    chance = chance_per_customer.groupby("customer_id")["p"].sum()
    expected = float((chance.reindex(counts.loc[regulars].index) * counts.loc[regulars]).sum())
    expected /= float(counts.loc[regulars].sum())
    assert observed > 3 * expected
    assert observed > 0.2
    # the same product bought in several orders by the same customer
    repeats = lines.groupby(["customer_id", "product_id"])["order_id"].nunique()
    assert (repeats >= 3).mean() > 0.05


def test_feedback_volume_and_ratings(shop: ShopFrames) -> None:
    fb = shop.feedback
    placed = shop.orders[shop.orders["status"] == "placed"]
    about_orders = fb["order_id"].notna().sum()
    assert 0.15 <= about_orders / len(placed) <= 0.25
    assert fb["order_id"].isna().sum() > 0  # some general feedback
    assert 0.05 <= fb["rating"].isna().mean() <= 0.15
    rated = fb["rating"].dropna()
    assert set(rated.unique()) == {1, 2, 3, 4, 5}
    assert rated.value_counts().idxmax() == 5
    assert (fb["comment"].str.len() > 5).all()
    assert fb["submitted_at"].is_monotonic_increasing
    timing = fb.dropna(subset=["order_id"]).merge(
        shop.orders[["order_id", "ordered_at"]], on="order_id"
    )
    delay = timing["submitted_at"] - timing["ordered_at"]
    assert (delay >= pd.Timedelta(days=1)).all() and (delay <= pd.Timedelta(days=10)).all()


def test_feedback_text_agrees_with_rating(shop: ShopFrames) -> None:
    fb = shop.feedback.dropna(subset=["rating"])
    text = fb["comment"]

    def mean_rating(phrases: tuple[str, ...]) -> float:
        mask = np.zeros(len(fb), dtype=bool)
        for phrase in phrases:
            mask |= text.str.contains(phrase, regex=False).to_numpy()
        assert mask.sum() > 10, phrases
        return float(fb.loc[mask, "rating"].astype(float).mean())

    negative = mean_rating(feedback_text.CLOSERS[0])
    positive = mean_rating(feedback_text.CLOSERS[2])
    assert positive - negative > 1.5
    late = fb["comment"].str.lower().str.contains("late|never arrived on time|slow", regex=True)
    not_late = fb["comment"].str.lower().str.contains("wasn't late at all", regex=False)
    assert fb.loc[late & ~not_late, "rating"].mean() < fb.loc[~late, "rating"].mean() - 0.5


def test_feedback_text_variety(shop: ShopFrames) -> None:
    text = shop.feedback["comment"]
    assert text.nunique() > 0.6 * len(text)
    assert text.str.contains(" but ", regex=False).any()  # mixed statements
    negations = ("wasn't late at all", "not what I expected", "never arrived on time", "not worth")
    assert sum(text.str.contains(n, case=False, regex=False).any() for n in negations) >= 3
    names = shop.products["name"]
    mentions = text.str.contains("|".join(map(re.escape, names)), regex=True)
    assert 0.02 < mentions.mean() < 0.5


def test_compose_comments_many_distinct_texts() -> None:
    rng = np.random.default_rng(0)
    n = 100_000
    n_aspects = len(feedback_text.ASPECTS)
    comments = feedback_text.compose_comments(
        rng,
        rating=rng.integers(1, 6, size=n),
        polarity=rng.integers(0, 2, size=(n, n_aspects)).astype(np.int8),
        salience=rng.random((n, n_aspects)),
        product_name=np.full(n, "Ceramic Blue Mug", dtype=object),
    )
    assert len(comments) == n
    assert len(set(comments)) > 10_000
    assert not any("{product}" in c for c in comments[:1000])
    mixed = [c for c in comments[:5000] if " but " in c]
    assert mixed and all(c[0].isupper() for c in comments[:1000])


# --------------------------------------------------------------------------- #
# Writers
# --------------------------------------------------------------------------- #


def test_write_database_sqlite(shop: ShopFrames, tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    url = f"sqlite:///{path}"
    write_database(shop, url)
    write_database(shop, url)  # drops and recreates
    con = sqlite3.connect(path)
    try:
        for table in TABLES:
            (count,) = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            assert count == len(getattr(shop, table)), table
        row = con.execute(
            "SELECT ordered_at, created_at, updated_at, typeof(ordered_at) FROM orders "
            "ORDER BY order_id LIMIT 1"
        ).fetchone()
        assert all(TS_TEXT.match(v) for v in row[:3]) and row[3] == "text"
        first = shop.orders.iloc[0]
        assert row[0] == first["ordered_at"].strftime("%Y-%m-%d %H:%M:%S")
        (signup,) = con.execute("SELECT signup_at FROM customers LIMIT 1").fetchone()
        assert TS_TEXT.match(signup)
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {f"ix_{t}_updated_at" for t in TABLES} <= indexes
        cancelled = con.execute(
            "SELECT COUNT(*) FROM orders WHERE status = 'cancelled' AND updated_at > created_at"
        ).fetchone()[0]
        assert cancelled == (shop.orders["status"] == "cancelled").sum()
        # string comparison of timestamps works for incremental extraction
        (recent,) = con.execute(
            "SELECT COUNT(*) FROM order_lines WHERE updated_at >= '2025-12-01 00:00:00'"
        ).fetchone()
        assert (
            recent == (shop.order_lines["updated_at"] >= pd.Timestamp("2025-12-01", tz="UTC")).sum()
        )
        price = con.execute("SELECT SUM(quantity * unit_price) FROM order_lines").fetchone()[0]
        expected = (shop.order_lines["quantity"] * shop.order_lines["unit_price"]).sum()
        assert price == pytest.approx(expected)
    finally:
        con.close()


def test_write_database_generic_fallback(tmp_path: Path) -> None:
    from cva_tasks.demo.shop import database as shop_module

    frames = generate_frames(n_customers=50, seed=1)
    url = sa.engine.make_url(f"sqlite:///{tmp_path / 'generic.db'}")
    shop_module._write_generic(frames, url, None)
    shop_module._write_generic(frames, url, None)  # drops and recreates
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for table in TABLES:
                count = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()
                assert count == len(getattr(frames, table)), table
        assert "ix_orders_updated_at" in {
            i["name"] for i in sa.inspect(engine).get_indexes("orders")
        }
    finally:
        engine.dispose()


def test_write_database_rejects_schema_for_sqlite(shop: ShopFrames, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema"):
        write_database(shop, f"sqlite:///{tmp_path / 'x.db'}", schema="other")


def test_write_feedback_drops(shop: ShopFrames, tmp_path: Path) -> None:
    drops = tmp_path / "drops"
    drops.mkdir()
    (drops / "feedback_1999-01-01.jsonl").write_text("stale\n")
    n_files = write_feedback_drops(shop, drops)
    n_days = (DEFAULT_END - DEFAULT_START).days + 1
    files = sorted(drops.glob("feedback_*.jsonl"))
    assert n_files == n_days == len(files)
    assert files[0].name == "feedback_2024-01-01.jsonl"
    assert files[-1].name == "feedback_2025-12-31.jsonl"
    total = 0
    empty = 0
    ids = []
    for f in files:
        day = f.name[len("feedback_") : -len(".jsonl")]
        rows = [json.loads(line) for line in f.read_text().splitlines()]
        empty += not rows
        stamps = [r["submitted_at"] for r in rows]
        assert stamps == sorted(stamps)
        for r in rows:
            assert list(r) == [
                "feedback_id",
                "customer_id",
                "order_id",
                "rating",
                "comment",
                "submitted_at",
            ]
            assert r["submitted_at"].startswith(day + "T") and r["submitted_at"].endswith("Z")
            datetime.strptime(r["submitted_at"], "%Y-%m-%dT%H:%M:%SZ")
            assert isinstance(r["customer_id"], int)
            assert r["order_id"] is None or isinstance(r["order_id"], int)
            assert r["rating"] is None or r["rating"] in (1, 2, 3, 4, 5)
            assert isinstance(r["comment"], str) and r["comment"]
            ids.append(r["feedback_id"])
        total += len(rows)
    assert total == len(shop.feedback)
    assert ids == shop.feedback["feedback_id"].tolist()
    assert empty >= 1 or len(shop.feedback) > 10 * n_days


def test_write_ground_truth(shop: ShopFrames, tmp_path: Path) -> None:
    write_ground_truth(shop, tmp_path)
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    affinities = pd.read_parquet(tmp_path / "item_affinities.parquet")
    assert list(customers.columns) == ["customer_id", "latent_segment", "churn_at", "order_rate"]
    assert list(affinities.columns) == ["customer_id", "product_id", "affinity"]
    assert len(customers) == N_CUSTOMERS
    assert customers["churn_at"].isna().any() and customers["churn_at"].notna().any()
    assert (affinities["affinity"] > 0).all()
    per_customer = affinities.groupby("customer_id")["affinity"].sum()
    assert (per_customer < 1).all()
    assert "customers.parquet" in (tmp_path / "README.md").read_text()


def test_generate_shop_outputs_are_reproducible(tmp_path: Path) -> None:
    start, end = date(2025, 1, 1), date(2025, 3, 31)
    a = generate_shop(tmp_path / "a", n_customers=200, seed=5, start=start, end=end)
    b = generate_shop(tmp_path / "b", n_customers=200, seed=5, start=start, end=end)
    json.dumps(a)
    assert a["counts"] == b["counts"]
    assert a["counts"]["customers"] == 200 and a["counts"]["orders"] > 0
    assert a["feedback_files"] == 90
    assert a["db_url"].startswith("sqlite:///") and a["db_url"].endswith("shop.db")
    assert a["period"] == {"start": "2025-01-01", "end": "2025-03-31"}
    rel = [
        p.relative_to(tmp_path / "a")
        for p in sorted((tmp_path / "a").rglob("*"))
        if p.is_file() and p.name != "shop.db"
    ]
    assert Path("ground_truth/customers.parquet") in rel
    assert Path("drops/feedback/feedback_2025-03-31.jsonl") in rel
    for r in rel:
        assert (tmp_path / "a" / r).read_bytes() == (tmp_path / "b" / r).read_bytes(), r
    tables = {}
    for side in ("a", "b"):
        con = sqlite3.connect(tmp_path / side / "shop.db")
        tables[side] = {t: con.execute(f"SELECT * FROM {t}").fetchall() for t in TABLES}
        con.close()
    assert tables["a"] == tables["b"]
    with sqlite3.connect(tmp_path / "a" / "shop.db") as con:
        (last,) = con.execute("SELECT MAX(updated_at) FROM orders").fetchone()
    assert last <= "2025-03-31 23:59:59"


def test_short_period_and_tiny_shop() -> None:
    frames = generate_frames(n_customers=5, seed=1, start=date(2025, 6, 1), end=date(2025, 6, 1))
    assert len(frames.customers) == 5
    day_end = pd.Timestamp("2025-06-01 23:59:59", tz="UTC")
    assert (frames.orders["ordered_at"] <= day_end).all()
    with pytest.raises(ValueError):
        generate_frames(n_customers=0)
    with pytest.raises(ValueError):
        generate_frames(start=date(2025, 1, 2), end=date(2025, 1, 1))


# --------------------------------------------------------------------------- #
# PostgreSQL
# --------------------------------------------------------------------------- #

PG_DSN = os.environ.get("CVA_TEST_PG_DSN", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.mark.postgres
def test_write_database_postgres() -> None:
    engine = sa.create_engine(PG_DSN, connect_args={"connect_timeout": 5})
    try:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            where = sa.engine.make_url(PG_DSN).render_as_string(hide_password=True)
            message = f"PostgreSQL not reachable at {where}; start it or set CVA_TEST_PG_DSN"
            if os.environ.get("CI"):
                pytest.fail(f"{message}: {exc}")
            pytest.skip(message)
        schema = f"cva_demo_test_{uuid.uuid4().hex[:10]}"
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            frames = generate_frames(n_customers=300, seed=2)
            write_database(frames, PG_DSN, schema=schema)
            write_database(frames, PG_DSN, schema=schema)  # drops and recreates
            with engine.connect() as conn:
                for table in TABLES:
                    count = conn.execute(sa.text(f'SELECT COUNT(*) FROM "{schema}".{table}'))
                    assert count.scalar() == len(getattr(frames, table)), table
                row = conn.execute(
                    sa.text(
                        f'SELECT order_id, ordered_at, updated_at, status FROM "{schema}".orders '
                        "ORDER BY order_id LIMIT 1"
                    )
                ).one()
                first = frames.orders.iloc[0]
                assert isinstance(row.ordered_at, datetime) and row.ordered_at.tzinfo is None
                assert row.ordered_at == first["ordered_at"].tz_localize(None).to_pydatetime()
                assert row.status == first["status"]
                types = dict(
                    conn.execute(
                        sa.text(
                            "SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = :s AND table_name = 'order_lines'"
                        ),
                        {"s": schema},
                    ).all()
                )
                assert types["updated_at"] == "timestamp without time zone"
                assert types["order_line_id"] == "integer"
                total = conn.execute(
                    sa.text(f'SELECT SUM(quantity * unit_price) FROM "{schema}".order_lines')
                ).scalar()
                expected = (frames.order_lines["quantity"] * frames.order_lines["unit_price"]).sum()
                assert total == pytest.approx(expected)
                indexes = conn.execute(
                    sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"),
                    {"s": schema},
                ).scalars()
                assert {f"ix_{t}_updated_at" for t in TABLES} <= set(indexes)
                since = datetime(2025, 12, 1) - timedelta(seconds=1)
                recent = conn.execute(
                    sa.text(f'SELECT COUNT(*) FROM "{schema}".orders WHERE updated_at > :t'),
                    {"t": since},
                ).scalar()
                assert recent == (frames.orders["updated_at"] > pd.Timestamp(since, tz="UTC")).sum()
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        engine.dispose()
