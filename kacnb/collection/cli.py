"""Command line: ``kacnb list``, ``kacnb run``, ``kacnb golden``, ``kacnb drift`` (also
``python -m kacnb``)."""

from __future__ import annotations

import argparse
import ast
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .registry import NOTEBOOKS, NotebookSpec, Registry, UnknownNotebookError

__all__ = ["main", "build_parser"]

PROG = "kacnb"
#: Exit status of ``kacnb run --time-limit`` when training stopped at the limit.
EXIT_TIME_LIMIT = 3


def _param(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        parsed: object = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return name, parsed


def _time_limit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


#: Largest seed (the notebooks seed torch generators, which take a signed 64-bit integer).
MAX_SEED = 2**63 - 1


def _timeout(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number of seconds, got {text!r}"
        )
    return value


def _seed(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to 2**63-1 = {MAX_SEED}, got {text!r}"
        )
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run the notebooks reproducing 'Telegrapher's Generative Model via Kac Flows'. "
            "notebooks/<stem>.py (jupytext percent format) is the source of truth; "
            "'run' executes it with papermill into notebooks/<stem>.ipynb and writes the "
            "figures (PNG + PDF) to figures/ when its profile is the published one; "
            "other runs go to runs/<profile>/."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    nb_dir = argparse.ArgumentParser(add_help=False)
    nb_dir.add_argument(
        "--notebooks-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory of the notebook .py sources "
        "(default: ./notebooks if it exists, else the repository's notebooks/)",
    )
    _add_list(sub, nb_dir)
    _add_run(sub, nb_dir)
    _add_golden(sub, nb_dir)
    _add_drift(sub)
    _add_site(sub, nb_dir)
    _add_exercises(sub)
    return parser


def _add_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=None,
        metavar="S",
        help="per-cell timeout, a whole number of seconds",
    )


def _add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_list(sub, nb_dir: argparse.ArgumentParser) -> None:
    p_list = sub.add_parser(
        "list", parents=[nb_dir], help="list the notebooks and the paper figures they reproduce"
    )
    p_list.set_defaults(func=cmd_list)


def _add_run(sub, nb_dir: argparse.ArgumentParser) -> None:
    from .runtime import PROFILES

    p_run = sub.add_parser(
        "run",
        parents=[nb_dir],
        help="execute notebooks (default: every existing one)",
        description=(
            "Execute notebooks with papermill; stops at the first failing notebook. A run "
            "replaces the published notebooks/<stem>.ipynb, figures and figures/runs/<stem>.json "
            "only when its --profile is the profile of that published record (or there is no "
            "record yet), or with --publish; otherwise it writes them to runs/<profile>/ at the "
            "collection's root (notebooks there, figures in runs/<profile>/figures/) and says "
            "so at the end. --output-dir and --figures-dir are used as given. Before the first "
            "notebook runs, what the selected ones need is checked: the --device, the MNIST "
            "files of 05 (in KACNB_DATA_DIR, or downloadable) and about 1 GB of free disk."
        ),
    )
    p_run.add_argument(
        "notebooks",
        nargs="*",
        metavar="NOTEBOOK",
        help="number ('02' or '2'), stem ('02_kac_1d') or path; default: all existing",
    )
    p_run.add_argument(
        "--profile",
        choices=PROFILES,
        default="quick",
        help="smoke: seconds, for tests; quick: minutes (default); long: hours of a 2-core CPU "
        "(notebook 05 only); paper: the paper's settings",
    )
    p_run.add_argument(
        "--device",
        default="auto",
        help="auto (cuda if available, else cpu; default), cpu, cuda or cuda:N",
    )
    p_run.add_argument(
        "--seed", type=_seed, default=0, help="random seed, 0 to 2**63-1 (default: 0)"
    )
    _add_run_outputs(p_run)
    _add_run_options(p_run)
    p_run.set_defaults(func=cmd_run)


