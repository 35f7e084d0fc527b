"""IDC condensation on tiny synthetic data: initialisation, descent, checkpoints/resume, input checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers import rt, separable_images

from yoco.augment import DSA
from yoco.condense import (
    PRESETS,
    IDCConfig,
    checkpoint_path,
    condense,
    config,
    config_from_spec,
    gradient_distance,
    idc,
    init_synthetic,
    inner_step_batched,
    inner_step_sequential,
    matched_params,
    matching,
    matching_loss,
)
from yoco.data.condensed import decode_images, load
from yoco.data.datasets import RealDataset
from yoco.errors import YocoError
from yoco.models import create_model
from yoco.runtime import seeded


def _cost_breakdown():
    """benchmarks/condense_cost.py's ``matching_cost_breakdown`` (benchmark code, outside the package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "condense_cost.py"
    spec = importlib.util.spec_from_file_location("condense_cost", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.matching_cost_breakdown


def fake_real(n_per_class: int = 12, num_classes: int = 4, size: int = 8, channels: int = 1) -> RealDataset:
    x, y = separable_images(n_per_class, num_classes, size, channels, seed=0)
    tx, ty = separable_images(n_per_class, num_classes, size, channels, seed=1)
    # Uneven texture so every real image differs from the others (the tile-order test needs that).
    x = x + 0.2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(5))

    def to8(t: torch.Tensor) -> torch.Tensor:
        return (t.clamp(0, 1) * 255).round().to(torch.uint8)

    return RealDataset("tiny", to8(x), y, to8(tx), ty, [str(c) for c in range(num_classes)],
                       mean=(0.3,) * channels, std=(0.3,) * channels, flip=True, root="<memory>")


# 4 classes of 8x8 images, ConvNet-3 of width 8: a whole run is well under a second on one core.
TINY = IDCConfig(ipc=2, factor=2, iterations=4, inner=2, batch_real=8, batch_syn=6, net_images=16, width=8,
                 checkpoint_every=1)


def test_mix_init_is_idcs_first_images_nearest_downsampled():
    # IDC Synthesizer.init('mix'): the first ipc*f^2 images of class c; tile k (row-major) of stored image t
    # holds image k*ipc + t, downsampled with F.interpolate's default (nearest)
    real = fake_real()
    cs = init_synthetic(real, ipc=2, factor=2, init="mix")
    assert cs.images.shape == (8, 1, 8, 8) and cs.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    quads = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for c, idx in enumerate(real.class_indices("train")):
        first = torch.sort(idx).values[:8]
        for t in range(2):
            for k, (r, q) in enumerate(quads):
                source = real.train_float()[first[k * 2 + t]]
                tile = cs.images[c * 2 + t, :, r * 4:(r + 1) * 4, q * 4:(q + 1) * 4]
                assert torch.equal(tile, source[:, ::2, ::2])  # nearest at factor 2 keeps every other pixel
    src = torch.tensor(cs.meta.extra["source_indices"])
    assert torch.equal(real.train_labels[src], cs.labels.repeat_interleave(4))


