"""Atomic writers and the safetensors reader."""

from __future__ import annotations

import os
import stat

import pytest
import torch

from yoco.errors import YocoError
from yoco.files import read_tensors, write_json, write_tensors, write_text


def test_written_files_follow_the_umask_not_mkstemps_0600(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        path = write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert path.read_text() == "hello"


def test_interrupted_write_keeps_the_old_file_and_no_temp(tmp_path) -> None:
    path = write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(ValueError):
        write_json(path, {"a": float("nan")})
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_tensor_round_trip_and_clear_errors(tmp_path) -> None:
    x = torch.arange(6, dtype=torch.float32).view(2, 3).t()  # non-contiguous on purpose
    path = write_tensors(tmp_path / "t.safetensors", {"x": x}, {"kind": "test"})
    header, tensors = read_tensors(path, "test file")
    assert header == {"kind": "test"} and torch.equal(tensors["x"], x)
    with pytest.raises(YocoError, match="missing.safetensors: no such test file"):
        read_tensors(tmp_path / "missing.safetensors", "test file")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(YocoError, match="junk.safetensors: not a yoco test file"):
        read_tensors(tmp_path / "junk.safetensors", "test file")


def test_content_digests_are_the_ones_every_committed_result_names() -> None:
    """Sets, datasets and dynamics are named in results, caches and committed ladder folders by these digests;
    a change to how any of them is hashed would orphan all of those, so the values are pinned as literals
    (computed before the three were put on one helper)."""
    from yoco.data.condensed import CondensedMeta, CondensedSet, content_sha256, load
    from yoco.data.datasets import RealDataset
    from yoco.dynamics import Dynamics
    from yoco.ladder import DEMO_SET

    # the shipped set's content sha256, as BENCHMARKS.md and benchmarks/results/shipped_set_eval.json give it
    assert content_sha256(load(DEMO_SET)) == "ab1806343d79759347734029e8931f9307e061014c5eed8688b731d2574da7ca"
    x = (torch.arange(32, dtype=torch.float32) / 32).reshape(2, 1, 4, 4)
    y = torch.tensor([0, 1])
    soft = torch.tensor([[0.75, 0.25], [0.125, 0.875]])
    meta = CondensedMeta(dataset="tiny", num_classes=2, method="test", ipc=1, factor=1)
    assert content_sha256(CondensedSet(x, y, meta)).startswith("a2d11d79156f6cef")
    assert content_sha256(CondensedSet(x, y, meta, soft=soft)).startswith("5fc4b3d1c10d1f31")
    u8 = (torch.arange(12) * 7 % 256).to(torch.uint8).reshape(3, 1, 2, 2)
    real = RealDataset(name="t", train_images=u8, train_labels=torch.tensor([0, 1, 1]), test_images=u8[:2],
                       test_labels=torch.tensor([1, 0]), classes=["a", "b"], mean=(0.5,), std=(0.5,), flip=False,
                       root="<memory>")
    assert (real.digest("train")[:16], real.digest("test")[:16]) == ("1affd34621ab358f", "df40f9bbde0b615c")
    lp = torch.log_softmax(torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 10, -1)
    parts = (lp.to(torch.float16), torch.linspace(0, 1, 6).reshape(2, 3), y, lp[:, -1],
             torch.arange(12, dtype=torch.float32).reshape(2, 2, 3))
    assert Dynamics(*parts).digest().startswith("5512edb7a8d3473e")
    assert Dynamics(*parts, targets=soft).digest().startswith("14efd653b53e7caa")


def test_sha256_of_reads_a_strided_tensor_as_its_values_in_row_major_order() -> None:
    from yoco.files import sha256_of

    t = torch.arange(6, dtype=torch.int64).reshape(2, 3)
    assert sha256_of([t.t()]) == sha256_of([t.t().contiguous()]) != sha256_of([t])
    assert sha256_of(["ab", b"c"]) == sha256_of([b"abc"])
