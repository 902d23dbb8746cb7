"""The "Customer value" page that the Airflow plugin ``plugins/cva_plugin.py`` serves.

* :mod:`.reader`: read-only SQL on the warehouse (embedded DuckDB or PostgreSQL);
* :mod:`.figures`: the day's figures as plain dicts (the JSON endpoints and the page);
* :mod:`.charts`: inline SVG charts; :mod:`.page`: the HTML;
* :mod:`.app`: the FastAPI app with its routes, every one behind Airflow's auth;
  :mod:`.deferred`: what the plugin mounts (the app, built at its first request);
* :mod:`.sample`: sample published days (tests, a look without running the pipeline).

Everything but :mod:`.app` is importable and testable without Airflow; importing this
package imports nothing heavy.
"""

#: The view's name in Airflow's navigation and for its auth manager (a custom view).
VIEW_NAME = "Customer value"