def _add_run_outputs(p_run: argparse.ArgumentParser) -> None:
    """``kacnb run``'s --output-dir, --figures-dir and --publish."""
    p_run.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the executed <stem>.ipynb (default: in place, next to the .py, "
        "when published, else runs/<profile>/)",
    )
    p_run.add_argument(
        "--figures-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the notebooks write figures and runs/<stem>.json "
        "(default: figures/ at the repository root when published, else "
        "runs/<profile>/figures/)",
    )
    p_run.add_argument(
        "--publish",
        action="store_true",
        help="replace the published notebook, figures and record even when the published "
        "record is of another profile (default: only for the same profile)",
    )


def _add_run_options(p_run: argparse.ArgumentParser) -> None:
    """``kacnb run``'s --param, --timeout, --time-limit, --log-output and --no-progress."""
    p_run.add_argument(
        "-p",
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra notebook parameter (VALUE is a Python literal, else a string); repeatable",
    )
    _add_timeout(p_run)
    p_run.add_argument(
        "--time-limit",
        type=_time_limit,
        default=None,
        metavar="S",
        help="stop training cleanly after S seconds of this command (checkpoints written, "
        "nothing published, exit status 3); the same command again continues",
    )
    p_run.add_argument(
        "--log-output", action="store_true", help="echo the cells' outputs to the terminal"
    )
    _add_no_progress(p_run)


def _add_golden(sub, nb_dir: argparse.ArgumentParser) -> None:
    p_gold = sub.add_parser(
        "golden",
        parents=[nb_dir],
        help="regenerate the smoke-profile golden notebooks tests/golden/<stem>.ipynb",
        description=(
            "Execute notebooks with profile=smoke, device=cpu, seed=0 into "
            "tests/golden/<stem>.ipynb, the references of the nbval regression test."
        ),
    )
    p_gold.add_argument(
        "notebooks", nargs="*", metavar="NOTEBOOK", help="default: all existing notebooks"
    )
    p_gold.add_argument(
        "--golden-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="default: tests/golden at the repository root",
    )
    _add_timeout(p_gold)
    _add_no_progress(p_gold)
    p_gold.set_defaults(func=cmd_golden)


def _add_drift(sub) -> None:
    p_drift = sub.add_parser(
        "drift",
        help="compare a fresh run with the committed outputs; exit 1 on drift",
        description=(
            "Compare a fresh run (FRESH/notebooks/*.ipynb and FRESH/figures/, as written by "
            "'kacnb run ... --output-dir FRESH/notebooks --figures-dir FRESH/figures') with "
            "the committed outputs, for the notebooks present in the fresh run: verdicts and "
            "metrics of figures/runs/<stem>.metrics.json within per-key relative tolerances, "
            "PNG figures by RMS pixel difference, code cell outputs (for review). Writes "
            "OUT/index.html and OUT/summary.json. Exit status 0: no drift; 1: a flipped "
            "verdict, a metric outside its tolerance or a changed figure; 2: bad usage."
        ),
    )
    p_drift.add_argument("fresh", type=Path, metavar="FRESH", help="folder of the fresh run")
    p_drift.add_argument(
        "--committed",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder holding the committed notebooks/ and figures/ (default: the collection's "
        "root, as in the working tree)",
    )
    p_drift.add_argument(
        "--output",
        type=Path,
        default=Path("drift"),
        metavar="OUT",
        help="report folder (default: drift/); its index.html, summary.json and images/ "
        "are replaced",
    )
    p_drift.set_defaults(func=cmd_drift)


def _add_site(sub, nb_dir: argparse.ArgumentParser) -> None:
    p_site = sub.add_parser(
        "site",
        parents=[nb_dir],
        help="build a static HTML site of the executed notebooks (no re-execution)",
        description=(
            "Build a static HTML book (Sphinx + MyST-NB) of the executed notebooks "
            "notebooks/<stem>.ipynb as published by 'kacnb run': an index page, a page per "
            "notebook with its outputs, figures and verdict table, math rendered offline. "
            'Needs the site extra: pip install -e ".[site]".'
        ),
    )
    p_site.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder of the site (index.html)"
    )
    p_site.set_defaults(func=cmd_site)


