"""A static HTML site of the executed notebooks (``kacnb site --out DIR``).

The site is a Sphinx + MyST-NB book built from what ``kacnb run`` published, without running
anything: an index page (what the collection is, a thumbnail per notebook that links to its
page, with its verdict count, profile and device, and the figure tables of the README), one
page per executed notebook ``notebooks/<stem>.ipynb`` with its cell outputs (each figure
where the notebook draws it), the figures of its run record ``figures/runs/<stem>.json`` that
no cell shows, its verdict table (``figures/runs/<stem>.metrics.json``) as an HTML table, and
the pages ``docs/report.md``, ``docs/paper-notes.md`` and ``docs/architecture.md`` when
present. Every notebook page is titled ``NN · title``. Math is rendered by a MathJax copy
shipped inside the site, so the pages work offline.

Every value taken from a run record or a metrics file is HTML-escaped (:func:`escape`) and
put into raw HTML, where neither markdown nor math applies, so a record cannot inject markup
or script; figure names of a record must be plain file names.

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

from .._root import PROJECT_ROOT
from .plotting import inline_figures
from .registry import NotebookSpec, Registry

__all__ = [
    "SITE_PACKAGES",
    "INSTALL_HINT",
    "SiteError",
    "NotebookPage",
    "missing_packages",
    "escape",
    "collect_pages",
    "verdict_table_html",
    "notebook_cards_html",
    "run_record_html",
    "readme_figure_tables",
    "thumbnail_source",
    "write_thumbnail",
    "index_markdown",
    "notebook_title",
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
CONFIG_DIR = PROJECT_ROOT / "docs" / "site"
#: File that marks a folder as a site written by this module (Sphinx writes it).
BUILD_MARK = ".buildinfo"
#: Pages of ``docs/`` shown on the site besides the notebooks, in the sidebar's order.
DOC_PAGES = ("report", "paper-notes", "architecture")
#: Size of the index's thumbnails (the largest width and height, in pixels).
THUMBNAIL_SIZE = (480, 300)
#: The folder of the thumbnails in the site's source (copied to the site as static files).
THUMBNAIL_DIR = "_static/thumbs"
#: A figure file name of a run record: a plain ``.png`` file name, no folder.
_FIGURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$")
#: A leading number of a notebook's heading ("03 · ", "3. ", "03 - ").
_HEADING_NUMBER = re.compile(r"^\s*\d+\s*(?:·|\.|:|-|–|—)\s*")


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
    #: The notebook's inline images in order: the stem of the saved figure each shows
    #: (``kacnb.collection.plotting.save_figure``), or None for another image.
    shown: tuple[str | None, ...] = ()
    #: The notebook's own title (its first ``#`` heading without a number), if it has one.
    title: str = ""

    @property
    def n_reproduced(self) -> int:
        return sum(r.get("verdict") == "reproduced" for r in self.rows)

    @property
    def unshown(self) -> tuple[Path, ...]:
        """The figures of the run that no cell of the notebook shows inline."""
        return tuple(png for png in self.figures if png.stem not in self.shown)

    @property
    def heading(self) -> str:
        """The page's title in the sidebar and on the index: ``NN · title``."""
        return f"{self.spec.label} · {self.title or self.spec.title}"


def missing_packages() -> list[str]:
    """Distribution names of the ``site`` extra that are not importable."""
    return [dist for mod, dist in SITE_PACKAGES.items() if importlib.util.find_spec(mod) is None]


def escape(value) -> str:
    """``value`` as text for raw HTML: ``&``, ``<``, ``>`` and quotes escaped, line breaks as
    ``&#10;`` (a blank line would end a raw HTML block of a markdown page, and what follows
    would be read as markdown and math)."""
    text = html.escape(str(value), quote=True)
    return re.sub(r"\r\n|\r|\n", "&#10;", text)


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
    listed = [str(name) for name in record.get("figures", ()) if str(name).endswith(".png")]
    bad = [name for name in listed if not _FIGURE_NAME.match(name)]
    if bad:
        raise SiteError(
            f"figures/runs/{spec.stem}.json lists the figure {bad[0]!r}, which is not a plain "
            f"file name; run `kacnb run {spec.label}` again"
        )
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
        nb = nbformat.read(executed, as_version=4)
        pages.append(
            NotebookPage(
                spec=spec,
                notebook=executed,
                record=record,
                rows=tuple(metrics.get("rows", ())),
                figures=_figure_paths(spec, record, registry.figures_dir),
                shown=tuple(inline_figures(nb)),
                title=notebook_title(nb),
            )
        )
    return pages


