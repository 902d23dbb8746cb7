"""Feature sets built from the staged lake, point in time.

``customer``: one row per customer as of the end of a run's data interval
(:mod:`cva_tasks.features.customer`; DuckDB), with an idiomatic pandas twin in
``benchmarks/reference_pandas.py`` that the tests and the benchmark compare with.
"""

from cva_tasks.features.customer import (
    build_customer_features,
    feature_schema,
    validate_features,
    write_customer_features,
)

__all__ = [
    "build_customer_features",
    "feature_schema",
    "validate_features",
    "write_customer_features",
]
