"""Fuzzing the file readers: a corrupted file either reads or fails with one short line naming it.

Each reader starts from a small valid file written here, which hypothesis then corrupts: bytes flipped or
overwritten (often with size-like values: 0xff.., 0x7f..), the file cut short or padded with garbage, and
format-aware header edits that inflate declared sizes, change dtypes and ranks, or replace JSON metadata with
arbitrary JSON. Anything other than success or a :class:`YocoError` (a TypeError, a MemoryError, a crash)
fails the test, and so does a file that "succeeds" with contents the reader promises never to return.
Declared sizes are inflated in every binary format (format-aware where the layout is simple, by overwriting
bytes with size-like values elsewhere), so a reader that allocated what a header claims would fail here with
a MemoryError rather than pass by luck.
"""

from __future__ import annotations

import gzip
import io
import json
import pickle
import re
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from yoco.data import condensed, datasets
from yoco.data.condensed import CondensedMeta, CondensedSet
from yoco.data.formats import import_condensed
from yoco.dynamics import Dynamics, load_dynamics, save_dynamics
from yoco.errors import YocoError
from yoco.scoretable import read_scores_csv, write_scores_csv

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAFETENSORS = settings(FUZZ, max_examples=60)  # many header fields to reach: a few more examples
HUGE = (2**31 - 1, 2**32 - 1, 2**40, 2**62, 50_000_000, 10**6)

# ----------------------------------------------------------------------------------------------------------
# Byte-level corruption, shared by every format


position = st.one_of(st.integers(0, 255), st.integers(0, 1 << 24))  # headers live in the first bytes
size_like = st.sampled_from([b"\xff\xff\xff\xff", b"\xff" * 8, b"\x7f\xff\xff\xff", b"\xff\xff\xff\x7f",
                             b"\x00\x00\x00\x00", b"\x00\x00\x00\x80", b"\x01"])
byte_op = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(1, 255)),
    st.tuples(st.just("overwrite"), position, st.one_of(size_like, st.binary(min_size=1, max_size=8))),
    st.tuples(st.just("truncate"), position),
    st.tuples(st.just("append"), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), position, st.integers(1, 16)),
)
byte_ops = st.lists(byte_op, min_size=1, max_size=4)


def corrupt(data: bytes, ops: list[tuple]) -> bytes:
    """Apply byte-level corruptions (positions wrap around the current length)."""
    buf = bytearray(data)
    for op, *args in ops:
        at = args[0] % max(len(buf), 1) if op != "append" else 0
        if op == "flip" and buf:
            buf[at] ^= args[1]
        elif op == "overwrite":
            buf[at : at + len(args[1])] = args[1]
        elif op == "truncate":
            del buf[at:]
        elif op == "append":
            buf += args[0]
        elif op == "insert":
            buf[at:at] = args[1]
        elif op == "delete":
            del buf[at : at + args[1]]
    return bytes(buf)


# Values that pass a careless type check: numbers as strings, bools as ints, huge counts, huge lists.
TRICKY = ["10", "5", True, False, 0, -1, 1.5, 50_000_000, 2**70, float("nan"), float("inf"), None, [], {},
          "x" * 5000, [0.5] * 5000, ["a", "b"], [True], {"a": 1}]
json_value = st.one_of(
    st.sampled_from(TRICKY),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                  st.text(max_size=12)),
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
        max_leaves=12,
    ),
)
# How a file is damaged: a format-aware header edit alone (the likeliest to reach deep code), bytes alone, both.
mode = st.sampled_from(["edit", "edit", "edit", "bytes", "both"])


MAX_GROWTH_KB = 512 * 1024  # how much a reader may raise the process's peak memory while reading a tiny file


