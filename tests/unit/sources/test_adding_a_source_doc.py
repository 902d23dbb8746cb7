"""docs/adding-a-source.md, performed: its module, suite and files land a day."""

from __future__ import annotations

import io
import json
import re
import sys
from datetime import date
from pathlib import Path

from cva_tasks import storage
from cva_tasks.lake import Lake

DOC = Path(__file__).resolve().parents[3] / "docs" / "adding-a-source.md"
DAY = date(2025, 6, 10)


def blocks(kind: str) -> list[tuple[str, str]]:
    """``(info after the language, body)`` of every fenced block of ``kind`` in the doc."""
    pattern = re.compile(rf"^```{kind}(?: (\S+))?\n(.*?)^```$", re.M | re.S)
    return [(m.group(1) or "", m.group(2)) for m in pattern.finditer(DOC.read_text())]


def test_the_worked_example_lands_its_day(tmp_path, lake, monkeypatch):
    from cva_tasks import cli

    exports = tmp_path / "exports"
    exports.mkdir()
    for name, body in blocks("csv"):
        (exports / name).write_text(body)
    (module,) = [body for _, body in blocks("python")]
    (tmp_path / "shop_export.py").write_text(module)
    (suite,) = [json.loads(body) for _, body in blocks("json")]
    (tmp_path / "expectations").mkdir()
    (tmp_path / "expectations" / f"{suite['name']}.json").write_text(json.dumps(suite))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CVA_SOURCE_MODULES", "shop_export")
    monkeypatch.setenv("CVA_EXPECTATIONS_DIR", str(tmp_path / "expectations"))
    monkeypatch.setenv("CVA_SHOP_EXPORT_PATH", str(exports))
    out = io.StringIO()
    monkeypatch.setattr(cli, "_RESULT_STREAM", out)
    try:
        assert "cva land shop_export --from 2025-06-10 --to 2025-06-10" in DOC.read_text()
        code = cli.main(["land", "shop_export", "--from", "2025-06-10", "--to", "2025-06-10"])
        assert code == 0, out.getvalue()
    finally:
        sys.modules.pop("shop_export", None)
    landed_lake = Lake(str(lake))
    rows = storage.read_table(landed_lake.raw("shop_export", "transactions", DAY)).to_pylist()
    by_id = {r["transaction_id"]: r for r in rows}
    assert sorted(by_id) == ["SE-1", "SE-2", "SE-3"]
    assert by_id["SE-1"]["customer_id"] == "C1" and by_id["SE-3"]["customer_id"] == "C2"
    # 23:40 in London in June is 22:40 UTC: still the 10th.
    assert str(by_id["SE-3"]["occurred_at"]) == "2025-06-10 22:40:00+00:00"
    quarantined = storage.read_table(
        landed_lake.quarantine("shop_export", "transactions", DAY)
    ).to_pylist()
    assert [r["transaction_id"] for r in quarantined] == ["SE-4"]
    assert (
        "order_no not found in orders (orders_2025-06-10.csv): 'A102'"
        in (quarantined[0]["dq_rules"])
    )
