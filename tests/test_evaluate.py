import dataclasses
import json

import pytest
import torch
from helpers import rt, tiny_condensed, tiny_real

from yoco.cli import main
from yoco.data.condensed import CondensedMeta, CondensedSet, save
from yoco.errors import YocoError
from yoco.evaluate import EvalConfig, check_compatible, evaluate_condensed
from yoco.train import TrainConfig

QUICK = EvalConfig(model="convnet", width=16, repeat=2, test_points=2, train=TrainConfig(epochs=20))


def test_short_run_learns_separable_set_and_reports_mean_std():
    res = evaluate_condensed(tiny_condensed(), tiny_real(), QUICK, runtime=rt())
    assert len(res["runs"]) == 2 and [r["seed"] for r in res["runs"]] == [0, 1]
    assert res["last_mean"] > 0.6  # chance 0.25
    lasts = torch.tensor([r["last"] for r in res["runs"]])
    assert res["last_mean"] == pytest.approx(float(lasts.mean()))
    assert res["best_mean"] >= res["last_mean"] - 1e-9
    assert res["config"]["train"]["epochs"] == 20 and res["config"]["test_points"] == [10, 20]
    json.dumps(res)


def test_same_seed_same_accuracy_on_cpu():
    cfg = dataclasses.replace(QUICK, repeat=1, train=TrainConfig(epochs=6))
    a = evaluate_condensed(tiny_condensed(), tiny_real(), cfg, runtime=rt())
    b = evaluate_condensed(tiny_condensed(), tiny_real(), cfg, runtime=rt())
    assert a["runs"][0]["curve"] == b["runs"][0]["curve"]


def test_factor_two_set_is_decoded_before_training():
    cs = tiny_condensed(ipc=2, factor=2)
    res = evaluate_condensed(cs, tiny_real(), dataclasses.replace(QUICK, repeat=1, train=TrainConfig(epochs=2)),
                             runtime=rt())
    assert res["decoded_images"] == 4 * len(cs)


def test_mismatched_classes_or_size_refused_before_training():
    with pytest.raises(YocoError, match="classes"):
        check_compatible(tiny_condensed(num_classes=4), tiny_real(num_classes=5))
    with pytest.raises(YocoError, match="test images"):
        check_compatible(tiny_condensed(size=8), tiny_real(size=16))


def test_nan_and_empty_class_refused():
    x = torch.rand(4, 1, 16, 16)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(YocoError, match="NaN"):
        CondensedSet(x, torch.arange(4), CondensedMeta("tiny", 4), source="bad.safetensors")
    with pytest.raises(YocoError, match=r"class\(es\) \[3\]"):
        CondensedSet(torch.rand(3, 1, 16, 16), torch.arange(3), CondensedMeta("tiny", 4), source="bad.safetensors")


def test_cli_evaluate_writes_json_and_interrupt_leaves_nothing(tmp_path, monkeypatch, capsys):
    from yoco.data import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda name, root=None, resolution=None: tiny_real())
    path = tmp_path / "set.safetensors"
    save(tiny_condensed(), path)
    out = tmp_path / "eval.json"
    argv = [str(path), "--dataset", "fashion-mnist", "--model", "convnet", "--width", "8", "--epochs", "2",
            "--repeat", "1", "--device", "cpu", "--quiet", "--out", str(out)]
    assert main(["evaluate", *argv]) == 0
    assert "(1 run)" in capsys.readouterr().out  # one run has no spread to report
    assert json.loads(out.read_text())["config"]["train"]["epochs"] == 2

    import yoco.evaluate as ev

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "train_networks", interrupted)
    out2 = tmp_path / "eval2.json"
    assert main(["evaluate", *argv[:-1], str(out2)]) == 130
    assert not out2.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json", "set.safetensors"]


def test_an_evaluation_resolves_its_recipe_once_and_trains_tests_and_records_that_one(monkeypatch):
    """One resolver, called once: the recipe the networks train with is the one whose epochs set the test points and
    the one the result records, and the runner reads it as given (it recomputes nothing)."""
    import yoco.evaluate as ev
    from yoco import runner

    made, trained = [], []
    resolve, train_networks = runner.resolve_recipe, runner.train_networks
    monkeypatch.setattr(ev, "resolve_recipe", lambda *a, **k: made.append(resolve(*a, **k)) or made[-1])
    monkeypatch.setattr(ev, "train_networks", lambda data, recipe, *a, **k: trained.append(recipe) or train_networks(
        data, recipe, *a, **k))
    monkeypatch.setattr(runner, "resolve_recipe", lambda *a, **k: pytest.fail("the runner resolved a recipe again"))
    cfg = dataclasses.replace(QUICK, repeat=2, test_points=2, train=TrainConfig(epochs=3))
    res = evaluate_condensed(tiny_condensed(), tiny_real(), cfg, runtime=rt())
    assert len(made) == 1 and trained == made
    assert res["config"]["train"] == made[0].train.to_dict() and res["config"]["model"] == made[0].model
    assert [p for p, _ in res["runs"][0]["curve"]] == [2, 3]  # test points from the recipe's 3 epochs
    with pytest.raises(dataclasses.FrozenInstanceError):
        made[0].train = TrainConfig()


