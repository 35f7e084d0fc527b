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
