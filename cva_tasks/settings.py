"""Settings read from the environment: one place, so every entry point agrees.

``CVA_HOME`` holds the embedded default (demo shop, lake, warehouse file);
``CVA_DATA_ROOT`` may point the lake anywhere fsspec reaches (``s3://bucket/cva``,
``gs://...``, ``memory://`` in tests) without code changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one process.

    Attributes:
        home: local folder for the embedded default (``CVA_HOME``, default ``./.cva``).
        data_root: URI or path of the lake (``CVA_DATA_ROOT``, default ``<home>/lake``).
        expectations_dir: folder with the GX suites as JSON (``CVA_EXPECTATIONS_DIR``).
        max_failing_share: share of rows that may break row-level rules before the
            run fails (``CVA_MAX_FAILING_SHARE``, default 0.05).
        row_count_history_days: how many earlier days the row-count rule compares with.
    """

    home: Path
    data_root: str
    expectations_dir: Path
    max_failing_share: float
    row_count_history_days: int

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("CVA_HOME", Path.cwd() / ".cva")).resolve()
        data_root = os.environ.get("CVA_DATA_ROOT") or str(home / "lake")
        expectations = Path(os.environ.get("CVA_EXPECTATIONS_DIR", PROJECT_ROOT / "expectations"))
        return cls(
            home=home,
            data_root=data_root.rstrip("/"),
            expectations_dir=expectations,
            max_failing_share=float(os.environ.get("CVA_MAX_FAILING_SHARE", "0.05")),
            row_count_history_days=int(os.environ.get("CVA_ROW_COUNT_HISTORY_DAYS", "7")),
        )

    @property
    def demo_dir(self) -> Path:
        return self.home / "demo"