def test_random_mix_init_decodes_to_area_downsampled_random_images_in_tile_order():
    real = fake_real()
    cs = init_synthetic(real, ipc=2, factor=2, init="mix", random=True, generator=torch.Generator().manual_seed(3))
    src = torch.tensor(cs.meta.extra["source_indices"])
    assert src.numel() == 8 * 4
    # decoded image j is stored image j // 4's tile j % 4, so its source must have the stored image's label
    assert torch.equal(real.train_labels[src], cs.labels.repeat_interleave(4))
    for c in range(4):
        assert len(set(src[c * 8 : (c + 1) * 8].tolist())) == 8  # no real image used twice in a class
    small = F.avg_pool2d(real.train_float()[src], 2)
    expected = F.interpolate(small, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(decode_images(cs.images, 2), expected, atol=1e-6)
    other = init_synthetic(real, ipc=2, factor=2, init="mix", random=True, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(other.images, cs.images)


def test_real_and_noise_init():
    real = fake_real()
    cs = init_synthetic(real, ipc=3, factor=2, init="real", random=True, generator=torch.Generator().manual_seed(0))
    src = torch.tensor(cs.meta.extra["source_indices"])
    assert torch.allclose(cs.images, real.train_float()[src]) and torch.equal(real.train_labels[src], cs.labels)
    noise = init_synthetic(real, ipc=3, factor=2, init="noise", generator=torch.Generator().manual_seed(0))
    assert noise.images.shape == (12, 1, 8, 8) and 0 <= float(noise.images.min()) < float(noise.images.max()) <= 1
    with pytest.raises(YocoError, match="init"):
        init_synthetic(real, ipc=3, factor=2, init="gaussian")


def test_matched_params_are_conv_kernels_and_distance_is_zero_on_equal_batches():
    with seeded(0):
        net = create_model("convnet3", 4, 1, 8, width=8)
    params = matched_params(net)
    assert len(params) == 3 and all(p.dim() == 4 for p in params)
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    different = gradient_distance(net, params, x, y, x.flip(0), y).item()
    # equal batches: zero up to float32 rounding of two separately computed gradients (thread-order dependent)
    assert different > 0
    assert gradient_distance(net, params, x, y, x, y).item() <= 1e-6 * different


def test_condensation_descends_the_matching_objective(tmp_path):
    # One outer iteration whose network never trains (net_lr 0), no augmentation and batches holding whole
    # classes: condense's inner steps then descend exactly the objective matching_loss measures.
    real = fake_real(n_per_class=6)
    cfg = dataclasses.replace(TINY, ipc=1, iterations=1, inner=10, batch_real=64, batch_syn=64, net_lr=0.0,
                              lr_img=2e-3, scale_lr_img=False, match_dsa="none")
    start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init)
    with seeded(cfg.seed):
        net = create_model(cfg.model, 4, 1, 8, width=cfg.width)
    out = condense(real, cfg, tmp_path / "tiny.safetensors", runtime=rt())
    before = matching_loss(real, start, net, cfg, seed=7)
    after = matching_loss(real, out, net, cfg, seed=7)
    assert matching_loss(real, start, net, cfg, seed=7) == before  # a fixed evaluation
    assert after < 0.85 * before


def test_output_file_loads_with_shapes_and_metadata(tmp_path):
    real = fake_real()
    out = tmp_path / "missing" / "dir" / "idc.safetensors"
    cs = condense(real, dataclasses.replace(TINY, iterations=2), out, runtime=rt())
    back = load(out)
    assert back.images.shape == (8, 1, 8, 8)
    assert back.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    m = back.meta
    assert (m.method, m.ipc, m.factor, m.normalized, m.dataset, m.num_classes) == ("idc", 2, 2, False, "tiny", 4)
    assert m.extra["config"]["iterations"] == 2 and len(m.extra["matching_loss"]) == 2
    # clamped to [0, 1] at the start of each outer iteration, not after the last update (IDC saves it so)
    assert -0.05 <= float(back.images.min()) and float(back.images.max()) <= 1.05
    assert torch.equal(back.images, cs.images)
    assert not checkpoint_path(out).exists()


class Interrupt(Exception):
    """Stands in for a crash or Ctrl-C after a checkpoint was written."""


def _interrupted_run(real, cfg, out, at: int) -> list:
    """Run ``cfg`` until its evaluation hook fires after iteration ``at`` (checkpoints every iteration)."""
    seen = []

    def stop(cs):
        seen.append(cs)
        raise Interrupt

    with pytest.raises(Interrupt):
        condense(real, dataclasses.replace(cfg, eval_every=at), out, runtime=rt(), eval_fn=stop)
    return seen


def test_resume_continues_bit_exactly(tmp_path):
    real = fake_real()
    straight = condense(real, TINY, tmp_path / "a.safetensors", runtime=rt())

    out = tmp_path / "b.safetensors"
    # The interrupted run was asked for more iterations: the iteration count may differ on resume.
    seen = _interrupted_run(real, dataclasses.replace(TINY, iterations=6), out, at=2)
    assert len(seen) == 1 and seen[0].images.shape == (8, 1, 8, 8)
    assert checkpoint_path(out).is_file() and not out.exists()
    resumed = condense(real, TINY, out, runtime=rt(), resume=True)
    assert torch.equal(resumed.images, straight.images)
    assert resumed.meta.extra["matching_loss"] == straight.meta.extra["matching_loss"]
    assert not checkpoint_path(out).exists()


def _idc_loop_as_written(real, cfg):
    """IDC's condense.py order with every draw made when it happens: per outer iteration a fresh network, then per
    inner step the class loop's draws and image steps, then the network's pass on real images (also after the
    last step), all from the run's one generator."""
    g = torch.Generator().manual_seed(cfg.seed)
    syn = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, generator=g).images.clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=cfg.effective_lr_img(real.name, 8), momentum=cfg.mom_img)
    pool, dsa, cpu = matching._RealPool(real, torch.device("cpu")), DSA(cfg.match_dsa, flip=real.flip), torch.device("cpu")
    for it in range(cfg.iterations):
        with torch.no_grad():
            syn.clamp_(0, 1)
        net = idc._build_net(cfg, real, cfg.seed + it, cpu)
        net_opt = idc._net_optimizer(net, cfg)
        for _ in range(cfg.inner):
            inner_step_sequential(net, pool, syn, opt, cfg, dsa, g)
            draw = idc._net_draw(pool.labels.shape[0], cfg, g, cfg.net_images)
            idc._train_nets([net], pool, cfg, real.flip, [draw], cfg.net_epochs, [net_opt])
    return syn.detach()


