"""Recommenders: known answers on a checkerboard of co-purchases, exclusion of bought
items, cold start by segment/country/global, buy-again, reasons, determinism,
persistence, chunking, metrics, out-of-time training and bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from cva_tasks.models import recommend as rec
from cva_tasks.models.recommend.ranking import top_k

AS_OF = pd.Timestamp("2024-07-01", tz="UTC")
NAMES = {
    "A": "WHITE HANGING HEART T-LIGHT HOLDER",
    "B": "RED WOOLLY HOTTIE WHITE HEART",
    "C": "JUMBO BAG RED RETROSPOT",
    "D": "PARTY BUNTING",
    "E": "REGENCY CAKESTAND 3 TIER",
}
ITEMS = pd.DataFrame({"item_id": list(NAMES), "name": list(NAMES.values())})
MODELS = ("item_cf", "als")
# Small factors for a tiny catalogue; everything else stays at the defaults.
PARAMS = {"als": {"factors": 4, "iterations": 20}}


def _lines(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """``(customer, item, ISO day, quantity)`` -> an interactions frame."""
    frame = pd.DataFrame(rows, columns=["customer_id", "item_id", "day", "quantity"])
    frame["occurred_at"] = pd.to_datetime(frame.pop("day")).dt.tz_localize("UTC")
    return frame[["customer_id", "item_id", "quantity", "occurred_at"]]


def checkerboard() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two blocks of co-purchases: {A, B} and {C, D}; C and D sell best overall.

    20 customers bought A and B, 30 bought C and D (so a bestseller list starts with C
    and D, not B), E was bought by 5 customers alone; ``new_a`` bought only A,
    ``new_c`` only C. Every customer is in the United Kingdom except the C/D block,
    in France.
    """
    rows, countries = [], []
    for n in range(20):
        cid = f"ab{n:02d}"
        rows += [(cid, "A", "2024-06-10", 1), (cid, "B", "2024-06-12", 2)]
        countries.append((cid, "United Kingdom"))
    for n in range(30):
        cid = f"cd{n:02d}"
        rows += [(cid, "C", "2024-06-11", 1), (cid, "D", "2024-06-13", 1)]
        countries.append((cid, "France"))
    for n in range(5):
        cid = f"e{n}"
        rows.append((cid, "E", "2024-06-20", 1))
        countries.append((cid, "United Kingdom"))
    rows += [("new_a", "A", "2024-06-25", 1), ("new_a", "A", "2024-06-26", 1)]
    rows += [("new_c", "C", "2024-06-25", 1), ("new_c", "C", "2024-06-27", 3)]
    countries += [("new_a", "United Kingdom"), ("new_c", "France")]
    customers = pd.DataFrame(countries, columns=["customer_id", "country"])
    return _lines(rows), customers


def fit(name: str, interactions=None, customers=None, **options) -> rec.Recommender:
    if interactions is None:
        interactions, customers = checkerboard()
    return rec.Recommender(
        name,
        seed=3,
        model_params=PARAMS.get(name),
        **{"min_items": 1, "min_group_customers": 5, "recent_window_days": 30, **options},
    ).fit(interactions, ITEMS, customers, AS_OF)


def next_best(frame: pd.DataFrame, customer: str) -> list[str]:
    rows = frame[(frame["customer_id"] == customer) & (frame["list"] == rec.NEXT_BEST)]
    return rows.sort_values("rank")["item_id"].tolist()


# --------------------------------------------------------------------------- #
# Known answers
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("name", MODELS)
def test_checkerboard_recommends_the_co_purchased_item(name):
    interactions, _ = checkerboard()
    model = fit(name)
    out = model.predict(["new_a", "new_c"], interactions, k=2, as_of=AS_OF)
    # The bestsellers would say C, D; collaborative filtering knows A goes with B.
    assert next_best(out, "new_a")[0] == "B"
    assert next_best(out, "new_c")[0] == "D"
    first = out[(out["customer_id"] == "new_a") & (out["rank"] == 1) & (out["list"] == "next_best")]
    assert first["reason"].iloc[0] == f"because you bought {NAMES['A']}"
    assert first["item_name"].iloc[0] == NAMES["B"]
    assert set(out.loc[out["list"] == rec.NEXT_BEST, "model"]) == {name}