def peak_kb() -> int:
    """The process's peak resident memory in KB (0 where the platform cannot say)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def expect_reads_or_refuses(call: Callable[[], object], named: Path | str,
                            check: Callable[[Any], None] | None = None) -> None:
    """``call()`` returns something ``check`` accepts, or raises a one-line, short YocoError naming ``named``;
    either way without raising the process's peak memory by more than :data:`MAX_GROWTH_KB` (the files are a
    few kilobytes, so more means something allocated what a corrupt header claimed)."""
    before = peak_kb()
    try:
        result = call()
    except YocoError as exc:
        msg = str(exc)
        assert str(named) in msg, msg
        assert "\n" not in msg and len(msg) < 1000, msg
    else:
        if check is not None:
            check(result)
    assert peak_kb() - before < MAX_GROWTH_KB, f"peak memory grew by {peak_kb() - before} KB"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ----------------------------------------------------------------------------------------------------------
# safetensors files: condensed sets and dynamics


def small_set() -> CondensedSet:
    g = torch.Generator().manual_seed(0)
    meta = CondensedMeta(dataset="toy", num_classes=3, method="idc", ipc=2, factor=2, normalized=True,
                         mean=(0.5, 0.5), std=(0.25, 0.25), extra={"note": "x"})
    return CondensedSet(torch.randn(6, 2, 4, 4, generator=g), torch.arange(3).repeat_interleave(2), meta)


def small_dynamics() -> Dynamics:
    g = torch.Generator().manual_seed(0)
    lp = torch.log_softmax(torch.randn(2, 3, 5, 4, generator=g), -1)
    labels = torch.tensor([0, 1, 2, 3, 0])
    return Dynamics(lp.half(), torch.rand(2, 3, generator=g), labels, lp[:, -1].float(),
                    torch.randn(2, 5, 3, generator=g), config={"epochs": 3})


def split_safetensors(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_safetensors(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + body


SAME_SIZE_DTYPES = {"F32": ("I32", "U32", "F16"), "I64": ("F64", "I32", "F32"), "F16": ("BF16", "I16", "F32"),
                    "F64": ("I64", "F32")}


@st.composite
def safetensors_edit(draw: st.DrawFn, meta_keys: tuple[str, ...]) -> Callable[[dict], None]:
    """An edit of a safetensors header: a tensor's shape or dtype, or one metadata entry's JSON."""
    kind = draw(st.sampled_from(["shape", "rank", "rank", "dtype", "dtype", "meta", "meta-field"]))
    name_index = draw(st.integers(0, 10))
    value = draw(json_value)
    huge = draw(st.sampled_from(HUGE))
    dtype_pick = draw(st.integers(0, 2))
    key = draw(st.sampled_from(meta_keys))
    field = draw(st.sampled_from(["num_classes", "ipc", "factor", "normalized", "mean", "std", "dataset",
                                  "method", "extra", "allow_empty_classes"]))

    def edit(header: dict) -> None:
        names = sorted(k for k in header if k != "__metadata__")
        t = header[names[name_index % len(names)]]
        if kind == "shape":
            t["shape"] = [huge, *t["shape"][1:]]
        elif kind == "rank":  # same number of elements, another rank
            n = int(np.prod(t["shape"]))
            t["shape"] = [n] if len(t["shape"]) != 1 else [1, n, 1]
        elif kind == "dtype":
            options = SAME_SIZE_DTYPES.get(t["dtype"], ("F32",))
            t["dtype"] = options[dtype_pick % len(options)]
        elif kind == "meta":
            header["__metadata__"][key] = json.dumps(value)
        else:
            inner = json.loads(header["__metadata__"][key])
            if isinstance(inner, dict):
                inner[field] = value
                header["__metadata__"][key] = json.dumps(inner)

    return edit


def damage_safetensors(data: bytes, how: str, edit: Callable[[dict], None], ops: list[tuple]) -> bytes:
    if how != "bytes":
        header, body = split_safetensors(data)
        edit(header)
        data = join_safetensors(header, body)
    return corrupt(data, ops) if how != "edit" else data


def check_condensed(cs: CondensedSet) -> None:
    """What every loaded set guarantees, whatever file it came from."""
    m = cs.meta
    assert type(m.num_classes) is int and 1 <= m.num_classes <= condensed.MAX_CLASSES
    assert type(m.factor) is int and type(m.ipc) is int and type(m.normalized) is bool
    assert isinstance(m.dataset, str) and isinstance(m.method, str) and isinstance(m.extra, dict)
    assert cs.images.dim() == 4 and 0 not in cs.images.shape and torch.isfinite(cs.images).all()
    assert cs.labels.dtype == torch.int64 and 0 <= int(cs.labels.min()) and int(cs.labels.max()) < m.num_classes


@SAFETENSORS
@given(how=mode, edit=safetensors_edit(("meta",)), ops=byte_ops)
def test_condensed_load(work: Path, how: str, edit: Callable[[dict], None], ops: list[tuple]) -> None:
    path = condensed.save(small_set(), work / "set.safetensors")
    path.write_bytes(damage_safetensors(path.read_bytes(), how, edit, ops))
    expect_reads_or_refuses(lambda: condensed.load(path), path.name, check_condensed)


def check_dynamics(dyn: Dynamics) -> None:
    """What every loaded dynamics record guarantees, whatever file it came from."""
    assert isinstance(dyn.config, dict) and dyn.log_probs.dim() == 4 and dyn.log_probs.is_floating_point()
    assert not torch.isnan(dyn.log_probs).any() and not torch.isnan(dyn.final_log_probs).any()
    assert dyn.labels.dtype == torch.int64 and 0 <= int(dyn.labels.min()) and int(dyn.labels.max()) < dyn.num_classes
    assert dyn.final_log_probs.shape == (dyn.runs, dyn.num_samples, dyn.num_classes)


@SAFETENSORS
@given(how=mode, edit=safetensors_edit(("config", "yoco_dynamics")), ops=byte_ops)
def test_load_dynamics(work: Path, how: str, edit: Callable[[dict], None], ops: list[tuple]) -> None:
    path = save_dynamics(small_dynamics(), work / "dyn.safetensors")
    path.write_bytes(damage_safetensors(path.read_bytes(), how, edit, ops))
    expect_reads_or_refuses(lambda: load_dynamics(path), path.name, check_dynamics)


meta_dict = st.fixed_dictionaries({"dataset": json_value, "num_classes": json_value},
                                  optional={k: json_value for k in ("ipc", "factor", "mean", "normalized", "extra")})


@FUZZ
@given(d=st.one_of(json_value, meta_dict))
def test_condensed_metadata_from_any_json(d: object) -> None:
    """Whatever JSON the metadata holds, from_dict builds valid metadata or refuses it in one short line."""
    try:
        m = CondensedMeta.from_dict(d, source="meta.json")
    except YocoError as exc:
        assert str(exc).startswith("meta.json: ") and len(str(exc)) < 400
        return
    assert isinstance(m.num_classes, int) and 1 <= m.num_classes <= condensed.MAX_CLASSES
    assert isinstance(m.factor, int) and m.factor >= 1 and isinstance(m.normalized, bool)


# ----------------------------------------------------------------------------------------------------------
# Published formats: .pt files (idc, dream, mtt, dsa) and KIP .npz


def write_pt_format(folder: Path, fmt: str) -> tuple[Path, list[Path]]:
    """A valid file of ``fmt`` in ``folder``; returns (the path to import, the files that may be corrupted)."""
    g = torch.Generator().manual_seed(1)
    images, labels = torch.rand(4, 3, 4, 4, generator=g), torch.tensor([0, 0, 1, 1])
    folder.mkdir(parents=True, exist_ok=True)
    if fmt in ("idc", "dream"):
        torch.save([images, labels], folder / "data.pt")
        return folder / "data.pt", [folder / "data.pt"]
    if fmt == "mtt":
        torch.save(images, folder / "images_best.pt")
        torch.save(labels, folder / "labels_best.pt")
        return folder / "images_best.pt", [folder / "images_best.pt", folder / "labels_best.pt"]
    path = folder / "res_DSA_toy.pt"
    torch.save({"data": [[images, labels]], "accs_all_exps": {"ConvNet": [0.5]}}, path)
    return path, [path]


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns about odd contents before refusing them
@FUZZ
@given(fmt=st.sampled_from(["idc", "dream", "mtt", "dsa"]), ops=byte_ops, which=st.integers(0, 1))
def test_import_pt_formats(work: Path, fmt: str, ops: list[tuple], which: int) -> None:
    path, files = write_pt_format(work / fmt, fmt)
    target = files[which % len(files)]
    target.write_bytes(corrupt(target.read_bytes(), ops))
    kw = {"normalized": False, "factor": 1}
    expect_reads_or_refuses(lambda: import_condensed(path, fmt, dataset="toy", **kw), target.parent, check_condensed)


def npy_bytes(a: np.ndarray, header: dict | None = None) -> bytes:
    """A .npy file of ``a``, optionally with another header (shape, dtype) in front of the same data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header or np.lib.format.header_data_from_array_1_0(a))
    return buf.getvalue() + np.ascontiguousarray(a).tobytes()