def _add_exercises(sub) -> None:
    p_ex = sub.add_parser(
        "exercises",
        help="write the student versions of the exercise notebooks (solutions removed)",
        description=(
            "Write the course exercises exercises/NN_name.py with every region between "
            "'### BEGIN SOLUTION' and '### END SOLUTION' replaced by 'raise "
            "NotImplementedError()' and the note for teachers removed, as DIR/NN_name.py and "
            "DIR/NN_name.ipynb. DIR must not be a folder of the project (notebooks/, "
            "exercises/ or one holding files tracked by its git repository)."
        ),
    )
    p_ex.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output folder: a new one, or one outside the repository (or below runs/)",
    )
    p_ex.add_argument(
        "--force",
        action="store_true",
        help="write into a non-empty DIR (replaces same names); the project's own folders are "
        "refused even so",
    )
    p_ex.add_argument(
        "--exercises-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the exercise sources (default: ./exercises if it exists, else the "
        "repository's exercises/)",
    )
    p_ex.set_defaults(func=cmd_exercises)


def _err(msg: str) -> None:
    print(f"{PROG}: error: {msg}", file=sys.stderr)


def _registry(args, entries: Iterable[NotebookSpec]) -> Registry:
    if args.notebooks_dir is not None and not args.notebooks_dir.is_dir():
        raise NotADirectoryError(f"notebooks directory {args.notebooks_dir} does not exist")
    return Registry(entries, args.notebooks_dir)


def _figure_lines(spec: NotebookSpec) -> list[str]:
    lines = []
    for fig in spec.figures:
        what = fig.paper if fig.paper else "extra"
        caption = f"  ({fig.caption})" if fig.caption else ""
        lines.append(f"{what:>8} -> {fig.stem}.png/.pdf{caption}")
    lines.append(f"{'':>8}    notebook figures: {spec.file_prefix}*")
    return lines


def cmd_list(args, entries) -> int:
    reg = _registry(args, entries)
    n_exist = 0
    for spec in reg.entries:
        exists = reg.exists(spec)
        n_exist += exists
        state = "exists" if exists else "not written yet"
        print(f"{spec.label}  {spec.stem}  [{state}]")
        print(f"    {spec.title}")
        for line in _figure_lines(spec):
            print(f"    {line}")
    print(f"{n_exist} of {len(reg.entries)} notebooks exist in {reg.notebooks_dir}")
    return 0


def _check_collection(reg: Registry) -> None:
    """A clear error when the notebooks directory is not the collection's."""
    hint = (
        "run kacnb in the collection's root folder (the one holding notebooks/) "
        "or pass --notebooks-dir"
    )
    if not reg.notebooks_dir.is_dir():
        raise NotADirectoryError(
            f"this is not the notebook collection: {reg.notebooks_dir} does not exist; {hint}"
        )
    if not reg.available():
        raise FileNotFoundError(
            f"this is not the notebook collection: {reg.notebooks_dir} holds none of its "
            f"notebooks ({', '.join(s.stem + '.py' for s in reg.entries)}); {hint}"
        )


