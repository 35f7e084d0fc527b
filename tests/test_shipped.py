"""The condensed sets shipped in the package (the demo's Fashion-MNIST source, the CIFAR-10 preset's) load, decode
and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import rt

from yoco.data.condensed import content_sha256, decode, load
from yoco.evaluate import EvalConfig, evaluate_condensed
from yoco.ladder import DEMO_SET, shipped_set
from yoco.train import TrainConfig

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


def test_shipped_set_is_idc_fashion_mnist_ipc10_factor2() -> None:
    cs = load(DEMO_SET)
    assert cs.meta.dataset == "fashion-mnist" and cs.meta.method == "idc"
    assert (cs.meta.ipc, cs.meta.factor, cs.num_classes) == (10, 2, 10)
    assert cs.images.shape == (100, 1, 28, 28)
    assert cs.class_counts() == [10] * 10
    dec = decode(cs)
    assert dec.images.shape == (400, 1, 28, 28) and dec.class_counts() == [40] * 10
    assert cs.meta.extra["config"]["ipc"] == 10 and len(cs.meta.extra["matching_loss"]) > 0


def test_shipped_set_trains_a_network_well_above_chance() -> None:
    if not FASHION_ROOT.is_dir():
        pytest.skip(f"{FASHION_ROOT} is missing (install the Debian package dataset-fashion-mnist)")
    from yoco.data.datasets import load_dataset

    real = load_dataset("fashion-mnist")
    torch.set_num_threads(2)
    res = evaluate_condensed(load(DEMO_SET), real, EvalConfig(width=32, repeat=1, test_points=1,
                                                               train=TrainConfig(epochs=15)), runtime=rt())
    assert res["last_mean"] > 0.6


def test_shipped_cifar10_set_is_the_one_its_committed_evaluation_names() -> None:
    """The CIFAR-10 preset's set is the iteration-50 IDC set whose full-protocol evaluation is committed: swapping
    the asset without re-evaluating it would leave README and BENCHMARKS quoting another set's accuracy."""
    cs = load(shipped_set("cifar10-idc-ipc10"))
    assert cs.meta.dataset == "cifar10" and cs.meta.method == "idc"
    assert (cs.meta.ipc, cs.meta.factor, cs.num_classes) == (10, 2, 10)
    assert cs.images.shape == (100, 3, 32, 32) and cs.class_counts() == [10] * 10
    assert decode(cs).class_counts() == [40] * 10
    evaluation = Path(__file__).resolve().parent.parent / "benchmarks/results/condense_budget_cifar10/evals/iter50.json"
    report = json.loads(evaluation.read_text())
    assert report["sha256"] == content_sha256(cs)
    assert report["dataset"] == "cifar10" and report["last_mean"] >= 0.62