def test_bestsellers_recommend_what_sells_most_not_what_goes_together():
    interactions, _ = checkerboard()
    model = fit("bestsellers_recent")
    out = model.predict(["new_a"], interactions, k=2, as_of=AS_OF)
    assert next_best(out, "new_a") == ["C", "D"]  # 31 and 30 buyers against B's 20
    assert set(out.loc[out["list"] == rec.NEXT_BEST, "reason"]) == {
        "bestseller in the last 30 days"
    }
    scores = out.loc[out["list"] == rec.NEXT_BEST, "score"].tolist()
    n_buyers = interactions["customer_id"].nunique()
    assert scores == pytest.approx([31 / n_buyers, 30 / n_buyers])


@pytest.mark.parametrize("name", (*MODELS, "bestsellers_recent"))
def test_bought_items_are_excluded_unless_asked(name):
    interactions, _ = checkerboard()
    model = fit(name)
    customers = ["new_a", "new_c", "ab00", "cd05"]
    out = model.predict(customers, interactions, k=5, as_of=AS_OF, buy_again_k=0)
    bought = interactions.groupby("customer_id")["item_id"].agg(set)
    for customer in customers:
        listed = next_best(out, customer)
        assert listed, customer
        assert not set(listed) & bought[customer], (customer, listed)
    kept = model.predict(
        ["new_a"], interactions, k=5, exclude_bought=False, as_of=AS_OF, buy_again_k=0
    )
    assert "A" in next_best(kept, "new_a")
    assert len(next_best(kept, "new_a")) == 5  # the whole catalogue, A included


def test_short_lists_are_filled_with_recent_bestsellers_and_say_so():
    interactions, _ = checkerboard()
    model = fit("item_cf", trend_weight=0.0)
    out = model.predict(["new_a"], interactions, k=4, as_of=AS_OF, buy_again_k=0)
    rows = out.sort_values("rank")
    # Only B co-occurs with A; the other three slots are the 30-day bestsellers.
    assert rows["item_id"].tolist()[0] == "B"
    assert sorted(rows["item_id"].tolist()[1:]) == ["C", "D", "E"]
    assert rows["reason"].tolist()[1:] == ["bestseller in the last 30 days"] * 3
    assert rows["score"].tolist()[1:] == [0.0, 0.0, 0.0]


# --------------------------------------------------------------------------- #
# Cold start
# --------------------------------------------------------------------------- #


def test_cold_start_uses_segment_then_country_then_everybody():
    interactions, customers = checkerboard()
    customers = customers.assign(segment=None)
    # ab00..ab09 are "champions": their bestsellers are A and B.
    customers.loc[customers["customer_id"].isin([f"ab{n:02d}" for n in range(10)]), "segment"] = (
        "champions"
    )
    newcomers = pd.DataFrame(
        {
            "customer_id": ["fr", "champ", "nowhere", "tiny"],
            "country": ["France", "France", "Atlantis", "Iceland"],
            "segment": [None, "champions", None, None],
        }
    )
    everybody = pd.concat([customers, newcomers], ignore_index=True)
    everybody.loc[everybody["customer_id"] == "e0", "country"] = "Iceland"  # 1 buyer < 5
    model = fit("item_cf", interactions, everybody)
    ids = ["fr", "champ", "nowhere", "tiny"]
    out = model.predict(ids, interactions, k=2, as_of=AS_OF, customers=everybody)
    assert next_best(out, "fr") == ["C", "D"]
    assert sorted(next_best(out, "champ")) == ["A", "B"]
    assert next_best(out, "nowhere") == ["C", "D"]  # global: 31 and 30 buyers
    assert next_best(out, "tiny") == ["C", "D"]  # Iceland has 1 buyer: too few
    by_customer = out.groupby("customer_id", observed=True).first()
    assert by_customer.loc["fr", "model"] == "bestsellers_recent/country"
    assert by_customer.loc["fr", "reason"] == "bestseller in France in the last 30 days"
    assert by_customer.loc["champ", "model"] == "bestsellers_recent/segment"
    assert (
        by_customer.loc["champ", "reason"]
        == "bestseller among champions customers in the last 30 days"
    )
    assert by_customer.loc["nowhere", "model"] == "bestsellers_recent/global"
    assert by_customer.loc["nowhere", "reason"] == "bestseller in the last 30 days"


def test_customers_with_too_few_items_are_cold_and_keep_exclusion():
    interactions, _ = checkerboard()
    model = fit("item_cf", min_items=2)
    out = model.predict(["new_a", "ab00"], interactions, k=2, as_of=AS_OF)
    # new_a bought one distinct item (twice): cold start, UK bestsellers without A.
    assert next_best(out, "new_a") == ["B", "E"]
    assert out.loc[(out["customer_id"] == "new_a") & (out["list"] == "next_best"), "model"].iloc[
        0
    ] == ("bestsellers_recent/country")
    # ab00 bought two: warm, item-CF.
    assert set(out.loc[(out["customer_id"] == "ab00") & (out["list"] == "next_best"), "model"]) == {
        "item_cf"
    }