def _check_output_dir(path: Path, what: str) -> None:
    """A clear error, before anything runs, for an output directory that cannot be written."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{what} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: {existing} is not writable")


def _check_parameters(reg: Registry, specs: list[NotebookSpec], extra: dict) -> None:
    """Every ``-p NAME`` must be a parameter of every notebook to run, its value one the
    notebook can take (:func:`kacnb.collection.params.check_values`)."""
    from . import params
    from .runner import RESERVED_PARAMETERS, notebook_parameters

    if not extra:
        return
    for spec in specs:
        valid = [n for n in notebook_parameters(reg.source(spec)) if n not in RESERVED_PARAMETERS]
        unknown = sorted(set(extra) - set(valid))
        if unknown:
            raise ValueError(
                f"notebook {spec.stem} has no parameter {', '.join(unknown)} (-p); its "
                f"parameters: {', '.join(valid) if valid else 'none besides the options'}"
            )
        # values papermill cannot write (a set, a complex number) or of another kind than
        # the cell's default (the text 'false' for a boolean) stop here, in one line
        params.check_values(extra, params.notebook_defaults(reg.source(spec)), spec.stem)


def _resolve(args, reg: Registry) -> list[NotebookSpec]:
    _check_collection(reg)
    specs = reg.resolve_runnable(args.notebooks)
    if not specs:
        print(f"{PROG}: no notebooks yet in {reg.notebooks_dir} (nothing to run)")
    return specs


@dataclass
class _Destination:
    """Where one notebook's run writes: its notebook (``None``: next to the .py), its figures
    and record, and a weights bundle (``weights_dir``; ``None``: with the figures, in
    ``<figures_dir>/pretrained/``); ``reason`` says why the run goes to the scratch folder
    instead of replacing the published outputs (``None`` when it publishes)."""

    output: Path | None
    figures_dir: Path
    reason: str | None = None
    weights_dir: Path | None = None


#: Why a run with ``-p pretrained=True`` goes to the scratch folder without ``--publish``.
PRETRAINED_REASON = "-p pretrained=True evaluates the shipped weights; it publishes with --publish"


def _scratch_reason(args, published: str | None, extra: dict) -> str | None:
    """Why a run into the default locations must not replace the published outputs, or
    ``None``: it publishes when its profile is the published record's (or there is none),
    unless it evaluates the shipped weights; ``--publish`` publishes whatever the reason."""
    if args.publish:
        return None
    if extra.get("pretrained"):
        return PRETRAINED_REASON
    if published is not None and published != args.profile:
        return f"the published run is profile {published}, this one {args.profile}"
    return None


def _destinations(
    args, reg: Registry, specs: list[NotebookSpec], extra: dict | None = None
) -> dict[str, _Destination]:
    """Publish into the default locations only when :func:`_scratch_reason` allows it;
    otherwise the defaults are replaced by the scratch folder.  A weights bundle goes to
    ``pretrained/`` only when the run publishes its figures to ``figures/``; which profiles
    write a bundle at all is the notebook's choice (04: paper; 05: long and paper)."""
    from .runner import published_profile, scratch_dir

    extra = extra or {}
    scratch = scratch_dir(reg.root, args.profile).resolve()
    plan = {}
    for spec in specs:
        published = published_profile(reg.figures_dir / "runs" / f"{spec.stem}.json")
        explicit = args.output_dir is not None and args.figures_dir is not None
        reason = None if explicit else _scratch_reason(args, published, extra)
        if reason is None:
            output = args.output_dir / f"{spec.stem}.ipynb" if args.output_dir else None
            figures_dir = (args.figures_dir or reg.figures_dir).resolve()
            shipped = figures_dir == reg.figures_dir.resolve()
            weights = reg.root.resolve() / "pretrained" if shipped else None
            plan[spec.stem] = _Destination(output, figures_dir, None, weights)
            continue
        output_dir = args.output_dir or scratch
        plan[spec.stem] = _Destination(
            output_dir / f"{spec.stem}.ipynb",
            (args.figures_dir or scratch / "figures").resolve(),
            reason,
        )
    return plan


