"""Condensed sets as image folders and local Hugging Face snapshots, and export to an image folder."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from yoco.data.condensed import CondensedMeta, CondensedSet
from yoco.data.containers import export_imagefolder
from yoco.data.formats import import_condensed
from yoco.errors import YocoError


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def grey(value: int, size: int = 4) -> np.ndarray:
    return np.full((size, size), value, dtype=np.uint8)


def test_image_folder_with_numbered_and_named_classes(tmp_path):
    for cls, values in {"0": (10, 20), "1": (30,)}.items():
        (tmp_path / "num" / cls).mkdir(parents=True)
        for i, v in enumerate(values):
            (tmp_path / "num" / cls / f"{i}.png").write_bytes(png(grey(v)))
    cs = import_condensed(tmp_path / "num", "imagefolder", dataset="toy")
    assert cs.labels.tolist() == [0, 0, 1] and cs.images.shape == (3, 1, 4, 4)
    assert torch.allclose(cs.images[:, 0, 0, 0], torch.tensor([10, 20, 30]) / 255.0)
    assert not cs.meta.normalized and cs.meta.method == "imagefolder"
    for cls in ("zebra", "apple"):
        (tmp_path / "named" / cls).mkdir(parents=True)
        (tmp_path / "named" / cls / "a.png").write_bytes(png(grey(50 if cls == "apple" else 60)))
    named = import_condensed(tmp_path / "named", "imagefolder", dataset="toy")
    assert named.meta.extra["classes_from_folders"] == {"apple": 0, "zebra": 1}


def test_image_folder_problems_are_one_line(tmp_path):
    (tmp_path / "a" / "0").mkdir(parents=True)
    (tmp_path / "a" / "0" / "x.png").write_bytes(b"not a png")
    with pytest.raises(YocoError, match="x.png: not a readable image"):
        import_condensed(tmp_path / "a", "imagefolder", dataset="toy")
    (tmp_path / "b" / "0").mkdir(parents=True)
    (tmp_path / "b" / "0" / "x.png").write_bytes(png(grey(1, 4)))
    (tmp_path / "b" / "1").mkdir()
    (tmp_path / "b" / "1" / "y.png").write_bytes(png(grey(1, 8)))
    with pytest.raises(YocoError, match="differ in size"):
        import_condensed(tmp_path / "b", "imagefolder", dataset="toy")


def test_export_then_import_restores_the_set(tmp_path):
    images = torch.randint(0, 256, (6, 3, 8, 8)).float() / 255  # exactly representable in 8 bits
    meta = CondensedMeta("toy", 3, method="idc", ipc=2, factor=2)
    cs = CondensedSet(images, torch.tensor([0, 0, 1, 1, 2, 2]), meta)
    export_imagefolder(cs, tmp_path / "out", ["cat", "dog", "cow"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cat", "condensed.json", "cow", "dog",
                                                                   "labels.safetensors"]
    back = import_condensed(tmp_path / "out", "imagefolder", dataset="toy")
    assert torch.equal(back.images, cs.images) and torch.equal(back.labels, cs.labels)
    assert (back.meta.factor, back.meta.method, back.meta.ipc) == (2, "idc", 2)
    with pytest.raises(YocoError, match="not empty"):
        export_imagefolder(cs, tmp_path / "out")


def test_hugging_face_parquet_and_arrow_snapshots(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    from pyarrow import ipc

    rows = [{"bytes": png(np.full((4, 4, 3), v, dtype=np.uint8)), "path": None} for v in (5, 6, 7, 8)]
    table = pa.table({"image": rows, "label": [1, 0, 1, 0]})
    (tmp_path / "hub" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "hub" / "data" / "train-00000-of-00001.parquet")
    cs = import_condensed(tmp_path / "hub", "hf", dataset="toy")
    assert cs.labels.tolist() == [0, 0, 1, 1] and cs.images.shape == (4, 3, 4, 4)
    assert torch.allclose(cs.images[:, 0, 0, 0], torch.tensor([6, 8, 5, 7]) / 255.0)
    with open(tmp_path / "data-00000-of-00001.arrow", "wb") as fh, ipc.new_stream(fh, table.schema) as writer:
        writer.write_table(table)
    arrow = import_condensed(tmp_path / "data-00000-of-00001.arrow", "hf", dataset="toy")
    assert torch.equal(arrow.images, cs.images)
    pq.write_table(pa.table({"img": rows, "caption": ["a"] * 4}), tmp_path / "bad.parquet")
    with pytest.raises(YocoError, match="expected an image column .* and a label column"):
        import_condensed(tmp_path / "bad.parquet", "hf", dataset="toy")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(YocoError, match="junk.parquet: not a readable parquet file"):
        import_condensed(tmp_path / "junk.parquet", "hf", dataset="toy")


def test_export_command(tmp_path, capsys):
    from yoco.cli import main
    from yoco.data.condensed import save

    cs = CondensedSet(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), CondensedMeta("toy", 2))
    save(cs, tmp_path / "s.safetensors")
    assert main(["export", str(tmp_path / "s.safetensors"), "--out", str(tmp_path / "folder")]) == 0
    assert (tmp_path / "folder" / "condensed.json").exists() and "wrote 2 images" in capsys.readouterr().out
