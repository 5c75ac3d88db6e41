"""``kacnb site``: the static HTML book of the executed notebooks (kacnb.collection.site).

The first tests use a small collection in a temporary folder and need neither Sphinx nor a
browser: what the pages are made of (verdict tables, the README's figure tables, the numbered
titles, the cards of the index, the figures that no cell shows), that every value of a run
record or metrics file is escaped, and the one-line errors of the command. The last ones
build the site of the repository's committed notebooks with ``kacnb site`` and open every
page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven by selenium)
at 1280 px: no console error, every image loaded, each figure the notebook shows inline in
its cell, every formula typeset by the MathJax copy of the site with the network blocked, no
raw ``$$`` left, each verdict table complete, no horizontal scrolling of the page, every
notebook numbered in the sidebar, a thumbnail per notebook on the index; and a site built
from a run record full of markup shows it as text and runs no script. A screenshot of
notebook 02's page is kept in ``tests/artifacts/site/`` (git-ignored). A browser check is only
worth something if it can fail, so one test opens deliberately broken pages and expects each
defect to be reported.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import html
import io
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from kacnb.collection import cli, site
from kacnb.collection.plotting import FIGURE_KEY
from kacnb.collection.registry import NOTEBOOKS, FigureSpec, NotebookSpec, Registry

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts" / "site"
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201a5e1b1d80000000049454e44ae426082"
)
ROWS = [
    {
        "claim": "|v| <= c (Thm 4 [41])",
        "measured": "max|v|/c 0.9030",
        "threshold": "<= 1",
        "verdict": "reproduced",
    },
    {
        "claim": "a <b> & *c* $x$",
        "measured": "1 < 2",
        "threshold": "x_t | y_t",
        "verdict": "differs",
    },
]
SPEC = NotebookSpec(
    2, "02_kac_1d", "One dimension", (FigureSpec("fig09_demo", "Fig. 9", "a demo figure"),)
)


def _inline_image(name: str | None) -> nbformat.NotebookNode:
    """An inline PNG output as ``kacnb.collection.plotting.save_figure`` shows it (None: another
    image)."""
    metadata = {FIGURE_KEY: name} if name else {}
    data = {"image/png": base64.b64encode(PNG_1x1).decode("ascii")}
    return nbformat.v4.new_output("display_data", data=data, metadata=metadata)


def _collection(
    root: Path,
    *,
    executed: bool = True,
    record: bool = True,
    shown: tuple[str | None, ...] = (),
    heading: str = "# One dimension",
    rec: dict | None = None,
    rows: list[dict] = ROWS,
) -> Registry:
    """One notebook (``02_kac_1d``) with its source, executed notebook (showing the inline
    images ``shown``), two figures, run record (``rec``) and verdict table under ``root``."""
    nbs, figs = root / "notebooks", root / "figures"
    (figs / "runs").mkdir(parents=True)
    nbs.mkdir()
    (nbs / "02_kac_1d.py").write_text("# %%\nprint(1)\n")
    if executed:
        nb = nbformat.v4.new_notebook()
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [nbformat.v4.new_markdown_cell(f"{heading}\n\n$$a^2$$")]
        code = nbformat.v4.new_code_cell("print(1)")
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed 1\n")]
        code.outputs += [_inline_image(name) for name in shown]
        nb.cells.append(code)
        nbformat.write(nb, nbs / "02_kac_1d.ipynb")
    for name in ("fig09_demo.png", "nb02_paths.png"):
        (figs / name).write_bytes(PNG_1x1)
    if record:
        rec = dict(rec or {"profile": "quick", "device": "cpu", "git_commit": "abc1234"})
        rec["figures"] = ["nb02_paths.pdf", "nb02_paths.png", "fig09_demo.png"]
        (figs / "runs" / "02_kac_1d.json").write_text(json.dumps(rec))
    metrics = {"notebook": "02_kac_1d", "rows": rows}
    (figs / "runs" / "02_kac_1d.metrics.json").write_text(json.dumps(metrics))
    return Registry([SPEC], nbs)


# -- what the pages are made of ------------------------------------------------------------


def test_verdict_table_has_one_escaped_row_per_verdict():
    table = site.verdict_table_html(ROWS)
    assert table.count("<tr class=") == len(ROWS)
    assert table.count("<th>") == 4
    # Every cell's text survives exactly, markup characters escaped, in column order.
    for r in ROWS:
        v, cells = r["verdict"], [r["claim"], r["measured"], r["threshold"]]
        row = f'<tr class="{v}"><td class="verdict">{v}</td>'
        row += "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        assert row in table
    assert "<b>" not in table and "1 < 2" not in table


def test_readme_figure_tables_are_those_of_the_figures_section_with_links():
    readme = "\n".join(
        [
            "# Title",
            "## Running",
            "| skip | me |",
            "|---|---|",
            "## Figures",
            "Text.",
            "| paper figure | notebook |",
            "|---|---|",
            "| Fig. 1 | `03_kac_multid` |",
            "",
            "| claim | notebook |",
            "|---|---|",
            "| Thm 4 | `02_kac_1d` |",
            "## Next",
            "| skip | too |",
        ]
    )
    tables = site.readme_figure_tables(readme, ["02_kac_1d"])
    assert len(tables) == 2
    assert tables[0].splitlines()[0] == "| paper figure | notebook |"
    assert "`03_kac_multid`" in tables[0]  # not a page of this site: left as code
    assert tables[1].splitlines()[-1] == "| Thm 4 | [02_kac_1d](02_kac_1d.ipynb) |"
    assert "skip" not in "".join(tables)


def test_page_collects_record_figures_and_verdicts(tmp_path):
    (page,) = site.collect_pages(_collection(tmp_path))
    # PNGs of the record, in its order (the PDF is not a page image).
    assert [p.name for p in page.figures] == ["nb02_paths.png", "fig09_demo.png"]
    assert page.n_reproduced == 1 and len(page.rows) == 2
    assert page.shown == () and page.unshown == page.figures
    nb = site.page_notebook(page)
    original = nbformat.read(page.notebook, as_version=4)
    assert nb.cells[0].source == "# 02 · One dimension\n\n$$a^2$$"
    assert nb.cells[1 : len(original.cells)] == original.cells[1:]  # outputs as executed
    figs, verdicts = (c.source for c in nb.cells[len(original.cells) :])
    # No cell shows a figure: the run's figures are shown after the notebook.
    assert figs.startswith("## Figures of this run\n")
    assert figs.count("```{figure} figures/") == 2
    assert "Fig. 9: a demo figure" in figs
    assert "1 of 2 claims reproduced" in verdicts
    assert site.verdict_table_html(ROWS) in verdicts
    assert "abc1234" in verdicts


def test_figures_shown_by_a_cell_are_not_repeated_after_the_notebook(tmp_path):
    (page,) = site.collect_pages(_collection(tmp_path / "one", shown=("nb02_paths", None)))
    assert page.shown == ("nb02_paths", None)
    assert [p.name for p in page.unshown] == ["fig09_demo.png"]
    nb = site.page_notebook(page)
    assert [o.output_type for o in nb.cells[1].outputs].count("display_data") == 2
    gallery = nb.cells[-2].source
    assert gallery.startswith("## More figures\n") and gallery.count("```{figure}") == 1
    assert "figures/fig09_demo.png" in gallery and "nb02_paths" not in gallery
    # Every figure shown where the notebook draws it: no gallery at all.
    (page,) = site.collect_pages(_collection(tmp_path / "all", shown=("fig09_demo", "nb02_paths")))
    nb = site.page_notebook(page)
    assert page.unshown == ()
    assert not any("```{figure}" in c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[-1].source.startswith("## Verdicts of this run")


@pytest.mark.parametrize(
    "heading, title",
    [
        ("# One dimension", "02 · One dimension"),
        ("# 03 · Componentwise Kac processes", "02 · Componentwise Kac processes"),
        ("# 2. The law", "02 · The law"),
        ("# 2D mixture", "02 · 2D mixture"),
        ("## Only a section", "02 · One dimension"),
    ],
)
def test_every_notebook_page_is_titled_with_its_number(tmp_path, heading, title):
    (page,) = site.collect_pages(_collection(tmp_path, heading=heading))
    nb = site.page_notebook(page)
    headings = [
        line
        for c in nb.cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("# ")
    ]
    assert headings[0] == f"# {title}" and page.heading == title
    assert site.notebook_cards_html([page]).count(html.escape(title)) == 1


def test_page_without_record_uses_registered_and_prefixed_figures(tmp_path):
    (page,) = site.collect_pages(_collection(tmp_path, record=False))
    assert [p.name for p in page.figures] == ["fig09_demo.png", "nb02_paths.png"]


def test_index_shows_a_card_with_a_thumbnail_per_notebook(tmp_path):
    pages = site.collect_pages(_collection(tmp_path))
    text = site.index_markdown(pages, ["| a | b |\n|---|---|"], ["report", "paper-notes"])
    card = (
        '<a class="nb-card" href="02_kac_1d.html">'
        '<img src="_static/thumbs/02_kac_1d.png" alt="a figure of 02_kac_1d">'
        '<span class="nb-title">02 · One dimension</span>'
        '<span class="nb-facts">1 of 2 claims reproduced · profile quick · device cpu · '
        "2 figures</span></a>"
    )
    assert card in text
    assert "[paper notes](paper-notes.md)" in text
    assert "[reproducibility report](report.md)" in text
    toc = text.split("```{toctree}")[1].split("```")[0].split()
    assert toc[-3:] == ["02_kac_1d", "report", "paper-notes"]
    # The thumbnail is the paper's figure (Fig. 9) although the record lists nb02 first.
    assert site.thumbnail_source(pages[0]).name == "fig09_demo.png"


def test_thumbnail_falls_back_to_the_first_figure_the_notebook_shows(tmp_path):
    spec = NotebookSpec(2, "02_kac_1d", "One dimension")
    (page,) = site.collect_pages(_collection(tmp_path, shown=("fig09_demo",)))
    page = dataclasses.replace(page, spec=spec)
    assert site.thumbnail_source(page).name == "fig09_demo.png"
    page = dataclasses.replace(page, shown=())
    assert site.thumbnail_source(page).name == "nb02_paths.png"
    page = dataclasses.replace(page, figures=())
    assert site.thumbnail_source(page) is None
    assert "<img" not in site.notebook_cards_html([page])


def test_thumbnail_is_a_small_copy(tmp_path):
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (1500, 600), "white").save(big)
    thumb = site.write_thumbnail(big, tmp_path / "thumbs" / "t.png")
    with Image.open(thumb) as img:
        assert img.size == (site.THUMBNAIL_SIZE[0], 192)  # 1500 x 600 scaled to width 480


# -- no markup or script from a record ---------------------------------------------------------

EVIL = "quick<img src=x onerror=alert(7)>"
EVIL_RECORD = {
    "profile": EVIL,
    "device": "cpu<script>alert(8)</script>",
    "git_commit": 'abc"><img src=y onerror=alert(9)>\n\n$$x$$ *b*',
    "wall_time_s": "<b>1</b>",
}
EVIL_ROWS = [{**ROWS[0], "claim": "<script>alert(10)</script>", "verdict": 'reproduced" x="'}]


def test_escape_makes_markup_text():
    assert site.escape(EVIL) == "quick&lt;img src=x onerror=alert(7)&gt;"
    assert site.escape("a\"b'c&d") == "a&quot;b&#x27;c&amp;d"
    # A blank line would end the raw HTML block, and the rest would be read as markdown.
    assert site.escape("a\n\nb\r\nc") == "a&#10;&#10;b&#10;c"
    assert html.unescape(site.escape(EVIL_RECORD["git_commit"])) == EVIL_RECORD["git_commit"]


def test_record_and_metrics_values_are_escaped_on_the_pages(tmp_path):
    reg = _collection(tmp_path, rec=EVIL_RECORD, rows=EVIL_ROWS)
    (page,) = site.collect_pages(reg)
    nb = site.page_notebook(page)
    verdicts = nb.cells[-1].source
    cards = site.notebook_cards_html([page])
    for text in (verdicts, cards, site.run_record_html(page.spec.stem, page.record)):
        assert "<img src=x" not in text and "<img src=y" not in text
        assert "<script" not in text and "<b>" not in text
        assert "\n\n$$" not in text
    assert site.escape(EVIL) in cards and site.escape(EVIL) in verdicts
    for value in EVIL_RECORD.values():
        assert site.escape(value) in verdicts
    assert "&lt;script&gt;alert(10)&lt;/script&gt;" in verdicts
    assert 'class="reproduced&quot; x=&quot;"' in verdicts


@pytest.mark.parametrize("name", ["../secret.png", "a b.png", '<img src=x onerror="1">.png'])
def test_a_record_figure_that_is_not_a_plain_file_name_is_refused(tmp_path, name):
    reg = _collection(tmp_path)
    path = tmp_path / "figures" / "runs" / "02_kac_1d.json"
    rec = json.loads(path.read_text())
    rec["figures"].append(name)
    path.write_text(json.dumps(rec))
    with pytest.raises(site.SiteError, match="not a plain file name"):
        site.collect_pages(reg)


def test_stage_writes_the_sphinx_source(tmp_path):
    reg = _collection(tmp_path / "c")
    (tmp_path / "c" / "docs").mkdir()
    (tmp_path / "c" / "docs" / "paper-notes.md").write_text("# Notes\n")
    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "c" / "docs" / "report.md").write_text("# Report\n")
    (tmp_path / "c" / "docs" / "architecture.md").write_text("# Architecture\n")
    site.stage(reg, src)
    names = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    expected = {"conf.py", "index.md", "02_kac_1d.ipynb", "paper-notes.md", "report.md"}
    expected |= {"architecture.md"}
    expected |= {"figures/nb02_paths.png", "figures/fig09_demo.png", "_static/site.css"}
    expected |= {"_static/thumbs/02_kac_1d.png"}
    assert expected <= names
    index = (src / "index.md").read_text()
    assert "[reproducibility report](report.md)" in index
    assert "[architecture](architecture.md)" in index


def test_stage_copies_only_the_figures_no_cell_shows(tmp_path):
    reg = _collection(tmp_path / "c", shown=("nb02_paths",))
    src = tmp_path / "src"
    src.mkdir()
    site.stage(reg, src)
    assert sorted(p.name for p in (src / "figures").iterdir()) == ["fig09_demo.png"]
    assert "report" not in (src / "index.md").read_text()  # no docs/report.md here


# -- one-line errors of the command ----------------------------------------------------------


def _site_cli(capsys, reg: Registry, out: Path) -> tuple[int, list[str]]:
    code = cli.main(
        ["site", "--out", str(out), "--notebooks-dir", str(reg.notebooks_dir)], entries=reg.entries
    )
    return code, capsys.readouterr().err.strip().splitlines()


def test_cli_missing_executed_notebook_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(site, "missing_packages", lambda: [])
    reg = _collection(tmp_path, executed=False)
    code, err = _site_cli(capsys, reg, tmp_path / "out")
    assert code == 2 and len(err) == 1
    assert "02_kac_1d.ipynb is missing" in err[0] and "kacnb run 02" in err[0]
    assert not (tmp_path / "out").exists()


def test_cli_missing_site_extra_names_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(site, "missing_packages", lambda: ["myst-nb"])
    code, err = _site_cli(capsys, _collection(tmp_path), tmp_path / "out")
    assert code == 2 and len(err) == 1
    assert "myst-nb" in err[0] and 'pip install -e ".[site]"' in err[0]


def test_cli_missing_figure_of_the_record_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(site, "missing_packages", lambda: [])
    reg = _collection(tmp_path)
    (tmp_path / "figures" / "nb02_paths.png").unlink()
    code, err = _site_cli(capsys, reg, tmp_path / "out")
    assert code == 2 and len(err) == 1 and "nb02_paths.png" in err[0]


@pytest.mark.parametrize("kind", ["file", "foreign folder"])
def test_cli_refuses_an_output_that_is_not_a_site(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.setattr(site, "missing_packages", lambda: [])
    reg = _collection(tmp_path / "c")
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("x")
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("keep me")
    code, err = _site_cli(capsys, reg, out)
    assert code == 2 and len(err) == 1 and "--out" in err[0]
    assert kind == "file" or (out / "thesis.tex").read_text() == "keep me"


# -- the real site, in headless Chromium --------------------------------------------------------


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    """The site of the repository's executed notebooks, built by ``kacnb site``."""
    missing = site.missing_packages()
    if missing:
        pytest.skip(f"the site extra is not installed ({', '.join(missing)}): {site.INSTALL_HINT}")
    reg = Registry(NOTEBOOKS, ROOT / "notebooks")
    pages = site.collect_pages(reg)
    out = tmp_path_factory.mktemp("site") / "html"
    said = io.StringIO()
    with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
        code = cli.main(["site", "--out", str(out), "--notebooks-dir", str(reg.notebooks_dir)])
    assert code == 0, said.getvalue()
    assert said.getvalue().endswith("(0 Sphinx warnings)\n"), said.getvalue()
    return out, pages