def verdict_table_html(rows: Sequence[Mapping]) -> str:
    """An HTML table ``verdict | claim | measured | threshold`` of the verdict rows, text
    escaped (claims hold ``|``, ``<`` and ``*``, which a markdown table would mangle)."""
    head = "".join(f"<th>{h}</th>" for h in ("verdict", "claim", "measured", "threshold"))
    body = []
    for r in rows:
        verdict = escape(r.get("verdict", ""))
        cells = [f'<td class="verdict">{verdict}</td>']
        cells += [f"<td>{escape(r.get(k, ''))}</td>" for k in ("claim", "measured", "threshold")]
        body.append(f'<tr class="{verdict}">{"".join(cells)}</tr>')
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


def thumbnail_source(page: NotebookPage) -> Path | None:
    """The figure of ``page`` shown as its thumbnail on the index: its first figure of the
    paper, else the first figure the notebook shows, else its first figure (None: none)."""
    by_stem = {png.stem: png for png in page.figures}
    for stem in [f.stem for f in page.spec.paper_figures] + [s for s in page.shown if s]:
        if stem in by_stem:
            return by_stem[stem]
    return page.figures[0] if page.figures else None


def write_thumbnail(png: Path, target: Path, size: tuple[int, int] = THUMBNAIL_SIZE) -> Path:
    """A copy of ``png`` scaled down to fit ``size`` (aspect kept) at ``target``."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(png) as img:
        img.thumbnail(size)
        img.save(target, format="PNG", optimize=True)
    return target


def notebook_cards_html(pages: Sequence[NotebookPage]) -> str:
    """The index's notebooks: one card per page with its thumbnail (when it has a figure),
    numbered title, verdict count, profile, device and number of figures, linking to the
    page. Record values are escaped."""
    cards = []
    for p in pages:
        stem = escape(p.spec.stem)
        rec = p.record
        verdicts = (
            f"{p.n_reproduced} of {len(p.rows)} claims reproduced" if p.rows else "no verdicts"
        )
        facts = [
            verdicts,
            f"profile {escape(rec.get('profile', '-'))}",
            f"device {escape(rec.get('device', '-'))}",
            f"{len(p.figures)} figures",
        ]
        image = ""
        if thumbnail_source(p) is not None:
            image = f'<img src="{THUMBNAIL_DIR}/{stem}.png" alt="a figure of {stem}">'
        cards.append(
            f'<a class="nb-card" href="{stem}.html">{image}'
            f'<span class="nb-title">{escape(p.heading)}</span>'
            f'<span class="nb-facts">{" · ".join(facts)}</span></a>'
        )
    return '<div class="nb-cards">\n' + "\n".join(cards) + "\n</div>"


def index_markdown(
    pages: Sequence[NotebookPage], figure_tables: Sequence[str], docs: Sequence[str] = ()
) -> str:
    """The index page: what the collection is, the notebooks as thumbnail cards, links to the
    ``docs`` pages present (:data:`DOC_PAGES`), the README's figure tables."""
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
        "them), each figure where the notebook draws it, and their verdict tables.",
        "",
        "## Notebooks",
        "",
        notebook_cards_html(pages),
    ]
    links = {
        "report": "The claims, deviations and costs in one place: "
        "[reproducibility report](report.md).",
        "paper-notes": "The formulas and settings of the paper: [paper notes](paper-notes.md).",
        "architecture": "How the package is built and which module to change: "
        "[architecture](architecture.md).",
    }
    for doc in docs:
        lines += ["", links[doc]]
    if figure_tables:
        lines += ["", "## Figures", "", "The paper's figures and where they are reproduced:", ""]
        lines.append(figure_tables[0])
        for table in figure_tables[1:]:
            lines += ["", "Figures that check the paper's claims:", "", table]
    toc = [p.spec.stem for p in pages] + list(docs)
    lines += ["", "```{toctree}", ":hidden:", ":maxdepth: 1", "", *toc, "```", ""]
    return "\n".join(lines)


def _caption(spec: NotebookSpec, png: Path) -> str:
    for fig in spec.figures:
        if fig.stem == png.stem:
            return f"{fig.paper}: {fig.caption}" if fig.paper else fig.caption or png.stem
    return png.stem


