import dataclasses

import pytest
import torch
from helpers import separable_images

from yoco.errors import YocoError
from yoco.models import create_model
from yoco.predict import accuracy
from yoco.runtime import seeded
from yoco.train import TrainConfig, lr_at, milestone_epochs, train


def test_schedule_drops_at_two_thirds_and_five_sixths():
    cfg = TrainConfig(epochs=1000, lr=0.01)
    assert milestone_epochs(cfg) == [666, 833]
    assert lr_at(cfg, 0) == pytest.approx(0.01)
    assert lr_at(cfg, 665) == pytest.approx(0.01)
    assert lr_at(cfg, 666) == pytest.approx(0.002)
    assert lr_at(cfg, 832) == pytest.approx(0.002)
    assert lr_at(cfg, 833) == pytest.approx(0.0004)
    assert lr_at(cfg, 999) == pytest.approx(0.0004)


def test_optimizer_sees_scheduled_lr():
    x, y = separable_images(n_per_class=2)
    with seeded(0):
        model = create_model("convnet", 4, 1, 16, width=8, depth=2)
    seen = []
    opt_lrs = []

    def grab(epoch, m):
        seen.append(epoch)

    cfg = TrainConfig(epochs=6, dsa="none", mix="none")
    orig = torch.optim.SGD.step

    def spy(self, *a, **k):
        opt_lrs.append(self.param_groups[0]["lr"])
        return orig(self, *a, **k)

    torch.optim.SGD.step = spy
    try:
        train(model, x, y, cfg, on_epoch=grab, progress=False)
    finally:
        torch.optim.SGD.step = orig
    assert seen == list(range(6))
    assert opt_lrs == pytest.approx([0.01] * 4 + [0.002] + [0.0004])


def _run(seed: int):
    x, y = separable_images()
    with seeded(seed):
        model = create_model("convnet", 4, 1, 16, width=16, depth=2)
    outs = []
    train(model, x, y, TrainConfig(epochs=4, batch_size=16, seed=seed), progress=False,
          on_batch=lambda b: outs.append(b.logits.clone()))
    return model, torch.cat(outs)


def test_same_seed_same_numbers_on_cpu():
    m1, o1 = _run(3)
    m2, o2 = _run(3)
    assert torch.equal(o1, o2)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)
    _, o3 = _run(4)
    assert not torch.equal(o1, o3)


def test_learns_a_separable_set():
    x, y = separable_images(n_per_class=10)
    tx, ty = separable_images(n_per_class=10, seed=1)
    with seeded(0):
        model = create_model("convnet", 4, 1, 16, width=16, depth=2)
    # flip off: mirroring would move the square into another class's quadrant
    train(model, x, y, TrainConfig(epochs=25, batch_size=16, flip=False), progress=False)
    assert accuracy(model, tx, ty) > 0.8  # chance is 0.25


def test_batch_hook_sees_every_sample_once_per_epoch():
    x, y = separable_images(n_per_class=5)
    with seeded(0):
        model = create_model("convnet", 4, 1, 16, width=8, depth=2)
    seen: dict[int, list[int]] = {}
    train(model, x, y, TrainConfig(epochs=3, batch_size=7), progress=False,
          on_batch=lambda b: seen.setdefault(b.epoch, []).extend(b.indices.tolist()))
    for epoch in range(3):
        assert sorted(seen[epoch]) == list(range(len(y)))


def test_short_runs_start_at_base_lr():
    assert milestone_epochs(TrainConfig(epochs=1)) == []
    assert lr_at(TrainConfig(epochs=1, lr=0.01), 0) == pytest.approx(0.01)
    assert milestone_epochs(TrainConfig(epochs=3)) == [2, 2]


def test_batched_networks_equal_separate_runs():
    # the same seeds, data and recipe: each network of a batched run is the network a separate run trains
    from yoco.train import train_batched

    x, y = separable_images(n_per_class=6)
    cfgs = [TrainConfig(epochs=3, batch_size=10, seed=s) for s in (0, 1, 2)]

    def fresh(seed: int):
        with seeded(10 + seed):
            return create_model("convnet", 4, 1, 16, width=8, depth=2)

    alone, seen_alone = [], []
    for i, cfg in enumerate(cfgs):
        m = fresh(i)
        train(m, x, y, cfg, progress=False, on_batch=lambda b, i=i: seen_alone.append((i, b.epoch, b.indices.tolist())))
        alone.append(m)
    seen_batched = []
    batched = train_batched([fresh(i) for i in range(3)], [x] * 3, [y] * 3, cfgs, progress=False,
                            on_batch=lambda i, b: seen_batched.append((i, b.epoch, b.indices.tolist())))
    assert sorted(seen_batched) == sorted(seen_alone)  # the same batches, in each network's own order
    for a, b in zip(alone, batched):
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            assert torch.allclose(pa, pb, atol=1e-4, rtol=1e-3), name
    assert not torch.allclose(batched[0].classifier.weight, batched[1].classifier.weight)


