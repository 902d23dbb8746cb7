"""Free-text customer feedback for the demo shop.

A comment is composed from *aspects* of one order (delivery speed, packaging,
product quality, fabric, fit, price/value, customer service, whether the product
matches its photos). Each aspect mentioned gets a polarity that follows from
what really happened to the order (a late parcel gives a negative delivery
clause, a size return a negative fit clause, ...) and from the customer's
latent experience, so that the sentiment of the text agrees with the rating
without there being one fixed sentence per rating. Clauses come from several
phrasings each, including negations ("wasn't late at all", "not what I
expected", "never arrived on time"); two clauses of different polarity are
joined as a mixed statement ("delivery was really fast but the fabric feels
cheap"). Openers, closers and mentions of the product name add variety.

Everything is vectorised over comments: template indices are drawn with numpy
and the strings are joined with object-array concatenation, which keeps two
million comments within a few seconds.

The text is plain ASCII with no double quotes, backslashes or slashes, so it
needs no escaping beyond the JSON basics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRODUCT = "{product}"

#: Aspect names, in the column order of the polarity/salience matrices.
ASPECTS: tuple[str, ...] = (
    "delivery",
    "packaging",
    "quality",
    "fabric",
    "fit",
    "value",
    "service",
    "photo",
)

#: Clause templates per (aspect, polarity); polarity 1 = positive, 0 = negative.
#: Templates start in lower case; ``{product}`` is replaced by the product name.
CLAUSES: dict[tuple[str, int], tuple[str, ...]] = {
    ("delivery", 1): (
        "delivery was really fast",
        "it arrived a day earlier than promised",
        "the parcel wasn't late at all",
        "shipping was quick",
        "it turned up the very next day",
        "delivery was on time, as promised",
        "the courier was quick and friendly",
        "it arrived well ahead of schedule",
        "no delays whatsoever with the delivery",
        "the {product} arrived super quickly",
        "dispatch was speedy and the tracking worked",
        "I didn't have to wait long at all",
    ),
    ("delivery", 0): (
        "delivery took far too long",
        "it never arrived on time",
        "the parcel was over a week late",
        "shipping was painfully slow",
        "I had to chase the courier twice",
        "the delivery date kept slipping",
        "it did not arrive when promised",
        "I waited ages for the {product} to turn up",
        "the tracking said delivered but nothing came for days",
        "delivery was late, again",
        "it wasn't delivered on the promised day",
        "the order sat in the warehouse for days",
    ),
    ("packaging", 1): (
        "it was packaged beautifully",
        "the packaging was neat and sturdy",
        "everything was well wrapped",
        "nicely packed with hardly any plastic",
        "the box kept everything safe",
        "no complaints about the packaging",
        "the {product} came perfectly wrapped",
        "lovely gift-ready packaging",
    ),
    ("packaging", 0): (
        "the box was crushed when it arrived",
        "the packaging was flimsy",
        "it arrived damaged",
        "it came in a battered box",
        "there was hardly any protection in the box",
        "the {product} was scratched in transit",
        "the parcel was soaked and torn",
        "it wasn't packed properly at all",
    ),
    ("quality", 1): (
        "the quality is excellent",
        "the material is solid and well made",
        "the {product} feels really sturdy",
        "great build quality",
        "it is clearly made to last",
        "can't fault the quality",
        "the finish on the {product} is beautiful",
        "it feels much more expensive than it was",
        "really well made",
        "it works perfectly",
    ),
    ("quality", 0): (
        "the material is thin and flimsy",
        "the {product} broke after a week",
        "the quality is poor",
        "it is not as sturdy as I hoped",
        "it stopped working after a few days",
        "the finish is rough",
        "it started falling apart quickly",
        "the {product} feels cheap and plasticky",
        "the material isn't good quality",
        "it scratches far too easily",
        "quality has gone downhill",
    ),
    ("fabric", 1): (
        "the fabric feels lovely",
        "the stitching is neat",
        "the material is soft and thick",
        "the fabric is lovely and breathable",
        "it washes really well",
        "the cotton is beautifully soft",
        "the {product} didn't shrink in the wash",
        "no bobbling even after several washes",
    ),
    ("fabric", 0): (
        "the fabric feels cheap",
        "the stitching came loose after one wash",
        "the material is thin and see-through",
        "the {product} shrank after the first wash",
        "the fabric is scratchy",
        "the colour ran in the wash",
        "it started bobbling straight away",
        "the seams are not straight",
    ),
    ("fit", 1): (
        "the size is spot on",
        "it fits perfectly",
        "true to size",
        "the sizing guide was accurate",
        "the {product} fits like a glove",
        "the fit is just right",
        "no problems with the size at all",
    ),
    ("fit", 0): (
        "the sizing is way off",
        "it doesn't fit at all",
        "it runs at least one size small",
        "far too big even in the smallest size",
        "I had to send it back because of the size",
        "the {product} is not the size stated",
        "the fit is awkward",
        "it isn't true to size",
    ),
    ("value", 1): (
        "great value for money",
        "well worth the price",
        "cheaper than elsewhere",
        "the price is very fair",
        "you get a lot for what you pay",
        "the {product} was a bargain",
        "not expensive at all for what it is",
        "excellent value",
    ),
    ("value", 0): (
        "overpriced for what it is",
        "not worth the money",
        "too expensive for the quality",
        "I expected more for the price",
        "the {product} is a waste of money",
        "you can get better for less elsewhere",
        "poor value",
        "definitely not a bargain",
    ),
    ("service", 1): (
        "customer service was very helpful",
        "the support team sorted everything out quickly",
        "they answered my question within the hour",
        "the staff were friendly and helpful",
        "the return was processed without any fuss",
        "customer service couldn't have been nicer",
        "they kept me updated the whole time",
        "support went above and beyond",
    ),
    ("service", 0): (
        "customer service never replied",
        "support was no help at all",
        "I am still waiting for a reply from customer service",
        "the return process was a nightmare",
        "nobody answered my emails",
        "customer service was rude and unhelpful",
        "I was passed from one person to another",
        "they didn't resolve anything",
    ),
    ("photo", 1): (
        "it looks exactly like the photos",
        "the colour matches the picture",
        "the {product} is just as pictured",
        "it is even nicer than in the photos",
        "exactly as described",
        "it is just what I expected",
        "the {product} looks great in real life",
    ),
    ("photo", 0): (
        "it looks nothing like the photos",
        "not what I expected",
        "the colour is completely different from the picture",
        "the {product} is not as described",
        "it is much smaller than it looks online",
        "it doesn't look like the picture at all",
        "the photos are misleading",
    ),
}

#: Sentence openers per overall class (0 negative, 1 mixed, 2 positive).
OPENERS: dict[int, tuple[str, ...]] = {
    0: (
        "Disappointed.",
        "Not happy with this order.",
        "Really frustrating.",
        "Poor experience overall.",
        "Not impressed.",
        "What a letdown.",
    ),
    1: (
        "Mixed feelings.",
        "It's okay.",
        "Hmm.",
        "Average experience.",
        "Some good, some bad.",
    ),
    2: (
        "Really happy.",
        "Love it!",
        "Great shop.",
        "Very pleased with my order.",
        "Brilliant.",
        "So pleased.",
    ),
}

#: Closing sentences per overall class (0 negative, 1 mixed, 2 positive).
CLOSERS: dict[int, tuple[str, ...]] = {
    0: (
        "Would not recommend.",
        "Won't be ordering again.",
        "Very disappointed.",
        "Expected much better.",
        "I want a refund.",
        "Avoid.",
    ),
    1: (
        "Might give it another go.",
        "Not sure I'd order again.",
        "Overall it's fine.",
        "Could be better.",
        "It does the job.",
    ),
    2: (
        "Would buy again.",
        "Highly recommend.",
        "Will definitely order again.",
        "Thanks!",
        "Very happy customer.",
        "Top marks from me.",
    ),
}

#: Product mentions placed before the clauses.
LEADS: tuple[str, ...] = (
    "Ordered the {product}.",
    "Bought the {product} as a gift.",
    "Got the {product} last week.",
    "About the {product}:",
    "Treated myself to the {product}.",
)

#: Joins of two clauses of the same polarity: (text, capitalise next clause).
SAME_JOINS: tuple[tuple[str, bool], ...] = (
    (" and ", False),
    (", and ", False),
    (", plus ", False),
    ("; also ", False),
    (". ", True),
    (". Also, ", False),
)

#: Joins of a clause followed by one of the opposite polarity (mixed statements).
MIXED_JOINS: tuple[tuple[str, bool], ...] = (
    (" but ", False),
    (", but ", False),
    (", although ", False),
    ("; however, ", False),
    (". However, ", False),
    (", though ", False),
    (". On the other hand, ", False),
)


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class _Tables:
    """Flattened template tables for vectorised lookups."""

    lower: np.ndarray  # object array of all clause templates
    upper: np.ndarray  # the same, capitalised
    has_product: np.ndarray  # bool per template
    offset: np.ndarray  # start index per group (aspect * 2 + polarity)
    count: np.ndarray  # number of templates per group


def _build_tables() -> _Tables:
    lower: list[str] = []
    offset, count = [], []
    for aspect in ASPECTS:
        for polarity in (0, 1):
            templates = CLAUSES[(aspect, polarity)]
            offset.append(len(lower))
            count.append(len(templates))
            lower.extend(templates)
    return _Tables(
        lower=np.array(lower, dtype=object),
        upper=np.array([_cap(t) for t in lower], dtype=object),
        has_product=np.array([PRODUCT in t for t in lower]),
        offset=np.array(offset, dtype=np.int64),
        count=np.array(count, dtype=np.int64),
    )


_TABLES = _build_tables()


def _pick(rng: np.random.Generator, options: tuple, n: int) -> np.ndarray:
    """Draw ``n`` entries of ``options`` uniformly; returns an object array."""
    arr = np.empty(len(options), dtype=object)
    arr[:] = list(options)
    return arr[rng.integers(0, len(options), size=n)]


def _by_class(
    rng: np.random.Generator, table: dict[int, tuple[str, ...]], klass: np.ndarray
) -> np.ndarray:
    """Draw one entry of ``table[klass[i]]`` per row."""
    out = np.empty(len(klass), dtype=object)
    for k, options in table.items():
        rows = np.flatnonzero(klass == k)
        out[rows] = _pick(rng, options, len(rows))
    return out


def overall_class(rating: np.ndarray) -> np.ndarray:
    """Map latent 1-5 ratings to the overall tone: 0 negative, 1 mixed, 2 positive."""
    rating = np.asarray(rating)
    return np.where(rating <= 2, 0, np.where(rating == 3, 1, 2)).astype(np.int8)


def compose_comments(
    rng: np.random.Generator,
    *,
    rating: np.ndarray,
    polarity: np.ndarray,
    salience: np.ndarray,
    product_name: np.ndarray,
    lead_share: float = 0.12,
) -> np.ndarray:
    """Compose one free-text comment per row.

    Args:
        rng: Random generator (the only source of randomness).
        rating: Latent 1-5 rating per comment (known even when the customer
            leaves the star rating empty); sets the tone of openers/closers.
        polarity: ``(n, len(ASPECTS))`` array of 0/1 aspect polarities
            (1 = positive), i.e. what the customer would say about each aspect.
        salience: ``(n, len(ASPECTS))`` non-negative weights of how likely each
            aspect is to be mentioned (0 = never, e.g. fit for a mug).
        product_name: Object array with the name of the order's main product.
        lead_share: Share of comments that open by naming the product
            ("Ordered the ...").

    Returns:
        Object array of ``n`` comment strings.
    """
    n = len(rating)
    if n == 0:
        return np.empty(0, dtype=object)
    tables = _TABLES
    klass = overall_class(rating)

    # How many aspects: mostly 1-2, sometimes 3; pick them by salience (Gumbel top-k).
    n_aspects = 1 + (rng.random(n) < 0.6) + (rng.random(n) < 0.2)
    n_aspects = np.minimum(n_aspects, (salience > 0).sum(axis=1)).astype(np.int64)
    with np.errstate(divide="ignore"):
        keys = np.log(salience) + rng.gumbel(size=salience.shape)
    chosen = np.argsort(-keys, axis=1, kind="stable")[:, :3]

    # Lead (product mention) and opener.
    text = np.full(n, "", dtype=object)
    lead = rng.random(n) < lead_share
    text[lead] = _pick(rng, LEADS, int(lead.sum())) + " "
    opener = rng.random(n) < 0.3
    text[opener] = text[opener] + _by_class(rng, OPENERS, klass[opener]) + " "

    capitalise = np.ones(n, dtype=bool)
    prev_pol = np.zeros(n, dtype=np.int8)
    uses_product = lead.copy()
    same_text, same_cap = _join_arrays(SAME_JOINS)
    mixed_text, mixed_cap = _join_arrays(MIXED_JOINS)
    for slot in range(3):
        active = np.flatnonzero(n_aspects > slot)
        if len(active) == 0:
            break
        aspect = chosen[active, slot]
        pol = polarity[active, aspect].astype(np.int64)
        group = aspect * 2 + pol
        idx = (
            tables.offset[group] + rng.integers(0, 1 << 30, size=len(active)) % tables.count[group]
        )
        if slot > 0:
            is_mixed = pol != prev_pol[active]
            j_same = rng.integers(0, len(same_text), size=len(active))
            j_mixed = rng.integers(0, len(mixed_text), size=len(active))
            text[active] = text[active] + np.where(is_mixed, mixed_text[j_mixed], same_text[j_same])
            capitalise[active] = np.where(is_mixed, mixed_cap[j_mixed], same_cap[j_same])
        clause = np.where(capitalise[active], tables.upper[idx], tables.lower[idx])
        text[active] = text[active] + clause
        uses_product[active] |= tables.has_product[idx]
        prev_pol[active] = pol

    # End the sentence; positive texts sometimes with an exclamation mark.
    bang = (klass == 2) & (rng.random(n) < 0.25)
    text = text + np.where(bang, "!", ".")
    closer = rng.random(n) < 0.5
    text[closer] = text[closer] + " " + _by_class(rng, CLOSERS, klass[closer])

    sub = np.flatnonzero(uses_product)
    text[sub] = [_fill(t, p) for t, p in zip(text[sub], product_name[sub], strict=True)]
    return text


def _fill(text: str, name: str) -> str:
    """Name the product once; later mentions become "it"."""
    text = text.replace(PRODUCT, name, 1)
    if PRODUCT in text:
        text = text.replace("The " + PRODUCT, "It").replace("the " + PRODUCT, "it")
    return text


def _join_arrays(joins: tuple[tuple[str, bool], ...]) -> tuple[np.ndarray, np.ndarray]:
    text = np.empty(len(joins), dtype=object)
    text[:] = [j for j, _ in joins]
    return text, np.array([c for _, c in joins], dtype=bool)
