"""Where and how networks run: the device (``auto`` resolved once), the arithmetic precision of training steps,
``torch.compile``, and seeded construction. Below the training loop, so every stage reads these from one place.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from yoco import protocol
from yoco.allocator import tune_allocator
from yoco.errors import YocoError


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (e.g. model construction) under a fixed global seed without disturbing the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def precision_scope(precision: str, device: torch.device) -> Iterator[None]:
    """Run a block's training arithmetic at ``precision``: ``fp32`` changes nothing (PyTorch's defaults), ``tf32``
    lets CUDA matmuls and convolutions use TF32 (restored afterwards), ``bf16`` autocasts to bfloat16 (weights,
    gradients and optimiser state stay float32)."""
    if precision == "fp32":
        yield
    elif precision == "tf32":
        if device.type != "cuda":
            raise YocoError("--precision tf32 needs an NVIDIA GPU (TF32 is a CUDA tensor-core format); on this "
                            f"{device.type} use fp32 or bf16")
        flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    elif precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
    else:
        raise YocoError(f"precision must be one of {', '.join(protocol.PRECISIONS)}, got {precision!r}")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a user error. The host's allocator is
    tuned on the way (:func:`yoco.allocator.tune_allocator`: every device's data passes through host memory)."""
    tune_allocator()
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise YocoError("--device cuda was asked for but no CUDA device is available")
    return dev


def compiled(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped by ``torch.compile`` (default mode; shares its parameters, so hooks and tests read the
    plain module). Inductor fuses the small network's elementwise work (normalisation, ReLU, pooling), which is
    what bounds it on a CPU: 1.5x faster training steps there (BENCHMARKS.md), after a compile of some seconds
    per process and set size. Not bit-identical to eager (float reordering); on the CPU it needs a C++ compiler.
    ``$YOCO_COMPILE_MODE`` picks torch.compile's mode (e.g. ``reduce-overhead``: CUDA graphs on a GPU).
    """
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", "g++"), "g++", "c++")):
        raise YocoError("compiling networks on the CPU needs a C++ compiler (g++ or $CXX), and none was found; "
                        "install one (apt-get install g++) or train without compiling")
    return torch.compile(model, mode=compile_mode())


def compile_mode() -> str | None:
    """torch.compile's mode from ``$YOCO_COMPILE_MODE`` (None: its default); the CUDA-graph modes replay steps."""
    return os.environ.get("YOCO_COMPILE_MODE") or None