def test_site_build_is_clean_and_complete(built_site):
    out, pages = built_site
    index = (out / "index.html").read_text(encoding="utf-8")
    for p in pages:
        assert (out / f"{p.spec.stem}.html").is_file()
        assert f'href="{p.spec.stem}.html"' in index
        if p.rows:
            assert f"{p.n_reproduced} of {len(p.rows)}" in index
        # Every line the executed notebook printed is on its page, as committed.
        nb = nbformat.read(p.notebook, as_version=4)
        page = html.unescape((out / f"{p.spec.stem}.html").read_text(encoding="utf-8"))
        printed = [
            line.strip()
            for c in nb.cells
            for o in c.get("outputs", ())
            if o.get("name") == "stdout"
            for line in o.text.splitlines()
        ]
        assert printed and all(line in page for line in printed)
    # MathJax ships with the site; no page asks a CDN for it.
    assert (out / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert all("cdn." not in f.read_text(encoding="utf-8") for f in out.glob("*.html"))


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium with its console log, the network blocked (offline check)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=site.INSTALL_HINT)
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (binary and driver_path):
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install chromium "
            "chromium-driver; .ci/run installs both)"
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1400",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: offline
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    driver.set_script_timeout(90)
    driver.set_page_load_timeout(90)
    yield driver
    driver.quit()