def _scratch_note(spec: NotebookSpec, dest: _Destination, *, done: bool) -> str:
    state = "not published" if done else "will not be published"
    return (
        f"{spec.stem}: {state} ({dest.reason}): notebook {dest.output}, figures and record "
        f"{dest.figures_dir}; --publish replaces the published ones"
    )


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _verdict_count(result, figures_dir: Path) -> str:
    """``"18 of 18 reproduced"`` from the metrics file this run published, if it did."""
    from ..report import VERDICTS, metrics_path

    path = metrics_path(result.spec.stem, figures_dir)
    if path not in result.published:
        return "no verdict table"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))["rows"]
        ok = sum(row["verdict"] == VERDICTS[0] for row in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return f"verdict table {_shown(path)} unreadable"
    return f"{ok} of {len(rows)} reproduced"


def _summary_line(result, dest: _Destination) -> str:
    """One line per completed notebook: its verdict count and where its outputs went, e.g.
    ``02_kac_1d: 18 of 18 reproduced -> notebooks/02_kac_1d.ipynb, figures/``."""
    where = [_shown(result.output), _shown(dest.figures_dir) + "/"]
    if result.weights is not None:
        where.append(_shown(result.weights) + "/")
    state = " (not published)" if dest.reason is not None else ""
    verdicts = _verdict_count(result, dest.figures_dir)
    return f"{result.spec.stem}: {verdicts} -> {', '.join(where)}{state}"


def _stop_line(event: str, stem: str, results: list, plan: dict, not_run: list[str]) -> str:
    """What a run that stopped in notebook ``stem`` left: which notebooks of the run were
    published before it, which went to the scratch folder, which did not run."""
    published = [r.spec.stem for r in results if plan[r.spec.stem].reason is None]
    scratched = [r.spec.stem for r in results if plan[r.spec.stem].reason is not None]
    if not (results or not_run):
        return f"{event} in {stem}: nothing published"
    parts = [f"published: {', '.join(published)}" if published else "nothing published"]
    if scratched:
        parts.append(f"written to the scratch folder: {', '.join(scratched)}")
    if not_run:
        parts.append(f"not run: {', '.join(not_run)}")
    return f"{event} in {stem} (not published); " + "; ".join(parts)


#: Notebooks that load MNIST (``kacnb.experiments.data.mnist``, train and test splits).
NEEDS_MNIST = frozenset({"05_mnist"})
#: Free disk space a run needs in each output folder (notebooks, figures, checkpoints).
MIN_FREE_BYTES = 1_000_000_000


def _check_device(text: str) -> str:
    """The concrete device for ``--device``, or a one-line error naming the fix."""
    import torch

    from .runtime import resolve_device

    try:
        return str(resolve_device(text))
    except RuntimeError:
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"--device {text}: CUDA is not available here (torch {torch.__version__}); "
                f"run with --device cpu, or --device auto to use a GPU only when there is one"
            ) from None
        n = torch.cuda.device_count()
        raise RuntimeError(
            f"--device {text}: only {n} CUDA device(s) are visible; run with --device cuda:0"
            + (f" to cuda:{n - 1}" if n > 1 else "")
        ) from None


