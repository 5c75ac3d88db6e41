"""A static HTML site of the executed notebooks (``kacnb site --out DIR``).

The site is a Sphinx + MyST-NB book built from what ``kacnb run`` published, without running
anything: an index page (what the collection is, the notebooks with their verdict counts and
the figure tables of the README), one page per executed notebook ``notebooks/<stem>.ipynb``
with its cell outputs, then its figures (the PNGs listed in the run record
``figures/runs/<stem>.json``) and its verdict table (``figures/runs/<stem>.metrics.json``) as
an HTML table, and the paper notes ``docs/paper-notes.md`` when present. Math is rendered by a
MathJax copy shipped inside the site, so the pages work offline.

The Sphinx configuration is ``docs/site/`` of the repository. Building needs the ``site``
extra (``pip install -e ".[site]"``).
"""

from __future__ import annotations

import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .registry import NotebookSpec, Registry

__all__ = [
    "SITE_PACKAGES",
    "INSTALL_HINT",
    "SiteError",
    "NotebookPage",
    "missing_packages",
    "collect_pages",
    "verdict_table_html",
    "readme_figure_tables",
    "index_markdown",
    "page_notebook",
    "stage",
    "build_site",
]

#: Import name -> distribution name of what building the site needs (the ``site`` extra).
SITE_PACKAGES: dict[str, str] = {
    "sphinx": "sphinx",
    "myst_nb": "myst-nb",
    "sphinx-mathjax-offline": "sphinx-mathjax-offline",
}
INSTALL_HINT = 'pip install -e ".[site]"'
#: The Sphinx configuration folder of the repository (conf.py, _static/).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "docs" / "site"
#: File that marks a folder as a site written by this module (Sphinx writes it).
BUILD_MARK = ".buildinfo"


class SiteError(RuntimeError):
    """A user mistake or a failed build, explained in one line."""


@dataclass(frozen=True)
class NotebookPage:
    """One executed notebook and what its page shows besides the notebook itself."""

    spec: NotebookSpec
    notebook: Path
    #: The run record ``figures/runs/<stem>.json`` (empty when there is none).
    record: Mapping = field(default_factory=dict)
    #: Verdict rows of ``figures/runs/<stem>.metrics.json`` (claim, measured, threshold,
    #: verdict).
    rows: tuple[Mapping, ...] = ()
    #: PNG figures of the notebook, existing files, in the record's order.
    figures: tuple[Path, ...] = ()

    @property
    def n_reproduced(self) -> int:
        return sum(r.get("verdict") == "reproduced" for r in self.rows)


def missing_packages() -> list[str]:
    """Distribution names of the ``site`` extra that are not importable."""
    return [dist for mod, dist in SITE_PACKAGES.items() if importlib.util.find_spec(mod) is None]


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SiteError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None


def _figure_paths(spec: NotebookSpec, record: Mapping, figures_dir: Path) -> tuple[Path, ...]:
    """The notebook's PNG figures: those of the run record, else the registered ones and the
    ``nbNN_*.png`` files. A figure the record lists but that is missing is an error (the page
    would show a broken image)."""
    listed = [name for name in record.get("figures", ()) if name.endswith(".png")]
    if listed:
        missing = [n for n in listed if not (figures_dir / n).is_file()]
        if missing:
            raise SiteError(
                f"figure {figures_dir / missing[0]} of {spec.stem} is missing "
                f"(listed in figures/runs/{spec.stem}.json); run `kacnb run {spec.label}` again"
            )
        return tuple(figures_dir / n for n in listed)
    names = [f"{f.stem}.png" for f in spec.figures]
    names += sorted(p.name for p in figures_dir.glob(f"{spec.file_prefix}*.png"))
    return tuple(figures_dir / n for n in dict.fromkeys(names) if (figures_dir / n).is_file())


def collect_pages(registry: Registry) -> list[NotebookPage]:
    """The pages of the site: every available notebook of ``registry`` with its executed
    ``.ipynb``, run record, verdict rows and figures.

    Raises :class:`SiteError` when an available notebook has not been executed (the site never
    runs a notebook) or when there is no notebook at all.
    """
    specs = registry.available()
    if not specs:
        raise SiteError(
            f"no notebooks in {registry.notebooks_dir}; run kacnb in the collection's root "
            "folder or pass --notebooks-dir"
        )
    runs = registry.figures_dir / "runs"
    pages = []
    for spec in specs:
        executed = registry.notebooks_dir / f"{spec.stem}.ipynb"
        if not executed.is_file():
            raise SiteError(
                f"executed notebook {executed} is missing; run `kacnb run {spec.label}` first "
                "(the site shows executed notebooks and does not run them)"
            )
        record = _read_json(runs / f"{spec.stem}.json")
        metrics = _read_json(runs / f"{spec.stem}.metrics.json")
        pages.append(
            NotebookPage(
                spec=spec,
                notebook=executed,
                record=record,
                rows=tuple(metrics.get("rows", ())),
                figures=_figure_paths(spec, record, registry.figures_dir),
            )
        )
    return pages