INSPECT = r"""
const done = arguments[arguments.length - 1];
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await document.fonts.ready;
  const broken = Array.from(document.images)
    .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));
  const maths = Array.from(document.querySelectorAll(".math"));
  const unrendered = maths.filter(m => !m.querySelector("mjx-container"))
    .map(m => m.textContent.slice(0, 80));
  const prose = document.body.cloneNode(true);
  prose.querySelectorAll("pre, code, script, style, textarea, mjx-container")
    .forEach(e => e.remove());
  const text = prose.textContent;
  const rawInline = text.match(/\$[^$\n]*[\\^_][^$\n]*\$/g) || [];
  const urls = performance.getEntriesByType("resource").map(e => e.name);
  const stray = [];
  for (let i = text.indexOf("$"); i >= 0; i = text.indexOf("$", i + 1)) {
    stray.push(text.slice(Math.max(0, i - 30), i + 30).replace(/\s+/g, " "));
  }
  const rows = Array.from(document.querySelectorAll("table.verdicts tbody tr"))
    .map(r => r.cells[1].textContent);
  const root = document.documentElement;
  return {
    images: document.images.length, broken, maths: maths.length, unrendered,
    dollars: (text.match(/\$\$/g) || []).length, rawInline, stray,
    remote: urls.filter(u => !u.startsWith("file:")), rows,
    cellImages: document.querySelectorAll("div.cell_output img").length,
    galleryImages: document.querySelectorAll("figure img").length,
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth,
    sidebar: Array.from(document.querySelectorAll("div.sphinxsidebar li.toctree-l1 > a"))
      .map(a => [a.getAttribute("href"), a.textContent.trim()]),
    cards: Array.from(document.querySelectorAll("a.nb-card")).map(a => {
      const img = a.querySelector("img");
      return [a.getAttribute("href"), img ? img.naturalWidth : 0];
    }),
    alerts: window.__alerts || [],
  };
})().then(done, e => done({error: String(e)}));
"""


