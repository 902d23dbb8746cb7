"""Benchmarks run by ``cva bench ...`` (and as ``python -m benchmarks.<name>``)."""
