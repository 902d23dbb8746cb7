"""The demo shop's fixed vocabulary: customer segments, product categories, names, countries
and return reasons."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _Segment:
    name: str
    share: float
    rate: float  # orders per 30 days before calibration
    lifetime_days: float  # mean lifetime after the first order
    p_never_churn: float
    mean_lines: float
    p_favourite: float  # share of lines drawn from the favourite products
    price_beta: float  # product weight ~ price ** -beta
    mood: float  # shift of the latent experience
    p_cancel: float
    return_mult: float
    extra_qty: float


SEGMENTS: tuple[_Segment, ...] = (
    _Segment("champion", 0.07, 4.0, 1400, 0.55, 3.6, 0.50, -0.3, 0.35, 0.015, 0.8, 0.35),
    _Segment("loyal", 0.22, 1.6, 800, 0.35, 3.0, 0.45, 0.2, 0.20, 0.020, 1.0, 0.20),
    _Segment("bargain_hunter", 0.19, 0.8, 450, 0.10, 2.7, 0.25, 1.4, -0.20, 0.035, 1.3, 0.40),
    _Segment("occasional", 0.32, 0.4, 400, 0.08, 2.3, 0.20, 0.5, 0.00, 0.025, 1.0, 0.10),
    _Segment("one_time", 0.20, 0.15, 12, 0.0, 2.0, 0.10, 0.6, -0.10, 0.030, 1.2, 0.10),
)
SEGMENT_NAMES: tuple[str, ...] = tuple(s.name for s in SEGMENTS)


@dataclass(frozen=True)
class _Category:
    """A product category; the name parts are ``|``-separated word lists."""

    name: str
    code: str
    share: float  # share of the catalogue
    median_price: float
    return_rate: float  # relative return propensity
    has_fit: bool  # sized items (fit/fabric comments apply)
    first_words: str  # material / descriptor
    second_words: str  # colour / scent
    noun_words: str

    @property
    def first(self) -> tuple[str, ...]:
        return tuple(self.first_words.split("|"))

    @property
    def second(self) -> tuple[str, ...]:
        return tuple(self.second_words.split("|"))

    @property
    def nouns(self) -> tuple[str, ...]:
        return tuple(self.noun_words.split("|"))


_COLOURS = "Blue|Sage|Navy|Mustard|Blush|Charcoal|Ivory|Teal|Coral|Olive|Grey|Red|Green|Black|White"

CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "Home Decor", "HOM", 0.17, 22.0, 0.04, False,
        "Ceramic|Glass|Linen|Rattan|Wooden|Velvet|Marble|Woven|Brass|Terracotta",
        _COLOURS,
        "Vase|Cushion Cover|Candle Holder|Photo Frame|Throw|Wall Mirror|Lantern|Plant Pot|"
        "Table Lamp|Clock",
    ),
    _Category(
        "Kitchen", "KIT", 0.16, 14.0, 0.035, False,
        "Ceramic|Enamel|Bamboo|Stoneware|Cast Iron|Glass|Copper|Stainless|Porcelain|Olive Wood",
        _COLOURS,
        "Mug|Teapot|Chopping Board|Mixing Bowl|Serving Tray|Utensil Set|Storage Jar|Tea Towel|"
        "Salad Bowl|Coffee Press",
    ),
    _Category(
        "Clothing", "CLO", 0.20, 30.0, 0.14, True,
        "Cotton|Linen|Wool|Cashmere Blend|Denim|Jersey|Fleece|Silk|Corduroy|Knitted",
        _COLOURS,
        "T-Shirt|Jumper|Scarf|Dress|Shirt|Cardigan|Hoodie|Pyjama Set|Skirt|Socks",
    ),
    _Category(
        "Accessories", "ACC", 0.12, 18.0, 0.05, False,
        "Leather|Canvas|Silver|Beaded|Suede|Woven|Gold Plated|Vegan Leather|Tweed|Straw",
        _COLOURS,
        "Tote Bag|Wallet|Necklace|Bracelet|Belt|Hat|Backpack|Earrings|Keyring|Glasses Case",
    ),
    _Category(
        "Toys", "TOY", 0.09, 15.0, 0.03, False,
        "Wooden|Plush|Felt|Magnetic|Knitted|Tin|Rainbow|Musical|Puzzle|Stacking",
        _COLOURS,
        "Train Set|Teddy Bear|Building Blocks|Jigsaw|Rocket|Doll|Kite|Puppet|Dinosaur|Board Game",
    ),
    _Category(
        "Stationery", "STA", 0.08, 6.0, 0.015, False,
        "Recycled|Leather Bound|Kraft|Floral|Dotted|Pastel|Hardback|Spiral|Linen Bound|Marbled",
        _COLOURS,
        "Notebook|Journal|Pen Set|Planner|Greeting Card|Sticker Pack|Pencil Case|Desk Organiser|"
        "Wrapping Paper|Bookmark",
    ),
    _Category(
        "Garden", "GAR", 0.08, 20.0, 0.03, False,
        "Galvanised|Terracotta|Solar|Wicker|Cedar|Zinc|Stone|Bamboo|Enamel|Wrought Iron",
        _COLOURS,
        "Planter|Bird Feeder|Watering Can|String Lights|Bench Cushion|Trowel|Wind Chime|Seed Kit|"
        "Hose Reel|Lantern",
    ),
    _Category(
        "Beauty", "BEA", 0.10, 10.0, 0.02, False,
        "Mini|Large|Travel|Deluxe|Classic|Organic|Luxury|Gentle|Refreshing|Calming",
        "Lavender|Rose|Citrus|Coconut|Vanilla|Eucalyptus|Shea|Oat|Sea Salt|Jasmine",
        "Soap Bar|Hand Cream|Bath Bomb|Lip Balm|Body Scrub|Face Mask|Candle|Bath Oil|Shampoo Bar|"
        "Gift Set",
    ),
)  # fmt: skip
CATEGORY_NAMES: tuple[str, ...] = tuple(c.name for c in CATEGORIES)

COUNTRIES: tuple[tuple[str, float], ...] = (
    ("United Kingdom", 0.58),
    ("Germany", 0.08),
    ("France", 0.07),
    ("Ireland", 0.05),
    ("Netherlands", 0.04),
    ("Spain", 0.03),
    ("Belgium", 0.03),
    ("Italy", 0.025),
    ("Sweden", 0.02),
    ("Switzerland", 0.02),
    ("United States", 0.018),
    ("Norway", 0.015),
    ("Portugal", 0.015),
    ("Denmark", 0.015),
    ("Australia", 0.012),
    ("Poland", 0.01),
)

FIRST_NAMES: tuple[str, ...] = (
    "Anna", "James", "Olivia", "Oliver", "Amelia", "George", "Isla", "Harry", "Ava", "Noah",
    "Emily", "Jack", "Sophie", "Leo", "Grace", "Arthur", "Mia", "Oscar", "Chloe", "Charlie",
    "Ella", "Thomas", "Lily", "Henry", "Freya", "William", "Evie", "Alfie", "Ruby", "Jacob",
    "Lucy", "Daniel", "Hannah", "Samuel", "Laura", "Max", "Julia", "Lukas", "Emma", "Paul",
    "Lea", "Felix", "Clara", "Louis", "Camille", "Hugo", "Sofia", "Mateo", "Elena", "Marco",
    "Giulia", "Sean", "Aoife", "Lars", "Ingrid", "Pieter", "Sanne", "Maria", "David", "Sarah",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Wright", "Robinson", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Hughes", "Edwards", "Turner", "Hill", "Moore", "Cooper",
    "Ward", "Morris", "King", "Baker", "Harris", "Lewis", "Young", "Allen", "Khan", "Murphy",
    "Kelly", "Walsh", "Muller", "Schmidt", "Schneider", "Fischer", "Weber", "Martin", "Bernard",
    "Dubois", "Moreau", "Laurent", "Garcia", "Lopez", "Rossi", "Russo", "Jansen", "De Vries",
    "Nilsson", "Larsen", "Nowak", "Silva", "Santos",
)  # fmt: skip

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")

RETURN_REASONS: tuple[str, ...] = (
    "Wrong size",
    "Damaged in transit",
    "Poor quality",
    "Not as described",
    "Changed my mind",
    "Ordered by mistake",
    "Arrived too late",
    "Faulty item",
)
_R_SIZE, _R_DAMAGED, _R_QUALITY, _R_NAD, _R_MIND, _R_MISTAKE, _R_LATE, _R_FAULTY = range(8)
