"""Importers for published condensed-set files, their refusal to run code, and the image-grid report."""

from __future__ import annotations

import dataclasses
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rt
from PIL import Image

from yoco.data.condensed import CondensedMeta, CondensedSet, save
from yoco.data.formats import FORMATS, detect_format, format_names, import_condensed
from yoco.errors import YocoError
from yoco.report import save_image_grid, summarize

TOY_MEAN, TOY_STD = (0.5, 0.25, 0.125), (0.2, 0.3, 0.4)


class Payload:
    """Unpickling this object calls ``open(marker, "w")``: creates a file, standing in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def stats(monkeypatch):
    """A stand-in for ``yoco.data.datasets`` knowing one dataset, so importers are tested on their own."""
    module = types.ModuleType("yoco.data.datasets")

    def normalization(name: str):
        if name != "toy":
            raise YocoError(f"unknown dataset {name!r}")
        return TOY_MEAN, TOY_STD

    module.normalization = normalization
    monkeypatch.setitem(sys.modules, "yoco.data.datasets", module)


def images_and_labels(n_per_class: int = 2, classes: int = 2, c: int = 3, size: int = 8):
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n_per_class * classes, c, size, size, generator=g)
    return images, torch.arange(classes).repeat_interleave(n_per_class)


def no_temp_files(folder: Path) -> bool:
    return not any(p.name.endswith(".tmp") for p in folder.iterdir())


def test_registry_lists_every_format() -> None:
    assert set(format_names()) == {"idc", "dream", "mtt", "dd-ranking", "dsa", "kip", "yoco", "imagefolder", "hf"}


@pytest.mark.parametrize("fmt", ["idc", "dream"])
def test_idc_and_dream_data_pt_hold_unnormalised_pixels(tmp_path, stats, fmt, caplog) -> None:
    # IDC's README: "all of our data are unnormalized, so normalization is required for training"
    images, labels = images_and_labels()
    images = (images * 0.2 + 0.5).clamp(-0.02, 1.02)  # about [0, 1], straying a little as IDC's files do
    torch.save([images, labels], tmp_path / "data.pt")
    with caplog.at_level("WARNING"):
        cs = import_condensed(tmp_path / "data.pt", fmt, dataset="toy")
    assert not caplog.records
    assert torch.equal(cs.images, images) and torch.equal(cs.labels, labels)
    m = cs.meta
    assert (m.method, m.factor, m.normalized, m.num_classes, m.ipc) == (fmt, 2, False, 2, 2)
    assert m.dataset == "toy"
    assert cs.source == str(tmp_path / "data.pt")
    assert len(import_condensed(tmp_path, fmt, dataset="toy")) == 4  # a folder holding data.pt works too
    # a network sees them standardised with the dataset's statistics, exactly once
    mean, std = torch.tensor(TOY_MEAN).view(1, 3, 1, 1), torch.tensor(TOY_STD).view(1, 3, 1, 1)
    assert torch.allclose(cs.normalized_images(TOY_MEAN, TOY_STD), (images - mean) / std)


def test_import_warns_when_values_contradict_the_declared_normalisation(tmp_path, stats, caplog) -> None:
    images, labels = images_and_labels()  # standard-normal values: standardised images
    torch.save([images, labels], tmp_path / "data.pt")
    with caplog.at_level("WARNING"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy")
    text = caplog.text
    assert "data.pt" in text and "look standardised" in text and "--normalized yes" in text
    caplog.clear()
    torch.save(images.sigmoid(), tmp_path / "images_best.pt")  # [0, 1] pixels in a format read as standardised
    torch.save(labels, tmp_path / "labels_best.pt")
    with caplog.at_level("WARNING"):
        import_condensed(tmp_path / "images_best.pt", "mtt", dataset="toy")
    assert "look like unnormalised" in caplog.text and "--normalized no" in caplog.text


def test_idc_overrides_and_soft_labels(tmp_path) -> None:
    images, labels = images_and_labels(size=9)
    soft = torch.nn.functional.one_hot(labels, 3).float() * 0.8 + 0.05
    torch.save((images, soft), tmp_path / "data.pt")
    with pytest.raises(YocoError, match=r"class\(es\) \[2\] have no images"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="x", factor=3, normalized=False)
    torch.save((images, soft[:, :2]), tmp_path / "data.pt")
    cs = import_condensed(tmp_path / "data.pt", "idc", dataset="x", factor=3, normalized=False)
    assert cs.labels.tolist() == labels.tolist()
    assert (cs.meta.factor, cs.meta.normalized, cs.meta.mean, cs.meta.num_classes) == (3, False, None, 2)


def test_mtt_images_and_labels_best(tmp_path, stats) -> None:
    images, labels = images_and_labels(classes=3)
    torch.save(images.clone().requires_grad_(), tmp_path / "images_best.pt")  # MTT saves its leaf tensor
    torch.save(labels, tmp_path / "labels_best.pt")
    cs = import_condensed(tmp_path / "images_best.pt", "mtt", dataset="toy")
    assert not cs.images.requires_grad
    assert torch.equal(cs.images, images) and cs.labels.tolist() == labels.tolist()
    assert (cs.meta.method, cs.meta.factor, cs.meta.normalized, cs.meta.num_classes) == ("mtt", 1, True, 3)

    other = tmp_path / "elsewhere"
    other.mkdir()
    torch.save(images, other / "images_best.pt")
    with pytest.raises(YocoError, match="labels_best.pt: labels file not found beside images_best.pt; name it with --labels"):
        import_condensed(other / "images_best.pt", "mtt", dataset="toy")
    cs = import_condensed(
        other / "images_best.pt", "mtt", dataset="toy", labels_path=tmp_path / "labels_best.pt"
    )
    assert len(cs) == 6


def test_dsa_results_file_picks_the_experiment(tmp_path, stats) -> None:
    runs = [images_and_labels(), tuple(t.clone() for t in images_and_labels())]
    runs[1][0].mul_(-1)
    path = tmp_path / "res_DSA_CIFAR10_ConvNet_2ipc.pt"
    torch.save({"data": [list(runs[0]), runs[1]], "accs_all_exps": {"ConvNet": [0.5, 0.6]}}, path)
    first = import_condensed(path, "dsa", dataset="toy")
    second = import_condensed(path, "dsa", dataset="toy", experiment=1)
    assert torch.equal(first.images, runs[0][0]) and torch.equal(second.images, runs[1][0])
    assert second.meta.method == "dsa" and second.meta.extra["reference_method"] == "dsa"
    assert second.meta.extra["experiment"] == 1 and second.meta.normalized
    with pytest.raises(YocoError, match=r"res_DSA_CIFAR10_ConvNet_2ipc.pt: experiment 2 .* holds 2"):
        import_condensed(path, "dsa", dataset="toy", experiment=2)


def test_kip_npz_nhwc_with_shifted_one_hot(tmp_path, stats) -> None:
    images, labels = images_and_labels(classes=3)
    nhwc = images.permute(0, 2, 3, 1).numpy().astype(np.float64)
    one_hot = np.eye(3)[labels.numpy()] - 0.1
    np.savez(tmp_path / "kip.npz", images=nhwc, labels=one_hot)
    cs = import_condensed(tmp_path / "kip.npz", "kip", dataset="toy")
    torch.testing.assert_close(cs.images, images)
    assert cs.labels.tolist() == labels.tolist()
    assert (cs.meta.method, cs.meta.num_classes, cs.meta.factor, cs.meta.normalized) == ("kip", 3, 1, True)


def test_kip_other_key_names_and_nchw_grayscale(tmp_path) -> None:
    images, labels = images_and_labels(c=1)
    np.savez(tmp_path / "kip.npz", support_images=images.numpy(), support_labels=np.eye(2)[labels.numpy()])
    cs = import_condensed(tmp_path / "kip.npz", "kip", dataset="toy-gray", mean=(0.5,), std=(0.5,))
    assert torch.equal(cs.images, images) and cs.meta.mean == (0.5,)
    np.savez(tmp_path / "bad.npz", pictures=images.numpy(), targets=labels.numpy())
    with pytest.raises(YocoError, match=r"bad.npz: expected an image array named one of \['images', 'x'"):
        import_condensed(tmp_path / "bad.npz", "kip", dataset="toy", normalized=False)


def test_yoco_file_and_its_metadata(tmp_path) -> None:
    images, labels = images_and_labels()
    meta = CondensedMeta(dataset="toy", num_classes=2, method="idc", ipc=2, factor=2)
    path = save(CondensedSet(images.sigmoid(), labels, meta), tmp_path / "set.safetensors")
    cs = import_condensed(path, "yoco", dataset="toy")
    assert cs.meta == meta and torch.equal(cs.images, images.sigmoid())
    with pytest.raises(YocoError, match="set.safetensors: the file says dataset='toy'"):
        import_condensed(path, "yoco", dataset="cifar10")
    with pytest.raises(YocoError, match="factor=2 but --factor 1 was given"):
        import_condensed(path, "yoco", dataset="toy", factor=1)


def test_real_dataset_statistics_are_used_by_default(tmp_path) -> None:
    datasets = pytest.importorskip("yoco.data.datasets")
    mean, std = datasets.normalization("cifar10")
    torch.save(list(images_and_labels()), tmp_path / "data.pt")
    cs = import_condensed(tmp_path / "data.pt", "idc", dataset="cifar10", normalized=True)
    assert cs.meta.mean == tuple(mean) and cs.meta.std == tuple(std)


def test_normalised_set_of_unknown_dataset_needs_statistics(tmp_path, stats) -> None:
    torch.save(list(images_and_labels()), tmp_path / "data.pt")
    with pytest.raises(
        YocoError, match="data.pt: the images are normalised but 'mystery'.*give --mean and --std"
    ):
        import_condensed(tmp_path / "data.pt", "idc", dataset="mystery", normalized=True)
    cs = import_condensed(tmp_path / "data.pt", "idc", dataset="mystery", normalized=True, mean=TOY_MEAN,
                          std=TOY_STD)
    assert cs.meta.std == TOY_STD
    with pytest.raises(YocoError, match="both --mean and --std"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="mystery", mean=TOY_MEAN)


def write_payload(tmp_path: Path, fmt: str, marker: Path) -> Path:
    images, labels = images_and_labels()
    evil = Payload(marker)
    if fmt == "idc":
        torch.save([evil, labels], tmp_path / "data.pt")
        return tmp_path / "data.pt"
    if fmt == "mtt":
        torch.save(images, tmp_path / "images_best.pt")
        torch.save(evil, tmp_path / "labels_best.pt")
        return tmp_path / "images_best.pt"
    torch.save({"data": [(images, labels)], "extra": evil}, tmp_path / "res_DSA_x.pt")
    return tmp_path / "res_DSA_x.pt"


def test_payload_is_live_when_unpickled_unsafely(tmp_path) -> None:
    """Control for the refusal test below: the same bytes really do run code under a plain unpickler."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize(
    ("fmt", "bad_file"), [("idc", "data.pt"), ("mtt", "labels_best.pt"), ("dsa", "res_DSA_x.pt")]
)
def test_pickled_code_is_refused_and_never_runs(tmp_path, stats, fmt, bad_file) -> None:
    marker = tmp_path / "ran"
    path = write_payload(tmp_path, fmt, marker)
    with pytest.raises(YocoError, match="refusing to execute code from") as err:
        import_condensed(path, fmt, dataset="toy")
    assert bad_file in str(err.value)
    assert not marker.exists()