def test_test_passes_run_in_cache_sized_batches_on_a_cpu_with_the_same_logits():
    # a CPU predicts 16 images at a time (measured 2.1-2.8x faster than 500); every image, the tail included, gets the
    # logits one large batch gives it
    from yoco.predict import CPU_TEST_BATCH, TEST_BATCH, predict, predict_many, test_batch

    assert test_batch(torch.device("cpu")) == CPU_TEST_BATCH < TEST_BATCH == test_batch(torch.device("cuda"))
    x = torch.randn(2 * CPU_TEST_BATCH + 7, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with seeded(0):
        net = create_model("convnet", 4, 1, 16, width=8, depth=2)
    calls = []
    hook = net.register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    small = predict(net, x)
    hook.remove()
    assert calls == [CPU_TEST_BATCH, CPU_TEST_BATCH, 7]
    one = predict(net, x, batch_size=len(x))
    assert small.shape == one.shape and torch.allclose(small, one, atol=1e-5)
    assert torch.equal(small.argmax(1), one.argmax(1))
    assert torch.allclose(predict_many([net, net], x)[1], one, atol=1e-5)


def test_one_test_pass_serves_all_batched_networks():
    # predict_many runs N networks over the images together (chunks of pairs // N images) and must give each
    # network's own logits; a batched run hands all its networks to on_epoch at once, so one pass serves them
    from yoco.predict import accuracies, predict, predict_many
    from yoco.train import train_batched

    x, y = separable_images(n_per_class=6)
    nets = []
    for seed in range(3):
        with seeded(seed):
            nets.append(create_model("convnet", 4, 1, 16, width=8, depth=2))
    together = predict_many(nets, x, pairs=7)  # 2 images per chunk: exercises the chunking
    assert together.shape == (3, len(x), 4)
    for i, m in enumerate(nets):
        assert torch.allclose(together[i], predict(m, x), atol=1e-5)
        assert m.training  # modes restored
    assert not torch.allclose(together[0], together[1])
    accs = accuracies(nets, x, y)
    assert accs == [float((predict(m, x).argmax(1) == y).float().mean()) for m in nets]
    calls = []
    train_batched(nets, [x] * 3, [y] * 3, [TrainConfig(epochs=2, batch_size=10, seed=s) for s in range(3)],
                  progress=False, on_epoch=lambda e, ms: calls.append((e, [id(m) for m in ms])))
    assert calls == [(0, [id(m) for m in nets]), (1, [id(m) for m in nets])]


def test_batched_refuses_batch_norm_and_mixed_recipes():
    from yoco.errors import YocoError
    from yoco.models.stacked import batchable
    from yoco.train import train_batched

    x, y = separable_images(n_per_class=2)
    bn = create_model("resnet18", 4, 1, 16, width=8)
    assert not batchable(bn)
    with pytest.raises(YocoError, match="without buffers"):
        train_batched([bn, bn], [x, x], [y, y], [TrainConfig(epochs=1)] * 2, progress=False)
    net = create_model("convnet", 4, 1, 16, width=8, depth=2)
    with pytest.raises(YocoError, match="share their training config"):
        train_batched([net, net], [x, x], [y, y], [TrainConfig(epochs=1), TrainConfig(epochs=2)], progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_networks_equal_separate_runs_on_cuda(ieee_float32):
    # IEEE float32 and Gaussian images: the first H100 run of this test, with TF32 convolutions and the synthetic
    # images (flat regions, so max-pool ties), differed by more than 1e-3; which of the two it was is not known yet
    from yoco.train import train_batched

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 1, 16, 16, generator=g).cuda(), (torch.arange(24) % 4).cuda()
    cfgs = [TrainConfig(epochs=3, batch_size=10, seed=s) for s in (0, 1)]

    def fresh(seed: int):
        with seeded(seed):
            return create_model("convnet", 4, 1, 16, width=8, depth=2).cuda()

    alone = [train(fresh(i), x, y, c, progress=False) for i, c in enumerate(cfgs)]
    together = train_batched([fresh(i) for i in range(2)], [x, x], [y, y], cfgs, progress=False)
    for a, b in zip(alone, together):
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            assert torch.allclose(pa, pb, atol=1e-4, rtol=1e-3), f"{name}: {float((pa - pb).abs().max()):.3g}"


@pytest.mark.skipif(not any(__import__("shutil").which(c) for c in ("g++", "c++")), reason="needs a C++ compiler")
def test_compiled_training_stays_close_to_eager():
    """``compile=True`` really runs the steps through inductor, and lands where eager training lands (float
    reordering only): the option may speed a run up, never change what it learns."""
    from torch._dynamo.utils import counters

    x, y = separable_images(n_per_class=4)
    models = []
    for compile_ in (False, True):
        with seeded(0):
            model = create_model("convnet", 4, 1, 16, width=8, depth=2)
        torch._dynamo.reset()
        counters.clear()
        train(model, x, y, TrainConfig(epochs=2, batch_size=8, seed=0), progress=False, compile=compile_)
        assert (counters["stats"]["unique_graphs"] > 0) == compile_
        models.append(model)
    for pe, pc in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(pc, pe, atol=1e-4, rtol=1e-4)


def test_compiling_without_a_cxx_compiler_is_one_clear_error(monkeypatch):
    from yoco import runtime
    from yoco.errors import YocoError

    monkeypatch.setattr(runtime.shutil, "which", lambda name: None)
    x, y = separable_images(n_per_class=1)
    net = create_model("convnet", 4, 1, 16, width=8, depth=2)
    with pytest.raises(YocoError, match="needs a C\\+\\+ compiler"):
        train(net, x, y, TrainConfig(epochs=1), progress=False, compile=True)


@pytest.mark.skipif(not any(__import__("shutil").which(c) for c in ("g++", "c++")), reason="needs a C++ compiler")
def test_compiled_batched_training_stays_close_to_eager(monkeypatch):
    """The whole batched step (augment, stacked forward/backward, SGD) through torch.compile: as eager, to float
    reordering, and one compiled step serves a second call and another batch size (no compiling per group of
    networks or per partial batch: a ladder's groups would otherwise compile six graphs)."""
    from torch._dynamo.utils import counters

    from yoco import train as train_mod
    from yoco.train import train_batched

    monkeypatch.setattr(train_mod, "_STEPS", {})
    x, y = separable_images(n_per_class=4)
    cfgs = [TrainConfig(epochs=2, batch_size=8, seed=s) for s in range(3)]

    def fresh():
        nets = []
        for s in range(3):
            with seeded(s):
                nets.append(create_model("convnet", 4, 1, 16, width=4, depth=2))
        return nets

    eager = train_batched(fresh(), [x] * 3, [y] * 3, cfgs, progress=False)
    torch._dynamo.reset()
    counters.clear()
    comp = train_batched(fresh(), [x] * 3, [y] * 3, cfgs, progress=False, compile=True)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs > 0
    train_batched(fresh(), [x] * 3, [y] * 3, cfgs, progress=False, compile=True)
    assert counters["stats"]["unique_graphs"] == graphs
    other = [TrainConfig(epochs=1, batch_size=6, seed=s) for s in range(3)]  # batches of 6, 6 and 4 images
    train_batched(fresh(), [x] * 3, [y] * 3, other, progress=False, compile=True)
    assert counters["stats"]["unique_graphs"] == graphs
    for a, b in zip(eager, comp, strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pb, pa, atol=1e-4, rtol=1e-4)


def test_batched_training_carries_sgd_momentum_across_calls_as_train_does():
    """IDC trains one network in bursts with one optimizer; the batched step must pick up and leave the SGD
    momentum buffers exactly where ``train(optimizer=...)`` does, or the compiled network update drifts."""
    from yoco.train import train_batched

    x, y = separable_images(n_per_class=4)
    cfg = TrainConfig(epochs=2, batch_size=8, milestones=(), seed=3)

    def fresh():
        with seeded(0):
            net = create_model("convnet", 4, 1, 16, width=4, depth=2)
        return net, torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)

    ref, ref_opt = fresh()
    net, opt = fresh()
    for burst in range(3):
        c = dataclasses.replace(cfg, seed=burst)
        train(ref, x, y, c, progress=False, optimizer=ref_opt)
        train_batched([net], [x], [y], [c], progress=False, optimizers=[opt])
    for (name, pa), pb in zip(ref.named_parameters(), net.parameters(), strict=True):
        torch.testing.assert_close(pb, pa, atol=1e-5, rtol=1e-4, msg=name)
        torch.testing.assert_close(opt.state[pb]["momentum_buffer"], ref_opt.state[pa]["momentum_buffer"],
                                   atol=1e-5, rtol=1e-4, msg=name)
    nesterov = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    with pytest.raises(YocoError, match="carries only torch.optim.SGD"):
        train_batched([net], [x], [y], [cfg], progress=False, optimizers=[nesterov])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_training_replayed_as_cuda_graphs_matches_eager_on_cuda(monkeypatch, ieee_float32):
    """The compiled batched step in CUDA-graph mode (``YOCO_COMPILE_MODE=reduce-overhead``): each step feeds the
    last step's weights and momenta back in, and a replay frees its outputs when the next one starts; the first
    H100 try failed on exactly that. The weights, and the logits the batch hook saw, must match eager training."""
    from yoco import train as train_mod
    from yoco.train import train_batched

    monkeypatch.setattr(train_mod, "_STEPS", {})
    monkeypatch.setenv("YOCO_COMPILE_MODE", "reduce-overhead")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 1, 16, 16, generator=g).cuda(), (torch.arange(24) % 4).cuda()
    cfgs = [TrainConfig(epochs=3, batch_size=10, seed=s) for s in (0, 1)]

    def run(compile: bool) -> tuple[list, list[float]]:
        seen: list[float] = []
        nets = []
        for s in range(2):
            with seeded(s):
                nets.append(create_model("convnet", 4, 1, 16, width=8, depth=2).cuda())
        out = train_batched(nets, [x, x], [y, y], cfgs, progress=False, compile=compile,
                            on_batch=lambda i, b: seen.append(float(b.logits.sum())))
        return out, seen

    eager, seen_eager = run(False)
    graphed, seen_graphed = run(True)
    assert seen_graphed == pytest.approx(seen_eager, rel=1e-3, abs=1e-3)
    for a, b in zip(eager, graphed, strict=True):
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(pb, pa, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("mix", ["cutmix", "mixup"])
@pytest.mark.parametrize("shared", [True, False])
def test_one_pass_batches_equal_each_networks_own_batch(mix, shared):
    """The batched loop augments all networks in one pass; each network must still get exactly the batch, the
    partner labels and the mixing weight its own recipe draws (some networks mix, some not, in one step)."""
    from yoco.train import _augment_many, _draw_many, _filled, _gather, _loss, _losses, _Recipe

    n_nets, n, b = 5, 20, 8
    xs = [torch.rand(n, 3, 12, 12, generator=torch.Generator().manual_seed(i)) for i in range(n_nets)]
    ys = [torch.softmax(torch.randn(n, 4, generator=torch.Generator().manual_seed(10 + i)), 1) for i in range(n_nets)]
    if shared:
        xs, ys = [xs[0]] * n_nets, [ys[0]] * n_nets
    cfgs = [_filled(TrainConfig(epochs=1, seed=s, mix=mix, mix_p=0.5, dsa="color_crop_cutout_flip_scale_rotate",
                                flip=True)) for s in range(n_nets)]
    own, batched = [_Recipe(c) for c in cfgs], [_Recipe(c) for c in cfgs]
    pool = xs[0] if shared else torch.stack(xs)
    pool_y = ys[0] if shared else torch.stack(ys)
    out = torch.randn(n_nets, b, 4)
    mixed = set()
    for step in range(6):
        idx = [torch.randperm(n, generator=torch.Generator().manual_seed(100 * step + i))[:b] for i in range(n_nets)]
        want = [r.batch(xs[i], ys[i], idx[i]) for i, r in enumerate(own)]
        x, y = _gather(batched, pool, pool_y, idx)  # what train_batched does before its step
        draws = _draw_many(batched, b, 12, 12, pool.device)
        (x, ya, yb), lam = _augment_many(x, y, draws, batched[0].dsa), draws.lam
        for i, (wx, wya, wyb, wlam) in enumerate(want):
            assert torch.equal(x[i], wx) and torch.equal(ya[i], wya) and torch.equal(yb[i], wyb)
            assert (float(lam[0, i]), float(lam[1, i])) == pytest.approx((wlam, 1 - wlam), abs=1e-7)
            mixed.add(wlam != 1.0)
        total = sum(_loss(out[i], wya, wyb, wlam) for i, (_, wya, wyb, wlam) in enumerate(want))
        torch.testing.assert_close(_losses(out, ya, yb, lam), total, rtol=1e-5, atol=1e-6)
    assert mixed == {True, False}  # networks that mix and networks that do not, in the same steps


@pytest.mark.parametrize("mix_p", [1.0, 0.0])
def test_the_batched_step_traces_as_one_graph(mix_p):
    """CUDA graphs (``YOCO_COMPILE_MODE=reduce-overhead``) replay what ``torch.compile`` captures; a graph break in
    the batched step (a host sync such as ``.item()``, a data-dependent branch) would split the step and bring
    back the launches it exists to remove. Traced only (no compiler needed)."""
    import torch._dynamo as dynamo
    from torch.func import stack_module_state

    from yoco.train import _BatchedStep, _draw_many, _filled, _gather, _Recipe

    n_nets = 3
    models = [create_model("convnet3", 10, 1, 28, width=8) for _ in range(n_nets)]
    recipes = [_Recipe(_filled(TrainConfig(epochs=2, seed=s, mix_p=mix_p))) for s in range(n_nets)]
    stacked, _ = stack_module_state(models)
    params = {k: v.detach().clone() for k, v in stacked.items()}
    momenta = {k: torch.zeros_like(v) for k, v in params.items()}
    images, labels = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    x, y = _gather(recipes, images, labels, [torch.randperm(40)[:32] for _ in range(n_nets)])
    draws = _draw_many(recipes, 32, 28, 28, torch.device("cpu"))
    step = _BatchedStep(models[0], recipes[0].dsa, recipes[0].cfg)
    explained = dynamo.explain(step)(params, momenta, x, y, draws, torch.tensor(0.01))
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons


def test_bf16_trains_under_autocast_with_float32_weights_one_by_one_and_batched():
    """``precision="bf16"``: the steps' logits are bfloat16 (autocast), the weights and momenta stay float32, the
    numbers move away from float32's, and the batched run matches one-by-one runs at bfloat16's tolerance."""
    from yoco.train import train_batched

    x, y = separable_images(n_per_class=6)
    cfg = TrainConfig(epochs=2, batch_size=12, precision="bf16")

    def fresh():
        with seeded(3):
            return create_model("convnet", 4, 1, 16, width=8, depth=2)

    dtypes = set()
    m16 = train(fresh(), x, y, cfg, progress=False, on_batch=lambda b: dtypes.add(b.logits.dtype))
    m32 = train(fresh(), x, y, dataclasses.replace(cfg, precision="fp32"), progress=False)
    assert dtypes == {torch.bfloat16} and all(p.dtype == torch.float32 for p in m16.parameters())
    assert not torch.equal(m16.classifier.weight, m32.classifier.weight)
    batched_dtypes = set()
    (mb,) = train_batched([fresh()], [x], [y], [cfg], progress=False,
                          on_batch=lambda i, b: batched_dtypes.add(b.logits.dtype))
    assert batched_dtypes == {torch.bfloat16}
    assert torch.allclose(mb.classifier.weight, m16.classifier.weight, atol=2e-2)


def test_precision_is_recorded_only_when_it_is_not_the_protocols():
    """Configs written before the option read the same (and so do the cache keys made from them)."""
    from yoco.dynamics import DynamicsConfig
    from yoco.evaluate import EvalConfig

    assert "precision" not in TrainConfig().to_dict() and TrainConfig.from_dict(TrainConfig().to_dict()) == TrainConfig()
    bf = TrainConfig(precision="bf16")
    assert bf.to_dict()["precision"] == "bf16" and TrainConfig.from_dict(bf.to_dict()) == bf
    for cfg in (EvalConfig(), DynamicsConfig()):
        assert "precision" not in cfg.to_dict()["train"]
        assert dataclasses.replace(cfg, train=bf).to_dict()["train"]["precision"] == "bf16"
    with pytest.raises(YocoError, match="precision must be one of fp32, tf32, bf16, got 'fp16'"):
        TrainConfig(precision="fp16")


def test_tf32_on_a_cpu_is_one_clear_error():
    x, y = separable_images(n_per_class=2)
    model = create_model("convnet", 4, 1, 16, width=8, depth=2)
    with pytest.raises(YocoError, match="--precision tf32 needs an NVIDIA GPU"):
        train(model, x, y, TrainConfig(epochs=1, precision="tf32"), progress=False)