def verdict_table_html(rows: Sequence[Mapping]) -> str:
    """An HTML table ``verdict | claim | measured | threshold`` of the verdict rows, text
    escaped (claims hold ``|``, ``<`` and ``*``, which a markdown table would mangle)."""
    head = "".join(f"<th>{h}</th>" for h in ("verdict", "claim", "measured", "threshold"))
    body = []
    for r in rows:
        verdict = str(r.get("verdict", ""))
        cells = [f'<td class="verdict">{html.escape(verdict)}</td>']
        cells += [f"<td>{html.escape(str(r.get(k, '')))}</td>" for k in ("claim", "measured")]
        cells.append(f"<td>{html.escape(str(r.get('threshold', '')))}</td>")
        body.append(f'<tr class="{html.escape(verdict)}">{"".join(cells)}</tr>')
    return (
        f'<table class="verdicts">\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(body)
        + "\n</tbody>\n</table>"
    )


def _section(text: str, heading: str) -> list[str]:
    """Lines of the markdown section ``## heading`` (up to the next ``## `` heading)."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == heading
            continue
        if inside:
            lines.append(line)
    return lines


def readme_figure_tables(readme: str, stems: Sequence[str] = ()) -> list[str]:
    """The markdown tables of the README's "Figures" section, each as one string; a notebook
    named in backticks (`` `02_kac_1d` ``) becomes a link to its page when in ``stems``."""
    tables, current = [], []
    for line in [*_section(readme, "Figures"), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append("\n".join(current))
            current = []
    for stem in stems:
        tables = [t.replace(f"`{stem}`", f"[{stem}]({stem}.ipynb)") for t in tables]
    return tables


def index_markdown(pages: Sequence[NotebookPage], figure_tables: Sequence[str], notes: bool) -> str:
    """The index page: what the collection is, the notebooks, the README's figure tables."""
    lines = [
        "# kacnb: Telegrapher's Generative Model via Kac Flows",
        "",
        "A reproducible, tested notebook collection for R. Duong, J. Chemseddine, P. K. Friz, "
        "G. Steidl, *Telegrapher's Generative Model via Kac Flows*, arXiv:2506.20641 (first "
        "version). The notebooks tell the story; the numerics live in the package `kacnb` and "
        "are unit-tested against independent references. Each notebook ends with a "
        '"reproduced / differs" table computed from its own results.',
        "",
        "These pages show the notebooks as executed by `kacnb run` (nothing is re-run to build "
        "them), with their figures and verdict tables.",
        "",
        "## Notebooks",
        "",
        "| notebook | title | verdicts reproduced | profile | device | figures |",
        "|---|---|---|---|---|---|",
    ]
    for p in pages:
        verdicts = f"{p.n_reproduced} of {len(p.rows)}" if p.rows else "-"
        rec = p.record
        lines.append(
            f"| [{p.spec.stem}]({p.spec.stem}.ipynb) | {p.spec.title} | {verdicts} | "
            f"{rec.get('profile', '-')} | {rec.get('device', '-')} | {len(p.figures)} |"
        )
    if notes:
        lines += ["", "The formulas and settings of the paper: [paper notes](paper-notes.md)."]
    if figure_tables:
        lines += ["", "## Figures", "", "The paper's figures and where they are reproduced:", ""]
        lines.append(figure_tables[0])
        for table in figure_tables[1:]:
            lines += ["", "Figures that check the paper's claims:", "", table]
    toc = [p.spec.stem for p in pages] + (["paper-notes"] if notes else [])
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", "", *toc, "```", ""]
    return "\n".join(lines)


def _caption(spec: NotebookSpec, png: Path) -> str:
    for fig in spec.figures:
        if fig.stem == png.stem:
            return f"{fig.paper}: {fig.caption}" if fig.paper else fig.caption or png.stem
    return png.stem


def page_notebook(page: NotebookPage) -> nbformat.NotebookNode:
    """The executed notebook with two markdown cells appended: its figures and its verdict
    table (with the profile, device and commit of the run). Outputs are left as executed."""
    nb = nbformat.read(page.notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            # the notebooks link the notes as a repository file; on the site it is a page
            cell.source = cell.source.replace("](../docs/paper-notes.md)", "](paper-notes.md)")
    figs = ["## Figures of this run", ""]
    for png in page.figures:
        figs += [
            f"```{{figure}} figures/{png.name}",
            f":alt: {png.stem}",
            "",
            f"{_caption(page.spec, png)} (`figures/{png.name}`)",
            "```",
            "",
        ]
    if not page.figures:
        figs.append("This notebook writes no figure files.")
    rec = page.record
    run = ", ".join(
        f"{k} {rec[k]}" for k in ("profile", "device", "wall_time_s", "git_commit") if k in rec
    )
    verdicts = ["## Verdicts of this run", ""]
    if run:
        verdicts += [f"Run record `figures/runs/{page.spec.stem}.json`: {run}.", ""]
    if page.rows:
        verdicts += [
            f"{page.n_reproduced} of {len(page.rows)} claims reproduced "
            f"(`figures/runs/{page.spec.stem}.metrics.json`):",
            "",
            verdict_table_html(page.rows),
        ]
    else:
        verdicts.append("No verdict table was recorded for this notebook.")
    for text in ("\n".join(figs), "\n".join(verdicts)):
        cell = nbformat.v4.new_markdown_cell(text)
        if nb.get("nbformat_minor", 0) < 5:  # cell ids exist from nbformat 4.5 on
            cell.pop("id", None)
        nb.cells.append(cell)
    return nb