def test_fitted_groups_serve_when_no_customer_frame_is_given():
    interactions, customers = checkerboard()
    model = fit("als", interactions, customers)
    frame_given = model.predict(["cd00"], interactions.iloc[:0], k=2, as_of=AS_OF)
    assert next_best(frame_given, "cd00") == ["C", "D"]  # France's, from the fit
    assert frame_given["model"].iloc[0] == "bestsellers_recent/country"


# --------------------------------------------------------------------------- #
# Buy again
# --------------------------------------------------------------------------- #


def test_buy_again_lists_repeated_items_by_frequency_and_recency():
    rows = [
        ("x", "A", "2024-03-01", 1),
        ("x", "A", "2024-04-01", 1),
        ("x", "A", "2024-06-01", 1),
        ("x", "B", "2024-06-20", 1),
        ("x", "B", "2024-06-20", 4),  # same day: one purchase day
        ("x", "B", "2024-06-25", 1),
        ("x", "C", "2024-06-29", 1),  # once: not a repeat
        ("y", "D", "2024-06-01", 1),
    ]
    interactions = _lines(rows)
    model = fit("bestsellers_recent", interactions, None)
    out = model.predict(["x", "y"], interactions, k=0, as_of=AS_OF)
    again = out[out["list"] == rec.BUY_AGAIN]
    assert again["customer_id"].tolist() == ["x", "x"]
    # B: 2 recent days outweigh A's 3 older days under a 90-day half-life.
    assert again["item_id"].tolist() == ["B", "A"]
    assert again["rank"].tolist() == [1, 2]
    assert again["reason"].tolist() == [
        "bought on 2 days, last on 2024-06-25",
        "bought on 3 days, last on 2024-06-01",
    ]
    assert set(again["model"]) == {"buy_again"}
    expected_b = 2 ** (-11 / 90) + 2 ** (-6 / 90)
    assert again["score"].iloc[0] == pytest.approx(expected_b)
    assert model.predict(["x"], interactions, k=0, as_of=AS_OF, buy_again_k=0).empty
    strict = fit(
        "bestsellers_recent", interactions, None, buy_again=rec.BuyAgain(k=5, min_purchases=3)
    )
    assert strict.predict(["x"], interactions, k=0, as_of=AS_OF)["item_id"].tolist() == ["A"]


# --------------------------------------------------------------------------- #
# Determinism, persistence, chunking
# --------------------------------------------------------------------------- #


def _digest(frame: pd.DataFrame) -> str:
    plain = frame.astype({c: "str" for c in ("list", "item_name", "reason", "model")})
    return hashlib.sha1(pd.util.hash_pandas_object(plain, index=False).values.tobytes()).hexdigest()


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_model_and_lists(name):
    interactions, customers = checkerboard()
    ids = interactions["customer_id"].unique()
    first, second = fit(name), fit(name)
    a = first.predict(ids, interactions, as_of=AS_OF)
    b = second.predict(ids, interactions, as_of=AS_OF)
    pd.testing.assert_frame_equal(a, b)
    if name == "als":
        np.testing.assert_array_equal(first.next_best.item_factors_, second.next_best.item_factors_)
        other = rec.Recommender("als", seed=4, model_params=PARAMS["als"]).fit(
            interactions, ITEMS, customers, AS_OF
        )
        assert not np.array_equal(first.next_best.item_factors_, other.next_best.item_factors_)


def test_line_order_does_not_change_the_model():
    interactions, customers = checkerboard()
    shuffled = interactions.sample(frac=1.0, random_state=5).reset_index(drop=True)
    a = fit("als", interactions, customers).next_best.item_factors_
    b = fit("als", shuffled, customers).next_best.item_factors_
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", (*MODELS, "bestsellers_all_time"))
def test_save_load_round_trip(name, tmp_path):
    interactions, _ = checkerboard()
    model = fit(name)
    model.metrics = {"ndcg_at_10": 0.5}
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "catalogue.npz",
        "fallback.npz",
        "groups.npz",
        "next_best.npz",
        "recommender.json",
    ]
    loaded = rec.Recommender.load(tmp_path)
    assert loaded.params == model.params
    assert loaded.metrics == model.metrics
    ids = [*interactions["customer_id"].unique(), "stranger"]
    before = model.predict(ids, interactions, as_of=AS_OF)
    after = loaded.predict(ids, interactions, as_of=AS_OF)
    pd.testing.assert_frame_equal(before, after)