def test_npz_with_pickled_objects_is_refused(tmp_path) -> None:
    marker = tmp_path / "ran"
    labels = np.empty(1, dtype=object)
    labels[0] = Payload(marker)
    np.savez(tmp_path / "kip.npz", images=np.zeros((1, 4, 4, 3), np.float32), labels=labels)
    with pytest.raises(YocoError, match="refusing to execute code from .*kip.npz"):
        import_condensed(tmp_path / "kip.npz", "kip", dataset="toy", normalized=False)
    assert not marker.exists()


def test_wrong_structures_name_the_file(tmp_path, stats) -> None:
    images, labels = images_and_labels()
    torch.save({"data": [(images, labels)]}, tmp_path / "data.pt")
    with pytest.raises(YocoError, match=r"data.pt: expected a list \[images, labels\].*found dict.*'dsa'"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy")
    torch.save([images, labels], tmp_path / "res_DSA_x.pt")
    with pytest.raises(YocoError, match="res_DSA_x.pt: expected a dict with key 'data', found list"):
        import_condensed(tmp_path / "res_DSA_x.pt", "dsa", dataset="toy")
    torch.save([images, labels], tmp_path / "images_best.pt")
    torch.save(labels, tmp_path / "labels_best.pt")
    with pytest.raises(
        YocoError, match=r"images_best.pt: expected an image tensor \[N, C, H, W\], found list"
    ):
        import_condensed(tmp_path / "images_best.pt", "mtt", dataset="toy")
    torch.save([images[0], labels], tmp_path / "flat.pt")
    with pytest.raises(YocoError, match=r"flat.pt: expected images of shape \[N, C, H, W\], found Tensor"):
        import_condensed(tmp_path / "flat.pt", "idc", dataset="toy")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(YocoError, match="junk.pt: not a readable PyTorch file"):
        import_condensed(tmp_path / "junk.pt", "idc", dataset="toy")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(YocoError, match="junk.npz: expected a .npz archive"):
        import_condensed(tmp_path / "junk.npz", "kip", dataset="toy")
    with pytest.raises(YocoError, match="missing.pt: no such file"):
        import_condensed(tmp_path / "missing.pt", "idc", dataset="toy")


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        (torch.tensor([0, 0, 1]), {}, "4 images but 3 labels"),
        (torch.tensor([0, 0, 1, 5]), {"num_classes": 2}, r"labels must lie in \[0, 1\]"),
        (torch.tensor([0, 0, 1, 1]), {"num_classes": 3}, r"class\(es\) \[2\] have no images"),
        (torch.tensor([0, 0, 1, 7]), {}, "labels reach 7 but there are only 4 images"),
        (torch.tensor([0, 0, 1, 3]), {}, r"class\(es\) \[2\] have no images"),
        (torch.tensor([0.0, 0.5, 1.0, 1.0]), {}, "whole class indices"),
        (torch.tensor([0, 0, 1, 1]), {"factor": 5}, "factor 5 neither divides the image size 8x8 nor fits"),
    ],
    ids=["count", "range", "empty-class", "inferred-huge", "inferred-gap", "fractional", "factor"],
)
def test_content_errors_name_the_file(tmp_path, stats, labels, kwargs, message) -> None:
    images, _ = images_and_labels()
    torch.save([images, labels], tmp_path / "data.pt")
    with pytest.raises(YocoError, match=message) as err:
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy", **kwargs)
    assert str(tmp_path / "data.pt") in str(err.value)


