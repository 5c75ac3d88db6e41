"""Verdict tables: printed and written in one format, and the committed files agree."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from kacnb import report
from kacnb.collection.registry import NOTEBOOKS

ROOT = Path(__file__).resolve().parent.parent


def test_print_parse_round_trip(capsys, tmp_path):
    rows = [
        report.row("|K| <= ct, E[dK | K] = v", "max|K|/ct 1.000", "< 1e-9", True),
        report.row("rate -3/4", "slope -0.52", "<= -0.75", False),
    ]
    report.print_verdicts(rows)
    out = capsys.readouterr().out
    assert report.parse_verdicts(out) == rows
    assert out.strip().endswith("1 of 2 reproduced")
    path = report.write_metrics("99_x", "smoke", rows, tmp_path, models={"m": {"nll": 1.5}})
    record = json.loads(path.read_text())
    assert record == {
        "notebook": "99_x",
        "profile": "smoke",
        "rows": rows,
        "models": {"m": {"nll": 1.5}},
    }
    assert report.write_metrics("99_x", "smoke", rows, None) is None
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["99_x.metrics.json"]


def test_bad_rows_are_refused():
    with pytest.raises(ValueError, match="separates the columns"):
        report.print_verdicts([report.row("a │ b", "|v| <= c", "2", True)])
    with pytest.raises(ValueError, match="unknown verdict"):
        report.print_verdicts([{"claim": "a", "measured": "1", "threshold": "2", "verdict": "ok"}])


def _printed_rows(nb_path: Path) -> list[dict]:
    nb = nbformat.read(nb_path, as_version=4)
    rows = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            rows += report.parse_verdicts("".join(text))
    return rows


@pytest.mark.parametrize("spec", NOTEBOOKS, ids=lambda s: s.stem)
def test_committed_metrics_agree_with_the_printed_table(spec):
    metrics = report.metrics_path(spec.stem, ROOT / "figures")
    record_path = ROOT / "figures" / "runs" / f"{spec.stem}.json"
    assert metrics.exists(), f"{metrics.name} missing: rerun `kacnb run {spec.label}`"
    record = json.loads(metrics.read_text())
    run = json.loads(record_path.read_text())
    assert record["notebook"] == spec.stem and record["profile"] == run["profile"]
    printed = _printed_rows(ROOT / "notebooks" / f"{spec.stem}.ipynb")
    assert printed, "the committed notebook prints no verdict table"
    assert printed == [{k: str(v).strip() for k, v in r.items()} for r in record["rows"]]


def test_span_prints_a_range_or_one_number():
    from kacnb.report import span

    assert span([0.864, 0.526, 0.728], ".3f") == "0.526-0.864"
    assert span([1.0, 1.0004], ".2f") == "1.00"  # both print alike: one number
    assert span([7, 9], "d") == "7-9"
