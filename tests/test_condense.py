"""IDC condensation on tiny synthetic data: initialisation, descent, checkpoints/resume, input checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers import separable_images

from yoco.condense import (
    PRESETS,
    IDCConfig,
    checkpoint_path,
    condense,
    config_from_spec,
    gradient_distance,
    init_synthetic,
    matched_params,
    matching_cost_breakdown,
    matching_loss,
)
from yoco.data.condensed import decode_images, load
from yoco.data.datasets import RealDataset
from yoco.errors import YocoError
from yoco.models import create_model
from yoco.train import seeded


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


def test_mix_init_decodes_to_downsampled_real_images_in_tile_order():
    real = fake_real()
    cs = init_synthetic(real, ipc=2, factor=2, init="mix", generator=torch.Generator().manual_seed(3))
    src = torch.tensor(cs.meta.extra["source_indices"])
    assert cs.images.shape == (8, 1, 8, 8) and cs.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert src.numel() == 8 * 4
    # decoded image j is stored image j // 4's tile j % 4, so its source must have the stored image's label
    assert torch.equal(real.train_labels[src], cs.labels.repeat_interleave(4))
    for c in range(4):
        assert len(set(src[c * 8 : (c + 1) * 8].tolist())) == 8  # no real image used twice in a class
    small = F.avg_pool2d(real.train_float()[src], 2)
    # row-major tiles: top-left, top-right, bottom-left, bottom-right
    quads = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for i in range(8):
        for t, (r, q) in enumerate(quads):
            tile = cs.images[i, :, r * 4 : (r + 1) * 4, q * 4 : (q + 1) * 4]
            assert torch.allclose(tile, small[i * 4 + t], atol=1e-6)
    expected = F.interpolate(small, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(decode_images(cs.images, 2), expected, atol=1e-6)


def test_real_and_noise_init():
    real = fake_real()
    cs = init_synthetic(real, ipc=3, factor=2, init="real", generator=torch.Generator().manual_seed(0))
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
                              lr_img=1e-3, scale_lr_img=False, dsa="none")
    start = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, generator=torch.Generator().manual_seed(cfg.seed))
    with seeded(cfg.seed):
        net = create_model(cfg.model, 4, 1, 8, width=cfg.width)
    out = condense(real, cfg, tmp_path / "tiny.safetensors", device="cpu", progress=False)
    before = matching_loss(real, start, net, cfg, seed=7)
    after = matching_loss(real, out, net, cfg, seed=7)
    assert matching_loss(real, start, net, cfg, seed=7) == before  # a fixed evaluation
    assert after < 0.85 * before


def test_output_file_loads_with_shapes_and_metadata(tmp_path):
    real = fake_real()
    out = tmp_path / "missing" / "dir" / "idc.safetensors"
    cs = condense(real, dataclasses.replace(TINY, iterations=2), out, device="cpu", progress=False)
    back = load(out)
    assert back.images.shape == (8, 1, 8, 8)
    assert back.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    m = back.meta
    assert (m.method, m.ipc, m.factor, m.normalized, m.dataset, m.num_classes) == ("idc", 2, 2, False, "tiny", 4)
    assert m.extra["config"]["iterations"] == 2 and len(m.extra["matching_loss"]) == 2
    assert 0 <= float(back.images.min()) and float(back.images.max()) <= 1
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
        condense(real, dataclasses.replace(cfg, eval_every=at), out, device="cpu", progress=False, eval_fn=stop)
    return seen


def test_resume_continues_bit_exactly(tmp_path):
    real = fake_real()
    straight = condense(real, TINY, tmp_path / "a.safetensors", device="cpu", progress=False)

    out = tmp_path / "b.safetensors"
    # The interrupted run was asked for more iterations: the iteration count may differ on resume.
    seen = _interrupted_run(real, dataclasses.replace(TINY, iterations=6), out, at=2)
    assert len(seen) == 1 and seen[0].images.shape == (8, 1, 8, 8)
    assert checkpoint_path(out).is_file() and not out.exists()
    resumed = condense(real, TINY, out, device="cpu", resume=True, progress=False)
    assert torch.equal(resumed.images, straight.images)
    assert resumed.meta.extra["matching_loss"] == straight.meta.extra["matching_loss"]
    assert not checkpoint_path(out).exists()


def test_resume_with_another_config_is_refused_and_checkpoint_kept(tmp_path):
    real = fake_real()
    out = tmp_path / "c.safetensors"
    _interrupted_run(real, TINY, out, at=2)
    ckpt = checkpoint_path(out)
    before = ckpt.read_bytes()
    with pytest.raises(YocoError) as err:
        condense(real, dataclasses.replace(TINY, lr_img=0.1, width=16), out, device="cpu", resume=True,
                 progress=False)
    msg = str(err.value)
    assert str(ckpt) in msg and "lr_img: 0.005 in the checkpoint, 0.1 now" in msg and "width" in msg
    assert "seed" not in msg
    assert ckpt.read_bytes() == before and not out.exists()


@pytest.mark.parametrize(("change", "words"), [
    ({"ipc": 13}, "ipc 13 is larger than class"),
    ({"factor": 3}, "factor 3 does not divide"),
    ({"iterations": 0}, "iterations must be at least 1"),
    ({"init": "zeros"}, "unknown init"),
    ({"metric": "cos"}, "unknown metric"),
])
def test_bad_input_is_refused_before_any_file(tmp_path, change, words):
    out = tmp_path / "bad.safetensors"
    with pytest.raises(YocoError, match=words):
        condense(fake_real(), dataclasses.replace(TINY, **change), out, device="cpu", progress=False)
    assert not out.exists() and not checkpoint_path(out).exists()


def test_presets_and_spec_parsing():
    assert PRESETS["idc"] == IDCConfig()
    assert (PRESETS["idc"].iterations, PRESETS["idc"].inner, PRESETS["idc"].lr_img) == (2000, 100, 5e-3)
    assert PRESETS["imagenet10"].factor == 3 and PRESETS["imagenet10"].model == "resnet10_ap"
    cfg = config_from_spec("fashion-mnist", "ipc=5, preset=cpu-quick, lr_img=0.002, scale_lr_img=false")
    assert (cfg.ipc, cfg.lr_img, cfg.scale_lr_img, cfg.metric) == (5, 0.002, False, "l1")
    assert cfg.iterations == PRESETS["cpu-quick"].iterations
    assert config_from_spec("cifar10", "ipc=50").effective_lr_img == pytest.approx(5 * 5e-3)
    for spec, words in [("ipc", "key=value"), ("speed=3", "unknown field"), ("ipc=ten", "must be int"),
                        ("preset=huge", "unknown IDC preset")]:
        with pytest.raises(YocoError, match=words):
            config_from_spec("cifar10", spec)


def test_cost_breakdown_reports_every_part():
    res = matching_cost_breakdown(fake_real(), TINY, device="cpu", steps=1)
    for key in ("data_s", "match_s", "update_s", "net_train_s", "plain_s", "inner_step_s"):
        assert res[key] > 0
    assert res["outer_iteration_s"] == pytest.approx(res["inner_step_s"] * TINY.inner)
    assert res["match_over_plain"] > 0
