"""Shared fixtures: tiny synthetic data so every test runs in seconds on two CPU cores."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import separable_images

torch.set_num_threads(2)


@pytest.fixture
def separable() -> tuple[torch.Tensor, torch.Tensor]:
    return separable_images()


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)


@pytest.fixture
def ieee_float32():
    """CUDA matmuls and convolutions in IEEE float32 for the test (TF32 rounds differently shaped kernels
    differently, so two equal computations could only be compared at TF32's 1e-3)."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