def test_bad_requests(tmp_path, stats) -> None:
    torch.save(list(images_and_labels()), tmp_path / "data.pt")
    with pytest.raises(YocoError, match=r"unknown condensed-set format 'zip'; known condensed-set formats: ") as err:
        import_condensed(tmp_path / "data.pt", "zip", dataset="toy")
    # every format is named (in registration order, which follows which module a process imported first)
    assert set(str(err.value).split(": ", 1)[1].split(", ")) == set(FORMATS.names())
    with pytest.raises(YocoError, match="--experiment only applies"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy", experiment=1)
    with pytest.raises(YocoError, match=r"file \(--labels\) only applies to formats mtt, dd-ranking"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy", labels_path=tmp_path / "l.pt")


def test_detect_format_by_name_and_contents(tmp_path) -> None:
    names = {
        "images_best.pt": "mtt",
        "images.pt": "dd-ranking",
        "shard.parquet": "hf",
        "res_DM_x.pt": "dsa",
        "a.npz": "kip",
        "b.safetensors": "yoco",
    }
    for name, fmt in names.items():
        assert detect_format(tmp_path / name) == fmt
    images, labels = images_and_labels()
    torch.save({"data": [(images, labels)]}, tmp_path / "renamed.pt")
    torch.save(images, tmp_path / "renamed_images.pt")
    save(CondensedSet(images.sigmoid(), labels, CondensedMeta("toy", 2)), tmp_path / "renamed.bin")
    assert detect_format(tmp_path / "renamed.pt") == "dsa"
    with pytest.raises(YocoError, match="renamed_images.pt: could be mtt or dd-ranking .* --format mtt or --format "
                       "dd-ranking"):
        detect_format(tmp_path / "renamed_images.pt")
    with pytest.raises(YocoError, match="data.pt: could be idc or dream"):  # one layout, other score windows
        detect_format(tmp_path / "data.pt")
    assert detect_format(tmp_path / "renamed.bin") == "yoco"
    (tmp_path / "what.bin").write_bytes(b"???")
    with pytest.raises(YocoError, match="what.bin: cannot tell which format"):
        detect_format(tmp_path / "what.bin")


def two_tone_set(c: int) -> CondensedSet:
    """Class 0 is all white, class 1 all black, class 2 mid-grey, in pixel space (stored normalised)."""
    pixels = torch.cat([torch.ones(3, c, 6, 6), torch.zeros(2, c, 6, 6), torch.full((1, c, 6, 6), 0.5)])
    mean, std = (0.5,) * c, (0.25,) * c
    meta = CondensedMeta("toy", 3, method="idc", ipc=3, factor=2, normalized=True, mean=mean, std=std)
    return CondensedSet((pixels - 0.5) / 0.25, torch.tensor([0, 0, 0, 1, 1, 2]), meta, source="toy.pt")


@pytest.mark.parametrize(("channels", "mode"), [(1, "L"), (3, "RGB")])
def test_image_grid_is_a_png_with_one_row_per_class(tmp_path, channels, mode) -> None:
    cs = two_tone_set(channels)
    out = save_image_grid(cs, tmp_path / "grid.png", per_class=2)
    assert out == tmp_path / "grid.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert no_temp_files(tmp_path) and [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    with Image.open(out) as im:
        im.load()
        assert im.mode == mode
        width, height = im.size
        pix = np.asarray(im.convert("L"))
    assert 3 * 6 <= height <= 3 * 6 + 4 * 4  # three rows of 6-pixel images, a little padding
    assert 2 * 6 <= width <= 2 * 6 + 3 * 4  # two columns
    centres = [int(pix[r, width // 4]) for r in (height // 6, height // 2, 5 * height // 6)]
    assert centres[0] == 255 and centres[1] == 0 and abs(centres[2] - 128) <= 1


def test_image_grid_with_class_names_and_bad_arguments(tmp_path) -> None:
    cs = two_tone_set(3)
    plain = save_image_grid(cs, tmp_path / "plain.png", per_class=3)
    named = save_image_grid(cs, tmp_path / "named.png", per_class=3, class_names=["plane", "car", "bird"])
    with Image.open(plain) as a, Image.open(named) as b:
        assert b.size[0] > a.size[0] and b.size[1] == a.size[1]
    with pytest.raises(YocoError, match="2 class names given for 3 classes"):
        save_image_grid(cs, tmp_path / "x.png", class_names=["a", "b"])
    with pytest.raises(YocoError, match="per_class"):
        save_image_grid(cs, tmp_path / "x.png", per_class=0)
    assert not (tmp_path / "x.png").exists() and no_temp_files(tmp_path)


def test_summary_mentions_the_essentials() -> None:
    text = summarize(two_tone_set(3))
    for part in (
        "toy.pt",
        "toy (3 classes)",
        "idc",
        "factor 2",
        "6 images of 3x6x6",
        "normalised",
        "24 images (6 x 2^2)",
        "[3, 2, 1]",
        "min 0.000, max 1.000",
    ):
        assert part in text, part


# ----------------------------------------------------------------------------------------------------------
# KIP archives are checked from their .npy headers before anything is read


def npz_with(path: Path, members: dict[str, bytes], compress: bool = False) -> Path:
    """A zip of raw members (``name -> bytes``), so headers can say what the data does not hold."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def npy(array: np.ndarray, **header: object) -> bytes:
    """``array`` as .npy bytes; ``header`` entries (shape, descr) replace what its header would say."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {**np.lib.format.header_data_from_array_1_0(array), **header})
    return buf.getvalue() + np.ascontiguousarray(array).tobytes()


ONE_HOT = np.eye(2)[[0, 0, 1, 1]]


@pytest.mark.parametrize("compress", [False, True])
def test_kip_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, compress) -> None:
    images = npy(np.zeros((4, 4, 4, 3), np.float32), shape=(10**6, 3, 224, 224))
    path = npz_with(tmp_path / "kip.npz", {"images.npy": images, "labels.npy": npy(ONE_HOT)}, compress)
    with pytest.raises(YocoError, match=r"kip.npz: images.npy declares a float32 array of shape "
                                        r"\[1000000, 3, 224, 224\], 561 GiB, more than the 2 GiB allowed"):
        import_condensed(path, "kip", dataset="toy", normalized=False)


def test_kip_header_disagreeing_with_the_member_size_is_refused(tmp_path) -> None:
    images = npy(np.zeros((4, 4, 4, 3), np.float32), shape=(8, 4, 4, 3))
    path = npz_with(tmp_path / "kip.npz", {"images.npy": images, "labels.npy": npy(ONE_HOT)})
    with pytest.raises(YocoError, match="kip.npz: images.npy declares 1536 bytes of array data but its archive "
                                        "member holds 768; the archive is corrupt"):
        import_condensed(path, "kip", dataset="toy", normalized=False)


@pytest.mark.parametrize(("array", "message"), [
    (np.zeros((4, 4, 4, 3), dtype=[("r", "<f4")]), r"holds \[\('r', '<f4'\)\] values; expected an array of plain"),
    (np.zeros((4, 4, 4, 3), np.complex64), "holds complex64 values"),
    pytest.param(np.zeros((4, 4, 4, 3), np.longdouble), r"holds float\d+ values",
                 marks=pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="long double is double")),
    (np.array(["a", "b"]), "holds <U1 values"),
], ids=["structured", "complex", "longdouble", "text"])
def test_kip_arrays_of_non_numbers_are_refused(tmp_path, array, message) -> None:
    path = npz_with(tmp_path / "kip.npz", {"images.npy": npy(array), "labels.npy": npy(ONE_HOT)})
    with pytest.raises(YocoError, match=f"kip.npz: images.npy {message}"):
        import_condensed(path, "kip", dataset="toy", normalized=False)


def test_kip_big_endian_arrays_and_members_that_are_not_npy(tmp_path) -> None:
    images, labels = images_and_labels()
    big = images.permute(0, 2, 3, 1).numpy().astype(">f4")
    path = npz_with(tmp_path / "kip.npz", {"images.npy": npy(big), "labels.npy": npy(ONE_HOT.astype(">f8"))})
    cs = import_condensed(path, "kip", dataset="toy", mean=TOY_MEAN, std=TOY_STD)
    torch.testing.assert_close(cs.images, images)
    assert cs.labels.tolist() == labels.tolist()
    # a member named like an array but not a .npy is not taken for one (np.load would return its raw bytes)
    path = npz_with(tmp_path / "raw.npz", {"images": b"\x00" * 64, "labels.npy": npy(ONE_HOT)})
    with pytest.raises(YocoError, match=r"raw.npz: expected an image array named one of .* found keys \['labels'\]"):
        import_condensed(path, "kip", dataset="toy", normalized=False)


def test_kip_corrupt_archive_is_one_line_naming_the_file(tmp_path) -> None:
    images = npy(np.zeros((4, 4, 4, 3), np.float32))
    path = npz_with(tmp_path / "kip.npz", {"images.npy": images, "labels.npy": npy(ONE_HOT)}, compress=True)
    data = bytearray(path.read_bytes())
    at = data.index(b"images.npy") + 40  # inside the deflated images member
    data[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(data))
    with pytest.raises(YocoError, match=r"kip.npz: not a readable .npz archive \((error|BadZipFile|ValueError)"):
        import_condensed(path, "kip", dataset="toy", normalized=False)


def test_unexpected_reader_exceptions_become_one_line_errors(tmp_path, monkeypatch) -> None:
    from yoco.data import formats

    def broken(path, req):
        raise ValueError("some internal problem\nsecond line")

    monkeypatch.setitem(formats.FORMATS._entries, "idc", dataclasses.replace(formats.FORMATS.get("idc"), read=broken))
    torch.save(list(images_and_labels()), tmp_path / "data.pt")
    with pytest.raises(YocoError, match=r"data.pt: cannot read as format 'idc' \(ValueError: some internal problem\)$"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy")


def test_sparse_tensors_are_refused(tmp_path) -> None:
    images, labels = images_and_labels()
    torch.save([images.to_sparse(), labels], tmp_path / "data.pt")
    with pytest.raises(YocoError, match="data.pt: expected a dense image tensor, found a torch.sparse_coo one"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy", normalized=False)
    torch.save([images, labels.to_sparse()], tmp_path / "data.pt")
    with pytest.raises(YocoError, match="data.pt: expected a dense label tensor"):
        import_condensed(tmp_path / "data.pt", "idc", dataset="toy", normalized=False)


def test_check_own_messages_stay_short(tmp_path) -> None:
    images, labels = images_and_labels()
    meta = CondensedMeta(dataset="t" * 900, num_classes=2)
    path = save(CondensedSet(images.sigmoid(), labels, meta), tmp_path / "set.safetensors")
    with pytest.raises(YocoError, match="the file says dataset='tttt.*' but --dataset 'toy' was given") as err:
        import_condensed(path, "yoco", dataset="toy")
    assert len(str(err.value)) < 300


def test_soft_labels_travel_from_import_to_training_scores_and_pruning(tmp_path) -> None:
    # MTT/DATM ship label distributions: import keeps them, decode copies them to the tiles, the networks learn
    # them, the scores read them, pruning keeps them and balances by the arg-max class
    from yoco.data.condensed import decode, load
    from yoco.dynamics import DynamicsConfig, record_dynamics
    from yoco.rules import class_counts, prune
    from yoco.scoretable import build_table
    from yoco.train import TrainConfig

    g = torch.Generator().manual_seed(0)
    images = torch.rand(8, 3, 8, 8, generator=g) * 0.2 + 0.4
    logits = torch.randn(8, 2, generator=g) + 3 * torch.nn.functional.one_hot(torch.arange(8) % 2, 2)
    soft = torch.softmax(logits, 1)
    torch.save(images, tmp_path / "images_best.pt")
    torch.save(soft, tmp_path / "labels_best.pt")
    cs = import_condensed(tmp_path / "images_best.pt", "mtt", dataset="toy", normalized=False, factor=2)
    assert cs.soft is not None and torch.allclose(cs.soft, soft) and cs.labels.tolist() == soft.argmax(1).tolist()
    assert cs.meta.extra["soft_labels"] == "label distributions"
    save(cs, tmp_path / "s.safetensors")
    back = load(tmp_path / "s.safetensors")
    assert torch.equal(back.soft, cs.soft)
    dec = decode(cs)
    assert torch.equal(dec.soft, cs.soft.repeat_interleave(4, dim=0))
    torch.save(logits, tmp_path / "labels_best.pt")  # logits, as some methods store them: softmax, temperature 1
    assert torch.allclose(import_condensed(tmp_path / "images_best.pt", "mtt", dataset="toy", normalized=False).soft,
                          soft)
    cs.meta.mean, cs.meta.std = (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)
    dyn = record_dynamics(cs, DynamicsConfig(model="convnet", width=8, runs=1, train=TrainConfig(epochs=3)),
                          runtime=rt())
    assert torch.allclose(dyn.targets, dec.soft)
    table = build_table(dyn, lbpe_epochs=3, lbpe_top_k=2, el2n_epochs=2)
    pruned, record = prune(cs, table, "yoco", 1)
    assert class_counts(pruned.labels, range(len(pruned)), 2) == [4, 4]
    assert torch.allclose(pruned.soft, dec.soft[record["indices"]])


def test_the_format_registry_has_one_order_whatever_a_process_imports_first():
    """Formats are registered by the formats package alone, in its fixed order, so messages and ``--help`` list them
    the same way whether a process first imported the exports (which read the folder layouts) or the formats."""
    import subprocess

    def names(first: str) -> str:
        code = f"import {first}\nfrom yoco.data.formats import format_names\nprint(','.join(format_names()))"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    orders = {names(m) for m in ("yoco.data.exports", "yoco.data.containers", "yoco.data.formats")}
    assert orders == {",".join(format_names())}
    assert format_names()[-2:] == ["imagefolder", "hf"]
