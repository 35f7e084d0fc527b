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
