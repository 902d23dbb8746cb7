"""File readers that name the file and line of malformed input."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from cva_tasks.sources.base import SourceError

if TYPE_CHECKING:
    import pandas as pd


def read_jsonl(path: str) -> pd.DataFrame:
    """One JSON object per line; blank lines are skipped. The index is the line number.

    Raises:
        SourceError: on a line that is not a JSON object, naming file and line.
    """
    import pandas as pd

    from cva_tasks import storage

    fs, fs_path = storage.filesystem(path)
    records = []
    lines: list[int] = []
    with fs.open(fs_path, "r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path} line {number}: not valid JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise SourceError(f"{path} line {number}: expected a JSON object")
            records.append(record)
            lines.append(number)
    return pd.DataFrame.from_records(records, index=pd.Index(lines, name="line"))


def read_csv_text(path: str) -> pd.DataFrame:
    """A CSV (optionally gzip-compressed) with every column read as text.

    Text first, so that identifiers keep their form (``C536379``, ``85123A``)
    and the mapping decides every type deliberately. The index is the line number.
    """
    import pandas as pd

    from cva_tasks import storage

    fs, fs_path = storage.filesystem(path)
    compression = "gzip" if path.endswith(".gz") else None
    try:
        with fs.open(fs_path, "rb") as handle:
            frame = pd.read_csv(
                handle,
                dtype="string",
                keep_default_na=False,
                na_values=[""],
                compression=compression,
                encoding="utf-8",
                encoding_errors="replace",
            )
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise SourceError(f"{path}: malformed CSV: {exc}") from exc
    # The header is line 1 (a quoted field that spans lines would shift the count).
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
    return frame