def test_condense_follows_idcs_loop_order_and_batched_networks_agree(tmp_path):
    # The run draws each outer iteration's numbers ahead of its computation; the generator must end where IDC's
    # interleaved order leaves it (bit-exact on one network), and networks of several iterations trained side by
    # side ahead of their matching must give the same images up to float rounding.
    real = fake_real()
    cfg = dataclasses.replace(TINY, iterations=5, inner=3, engine="sequential")
    reference = _idc_loop_as_written(real, cfg)
    one = condense(real, cfg, tmp_path / "one.safetensors", runtime=rt(), net_batch=1)
    assert torch.equal(one.images, reference)
    side = condense(real, cfg, tmp_path / "side.safetensors", runtime=rt(), net_batch=3)
    assert torch.allclose(side.images, reference, atol=1e-5) and not torch.equal(one.images, init_synthetic(
        real, cfg.ipc, cfg.factor, cfg.init).images)
    assert side.meta.extra["matching_loss"] == pytest.approx(one.meta.extra["matching_loss"], rel=1e-4)


def test_a_checkpoint_inside_a_group_of_networks_resumes_one_by_one(tmp_path):
    # Iterations 0-3 share a group; the checkpoint after the second holds that iteration's generator state, not the
    # group's end, so a run continued with networks one by one is the uninterrupted run.
    real = fake_real()
    cfg = dataclasses.replace(TINY, iterations=5, inner=3, net_pretrain_epochs=1)
    straight = condense(real, cfg, tmp_path / "a.safetensors", runtime=rt(), net_batch=1)
    out = tmp_path / "b.safetensors"

    def stop(cs):
        raise Interrupt

    with pytest.raises(Interrupt):
        condense(real, dataclasses.replace(cfg, eval_every=2), out, runtime=rt(), eval_fn=stop,
                 net_batch=4)
    resumed = condense(real, cfg, out, runtime=rt(), resume=True, net_batch=1)
    assert torch.allclose(resumed.images, straight.images, atol=1e-5)
    assert len(resumed.meta.extra["matching_loss"]) == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_networks_side_by_side_on_cuda_equal_one_by_one_and_the_cpu(tmp_path, ieee_float32):
    real = fake_real()
    cfg = dataclasses.replace(TINY, iterations=3, inner=3, engine="batched")
    cpu = condense(real, cfg, tmp_path / "cpu.safetensors", runtime=rt(), net_batch=1)
    one = condense(real, cfg, tmp_path / "one.safetensors", runtime=rt("cuda"), net_batch=1)
    side = condense(real, cfg, tmp_path / "side.safetensors", runtime=rt("cuda"))  # the GPU default: 3
    assert torch.allclose(side.images, one.images, atol=1e-5) and torch.allclose(one.images, cpu.images, atol=1e-4)


