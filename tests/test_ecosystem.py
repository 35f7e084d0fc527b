"""Sets travel intact between the field's tools (issue 32): round trips through every layout, DD-Ranking's and
Hugging Face's layouts in and out, provenance in every result, and the CLI's ergonomics."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rt, tiny_real, write_mnist_like
from PIL import Image

from yoco import cli
from yoco.data.condensed import CondensedMeta, CondensedSet, content_sha256, load, save
from yoco.data.containers import card_class_names, export_hf, export_imagefolder
from yoco.data.exports import EXPORTS, export_ddranking, export_set
from yoco.data.formats import detect_format, import_condensed
from yoco.errors import YocoError

REPO = Path(__file__).resolve().parents[1]
MEAN, STD = (0.5,), (0.25,)  # what the standardised files below were standardised with


def run(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def grid_pixels(n_per_class: int = 3, classes: int = 4, c: int = 1, size: int = 8, seed: int = 0) -> torch.Tensor:
    """Smooth pixels exactly on the 8-bit grid (so picture round trips are exact) and far from [0, 1]'s ends."""
    g = torch.Generator().manual_seed(seed)
    base = torch.nn.functional.avg_pool2d(torch.rand(n_per_class * classes, c, size + 2, size + 2, generator=g), 3, 1)
    return ((0.2 + 0.6 * base) * 255).round() / 255


