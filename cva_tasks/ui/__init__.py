"""The "Customer value" page that the Airflow plugin ``plugins/cva_plugin.py`` serves.

* :mod:`.reader`: read-only SQL on the warehouse (embedded DuckDB or PostgreSQL);
* :mod:`.figures`: the day's figures as plain dicts (the JSON endpoints and the page);
* :mod:`.charts`: inline SVG charts; :mod:`.page`: the HTML;
* :mod:`.app`: the FastAPI app with its routes, every one behind Airflow's auth.

Everything but :mod:`.app` is importable and testable without Airflow; importing this
package imports nothing heavy.
"""