def test_integer_ids_survive_a_round_trip(tmp_path):
    interactions, customers = checkerboard()
    codes = {c: n for n, c in enumerate(sorted(customers["customer_id"]))}
    item_codes = {item: 100 + n for n, item in enumerate(NAMES)}
    numeric = interactions.assign(
        customer_id=interactions["customer_id"].map(codes).astype("int64"),
        item_id=interactions["item_id"].map(item_codes).astype("int64"),
    )
    items = ITEMS.assign(item_id=ITEMS["item_id"].map(item_codes).astype("int64"))
    model = rec.Recommender(min_items=1).fit(
        numeric,
        items,
        customers.assign(customer_id=customers["customer_id"].map(codes)),
        AS_OF,
    )
    model.save(tmp_path)
    loaded = rec.Recommender.load(tmp_path)
    out = loaded.predict([codes["new_a"]], numeric, k=1, as_of=AS_OF)
    assert out["item_id"].dtype == np.int64 and out["customer_id"].dtype == np.int64
    assert out["item_id"].iloc[0] == item_codes["B"]


def test_save_needs_an_existing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an existing folder"):
        fit("item_cf").save(tmp_path / "missing")


@pytest.mark.parametrize("name", MODELS)
def test_chunks_give_the_same_lists(name):
    interactions, _ = checkerboard()
    model = fit(name)
    ids = interactions["customer_id"].unique()
    whole = model.predict(ids, interactions, as_of=AS_OF)
    chunked = model.predict(ids, interactions, as_of=AS_OF, chunk_customers=7)
    pd.testing.assert_frame_equal(whole, chunked)
    assert len(list(model.predict_chunks(ids, interactions, chunk_customers=7))) == 9


def test_output_columns_grain_and_order():
    interactions, _ = checkerboard()
    out = fit("item_cf").predict(["new_c", "new_a", "nobody"], interactions, as_of=AS_OF)
    assert tuple(out.columns) == rec.OUTPUT_COLUMNS
    assert not out.duplicated(["customer_id", "list", "rank"]).any()
    assert list(dict.fromkeys(out["customer_id"])) == ["new_c", "new_a", "nobody"]
    assert (
        out.groupby(["customer_id", "list"], observed=True)["rank"]
        .apply(lambda r: r.tolist() == list(range(1, len(r) + 1)))
        .all()
    )


def test_top_k_breaks_ties_by_item_and_pads():
    scores = np.array([[1.0, 3.0, 3.0, -np.inf], [0.5, -np.inf, -np.inf, -np.inf]], np.float32)
    items, values = top_k(scores, 3)
    assert items.tolist() == [[1, 2, 0], [0, -1, -1]]
    assert values[0].tolist() == [3.0, 3.0, 1.0]


# --------------------------------------------------------------------------- #
# Metrics and out-of-time training
# --------------------------------------------------------------------------- #


