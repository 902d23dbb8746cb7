"""Render stored validation results into Great Expectations Data Docs (GX 1.x).

The results are the JSON-able ``ExpectationSuiteValidationResult`` dicts that
:func:`cva_tasks.quality.gx_runner.validate_frame` returns (``ValidationOutcome.result``) and the
caller stores per run. They are loaded back into GX objects, put into the validation results
store of a throw-away in-memory GX context whose only Data Docs site is a local
``SiteBuilder`` writing to ``docs_dir``, and GX's own ``build_data_docs`` renders the site:
``index.html``, one page per validation result under ``validations/`` and one page per suite
under ``expectations/`` (rebuilt from the expectations recorded in the newest result of that
suite, so rules skipped in that run are not listed).

The HTML is GX's standard template: it loads Bootstrap, jQuery, Vega and fonts from public
CDNs when opened in a browser. Nothing is downloaded while building.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cva_tasks.quality.context import _project_config

logger = logging.getLogger(__name__)

SITE_NAME = "local_site"


def build_data_docs(results: Iterable[dict | Path], docs_dir: Path) -> Path:
    """Build GX Data Docs for stored validation results.

    Args:
        results: Validation results, each a dict (``ValidationOutcome.result``) or the path of
            a JSON file holding one.
        docs_dir: Directory of the Data Docs site; created if needed. Pages of earlier builds
            stay (GX adds to the site), the index lists the results given here.

    Returns:
        The path of the site's ``index.html``.

    Raises:
        ValueError: If a result cannot be read as a GX validation result.
        RuntimeError: If GX did not render a page for some result.
    """
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.data_context.context_factory import project_manager
    from great_expectations.exceptions import DataContextRequiredError

    docs_dir = Path(docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    loaded = [_load_result(item, number) for number, item in enumerate(results)]

    sites = {
        SITE_NAME: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    # get_context() makes the new context the process's current one; put back the previous
    # one afterwards (the cached validation context, or none).
    try:
        previous = project_manager.get_current_project()
    except DataContextRequiredError:
        previous = None
    try:
        context = gx.get_context(project_config=_project_config(sites), mode="ephemeral")
        newest: dict[str, tuple[datetime, Any]] = {}
        keys = []
        for key, result in loaded:
            context.validation_results_store.set(key, result)
            keys.append(key)
            suite_name = result.suite_name
            if suite_name not in newest or key.run_id.run_time >= newest[suite_name][0]:
                newest[suite_name] = (key.run_id.run_time, result)
        for suite_name, (_, result) in sorted(newest.items()):
            suite = ExpectationSuite(name=suite_name, expectations=_suite_configs(result))
            context.suites.add(suite)
        context.build_data_docs(site_names=[SITE_NAME])
        missing = [
            str(key)
            for key in keys
            if not context.get_docs_sites_urls(resource_identifier=key, site_name=SITE_NAME)[0][
                "site_url"
            ]
        ]
    finally:
        project_manager.set_project(previous)
    if missing:
        raise RuntimeError(f"GX rendered no Data Docs page for {missing} (see the GX log)")
    index = docs_dir / "index.html"
    if not index.is_file():
        raise RuntimeError(f"GX wrote no {index}")
    logger.info("Data Docs for %d validation results built in %s", len(keys), docs_dir)
    return index


def _load_result(item: dict | Path, number: int) -> tuple[Any, Any]:
    """(ValidationResultIdentifier, ExpectationSuiteValidationResult) of one stored result."""
    from great_expectations.core.expectation_validation_result import (
        expectationSuiteValidationResultSchema,
    )
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    if isinstance(item, dict):
        data, origin = copy.deepcopy(item), f"result #{number}"
    else:
        path = Path(item)
        data, origin = json.loads(path.read_text(encoding="utf-8")), str(path)
    try:
        result = expectationSuiteValidationResultSchema.load(data)
    except Exception as exc:  # marshmallow validation errors and the like
        raise ValueError(f"{origin}: not a GX validation result: {exc}") from exc

    run_id = result.meta.get("run_id") or {}
    if isinstance(run_id, RunIdentifier):
        run_name, run_time = run_id.run_name, run_id.run_time
    else:
        run_name, run_time = run_id.get("run_name"), run_id.get("run_time")
    run_time = _as_datetime(run_time or result.meta.get("validation_time"))
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=result.suite_name),
        run_id=RunIdentifier(run_name=run_name or f"result-{number}", run_time=run_time),
        batch_identifier=result.batch_id or _asset_name(result) or "batch",
    )
    return key, result


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, str) and value:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        return datetime.now(UTC)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _asset_name(result: Any) -> str | None:
    definition = result.meta.get("active_batch_definition") or {}
    return definition.get("data_asset_name") if isinstance(definition, dict) else None


def _suite_configs(result: Any) -> list[Any]:
    """Expectation configurations recorded in a validation result, without the batch id."""
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    configs = []
    for evr in result.results:
        config = evr.expectation_config
        kwargs = {key: value for key, value in config.kwargs.items() if key != "batch_id"}
        configs.append(
            ExpectationConfiguration(
                type=config.type, kwargs=kwargs, meta=dict(config.meta or {}), notes=config.notes
            )
        )
    return configs