def inspect_page(driver, path: Path) -> dict:
    """Open ``path`` and report what a reader would see wrong: console errors (``errors``),
    images not loaded, formulas not typeset, raw ``$$``, ``$...$`` or any stray ``$`` in the
    prose (a formula broken by markdown), resources fetched from the network, the page wider
    than the window; and what it shows: the claims of the verdict table, the images in cell
    outputs and in figures, the sidebar's links, the index's cards, alerts raised."""
    driver.get(path.resolve().as_uri())
    found = driver.execute_async_script(INSPECT)
    assert "error" not in found, found
    found["errors"] = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return found


def _page_is_clean(found: dict) -> None:
    assert found["errors"] == []
    assert found["broken"] == []
    assert found["unrendered"] == []
    assert found["dollars"] == 0 and found["rawInline"] == []
    assert found["stray"] == []
    assert found["remote"] == []
    # Long lines scroll inside their block: the page itself never scrolls sideways.
    assert found["scrollWidth"] <= found["clientWidth"]
    assert found["alerts"] == []


#: A notebook's link in the sidebar: "NN · title".
_NUMBERED = re.compile(r"^\d\d · \S")


def test_every_page_renders_in_headless_chromium(built_site, browser):
    out, pages = built_site
    by_stem = {p.spec.stem: p for p in pages}
    html_pages = sorted(out.glob("*.html"))
    assert len(html_pages) >= len(pages) + 1
    typeset = 0
    for path in html_pages:
        found = inspect_page(browser, path)
        print(path.name, {k: v for k, v in found.items() if k not in ("rows", "sidebar")})
        _page_is_clean(found)
        assert 1200 <= found["clientWidth"] <= 1280  # the window is 1280 px wide
        typeset += found["maths"]
        # The sidebar lists every notebook, each numbered (the current page links to "#").
        here = path.stem if path.stem in by_stem else None
        notebooks = [
            text
            for href, text in found["sidebar"]
            if Path(href).stem in by_stem or (href == "#" and here)
        ]
        assert len(notebooks) == len(pages) and all(_NUMBERED.match(t) for t in notebooks)
        current = [text for href, text in found["sidebar"] if href == "#"]
        assert here is None or current[0].startswith(f"{by_stem[here].spec.label} · ")
        page = by_stem.get(path.stem)
        if page is not None:
            # Each figure where the notebook draws it (every inline image of its cells), and
            # the figures of its run that no cell shows after the notebook.
            assert found["cellImages"] == len(page.shown) >= len(set(page.shown) - {None})
            assert found["galleryImages"] == len(page.unshown)
            assert found["images"] == len(page.shown) + len(page.unshown) >= len(page.figures)
            assert found["rows"] == [r["claim"] for r in page.rows]
    assert typeset > 100  # the notebooks and the paper notes are full of formulas
    index = inspect_page(browser, out / "index.html")
    # One card per notebook linking to its page, with a loaded thumbnail when it has figures.
    assert [href for href, _ in index["cards"]] == [f"{p.spec.stem}.html" for p in pages]
    thumbs = [width > 0 for _, width in index["cards"]]
    assert thumbs == [bool(p.figures) for p in pages]
    # A screenshot of one page (at its first displayed formula) as the test's artefact.
    browser.get((out / "02_kac_1d.html").resolve().as_uri())
    browser.execute_async_script(INSPECT)
    browser.execute_script("document.querySelector('div.math').scrollIntoView()")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS.parent / ".gitignore").write_text("*\n")
    shot = ARTIFACTS / "02_kac_1d.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == PNG_1x1[:8] and shot.stat().st_size > 10_000


