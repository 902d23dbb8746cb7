"""What the benchmarks share: run one measured phase of work in a fresh child process.

The parent starts the child with :func:`run_child` and waits for it; the child times its
own work, notes its memory with :class:`PhasePeaks` and writes its figures as JSON to a
result file. Per child the parent reports:

* ``cpu_seconds``: user + system CPU time of the whole child (``os.wait4``); on a busy
  machine it shows the work done where wall time also shows waiting for a core;
* ``peak_rss_mb``: the child's own peak resident memory, the high-water mark ``VmHWM``
  from ``/proc/self/status`` (numpy, scipy, Arrow and DuckDB allocations included,
  which ``tracemalloc`` would miss; the interpreter and imports too). Where ``/proc``
  does not exist it falls back to ``ru_maxrss``;
* ``ru_maxrss_mb``: ``ru_maxrss`` from ``os.wait4``, reported beside it but not used
  where ``VmHWM`` exists: on Linux it includes the parent's resident set at the time
  of the fork (the high-water mark is kept across exec), and a parent that generated
  the benchmark's data holds a lot of it; and once :class:`PhasePeaks` has reset the
  child's high-water mark it sees only the peak of the last phase;
* ``load_avg``: the machine's 1-minute load average when the child ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_child(
    module: str, args: list[str], result: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``python -m <module> --child <args...>`` and return its figures.

    Args:
        module: The benchmark module (``benchmarks.bench_features``).
        args: Its arguments after ``--child``; they must tell it to write its figures
            as a JSON object to ``result``, with ``own_peak_rss_mb`` from
            :meth:`PhasePeaks.figures` among them.
        result: The file the child writes.
        env: Variables set for the child on top of this process's environment.

    Returns:
        The child's figures, its ``own_peak_rss_mb`` replaced by ``peak_rss_mb``, plus
        ``cpu_seconds``, ``ru_maxrss_mb`` and ``load_avg``.

    Raises:
        RuntimeError: when the child fails.
    """
    cmd = [sys.executable, "-m", module, "--child", *args]
    # stdout and stderr go where ours go (progress of the child, if any, stays visible).
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, env={**os.environ, **env} if env else None
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed with exit code {proc.returncode}: {cmd}")
    inside = json.loads(result.read_text())
    ru_maxrss_mb = round(
        (usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss) / 1024, 1
    )
    own = inside.pop("own_peak_rss_mb")
    return {
        **inside,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": own if own == own else ru_maxrss_mb,  # NaN: no /proc
        "ru_maxrss_mb": ru_maxrss_mb,
        "load_avg": round(os.getloadavg()[0], 2),
    }


class PhasePeaks:
    """Child side: the peak resident memory of each phase of this process.

    Call :meth:`end` when a phase ends: it notes ``VmHWM`` (the peak since the last
    phase ended, or since the start) and resets it, so each phase has its own peak.
    """

    def __init__(self) -> None:
        self.by_phase: dict[str, float] = {}

    def end(self, phase: str) -> None:
        """Note the peak of ``phase`` and start the next one."""
        self.by_phase[phase] = round(rss_mb("VmHWM"), 1)
        # Linux >= 4.0 resets VmHWM to the current resident set on "5".
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")

    def figures(self) -> dict[str, Any]:
        """``peak_rss_mb_by_phase`` and ``own_peak_rss_mb``: their maximum, NaN without /proc."""
        return {
            "peak_rss_mb_by_phase": self.by_phase,
            "own_peak_rss_mb": max(self.by_phase.values(), default=float("nan")),
        }


def rss_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc`` (Linux), in MB; NaN elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
