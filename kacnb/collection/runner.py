"""Execute the notebooks with papermill and publish the results.

``notebooks/<stem>.py`` (jupytext percent format) is the source of truth.  :func:`run_notebook`
reads it with jupytext, executes it with papermill (parameters ``profile``, ``device``,
``figures_dir``, ``seed``), cleans the executed notebook and writes ``<stem>.ipynb``:

* the papermill-injected ``injected-parameters`` cell is removed, so the ``.ipynb`` has exactly
  the cells of the ``.py`` and converts back to it (``jupytext --to py:percent``);
  the notebooks print their profile and device themselves (``kacnb.collection.runtime.setup``);
* papermill/nbclient metadata, empty ``tags: []`` and random cell ids are replaced by clean,
  deterministic ones; outputs are kept (stream outputs coalesced, ``\\r`` progress collapsed).

Each successful run writes a JSON record ``<figures_dir>/runs/<stem>.json``.

**Nothing is published by a failed run.** Every run executes into a staging folder
``kacnb-<stem>-<pid>-*`` in the temporary directory (notebook and figures).  A failing
notebook leaves the published files as they were and keeps its partial notebook (with the
traceback, not cleaned) beside the target as ``<stem>.partial.ipynb``; Ctrl-C and SIGTERM
(:func:`sigterm_interrupts`, :class:`Interrupted`) publish nothing either and remove the
staging folder.  A run removes the staging folders of its notebook left by runs that were
killed (their PID is gone).  A second run writing the same output notebook at the same time
is refused (:func:`output_lock`, a ``.<stem>.ipynb.lock`` file holding the PID of the run).

**Publishing is one transaction** (:func:`publish`).  What a completed run publishes (the
executed notebook, the figures and animations, the metrics ``runs/<stem>.metrics.json``, the
run record ``runs/<stem>.json`` and a weights bundle the notebook left in
``<figures_dir>/pretrained/``) is first copied beside each target under a temporary name,
which also proves every target folder writable; only then are the targets replaced, each old
file kept as a hard link (or renamed) until all are in place.  Any error puts every old file
back, so the published set is entirely old or entirely new; the run then fails with
:class:`PublishError` and its outputs are kept in a folder the message names.  A journal
``.<stem>.ipynb.publishing.json`` beside the notebook lists the files while they are being
replaced; a run killed meanwhile (SIGKILL, power loss) is rolled back by the next run of the
same notebook (:func:`recover_publication`).  A weights bundle goes to ``weights_dir`` when
one is given (``kacnb run`` gives ``pretrained/`` to a run that publishes into
``figures/``), else it stays with the figures, in ``<figures_dir>/pretrained/``.

**Time limit.** With a ``deadline`` (absolute UNIX time, ``kacnb run --time-limit``) the
kernel gets it in the environment variable ``KACNB_DEADLINE``; training stops there with
:class:`kacnb.cfm.train.TimeLimitReached` after writing its checkpoints, and nothing is published
(:class:`TimeLimitStopped`); running it again resumes the training from the checkpoints.

**Published or scratch.** ``kacnb run`` replaces the published notebook, figures and record
only when its profile is the one of the published record (:func:`published_profile`), when
there is no record yet, or with ``--publish``; any other run goes to the scratch folder
:func:`scratch_dir` (``runs/<profile>/`` at the collection's root, git-ignored).

:func:`make_golden` writes the smoke-profile reference notebook ``tests/golden/<stem>.ipynb``
used by the nbval regression test; it keeps the injected-parameters cell (nbval re-executes
it as stored).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as _dt
import errno
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jupytext
import nbformat

from .liveprogress import ProgressEcho
from .provenance import device_name, git_state
from .registry import NotebookSpec

__all__ = [
    "KERNELSPEC",
    "GOLDEN_PARAMETERS",
    "RESERVED_PARAMETERS",
    "NotebookFailed",
    "TimeLimitStopped",
    "OutputLocked",
    "PublishError",
    "Interrupted",
    "RunResult",
    "partial_path",
    "output_lock",
    "publish",
    "recover_publication",
    "remove_stale_staging",
    "sigterm_interrupts",
    "write_text_atomic",
    "clean_notebook",
    "to_percent",
    "read_source",
    "notebook_parameters",
    "run_notebook",
    "published_profile",
    "scratch_dir",
    "make_golden",
    "in_sync",
    "run_record",
    "device_name",
    "git_state",
]

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}

#: Parameters of the golden (regression-test) notebooks.  ``figures_dir`` is relative to
#: ``tests/golden`` (the kernel's working directory both when generating and under nbval).
GOLDEN_PARAMETERS: dict[str, object] = {
    "profile": "smoke",
    "device": "cpu",
    "seed": 0,
    "figures_dir": "_smoke_figures",
}
#: Parameters set by the runner itself (not overridable with extra parameters).
RESERVED_PARAMETERS = ("profile", "device", "seed", "figures_dir")

INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"


# ---------------------------------------------------------------------------------------------
# errors and results


class NotebookFailed(RuntimeError):
    """A notebook raised while executing (or timed out, or its kernel died)."""

    def __init__(
        self,
        stem: str,
        source: Path,
        *,
        cell_index: int | None,
        line: int | None,
        ename: str,
        evalue: str,
        exec_count: int | None = None,
        cell_head: str = "",
        partial: Path | None = None,
    ) -> None:
        self.stem = stem
        self.source = source
        self.cell_index = cell_index
        self.line = line
        self.ename = ename
        self.evalue = evalue
        self.exec_count = exec_count
        self.cell_head = cell_head
        self.partial = partial
        super().__init__(self.message())

    def message(self) -> str:
        text = f"notebook {self.stem} failed: {self.ename}: {self.evalue}"
        if self.cell_index is not None:
            loc = f"{self.source}:{self.line}" if self.line else str(self.source)
            text += f"\n  in cell {self.cell_index} (0-based, counting all cells) at {loc}"
            if self.cell_head:
                text += f": {self.cell_head}"
        if self.partial is not None:
            shown = f" (In [{self.exec_count}])" if self.exec_count else ""
            text += f"\n  partial notebook with the traceback{shown} kept at {self.partial}"
        return text


class TimeLimitStopped(Exception):
    """A notebook's training stopped at the deadline (``TimeLimitReached`` in the kernel).

    Nothing was published; ``elapsed`` is the wall time of the notebook in seconds and
    ``detail`` the message of the kernel's exception.
    """

    def __init__(self, stem: str, elapsed: float, detail: str) -> None:
        self.stem, self.elapsed, self.detail = stem, elapsed, detail
        super().__init__(
            f"notebook {stem} stopped at the time limit after {elapsed:.0f} s ({detail})"
        )


#: Name of the exception the training loop raises at the deadline (kacnb.cfm.train).
TIME_LIMIT_ENAME = "TimeLimitReached"
#: Environment variable through which the kernel gets the deadline (kacnb.cfm.config.DEADLINE_ENV).
DEADLINE_ENV = "KACNB_DEADLINE"


class PublishError(RuntimeError):
    """A completed run could not be published; the published files are as they were."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal other than Ctrl-C (SIGTERM), handled as Ctrl-C is;
    ``exit_status`` is the shell's ``128 + signal number``."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum = int(signum)
        self.exit_status = 128 + self.signum
        super().__init__(signal.Signals(self.signum).name)


