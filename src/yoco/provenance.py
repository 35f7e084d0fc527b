"""What made a result: yoco's and torch's versions, the device, threads, precision and when (UTC).

Every result file carries this block under ``"provenance"``. It describes a run and never identifies what was
computed: no cache key, content digest or committed number may depend on it (two runs of the same cell on
different days are the same cell).
"""

from __future__ import annotations

import datetime
import functools
import platform
from importlib import metadata
from typing import Any

import torch

PROVENANCE_KEY = "provenance"  # where the block sits in a result or in a condensed set's ``meta.extra``


@functools.cache
def version() -> str:
    """The installed yoco's version (``0+unknown`` when run from a source tree that was never installed)."""
    try:
        return metadata.version("yoco")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def device_name(device: str | torch.device | None = None) -> str:
    """A readable name of ``device``: the GPU's model for CUDA, the processor's for a CPU."""
    dev = torch.device("cpu" if device in (None, "auto") else device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {_cpu_model()}"


@functools.cache  # read once per process: every result and pruned set records it
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def provenance(device: str | torch.device | None = None, precision: str | None = None) -> dict[str, Any]:
    """The block a result records about the run that made it (versions, device, threads, precision, UTC time)."""
    return {
        "yoco": version(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "threads": torch.get_num_threads(),
        "precision": precision,
        "utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def without_provenance(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` less its provenance block (a copy): what identifies a result or a set's metadata."""
    return {k: v for k, v in d.items() if k != PROVENANCE_KEY}
