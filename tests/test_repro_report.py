"""The reproducibility report docs/report.md is generated from the metrics files and run
records (tools/repro_report.py), and shows their values literally."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("repro_report", ROOT / "tools" / "repro_report.py")
repro_report = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = repro_report  # its dataclass looks its module up
spec.loader.exec_module(repro_report)

EVIL = "quick<img src=x onerror=alert(7)> | $x^2$ *b* [l](u) `c` & <!--"


def _copy_collection(tmp_path: Path) -> Path:
    """The committed run records, metrics and deviations in a scratch root."""
    shutil.copytree(ROOT / "figures" / "runs", tmp_path / "figures" / "runs")
    (tmp_path / "docs").mkdir()
    shutil.copy2(ROOT / "docs" / "deviations.json", tmp_path / "docs" / "deviations.json")
    shutil.copy2(ROOT / "docs" / "report.md", tmp_path / "docs" / "report.md")
    return tmp_path


def test_report_matches_the_committed_metrics_and_records():
    committed = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    assert repro_report.generate(ROOT) == committed, (
        "docs/report.md is out of date: run python tools/repro_report.py"
    )


def test_a_changed_metric_makes_the_committed_report_stale(tmp_path, capsys):
    root = _copy_collection(tmp_path)
    assert repro_report.main(["--root", str(root), "--check"]) == 0
    path = root / "figures" / "runs" / "02_kac_1d.metrics.json"
    metrics = json.loads(path.read_text())
    metrics["rows"][0]["measured"] = "max|z| 9.99"
    metrics["rows"][1]["verdict"] = "differs"
    path.write_text(json.dumps(metrics))
    assert repro_report.main(["--root", str(root), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert repro_report.main(["--root", str(root)]) == 0
    text = (root / "docs" / "report.md").read_text()
    assert "max\\|z\\| 9.99" in text
    n = len(metrics["rows"])
    done = sum(r["verdict"] == "reproduced" for r in metrics["rows"])
    assert f"`02_kac_1d`: {done} of {n} reproduced" in text and done < n
    assert repro_report.main(["--root", str(root), "--check"]) == 0


def test_report_counts_claims_and_shows_costs_and_deviations():
    specs = repro_report.NOTEBOOKS[:2]
    rows = [
        {"claim": "c1", "measured": "m1", "threshold": "t1", "verdict": "reproduced"},
        {"claim": "c2", "measured": "m2", "threshold": "t2", "verdict": "differs"},
    ]
    record = {"profile": "quick", "device": "cpu", "device_name": "Some CPU", "cpu_threads": 2,
              "wall_time_s": 1476.87, "torch": "2.13.0+cpu", "git_commit": "abc1234"}  # fmt: skip
    runs = [
        repro_report.Run(specs[0], record, {"profile": "quick", "rows": rows}),
        repro_report.Run(specs[1]),
    ]
    training = [("x.paper_training.json", {"what": "training", "training_wall_time_s": 8117.1})]
    deviations = [{"topic": "batch", "paper": "not stated", "project": "256 | 512"}]
    text = repro_report.render(runs, training, deviations)
    assert "1 of 2 claims reproduced, 1 differ, over 1 notebooks" in text
    assert f"`{specs[1].stem}`: no verdict table recorded" in text
    assert "| c2 | differs | m2 | t2 |" in text
    assert f"| `{specs[0].stem}` | 1477 s (24.6 min) | quick | cpu | Some CPU, 2 threads |" in text
    assert f"| `{specs[1].stem}` | not run |" in text
    assert "| `x.paper_training.json` | training | 8117 s (2.25 h) |" in text
    assert "| batch | not stated | 256 \\| 512 |" in text
    assert "A list to extend" in text and "docs/deviations.json" in text
    assert "arXiv:2506.20641v1" in text


def test_values_are_escaped_for_markdown():
    assert repro_report.md(EVIL) == (
        "quick\\<img src=x onerror=alert(7)\\> \\| \\$x^2\\$ \\*b\\* \\[l\\](u) \\`c\\` \\& \\<!--"
    )
    assert repro_report.md("a\n\nb") == "a b"  # one line: a table row cannot be split
    record = {"profile": EVIL, "device": EVIL, "git_commit": EVIL, "wall_time_s": 1.0}
    row = {"claim": EVIL, "measured": EVIL, "threshold": EVIL, "verdict": "reproduced"}
    run = repro_report.Run(repro_report.NOTEBOOKS[0], record, {"profile": EVIL, "rows": [row]})
    text = repro_report.render([run])
    values = text.split("not this file. -->")[1]
    assert not re.search(r"(?<!\\)<", values)  # every '<' of a value is escaped
    claim_rows = [line for line in text.splitlines() if line.startswith("| quick")]
    # every '|' of the value is escaped: four cells in the claims table
    assert len(claim_rows) == 1 and claim_rows[0].replace("\\|", "").count("|") == 5


def test_escaped_report_renders_the_values_as_text():
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it comes with the site extra")
    row = {"claim": EVIL, "measured": "1", "threshold": "2", "verdict": "differs"}
    run = repro_report.Run(repro_report.NOTEBOOKS[0], {}, {"profile": "quick", "rows": [row]})
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(repro_report.render([run]))
    assert "<img" not in html and "<em>b</em>" not in html and 'href="u"' not in html
    assert "quick&lt;img src=x onerror=alert(7)&gt; | $x^2$ *b* [l](u) `c` &amp; &lt;!--" in html