@st.composite
def npy_header(draw: st.DrawFn) -> dict:
    shape = draw(st.sampled_from([(10**6, 3, 224, 224), (2**40,), (4, 4, 4, 3), (4, 3), (3,), (), (0, 4, 4, 3),
                                  (4, 0, 0, 3), (48, 4)]))
    descr = draw(st.sampled_from(["<f4", "<f8", "|u1", "<i8", "|b1", "<c8", "|O", "<U4", "|V8", "<f2", ">f4",
                                  [("a", "<f4")]]))
    return {"descr": descr, "fortran_order": draw(st.booleans()), "shape": shape}


@pytest.mark.filterwarnings("ignore::UserWarning")  # the format guess for the hint tries torch.load
@FUZZ
@given(ops=st.one_of(st.just([]), byte_ops), header=st.one_of(st.none(), npy_header()),
       member=st.sampled_from(["images", "labels"]), compress=st.booleans())
@example(ops=[], header={"descr": ">f4", "fortran_order": False, "shape": (4, 4, 4, 3)}, member="images",
         compress=False)  # big-endian: torch refuses such arrays unless they are converted
@example(ops=[], header={"descr": "<f4", "fortran_order": False, "shape": (10**6, 3, 224, 224)}, member="images",
         compress=True)  # 561 GiB declared: np.load would try to allocate it
