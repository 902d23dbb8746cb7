"""RFM scores and named segments from a rule table kept in configuration.

Scores are quintiles of the day's active customers, computed on percentile
ranks with ties averaged, so customers with the same value always share a score
(a plain ``qcut`` fails or splits ties when 40% of customers have one order).

F is the exception (:func:`frequency_scores`): one order (or none counted) is
always F = 1, and only repeat buyers are ranked, into 2-5. On a shop where almost
everyone buys once, quintiles of the average rank gave every one-time buyer F = 3
(the middle of their tie) and left F = 1 and 2 empty.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "config" / "rfm_segments.yaml"
LETTERS = ("r", "f", "m")


class RuleTableError(ValueError):
    """The segment rule table is not usable."""


@dataclass(frozen=True)
class SegmentRule:
    name: str
    description: str
    ranges: dict[str, tuple[int, int]]

    def matches(self, scores: dict[str, int]) -> bool:
        return all(low <= scores[k] <= high for k, (low, high) in self.ranges.items())


@dataclass(frozen=True)
class RuleTable:
    """The parsed rule table.

    Attributes:
        rules: segments in priority order (first match wins).
        active_within_days: customers with an order within this many days are scored.
        inactive_segment: the segment of everyone else.
    """

    rules: tuple[SegmentRule, ...]
    active_within_days: float | None
    inactive_segment: str

    def segment_of(self, r: int, f: int, m: int) -> str:
        scores = {"r": r, "f": f, "m": m}
        for rule in self.rules:
            if rule.matches(scores):
                return rule.name
        raise RuleTableError(f"no segment rule covers r={r} f={f} m={m}")


def load_rules(path: str | Path | None = None) -> RuleTable:
    """Read and check the rule table at ``path`` (``CVA_RFM_RULES``), default the packaged one.

    Raises:
        RuleTableError: naming the file and the rule or score cell at fault.
    """
    import yaml

    path = Path(path or DEFAULT_RULES)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RuleTableError(f"{path}: cannot read the RFM rule table: {exc}") from exc
    rules = []
    for number, item in enumerate(raw.get("segments") or [], start=1):
        if not isinstance(item, dict) or not item.get("name"):
            raise RuleTableError(f"{path}: segment #{number} has no name")
        ranges = {}
        for letter in LETTERS:
            if letter in item:
                low, high = item[letter]
                if not (1 <= int(low) <= int(high) <= 5):
                    raise RuleTableError(
                        f"{path}: segment {item['name']!r}: {letter} range {item[letter]} "
                        f"is not within 1..5"
                    )
                ranges[letter] = (int(low), int(high))
        rules.append(SegmentRule(item["name"], item.get("description", ""), ranges))
    if not rules:
        raise RuleTableError(f"{path}: no segments defined")
    table = RuleTable(
        tuple(rules),
        raw.get("active_within_days"),
        raw.get("inactive_segment", "Lost"),
    )
    for r, f, m in itertools.product(range(1, 6), repeat=3):
        if not any(rule.matches({"r": r, "f": f, "m": m}) for rule in table.rules):
            raise RuleTableError(f"{path}: no segment covers the cell r={r} f={f} m={m}")
    return table


def quintile_scores(values: pd.Series, higher_is_better: bool = True) -> pd.Series:
    """Scores 1-5 from percentile ranks; tied values share one score.

    Grain: one score per input row (same index); nulls stay null.
    """
    import pandas as pd

    ranks = (values if higher_is_better else -values).rank(method="average", pct=True)
    scores = ranks.map(lambda p: None if pd.isna(p) else min(5, max(1, math.ceil(p * 5))))
    return scores.astype("Int16")


def frequency_scores(frequency: pd.Series) -> pd.Series:
    """F scores 1-5: 1 for at most one order; repeat buyers by quartile among themselves.

    Grain: one score per input row (same index); nulls stay null. Ties share a
    score, as in :func:`quintile_scores`.
    """
    import pandas as pd

    repeat = frequency > 1
    ranks = frequency.where(repeat).rank(method="average", pct=True)
    scores = pd.Series(pd.NA, index=frequency.index, dtype="Int16")
    scores[frequency.notna() & ~repeat] = 1
    scores[repeat] = ranks[repeat].map(lambda p: min(5, max(2, 1 + math.ceil(p * 4))))
    return scores


def score_rfm(features: pd.DataFrame, rules: RuleTable | None = None) -> pd.DataFrame:
    """R, F, M scores, the RFM cell and the named segment per customer.

    Args:
        features: customer features with ``customer_id``, ``recency_days``,
            ``frequency`` and ``monetary_value``.
        rules: the rule table (default: :func:`load_rules`).

    Returns:
        One row per customer (same order as ``features``): ``customer_id``,
        ``r_score``, ``f_score``, ``m_score`` (null for inactive customers),
        ``rfm_cell`` (e.g. ``"545"``) and ``segment``.
    """
    import pandas as pd

    rules = rules or load_rules()
    if rules.active_within_days is None:
        active = pd.Series(True, index=features.index)
    else:
        active = features["recency_days"] <= float(rules.active_within_days)
    scored = features.loc[active]
    out = pd.DataFrame({"customer_id": features["customer_id"]}, index=features.index)
    for letter, column, better in (
        ("r", "recency_days", False),
        ("f", "frequency", True),
        ("m", "monetary_value", True),
    ):
        out[f"{letter}_score"] = pd.Series(pd.NA, index=features.index, dtype="Int16")
        scores = (
            frequency_scores(scored[column])
            if letter == "f"
            else quintile_scores(scored[column], better)
        )
        out.loc[active, f"{letter}_score"] = scores
    cells = [
        rules.segment_of(int(r), int(f), int(m)) if ok else rules.inactive_segment
        for r, f, m, ok in zip(
            out["r_score"].fillna(0),
            out["f_score"].fillna(0),
            out["m_score"].fillna(0),
            active,
            strict=True,
        )
    ]
    out["segment"] = pd.Series(cells, index=features.index, dtype="string")
    rfm_cell = (
        out["r_score"].astype("string")
        + out["f_score"].astype("string")
        + out["m_score"].astype("string")
    )
    out["rfm_cell"] = rfm_cell.where(active, None)
    return out.reset_index(drop=True)
