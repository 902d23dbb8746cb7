"""Language detection on the English review corpora: how often English is left unscored.

The thresholds of :mod:`cva_tasks.models.sentiment.language` (at least 20 characters,
py3langid probability at least 0.9) were chosen on these four sets of English texts,
two of them short (titles and summaries, median 17 and 21 characters), where the
detector is least sure. Measured for a model trained on English:

=================================  =======  ========  ==================================
set                                texts    unscored  which
=================================  =======  ========  ==================================
women's clothing review texts      22,641   0
women's clothing review titles     19,676   0         (at 0.8: 2, e.g. "Nice fit for
                                                      cool weather" read as Pidgin)
Amazon musical-instrument reviews  10,254   3         all three Spanish reviews
Amazon review summaries            10,261   0
=================================  =======  ========  ==================================

So the false-unscored rate on English is 0 of 62,829 English texts (the three are
Spanish and are meant to be unscored; two more Spanish reviews read Spanish at only
0.88-0.89 and stay scored). The run takes 10-30 s of one core.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cva_tasks.models.sentiment import language

pytestmark = pytest.mark.slow

SPANISH_WORDS = ("producto", "bueno", "saludos", "calidad", "pedal")


@pytest.fixture(scope="module")
def corpora(shared_data: Path) -> dict[str, pd.Series]:
    womens = pd.read_csv(shared_data / "womens_clothing_reviews" / "womens_clothing_reviews.csv.gz")
    amazon = pd.read_csv(
        shared_data / "amazon_musical_instruments" / "musical_instruments_reviews.csv.gz"
    )
    return {
        "womens_text": womens["Review Text"].dropna().astype(str),
        "womens_title": womens["Title"].dropna().astype(str),
        "amazon_text": amazon["reviewText"].dropna().astype(str),
        "amazon_summary": amazon["summary"].dropna().astype(str),
    }


def test_english_reviews_are_not_unscored(corpora) -> None:
    unscored = {
        name: texts[pd.notna(language.unscored_reasons(texts.to_numpy(), ["en"]))]
        for name, texts in corpora.items()
    }
    assert {name: len(texts) for name, texts in corpora.items()} == {
        "womens_text": 22_641,
        "womens_title": 19_676,
        "amazon_text": 10_254,
        "amazon_summary": 10_261,
    }
    assert {name: len(found) for name, found in unscored.items()} == {
        "womens_text": 0,
        "womens_title": 0,
        "amazon_text": 3,
        "amazon_summary": 0,
    }
    # The three are Spanish reviews, rightly unscored for an English model.
    for text in unscored["amazon_text"]:
        assert sum(word in text.lower() for word in SPANISH_WORDS) >= 2, text
    reasons = language.unscored_reasons(unscored["amazon_text"].to_numpy(), ["en"])
    assert set(reasons) == {"language:es"}
    # A model trained on these reviews records English only.
    assert language.trained_languages(corpora["womens_text"].to_numpy())["languages"] == ["en"]
