"""Write the README's verdict tables from the notebooks' metrics files (never type them).

Each notebook run writes ``figures/runs/NN_name.metrics.json`` (``kacnb.report``): the
profile and rows of claim, measured value, threshold and verdict. The README holds one
generated block per notebook between two marker comments::

    <!-- metrics-table NN_name -->
    ... generated, do not edit ...
    <!-- /metrics-table NN_name -->

A second kind of block, between ``<!-- models-table NN_name -->`` and
``<!-- /models-table NN_name -->``, holds
the per-model numbers of the metrics file's ``"models"`` entry, next to those of every older
run kept as ``figures/runs/history/NN_name.<profile>.metrics.json`` (e.g. the quick profile
beside the paper profile).

``python tools/readme_tables.py`` rewrites every such block from the current metrics files;
``--check`` only compares and exits with 1 when a block is out of date (a test does the
same). To add a table for another notebook, put an empty marker pair in the README where it
belongs and run the tool.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(
    r"(<!-- metrics-table (?P<name>[0-9A-Za-z_]+) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- /metrics-table (?P=name) -->)",
    re.DOTALL,
)


def _cell(text) -> str:
    """One table cell: a single line with ``|`` escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render(metrics: dict) -> str:
    """The Markdown block (summary line and table) for one metrics file's content."""
    rows = metrics["rows"]
    ok = sum(r["verdict"] == "reproduced" for r in rows)
    lines = [
        f"`{metrics['notebook']}`, profile `{metrics['profile']}`: {ok} of {len(rows)} claims "
        f"reproduced (from `figures/runs/{metrics['notebook']}.metrics.json`).",
        "",
        "| claim | measured | threshold | verdict |",
        "|---|---|---|---|",
    ]
    for r in rows:
        cells = (r["claim"], r["measured"], r["threshold"], r["verdict"])
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


MODELS_BLOCK = re.compile(
    r"(<!-- models-table (?P<name>[0-9A-Za-z_]+) -->\n)"
    r"(?P<body>.*?)"
    r"(<!-- /models-table (?P=name) -->)",
    re.DOTALL,
)
# per-model columns of each notebook: (metrics key, header, format)
MODEL_COLUMNS = {
    "04_cfm_gmm_2d": (
        ("best_iteration", "best iteration (paper)", None),
        ("nll", "NLL", ".3g"),
        ("coverage_5sigma", "5 sigma", ".3f"),
        ("coverage_50sigma", "50 sigma", ".3f"),
        ("coverage_0.05", "within 0.05", ".3f"),
        ("nearest", "nearest-mode dist.", ".2e"),
        ("nfe", "NFE", "d"),
        ("max_speed", "max learned speed", ".3g"),
    ),
    "05_mnist": (
        ("euler_steps", "Euler steps", "d"),
        ("fd", "FD", ".1f"),
        ("fd_latent", "FD of the latent", ".0f"),
        ("confident", "confident share", ".3f"),
        ("coverage", "digits covered", ".0f"),
        ("entropy_ratio", "label entropy / log 10", ".3f"),
    ),
}


def _model_cell(entry: dict, key: str, fmt: str | None) -> str:
    if key == "best_iteration":
        best, budget, paper = (
            entry["best_iteration"],
            entry["iterations"],
            entry.get("paper_best_iteration"),
        )
        return f"{best:,} of {budget:,} ({'not in the paper' if paper is None else f'{paper:,}'})"
    value = entry.get(key)
    return "-" if value is None else format(value, fmt)


def render_models(runs_by_profile: list[dict]) -> str:
    """Per-model table, one row per (model, profile), from metrics files with ``"models"``;
    the columns are those of the notebook (:data:`MODEL_COLUMNS`)."""
    current = runs_by_profile[-1]
    columns = MODEL_COLUMNS.get(current.get("notebook"))
    if columns is None:  # another notebook: the column set that its entries fill best
        entry = next(iter(current["models"].values()))
        columns = max(MODEL_COLUMNS.values(), key=lambda cols: sum(k in entry for k, _, _ in cols))
    header = ["model", "profile"] + [h for _, h, _ in columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    keys = list(runs_by_profile[-1]["models"])
    for key in keys:
        for metrics in runs_by_profile:
            entry = metrics["models"].get(key)
            if entry is None:
                continue
            cells = [key, metrics["profile"]]
            cells += [_model_cell(entry, k, f) for k, _, f in columns]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def load_history(name: str, runs: Path) -> list[dict]:
    """Older runs of ``name`` (``runs/history/name.<profile>.metrics.json``), then the current."""
    older = sorted((runs / "history").glob(f"{name}.*.metrics.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in older] + [load(name, runs)]


def load(name: str, runs: Path) -> dict:
    path = runs / f"{name}.metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file {path}: run `kacnb run` for {name} first")
    return json.loads(path.read_text(encoding="utf-8"))


def regenerate(text: str, runs: Path) -> str:
    """``text`` with every marked block replaced by the table of its metrics file."""

    def block(m: re.Match) -> str:
        return m.group(1) + render(load(m.group("name"), runs)) + m.group(4)

    def models(m: re.Match) -> str:
        return m.group(1) + render_models(load_history(m.group("name"), runs)) + m.group(4)

    return MODELS_BLOCK.sub(models, BLOCK.sub(block, text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--runs", type=Path, default=ROOT / "figures" / "runs")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    try:
        new = regenerate(text, args.runs)
    except FileNotFoundError as exc:
        print(f"readme_tables: {exc}", file=sys.stderr)
        return 2
    names = [m.group("name") for m in BLOCK.finditer(text)]
    if args.check:
        if new != text:
            print(f"readme_tables: {args.readme} is out of date; run tools/readme_tables.py")
            return 1
        print(f"readme_tables: {len(names)} tables up to date ({', '.join(names)})")
        return 0
    if new != text:
        args.readme.write_text(new, encoding="utf-8")
    print(f"readme_tables: wrote {len(names)} tables ({', '.join(names)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