def test_browser_check_reports_each_broken_page(built_site, browser, tmp_path):
    """Each defect a page can have must show in :func:`inspect_page`."""
    out, _ = built_site
    shutil.copytree(out / "_static", tmp_path / "_static")
    mathjax = '<script defer src="_static/mathjax/tex-chtml.js"></script>'
    bad = {
        "js_error": "<script>no_such_function();</script><p>text</p>",
        "wide_code": "<pre>" + "x = 1; " * 400 + "</pre>",
        "scrolling_code": '<link rel="stylesheet" href="_static/site.css"><div class="body">'
        "<pre>" + "x = 1; " * 400 + "</pre></div>",
        # markdown cut a formula at a line that began with "+ ": a nested list item
        "broken_formula": "<ul><li>the law $u = f_0(x - ct)\n<ul><li>g(x)$ of K(t)</li></ul>"
        "</li></ul>",
        "broken_image": '<img src="_images/no_such_figure.png">',
        "raw_display_math": "<p>the law $$p(t, x)$$ of K(t)</p>",
        "raw_inline_math": "<p>the law $p_t(x)$ of K(t)</p>",
        "cdn_mathjax": '<script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js">'
        '</script><span class="math">\\(x^2\\)</span>',
        "local_mathjax": mathjax + '<span class="math">\\(x^2\\)</span>',
    }
    found = {}
    for name, body in bad.items():
        path = tmp_path / f"{name}.html"
        path.write_text(f"<!DOCTYPE html><html><head></head><body>{body}</body></html>")
        found[name] = inspect_page(browser, path)
    assert any("no_such_function" in e for e in found["js_error"]["errors"])
    assert found["broken_image"]["broken"] == ["_images/no_such_figure.png"]
    assert found["broken_image"]["errors"]  # the failed load is a console error too
    assert found["raw_display_math"]["dollars"] == 2  # both delimiters
    assert found["raw_inline_math"]["rawInline"] == ["$p_t(x)$"]
    assert found["wide_code"]["scrollWidth"] > found["wide_code"]["clientWidth"]
    _page_is_clean(found["scrolling_code"])  # the site's style keeps it in its block
    assert len(found["broken_formula"]["stray"]) == 2
    assert found["broken_formula"]["rawInline"] == []  # which the older check missed
    assert found["cdn_mathjax"]["unrendered"] == ["\\(x^2\\)"]
    assert found["cdn_mathjax"]["errors"]  # blocked network
    _page_is_clean(found["local_mathjax"])  # the control: the site's own MathJax works
    assert found["local_mathjax"]["maths"] == 1


