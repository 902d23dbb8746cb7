"""Where everything lives in the lake: the one module that builds lake paths.

Layout under the data root (``ds`` is the day of a run's data interval)::

    raw/<source>/<entity>/ds=YYYY-MM-DD/part-0.parquet          rows that passed the gate
    quarantine/<source>/<entity>/ds=YYYY-MM-DD/part-0.parquet   rows rejected, with dq_rules
    dq/<source>/<entity>/ds=YYYY-MM-DD/run=<run>.json           GX result of every run
    dq/<source>/<entity>/ds=YYYY-MM-DD/summary.json             the day's counts
    work/<run>/<source>/<entity>/ds=YYYY-MM-DD/                 hand-over between tasks
    staged/<entity>/ds=YYYY-MM-DD/part-0.parquet                all sources, one schema
    staged/<entity>/ds=YYYY-MM-DD/_inputs.json                  the raw files it was built from
    features/<feature set>/ds=YYYY-MM-DD/                       point-in-time features
    scores/<table>/ds=YYYY-MM-DD/                               what the warehouse loads
    shards/<table>/of-N/shard-K/ds=YYYY-MM-DD/                  part K of N of a day's scores
    models/<kind>/<version>/                                    one trained model run
    drift/<kind>/ds=YYYY-MM-DD/psi.json                         the day's feature drift check
    privacy/erased.json                                         customers erased (hashes)
    failures/<source>/ds=YYYY-MM-DD/<task>.json                 a source task that failed for ds
    exports/audiences/ds=YYYY-MM-DD/<audience>.parquet          a named audience's members

Paths are plain strings (a local folder or any fsspec URI); :mod:`cva_tasks.storage`
reads and writes them. Nothing here touches the file system.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

PARTITION_RE = re.compile(r"ds=(\d{4}-\d{2}-\d{2})$")
#: What a staged partition was built from; hidden from readers by its ``_`` prefix.
STAGED_INPUTS_FILE = "_inputs.json"


def join(root: str, *parts: str) -> str:
    """``root/part/...`` with single slashes (URIs keep their ``scheme://``)."""
    return "/".join([root.rstrip("/"), *[p.strip("/") for p in parts]])


def partition_name(ds: date) -> str:
    return f"ds={ds.isoformat()}"


def shard_set_name(shards: int) -> str:
    """The folder of one shard count under ``shards/<table>/`` (``of-4``)."""
    return f"of-{shards}"


def run_key(run_id: str) -> str:
    """An Airflow run id made safe as one path segment."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


@dataclass(frozen=True)
class Lake:
    """The paths of one lake (data root)."""

    root: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", self.root.rstrip("/"))

    def _folder(self, *parts: str, ds: date | None = None) -> str:
        return join(self.root, *parts, *([partition_name(ds)] if ds is not None else []))

    # --- sources: raw, quarantine, quality results, the work area ---------------

    def raw(self, source: str, entity: str, ds: date | None = None) -> str:
        """The entity's folder of landed days, or the day's partition."""
        return self._folder("raw", source, entity, ds=ds)

    def quarantine(self, source: str, entity: str, ds: date | None = None) -> str:
        return self._folder("quarantine", source, entity, ds=ds)

    def dq(self, source: str, entity: str, ds: date | None = None) -> str:
        """Great Expectations results: the entity's folder, or the day's."""
        return self._folder("dq", source, entity, ds=ds)

    def dq_summary(self, source: str, entity: str, ds: date) -> str:
        """The day's validation summary (written only when the gate passed)."""
        return join(self.dq(source, entity, ds), "summary.json")

    def dq_run_result(self, source: str, entity: str, ds: date, run_id: str) -> str:
        return join(self.dq(source, entity, ds), f"run={run_key(run_id)}.json")

    def dq_file(self, source: str, entity: str, ds: date, name: str) -> str:
        """A file of the day's results folder, by the name a listing gave."""
        return join(self.dq(source, entity, ds), name)

    def work_root(self) -> str:
        """The work areas of all runs (what a killed task left is found here)."""
        return self._folder("work")

    def work(self, run_id: str, source: str, entity: str, ds: date) -> str:
        """Where one run's tasks hand an entity-day to each other."""
        return self._folder("work", run_key(run_id), source, entity, ds=ds)

    def work_file(self, run_id: str, source: str, entity: str, ds: date, name: str) -> str:
        return join(self.work(run_id, source, entity, ds), name)

    # --- the pipeline: staged entities, features, scores ------------------------

    def staged(self, entity: str, ds: date | None = None) -> str:
        return self._folder("staged", entity, ds=ds)

    def staged_inputs(self, entity: str, ds: date) -> str:
        """The record of the raw partitions a staged partition was built from."""
        return join(self.staged(entity, ds), STAGED_INPUTS_FILE)

    def staged_files(self, entity: str) -> str:
        """A glob of every staged file of ``entity`` (for DuckDB's ``read_parquet``)."""
        return join(self.staged(entity), "ds=*", "*.parquet")

    def features(self, feature_set: str, ds: date | None = None) -> str:
        """``customer`` (one row per customer) or ``customer_sentiment``."""
        return self._folder("features", feature_set, ds=ds)

    def scores(self, table: str, ds: date | None = None) -> str:
        """The day's rows of a warehouse table, as the pipeline computed them."""
        return self._folder("scores", table, ds=ds)

    def shards_root(self) -> str:
        """Every sharded scores table (``shards/<table>/``)."""
        return self._folder("shards")

    def shard_sets(self, table: str) -> str:
        """The shard counts a table was ever split by (``shards/<table>/of-N``)."""
        return self._folder("shards", table)

    def shard(self, table: str, shards: int, shard: int, ds: date | None = None) -> str:
        """Part ``shard`` of ``shards`` of a scores table: its folder of days, or the day's.

        With one shard there are no parts: the day's scores partition is the one part.
        """
        if shards == 1:
            return self.scores(table, ds)
        return self._folder("shards", table, shard_set_name(shards), f"shard-{shard}", ds=ds)

    # --- models -------------------------------------------------------------------

    def models(self, kind: str) -> str:
        return self._folder("models", kind)

    def model_version(self, kind: str, version: str) -> str:
        return join(self.models(kind), version)

    def model_file(self, kind: str, version: str, name: str) -> str:
        return join(self.model_version(kind, version), name)

    def drift(self, kind: str, ds: date | None = None) -> str:
        """A model kind's drift checks: the folder of days, or the day's."""
        return self._folder("drift", kind, ds=ds)

    def drift_file(self, kind: str, ds: date) -> str:
        """The day's drift check of ``kind`` (population stability index per feature)."""
        return join(self.drift(kind, ds), "psi.json")

    def features_root(self) -> str:
        """Every feature set (``features/<feature set>/``)."""
        return self._folder("features")

    def scores_root(self) -> str:
        """Every scores table (``scores/<table>/``)."""
        return self._folder("scores")

    # --- privacy ------------------------------------------------------------------------

    def erasure_register(self) -> str:
        """The hashes of the customers erased by ``cva forget`` (staging drops them)."""
        return join(self.root, "privacy", "erased.json")

    # --- source runs that failed ------------------------------------------------------

    def source_failures(self, source: str, ds: date | None = None) -> str:
        """Markers of the source's tasks that failed for ``ds`` (the folder of days without)."""
        return self._folder("failures", source, ds=ds)

    def source_failure(self, source: str, ds: date, task_id: str) -> str:
        """The marker of one failed task of the source's run for ``ds``."""
        return join(self.source_failures(source, ds), f"{run_key(task_id)}.json")

    # --- exports -------------------------------------------------------------------

    def audience_exports(self, ds: date | None = None) -> str:
        """The audiences' exports: the folder of days, or the day's (one file per audience)."""
        return self._folder("exports", "audiences", ds=ds)

    # --- other ------------------------------------------------------------------------

    def file(self, *parts: str) -> str:
        """Any other file under the root (e.g. a cache's completion marker)."""
        return join(self.root, *parts)