def test_batched_runner_gives_the_separate_runs_accuracies():
    # the runner batches the repeats on a GPU; forced on here, it must give what separate runs give
    cfg = dataclasses.replace(QUICK, repeat=2, train=TrainConfig(epochs=4))
    apart = evaluate_condensed(tiny_condensed(), tiny_real(), cfg, runtime=rt(batched=False))
    together = evaluate_condensed(tiny_condensed(), tiny_real(), cfg, runtime=rt(batched=True))
    for a, b in zip(apart["runs"], together["runs"]):
        assert [c[0] for c in a["curve"]] == [c[0] for c in b["curve"]]
        assert all(abs(x[1] - y[1]) <= 0.05 for x, y in zip(a["curve"], b["curve"]))


def test_several_sets_of_one_size_evaluate_as_one_batch_like_one_by_one():
    from yoco.evaluate import evaluate_sets

    sets = [tiny_condensed(seed=s) for s in (2, 3, 4)]
    cfg = dataclasses.replace(QUICK, train=TrainConfig(epochs=3))
    together = evaluate_sets(sets, tiny_real(), cfg, runtime=rt(batched=True))
    for i, cs in enumerate(sets):
        alone = evaluate_condensed(cs, tiny_real(), dataclasses.replace(cfg, repeat=1, seed=cfg.seed + i),
                                   runtime=rt())
        assert together[i]["sha256"] == alone["sha256"] and together[i]["runs"][0]["seed"] == cfg.seed + i
        assert together[i]["test_sha256"] == alone["test_sha256"] == tiny_real().digest("test")
        assert abs(together[i]["last_mean"] - alone["last_mean"]) <= 0.05


def test_zca_whitens_to_unit_covariance():
    from yoco.data.zca import fit_zca

    g = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 12, generator=g)
    x = (torch.randn(4000, 12, generator=g) @ mix).view(4000, 3, 2, 2)
    white = fit_zca(x, eps=1e-6)(x).flatten(1)
    cov = torch.cov(white.T)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)
    assert white.shape == (4000, 12)


def test_the_sets_recipe_travels_with_it_and_a_protocol_run_says_it_ignores_it(tmp_path, caplog):
    # an MTT set with its learned learning rate (lr_best.pt) and ZCA-whitened images
    from yoco.data.formats import import_condensed

    real = tiny_real()
    cs = tiny_condensed()
    std = (cs.images - 0.3) / 0.3
    torch.save(std, tmp_path / "images_best.pt")
    torch.save(cs.labels, tmp_path / "labels_best.pt")
    torch.save(torch.tensor(0.03), tmp_path / "lr_best.pt")
    imported = import_condensed(tmp_path / "images_best.pt", "mtt", dataset="tiny", mean=(0.3,), std=(0.3,), zca=True)
    assert imported.meta.extra["recipe"]["lr"] == pytest.approx(0.03) and imported.meta.extra["recipe"]["zca"]
    cfg = dataclasses.replace(QUICK, repeat=1, train=TrainConfig(epochs=2))
    res = evaluate_condensed(imported, real, cfg, runtime=rt())
    assert res["config"]["train"]["lr"] == pytest.approx(0.03)
    assert "learning rate 0.03" in res["recipe_notes"][0] and "ZCA" in " ".join(res["recipe_notes"])
    with caplog.at_level("WARNING"):
        plain = evaluate_condensed(imported, real, dataclasses.replace(cfg, recipe="protocol"), runtime=rt())
    assert plain["config"]["train"]["lr"] == pytest.approx(0.01)
    assert "is ignored; evaluating with the protocol's" in caplog.text


def test_an_evaluation_read_off_the_dynamics_equals_its_own_run_notes_included():
    """riding_evaluation's results are those of evaluate_condensed with the same seed: curve, accuracies, config
    and the set recipe's notes (here a ZCA-whitened test set, which the set's recipe asks for)."""
    from yoco.data.datasets import dataset_flip, normalization
    from yoco.dynamics import DynamicsConfig, record_dynamics
    from yoco.evaluate import riding_evaluation

    base = tiny_condensed()  # as a set of a registered dataset, so the dynamics standardise it as the evaluation does
    mean, std = normalization("mnist")  # stored standardised, as ZCA-whitened sets are
    cs = CondensedSet((base.images - mean[0]) / std[0], base.labels, dataclasses.replace(
        base.meta, dataset="mnist", normalized=True, mean=tuple(mean), std=tuple(std),
        extra={"recipe": {"zca": {"eps": 0.1}}}), source=base.source)
    real = dataclasses.replace(tiny_real(name="mnist"), mean=tuple(mean), std=tuple(std), flip=dataset_flip("mnist"))
    train = TrainConfig(epochs=4, batch_size=8)
    cfg = EvalConfig(model="convnet", width=8, repeat=1, test_points=2, train=train)
    dyn = DynamicsConfig(model="convnet", width=8, runs=2, train=train)
    riding = riding_evaluation(cs, real, cfg, dyn.networks(), "dynamics", rt(), [0, 1])
    assert riding is not None
    record_dynamics(cs, dyn, runtime=rt(), on_epoch=riding)
    got = riding.results(1.0, compile=False)
    for seed in (0, 1):
        alone = evaluate_condensed(cs, real, dataclasses.replace(cfg, seed=seed), runtime=rt())
        assert alone["recipe_notes"] and got[seed]["recipe_notes"] == alone["recipe_notes"]
        assert got[seed]["runs"][0]["curve"] == alone["runs"][0]["curve"]
        assert got[seed]["config"] == alone["config"]