def test_import_kip(work: Path, ops: list[tuple], header: dict | None, member: str, compress: bool) -> None:
    g = np.random.default_rng(0)
    arrays = {"images": g.standard_normal((4, 4, 4, 3)).astype(np.float32), "labels": np.eye(2)[[0, 0, 1, 1]]}
    path = work / "kip.npz"
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, a in arrays.items():
            zf.writestr(f"{name}.npy", npy_bytes(a, header if name == member else None))
    path.write_bytes(corrupt(path.read_bytes(), ops))
    expect_reads_or_refuses(lambda: import_condensed(path, "kip", dataset="toy", mean=(0.5,) * 3,
                                                     std=(0.5,) * 3), path.name, check_condensed)


# ----------------------------------------------------------------------------------------------------------
# Score tables (CSV)


@FUZZ
@given(ops=byte_ops, line=st.one_of(st.none(), st.tuples(st.integers(0, 6), st.text(max_size=40))))
def test_read_scores_csv(work: Path, ops: list[tuple], line: tuple[int, str] | None) -> None:
    path = write_scores_csv(work / "scores.csv", {"el2n": torch.tensor([0.5, 0.25, 1.0]),
                                                  "aum": torch.tensor([-1.0, 2.0, 0.0])},
                            torch.tensor([0, 1, 1]), {"rule": "el2n", "epochs": [1, 2]})
    data = path.read_bytes()
    if line is not None:
        lines = data.decode().splitlines(keepends=True)
        lines.insert(line[0] % (len(lines) + 1), line[1] + "\n")
        data = "".join(lines).encode()
    path.write_bytes(corrupt(data, ops))
    expect_reads_or_refuses(lambda: read_scores_csv(path), path.name)


# ----------------------------------------------------------------------------------------------------------
# Real datasets: IDX, CIFAR pickles, SVHN .mat