def _existing(path: Path) -> Path:
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _download_blocker(folder: Path, names: list[str], timeout: float = 5.0) -> str | None:
    """Why the MNIST loader could not download ``names`` into ``folder``; ``None`` if it can
    (the folder can be created and written, and a mirror answers for the first file)."""
    import urllib.error
    import urllib.request

    from ..experiments.data import MNIST_MIRRORS

    base = _existing(folder)
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        return f"{base} is not a writable folder"
    reasons = []
    for mirror in MNIST_MIRRORS:
        url = mirror.rstrip("/") + "/" + names[0] + ".gz"
        try:
            request = urllib.request.Request(url, method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                return None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reasons.append(f"{url}: {getattr(exc, 'reason', exc)}")
    return "no mirror answers (" + "; ".join(reasons) + ")"


def _check_mnist(reg: Registry, specs: list[NotebookSpec]) -> None:
    """Notebooks loading MNIST need its four files in the folder
    ``kacnb.experiments.data.data_root``
    picks (``$KACNB_DATA_DIR``, else the copy shipped in ``datasets/mnist``, else
    ``./data/mnist`` in the kernel's folder, the notebooks folder) or a way to download them."""
    from ..experiments.data import data_root, missing_mnist_files

    needing = [spec.stem for spec in specs if spec.stem in NEEDS_MNIST]
    if not needing:
        return
    folder = data_root()
    if not folder.is_absolute():
        folder = reg.notebooks_dir / folder  # the kernel runs in the notebooks folder
    missing = missing_mnist_files(folder)
    if not missing:
        return
    blocker = _download_blocker(folder, missing)
    what = f"{', '.join(needing)} needs the MNIST files {', '.join(n + '(.gz)' for n in missing)}"
    if blocker is None:
        print(f"{PROG}: {what}: not in {folder}, they will be downloaded there", file=sys.stderr)
        return
    raise FileNotFoundError(
        f"{what}; they are not in {folder} and cannot be downloaded ({blocker}): put the IDX "
        f"files (gzipped or not) there, or set KACNB_DATA_DIR to a folder holding them"
    )


def _check_free_space(folders: dict[Path, str]) -> None:
    """At least :data:`MIN_FREE_BYTES` free in every output folder (and the staging folder)."""
    import tempfile

    folders = {**folders, Path(tempfile.gettempdir()): "temporary folder (set TMPDIR)"}
    for path, what in folders.items():
        try:
            free = shutil.disk_usage(_existing(path)).free
        except OSError:
            continue
        if free < MIN_FREE_BYTES:
            raise OSError(
                f"only {free / 1e9:.2f} GB free in {path} ({what}); a run needs about "
                f"{MIN_FREE_BYTES / 1e9:.0f} GB: free some space or write elsewhere"
            )


def _bar(specs, disable: bool):
    from tqdm import tqdm

    return tqdm(specs, desc="notebooks", unit="nb", disable=disable or len(specs) < 2)


def _check_profile(specs: list[NotebookSpec], profile: str) -> None:
    """Refuse, before anything runs, a profile that a selected notebook does not have."""
    lacking = [s for s in specs if profile not in s.profiles]
    if not lacking:
        return
    having = [s.label for s in specs if profile in s.profiles]
    hint = f"; run only {' '.join(having)} with it" if having else ""
    raise ValueError(
        f"profile {profile!r} is not a profile of {', '.join(s.stem for s in lacking)} "
        f"(its profiles: {', '.join(lacking[0].profiles)}){hint}"
    )


def _prepare_run(args, entries) -> tuple[Registry, list[NotebookSpec], dict, str, dict]:
    """Check everything a run needs before the first notebook starts: ``(registry, specs,
    extra parameters, device, destinations)``; no specs when there is nothing to run."""
    from .runner import RESERVED_PARAMETERS

    reg = _registry(args, entries)
    extra = dict(args.param)
    clash = sorted(set(extra) & set(RESERVED_PARAMETERS))
    if clash:
        raise ValueError(f"set {', '.join(clash)} with --profile/--device/--seed/--figures-dir")
    specs = _resolve(args, reg)
    if not specs:
        return reg, specs, extra, "", {}
    _check_profile(specs, args.profile)
    _check_parameters(reg, specs, extra)
    device = _check_device(args.device)
    plan = _destinations(args, reg, specs, extra)
    figures_dirs = sorted({d.figures_dir for d in plan.values()})
    output_dirs = sorted(
        {d.output.parent if d.output else reg.notebooks_dir for d in plan.values()}
    )
    for path in figures_dirs:
        _check_output_dir(path, "figures directory")
    for path in output_dirs:
        _check_output_dir(path, "output directory")
    _check_free_space(
        {
            **{path: "output directory (--output-dir)" for path in output_dirs},
            **{path: "figures directory (--figures-dir)" for path in figures_dirs},
        }
    )
    _check_mnist(reg, specs)
    return reg, specs, extra, device, plan


def _interrupt_event(exc: KeyboardInterrupt) -> tuple[str, int]:
    """``(what happened, exit status)`` of an interruption: Ctrl-C 130, SIGTERM 143."""
    signum = getattr(exc, "signum", None)
    if signum is None:
        return "interrupted", 130
    import signal

    return f"terminated ({signal.Signals(signum).name})", 128 + signum


def _interrupt_line(event: str, specs: list[NotebookSpec], results: list, plan: dict) -> str:
    """The one line of an interrupted run: the notebook it stopped in and what was published."""
    done = {r.spec.stem for r in results}
    pending = [s.stem for s in specs if s.stem not in done]
    if pending:
        return _stop_line(event, pending[0], results, plan, pending[1:])
    published = [r.spec.stem for r in results if plan[r.spec.stem].reason is None]
    return f"{event} after the last notebook; published: {', '.join(published) or 'none'}"


def _stopped(
    message: str | None, event: str, spec, results: list, plan: dict, not_run: list[str]
) -> None:
    """Print why the run stopped, the completed notebooks' lines and what was published."""
    if message:
        print(f"{PROG}: {message}", file=sys.stderr)
    for result in results:
        print(_summary_line(result, plan[result.spec.stem]), file=sys.stderr)
    print(f"{PROG}: {_stop_line(event, spec.stem, results, plan, not_run)}", file=sys.stderr)


def _announce_run(args, specs: list[NotebookSpec], device: str, plan: dict, limit: str) -> list:
    """Print the run's opening line and a note per notebook not to be published; returns
    those notebooks."""
    figures_dirs = sorted({d.figures_dir for d in plan.values()})
    print(
        f"{PROG}: running {len(specs)} notebook(s): profile={args.profile} device={device} "
        f"seed={args.seed}{limit} figures -> {', '.join(map(str, figures_dirs))}",
        file=sys.stderr,
    )
    scratched = [spec for spec in specs if plan[spec.stem].reason is not None]
    for spec in scratched:
        print(f"{PROG}: {_scratch_note(spec, plan[spec.stem], done=False)}", file=sys.stderr)
    return scratched


def _run_one(
    args, reg: Registry, spec: NotebookSpec, dest, device: str, extra: dict, deadline, started
):
    """Run one notebook: its result, or ``(message, exit status)`` when the run stops there
    (time limit 3, failure 1, locked output 2)."""
    from .runner import NotebookFailed, OutputLocked, PublishError, TimeLimitStopped, run_notebook

    try:
        return run_notebook(
            spec,
            reg.source(spec),
            profile=args.profile,
            device=device,
            seed=args.seed,
            output=dest.output,
            figures_dir=dest.figures_dir,
            progress_bar=not args.no_progress,
            log_output=args.log_output,
            timeout=args.timeout,
            extra_parameters=extra,
            deadline=deadline,
            weights_dir=dest.weights_dir,
        )
    except TimeLimitStopped as exc:
        message = (
            f"stopped at the time limit after {time.time() - started:.0f} s in "
            f"{exc.stem} (not published); run the same command again to continue "
            f"({exc.detail})"
        )
        return message, EXIT_TIME_LIMIT
    except (NotebookFailed, PublishError) as exc:
        return f"FAILED: {exc}", 1
    except OutputLocked as exc:
        return f"error: {exc}", 2


def cmd_run(args, entries) -> int:
    from tqdm import tqdm

    from .runner import sigterm_interrupts

    started = time.time()
    deadline = started + args.time_limit if args.time_limit is not None else None
    reg, specs, extra, device, plan = _prepare_run(args, entries)
    if not specs:
        return 0
    if args.log_output:
        logging.basicConfig(format="%(message)s")
        logging.getLogger("papermill").setLevel(logging.INFO)
    limit = f" time limit {args.time_limit:g} s" if deadline is not None else ""
    scratched = _announce_run(args, specs, device, plan, limit)
    results = []
    bar = _bar(specs, args.no_progress)
    try:
        with sigterm_interrupts():
            for i, spec in enumerate(bar):
                bar.set_postfix_str(spec.stem)
                dest = plan[spec.stem]
                not_run = [s.stem for s in specs[i + 1 :]]
                result = _run_one(args, reg, spec, dest, device, extra, deadline, started)
                if isinstance(result, tuple):
                    bar.close()
                    message, status = result
                    _stopped(message, "stopped", spec, results, plan, not_run)
                    return status
                results.append(result)
                tqdm.write(
                    f"{spec.stem}: done in {result.record['wall_time_s']:.1f} s -> {result.output}",
                    file=sys.stderr,
                )
    except KeyboardInterrupt as exc:
        bar.close()
        # the kernel may die from the same Ctrl-C; keep asyncio's late logs quiet
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        event, status = _interrupt_event(exc)
        print(f"{PROG}: {_interrupt_line(event, specs, results, plan)}", file=sys.stderr)
        return status
    bar.close()
    for result in results:
        print(_summary_line(result, plan[result.spec.stem]), file=sys.stderr)
    for spec in scratched:
        print(f"{PROG}: {_scratch_note(spec, plan[spec.stem], done=True)}", file=sys.stderr)
    return 0


def cmd_golden(args, entries) -> int:
    from tqdm import tqdm

    from .runner import NotebookFailed, make_golden

    reg = _registry(args, entries)
    specs = _resolve(args, reg)
    if not specs:
        return 0
    golden_dir = (args.golden_dir or reg.golden_dir).resolve()
    _check_output_dir(golden_dir, "golden directory")
    bar = _bar(specs, args.no_progress)
    for spec in bar:
        bar.set_postfix_str(spec.stem)
        try:
            path = make_golden(
                spec,
                reg.source(spec),
                golden_dir,
                progress_bar=not args.no_progress,
                timeout=args.timeout,
            )
        except NotebookFailed as exc:
            bar.close()
            print(f"{PROG}: FAILED: {exc}", file=sys.stderr)
            return 1
        tqdm.write(f"{spec.stem}: golden written to {path}", file=sys.stderr)
    bar.close()
    return 0


def cmd_drift(args, entries) -> int:
    from .drift import compute_drift, fresh_notebooks, write_report

    fresh = args.fresh
    if not fresh.is_dir():
        raise NotADirectoryError(f"fresh run {fresh} is not a folder")
    if not fresh_notebooks(fresh):
        raise FileNotFoundError(
            f"no run in {fresh}: expected notebooks/<stem>.ipynb or figures/runs/<stem>.json "
            f"there (kacnb run ... --output-dir {fresh}/notebooks --figures-dir {fresh}/figures)"
        )
    committed = args.committed if args.committed is not None else Registry(entries).root
    for sub in ("notebooks", "figures"):
        if not (committed / sub).is_dir():
            raise NotADirectoryError(
                f"committed outputs {committed} have no {sub}/ folder; pass --committed DIR, "
                f"the folder holding notebooks/ and figures/"
            )
    out = args.output
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"report folder {out} is a file")
    _check_output_dir(out, "report folder")
    shutil.rmtree(out / "images", ignore_errors=True)
    for name in ("index.html", "summary.json"):
        (out / name).unlink(missing_ok=True)
    report = compute_drift(fresh, committed / "notebooks", committed / "figures", out)
    path = write_report(report, out)
    for line in report.summary_lines():
        print(line)
    print(f"report: {path}")
    return 1 if report.drift else 0


