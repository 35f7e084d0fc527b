"""The condensed-set type: multi-formation decoding, validation, and the safe, atomic file format."""

from __future__ import annotations

import dataclasses
import re

import pytest
import safetensors.torch
import torch
from safetensors.torch import save_file

from yoco.data.condensed import CondensedMeta, CondensedSet, decode, decode_images, load, save
from yoco.errors import YocoError


def make_set(
    n_per_class: int = 2,
    classes: int = 3,
    c: int = 3,
    size: int = 8,
    factor: int = 1,
    seed: int = 0,
    **meta: object,
) -> CondensedSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n_per_class * classes, c, size, size, generator=g)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    m = CondensedMeta(dataset="toy", num_classes=classes, ipc=n_per_class, factor=factor, **meta)
    return CondensedSet(images, labels, m)


def tiled(values: list[float], factor: int, tile: int = 4) -> torch.Tensor:
    """One stored 1-channel image whose tile ``t`` (row by row) is the constant ``values[t]``."""
    img = torch.zeros(1, 1, factor * tile, factor * tile)
    for t, v in enumerate(values):
        r, c = divmod(t, factor)
        img[0, 0, r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = v
    return img


@pytest.mark.parametrize("factor", [2, 3])
def test_decode_shapes_and_labels(factor: int) -> None:
    cs = make_set(n_per_class=2, classes=3, size=12, factor=factor)
    out = decode(cs)
    f2 = factor * factor
    assert out.images.shape == (6 * f2, 3, 12, 12)
    assert out.labels.tolist() == cs.labels.repeat_interleave(f2).tolist()
    assert out.meta.factor == 1
    assert out.meta.extra["decoded_from_factor"] == factor
    assert out.class_counts() == [2 * f2] * 3


@pytest.mark.parametrize("factor", [2, 3])
def test_decode_places_tiles_row_by_row(factor: int) -> None:
    f2 = factor * factor
    first = tiled([(t + 1) / 10 for t in range(f2)], factor)
    second = tiled([(t + 1) / 100 for t in range(f2)], factor)
    cs = CondensedSet(
        torch.cat([first, second]),
        torch.tensor([0, 1]),
        CondensedMeta(dataset="toy", num_classes=2, factor=factor),
    )
    out = decode(cs)
    for t in range(f2):
        torch.testing.assert_close(out.images[t], torch.full_like(out.images[t], (t + 1) / 10))
        torch.testing.assert_close(out.images[f2 + t], torch.full_like(out.images[t], (t + 1) / 100))
    assert out.labels.tolist() == [0] * f2 + [1] * f2


def test_decode_is_deterministic_and_factor_one_is_identity() -> None:
    cs = make_set(size=8, factor=2)
    a, b = decode(cs), decode(cs)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    plain = make_set(factor=1)
    assert decode(plain) is plain


def test_decode_images_is_differentiable() -> None:
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    decode_images(x, 2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_pixels_undo_normalisation() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    cs = make_set(normalized=True, mean=mean, std=std)
    expected = cs.images * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    torch.testing.assert_close(cs.pixels(), expected)
    assert cs.normalized_images(mean, std) is cs.images


def test_save_load_round_trip_is_bit_exact(tmp_path) -> None:
    cs = make_set(
        factor=2,
        method="idc",
        normalized=True,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        extra={"note": "x", "steps": [1, 2]},
    )
    path = save(cs, tmp_path / "set.safetensors")
    back = load(path)
    assert torch.equal(back.images, cs.images) and back.images.dtype == torch.float32
    assert torch.equal(back.labels, cs.labels) and back.labels.dtype == torch.int64
    assert back.meta == cs.meta
    assert back.source == str(path)


def test_load_missing_or_garbage_file_names_it(tmp_path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(YocoError, match="nope.safetensors"):
        load(missing)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 definitely not safetensors" * 3)
    with pytest.raises(YocoError, match="garbage.safetensors"):
        load(garbage)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"weights": torch.zeros(2)}, str(foreign))
    with pytest.raises(YocoError, match="foreign.safetensors.*not a yoco"):
        load(foreign)


@pytest.mark.parametrize(
    ("shape", "labels", "classes", "factor", "message"),
    [
        ((4, 8, 8), [0, 0, 1, 1], 2, 1, r"\[N, C, H, W\]"),
        ((4, 1, 8, 8), [0, 0, 1], 2, 1, "4 images but 3 labels"),
        ((4, 1, 8, 8), [0, 0, 1, 2], 2, 1, r"labels must lie in \[0, 1\]"),
        ((4, 1, 8, 8), [0, 0, 1, -1], 2, 1, "labels must lie"),
        ((4, 1, 8, 8), [0, 0, 2, 2], 3, 1, r"class\(es\) \[1\] have no images"),
        ((4, 1, 9, 10), [0, 0, 1, 1], 2, 2, "factor 2 neither divides the image size 9x10 nor fits IDC's padding"),
        ((0, 1, 8, 8), [], 2, 1, "no images"),
    ],
    ids=["not-4d", "count-mismatch", "label-too-big", "label-negative", "empty-class", "factor", "empty"],
)
def test_validation_errors_name_the_source(shape, labels, classes, factor, message) -> None:
    meta = CondensedMeta(dataset="toy", num_classes=classes, factor=factor)
    with pytest.raises(YocoError, match=message) as err:
        CondensedSet(torch.rand(shape), torch.tensor(labels, dtype=torch.int64), meta, source="some/file.pt")
    assert "some/file.pt" in str(err.value)


@pytest.mark.parametrize(
    ("labels", "message"),
    [(torch.tensor([0.0, 0.5, 1.0, 1.0]), "whole class indices"),
     (torch.eye(2).repeat(2, 1), r"class indices \[N\], got shape \[4, 2\]")],
    ids=["fractional", "one-hot"],
)
def test_soft_labels_are_refused_not_truncated(labels, message) -> None:
    meta = CondensedMeta(dataset="toy", num_classes=2)
    with pytest.raises(YocoError, match=f"some/file.pt: labels must be {message}"):
        CondensedSet(torch.rand(4, 1, 8, 8), labels, meta, source="some/file.pt")


def test_whole_float_labels_are_accepted() -> None:
    meta = CondensedMeta(dataset="toy", num_classes=2)
    cs = CondensedSet(torch.rand(4, 1, 8, 8), torch.tensor([0.0, 1.0, 1.0, 0.0]), meta)
    assert cs.labels.tolist() == [0, 1, 1, 0] and cs.labels.dtype == torch.int64


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_images_are_refused(bad: float) -> None:
    images = torch.rand(2, 1, 4, 4)
    images[1, 0, 2, 3] = bad
    meta = CondensedMeta(dataset="toy", num_classes=1)
    with pytest.raises(YocoError, match="some/file.pt: images contain NaN or infinite"):
        CondensedSet(images, torch.zeros(2), meta, source="some/file.pt")


def test_metadata_channels_must_match() -> None:
    meta = CondensedMeta(dataset="toy", num_classes=1, normalized=True, mean=(0.5,), std=(0.2,))
    with pytest.raises(YocoError, match="mean has 1 values for 3 channels"):
        CondensedSet(torch.rand(2, 3, 4, 4), torch.zeros(2), meta, source="s")


def test_failed_save_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch) -> None:
    path = tmp_path / "set.safetensors"
    old = make_set(seed=1)
    save(old, path)
    before = path.read_bytes()

    def half_write(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(OSError, match="disk full"):
        save(make_set(seed=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["set.safetensors"]
    assert torch.equal(load(path).images, old.images)


def test_meta_dict_round_trip_ignores_unknown_keys() -> None:
    meta = CondensedMeta(dataset="toy", num_classes=2, mean=(0.1,), std=(0.2,))
    d = {**meta.to_dict(), "from_the_future": 1}
    assert CondensedMeta.from_dict(d) == meta
    assert dataclasses.asdict(CondensedMeta.from_dict(d))["mean"] == (0.1,)


@pytest.mark.parametrize(("values", "normalized", "match"), [
    (255.0, False, r"reach \[0, 255\].*0-255 pixels\? divide by 255"),
    (3e38, False, "far outside the expected"),
    (-3e4, True, "standardised images reach"),
])
def test_out_of_range_pixels_are_refused_with_what_was_found(values, normalized, match) -> None:
    images = torch.rand(2, 1, 4, 4)
    images[0, 0, 0, 0] = values
    images[1, 0, 0, 0] = 0.0
    meta = CondensedMeta(dataset="toy", num_classes=2, normalized=normalized,
                         mean=(0.5,) if normalized else None, std=(0.2,) if normalized else None)
    with pytest.raises(YocoError, match=match):
        CondensedSet(images, torch.tensor([0, 1]), meta, source="odd.safetensors")


def test_pixels_straying_a_little_outside_unit_range_are_accepted() -> None:
    # IDC's saved data.pt is not clamped after the last update
    images = torch.rand(2, 1, 4, 4) * 1.1 - 0.05
    CondensedSet(images, torch.tensor([0, 1]), CondensedMeta(dataset="toy", num_classes=2))


# ----------------------------------------------------------------------------------------------------------
# Untrusted metadata: every field type-checked and bounded, every refusal one short line naming the file


def write_with_meta(path, meta: object, images: torch.Tensor | None = None) -> None:
    """A condensed-set file whose header carries ``meta`` (any JSON value) as its metadata."""
    import json

    images = torch.rand(4, 1, 4, 4) if images is None else images
    labels = torch.tensor([0, 0, 1, 1])
    save_file({"images": images, "labels": labels}, str(path),
              metadata={"yoco_format": "1", "meta": meta if isinstance(meta, str) else json.dumps(meta)})


GOOD_META = {"dataset": "toy", "num_classes": 2, "method": "idc", "ipc": 2, "factor": 1, "normalized": False,
             "mean": None, "std": None, "extra": {}}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_classes": "10"}, "num_classes must be an integer in 1..100000, got a string '10'"),
        ({"num_classes": True}, "num_classes must be an integer in 1..100000, got a boolean True"),
        ({"num_classes": 50_000_000}, "num_classes must be an integer in 1..100000, got an integer 50000000"),
        ({"num_classes": 0}, "num_classes must be an integer in 1..100000"),
        ({"num_classes": 2.0}, "num_classes must be an integer"),
        ({"ipc": "5"}, "ipc must be an integer in 0..1000000000, got a string '5'"),
        ({"ipc": -1}, "ipc must be an integer in 0"),
        ({"factor": 0}, "factor must be an integer in 1..1000000000, got an integer 0"),
        ({"factor": "2"}, "factor must be an integer"),
        ({"normalized": "yes"}, "normalized must be true or false, got a string 'yes'"),
        ({"normalized": 1}, "normalized must be true or false"),
        ({"allow_empty_classes": "no"}, "allow_empty_classes must be true or false"),
        ({"mean": "0.5"}, "mean must be null or a list of 1..4096 finite numbers"),
        ({"mean": ["0.5"]}, "mean must be null or a list"),
        ({"std": [True]}, "std must be null or a list"),
        ({"std": []}, "std must be null or a list"),
        ({"dataset": 10}, "dataset must be a string of at most 1000 characters, got an integer 10"),
        ({"method": None}, "method must be a string"),
        ({"extra": [1, 2]}, "extra must be a JSON object, got a list"),
    ],
)
def test_ill_typed_metadata_is_refused_naming_the_file(tmp_path, changes, message) -> None:
    path = tmp_path / "set.safetensors"
    write_with_meta(path, {**GOOD_META, **changes})
    with pytest.raises(YocoError, match=f"^{re.escape(str(path))}: metadata {re.escape(message)}"):
        load(path)


def test_well_typed_metadata_still_loads(tmp_path) -> None:
    path = tmp_path / "set.safetensors"
    write_with_meta(path, {**GOOD_META, "mean": [0, 0.5], "std": [1, 2], "from_the_future": {"x": 1}},
                    images=torch.rand(4, 2, 4, 4))
    cs = load(path)
    assert cs.meta.mean == (0.0, 0.5) and cs.meta.std == (1.0, 2.0) and cs.meta.method == "idc"
    assert type(cs.meta.num_classes) is int and cs.meta.extra == {}


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("[1, 2]", "metadata must be a JSON object, found a list"),
        ('"toy"', "metadata must be a JSON object, found a string"),
        ("null", "metadata must be a JSON object, found null"),
        ("{not json", "metadata is not valid JSON"),
        ("[" * 100_000, "metadata is not valid JSON"),
        ('{"dataset": "toy", "num_classes": ' + "9" * 5000 + "}", "metadata is not valid JSON"),
        ('{"dataset": "toy"}', "metadata has no 'num_classes'"),
        ('{"num_classes": 2}', "metadata has no 'dataset'"),
        ('{"dataset": "toy", "num_classes": 2, "mean": [NaN], "std": [1]}', "metadata mean must be null or a list"),
    ],
    ids=["list", "string", "null", "syntax", "nesting", "digits", "no-classes", "no-dataset", "nan"],
)
def test_metadata_that_is_not_an_object_or_not_json(tmp_path, meta, message) -> None:
    path = tmp_path / "set.safetensors"
    write_with_meta(path, meta)
    with pytest.raises(YocoError, match=f"^{re.escape(str(path))}: {re.escape(message)}") as err:
        load(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_huge_class_counts_and_lists_keep_messages_short(tmp_path) -> None:
    path = tmp_path / "set.safetensors"
    write_with_meta(path, {**GOOD_META, "num_classes": 50_000_000, "mean": ["x"] * 100_000})
    with pytest.raises(YocoError, match="num_classes") as err:
        load(path)
    assert len(str(err.value)) < 300
    write_with_meta(path, {**GOOD_META, "mean": ["x"] * 100_000})
    with pytest.raises(YocoError, match="a list of 100000 items") as err:
        load(path)
    assert len(str(err.value)) < 300
    # a legal class count with almost every class empty names a few, not all of them
    write_with_meta(path, {**GOOD_META, "num_classes": 100_000})
    with pytest.raises(YocoError, match=r"class\(es\) \[2, 3, 4, .*, 11, \.\.\. \(99998 in all\)\] have no") as err:
        load(path)
    assert len(str(err.value)) < 300


def test_class_count_bound_holds_in_memory_too() -> None:
    meta = CondensedMeta(dataset="toy", num_classes=50_000_000, allow_empty_classes=True)
    with pytest.raises(YocoError, match=r"num_classes must lie in 1\.\.100000, got 50000000"):
        CondensedSet(torch.rand(2, 1, 4, 4), torch.tensor([0, 1]), meta, source="s")


@pytest.mark.parametrize(
    ("shape", "message"),
    [((4, 0, 4, 4), r"images have no channels \(shape \[4, 0, 4, 4\]"),
     ((4, 1, 0, 4), r"images are empty, 0x4 pixels"),
     ((4, 3, 4, 0), r"images are empty, 4x0 pixels")],
    ids=["no-channels", "no-rows", "no-columns"],
)
def test_empty_image_axes_are_refused(tmp_path, shape, message) -> None:
    path = tmp_path / "set.safetensors"
    write_with_meta(path, GOOD_META, images=torch.zeros(shape))
    with pytest.raises(YocoError, match=f"^{re.escape(str(path))}: {message}"):
        load(path)
    meta = CondensedMeta(dataset="toy", num_classes=2)
    with pytest.raises(YocoError, match=f"^some/file: {message}"):
        CondensedSet(torch.zeros(shape), torch.tensor([0, 0, 1, 1]), meta, source="some/file")


def test_non_finite_statistics_are_refused_in_memory() -> None:
    meta = CondensedMeta(dataset="toy", num_classes=1, normalized=True, mean=(float("nan"),), std=(0.5,))
    with pytest.raises(YocoError, match="s: metadata mean holds NaN or infinite values"):
        CondensedSet(torch.rand(2, 1, 4, 4), torch.zeros(2), meta, source="s")
    meta = CondensedMeta(dataset="toy", num_classes=1, normalized=True, mean=(0.5, 0.5), std=(0.5, -1.0))
    with pytest.raises(YocoError, match="s: metadata std must be positive, got -1 for channel 1"):
        CondensedSet(torch.rand(2, 2, 4, 4), torch.zeros(2), meta, source="s")
