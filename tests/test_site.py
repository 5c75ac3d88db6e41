"""``kacnb site``: the static HTML book of the executed notebooks (kacnb.site).

The first tests use a small collection in a temporary folder and need neither Sphinx nor a
browser: what the pages are made of (verdict tables, the README's figure tables, the appended
cells) and the one-line errors of the command. The last ones build the site of the
repository's committed notebooks with ``kacnb site`` and open every page in headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, driven by selenium): no console error, every
image loaded, every formula typeset by the MathJax copy of the site with the network blocked,
no raw ``$$`` left, each verdict table complete. A screenshot of notebook 02's page is kept
in ``tests/artifacts/site/`` (git-ignored). A browser check is only worth something if it can
fail, so one test opens deliberately broken pages and expects each defect to be reported.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import shutil
from pathlib import Path

import nbformat
import pytest

from kacnb import cli, site
from kacnb.registry import NOTEBOOKS, FigureSpec, NotebookSpec, Registry

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


def _collection(root: Path, *, executed: bool = True, record: bool = True) -> Registry:
    """One notebook (``02_kac_1d``) with its source, executed notebook, two figures, run
    record and verdict table under ``root``."""
    nbs, figs = root / "notebooks", root / "figures"
    (figs / "runs").mkdir(parents=True)
    nbs.mkdir()
    (nbs / "02_kac_1d.py").write_text("# %%\nprint(1)\n")
    if executed:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_markdown_cell("# One dimension\n\n$$a^2$$")]
        code = nbformat.v4.new_code_cell("print(1)")
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="printed 1\n")]
        nb.cells.append(code)
        nbformat.write(nb, nbs / "02_kac_1d.ipynb")
    for name in ("fig09_demo.png", "nb02_paths.png"):
        (figs / name).write_bytes(PNG_1x1)
    if record:
        rec = {"profile": "quick", "device": "cpu", "git_commit": "abc1234"}
        rec["figures"] = ["nb02_paths.pdf", "nb02_paths.png", "fig09_demo.png"]
        (figs / "runs" / "02_kac_1d.json").write_text(json.dumps(rec))
    metrics = {"notebook": "02_kac_1d", "rows": ROWS}
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
    nb = site.page_notebook(page)
    original = nbformat.read(page.notebook, as_version=4)
    assert nb.cells[: len(original.cells)] == original.cells  # outputs as executed
    figs, verdicts = (c.source for c in nb.cells[len(original.cells) :])
    assert figs.count("```{figure} figures/") == 2
    assert "Fig. 9: a demo figure" in figs
    assert "1 of 2 claims reproduced" in verdicts
    assert site.verdict_table_html(ROWS) in verdicts
    assert "abc1234" in verdicts


def test_page_without_record_uses_registered_and_prefixed_figures(tmp_path):
    (page,) = site.collect_pages(_collection(tmp_path, record=False))
    assert [p.name for p in page.figures] == ["fig09_demo.png", "nb02_paths.png"]


def test_index_lists_every_notebook_with_its_verdict_count(tmp_path):
    pages = site.collect_pages(_collection(tmp_path))
    text = site.index_markdown(pages, ["| a | b |\n|---|---|"], notes=True)
    assert "| [02_kac_1d](02_kac_1d.ipynb) | One dimension | 1 of 2 | quick | cpu | 2 |" in text
    assert "[paper notes](paper-notes.md)" in text
    toc = text.split("```{toctree}")[1]
    assert "02_kac_1d" in toc and "paper-notes" in toc


def test_stage_writes_the_sphinx_source(tmp_path):
    reg = _collection(tmp_path / "c")
    (tmp_path / "c" / "docs").mkdir()
    (tmp_path / "c" / "docs" / "paper-notes.md").write_text("# Notes\n")
    src = tmp_path / "src"
    src.mkdir()
    site.stage(reg, src)
    names = {p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file()}
    expected = {"conf.py", "index.md", "02_kac_1d.ipynb", "paper-notes.md"}
    expected |= {"figures/nb02_paths.png", "figures/fig09_demo.png", "_static/site.css"}
    assert expected <= names


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
  const rows = Array.from(document.querySelectorAll("table.verdicts tbody tr"))
    .map(r => r.cells[1].textContent);
  return {
    images: document.images.length, broken, maths: maths.length, unrendered,
    dollars: (text.match(/\$\$/g) || []).length, rawInline,
    remote: urls.filter(u => !u.startsWith("file:")), rows,
  };
})().then(done, e => done({error: String(e)}));
"""


def inspect_page(driver, path: Path) -> dict:
    """Open ``path`` and report what a reader would see wrong: console errors (``errors``),
    images not loaded, formulas not typeset, raw ``$$`` or ``$...$`` in the prose, resources
    fetched from the network, and the claims of the verdict table."""
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
    assert found["remote"] == []


def test_every_page_renders_in_headless_chromium(built_site, browser):
    out, pages = built_site
    by_stem = {p.spec.stem: p for p in pages}
    html_pages = sorted(out.glob("*.html"))
    assert len(html_pages) >= len(pages) + 1
    typeset = 0
    for path in html_pages:
        found = inspect_page(browser, path)
        print(path.name, {k: v for k, v in found.items() if k != "rows"})
        _page_is_clean(found)
        typeset += found["maths"]
        page = by_stem.get(path.stem)
        if page is not None:
            assert found["images"] == len(page.figures)
            assert found["rows"] == [r["claim"] for r in page.rows]
    assert typeset > 100  # the notebooks and the paper notes are full of formulas
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
    assert found["cdn_mathjax"]["unrendered"] == ["\\(x^2\\)"]
    assert found["cdn_mathjax"]["errors"]  # blocked network
    _page_is_clean(found["local_mathjax"])  # the control: the site's own MathJax works
    assert found["local_mathjax"]["maths"] == 1