def test_net_group_defaults_and_refusals():
    real, cfg = fake_real(), TINY
    assert idc.net_group(cfg, real, torch.device("cpu")) == 1
    assert idc.net_group(cfg, real, torch.device("cuda")) == config.GPU_NET_GROUP > 1
    assert idc.net_group(cfg, real, torch.device("cpu"), 4) == 4
    assert idc.net_group(dataclasses.replace(cfg, model="resnet18"), real, torch.device("cuda"), 4) == 1
    with pytest.raises(YocoError, match="at least 1"):
        idc.net_group(cfg, real, torch.device("cpu"), 0)


def test_resume_with_another_config_is_refused_and_checkpoint_kept(tmp_path):
    real = fake_real()
    out = tmp_path / "c.safetensors"
    _interrupted_run(real, TINY, out, at=2)
    ckpt = checkpoint_path(out)
    before = ckpt.read_bytes()
    with pytest.raises(YocoError) as err:
        condense(real, dataclasses.replace(TINY, lr_img=0.1, width=16), out, runtime=rt(), resume=True)
    msg = str(err.value)
    assert str(ckpt) in msg and "lr_img: 0.005 in the checkpoint, 0.1 now" in msg and "width" in msg
    assert "seed" not in msg
    assert ckpt.read_bytes() == before and not out.exists()


@pytest.mark.parametrize(("change", "words"), [
    ({"ipc": 13}, "needs 52 real images per class to initialise"),
    ({"factor": 5}, "factor 5 neither divides the image size 8x8"),
    ({"iterations": 0}, "iterations must be at least 1"),
    ({"init": "zeros"}, "unknown init"),
    ({"metric": "cos"}, "unknown metric"),
])
def test_bad_input_is_refused_before_any_file(tmp_path, change, words):
    out = tmp_path / "bad.safetensors"
    with pytest.raises(YocoError, match=words):
        condense(fake_real(), dataclasses.replace(TINY, **change), out, runtime=rt())
    assert not out.exists() and not checkpoint_path(out).exists()


def test_presets_and_spec_parsing():
    assert PRESETS["idc"] == IDCConfig()
    assert (PRESETS["idc"].iterations, PRESETS["idc"].inner, PRESETS["idc"].lr_img) == (2000, 100, 5e-3)
    assert PRESETS["imagenet10"].factor == 3 and PRESETS["imagenet10"].model == "resnet10_ap"
    cfg = config_from_spec("fashion-mnist", "ipc=5, preset=cpu-quick, lr_img=0.002, scale_lr_img=false")
    assert (cfg.ipc, cfg.lr_img, cfg.scale_lr_img, cfg.metric) == (5, 0.002, False, "l1")
    assert cfg.iterations == PRESETS["cpu-quick"].iterations
    assert config_from_spec("cifar10", "ipc=50").effective_lr_img("cifar10", 32) == pytest.approx(5 * 5e-3)
    fm = config_from_spec("fashion-mnist", "ipc=10")
    assert fm.effective_lr_img("fashion-mnist", 28) == pytest.approx(1e-4 * 0.765625)  # IDC: (28 / 32)^2
    for spec, words in [("ipc", "key=value"), ("speed=3", "unknown field"), ("ipc=ten", "must be int"),
                        ("preset=huge", "unknown IDC preset")]:
        with pytest.raises(YocoError, match=words):
            config_from_spec("cifar10", spec)