def idx_bytes(a: np.ndarray, dims: tuple[int, ...] | None = None) -> bytes:
    a = np.ascontiguousarray(a, dtype=np.uint8)
    dims = a.shape if dims is None else dims
    return struct.pack(">HBB", 0, 0x08, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + a.tobytes()


@FUZZ
@given(ops=st.one_of(st.just([]), byte_ops), dims=st.one_of(st.none(), st.tuples(*[st.sampled_from(
    [0, 1, 5, 28, 2**16, 2**31 - 1, 2**32 - 1])] * 3)), gz=st.booleans(), labels=st.booleans())
def test_read_idx(work: Path, ops: list[tuple], dims, gz: bool, labels: bool) -> None:
    rng = np.random.default_rng(0)
    if labels:
        data, magic = idx_bytes(np.arange(5) % 10, None if dims is None else dims[:1]), datasets.IDX_LABELS
    else:
        data, magic = idx_bytes(rng.integers(0, 256, (5, 28, 28)), dims), datasets.IDX_IMAGES
    path = work / "train-images-idx3-ubyte"
    path.write_bytes(corrupt(gzip.compress(data) if gz else data, ops))
    expect_reads_or_refuses(lambda: datasets.read_idx(path, magic), path.name, check_idx)


def check_idx(a: np.ndarray) -> None:
    assert a.dtype == np.uint8 and a.ndim in (1, 3) and a.flags.writeable


def write_cifar10(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in (*datasets.CIFAR10_FILES, "test_batch"):
        batch = {b"batch_label": b"x", b"labels": [1, 2], b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8),
                 b"filenames": [b"a.png", b"b.png"]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))


@FUZZ
@given(ops=byte_ops, which=st.sampled_from(["data_batch_1", "test_batch", "batches.meta"]))
def test_cifar_batches(work: Path, ops: list[tuple], which: str) -> None:
    folder = work / "cifar-10-batches-py"
    write_cifar10(folder)
    path = folder / which
    path.write_bytes(corrupt(path.read_bytes(), ops))
    expect_reads_or_refuses(lambda: datasets.read_cifar_pickle(path), path.name)
    expect_reads_or_refuses(lambda: datasets.load_dataset("cifar10", root=folder), folder)


def mat_bytes(compress: bool) -> bytes:
    import scipy.io

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"X": rng.integers(0, 256, (32, 32, 3, 3), dtype=np.uint8),
                           "y": np.array([[1.0], [10.0], [4.0]])}, do_compression=compress)
    return buf.getvalue()


def check_svhn(split: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = split
    assert x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3 and y.dtype == torch.int64
    assert len(y) == len(x) and (len(y) == 0 or 0 <= int(y.min()) <= int(y.max()) <= 9)


@FUZZ
@given(ops=st.one_of(st.just([]), byte_ops), compress=st.booleans(),
       n=st.one_of(st.none(), st.sampled_from([0, 2, 4, 2**20, 2**31 - 1, -1])))
def test_read_svhn_mat(work: Path, ops: list[tuple], compress: bool, n: int | None) -> None:
    data = mat_bytes(compress)
    if n is not None and not compress:  # the image count in X's dimensions array
        data = data.replace(struct.pack("<4i", 32, 32, 3, 3), struct.pack("<4i", 32, 32, 3, n), 1)
    path = work / "train_32x32.mat"
    path.write_bytes(corrupt(data, ops))
    expect_reads_or_refuses(lambda: datasets.read_svhn_mat(path), path.name, check_svhn)


@pytest.mark.parametrize("text", [
    "# config: " + "[" * 100_000 + "\nindex,label,a\n0,0,1\n",
    "# config: " + "1" * 5000 + "\nindex,label,a\n0,0,1\n",
    "index,label,a\n0,0," + "1" * 200_000 + "\n",
], ids=["nested-config", "huge-int-config", "huge-field"])
def test_read_scores_csv_pathological_inputs_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(text)
    expect_reads_or_refuses(lambda: read_scores_csv(path), path.name)


def test_mutations_really_change_the_files() -> None:
    """Guard against a fuzzer that only ever sees valid files."""
    data = bytes(range(64))
    assert corrupt(data, [("flip", 3, 1)]) != data
    assert corrupt(data, [("truncate", 10)]) == data[:10]
    assert corrupt(data, [("overwrite", 0, b"\xff" * 4)])[:4] == b"\xff" * 4
    assert re.fullmatch(rb"[\x00-\x3f]+garbage", corrupt(data, [("append", b"garbage")]))