@dataclass
class RunResult:
    """A completed run: its notebook ``output``, the record, and every file it ``published``
    (notebook, figures, metrics, record, weights); ``weights`` is where a weights bundle went
    (``None`` when the run wrote none)."""

    spec: NotebookSpec
    output: Path
    record_path: Path | None
    record: dict = field(default_factory=dict)
    published: list[Path] = field(default_factory=list)
    weights: Path | None = None


# ---------------------------------------------------------------------------------------------
# reading and cleaning notebooks


def read_source(path: str | Path) -> nbformat.NotebookNode:
    """Read a percent-format ``.py`` notebook with jupytext."""
    return jupytext.read(str(path), fmt="py:percent")


def notebook_parameters(source: str | Path) -> list[str]:
    """Names the ``parameters`` cell of the ``.py`` notebook ``source`` assigns, in order."""
    import ast

    nb = read_source(source)
    at = _find_tagged(nb, PARAMETERS_TAG)
    if at is None:
        raise ValueError(
            f'{source} has no parameters cell: tag one cell with # %% tags=["parameters"]'
        )
    try:
        tree = ast.parse(nb.cells[at].source)
    except SyntaxError as exc:
        raise ValueError(f"the parameters cell of {source} is not valid Python: {exc}") from None
    names: list[str] = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and target.id not in names:
                names.append(target.id)
    return names


def to_percent(nb: nbformat.NotebookNode) -> str:
    """The notebook as jupytext percent text (what its paired ``.py`` must contain)."""
    return jupytext.writes(nb, fmt="py:percent")


def _tags(cell) -> list:
    tags = cell.get("metadata", {}).get("tags", [])
    return tags if isinstance(tags, list) else []


def _find_tagged(nb, tag: str) -> int | None:
    for i, cell in enumerate(nb.cells):
        if tag in _tags(cell):
            return i
    return None


_CR_PAT = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
_BS_PAT = re.compile("[^\n]\x08")  # a character followed by a backspace


def _collapse_control(text: str) -> str:
    """Apply backspaces and carriage returns as a terminal would (progress bars)."""
    while True:
        new = _BS_PAT.sub("", text)
        if new == text:
            break
        text = new
    return _CR_PAT.sub("", text)