def test_cost_breakdown_reports_every_part():
    matching_cost_breakdown = _cost_breakdown()
    res = matching_cost_breakdown(fake_real(), TINY, device="cpu", steps=1)
    for key in ("match_s", "net_train_s", "plain_s", "inner_step_s"):
        assert res[key] > 0
    assert res["outer_iteration_s"] == pytest.approx(res["inner_step_s"] * TINY.inner)
    assert res["match_over_plain"] > 0 and res["net_batch"] == 1
    side = matching_cost_breakdown(fake_real(), TINY, device="cpu", steps=1, net_batch=2)
    assert side["net_batch"] == 2 and side["net_train_s"] > 0


def _engine_setup(seed: int = 0, model: str = "convnet3", size: int = 8):
    real = fake_real(n_per_class=12, num_classes=4, size=size)
    cfg = dataclasses.replace(TINY, ipc=2, batch_syn=6, lr_img=0.05, scale_lr_img=False, model=model)
    with seeded(seed):
        net = create_model(cfg.model, 4, 1, size, width=cfg.width)
    start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init).images
    return real, cfg, net, start


# ConvNet runs as grouped convolutions; ResNet-AP-10 (instance norm, no buffers, not a ConvNet) through vmap
@pytest.mark.parametrize("model,size", [("convnet3", 8), ("resnet10_ap", 16)])
def test_all_classes_at_once_give_each_classs_distance_and_image_gradient(model, size):
    real, cfg, net, start = _engine_setup(model=model, size=size)
    pool, dsa = matching._RealPool(real, torch.device("cpu")), DSA(cfg.match_dsa, flip=real.flip)
    g = torch.Generator().manual_seed(1)
    draws = [matching._draw(pool, c, cfg, g) for c in range(4)]
    one = start.clone().requires_grad_(True)
    per_class = [matching._class_loss(net, matching.matched_params(net), pool, one[c * cfg.ipc:(c + 1) * cfg.ipc], c,
                                 draws[c], cfg, dsa) for c in range(4)]
    (grad_one,) = torch.autograd.grad(sum(per_class), one)
    together = start.clone().requires_grad_(True)
    stacked = matching._class_losses_stacked(net, pool, together, draws, cfg, dsa)
    (grad_together,) = torch.autograd.grad(stacked.sum(), together)
    torch.testing.assert_close(stacked, torch.stack(per_class).detach(), rtol=1e-5, atol=1e-5)
    assert grad_one.abs().max() > 0
    torch.testing.assert_close(grad_together, grad_one, rtol=1e-4, atol=1e-5 * float(grad_one.abs().max()))


def test_batched_inner_steps_equal_idcs_sequential_per_class_loop():
    # IDC steps the images once per class with ONE momentum buffer; the batched engine reproduces that order in
    # closed form from one gradient evaluation. Three inner steps, so the buffer carries across steps.
    real, cfg, net, start = _engine_setup()
    pool, dsa = matching._RealPool(real, torch.device("cpu")), DSA(cfg.match_dsa, flip=real.flip)
    seq = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([seq], lr=cfg.lr_img, momentum=cfg.mom_img)
    g_seq, g_bat = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    bat, buf = start.clone(), None
    for _ in range(3):
        loss_seq = inner_step_sequential(net, pool, seq, opt, cfg, dsa, g_seq)
        bat, buf, loss_bat = inner_step_batched(net, pool, bat, buf, cfg.lr_img, cfg, dsa, g_bat)
        assert float(loss_bat) == pytest.approx(float(loss_seq), rel=1e-4)
    moved = (seq.detach() - start).abs().max()
    assert moved > 1e-3  # the images did move
    assert torch.allclose(bat, seq.detach(), atol=1e-5 * float(moved) + 1e-7)
    assert torch.allclose(buf, opt.state[seq]["momentum_buffer"], atol=1e-5 * float(buf.abs().max()))
    assert torch.equal(g_seq.get_state(), g_bat.get_state())  # the same random draws, in the same order


