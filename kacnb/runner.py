"""Execute the notebooks with papermill and publish the results.

``notebooks/<stem>.py`` (jupytext percent format) is the source of truth.  :func:`run_notebook`
reads it with jupytext, executes it with papermill (parameters ``profile``, ``device``,
``figures_dir``, ``seed``), cleans the executed notebook and writes ``<stem>.ipynb``:

* the papermill-injected ``injected-parameters`` cell is removed, so the ``.ipynb`` has exactly
  the cells of the ``.py`` and converts back to it (``jupytext --to py:percent``);
  the notebooks print their profile and device themselves (``kacnb.runtime.setup``);
* papermill/nbclient metadata, empty ``tags: []`` and random cell ids are replaced by clean,
  deterministic ones; outputs are kept (stream outputs coalesced, ``\\r`` progress collapsed).

Each successful run writes a JSON record ``<figures_dir>/runs/<stem>.json``.

**Nothing is published by a failed run.** Every run executes into a temporary directory
(notebook and figures); the figures, the notebook and the run record are moved into place
(each file by an atomic rename) only when the notebook completes.  A failing notebook leaves
the published files as they were and keeps its partial notebook (with the traceback, not
cleaned) beside the target as ``<stem>.partial.ipynb``; Ctrl-C publishes nothing either.  A
second run writing the same output notebook at the same time is refused
(:func:`output_lock`, a ``.<stem>.ipynb.lock`` file holding the PID of the run).

**Time limit.** With a ``deadline`` (absolute UNIX time, ``kacnb run --time-limit``) the
kernel gets it in the environment variable ``KACNB_DEADLINE``; training stops there with
:class:`kacnb.train.TimeLimitReached` after writing its checkpoints, and nothing is published
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
import hashlib
import json
import os
import platform
import re
import shutil
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
    "RunResult",
    "partial_path",
    "output_lock",
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


#: Name of the exception the training loop raises at the deadline (kacnb.train).
TIME_LIMIT_ENAME = "TimeLimitReached"
#: Environment variable through which the kernel gets the deadline (kacnb.train.DEADLINE_ENV).
DEADLINE_ENV = "KACNB_DEADLINE"


@dataclass
class RunResult:
    spec: NotebookSpec
    output: Path
    record_path: Path | None
    record: dict = field(default_factory=dict)


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


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) in the block; its handler runs when the block ends."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if received and callable(old):
            old(signal.SIGINT, received[0])  # default handler: raises KeyboardInterrupt


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
) -> RunResult:
    """Execute one notebook and publish it; see the module docstring.

    ``device`` may be ``"auto"``: it is resolved here and the concrete device (``"cpu"`` or
    ``"cuda"``) is passed to the notebook and recorded.  ``output`` defaults to
    ``<stem>.ipynb`` next to the source.  Raises :class:`NotebookFailed` on failure (the
    partial notebook is kept, not cleaned, as :func:`partial_path` of ``output``; nothing is
    published) and :class:`OutputLocked` when another run writes the same output.
    ``deadline`` (absolute UNIX time, s): see the module docstring; raises
    :class:`TimeLimitStopped` when training stopped there.
    """
    from .runtime import check_profile, resolve_device

    source = Path(source).resolve()
    check_profile(profile)
    device = str(resolve_device(device))
    output = Path(output).resolve() if output is not None else source.with_suffix(".ipynb")
    figures_dir = Path(figures_dir).resolve()
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
    env = {DEADLINE_ENV: repr(float(deadline))} if deadline is not None else {}
    with output_lock(output):
        staging = Path(tempfile.mkdtemp(prefix=f"kacnb-{spec.stem}-"))
        try:
            staged_nb = staging / output.name
            staged_figures = staging / "figures"
            t0 = time.perf_counter()
            try:
                with _environ(**env):
                    executed = _execute(
                        spec,
                        source,
                        staged_nb,
                        {**parameters, "figures_dir": str(staged_figures)},
                        cwd=source.parent,
                        progress_bar=progress_bar,
                        log_output=log_output,
                        timeout=timeout,
                    )
            except NotebookFailed as exc:
                if exc.ename == TIME_LIMIT_ENAME and deadline is not None:
                    raise TimeLimitStopped(spec.stem, time.perf_counter() - t0, exc.evalue) from exc
                if exc.ename == "KeyboardInterrupt":  # the kernel got the Ctrl-C first
                    raise KeyboardInterrupt from exc
                if staged_nb.exists():
                    exc.partial = partial_path(output)
                    _move_file(staged_nb, exc.partial)
                    exc.args = (exc.message(),)
                raise
            wall = time.perf_counter() - t0
            published = clean_notebook(executed, keep_injected=False)
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
                    figures=_figures_since(staged_figures, 0.0, spec),
                    started=started,
                )
                if extra:
                    record["extra_parameters"] = {k: repr(v) for k, v in extra.items()}
                record_path = figures_dir / "runs" / f"{spec.stem}.json"
            # publish the figures (and the notebook's other files), the notebook and the
            # record; a Ctrl-C meanwhile takes effect once all of it is in place
            with _sigint_deferred():
                if staged_figures.is_dir():
                    for path in sorted(staged_figures.rglob("*")):
                        if path.is_file():
                            _move_file(path, figures_dir / path.relative_to(staged_figures))
                _write(published, output)
                if record_path is not None:
                    write_text_atomic(record_path, json.dumps(record, indent=2) + "\n")
                with contextlib.suppress(FileNotFoundError):
                    partial_path(output).unlink()  # a partial notebook of an earlier failure
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return RunResult(spec=spec, output=output, record_path=record_path, record=record)


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
    golden = clean_notebook(executed, keep_injected=True, kernelspec=KERNELSPEC)
    _write(golden, target)
    shutil.rmtree(work, ignore_errors=True)
    return target