def _first_heading(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int] | None:
    """The markdown cell and line number of the notebook's first ``#`` heading, if any."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for i, line in enumerate(cell.source.split("\n")):
                if line.startswith("# "):
                    return cell, i
    return None


def notebook_title(nb: nbformat.NotebookNode) -> str:
    """The text of the notebook's first ``#`` heading without a leading number ("03 · "),
    or "" when it has none."""
    found = _first_heading(nb)
    if found is None:
        return ""
    cell, i = found
    return _HEADING_NUMBER.sub("", cell.source.split("\n")[i][2:].strip(), count=1)


def _number_title(nb: nbformat.NotebookNode, page: NotebookPage) -> None:
    """Make the notebook's first ``#`` heading the page's numbered title ``NN · title``, or
    add one when it has none, so that the sidebar numbers every notebook."""
    found = _first_heading(nb)
    if found is None:
        nb.cells.insert(0, _markdown_cell(nb, f"# {page.heading}"))
        return
    cell, i = found
    lines = cell.source.split("\n")
    lines[i] = f"# {page.heading}"
    cell.source = "\n".join(lines)


def _markdown_cell(nb: nbformat.NotebookNode, text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_markdown_cell(text)
    if nb.get("nbformat_minor", 0) < 5:  # cell ids exist from nbformat 4.5 on
        cell.pop("id", None)
    return cell


def _gallery(page: NotebookPage) -> str | None:
    """A section with the run's figures that no cell shows (None when every one is shown)."""
    figures = page.unshown
    if not figures:
        return None
    title = "Figures of this run" if len(figures) == len(page.figures) else "More figures"
    lines = [f"## {title}", ""]
    if len(figures) < len(page.figures):
        lines += ["Figures of this run that no cell above shows:", ""]
    for png in figures:
        lines += [
            f"```{{figure}} figures/{png.name}",
            f":alt: {png.stem}",
            "",
            f"{_caption(page.spec, png)} (`figures/{png.name}`)",
            "```",
            "",
        ]
    return "\n".join(lines)


def run_record_html(stem: str, record: Mapping) -> str:
    """One paragraph: the profile, device, wall time and commit of the run record, escaped."""
    facts = [
        f"{key} {escape(record[key])}"
        for key in ("profile", "device", "wall_time_s", "git_commit")
        if key in record
    ]
    if not facts:
        return ""
    return (
        f'<p class="run-record">Run record <code>figures/runs/{escape(stem)}.json</code>: '
        f"{', '.join(facts)}.</p>"
    )


def _verdicts(page: NotebookPage) -> str:
    """The section with the run record and the verdict table."""
    lines = ["## Verdicts of this run", ""]
    run = run_record_html(page.spec.stem, page.record)
    if run:
        lines += [run, ""]
    if page.rows:
        lines += [
            f"{page.n_reproduced} of {len(page.rows)} claims reproduced "
            f"(`figures/runs/{page.spec.stem}.metrics.json`):",
            "",
            verdict_table_html(page.rows),
        ]
    else:
        lines.append("No verdict table was recorded for this notebook.")
    return "\n".join(lines)


def page_notebook(page: NotebookPage) -> nbformat.NotebookNode:
    """The executed notebook as its page: the first heading numbered (``NN · title``), then,
    appended, the run's figures that no cell shows (if any) and the verdict table with the
    profile, device and commit of the run. Outputs are left as executed."""
    nb = nbformat.read(page.notebook, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            # the notebooks link the docs as repository files; on the site they are pages
            for doc in DOC_PAGES:
                cell.source = cell.source.replace(f"](../docs/{doc}.md)", f"]({doc}.md)")
    _number_title(nb, page)
    gallery = _gallery(page)
    for text in ([gallery] if gallery else []) + [_verdicts(page)]:
        nb.cells.append(_markdown_cell(nb, text))
    return nb


def stage(registry: Registry, src: Path, config_dir: Path = CONFIG_DIR) -> list[NotebookPage]:
    """Write the Sphinx source of the site into the empty folder ``src``: ``conf.py`` and
    ``_static/`` of ``config_dir``, ``index.md``, ``<stem>.ipynb`` per page, ``figures/``, the
    index's thumbnails and the :data:`DOC_PAGES` of ``docs/`` of the collection present."""
    pages = collect_pages(registry)
    if not (config_dir / "conf.py").is_file():
        raise SiteError(f"the site's Sphinx configuration {config_dir / 'conf.py'} is missing")
    shutil.copytree(config_dir, src, dirs_exist_ok=True)
    (src / "figures").mkdir(exist_ok=True)
    for page in pages:
        nbformat.write(page_notebook(page), src / f"{page.spec.stem}.ipynb")
        for png in page.unshown:
            shutil.copy2(png, src / "figures" / png.name)
        thumb = thumbnail_source(page)
        if thumb is not None:
            write_thumbnail(thumb, src / THUMBNAIL_DIR / f"{page.spec.stem}.png")
    docs = []
    for doc in DOC_PAGES:
        path = registry.root / "docs" / f"{doc}.md"
        if path.is_file():
            shutil.copy2(path, src / f"{doc}.md")
            docs.append(doc)
    readme = registry.root / "README.md"
    tables = readme_figure_tables(
        readme.read_text(encoding="utf-8") if readme.is_file() else "",
        [p.spec.stem for p in pages],
    )
    (src / "index.md").write_text(index_markdown(pages, tables, docs), encoding="utf-8")
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