def soft_for(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Label distributions whose arg-max is ``labels`` (rows differ, so they do not read as one-hot)."""
    g = torch.Generator().manual_seed(1)
    q = torch.rand(len(labels), classes, generator=g) * 0.1
    q[torch.arange(len(labels)), labels] = 0.8
    return q / q.sum(1, keepdim=True)


def mtt_folder(folder: Path, *, soft: bool = True, lr: float | None = 0.02, names: str = "_best") -> CondensedSet:
    """An MTT/DATM-like folder: standardised images, soft labels as distributions, a learned lr."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = torch.arange(4).repeat_interleave(3)
    images = (grid_pixels() - MEAN[0]) / STD[0]
    torch.save(images, folder / f"images{names}.pt")
    torch.save(soft_for(labels, 4) if soft else labels, folder / f"labels{names}.pt")
    if lr is not None:
        torch.save(torch.tensor(lr), folder / f"lr{names}.pt")
    meta = CondensedMeta("tiny", 4, method="mtt", ipc=3, normalized=True, mean=MEAN, std=STD)
    return CondensedSet(images, labels, meta, soft=soft_for(labels, 4) if soft else None)


def honest(cs: CondensedSet) -> None:
    """What the metadata claims, the data holds."""
    assert cs.soft is not None or not cs.meta.extra.get("soft_labels")
    if "zca" in (cs.meta.extra.get("recipe") or {}):
        assert cs.meta.normalized


# ----------------------------------------------------------------------------------------------------------
# 1. Round trips


def test_mtt_with_zca_soft_labels_and_lr_survives_a_round_trip_or_is_refused(tmp_path):
    mtt_folder(tmp_path / "mtt")
    cs = import_condensed(tmp_path / "mtt" / "images_best.pt", "mtt", dataset="tiny", mean=MEAN, std=STD, zca=True)
    assert cs.soft is not None and cs.meta.extra["recipe"]["lr"] == pytest.approx(0.02)
    with pytest.raises(YocoError, match="ZCA-whitened values, not pixels.*--format dd-ranking.*--lossy"):
        export_imagefolder(cs, tmp_path / "pictures")
    assert not (tmp_path / "pictures").exists()
    # DD-Ranking's tensors keep everything: images, soft labels, lr and the ZCA recipe
    export_ddranking(cs, tmp_path / "ddr")
    back = import_condensed(tmp_path / "ddr", detect_format(tmp_path / "ddr"), dataset="tiny")
    assert torch.equal(back.images, cs.images) and torch.equal(back.labels, cs.labels)
    assert torch.allclose(back.soft, cs.soft, atol=1e-6)
    assert back.meta.extra["recipe"] == cs.meta.extra["recipe"] and back.meta.normalized
    honest(back)
    # pictures on request: soft labels and lr kept, ZCA dropped from the metadata (the pictures are not ZCA values)
    for fmt in ("imagefolder", "hf"):
        export_set(cs, tmp_path / f"lossy-{fmt}", fmt, lossy=True)
        pic = import_condensed(tmp_path / f"lossy-{fmt}", fmt, dataset="tiny")
        assert "zca" not in pic.meta.extra["recipe"] and pic.meta.extra["recipe"]["lr"] == pytest.approx(0.02)
        assert torch.allclose(pic.soft, cs.soft) and torch.equal(pic.labels, cs.labels)
        honest(pic)


DS = "mnist"  # a dataset yoco knows, whose statistics standardise pixel sets for DD-Ranking


def published(tmp_path: Path, fmt: str) -> tuple[Path, dict, CondensedSet]:
    """A small set written in ``fmt``'s own layout: (path, import options, the set it holds)."""
    pix = grid_pixels()
    labels = torch.arange(4).repeat_interleave(3)
    std_images = (pix - MEAN[0]) / STD[0]
    norm = CondensedMeta(DS, 4, method=fmt, ipc=3, normalized=True, mean=MEAN, std=STD)
    plain = CondensedMeta(DS, 4, method=fmt, ipc=3, factor=1)
    if fmt in ("idc", "dream"):
        torch.save([pix, labels], tmp_path / "data.pt")
        return tmp_path / "data.pt", {"factor": 1}, CondensedSet(pix, labels, plain)
    if fmt == "dsa":
        torch.save({"data": [(std_images, labels)]}, tmp_path / "res_DSA_x.pt")
        return tmp_path / "res_DSA_x.pt", {}, CondensedSet(std_images, labels, norm)
    if fmt == "kip":
        np.savez(tmp_path / "kip.npz", images=std_images.permute(0, 2, 3, 1).numpy(),
                 labels=np.eye(4)[labels.numpy()])
        return tmp_path / "kip.npz", {}, CondensedSet(std_images, labels, norm)
    if fmt in ("mtt", "dd-ranking"):
        cs = mtt_folder(tmp_path / fmt, names="_best" if fmt == "mtt" else "")
        return tmp_path / fmt, {}, cs
    if fmt == "yoco":
        cs = CondensedSet(pix, labels, plain)
        return save(cs, tmp_path / "set.safetensors"), {}, cs
    cs = CondensedSet(pix, labels, plain, soft=soft_for(labels, 4))
    export_set(cs, tmp_path / fmt, fmt)
    return tmp_path / fmt, {}, cs


@pytest.mark.parametrize("source", ["idc", "dream", "mtt", "dd-ranking", "dsa", "kip", "yoco", "imagefolder", "hf"])
@pytest.mark.parametrize("layout", ["imagefolder", "hf", "dd-ranking"])
def test_every_format_round_trips_through_every_export(tmp_path, source, layout):
    path, options, want = published(tmp_path, source)
    cs = import_condensed(path, source, dataset=DS, mean=MEAN if want.meta.normalized else None,
                          std=STD if want.meta.normalized else None, **options)
    honest(cs)
    out = export_set(cs, tmp_path / f"out-{layout}", layout)
    assert detect_format(out) == layout
    record = json.loads((out / "condensed.json").read_text())  # the export names what it was made from, and by what
    assert record["source_sha256"] == content_sha256(cs) and record["provenance"]["yoco"] and record["provenance"]["utc"]
    back = import_condensed(out, layout, dataset=DS)
    honest(back)
    assert torch.equal(back.labels, cs.labels) and back.meta.method == cs.meta.method
    assert (back.soft is None) == (cs.soft is None)
    if cs.soft is not None:
        assert torch.allclose(back.soft, cs.soft, atol=1e-6)
    assert back.meta.extra.get("recipe") == cs.meta.extra.get("recipe")
    assert torch.allclose(back.pixels(), cs.pixels(), atol=1e-5)  # pixels on the 8-bit grid travel exactly
    if layout != "dd-ranking" or cs.meta.normalized:  # DD-Ranking's tensors are standardised
        assert back.meta.normalized == cs.meta.normalized
        assert torch.allclose(back.images, cs.images, atol=1e-5)


def test_export_is_refused_or_warns_for_values_that_are_not_pixels(tmp_path, caplog):
    labels = torch.arange(2).repeat_interleave(2)
    cs = CondensedSet(torch.full((4, 1, 8, 8), 1.4), labels, CondensedMeta("tiny", 2))
    export_imagefolder(cs, tmp_path / "clamped")
    assert "100.00% of the values lie outside [0, 1]" in caplog.text


def test_metadata_cannot_claim_what_the_data_does_not_hold():
    labels = torch.arange(2).repeat_interleave(2)
    with pytest.raises(YocoError, match="says the set has soft labels .* but it holds none"):
        CondensedSet(torch.rand(4, 1, 8, 8), labels, CondensedMeta("tiny", 2, extra={"soft_labels": "x"}))
    with pytest.raises(YocoError, match="ZCA-whitened but they are declared as \\[0, 1\\] pixels"):
        CondensedSet(torch.rand(4, 1, 8, 8), labels, CondensedMeta("tiny", 2, extra={"recipe": {"zca": {"eps": .1}}}))


def test_an_image_folder_edited_after_export_is_refused_rather_than_misread(tmp_path):
    labels = torch.arange(2).repeat_interleave(2)
    export_imagefolder(CondensedSet(grid_pixels(2, 2), labels, CondensedMeta("tiny", 2)), tmp_path / "f")
    next((tmp_path / "f" / "0").iterdir()).rename(tmp_path / "f" / "0" / "zz.png")
    with pytest.raises(YocoError, match="differ from the ones condensed.json lists"):
        import_condensed(tmp_path / "f", "imagefolder", dataset="tiny")


# ----------------------------------------------------------------------------------------------------------
# 2. DD-Ranking


@pytest.mark.parametrize("names", ["", "_best"])
def test_ddranking_layout_is_read_with_its_learning_rate(tmp_path, names):
    want = mtt_folder(tmp_path / "d", names=names, soft=False, lr=0.01)
    assert detect_format(tmp_path / "d") == ("dd-ranking" if names == "" else "mtt")
    cs = import_condensed(tmp_path / "d", "dd-ranking", dataset="tiny", mean=MEAN, std=STD)
    assert torch.equal(cs.images, want.images) and torch.equal(cs.labels, want.labels)
    assert cs.meta.extra["recipe"] == {"lr": pytest.approx(0.01), "lr_file": f"lr{names}.pt"}


def test_ddranking_labels_given_apart_keep_the_learning_rate_beside_the_images(tmp_path, capsys):
    mtt_folder(tmp_path / "d", names="", soft=False, lr=0.03)
    (tmp_path / "l").mkdir()
    (tmp_path / "d" / "labels.pt").rename(tmp_path / "l" / "labels.pt")
    assert run("import", tmp_path / "d", "--dataset", "mnist", "--out", tmp_path / "x.safetensors") == 2
    err = capsys.readouterr().err
    assert "labels.pt: labels file not found beside images.pt; name it with --labels FILE" in err
    assert "labels_best.pt not found" not in err
    cs = import_condensed(tmp_path / "d" / "images.pt", "dd-ranking", dataset="tiny", mean=MEAN, std=STD,
                          labels_path=tmp_path / "l" / "labels.pt")
    assert cs.meta.extra["recipe"]["lr"] == pytest.approx(0.03)


def test_gain_over_random_is_named_ior_only_where_the_definitions_match(tmp_path):
    from yoco.report import write_ladder_reports

    def cell(rule, last, best, seed=0):
        return {"rule": rule, "ipc": 1, "seed": seed, "status": "ok", "last": last, "best": best}

    cells = [cell("lbpe_easy_balance", 0.6, 0.65), cell("random_balance", 0.5, 0.52)]
    real = write_ladder_reports(tmp_path / "real", cells, {"dataset": "tiny", "random_reference": "real"})
    assert real["rows"][0]["ior"] == pytest.approx(0.13)  # best minus the random subsets' best, as DD-Ranking
    md = (tmp_path / "real" / "results.md").read_text()
    assert "DD-Ranking's IOR" in md and "IOR +13.00" in md
    assert (tmp_path / "real" / "results.csv").read_text().splitlines()[1].split(",")[10] == "13.0000"
    ours = write_ladder_reports(tmp_path / "cond", cells, {"dataset": "tiny", "random_reference": "condensed"})
    assert ours["rows"][0]["ior"] is None and "not DD-Ranking's IOR" in (tmp_path / "cond" / "results.md").read_text()
    assert ours["rows"][0]["last_std"] is None  # one run has no spread


# ----------------------------------------------------------------------------------------------------------
# 3. Hugging Face


def parquet_with(path: Path, columns: dict, features: dict | None = None) -> Path:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table(columns)
    if features is not None:
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def pngs(values) -> list[dict]:
    out = []
    for v in values:
        buf = io.BytesIO()
        Image.fromarray(np.full((8, 8, 3), v, dtype=np.uint8)).save(buf, format="PNG")
        out.append({"bytes": buf.getvalue(), "path": None})
    return out


def test_rethinkdc_columns_and_class_names_from_the_schema(tmp_path):
    features = {"image": {"_type": "Image"}, "class_id": {"names": ["cat", "dog"], "_type": "ClassLabel"}}
    parquet_with(tmp_path / "hub" / "data" / "train-0.parquet",
                 {"image": pngs([1, 2, 3, 4]), "class_id": [1, 0, 1, 0]}, features)
    cs = import_condensed(tmp_path / "hub", "hf", dataset="tiny")
    assert cs.labels.tolist() == [0, 0, 1, 1] and cs.meta.extra["class_names"] == ["cat", "dog"]
    assert cs.meta.extra["columns"] == {"image": "image", "label": "class_id"}


def test_columns_by_name_and_class_names_from_the_card(tmp_path, capsys):
    parquet_with(tmp_path / "hub" / "data" / "train-0.parquet", {"picture": pngs([1, 2]), "y_true": [0, 1]})
    (tmp_path / "hub" / "README.md").write_text(
        "---\ndataset_info:\n  features:\n  - name: picture\n    dtype: image\n  - name: y_true\n    dtype:\n"
        "      class_label:\n        names:\n          '0': T-shirt/top\n          '1': 'Ankle boot'\n---\n# card\n")
    with pytest.raises(YocoError, match="name them with --image-column and --label-column"):
        import_condensed(tmp_path / "hub", "hf", dataset="tiny")
    cs = import_condensed(tmp_path / "hub", "hf", dataset="tiny", image_column="picture", label_column="y_true")
    assert cs.meta.extra["class_names"] == ["T-shirt/top", "Ankle boot"]
    with pytest.raises(YocoError, match="no column 'lbl' \\(--label-column\\)"):
        import_condensed(tmp_path / "hub", "hf", dataset="tiny", image_column="picture", label_column="lbl")
    assert run("import", tmp_path / "hub", "--dataset", "mnist", "--image-column", "picture", "--label-column",
               "y_true", "--out", tmp_path / "x.safetensors") == 0
    assert "format: hf" in capsys.readouterr().out


def test_hf_export_is_a_snapshot_the_datasets_library_loads(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    labels = torch.arange(3).repeat_interleave(2)
    cs = CondensedSet(grid_pixels(2, 3, c=3), labels, CondensedMeta("tiny", 3, method="idc", ipc=2),
                      soft=soft_for(labels, 3))
    export_hf(cs, tmp_path / "snap", ["cat", "dog", "it's"])
    shard = tmp_path / "snap" / "data" / "train-00000-of-00001.parquet"
    table = pq.read_table(shard)
    assert table.column_names == ["image", "label", "soft_label"]
    assert str(table.schema.field("image").type) == "struct<bytes: binary, path: string>"
    assert str(table.schema.field("label").type) == "int64"
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == {"_type": "Image"}
    assert features["label"] == {"names": ["cat", "dog", "it's"], "_type": "ClassLabel"}
    assert features["soft_label"]["_type"] == "Sequence"
    first = table.column("image").to_pylist()[0]
    assert Image.open(io.BytesIO(first["bytes"])).size == (8, 8)
    card = (tmp_path / "snap" / "README.md").read_text()
    assert card_class_names(card, "label") == ["cat", "dog", "it's"]
    assert "path: data/train-*" in card
    back = import_condensed(tmp_path / "snap", "hf", dataset="tiny")
    assert torch.equal(back.images, cs.images) and torch.allclose(back.soft, cs.soft)


def test_card_class_names_in_the_list_spelling():
    card = "---\ndataset_info:\n  features:\n  - name: label\n    class_label:\n      names:\n      - a\n      - b\n---\n"
    assert card_class_names(card, "label") == ["a", "b"]
    assert card_class_names("no front matter", "label") is None


# ----------------------------------------------------------------------------------------------------------
# 4. Provenance


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    real = tiny_real(n_per_class=6, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    idx = torch.cat([torch.nonzero(real.train_labels == c).flatten()[:2] for c in range(10)])
    cs = CondensedSet(real.train_images[idx].float() / 255, real.train_labels[idx],
                      CondensedMeta("mnist", 10, method="real", ipc=2), source="set")
    save(cs, tmp_path / "set.safetensors")
    return {"tmp": tmp_path, "root": tmp_path / "data", "set": tmp_path / "set.safetensors"}


PROVENANCE = {"yoco", "torch", "python", "device", "threads", "precision", "utc"}


def test_results_record_what_made_them_and_explain_each_digest(world, capsys):
    t = world["tmp"]
    assert run("evaluate", world["set"], "--dataset", "mnist", "--data-root", world["root"], "--epochs", "1",
               "--width", "8", "--repeat", "1", "--test-points", "1", "--device", "cpu", "--quiet",
               "--out", t / "e.json") == 0
    res = json.loads((t / "e.json").read_text())
    assert set(res["provenance"]) == PROVENANCE and res["provenance"]["device"].startswith("cpu")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", res["provenance"]["utc"])
    assert res["provenance"]["torch"] == torch.__version__ and res["provenance"]["precision"] == "fp32"
    assert res["last_std"] is None and res["best_std"] is None  # one run
    shas = [k for k in res if "sha256" in k]
    assert sorted(shas) == ["sha256", "test_sha256"] and set(res["digests"]) == set(shas)
    assert res["file"] == str(world["set"])
    assert run("dynamics", world["set"], "--epochs", "2", "--runs", "1", "--width", "8", "--device", "cpu",
               "--quiet", "--out", t / "d.safetensors") == 0
    from yoco.dynamics import load_dynamics

    assert set(load_dynamics(t / "d.safetensors").config["provenance"]) == PROVENANCE


def test_provenance_enters_no_digest_or_cache_key(world):
    from yoco.ladder.run import fingerprint

    cs = load(world["set"])
    stamped = CondensedSet(cs.images, cs.labels, CondensedMeta(**{**cs.meta.__dict__, "extra": {
        "provenance": {"utc": "2099-01-01T00:00:00Z", "yoco": "9"}}}))
    assert content_sha256(stamped) == content_sha256(cs) and fingerprint(stamped) == fingerprint(cs)


def test_condensed_sets_record_what_made_them(world):
    from yoco.condense import condense, resolve_config
    from yoco.data.datasets import load_dataset

    real = load_dataset("mnist", root=world["root"])
    cfg = resolve_config(real.name, "cpu-quick", ipc=1, iterations=1, inner=1, width=8)
    cs = condense(real, cfg, world["tmp"] / "idc.safetensors", runtime=rt())
    assert set(load(world["tmp"] / "idc.safetensors").meta.extra["provenance"]) == PROVENANCE
    assert cs.meta.extra["provenance"]["precision"] == cfg.precision


def test_version_and_show(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0 and re.fullmatch(r"yoco \S+\n", capsys.readouterr().out)
    mtt_folder(tmp_path / "m")
    cs = import_condensed(tmp_path / "m", "mtt", dataset="tiny", mean=MEAN, std=STD, zca=True)
    save(cs, tmp_path / "zca.safetensors")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run("show", tmp_path / "zca.safetensors") == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no PNG unless --png names one
    assert "learned learning rate 0.02 (lr_best.pt); ZCA whitening (eps 0.1)" in out
    assert "ZCA-whitened (no pixel statistics)" in out and "pixels:" not in out
    assert run("show", tmp_path / "zca.safetensors", "--png", tmp_path / "g.png") == 0 and (tmp_path / "g.png").exists()


# ----------------------------------------------------------------------------------------------------------
# 5. Ergonomics


def test_import_detects_the_format_and_refuses_an_ambiguous_file(tmp_path, capsys):
    mtt_folder(tmp_path / "m")
    assert run("import", tmp_path / "m" / "images_best.pt", "--dataset", "mnist", "--out", tmp_path / "a.st") == 0
    assert "format: mtt" in capsys.readouterr().out
    torch.save([grid_pixels(), torch.arange(4).repeat_interleave(3)], tmp_path / "data.pt")
    assert run("import", tmp_path / "data.pt", "--dataset", "mnist", "--out", tmp_path / "b.st") == 2
    assert "could be idc or dream" in capsys.readouterr().err and not (tmp_path / "b.st").exists()


def test_random_rules_need_no_scores(world, capsys):
    t = world["tmp"]
    assert run("prune", world["set"], "--rule", "random_balance", "--ipc", "1", "--out", t / "r.safetensors") == 0
    assert load(t / "r.safetensors").class_counts() == [1] * 10
    assert run("prune", world["set"], "--rule", "yoco", "--ipc", "1", "--out", t / "y.safetensors") == 2
    assert "give the set's score table (--scores" in capsys.readouterr().err


def test_every_command_help_shows_an_example():
    _, subs = cli.build_parser()
    for name, sub in subs.items():
        assert "example:\n  yoco " + name in sub.format_help(), name


def test_progress_writes_sparse_lines_off_a_terminal():
    from yoco.progress import tqdm

    sink = io.StringIO()
    for _ in tqdm(range(5000), desc="epochs", file=sink):
        pass
    lines = sink.getvalue().splitlines()
    assert 1 <= len(lines) <= 3 and "\r" not in sink.getvalue() and "5000/5000" in lines[-1]


def test_values_that_look_zca_whitened_are_named_without_zca(tmp_path, caplog):
    from yoco.data.zca import fit_zca

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(400, 1, 20, 20, generator=g), 5, 1)
    smooth = (smooth - smooth.mean()) / smooth.std()
    torch.save(fit_zca(smooth, eps=0.1)(smooth[:8]), tmp_path / "images_best.pt")
    torch.save(torch.arange(2).repeat_interleave(4), tmp_path / "labels_best.pt")
    import_condensed(tmp_path / "images_best.pt", "mtt", dataset="tiny", mean=MEAN, std=STD)
    assert "look ZCA-whitened" not in caplog.text and "as in ZCA-whitened images" in caplog.text
    assert "--zca" in caplog.text
    caplog.clear()
    torch.save(smooth[:8], tmp_path / "images_best.pt")
    import_condensed(tmp_path / "images_best.pt", "mtt", dataset="tiny", mean=MEAN, std=STD)
    assert "ZCA" not in caplog.text


def test_every_export_layout_is_listed():
    assert set(EXPORTS.names()) == {"imagefolder", "hf", "dd-ranking"}


# ----------------------------------------------------------------------------------------------------------
# 7. A torch range, reproducible with a constraints file


def test_torch_is_a_tested_range_pinned_by_the_constraints_file():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_dep = next(d for d in project["dependencies"] if d.startswith("torch"))
    assert torch_dep == "torch>=2.3"  # torch.compiler.is_compiling (2.3), torch.func, _foreach_copy_ (2.1)
    assert "torch==2.13.0" in (REPO / "constraints.txt").read_text().splitlines()
    readme = (REPO / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("apt-get update")]
    assert len(commands) == 2 and all("-c constraints.txt" in c for c in commands)
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == commands[1]  # CI runs the README's test command, exactly


def test_version_module_runs_without_the_package_installed():
    out = subprocess.run([sys.executable, "-c", "from yoco.provenance import version; print(version())"],
                         capture_output=True, text=True, check=True, cwd=REPO, env={"PYTHONPATH": str(REPO / "src")})
    assert out.stdout.strip()