def cmd_site(args, entries) -> int:
    from .site import build_site

    reg = _registry(args, entries)
    warnings = build_site(reg, args.out)
    for line in warnings:
        print(f"sphinx: {line}", file=sys.stderr)
    print(f"site: {args.out / 'index.html'} ({len(warnings)} Sphinx warnings)")
    return 0


def cmd_exercises(args, entries) -> int:
    from .exercises import write_student_versions

    for path in write_student_versions(args.out, args.exercises_dir, force=args.force):
        print(path)
    return 0


def main(argv: Sequence[str] | None = None, *, entries: Iterable[NotebookSpec] = NOTEBOOKS) -> int:
    """Entry point; returns the exit status (0 ok, 1 a notebook failed or could not be
    published, 2 bad usage, 3 stopped at ``--time-limit``, 130 interrupted (Ctrl-C), 143
    terminated (SIGTERM)).

    ``entries`` replaces the registered notebooks (for tests).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args, tuple(entries))
    except (UnknownNotebookError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
        _err(str(exc))
        return 2
    except RuntimeError as exc:  # e.g. --device cuda without CUDA, a locked output
        _err(str(exc))
        return 2
    except OSError as exc:  # e.g. an output directory that cannot be written
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        _err(f"{exc.strerror or exc}{where}")
        return 2
    except KeyboardInterrupt as exc:
        # The kernel shares the terminal's process group and may die from the same Ctrl-C;
        # nbclient's background tasks then fail with DeadKernelError, which asyncio would log
        # as a traceback at exit. The interruption is the message, so keep asyncio quiet.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        event, status = _interrupt_event(exc)
        print(f"{PROG}: {event} (nothing published)", file=sys.stderr)
        return status
