"""Where and how networks run: :class:`Runtime` (the device, resolved once per command, ``torch.compile``,
progress bars, batching and worker processes), the arithmetic precision of training steps, and seeded
construction. Below the training loop, so every stage reads these from one place.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

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
    check_precision(precision, device)
    if precision == "fp32":
        yield
    elif precision == "tf32":
        flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
    else:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision that is not one of :data:`yoco.protocol.PRECISIONS`, or that ``device`` cannot run (TF32
    off CUDA); commands call it when they resolve their device, before any data is read."""
    if precision not in protocol.PRECISIONS:
        raise YocoError(f"precision must be one of {', '.join(protocol.PRECISIONS)}, got {precision!r}")
    if precision == "tf32" and device.type != "cuda":
        raise YocoError("--precision tf32 needs an NVIDIA GPU (TF32 is a CUDA tensor-core format); on this "
                        f"{device.type} use fp32 or bf16")


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


@dataclass(frozen=True)
class Runtime:
    """Where and how one command runs its networks: made once per command (:meth:`make` resolves the device) and
    passed down to every stage, so no stage resolves a device or reads a flag of its own.

    ``compile``: training steps through ``torch.compile`` (:func:`compiled`; compiled stages are cached under keys
    of their own, since compiled arithmetic is not bit-identical). ``batched``: train several networks as one
    batched computation (:func:`yoco.train.train_batched`); None batches on a GPU only, where one small network
    leaves the card idle. ``workers``: local processes that run a ladder's evaluations side by side.
    The arithmetic ``precision`` is not here: it changes the numbers, so it belongs to the recipe the results
    record (:class:`yoco.train.TrainConfig`).
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    compile: bool = False
    progress: bool = True
    batched: bool | None = None
    workers: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.device, torch.device):
            raise YocoError(f"Runtime.device must be a resolved torch.device (use Runtime.make), got {self.device!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise YocoError(f"workers must be a whole number >= 1, got {self.workers!r}")

    @classmethod
    def make(cls, device: str | torch.device = "auto", **kw: Any) -> Self:
        """A runtime on ``device`` (``auto``: CUDA when available, else the CPU), resolved here once."""
        return cls(resolve_device(device), **kw)

    def but(self, **changes: Any) -> Runtime:
        """This runtime with some choices changed (e.g. ``progress=False`` for work nested in a progress bar)."""
        return dataclasses.replace(self, **changes)


def runtime_or_default(runtime: Runtime | None) -> Runtime:
    """``runtime``, or the default one (``auto`` device, eager, progress bars) for a call that passed none."""
    return runtime if runtime is not None else Runtime.make()