def _coalesce_streams(outputs: list) -> list:
    """Merge adjacent stream outputs of the same name; collapse ``\\r``/``\\b`` updates.

    (nbval merges all same-name streams before comparing, so this changes nothing it sees;
    keeping non-adjacent streams apart keeps the order of stdout/stderr in the notebook.)
    """
    merged: list = []
    for out in outputs:
        if (
            out.get("output_type") == "stream"
            and merged
            and merged[-1].get("output_type") == "stream"
            and merged[-1].get("name") == out.get("name")
        ):
            merged[-1]["text"] += out.get("text", "")
            continue
        merged.append(copy.deepcopy(out))
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = _collapse_control(out.get("text", ""))
    return merged


def _cell_id(cell, seen: dict[str, int]) -> str:
    digest = hashlib.sha1(f"{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:8]
    n = seen.get(digest, 0)
    seen[digest] = n + 1
    return digest if n == 0 else f"{digest}-{n}"


def without_images(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without its image outputs (``display_data`` holding only an image and
    its text stand-in). The golden notebooks need none: nbval compares text outputs only,
    and the figures would make each reference about a megabyte."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [
            o
            for o in cell.outputs
            if not (
                o.get("output_type") == "display_data"
                and any(k.startswith("image/") for k in o.get("data", {}))
            )
        ]
    return nb


def clean_notebook(
    nb: nbformat.NotebookNode,
    *,
    keep_injected: bool = False,
    kernelspec: Mapping | None = None,
) -> nbformat.NotebookNode:
    """Return a cleaned copy of an executed notebook.

    Removes the injected-parameters cell (unless ``keep_injected``), papermill/nbclient
    metadata (``papermill``, ``execution``), empty ``tags``; gives cells deterministic ids;
    coalesces stream outputs.  ``kernelspec`` replaces the notebook's kernelspec; without it
    the :data:`KERNELSPEC` is added only when the notebook has none.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("papermill", None)
    # ``jupytext --sync`` drops the text representation from a paired .ipynb: do the same so
    # that the pre-commit hook finds nothing to change.
    jupytext_md = nb.metadata.get("jupytext")
    if isinstance(jupytext_md, dict):
        jupytext_md.pop("text_representation", None)
    if kernelspec is not None:
        nb.metadata["kernelspec"] = dict(kernelspec)
    else:
        nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))
    cells = []
    seen: dict[str, int] = {}
    for cell in nb.cells:
        if not keep_injected and INJECTED_TAG in _tags(cell):
            continue
        md = cell.setdefault("metadata", nbformat.NotebookNode())
        md.pop("papermill", None)
        md.pop("execution", None)
        if "tags" in md and not md["tags"]:
            del md["tags"]
        if cell.cell_type == "code":
            cell.outputs = _coalesce_streams(cell.get("outputs", []))
        cell["id"] = _cell_id(cell, seen)
        cells.append(cell)
    nb.cells = cells
    nb.nbformat, nb.nbformat_minor = 4, max(nb.get("nbformat_minor", 5), 5)
    return nb


def _temp_name(target: Path) -> Path:
    """A unique temporary file name beside ``target`` (same directory, so same filesystem)."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a uniquely named temporary file and a rename, so a
    reader (or an interrupted run) never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _move_file(src: Path, target: Path) -> None:
    """Move ``src`` onto ``target`` atomically (copied to a temporary file beside ``target``
    first, as ``src`` may be on another filesystem)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(target)
    try:
        with open(src, "rb") as fsrc, open(tmp, "xb") as fdst:
            shutil.copyfileobj(fsrc, fdst)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        src.unlink()


def _write(nb: nbformat.NotebookNode, path: Path) -> None:
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    write_text_atomic(path, text if text.endswith("\n") else text + "\n")


def partial_path(output: str | Path) -> Path:
    """Where the partial notebook of a failed run is kept: ``NN_name.partial.ipynb``."""
    output = Path(output)
    stem = output.name[: -len(".ipynb")] if output.name.endswith(".ipynb") else output.name
    return output.with_name(f"{stem}.partial.ipynb")


class OutputLocked(RuntimeError):
    """Another run is writing the same output notebook."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


@contextlib.contextmanager
def output_lock(output: Path) -> Iterator[Path]:
    """Hold ``.<output name>.lock`` beside ``output`` (it holds this process's PID) for the
    duration of a run; a second run of the same notebook into the same place is refused with
    :class:`OutputLocked`.  A lock left by a process that no longer exists is taken over."""
    lock = output.with_name(f".{output.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = int(lock.read_text(encoding="utf-8").strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if holder and _pid_alive(holder):
                raise OutputLocked(
                    f"{output} is being written by another kacnb run (PID {holder}); wait for "
                    f"it to finish, or delete {lock} if that process is not a kacnb run"
                ) from None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()  # stale: its process is gone
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
        break
    else:
        raise OutputLocked(f"could not take the lock {lock}")
    try:
        yield lock
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()


# ---------------------------------------------------------------------------------------------
# publishing: every file of a run, or none

#: Suffixes of the files :func:`publish` keeps beside a target while it replaces it.
_NEW, _OLD = ".new", ".old"


@dataclass
class _Swap:
    """One file of a publication: ``temp`` (a copy of the staged file beside ``target``)
    replaces ``target``; the old ``target``, when there was one (``had_old``), is kept as
    ``backup`` until every file is in place."""

    target: Path
    temp: Path
    backup: Path
    had_old: bool

    def to_json(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: Mapping) -> _Swap:
        paths = {k: Path(data[k]) for k in ("target", "temp", "backup")}
        return cls(**paths, had_old=bool(data["had_old"]))


def _side_name(target: Path, suffix: str) -> Path:
    """A hidden name beside ``target`` naming this process: ``.<name>.<pid>.<random><suffix>``."""
    return target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


def _remove_leftovers(target: Path) -> None:
    """Remove the side files of ``target`` left by publications whose process is gone."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[0-9a-f]{{8}}(\{_NEW}|\{_OLD})")
    if not target.parent.is_dir():
        return
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and not _pid_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()


def _copy_new(source: Path, temp: Path) -> None:
    """Copy ``source`` to the new file ``temp`` and flush it to the disk (a full disk shows
    here, before anything published is touched)."""
    with open(source, "rb") as fsrc, open(temp, "xb") as fdst:
        shutil.copyfileobj(fsrc, fdst)
        fdst.flush()
        os.fsync(fdst.fileno())


def _stage(files: Mapping[Path, Path]) -> list[_Swap]:
    """Copy each staged file (``target -> source``) beside its target; on any error remove
    the copies made so far and re-raise: the published files are not touched here."""
    swaps: list[_Swap] = []
    try:
        for target, source in files.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(target))
            _remove_leftovers(target)
            swap = _Swap(target, _side_name(target, _NEW), _side_name(target, _OLD), False)
            swap.had_old = target.exists()
            swaps.append(swap)  # before the copy: a half-written copy is removed too
            _copy_new(source, swap.temp)
    except BaseException:
        for swap in swaps:
            with contextlib.suppress(OSError):
                swap.temp.unlink()
        raise
    return swaps


def _swap_in(swap: _Swap) -> None:
    """Keep the old target as ``backup`` (a hard link, else a rename), then move the new
    file onto the target (an atomic rename)."""
    if swap.had_old:
        try:
            os.link(swap.target, swap.backup)
        except OSError:  # a file system without hard links
            os.rename(swap.target, swap.backup)
    os.replace(swap.temp, swap.target)


def _roll_back(swaps: list[_Swap]) -> list[str]:
    """Put every old file back and remove the new ones that had no old file; works from the
    files alone, so it also finishes a publication whose process was killed.  Returns what
    could not be undone (empty when the old set is complete again)."""
    problems = []
    for swap in reversed(swaps):
        try:
            if os.path.lexists(swap.backup):
                if os.path.lexists(swap.target) and os.path.samefile(swap.backup, swap.target):
                    swap.backup.unlink()  # not replaced yet (a rename would do nothing)
                else:
                    os.replace(swap.backup, swap.target)
            elif not swap.had_old and not os.path.lexists(swap.temp):
                with contextlib.suppress(FileNotFoundError):
                    swap.target.unlink()  # it was new: moved in already
            with contextlib.suppress(FileNotFoundError):
                swap.temp.unlink()
        except OSError as exc:
            problems.append(f"{swap.target}: {exc.strerror or exc} (old file: {swap.backup})")
    return problems


def _journal_path(output: Path) -> Path:
    """The journal of a publication into ``output``'s place: ``.<name>.publishing.json``."""
    return output.with_name(f".{output.name}.publishing.json")


def publish(files: Mapping[Path, Path], journal: Path) -> list[Path]:
    """Replace every target by its staged file (``files``: ``target -> source``), all or none.

    The staged files are first copied beside their targets; then ``journal`` lists them and
    the targets are replaced one by one, the old files kept aside; removing the journal
    completes the publication.  On any error every old file is put back (the targets are
    then as before) and the error is re-raised; :class:`PublishError` when even that failed.
    Returns the targets.
    """
    swaps = _stage(files)
    try:
        entries = {"pid": os.getpid(), "files": [swap.to_json() for swap in swaps]}
        write_text_atomic(journal, json.dumps(entries, indent=1) + "\n")
        for swap in swaps:
            _swap_in(swap)
        journal.unlink()  # the publication is complete
    except BaseException as exc:
        problems = _roll_back(swaps)
        if problems:
            raise PublishError(
                f"publishing failed ({exc}) and {len(problems)} old file(s) could not be put "
                f"back: {'; '.join(problems)}; the next run of this notebook retries "
                f"(journal {journal})"
            ) from exc
        with contextlib.suppress(OSError):
            journal.unlink()
        raise
    for swap in swaps:
        with contextlib.suppress(OSError):
            swap.backup.unlink()
    return [swap.target for swap in swaps]


def recover_publication(output: str | Path) -> bool:
    """Roll back a publication into ``output``'s place that a killed run left unfinished
    (its journal is there and its process is gone); ``True`` if there was one.  Raises
    :class:`PublishError` when an old file cannot be put back."""
    journal = _journal_path(Path(output))
    try:
        entries = json.loads(journal.read_text(encoding="utf-8"))
        pid = int(entries["pid"])
        swaps = [_Swap.from_json(item) for item in entries["files"]]
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PublishError(
            f"the journal {journal} of an unfinished publication cannot be read ({exc}); check "
            f"the files beside it, then delete it"
        ) from None
    if pid != os.getpid() and _pid_alive(pid):
        return False  # still publishing (it holds the output's lock: not a kacnb run of ours)
    problems = _roll_back(swaps)
    if problems:
        raise PublishError(
            f"an unfinished publication could not be rolled back: {'; '.join(problems)}"
        )
    journal.unlink()
    return True


# ---------------------------------------------------------------------------------------------
# environment facts for the run record


def _package_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("kacnb")
    except Exception:  # noqa: BLE001 - not installed as a distribution
        return None


def run_record(
    spec: NotebookSpec,
    *,
    profile: str,
    device: str,
    seed: int,
    wall_time_s: float,
    git: tuple[str | None, bool | None],
    output: Path,
    figures: list[str],
    started: _dt.datetime,
) -> dict:
    import torch

    commit, dirty = git
    return {
        "notebook": spec.stem,
        "title": spec.title,
        "profile": profile,
        "device": device,
        "device_name": device_name(device),
        "seed": seed,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kacnb": _package_version(),
        "wall_time_s": round(wall_time_s, 2),
        "git_commit": commit,
        "git_dirty": dirty,
        "timestamp_utc": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        # The file name only: a record is published and must not carry local paths.
        "output_notebook": output.name,
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "figures": figures,
    }


# ---------------------------------------------------------------------------------------------
# execution


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _source_line(nb: nbformat.NotebookNode, text: str, index: int) -> int | None:
    """1-based line of cell ``index``'s source in the percent text, if it can be found."""
    cursor = 0
    for i, cell in enumerate(nb.cells[: index + 1]):
        if cell.cell_type != "code":
            continue
        pos = text.find(cell.source, cursor) if cell.source else -1
        if pos < 0:
            if i == index:
                return None
            continue
        if i == index:
            return text.count("\n", 0, pos) + 1
        cursor = pos + len(cell.source)
    return None


def _failure(
    exc: BaseException,
    spec: NotebookSpec,
    source: Path,
    src_nb: nbformat.NotebookNode,
    src_text: str,
    injected_at: int | None,
    partial: Path | None,
) -> NotebookFailed:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        index = exc.cell_index
        if injected_at is not None and index is not None:
            if index == injected_at:
                index = None  # the injected parameters cell itself failed
            elif index > injected_at:
                index -= 1
        head = ""
        line = None
        if index is not None and 0 <= index < len(src_nb.cells):
            head = next((s for s in src_nb.cells[index].source.splitlines() if s.strip()), "")
            line = _source_line(src_nb, src_text, index)
        return NotebookFailed(
            spec.stem,
            source,
            cell_index=index,
            line=line,
            ename=exc.ename,
            evalue=exc.evalue,
            exec_count=exc.exec_count,
            cell_head=head[:100],
            partial=partial,
        )
    if isinstance(exc, (CellTimeoutError, DeadKernelError)):
        return NotebookFailed(
            spec.stem,
            source,
            cell_index=None,
            line=None,
            ename=type(exc).__name__,
            evalue=str(exc).strip().splitlines()[0] if str(exc).strip() else "",
            partial=partial,
        )
    raise exc


def _quiet_kernel_manager(log: Path) -> type:
    """A kernel manager whose kernel process writes its own stderr to ``log``.

    The notebook's outputs do not go there (they come as messages); only the kernel's log
    lines, e.g. the traceback of a reply it can no longer send after Ctrl-C stopped the run.
    """
    from jupyter_client.manager import AsyncKernelManager

    class QuietKernelManager(AsyncKernelManager):
        async def _async_launch_kernel(self, kernel_cmd, **kw):  # noqa: ANN001, ANN202
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "ab") as f:
                kw.setdefault("stderr", f)
                await super()._async_launch_kernel(kernel_cmd, **kw)

    return QuietKernelManager


def _execute(
    spec: NotebookSpec,
    source: Path,
    output: Path,
    parameters: dict,
    cwd: Path,
    *,
    progress_bar: bool,
    log_output: bool,
    timeout: float | None,
) -> nbformat.NotebookNode:
    """Execute ``source`` with papermill into ``output``; raise :class:`NotebookFailed`."""
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    src_text = source.read_text(encoding="utf-8")
    src_nb = read_source(source)
    param_at = _find_tagged(src_nb, PARAMETERS_TAG)
    if param_at is None:
        raise ValueError(
            f'{source} has no parameters cell: tag one cell with # %% tags=["parameters"]'
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    log = output.with_name(output.name + ".log")
    # the notebook's own progress bars (training, sampling) live on a status line unless the
    # cells' whole output is echoed anyway (--log-output) or progress is off
    echo = ProgressEcho() if progress_bar and not log_output else None
    try:
        return papermill.execute_notebook(
            copy.deepcopy(src_nb),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            language="python",
            cwd=str(cwd),
            progress_bar={"desc": spec.stem, "leave": False} if progress_bar else False,
            log_output=log_output,
            execution_timeout=timeout,
            kernel_manager_class=_quiet_kernel_manager(log),
            stderr_file=echo,
        )
    except (PapermillExecutionError, CellTimeoutError, DeadKernelError) as exc:
        partial = output if output.exists() else None
        failure = _failure(exc, spec, source, src_nb, src_text, param_at + 1, partial)
        if isinstance(exc, DeadKernelError):
            failure.evalue += _log_tail(log)
            failure.args = (failure.message(),)
        raise failure from exc
    finally:
        if echo is not None:
            echo.close()


def _log_tail(log: Path, lines: int = 8) -> str:
    """The last lines of the kernel's own stderr, for the message of a dead kernel."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    noise = "running over TCP without encryption"  # ipykernel's start-up warning
    tail = [line for line in text.splitlines() if line.strip() and noise not in line][-lines:]
    if not tail:
        return ""
    return "\n  the kernel's stderr ended with:" + "".join(f"\n    | {line}" for line in tail)


#: Termination signals of the run received so far (a dead kernel after one is the signal's).
_TERMINATED: list[int] = []


def _raise_interrupted(signum: int, frame) -> None:  # noqa: ANN001 - a signal handler
    _TERMINATED.append(signum)
    raise Interrupted(signum)


class _QuietAfterStop(logging.Filter):
    """Drops the execution client's "Kernel died while waiting for execute reply." once the
    run was stopped by a signal: the kernel dies because we stop it, and the run's own one
    line says so."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_TERMINATED and "Kernel died" in record.getMessage())


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """In the block SIGTERM raises :class:`Interrupted`, as Ctrl-C raises KeyboardInterrupt:
    the run stops, publishes nothing and removes its staging folder."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _TERMINATED.clear()
    old = signal.signal(signal.SIGTERM, _raise_interrupted)
    quiet = _QuietAfterStop()
    logger = logging.getLogger("papermill")  # the execution client logs through it
    logger.addFilter(quiet)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)
        logger.removeFilter(quiet)


@contextlib.contextmanager
def _signals_deferred(signums: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM in the block; the first one received takes effect (its
    handler runs) when the block ends."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list = []
    olds = {
        sig: signal.signal(sig, lambda n, frame: received.append((n, frame))) for sig in signums
    }
    try:
        yield
    finally:
        for sig, old in olds.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        if received:
            signum, frame = received[0]
            old = olds[signum]
            if callable(old):
                old(signum, frame)  # e.g. the default SIGINT handler: KeyboardInterrupt
            elif old == signal.SIG_DFL:
                signal.raise_signal(signum)


#: Prefix of a run's staging folder in the temporary directory: ``kacnb-<stem>-<pid>-``.
STAGING_PREFIX = "kacnb-{stem}-{pid}-"


def remove_stale_staging(stem: str, tmpdir: str | Path | None = None) -> list[Path]:
    """Remove the staging folders of notebook ``stem`` left by runs that were killed (the
    PID in the folder's name is gone); returns them."""
    tmpdir = Path(tmpdir if tmpdir is not None else tempfile.gettempdir())
    pattern = re.compile(rf"kacnb-{re.escape(stem)}-(\d+)-\w+")
    removed = []
    with contextlib.suppress(OSError):
        for path in tmpdir.iterdir():
            match = pattern.fullmatch(path.name)
            if match and path.is_dir() and not _pid_alive(int(match.group(1))):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
    return removed


def _figures_since(figures_dir: Path, start: float, spec: NotebookSpec) -> list[str]:
    """The notebook's own figure files (registry stems or its ``nbNN_`` prefix) written
    since ``start``; other notebooks running into the same folder are not counted."""
    if not figures_dir.is_dir():
        return []
    own = {f.stem for f in spec.figures}
    return sorted(
        p.name
        for p in figures_dir.iterdir()
        if p.is_file()
        and p.suffix in (".png", ".pdf")
        and (p.stem in own or p.stem.startswith(spec.file_prefix))
        and p.stat().st_mtime >= start - 1.0
    )


def _staged_files(
    staging: Path, output: Path, figures_dir: Path, weights_dir: Path | None
) -> dict[Path, Path]:
    """What a completed run publishes, ``target -> staged file``: everything under the staged
    figures folder (the notebook's figures, animations and metrics, and the record) into
    ``figures_dir``, except a weights bundle in its ``pretrained/`` sub-folder, which goes to
    ``weights_dir`` when given; and the cleaned notebook to ``output``."""
    from ..cfm.pretrained import RUN_SUBDIR

    staged_figures = staging / "figures"
    files: dict[Path, Path] = {}
    if staged_figures.is_dir():
        for path in sorted(staged_figures.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(staged_figures)
            if weights_dir is not None and rel.parts[0] == RUN_SUBDIR and len(rel.parts) > 1:
                files[weights_dir / Path(*rel.parts[1:])] = path
            else:
                files[figures_dir / rel] = path
    files[output] = staging / "publish" / output.name
    return files


def _weights_target(files: dict[Path, Path], staging: Path) -> Path | None:
    """The folder a weights bundle of the run went to, or ``None`` when it wrote none."""
    from ..cfm.pretrained import RUN_SUBDIR

    bundle = staging / "figures" / RUN_SUBDIR
    return next((t.parent for t, src in files.items() if bundle in src.parents), None)


def _keep_unpublished(staging: Path, stem: str) -> Path:
    """Rename the staging folder of a run that could not be published so that it is kept:
    ``kacnb-unpublished-<stem>-<time>-*`` (not a staging folder, so no run removes it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = staging.with_name(f"kacnb-unpublished-{stem}-{stamp}-{uuid.uuid4().hex[:6]}")
    staging.rename(kept)  # same folder: a rename cannot run out of space
    return kept


def _publish_run(stem: str, staging: Path, files: dict[Path, Path], output: Path) -> list[Path]:
    """Publish ``files`` as one transaction (:func:`publish`); Ctrl-C and SIGTERM meanwhile
    take effect once it is complete.  On an error the staging folder is kept and
    :class:`PublishError` names what happened and where the run's outputs are."""
    try:
        with _signals_deferred():
            return publish(files, _journal_path(output))
    except (OSError, PublishError) as exc:
        kept = _keep_unpublished(staging, stem)
        if isinstance(exc, PublishError):
            raise PublishError(f"{exc}; the run's outputs are kept in {kept}") from None
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        raise PublishError(
            f"{stem} was not published, the published files are unchanged "
            f"({exc.strerror or exc}{where}); its outputs are kept in {kept}"
        ) from None


def _execute_staged(
    spec: NotebookSpec,
    source: Path,
    output: Path,
    staging: Path,
    parameters: dict,
    *,
    deadline: float | None,
    **options,
) -> tuple[nbformat.NotebookNode, float]:
    """Execute the notebook into ``staging``: ``(executed notebook, wall time)``.  A failure
    keeps the partial notebook beside ``output``; a stop at the deadline raises
    :class:`TimeLimitStopped`; an interruption (the kernel's, or a dead kernel after
    SIGTERM) raises KeyboardInterrupt (:class:`Interrupted`)."""
    staged_nb = staging / output.name
    env = {DEADLINE_ENV: repr(float(deadline))} if deadline is not None else {}
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures inline, not Agg
    t0 = time.perf_counter()
    try:
        with _environ(**env):
            executed = _execute(
                spec,
                source,
                staged_nb,
                {**parameters, "figures_dir": str(staging / "figures")},
                cwd=source.parent,
                **options,
            )
    except NotebookFailed as exc:
        if _TERMINATED:
            raise Interrupted(_TERMINATED[0]) from exc
        if exc.ename == TIME_LIMIT_ENAME and deadline is not None:
            raise TimeLimitStopped(spec.stem, time.perf_counter() - t0, exc.evalue) from exc
        if exc.ename == "KeyboardInterrupt":  # the kernel got the Ctrl-C first
            raise KeyboardInterrupt from exc
        if staged_nb.exists():
            exc.partial = partial_path(output)
            _move_file(staged_nb, exc.partial)
            exc.args = (exc.message(),)
        raise
    return executed, time.perf_counter() - t0


def run_notebook(
    spec: NotebookSpec,
    source: str | Path,
    *,
    profile: str = "quick",
    device: str = "auto",
    seed: int = 0,
    output: str | Path | None = None,
    figures_dir: str | Path,
    progress_bar: bool = True,
    log_output: bool = False,
    timeout: float | None = None,
    extra_parameters: Mapping[str, object] | None = None,
    write_record: bool = True,
    deadline: float | None = None,
    weights_dir: str | Path | None = None,
) -> RunResult:
    """Execute one notebook and publish it; see the module docstring.

    ``device`` may be ``"auto"``: it is resolved here and the concrete device (``"cpu"`` or
    ``"cuda"``) is passed to the notebook and recorded.  ``output`` defaults to
    ``<stem>.ipynb`` next to the source.  Raises :class:`NotebookFailed` on failure (the
    partial notebook is kept, not cleaned, as :func:`partial_path` of ``output``; nothing is
    published), :class:`PublishError` when the outputs cannot be published (nothing is) and
    :class:`OutputLocked` when another run writes the same output.  ``deadline`` (absolute
    UNIX time, s): see the module docstring; raises :class:`TimeLimitStopped` when training
    stopped there.  ``weights_dir``: where a weights bundle the notebook leaves in
    ``<figures_dir>/pretrained/`` is published (default: it stays there).
    """
    from .runtime import check_profile, resolve_device

    source = Path(source).resolve()
    check_profile(profile)
    device = str(resolve_device(device))
    output = Path(output).resolve() if output is not None else source.with_suffix(".ipynb")
    figures_dir = Path(figures_dir).resolve()
    weights_dir = Path(weights_dir).resolve() if weights_dir is not None else None
    extra = dict(extra_parameters or {})
    clash = sorted(set(extra) & set(RESERVED_PARAMETERS))
    if clash:
        raise ValueError(f"use the dedicated options for {', '.join(clash)}, not extra parameters")
    parameters = {
        "profile": profile,
        "device": device,
        "figures_dir": str(figures_dir),
        "seed": int(seed),
        **extra,
    }
    git = git_state(source.parent)
    started = _dt.datetime.now(_dt.timezone.utc)
    with output_lock(output):
        recover_publication(output)
        remove_stale_staging(spec.stem)
        prefix = STAGING_PREFIX.format(stem=spec.stem, pid=os.getpid())
        staging = Path(tempfile.mkdtemp(prefix=prefix))
        try:
            executed, wall = _execute_staged(
                spec,
                source,
                output,
                staging,
                parameters,
                deadline=deadline,
                progress_bar=progress_bar,
                log_output=log_output,
                timeout=timeout,
            )
            _write(clean_notebook(executed, keep_injected=False), staging / "publish" / output.name)
            record_path = None
            record: dict = {}
            if write_record:
                record = run_record(
                    spec,
                    profile=profile,
                    device=device,
                    seed=int(seed),
                    wall_time_s=wall,
                    git=git,
                    output=output,
                    figures=_figures_since(staging / "figures", 0.0, spec),
                    started=started,
                )
                if extra:
                    record["extra_parameters"] = {k: repr(v) for k, v in extra.items()}
                record_path = figures_dir / "runs" / f"{spec.stem}.json"
                staged_record = staging / "figures" / "runs" / record_path.name
                write_text_atomic(staged_record, json.dumps(record, indent=2) + "\n")
            files = _staged_files(staging, output, figures_dir, weights_dir)
            published = _publish_run(spec.stem, staging, files, output)
            with contextlib.suppress(FileNotFoundError):
                partial_path(output).unlink()  # a partial notebook of an earlier failure
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return RunResult(
        spec=spec,
        output=output,
        record_path=record_path,
        record=record,
        published=published,
        weights=_weights_target(files, staging),
    )


#: Profile reported by :func:`published_profile` for a record it cannot read.
UNKNOWN_PROFILE = "unknown"


def published_profile(record_path: str | Path) -> str | None:
    """The profile of the published run record ``record_path``; ``None`` when there is no
    record, :data:`UNKNOWN_PROFILE` when it cannot be read or names no profile."""
    record_path = Path(record_path)
    if not record_path.exists():
        return None
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return UNKNOWN_PROFILE
    profile = record.get("profile") if isinstance(record, dict) else None
    return profile if isinstance(profile, str) and profile else UNKNOWN_PROFILE


def scratch_dir(root: str | Path, profile: str) -> Path:
    """Where a run that must not replace the published outputs goes: ``<root>/runs/<profile>``
    (the executed notebooks, and ``figures/`` with the figures and ``runs/`` records)."""
    return Path(root) / "runs" / profile


def in_sync(source: str | Path, ipynb: str | Path) -> bool:
    """Whether ``ipynb`` converts to percent text equal to the ``.py`` ``source``."""
    text = Path(source).read_text(encoding="utf-8")
    return to_percent(jupytext.read(str(ipynb))) == text


def make_golden(
    spec: NotebookSpec,
    source: str | Path,
    golden_dir: str | Path,
    *,
    progress_bar: bool = True,
    timeout: float | None = None,
) -> Path:
    """Execute ``source`` with :data:`GOLDEN_PARAMETERS` into ``<golden_dir>/<stem>.ipynb``.

    The kernel runs in ``golden_dir`` (as under nbval) with ``TQDM_DISABLE=1``, as
    ``tests/conftest.py`` sets for the nbval run (progress bars would only bloat the golden
    files; stderr is not compared anyway).  The injected-parameters cell is kept.  On failure
    the existing golden is left untouched and the partial notebook is kept in a temporary
    directory.
    """
    source = Path(source).resolve()
    golden_dir = Path(golden_dir).resolve()
    golden_dir.mkdir(parents=True, exist_ok=True)
    target = golden_dir / f"{spec.stem}.ipynb"
    work = Path(tempfile.mkdtemp(prefix=f"kacnb-golden-{spec.stem}-"))
    partial = work / f"{spec.stem}.ipynb"
    with _environ(TQDM_DISABLE="1"):
        executed = _execute(
            spec,
            source,
            partial,
            dict(GOLDEN_PARAMETERS),
            cwd=golden_dir,
            progress_bar=progress_bar,
            log_output=False,
            timeout=timeout,
        )
    golden = without_images(clean_notebook(executed, keep_injected=True, kernelspec=KERNELSPEC))
    _write(golden, target)
    shutil.rmtree(work, ignore_errors=True)
    return target
