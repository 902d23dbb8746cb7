"""The benchmarks run end to end at a small size (the figures come from full runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CVA = str(Path(sys.executable).with_name("cva"))


def test_bench_features_small(tmp_path):
    result = subprocess.run(
        [CVA, "bench", "features", "--customers", "1500", "--repeats", "1", "--json"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "TMPDIR": str(tmp_path)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    size = report["sizes"][0]
    assert size["customers"] == 1500 and size["feature_rows"] > 500
    for engine in ("pandas", "duckdb"):
        assert size["engines"][engine]["median"]["seconds"] > 0
        assert size["engines"][engine]["median"]["peak_rss_mb"] > 0
    assert size["speedup"] > 0 and size["memory_ratio"] > 0
