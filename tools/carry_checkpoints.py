"""Carry the checkpoints of an unfinished background run to the next working session.

Long CPU runs (the MNIST learning curves, the long profile, the pre-fix model of notebook 04)
checkpoint into the git-ignored ``checkpoints/``. When a run cannot finish before the
machine it runs on goes away, ``pack`` copies its checkpoint files into a tracked folder
under ``carry/`` with a ``SHA256SUMS`` file, to be committed; on a fresh clone ``unpack``
verifies every checksum and that every file loads as plain data (``torch.load`` with
``weights_only=True``) and copies them back, after which the run's own command continues::

    python tools/carry_checkpoints.py pack checkpoints/05_learning_curve carry/05_learning_curve
    python tools/carry_checkpoints.py unpack carry/05_learning_curve checkpoints/05_learning_curve

Only ``*.pt`` files are carried (relative paths kept); ``pack`` replaces the carried folder's
``.pt`` files and ``SHA256SUMS`` as one step (written beside it, then moved in), ``unpack``
copies nothing unless every file checks out, and never overwrites a checkpoint that is
further along (a higher ``step``) than the carried one.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from kacnb.cfm.pretrained import sha256 as _sha256

SUMS = "SHA256SUMS"


def _step(path: Path) -> int:
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    return int(state.get("step", -1)) if isinstance(state, dict) else -1


def pack(src: Path, dest: Path) -> list[str]:
    """Copy ``src``'s ``*.pt`` files (recursively) to ``dest`` with their ``SHA256SUMS``."""
    files = sorted(p for p in src.rglob("*.pt") if p.is_file())
    if not files:
        raise SystemExit(f"error: no checkpoint (*.pt) below {src}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    lines = []
    for f in files:
        rel = f.relative_to(src)
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, stage / rel)
        lines.append(f"{_sha256(stage / rel)}  {rel.as_posix()}")
    (stage / SUMS).write_text("\n".join(lines) + "\n")
    old = dest.with_name(f".{dest.name}.old")
    if dest.exists():
        dest.rename(old)
    stage.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return lines


def unpack(carried: Path, dest: Path) -> list[str]:
    """Verify ``carried`` (checksums, plain-data loads) and copy its files into ``dest``."""
    sums = carried / SUMS
    if not sums.exists():
        raise SystemExit(f"error: {sums} not found")
    entries = []
    for line in sums.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        path = carried / rel
        if not path.is_file():
            raise SystemExit(f"error: {rel} is listed in {SUMS} but missing")
        if _sha256(path) != digest:
            raise SystemExit(f"error: {rel}: SHA-256 differs from {SUMS} (altered or truncated)")
        try:
            step = _step(path)
        except Exception as exc:  # pickle errors for anything but plain data
            raise SystemExit(f"error: {rel}: refused to load ({type(exc).__name__})") from None
        entries.append((rel, path, step))
    done = []
    for rel, path, step in entries:
        target = dest / rel
        if target.exists() and _step(target) > step:
            done.append(f"kept {rel} (step {_step(target)} > carried {step})")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target.with_suffix(".pt.new"))
        target.with_suffix(".pt.new").replace(target)
        done.append(f"restored {rel} (step {step})")
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, first, second in (
        ("pack", "checkpoint folder", "carried folder (under carry/)"),
        ("unpack", "carried folder", "checkpoint folder"),
    ):
        p = sub.add_parser(name)
        p.add_argument("source", type=Path, help=first)
        p.add_argument("dest", type=Path, help=second)
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"{args.source} is not a folder")
    lines = (pack if args.command == "pack" else unpack)(args.source, args.dest)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
