"""What several benchmarks measure the same way: device sync, the matrix-multiply rate at a precision, and the
FLOPs of one training step (forward + backward, torch's FlopCounterMode)."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from yoco.runtime import precision_scope


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a CPU needs nothing)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, precision: str = "fp32", reps: int = 10) -> float:
    """The measured square matrix-multiply rate in TFLOP/s at ``precision`` (fp32: IEEE float32, PyTorch's
    default; tf32: TF32 allowed, CUDA; bf16: bfloat16 operands)."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    with precision_scope("tf32" if precision == "tf32" else "fp32", device):
        a @ b
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def step_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one cross-entropy training step's forward and backward on the batch ``x``, ``y``."""
    with FlopCounterMode(display=False) as fc:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops()
