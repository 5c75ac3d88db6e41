"""``kacnb drift``: a fresh run against the committed outputs (kacnb.collection.drift).

Each case builds a small collection (one notebook's metrics, run record, executed notebook
and two PNG figures) in a temporary folder, copies it as the "fresh run", changes one thing
and checks what the comparison reports and the exit status.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kacnb.collection import cli, drift  # noqa: E402

STEM = "02_kac_1d"
ROWS = [
    {
        "claim": "|v| <= c (Thm 4 [41])",
        "measured": "max|v|/c 0.9030",
        "threshold": "<= 1",
        "verdict": "reproduced",
    },
    {
        "claim": "atom-to-cone mass flow",
        "measured": "rel. err 3.0e-12, agree=True",
        "threshold": "< 1e-6",
        "verdict": "reproduced",
    },
    {
        "claim": "diffusion needs more steps",
        "measured": "diffusion 158 vs Kac max 200",
        "threshold": "diffusion > every Kac",
        "verdict": "differs",
    },
]
EXTRA = {"models": {"kac_25_5": {"nll": 6515.01, "nfe": 200}}, "weights": "trained"}


def _figure(path: Path, shift: float = 0.0, size=(3.0, 2.0)) -> None:
    fig, ax = plt.subplots(figsize=size, dpi=50)
    x = np.linspace(0.0, 1.0, 50)
    ax.plot(x, np.sin(6 * x) + shift)
    ax.set_ylim(-1.5, 1.5)
    fig.savefig(path)
    plt.close(fig)


def _notebook(path: Path, printed: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(result)")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), cell]
    nbformat.write(nb, str(path))


def _collection(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    runs = root / "figures" / "runs"
    runs.mkdir(parents=True)
    _figure(root / "figures" / "nb02_a.png")
    _figure(root / "figures" / "nb02_b.png", shift=0.3)
    record = {"notebook": STEM, "figures": ["nb02_a.pdf", "nb02_a.png", "nb02_b.png"]}
    (runs / f"{STEM}.json").write_text(json.dumps(record))
    metrics = {"notebook": STEM, "profile": "quick", "rows": ROWS, **EXTRA}
    (runs / f"{STEM}.metrics.json").write_text(json.dumps(metrics))
    _notebook(root / "notebooks" / f"{STEM}.ipynb", "slope -1.01 (12 tests)\n")
    return root


@pytest.fixture
def dirs(tmp_path):
    committed = _collection(tmp_path / "repo")
    fresh = tmp_path / "fresh"
    shutil.copytree(committed, fresh)
    return committed, fresh, tmp_path / "report"


def _metrics_path(root: Path) -> Path:
    return root / "figures" / "runs" / f"{STEM}.metrics.json"


def _edit_metrics(root: Path, edit) -> None:
    path = _metrics_path(root)
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))


def _run(committed, fresh, out, capsys):
    status = cli.main(["drift", str(fresh), "--committed", str(committed), "--output", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    return status, summary, capsys.readouterr().out


def test_identical_run_has_no_drift_and_a_self_contained_report(dirs, capsys):
    committed, fresh, out = dirs
    status, summary, text = _run(committed, fresh, out, capsys)
    assert status == 0
    assert summary["drift"] is False
    assert summary["findings"] == []
    assert [f["status"] for f in summary["figures"]] == ["same", "same"]  # PNGs only
    assert [f["rms"] for f in summary["figures"]] == [0.0, 0.0]
    assert summary["compared"] == {"metrics": 3 + 6 + 4, "figures": 2, "cells": 1}
    assert text.strip().splitlines()[-2] == "no drift"
    page = (out / "index.html").read_text()
    sources = [s.split('"')[0] for s in page.split('src="')[1:]]
    assert len(sources) == 4  # committed and fresh of both figures, no difference image
    for src in sources:
        assert not Path(src).is_absolute()
        assert (out / src).is_file()
    assert "04_cfm_gmm_2d:*" in page  # the tolerances are shown


def test_perturbed_metric_outside_its_tolerance_is_drift(dirs, capsys):
    committed, fresh, out = dirs
    _edit_metrics(fresh, lambda r: r["models"]["kac_25_5"].update(nll=6515.01 * 1.01))
    status, summary, text = _run(committed, fresh, out, capsys)
    assert status == 1
    (finding,) = summary["findings"]
    assert (finding["kind"], finding["key"]) == ("metric", "models.kac_25_5.nll")
    assert "rtol=0.001" in finding["detail"]
    assert "models.kac_25_5.nll" in (out / "index.html").read_text()
    assert text.strip().splitlines()[-2] == "DRIFT"


def test_metric_within_its_tolerance_is_not_drift(dirs, capsys):
    committed, fresh, out = dirs
    _edit_metrics(fresh, lambda r: r["models"]["kac_25_5"].update(nll=6515.01 * (1 + 5e-4)))
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert (status, summary["findings"]) == (0, [])


def test_number_in_a_measured_text_is_compared_with_its_printed_precision():
    tol = drift.Tolerance(1e-3, 1e-9)
    # one unit of the last printed digit is rounding, not drift; two units is
    assert drift.compare_text("share 0.0019", "share 0.0020", tol) is None
    assert drift.compare_text("share 0.0019", "share 0.0021", tol) is not None
    # larger numbers: the relative tolerance
    assert drift.compare_text("max|v|/c 0.9030", "max|v|/c 0.9038", tol) is None
    assert drift.compare_text("max|v|/c 0.9030", "max|v|/c 0.9045", tol) is not None
    assert drift.compare_text("max L1 9.5e-05", "max L1 9.6e-05", tol) is None
    assert drift.compare_text("max L1 9.5e-05", "max L1 9.8e-05", tol) is not None
    # round-off below atol: digits of float64 noise are not compared
    assert drift.compare_text("rel. err 3.0e-12", "rel. err 7.1e-12", tol) is None
    # the words between the numbers must agree
    assert drift.compare_text("agree=True", "agree=False", tol) is not None
    assert drift.compare_text("slope -1.01", "slope -1.01, 2", tol) is not None


def test_measured_text_outside_tolerance_is_drift(dirs, capsys):
    committed, fresh, out = dirs
    _edit_metrics(fresh, lambda r: r["rows"][1].update(measured="rel. err 3.0e-12, agree=False"))
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert status == 1
    assert [f["key"] for f in summary["findings"]] == ["rows[atom-to-cone mass flow].measured"]


def test_flipped_verdict_is_drift_even_when_the_count_is_unchanged(dirs, capsys):
    committed, fresh, out = dirs

    def swap(record):
        record["rows"][0]["verdict"] = "differs"
        record["rows"][2]["verdict"] = "reproduced"

    _edit_metrics(fresh, swap)
    status, summary, text = _run(committed, fresh, out, capsys)
    assert status == 1
    flips = [f for f in summary["findings"] if f["kind"] == "verdict"]
    assert [(f["key"], f["committed"], f["fresh"]) for f in flips] == [
        ("rows[|v| <= c (Thm 4 [41])]", "reproduced", "differs"),
        ("rows[diffusion needs more steps]", "differs", "reproduced"),
    ]
    assert summary["counts"]["verdict flips"] == 2
    assert "verdict: 02_kac_1d rows[|v| <= c (Thm 4 [41])]: verdict flipped" in text


def test_missing_row_or_metrics_file_is_drift(dirs, capsys):
    committed, fresh, out = dirs
    _edit_metrics(fresh, lambda r: r["rows"].pop())
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert status == 1
    assert {f["detail"] for f in summary["findings"]} == {
        "row only on one side",
        "entry only on one side",
    }
    _metrics_path(fresh).unlink()
    assert _run(committed, fresh, out, capsys)[0] == 1


def test_changed_figure_is_drift_with_a_difference_image(dirs, capsys):
    committed, fresh, out = dirs
    _figure(fresh / "figures" / "nb02_b.png", shift=0.5)
    status, summary, text = _run(committed, fresh, out, capsys)
    assert status == 1
    changed = [f for f in summary["figures"] if f["drift"]]
    assert [(f["name"], f["status"]) for f in changed] == [("nb02_b.png", "changed")]
    assert changed[0]["rms"] > drift.FIGURE_RMS_TOL
    assert (out / changed[0]["diff_img"]).is_file()
    assert 'src="images/02_kac_1d/nb02_b.diff.png"' in (out / "index.html").read_text()
    assert "figure: 02_kac_1d nb02_b.png: changed" in text


def test_changed_figure_of_a_trained_model_is_for_review_only(dirs, tmp_path):
    committed, fresh, _ = dirs
    _figure(fresh / "figures" / "nb02_b.png", shift=0.5)
    pair = (committed / "figures" / "nb02_b.png", fresh / "figures" / "nb02_b.png")
    trained = drift.compare_figure("04_cfm_gmm_2d", "nb02_b.png", *pair, tmp_path / "r")
    assert (trained.status, trained.review_only, trained.drift) == ("changed", True, False)
    assert drift.compare_figure(STEM, "nb02_b.png", *pair, tmp_path / "r").drift


def test_figure_of_another_size_or_missing_is_drift(dirs, capsys):
    committed, fresh, out = dirs
    _figure(fresh / "figures" / "nb02_a.png", size=(3.0, 2.2))
    (fresh / "figures" / "nb02_b.png").unlink()
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert status == 1
    assert [f["status"] for f in summary["figures"]] == ["size changed", "missing in fresh run"]


def test_figure_rms_below_the_tolerance_is_not_drift(dirs, tmp_path):
    committed, fresh, out = dirs
    png = fresh / "figures" / "nb02_a.png"
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).copy()
    pixels[0, 0] = pixels[0, 0] - 40  # one pixel a little darker: antialiasing-sized
    Image.fromarray(pixels).save(png)
    result = drift.compare_figure(
        STEM, "nb02_a.png", committed / "figures" / "nb02_a.png", png, tmp_path / "r"
    )
    assert 0 < result.rms < drift.FIGURE_RMS_TOL
    assert result.status == "same" and not result.drift


def test_notebook_outputs_are_reported_for_review_only(dirs, capsys):
    committed, fresh, out = dirs
    _notebook(fresh / "notebooks" / f"{STEM}.ipynb", "slope -1.31 (12 tests)\n")
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert status == 0
    (finding,) = summary["findings"]
    assert (finding["kind"], finding["key"], finding["drift"]) == ("notebook", "cell 1", False)
    assert "-1.31" in finding["fresh"]


def test_notebook_cells_are_paired_by_source_across_an_added_cell():
    def nb(cells):
        out = nbformat.v4.new_notebook()
        for source, printed in cells:
            cell = nbformat.v4.new_code_cell(source)
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
            out.cells.append(cell)
        return out

    committed = nb([("a()", "1.00\n"), ("b()", "2.00\n"), ("old()", "")])
    fresh = nb([("a()", "1.00\n"), ("new()", ""), ("b()", "2.50\n")])
    findings, n_compared = drift.compare_notebook(STEM, committed, fresh)
    assert n_compared == 2
    assert [(f.key, f.detail.split(":")[0], f.drift) for f in findings] == [
        ("cell 2", "cell added", False),
        ("cell 3", "number 1", False),  # b() is still compared after the added cell
        ("committed cell 3", "cell removed", False),
    ]


def test_only_the_notebooks_of_the_fresh_run_are_compared(dirs, capsys):
    committed, fresh, out = dirs
    runs = committed / "figures" / "runs"
    (runs / "03_kac_multid.metrics.json").write_text(json.dumps({"rows": ROWS}))
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert (status, summary["notebooks"]) == (0, [STEM])


def test_tolerances_are_looked_up_per_key():
    assert drift.tolerance_for("04_cfm_gmm_2d", "models.kac_25_5.nll").rtol == 0.5
    assert drift.tolerance_for("02_kac_1d", "rows[x].measured") == drift.DEFAULT_TOLERANCE
    table = (("02_kac_1d:models.*", drift.Tolerance(0.1)),)
    assert drift.tolerance_for("02_kac_1d", "models.a.nll", table).rtol == 0.1
    assert drift.tolerance_for("02_kac_1d", "rows[a].measured", table).rtol == 1e-3
    with pytest.raises(ValueError, match="rtol must be finite"):
        drift.Tolerance(-1.0)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_usage_errors_are_one_line_and_exit_2(dirs, tmp_path, capsys):
    committed, fresh, out = dirs
    assert cli.main(["drift", str(tmp_path / "nope"), "--committed", str(committed)]) == 2
    assert "is not a folder" in _error_line(capsys)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["drift", str(empty), "--committed", str(committed)]) == 2
    assert f"no run in {empty}" in _error_line(capsys)
    assert cli.main(["drift", str(fresh), "--committed", str(empty)]) == 2
    assert "have no notebooks/ folder" in _error_line(capsys)
    a_file = tmp_path / "file"
    a_file.write_text("")
    argv = ["drift", str(fresh), "--committed", str(committed), "--output", str(a_file)]
    assert cli.main(argv) == 2
    assert "is a file" in _error_line(capsys)
    _metrics_path(fresh).write_text("{not json")
    assert cli.main(["drift", str(fresh), "--committed", str(committed), "--output", str(out)]) == 2
    assert "is not readable JSON" in _error_line(capsys)


def _record_path(root: Path) -> Path:
    return root / "figures" / "runs" / f"{STEM}.json"


def _notebook_path(root: Path) -> Path:
    return root / "notebooks" / f"{STEM}.ipynb"


@pytest.mark.parametrize(
    ("where", "content", "message"),
    [
        (_metrics_path, [1, 2, 3], "a metrics record must be a JSON object, got a list"),
        (_metrics_path, {"rows": None}, '"rows" must be a list of row objects, got null'),
        (_metrics_path, {"rows": [5]}, '"rows"[0] must be an object'),
        (_record_path, {"figures": 5}, '"figures" must be a list of file names, got a number'),
        (_record_path, {"figures": [None]}, 'an entry of "figures" must be a file name, got null'),
        (_notebook_path, [], "a notebook must be a JSON object (nbformat), got a list"),
        (_notebook_path, {"cells": [{"outputs": 3}]}, "cell 1 outputs must be a list"),
        (_notebook_path, {"cells": [{"metadata": {"tags": "x"}}]}, "cell 1 tags must be a list"),
    ],
)
def test_malformed_fresh_run_is_a_one_line_usage_error_not_drift(
    dirs, capsys, where, content, message
):
    committed, fresh, out = dirs
    where(fresh).write_text(json.dumps(content))
    assert cli.main(["drift", str(fresh), "--committed", str(committed), "--output", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{where(fresh)}: {message}" in line
    assert not (out / "summary.json").exists()
    assert not (out / "images").exists()  # checked before anything is copied


@pytest.mark.parametrize("name", ["../../outside.png", "/OUTSIDE/outside.png", "sub/../x.png"])
def test_figure_names_outside_the_figures_folder_are_refused(dirs, tmp_path, capsys, name):
    committed, fresh, out = dirs
    outside = tmp_path / "outside.png"
    _figure(outside)
    name = name.replace("/OUTSIDE", str(tmp_path))
    (fresh / "figures" / "x.png").write_bytes(outside.read_bytes())
    record = json.loads(_record_path(fresh).read_text())
    _record_path(fresh).write_text(json.dumps({**record, "figures": [name]}))
    assert cli.main(["drift", str(fresh), "--committed", str(committed), "--output", str(out)]) == 2
    assert f"figure {name!r} is not a file name in the figures folder" in _error_line(capsys)
    assert not (out / "images").exists()


def test_figure_links_leading_out_of_the_folder_are_refused(dirs, tmp_path, capsys):
    committed, fresh, out = dirs
    secret = tmp_path / "secret.png"
    _figure(secret, shift=0.9)
    png = fresh / "figures" / "nb02_b.png"
    png.unlink()
    png.symlink_to(secret)
    assert cli.main(["drift", str(fresh), "--committed", str(committed), "--output", str(out)]) == 2
    line = _error_line(capsys)
    assert "figure 'nb02_b.png' is a link to" in line and "outside" in line
    assert not list(out.rglob("*.png"))  # the file outside was not copied into the report
    # a link that stays inside the folder is an ordinary figure
    png.unlink()
    png.symlink_to(fresh / "figures" / "nb02_a.png")
    status, summary, _ = _run(committed, fresh, out, capsys)
    assert status == 1
    assert [f["status"] for f in summary["figures"]] == ["same", "changed"]


def test_links_to_json_files_outside_the_run_are_refused(dirs, tmp_path, capsys):
    committed, fresh, out = dirs
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(_metrics_path(fresh).read_text())
    _metrics_path(fresh).unlink()
    _metrics_path(fresh).symlink_to(elsewhere)
    assert cli.main(["drift", str(fresh), "--committed", str(committed), "--output", str(out)]) == 2
    assert "02_kac_1d.metrics.json: a link to" in _error_line(capsys)


def test_report_html_escapes_what_the_run_wrote(dirs, capsys):
    committed, fresh, out = dirs
    _edit_metrics(fresh, lambda r: r["rows"][0].update(verdict="<script>alert(1)</script>"))
    status, _, _ = _run(committed, fresh, out, capsys)
    assert status == 1
    page = (out / "index.html").read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