def test_sequential_step_takes_one_image_step_per_class_and_one_dsa_draw_per_class(monkeypatch):
    real, cfg, net, start = _engine_setup()
    pool, dsa = matching._RealPool(real, torch.device("cpu")), DSA(cfg.match_dsa, flip=real.flip)
    syn = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=cfg.lr_img, momentum=cfg.mom_img)
    steps, calls = [], []
    orig_step, orig_call = torch.optim.SGD.step, DSA.__call__
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: (steps.append(1), orig_step(self, *a, **k))[1])

    def spy(self, x, *a, **k):
        calls.append((x.shape[0], k.get("shared")))
        return orig_call(self, x, *a, **k)

    monkeypatch.setattr(DSA, "__call__", spy)
    inner_step_sequential(net, pool, syn, opt, cfg, dsa, torch.Generator().manual_seed(0))
    assert len(steps) == 4  # one image step per class
    # one shared-parameter draw per class, on the real batch and the decoded synthetic batch concatenated
    assert calls == [(cfg.batch_real + cfg.batch_syn, True)] * 4


def test_condense_engines_agree(tmp_path):
    real = fake_real()
    cfg = dataclasses.replace(TINY, iterations=2, inner=2, lr_img=0.05, scale_lr_img=False)
    a = condense(real, dataclasses.replace(cfg, engine="batched"), tmp_path / "a.safetensors", runtime=rt())
    b = condense(real, dataclasses.replace(cfg, engine="sequential"), tmp_path / "b.safetensors", runtime=rt())
    assert not torch.equal(a.images, init_synthetic(real, cfg.ipc, cfg.factor).images)
    assert torch.allclose(a.images, b.images, atol=1e-5)


def test_matching_augmentation_is_color_crop_cutout_and_network_update_color_crop():
    fm = PRESETS["fashion-mnist"]
    assert fm.match_dsa == "color_crop_cutout"  # flip/scale/rotate belong to evaluation only
    net = idc._net_train_config(fm, flip=True, epochs=1, seed=0)
    assert (net.dsa, net.mix, net.mix_p) == ("color_crop", "cutmix", 0.5)
    assert idc._net_train_config(PRESETS["mnist"], flip=False, epochs=1, seed=0).mix == "none"


def test_a_schedule_spread_over_calls_equals_one_run(tmp_path):
    # how a long condensation is spread over short GPU loans: keep the checkpoint, call again with more iterations
    real = fake_real()
    straight = condense(real, dataclasses.replace(TINY, iterations=4), tmp_path / "a.safetensors", runtime=rt())
    out = tmp_path / "b.safetensors"
    first = condense(real, dataclasses.replace(TINY, iterations=2), out, runtime=rt(),
                     keep_checkpoint=True)
    assert checkpoint_path(out).exists() and len(first.meta.extra["matching_loss"]) == 2
    second = condense(real, dataclasses.replace(TINY, iterations=4), out, runtime=rt(), resume=True)
    assert torch.equal(second.images, straight.images)


def test_batched_inner_step_with_a_class_short_of_a_real_batch_equals_the_sequential_loop():
    # the one-pass augmentation stacks equal real batches; a class with fewer images than batch_real takes the
    # class-by-class path and must still give IDC's result
    real, cfg, net, start = _engine_setup()
    keep = torch.cat([torch.nonzero(real.train_labels == 0).flatten()[:5],
                      torch.nonzero(real.train_labels != 0).flatten()])
    real = dataclasses.replace(real, train_images=real.train_images[keep], train_labels=real.train_labels[keep])
    assert 5 < cfg.batch_real
    pool, dsa = matching._RealPool(real, torch.device("cpu")), DSA(cfg.match_dsa, flip=real.flip)
    seq = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([seq], lr=cfg.lr_img, momentum=cfg.mom_img)
    inner_step_sequential(net, pool, seq, opt, cfg, dsa, torch.Generator().manual_seed(1))
    bat, _, _ = inner_step_batched(net, pool, start.clone(), None, cfg.lr_img, cfg, dsa,
                                   torch.Generator().manual_seed(1))
    moved = (seq.detach() - start).abs().max()
    assert moved > 1e-3
    assert torch.allclose(bat, seq.detach(), atol=1e-5 * float(moved) + 1e-7)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_inner_step_equals_the_sequential_loop_on_cuda(ieee_float32):
    real, cfg, net, start = _engine_setup()
    dev = torch.device("cuda")
    net = net.to(dev)
    pool, dsa = matching._RealPool(real, dev), DSA(cfg.match_dsa, flip=real.flip)
    seq = start.clone().to(dev).requires_grad_(True)
    opt = torch.optim.SGD([seq], lr=cfg.lr_img, momentum=cfg.mom_img)
    bat, buf = start.clone().to(dev), None
    for _ in range(2):
        inner_step_sequential(net, pool, seq, opt, cfg, dsa, torch.Generator().manual_seed(1))
        bat, buf, _ = inner_step_batched(net, pool, bat, buf, cfg.lr_img, cfg, dsa, torch.Generator().manual_seed(1))
    assert torch.allclose(bat, seq.detach(), atol=1e-4)


