"""Issue 34: never overwrite what a command reads, never reuse results computed from other data, never let a small
file take the machine down. One test per case of the issue (its number in the name's comment); each fails on the
code before the fix. The adversarial suite that drives the CLI in subprocesses is ``test_adversarial.py``."""

from __future__ import annotations

import errno
import json
import warnings
from pathlib import Path

import pytest
import torch
from helpers import rt, tiny_real, write_mnist_like

from yoco import cli
from yoco.data.condensed import CondensedMeta, CondensedSet, load, save
from yoco.errors import YocoError

QUICK = ["--epochs", "2", "--width", "8", "--device", "cpu", "--quiet"]
FAST_LADDER = ["--ipcs", "1", "--rules", "random_balance", "--repeat", "1", "--epochs", "2", "--width", "8",
               "--dynamics-epochs", "2", "--dynamics-runs", "1", "--device", "cpu", "--quiet"]


def tiny_set(real, dataset: str = "mnist", shift: float = 0.0) -> CondensedSet:
    idx = torch.cat([torch.nonzero(real.train_labels == c).flatten()[:4] for c in range(10)])
    images = (real.train_images[idx].float() / 255 + shift).clamp(0, 1)
    return CondensedSet(images, real.train_labels[idx], CondensedMeta(dataset, 10, method="real", ipc=4, factor=1),
                        source="set")


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    real = tiny_real(n_per_class=8, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    save(tiny_set(real), tmp_path / "set.safetensors")
    return {"tmp": tmp_path, "root": tmp_path / "data", "set": tmp_path / "set.safetensors", "real": real}


def run(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def one_error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a failed command printed (INFO logs aside), checked to be an error without a traceback."""
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not line.startswith("INFO ")]
    assert len(err) == 1 and err[0].startswith("yoco: error: "), err
    return err[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------------------
# Data loss


@pytest.mark.parametrize("argv", [
    ["sample", "--dataset", "mnist", "--data-root", "{root}", "--ipc", "1", "--out", "{root}/train-labels-idx1-ubyte.gz"],
    ["evaluate", "{set}", "--dataset", "mnist", "--data-root", "{root}", *QUICK, "--out",
     "{root}/t10k-labels-idx1-ubyte.gz"],
    ["condense", "--dataset", "mnist", "--data-root", "{root}", "--ipc", "1", "--preset", "cpu-quick",
     "--out", "{root}/t10k-images-idx3-ubyte.gz"],
    # a new file the loader would read in place of the .gz one is the dataset's too
    ["sample", "--dataset", "mnist", "--data-root", "{root}", "--ipc", "1", "--out", "{root}/train-images-idx3-ubyte"],
])
def test_1_the_dataset_files_a_command_reads_are_never_its_output(world, capsys, argv):
    before = snapshot(world["tmp"])
    assert run(*[a.format(root=world["root"], set=world["set"]) for a in argv]) == 2
    assert "refusing to overwrite it" in one_error(capsys)
    assert snapshot(world["tmp"]) == before


def test_2_and_4_config_files_are_inputs_and_their_copies_outputs(world, capsys):
    t = world["tmp"]
    config = t / "self.toml"
    config.write_text(f'dataset = "mnist"\ndata-root = "{world["root"]}"\nrepeat = 1\n')
    before = snapshot(t)
    assert run("evaluate", world["set"], "--config", config, *QUICK, "--out", config) == 2  # 2: the config itself
    assert "self.toml: output is the input" in one_error(capsys)
    # 4: the copy OUT.config.toml would replace an input of that name (here the set itself)
    (t / "r.json.config.toml").write_bytes(world["set"].read_bytes())
    before = snapshot(t)
    assert run("evaluate", t / "r.json.config.toml", "--config", config, *QUICK, "--out", t / "r.json") == 2
    assert "r.json.config.toml: output is the input" in one_error(capsys)
    assert snapshot(t) == before
    # the copy is the config as read when the command started, and a rerun from a kept copy does not copy it twice
    assert run("evaluate", world["set"], "--config", config, *QUICK, "--out", t / "e.json") == 0
    assert (t / "e.json.config.toml").read_text() == config.read_text()
    assert run("evaluate", world["set"], "--config", t / "e.json.config.toml", *QUICK, "--out", t / "e.json") == 0
    assert (t / "e.json.config.toml").read_text() == config.read_text()


def test_3_a_ladder_writes_only_into_an_empty_folder_or_one_of_its_own(world, capsys):
    t = world["tmp"]
    mine = t / "mine"
    mine.mkdir()
    (mine / "results.csv").write_text("my own results\n")
    (mine / "results.md").write_text("# my notes\n")
    for force in ([], ["--force"]):
        assert run("ladder", world["set"], "--dataset", "mnist", "--data-root", world["root"], *FAST_LADDER, *force,
                   "--out", mine) == 2
        assert "holds files that are not a ladder's (results.csv, results.md)" in one_error(capsys)
    assert snapshot(mine) == {"results.csv": b"my own results\n", "results.md": b"# my notes\n"}
    (t / "afile").write_text("x")
    assert run("ladder", world["set"], "--dataset", "mnist", "--data-root", world["root"], *FAST_LADDER,
               "--out", t / "afile") == 2
    assert "afile: exists and is not a folder" in one_error(capsys)


def test_5_an_export_on_a_full_disk_leaves_no_folder_and_can_be_retried(world, capsys, monkeypatch):
    from PIL import Image

    real_save, written = Image.Image.save, []

    def save_until_full(self, fp, *a, **k):
        if len(written) == 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(fp)
        return real_save(self, fp, *a, **k)

    monkeypatch.setattr(Image.Image, "save", save_until_full)
    out = world["tmp"] / "exported"
    assert run("export", world["set"], "--out", out) == 2
    line = one_error(capsys)
    assert "No space left on device" in line and str(out) in line
    assert not out.exists() and not [p for p in world["tmp"].iterdir() if p.name.startswith(".exported")]
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert run("export", world["set"], "--out", out) == 0
    assert len(list(out.rglob("*.png"))) == 40


# ----------------------------------------------------------------------------------------------------------
# Silently wrong results


def test_6_ladder_cells_are_keyed_by_the_test_set_they_were_computed_on(world, capsys):
    t, real = world["tmp"], world["real"]
    shifted = tiny_real(n_per_class=8, num_classes=10, size=16)
    shifted.test_labels = (shifted.test_labels + 1) % 10  # the same files but another test set
    write_mnist_like(t / "other", shifted)
    out = t / "lad"
    assert run("ladder", world["set"], "--dataset", "mnist", "--data-root", world["root"], *FAST_LADDER,
               "--out", out) == 0
    first = json.loads((out / "results.json").read_text())
    assert run("ladder", world["set"], "--dataset", "mnist", "--data-root", t / "other", *FAST_LADDER,
               "--out", out) == 0
    second = json.loads((out / "results.json").read_text())
    capsys.readouterr()
    assert first["config"]["test_sha256"] == real.digest("test") != second["config"]["test_sha256"]
    assert second["config"]["test_sha256"] == shifted.digest("test")
    cells = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    assert len(cells) == 4  # two cells per test set: none reused from the other
    assert sorted(c["test_sha256"] for c in cells) == sorted([real.digest("test")] * 2 + [shifted.digest("test")] * 2)


def test_7_a_score_table_of_another_set_is_refused_even_with_the_same_labels(world, capsys):
    t = world["tmp"]
    other = tiny_set(world["real"], shift=0.1)  # same N, same label order, other images
    save(other, t / "other.safetensors")
    assert run("dynamics", t / "other.safetensors", "--epochs", "2", "--runs", "1", "--width", "8", "--device", "cpu",
               "--quiet", "--out", t / "dyn.safetensors") == 0
    assert run("score", t / "dyn.safetensors", "--lbpe-epochs", "2", "--lbpe-top-k", "1", "--el2n-epochs", "1",
               "--out", t / "sc.safetensors", "--csv", t / "sc.csv") == 0
    capsys.readouterr()
    for table in ("sc.safetensors", "sc.csv"):
        assert run("prune", world["set"], "--scores", t / table, "--rule", "yoco", "--ipc", "1",
                   "--out", t / "p.safetensors") == 2
        assert "the scores were computed for another set" in one_error(capsys)
        assert not (t / "p.safetensors").exists()
    assert run("prune", t / "other.safetensors", "--scores", t / "sc.csv", "--rule", "yoco", "--ipc", "1",
               "--out", t / "p.safetensors") == 0


def test_8_image_folder_class_names_written_by_export_map_back_to_the_dataset(tmp_path, monkeypatch):
    from yoco.data import containers
    from yoco.data.containers import export_imagefolder
    from yoco.data.datasets import FASHION_MNIST_CLASSES
    from yoco.data.formats import import_condensed

    monkeypatch.setattr(containers, "_dataset_classes", lambda name: list(FASHION_MNIST_CLASSES))
    x = torch.rand(10, 1, 8, 8)
    cs = CondensedSet(x, torch.arange(10), CondensedMeta("fashion-mnist", 10, method="real", ipc=1))
    export_imagefolder(cs, tmp_path / "out", list(FASHION_MNIST_CLASSES))
    (tmp_path / "out" / "condensed.json").unlink()  # as another tool would copy the folder
    back = import_condensed(tmp_path / "out", "imagefolder", dataset="fashion-mnist")
    assert back.labels.tolist() == list(range(10))  # T-shirt_top is T-shirt/top, Ankle_boot is Ankle boot
    (tmp_path / "out" / "Sandal").rename(tmp_path / "out" / "Sandals")  # nearly the dataset's: refused, not resorted
    with pytest.raises(YocoError, match=r"class folders \['Sandals'\] are not among the dataset's classes"):
        import_condensed(tmp_path / "out", "imagefolder", dataset="fashion-mnist")


def test_9_evaluate_refuses_a_set_of_another_dataset(world, capsys):
    assert run("evaluate", world["set"], "--dataset", "fashion-mnist", "--data-root", world["root"], *QUICK,
               "--out", world["tmp"] / "e.json") == 2
    assert "the set was made from 'mnist' but the test set is 'fashion-mnist'" in one_error(capsys)
    assert not (world["tmp"] / "e.json").exists()


def test_10_a_target_ipc_given_twice_is_refused(world, capsys):
    from yoco.ladder import LadderConfig

    with pytest.raises(SystemExit) as stop:
        run("ladder", world["set"], "--dataset", "mnist", "--ipcs", "1,1", "--out", world["tmp"] / "l")
    assert stop.value.code == 2 and "target IPC 1 is given twice" in capsys.readouterr().err
    with pytest.raises(YocoError, match="listed twice"):
        LadderConfig(dataset="mnist", ipcs=(1, 1))


def test_11_an_absurd_mtt_learning_rate_is_refused_showing_its_value(tmp_path):
    from yoco.data.formats import import_condensed

    torch.save(torch.rand(4, 1, 8, 8), tmp_path / "images_best.pt")
    torch.save(torch.arange(4), tmp_path / "labels_best.pt")
    torch.save(torch.tensor(1e10), tmp_path / "lr_best.pt")
    with pytest.raises(YocoError, match=r"lr_best.pt: learning rate 1e\+10 is outside \(0, 1\]"):
        import_condensed(tmp_path / "images_best.pt", "mtt", dataset="mnist", mean=(0.5,), std=(0.5,))
    torch.save(torch.tensor(0.01), tmp_path / "lr_best.pt")
    cs = import_condensed(tmp_path / "images_best.pt", "mtt", dataset="mnist", mean=(0.5,), std=(0.5,))
    assert cs.meta.extra["recipe"]["lr"] == pytest.approx(0.01)


# ----------------------------------------------------------------------------------------------------------
# Resource exhaustion and tracebacks


def test_12_a_pt_of_expanded_views_is_refused_before_anything_is_materialised(tmp_path):
    import resource

    from yoco.data.formats import import_condensed

    torch.save([torch.zeros(1, 1, 1, 1).expand(10**7, 1, 32, 32), torch.zeros(1, dtype=torch.long).expand(10**7)],
               tmp_path / "bomb.pt")
    assert (tmp_path / "bomb.pt").stat().st_size < 4096
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(YocoError, match=r"bomb.pt: its tensors would take 38.\d GiB once read"):
        import_condensed(tmp_path / "bomb.pt", "idc", dataset="mnist", factor=1)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 200_000  # KiB: nothing of 40 GB was made


def test_13_and_15_numeric_options_have_upper_bounds_that_name_the_limit(world, capsys):
    cases = [
        ["ladder", "{set}", "--dataset", "mnist", "--random-subsets", "99999999999", "--out", "{tmp}/l"],
        ["evaluate", "{set}", "--dataset", "mnist", "--epochs", "99999999999999999999999"],
        ["evaluate", "{set}", "--dataset", "mnist", "--width", "100000"],
        ["evaluate", "{set}", "--dataset", "mnist", "--repeat", "99999999999999999999999"],
        ["evaluate", "{set}", "--dataset", "mnist", "--seed", "99999999999999999999999"],
        ["sample", "--dataset", "mnist", "--resolution", "1000000", "--ipc", "1", "--out", "{tmp}/s"],
    ]
    for argv in cases:
        with pytest.raises(SystemExit) as stop:
            run(*[a.format(set=world["set"], tmp=world["tmp"]) for a in argv])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and "must be at most" in err and "yoco's limit" in err, argv


def test_13_a_ladder_plan_is_bounded_before_anything_is_written(world, monkeypatch):
    from yoco.ladder import LadderConfig, run
    from yoco.ladder.cells import _dataset

    with pytest.raises(YocoError, match="random_subsets must be at most 100"):
        LadderConfig(dataset="mnist", random_subsets=101)
    monkeypatch.setattr(run, "MAX_PRUNED_SETS", 3)
    cfg = LadderConfig(dataset="mnist", ipcs=(1, 2), rules=("random_balance",), random_subsets=2)
    cs = load(world["set"])
    _dataset.cache_clear()
    with pytest.raises(YocoError, match="would write 12 pruned sets, more than the 3"):
        run.run_ladder(cs, cfg, world["tmp"] / "l", data_root=str(world["root"]), runtime=rt())
    assert not (world["tmp"] / "l" / "pruned").exists() and not (world["tmp"] / "l" / "ladder.json").exists()


def test_15_a_resolution_beyond_the_memory_ceiling_is_refused_before_allocating(world, monkeypatch):
    from yoco.data import datasets

    monkeypatch.setattr(datasets.base, "MAX_DATASET_BYTES", 1 << 20)
    with pytest.raises(YocoError, match=r"need .* GiB, more than the .* GiB yoco allows for a dataset"):
        datasets.load_dataset("mnist", root=world["root"], resolution=100)


def test_14_a_full_disk_in_the_safetensors_writer_is_one_line_naming_the_file(world, capsys, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
                              'space left on device" })')

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    out = world["tmp"] / "s.safetensors"
    assert run("sample", "--dataset", "mnist", "--data-root", world["root"], "--ipc", "1", "--out", out) == 2
    line = one_error(capsys)
    assert line.startswith(f"yoco: error: {out}: No space left on device") and "nothing half-written" in line
    assert not out.exists() and not list(world["tmp"].glob(".s.safetensors.*"))


def test_16_a_score_table_header_nested_too_deep_is_one_line(world, capsys):
    from safetensors.torch import save_file

    t = world["tmp"]
    save_file({"labels": torch.zeros(40, dtype=torch.long), "score.lbpe": torch.zeros(40, dtype=torch.float64)},
              str(t / "deep.safetensors"), metadata={"yoco_scores": "1", "config": "[" * 100_000 + "]" * 100_000})
    assert run("prune", world["set"], "--scores", t / "deep.safetensors", "--rule", "yoco", "--ipc", "1",
               "--out", t / "p.safetensors") == 2
    assert "deep.safetensors: score table header is damaged" in one_error(capsys)


def test_17_a_config_file_that_is_not_utf8_or_repeats_a_key_is_one_line(world, capsys):
    t = world["tmp"]
    (t / "latin.toml").write_bytes('dataset = "caf\xe9"\n'.encode("latin-1"))
    assert run("evaluate", world["set"], "--config", t / "latin.toml") == 2
    assert "latin.toml: a config file must be UTF-8 text (byte 14 is not)" in one_error(capsys)
    for name, text, said in (("twice.yaml", "epochs: 2\nwidth: 8\nepochs: 3\n", "option 'epochs' is given twice"),
                             ("twice.json", '{"epochs": 2, "width": 8, "epochs": 3}',
                              "twice.json: not valid JSON (option 'epochs' is given twice)"),
                             ("cut.json", '{"epochs":', "cut.json: not valid JSON (Expecting value: line 1 column 11")):
        (t / name).write_text(text)
        assert run("evaluate", world["set"], "--dataset", "mnist", "--config", t / name) == 2
        assert said in one_error(capsys), name


# ----------------------------------------------------------------------------------------------------------
# Messages


def test_messages_of_the_probe(world, tmp_path, capsys):
    import pickle

    import pyarrow as pa
    import pyarrow.parquet as pq

    from yoco.data.formats import import_condensed

    pq.write_table(pa.table({"image": pa.array([], pa.binary()), "label": pa.array([], pa.int64())}),
                   tmp_path / "empty.parquet")
    with pytest.raises(YocoError, match="empty.parquet: holds no images"):
        import_condensed(tmp_path / "empty.parquet", "hf", dataset="mnist")

    class Legacy:
        def __reduce__(self):
            return (print, ("executed",))

    (tmp_path / "legacy.pt").write_bytes(pickle.dumps(Legacy(), protocol=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(YocoError) as err:
            import_condensed(tmp_path / "legacy.pt", "idc", dataset="mnist")
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value) and not caught


def test_download_reads_a_file_url(tmp_path):
    from yoco.data.download import Remote, download, md5

    (tmp_path / "src.bin").write_bytes(b"data")
    table = {"x": (Remote((tmp_path / "src.bin").as_uri(), md5(tmp_path / "src.bin")),)}
    folder = download("x", tmp_path / "dl", sources=table, progress=False)
    assert (folder / "src.bin").read_bytes() == b"data"


def test_results_name_the_set_and_test_data_they_were_computed_on(world):
    from yoco.dynamics import load_dynamics
    from yoco.scoretable import load_table

    t = world["tmp"]
    sha = __import__("yoco.data.condensed", fromlist=["content_sha256"]).content_sha256(load(world["set"]))
    assert run("dynamics", world["set"], "--epochs", "2", "--runs", "1", "--width", "8", "--device", "cpu", "--quiet",
               "--out", t / "d.safetensors") == 0
    assert run("score", t / "d.safetensors", "--lbpe-epochs", "2", "--lbpe-top-k", "1", "--el2n-epochs", "1",
               "--out", t / "s.safetensors") == 0
    assert load_dynamics(t / "d.safetensors").config["set_sha256"] == sha
    assert load_table(t / "s.safetensors").config["set_sha256"] == sha
    assert run("evaluate", world["set"], "--dataset", "mnist", "--data-root", world["root"], *QUICK, "--repeat", "1",
               "--out", t / "e.json") == 0
    assert json.loads((t / "e.json").read_text())["test_sha256"] == world["real"].digest("test")


def test_a_checkpoint_resumes_only_on_the_training_images_it_was_made_from(tmp_path):
    import dataclasses

    from test_condense import TINY, _interrupted_run, fake_real

    from yoco.condense import checkpoint_path, condense
    from yoco.files import read_tensors, write_tensors

    real = fake_real()
    out = tmp_path / "c.safetensors"
    _interrupted_run(real, dataclasses.replace(TINY, iterations=6), out, at=2)
    other = fake_real()
    other.train_labels = other.train_labels.flip(0)  # same name and shape, other training data
    with pytest.raises(YocoError, match="train_sha256"):
        condense(other, TINY, out, runtime=rt(), resume=True)
    # a checkpoint written before the digest was kept resumes as before (checked by name and shape)
    header, tensors = read_tensors(checkpoint_path(out), "IDC checkpoint")
    identity = json.loads(header["identity"])
    identity.pop("train_sha256")
    write_tensors(checkpoint_path(out), tensors, {**header, "identity": json.dumps(identity)})
    assert condense(real, TINY, out, runtime=rt(), resume=True).images.shape == (8, 1, 8, 8)
