"""Where a result came from: the device's name and the commit of the code.

Kept apart from :mod:`kacnb.collection.runner` (which needs the notebook tool chain) so that the
benchmarks and the tools that run on a bare GPU machine (torch only) can name the device and
the commit the same way the run records do.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

__all__ = ["device_name", "git_state"]


def device_name(device: str) -> str:
    """GPU name for a CUDA device, else the CPU model."""
    if device.startswith("cuda"):
        import torch

        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return torch.cuda.get_device_name(index)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def git_state(path: Path) -> tuple[str | None, bool | None]:
    """(short commit hash, whether tracked sources are modified), or (None, None) outside git.

    The collection's own outputs (``figures/``, executed ``.ipynb`` files) do not count:
    a multi-notebook run rewrites them as it goes, and the record is about the code.
    Outside git (a copy of the tree on a rented machine, without ``.git``) the commit is
    ``KACNB_SOURCE_COMMIT`` when the tool that made the copy sets it, with "modified"
    unknown (None).
    """
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()
        status = subprocess.run(
            [
                "git",
                "-C",
                str(path),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ":(top)",
                ":(top,exclude)figures",
                ":(top,exclude,glob)**/*.ipynb",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("KACNB_SOURCE_COMMIT") or None, None
    return (commit or None), bool(status.strip())