#: Runs before any script of a page: alerts are recorded instead of shown.
RECORD_ALERTS = "window.__alerts = []; window.alert = m => window.__alerts.push(String(m));"
INJECTED = r"""
return {
  text: document.body.innerText,
  images: Array.from(document.images).map(i => i.getAttribute("src")),
  scripts: Array.from(document.scripts).filter(s => s.textContent.includes("alert(")).length,
};
"""


def test_markup_in_a_run_record_shows_as_text_in_chromium(browser, tmp_path):
    """A run record and metrics file full of markup: Chromium shows it as text, runs none of
    it, and a page that did not escape it would have raised the alert (the control)."""
    if site.missing_packages():
        pytest.skip(f"the site extra is not installed: {site.INSTALL_HINT}")
    reg = _collection(tmp_path / "c", rec=EVIL_RECORD, rows=EVIL_ROWS, shown=("nb02_paths",))
    out = tmp_path / "html"
    assert site.build_site(reg, out) == []
    control = tmp_path / "control.html"
    control.write_text(f"<!DOCTYPE html><html><body><p>{EVIL}</p></body></html>")
    hook = browser.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_ALERTS}
    )
    try:
        browser.get(control.resolve().as_uri())
        assert browser.execute_script("return window.__alerts") == ["7"]
        browser.get_log("browser")  # the control's failed image, read so it is not counted
        for name in ("index.html", "02_kac_1d.html"):
            found = inspect_page(browser, out / name)
            seen = browser.execute_script(INJECTED)
            assert found["alerts"] == [] and found["broken"] == [] and found["errors"] == []
            assert seen["scripts"] == 0
            assert not {"x", "y"} & set(seen["images"])
            assert EVIL in seen["text"] and "cpu<script>alert(8)</script>" in seen["text"]
        assert 'abc"><img src=y onerror=alert(9)>' in seen["text"]
        assert found["rows"] == ["<script>alert(10)</script>"]
    finally:
        browser.execute_cdp_cmd(
            "Page.removeScriptToEvaluateOnNewDocument", {"identifier": hook["identifier"]}
        )