def test_compiled_network_update_is_a_runtime_choice_a_checkpoint_resumes_across(tmp_path, monkeypatch):
    """``compile`` trains the network between matching steps through the whole-step batched graph (compiled once,
    serving every inner step and every outer iteration's fresh network, its SGD momentum carried across the inner
    steps), and a run begun eager continues compiled from its checkpoint (with an identity wrapper standing in for
    torch.compile: to the same images up to the batched kernels' float rounding)."""
    from yoco import train as train_mod

    real = fake_real()
    straight = condense(real, TINY, tmp_path / "a.safetensors", runtime=rt())
    wrapped = []
    monkeypatch.setattr(train_mod, "_STEPS", {})
    monkeypatch.setattr(train_mod, "compiled", lambda model, device: wrapped.append(type(model).__name__) or model)
    out = tmp_path / "b.safetensors"
    condense(real, dataclasses.replace(TINY, iterations=2), out, runtime=rt(), keep_checkpoint=True)
    assert not wrapped
    resumed = condense(real, TINY, out, runtime=rt(compile=True), resume=True)
    assert wrapped == ["_BatchedStep"]
    torch.testing.assert_close(resumed.images, straight.images, atol=1e-5, rtol=1e-4)


def test_bf16_condensation_runs_under_autocast_records_it_and_resumes_an_fp32_checkpoint(tmp_path, monkeypatch):
    """``precision="bf16"``: the matching and the network updates run under bfloat16 autocast (the images stay
    float32), the set records it, and an fp32 checkpoint continues under bf16 (a runtime choice, as on a GPU loan)."""
    real = fake_real()
    seen = []
    real_autocast = torch.autocast

    def spying(device_type, dtype=None, **kw):
        seen.append((device_type, dtype))
        return real_autocast(device_type, dtype=dtype, **kw)

    monkeypatch.setattr(torch, "autocast", spying)
    fp32 = condense(real, TINY, tmp_path / "a.safetensors", runtime=rt())
    assert not seen
    half = condense(real, dataclasses.replace(TINY, precision="bf16"), tmp_path / "b.safetensors", runtime=rt())
    assert seen and set(seen) == {("cpu", torch.bfloat16)}
    assert half.images.dtype == torch.float32 and not torch.equal(half.images, fp32.images)
    assert load(tmp_path / "b.safetensors").meta.extra["config"]["precision"] == "bf16"
    out = tmp_path / "c.safetensors"
    condense(real, dataclasses.replace(TINY, iterations=2), out, runtime=rt(), keep_checkpoint=True)
    resumed = condense(real, dataclasses.replace(TINY, precision="bf16"), out, runtime=rt(), resume=True)
    assert len(resumed.meta.extra["matching_loss"]) == TINY.iterations
    with pytest.raises(YocoError, match="IDC: unknown precision 'fp8'"):
        condense(real, dataclasses.replace(TINY, precision="fp8"), tmp_path / "d.safetensors", runtime=rt())