def stage(registry: Registry, src: Path, config_dir: Path = CONFIG_DIR) -> list[NotebookPage]:
    """Write the Sphinx source of the site into the empty folder ``src``: ``conf.py`` and
    ``_static/`` of ``config_dir``, ``index.md``, ``<stem>.ipynb`` per page, ``figures/``
    and ``paper-notes.md`` (from ``docs/`` of the collection, when present)."""
    pages = collect_pages(registry)
    if not (config_dir / "conf.py").is_file():
        raise SiteError(f"the site's Sphinx configuration {config_dir / 'conf.py'} is missing")
    shutil.copytree(config_dir, src, dirs_exist_ok=True)
    (src / "figures").mkdir(exist_ok=True)
    for page in pages:
        nbformat.write(page_notebook(page), src / f"{page.spec.stem}.ipynb")
        for png in page.figures:
            shutil.copy2(png, src / "figures" / png.name)
    notes = registry.root / "docs" / "paper-notes.md"
    if notes.is_file():
        shutil.copy2(notes, src / "paper-notes.md")
    readme = registry.root / "README.md"
    tables = readme_figure_tables(
        readme.read_text(encoding="utf-8") if readme.is_file() else "",
        [p.spec.stem for p in pages],
    )
    (src / "index.md").write_text(index_markdown(pages, tables, notes.is_file()), encoding="utf-8")
    return pages


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise SiteError(f"--out {out} is a file; give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / BUILD_MARK).is_file():
        raise SiteError(
            f"--out {out} is a non-empty folder that is not a site built by `kacnb site`; "
            "give an empty or new folder"
        )


_WARNING = re.compile(r"\bWARNING\b|\bERROR\b")


def build_site(registry: Registry, out: str | Path, config_dir: Path = CONFIG_DIR) -> list[str]:
    """Build the site of ``registry``'s executed notebooks into ``out`` (``out/index.html``).

    Returns Sphinx's warnings (one string each; empty for a clean build). Raises
    :class:`SiteError` for a missing ``site`` extra, a missing executed notebook, a bad
    output folder, or a failed build.
    """
    missing = missing_packages()
    if missing:
        raise SiteError(
            f"building the site needs {', '.join(missing)} (the site extra): {INSTALL_HINT}"
        )
    out = Path(out)
    _check_out(out)
    with tempfile.TemporaryDirectory(prefix="kacnb-site-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        stage(registry, src, config_dir)
        cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-E"]
        cmd += ["-d", str(Path(tmp) / "doctrees"), str(src), str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    messages = [line for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        last = messages[-1] if messages else f"exit status {proc.returncode}"
        raise SiteError(f"sphinx could not build the site: {last}")
    return [line.replace(f"{src}/", "") for line in messages if _WARNING.search(line)]