def test_ranking_metrics_by_hand():
    recs = pd.DataFrame(
        {
            "customer_id": ["u"] * 3 + ["v"] * 3,
            "item_id": ["a", "b", "c", "d", "e", "f"],
            "rank": [1, 2, 3, 1, 2, 3],
        }
    )
    relevant = pd.DataFrame({"customer_id": ["u", "u", "v", "w"], "item_id": ["b", "z", "d", "q"]})
    m = rec.ranking_metrics(recs, relevant, k=3, catalogue_size=12)
    # u: hit at rank 2 of 2 relevant; v: hit at rank 1 of 1; w: no list at all.
    ndcg_u = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert m["ndcg_at_3"] == pytest.approx((ndcg_u + 1 + 0) / 3)
    assert m["precision_at_3"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert m["recall_at_3"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["map_at_3"] == pytest.approx(((1 / 2) / 2 + 1 + 0) / 3)
    assert m["coverage_at_3"] == pytest.approx(6 / 12)
    assert m["customers"] == 3


def test_new_items_after_keeps_first_purchases_of_returning_customers():
    interactions = _lines(
        [
            ("u", "A", "2024-05-01", 1),
            ("u", "A", "2024-06-05", 1),  # bought before: not new
            ("u", "B", "2024-06-06", 1),
            ("v", "C", "2024-06-07", 1),  # nothing before: not counted
            ("w", "A", "2024-05-02", 1),
            ("w", "D", "2024-07-02", 1),  # after the end
        ]
    )
    split = pd.Timestamp("2024-06-01", tz="UTC")
    fresh = rec.new_items_after(interactions, split, AS_OF)
    assert fresh.to_dict("records") == [{"customer_id": "u", "item_id": "B"}]


def _two_clusters(seed: int = 0) -> pd.DataFrame:
    """200 customers in two taste clusters buying over 120 days, for the validation."""
    rng = np.random.default_rng(seed)
    rows = []
    start = AS_OF - pd.Timedelta(days=120)
    for n in range(200):
        cluster = ["A", "B"] if n % 2 else ["C", "D"]
        for _ in range(int(rng.integers(2, 6))):
            day = start + pd.Timedelta(days=int(rng.integers(0, 120)))
            item = cluster[int(rng.integers(0, 2))] if rng.random() < 0.9 else "E"
            rows.append((f"c{n}", item, day.date().isoformat(), 1))
    return _lines(rows)


def test_train_recommenders_validates_chooses_and_refits():
    interactions = _two_clusters()
    model, report = rec.train_recommenders(
        interactions,
        ITEMS,
        None,
        AS_OF,
        validation_days=30,
        seed=0,
        model_params=PARAMS,
    )
    assert set(report["models"]) == set(rec.CANDIDATES)
    best = max(report["models"], key=lambda n: report["models"][n]["ndcg_at_10"])
    assert report["chosen"] == model.model_name
    assert report["models"][report["chosen"]]["ndcg_at_10"] == report["models"][best]["ndcg_at_10"]
    for figures in report["models"].values():
        assert {"precision_at_10", "recall_at_10", "map_at_10", "coverage_at_10"} <= set(figures)
        assert figures["customers"] == report["validation"]["customers"] > 0
    # Refitted on everything before as_of, validation window included.
    assert model.as_of == AS_OF
    assert model.training["lines"] == len(interactions)
    assert model.metrics == report
    assert report["validation"]["start"] == (AS_OF - pd.Timedelta(days=30)).isoformat()


def test_train_recommenders_refuses_an_empty_validation_window():
    interactions = _two_clusters()
    early = interactions[interactions["occurred_at"] < AS_OF - pd.Timedelta(days=40)]
    with pytest.raises(ValueError, match="cannot validate"):
        rec.train_recommenders(early, ITEMS, None, AS_OF, validation_days=30)


def test_fit_ignores_lines_at_or_after_as_of():
    interactions, customers = checkerboard()
    later = _lines([("late", "E", "2024-07-01", 1), ("late", "E", "2024-08-01", 1)])
    model = fit("bestsellers_all_time", pd.concat([interactions, later]), customers)
    assert model.training["lines"] == len(interactions)
    assert model.next_best.n_buyers_ == interactions["customer_id"].nunique()


# --------------------------------------------------------------------------- #
# Bad input
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns="quantity"), r"lacks column\(s\) \['quantity'\]"),
        (lambda f: f.assign(quantity=0), "quantity must be positive"),
        (lambda f: f.assign(item_id=None), "item_id has .* null"),
        (
            lambda f: f.assign(occurred_at=f["occurred_at"].dt.tz_localize(None)),
            "occurred_at must be a timezone-aware datetime",
        ),
    ],
)
def test_bad_interactions_are_named(change, message):
    interactions, customers = checkerboard()
    with pytest.raises(ValueError, match=message):
        rec.Recommender().fit(change(interactions), ITEMS, customers, AS_OF)


def test_other_bad_input_is_named():
    interactions, customers = checkerboard()
    with pytest.raises(ValueError, match="missing from items"):
        rec.Recommender().fit(interactions, ITEMS[ITEMS["item_id"] != "E"], customers, AS_OF)
    with pytest.raises(ValueError, match=r"customers\.customer_id must be unique"):
        rec.Recommender().fit(interactions, ITEMS, pd.concat([customers, customers]), AS_OF)
    with pytest.raises(ValueError, match="as_of must be timezone-aware"):
        rec.Recommender().fit(interactions, ITEMS, customers, pd.Timestamp("2024-07-01"))
    with pytest.raises(ValueError, match="no interaction before as_of"):
        rec.Recommender().fit(interactions, ITEMS, customers, pd.Timestamp("2000-01-01", tz="UTC"))
    with pytest.raises(ValueError, match="unknown recommender 'svd'"):
        rec.Recommender("svd").fit(interactions, ITEMS, customers, AS_OF)
    model = fit("item_cf")
    with pytest.raises(ValueError, match="customer_ids must be unique"):
        model.predict(["new_a", "new_a"], interactions)
    with pytest.raises(ValueError, match="half_life_days must be positive"):
        rec.Weighting(half_life_days=0)
