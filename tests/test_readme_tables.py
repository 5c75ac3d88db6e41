"""The README's verdict tables are generated from the metrics files (tools/readme_tables.py)."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "tools" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)

METRICS = {
    "notebook": "98_demo",
    "profile": "quick",
    "rows": [
        {"claim": "a | b", "measured": "x\n y", "threshold": "< 1", "verdict": "reproduced"},
        {"claim": "c", "measured": "2", "threshold": "< 1", "verdict": "differs"},
    ],
}


def test_render_counts_verdicts_and_escapes_cells():
    text = readme_tables.render(METRICS)
    assert "profile `quick`: 1 of 2 claims reproduced" in text
    assert "| a \\| b | x y | < 1 | reproduced |" in text
    assert text.count("\n| ") == 3  # header and two rows


def test_regenerate_replaces_only_marked_blocks(tmp_path):
    (tmp_path / "98_demo.metrics.json").write_text(json.dumps(METRICS))
    readme = "intro\n<!-- metrics-table 98_demo -->\nstale\n<!-- /metrics-table 98_demo -->\nend\n"
    new = readme_tables.regenerate(readme, tmp_path)
    assert new.startswith("intro\n<!-- metrics-table 98_demo -->\n`98_demo`")
    assert new.endswith("| c | 2 | < 1 | differs |\n<!-- /metrics-table 98_demo -->\nend\n")
    assert readme_tables.regenerate(new, tmp_path) == new


def test_readme_tables_match_the_committed_metrics():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    names = [m.group("name") for m in readme_tables.BLOCK.finditer(text)]
    assert {"01_velocity_explosion", "02_kac_1d", "03_kac_multid"} <= set(names)
    assert readme_tables.regenerate(text, ROOT / "figures" / "runs") == text, (
        "README tables are out of date: run python tools/readme_tables.py"
    )


def test_models_block_puts_older_profiles_beside_the_current(tmp_path):
    entry = {
        "iterations": 20_000,
        "best_iteration": 20_000,
        "paper_best_iteration": 80_000,
        "nll": 6515.0,
        "coverage_5sigma": 0.00025,
        "coverage_50sigma": 0.063,
        "coverage_0.05": 0.99975,
        "nearest": 0.0104,
        "nfe": 200,
        "max_speed": 14.7,
    }
    quick = {**METRICS, "models": {"kac_25_5": entry}}
    paper = {
        **METRICS,
        "profile": "paper",
        "models": {"kac_25_5": {**entry, "iterations": 500_000, "best_iteration": 440_000}},
    }
    (tmp_path / "history").mkdir()
    (tmp_path / "history" / "98_demo.quick.metrics.json").write_text(json.dumps(quick))
    (tmp_path / "98_demo.metrics.json").write_text(json.dumps(paper))
    readme = "<!-- models-table 98_demo -->\n<!-- /models-table 98_demo -->\n"
    new = readme_tables.regenerate(readme, tmp_path)
    rows = [line for line in new.splitlines() if line.startswith("| kac_25_5")]
    assert rows[0].startswith("| kac_25_5 | quick | 20,000 of 20,000 (80,000) | 6.52e+03 | 0.000")
    assert rows[1].startswith("| kac_25_5 | paper | 440,000 of 500,000 (80,000) |")
    assert readme_tables.regenerate(new, tmp_path) == new


def test_models_block_of_mnist_shows_fd_confidence_and_coverage(tmp_path):
    entry = {"a": 25.0, "c": 5.0, "T": 1.0, "euler_steps": 20, "fd": 81.27, "fd_latent": 896.1,
             "confident": 0.5312, "coverage": 9.0, "entropy_ratio": 0.95}  # fmt: skip
    rf = {**entry, "a": None, "c": None, "fd": 120.0}
    metrics = {**METRICS, "notebook": "05_mnist", "models": {"a25_c5_T1": entry, "rf_T1": rf}}
    (tmp_path / "05_mnist.metrics.json").write_text(json.dumps(metrics))
    readme = "<!-- models-table 05_mnist -->\n<!-- /models-table 05_mnist -->\n"
    new = readme_tables.regenerate(readme, tmp_path)
    assert "| model | profile | Euler steps | FD | FD of the latent | confident share |" in new
    assert "| a25_c5_T1 | quick | 20 | 81.3 | 896 | 0.531 | 9 | 0.950 |" in new
    assert "| rf_T1 | quick | 20 | 120.0 |" in new
