"""ImageNet-10 as IDC and YOCO run it: factor 3 at 224 px, ResNet-AP-10, bound multi-formation, the network update
of condensation, pruned sets' epochs, augmented final passes for entropy/SSP, and the whole job on a tiny
ImageNet-shaped folder.

The ``idc_*`` functions re-express upstream computations step by step (IDC = snu-mllab/Efficient-Dataset-
Condensation @ ceac95a), so yoco is checked against what the reference code computes, not against itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import rt
from torch import nn

from yoco import protocol
from yoco.condense import IDCConfig, condense, idc, init_synthetic, matching
from yoco.data.condensed import (
    CondensedMeta,
    CondensedSet,
    bound_plan,
    decode,
    decode_bound_images,
    decode_images,
    normalize,
)
from yoco.data.datasets import RealDataset
from yoco.errors import YocoError
from yoco.models import create_model
from yoco.runtime import seeded

MEAN, STD = protocol.IMAGENET_MEAN, protocol.IMAGENET_STD

# ----------------------------------------------------------------------------------------------------------
# Re-expressions of IDC's code


def idc_decode_zoom(img: torch.Tensor, factor: int) -> torch.Tensor:
    """IDC condense.py:102-122 (test.py:136-158, YOCO utils/img_loader.py:102-124): pad right and bottom with 0.5
    to a multiple of the factor, cut ceil(h / f) crops row by row, concatenate crop by crop, upsample bilinearly."""
    h = img.shape[-1]
    if h % factor:
        extra = factor - h % factor
        img = F.pad(img, (0, extra, 0, extra), value=0.5)
    s = math.ceil(h / factor)
    crops = [img[:, :, i * s:(i + 1) * s, j * s:(j + 1) * s] for i in range(factor) for j in range(factor)]
    return F.interpolate(torch.cat(crops), size=(h, h), mode="bilinear", align_corners=False)


def idc_decode_zoom_bound(img: torch.Tensor, factor_max: int, bound: int) -> torch.Tensor:
    """IDC condense.py:136-168: factors from the largest down, each taking what the running bound allows."""
    room, left, start, done, out = bound - len(img), len(img), 0, 0, []
    for factor in range(factor_max, 0, -1):
        n = min(room // factor**2, left) if factor > 1 else left
        out.append(idc_decode_zoom(img[start:start + n], factor))
        start, left, done = start + n, left - n, done + n * factor**2
        room = bound - done - left
        if left == 0:
            break
    return torch.cat(out)


def idc_mix_init(img: torch.Tensor, ipc: int, factor: int, size: int) -> torch.Tensor:
    """IDC condense.py:64-84 for one class: tile k (row-major) of stored image t holds real image k * ipc + t, the
    first ``size % factor`` tile rows and columns one pixel larger, each resized with F.interpolate's default."""
    out = torch.zeros(ipc, img.shape[1], size, size)
    s, remained, k, top = size // factor, size % factor, 0, 0
    for i in range(factor):
        h_r = s + 1 if i < remained else s
        left = 0
        for j in range(factor):
            w_r = s + 1 if j < remained else s
            out[:, :, top:top + h_r, left:left + w_r] = F.interpolate(img[k * ipc:(k + 1) * ipc], size=(h_r, w_r))
            left, k = left + w_r, k + 1
        top += h_r
    return out


class IDCIntro(nn.Module):
    """IDC models/resnet_ap.py IntroBlock."""

    def __init__(self, size: str, planes: int, nch: int) -> None:
        super().__init__()
        self.size = size
        self.conv1 = nn.Conv2d(nch, planes, 7 if size == "large" else 3, 1, 3 if size == "large" else 1, bias=False)
        self.bn1 = nn.GroupNorm(planes, planes)
        self.pool = nn.AvgPool2d(4 if size == "large" else 2, 4 if size == "large" else 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return x if self.size == "small" else self.pool(x)


class IDCBlock(nn.Module):
    """IDC models/resnet_ap.py BasicBlock: conv, norm, ReLU, then avg-pool by the stride; conv, norm; shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.bn1 = nn.GroupNorm(planes, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.GroupNorm(planes, planes)
        self.stride = stride
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False),
                                            nn.AvgPool2d(stride, stride), nn.GroupNorm(planes, planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        if self.stride != 1:
            out = F.avg_pool2d(out, self.stride, self.stride)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class IDCResNetAP10(nn.Module):
    """IDC models/resnet_ap.py ResNetAP(depth=10, norm_type='instance') for a non-CIFAR dataset of ``size`` px."""

    def __init__(self, num_classes: int, width: float, size: int, nch: int = 3) -> None:
        super().__init__()
        net_size = "small" if 0 < size <= 64 else "mid" if 64 < size <= 128 else "large"
        nc = int(64 * width)
        self.layer0 = IDCIntro(net_size, nc, nch)
        self.layer1 = nn.Sequential(IDCBlock(nc, nc, 1))
        self.layer2 = nn.Sequential(IDCBlock(nc, nc * 2, 2))
        self.layer3 = nn.Sequential(IDCBlock(nc * 2, nc * 4, 2))
        self.layer4 = nn.Sequential(IDCBlock(nc * 4, nc * 8, 2))
        self.fc = nn.Linear(nc * 8, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
            elif isinstance(m, nn.GroupNorm):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.layer0(x)))))
        return self.fc(F.avg_pool2d(x, x.shape[-1]).flatten(1))


# ----------------------------------------------------------------------------------------------------------
# 1. Factor 3 at 224 px


def _set(images: torch.Tensor, labels: torch.Tensor, factor: int, normalized: bool = False,
         dataset: str = "imagenet10") -> CondensedSet:
    meta = CondensedMeta(dataset=dataset, num_classes=int(labels.max()) + 1, method="idc", ipc=1, factor=factor,
                         normalized=normalized, mean=MEAN, std=STD)
    return CondensedSet(images, labels, meta, source="in.pt")


def test_factor_3_at_224px_decodes_as_idc_grey_padded_75px_tiles() -> None:
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    out = decode(_set(x, torch.tensor([0, 1]), 3))
    ref = idc_decode_zoom(x, 3)  # IDC order: tile-major; yoco: image-major (tile t of image i is i * 9 + t)
    assert out.images.shape == (18, 3, 224, 224) and out.labels.tolist() == [0] * 9 + [1] * 9
    for i in range(2):
        for t in range(9):
            torch.testing.assert_close(out.images[i * 9 + t], ref[t * 2 + i], rtol=0, atol=1e-6)
    # the last tile of a row holds 74 image columns and one column of mid-grey (0.5) before upsampling
    assert not torch.allclose(out.images[2], F.interpolate(x[:1, :, :75, 149:224], size=(224, 224),
                                                           mode="bilinear", align_corners=False)[0], atol=1e-3)


def test_a_standardised_set_pads_mid_grey_in_pixel_space() -> None:
    # IDC pads its unnormalised pixels with 0.5 (normalisation comes later); a set stored standardised pads
    # (0.5 - mean) / std, so both decode to the same network input
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    pixels, standard = _set(x, torch.tensor([0, 1]), 3), _set(normalize(x, MEAN, STD), torch.tensor([0, 1]), 3, True)
    torch.testing.assert_close(decode(standard).images, normalize(decode(pixels).images, MEAN, STD),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize(("size", "factor"), [(8, 5), (30, 7)])
def test_a_factor_that_neither_divides_nor_pads_is_refused_naming_both(size: int, factor: int) -> None:
    x = torch.rand(2, 3, size, size)
    with pytest.raises(YocoError, match=f"in.pt: factor {factor} neither divides the image size {size}x{size}"):
        _set(x, torch.tensor([0, 1]), factor)
    with pytest.raises(YocoError, match=f"factor {factor} neither divides"):
        decode_images(x, factor)
    with pytest.raises(YocoError, match="factor 2 neither divides the image size 9x10"):
        _set(torch.rand(2, 3, 9, 10), torch.tensor([0, 1]), 2)


def tiny_imagenet_real(per_class: int = 9, classes: int = 2, size: int = 224, test_per_class: int = 1
                       ) -> RealDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(classes).repeat_interleave(per_class)
    ty = torch.arange(classes).repeat_interleave(test_per_class)
    x = torch.randint(0, 256, (len(y), 3, size, size), generator=g, dtype=torch.uint8)
    tx = torch.randint(0, 256, (len(ty), 3, size, size), generator=g, dtype=torch.uint8)
    return RealDataset("imagenet10", x, y, tx, ty, [f"n{c:08d}" for c in range(classes)], mean=MEAN, std=STD,
                       flip=True, root="<memory>")


def test_mix_init_at_224px_factor_3_is_idcs_uneven_tiling() -> None:
    real = tiny_imagenet_real(per_class=9, classes=2)
    cs = init_synthetic(real, ipc=1, factor=3, init="mix")
    for c, idx in enumerate(real.class_indices("train")):
        first = real.train_float()[torch.sort(idx).values[:9]]
        torch.testing.assert_close(cs.images[c:c + 1], idc_mix_init(first, 1, 3, 224), rtol=0, atol=0)
    src = torch.tensor(cs.meta.extra["source_indices"])
    assert torch.equal(real.train_labels[src], cs.labels.repeat_interleave(9))


# ----------------------------------------------------------------------------------------------------------
# 5. Bound multi-formation


def test_bound_plan_is_idcs_decode_zoom_bound() -> None:
    assert bound_plan(20, 3, 128) == [(3, 12), (2, 3), (1, 5)]  # ImageNet IPC 20: 108 + 12 + 5 = 125 images
    assert bound_plan(10, 3, 128) == [(3, 10)]  # IPC 10 fits whole: bound changes nothing
    x = torch.rand(20, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    ours, parent = decode_bound_images(x, 3, 128)
    ref = idc_decode_zoom_bound(x, 3, 128)
    assert ours.shape == ref.shape == (125, 3, 32, 32)
    # the same decoded images (IDC orders each factor's block tile-major, yoco image-major)
    match = torch.cdist(ours.flatten(1), ref.flatten(1)).argmin(0)
    assert torch.equal(match.sort().values, torch.arange(125))
    torch.testing.assert_close(ours[match], ref, rtol=0, atol=1e-6)
    assert parent.tolist() == [i for i in range(12) for _ in range(9)] + [i for i in range(12, 15) for _ in range(4)] \
        + list(range(15, 20))


def test_bound_is_idcs_preset_for_imagenet_at_ipc_20_and_recorded() -> None:
    assert protocol.idc_decode("imagenet10", 3, 20) == "bound"
    assert protocol.idc_decode("imagenet10", 3, 10) == "single" and protocol.idc_decode("cifar10", 3, 50) == "single"
    cfg = IDCConfig(**protocol.idc_preset("imagenet10"), ipc=20).resolved("imagenet10")
    assert cfg.decode == "bound" and cfg.decoded_per_class() == 125
    x = torch.rand(4, 3, 24, 24)
    cs = decode(_set(x, torch.tensor([0, 0, 1, 1]), 3), bound=12)  # per class: 1 image at 3, 2 at ... (plan below)
    assert bound_plan(2, 3, 12) == [(3, 1), (1, 1)]
    assert cs.labels.tolist() == [0] * 10 + [1] * 10
    assert cs.meta.extra["decode"] == "bound" and cs.meta.extra["decode_bound"] == 12


def fake_real(classes: int = 3, per_class: int = 8, size: int = 9) -> RealDataset:
    g = torch.Generator().manual_seed(3)
    y = torch.arange(classes).repeat_interleave(per_class)
    x = torch.randint(0, 256, (len(y), 3, size, size), generator=g, dtype=torch.uint8)
    return RealDataset("imagenet10", x, y, x[:classes], torch.arange(classes), [str(c) for c in range(classes)],
                       mean=MEAN, std=STD, flip=True, root="<memory>")


TINY = IDCConfig(ipc=2, factor=2, iterations=1, inner=2, batch_real=4, batch_syn=8, net_images=8, width=4,
                 model="resnet10_ap", metric="l1", net_pretrain_epochs=1, net_mix_p=1.0, checkpoint_every=0,
                 decode="bound")


def test_bound_matching_engines_agree_on_a_size_the_factor_does_not_divide() -> None:
    # 17 px with factor 2: IDC pads to 18; bound 8 of 2 images per class: one at factor 2, one whole
    real, cfg = fake_real(size=17), TINY
    assert cfg.decoded_per_class() == 5
    with seeded(0):
        net = create_model(cfg.model, 3, 3, (17, 17), width=cfg.width)
    start = init_synthetic(real, cfg.ipc, cfg.factor, "mix").images
    pool, dsa = matching._RealPool(real, torch.device("cpu")), idc.DSA(cfg.match_dsa, flip=True)
    seq = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([seq], lr=0.01, momentum=cfg.mom_img)
    loss_seq = matching.inner_step_sequential(net, pool, seq, opt, cfg, dsa, torch.Generator().manual_seed(1))
    bat, _, loss_bat = matching.inner_step_batched(net, pool, start.clone(), None, 0.01, cfg, dsa,
                                              torch.Generator().manual_seed(1))
    assert float(loss_bat) == pytest.approx(float(loss_seq), rel=1e-4)
    moved = (seq.detach() - start).abs().max()
    assert moved > 0 and torch.allclose(bat, seq.detach(), atol=1e-4 * float(moved))
    single = dataclasses.replace(cfg, decode="single")
    loss_single = matching.inner_step_sequential(net, pool, start.clone().requires_grad_(True),
                                            torch.optim.SGD([start.clone().requires_grad_(True)], lr=0.0),
                                            single, dsa, torch.Generator().manual_seed(1))
    assert float(loss_single) != pytest.approx(float(loss_seq), rel=1e-3)  # bound is a different batch


# ----------------------------------------------------------------------------------------------------------
# 4. The network update of ImageNet condensation


def test_imagenet_condensation_trains_its_network_with_cutmix_every_batch(tmp_path, monkeypatch) -> None:
    # IDC argument.py:139: mix_p defaults to 1.0 and is lowered to 0.5 only for CIFAR, SVHN, MNIST, Fashion-MNIST;
    # train_epoch mixes with it in the pre-training epochs and after every inner step
    assert protocol.idc_preset("imagenet10")["net_mix_p"] == 1.0 and protocol.idc_preset("cifar10")["net_mix_p"] == 0.5
    seen: list[tuple[int, float]] = []
    real_train = idc.train

    def spy(net, x, y, cfg, **kw):
        seen.append((cfg.epochs, cfg.mix_p))
        return real_train(net, x, y, cfg, **kw)

    monkeypatch.setattr(idc, "train", spy)
    out = condense(fake_real(), TINY, tmp_path / "s.safetensors", runtime=rt())
    assert seen and {p for _, p in seen} == {1.0} and len(seen) == 2  # pre-training + the pass between the 2 steps
    assert out.meta.extra["matching_decode"] == {"decode": "bound", "bound": 8}
    assert out.meta.extra["config"]["decode"] == "bound"


# ----------------------------------------------------------------------------------------------------------
# 2. ResNet-AP-10


@pytest.mark.parametrize("size", [224, 96, 32])
def test_resnet_ap_10_with_idcs_weights_gives_idcs_logits(size: int) -> None:
    with seeded(0):
        ours = create_model("resnet10_ap", 10, 3, size, width=8)
    with seeded(1):
        ref = IDCResNetAP10(10, width=8 / 64, size=size)
    ours_p, ref_p = list(ours.parameters()), list(ref.parameters())
    assert [p.shape for p in ours_p] == [p.shape for p in ref_p]
    with torch.no_grad():
        for a, b in zip(ours_p, ref_p, strict=True):
            a.copy_(b)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-5)


def test_resnet_ap_10_is_initialised_as_idcs() -> None:
    with seeded(0):
        model = create_model("resnet10_ap", 10, 3, 224)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    first = convs[0]
    assert first.kernel_size == (7, 7) and first.stride == (1, 1) and first.bias is None
    for conv in convs:  # He normal, fan-out: std sqrt(2 / (k * k * out_channels))
        want = math.sqrt(2 / (conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels))
        w = conv.weight.detach()
        assert float(w.std()) == pytest.approx(want, rel=0.1) and abs(float(w.mean())) < 0.1 * want
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) and not n.bias.any() for n in norms)
    assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, 512)


# ----------------------------------------------------------------------------------------------------------
# 3. Epochs of a pruned ImageNet set


def _pruned(dataset: str, per_class: int, source_ipc: int, factor: int) -> CondensedSet:
    labels = torch.arange(10).repeat_interleave(per_class)
    meta = CondensedMeta(dataset=dataset, num_classes=10, method="idc+lbpe_easy_balance", ipc=1, factor=1,
                         extra={"decoded_from_factor": factor, "pruned_from_ipc": source_ipc})
    return CondensedSet(torch.rand(len(labels), 3, 8, 8), labels, meta, source="pruned")


@pytest.mark.parametrize(("per_class", "source_ipc", "yoco", "own"), [(9, 10, 1000, 2000), (18, 10, 1000, 1500),
                                                                      (45, 20, 1000, 1500)])
def test_pruned_imagenet_sets_train_their_sources_epochs_as_yoco(per_class, source_ipc, yoco, own) -> None:
    # YOCO argument.py:616-640: ipc_epoch(args.ipc = the SOURCE IPC, factor 3) before args.ipc = slct_ipc
    from yoco.runner import Networks, prepare, resolve_recipe

    def epochs(data, nets):
        return resolve_recipe(data, nets, "eval").train.epochs

    data = prepare(_pruned("imagenet10", per_class, source_ipc, 3), torch.device("cpu"))
    assert data.source_images_per_class == source_ipc * 9
    assert epochs(data, Networks()) == yoco
    assert epochs(data, Networks(pruned_epochs="own")) == own
    cifar = prepare(_pruned("cifar10", 4, 10, 2), torch.device("cpu"))
    assert epochs(cifar, Networks()) == epochs(cifar, Networks(pruned_epochs="own"))


def test_pruned_epochs_option_is_checked_and_keys_only_imagenet_cells() -> None:
    from yoco.evaluate import EvalConfig
    from yoco.ladder import build_config
    from yoco.ladder.run import _keyed, _revision

    with pytest.raises(YocoError, match="pruned_epochs must be one of source, own"):
        EvalConfig(pruned_epochs="target")
    cifar = build_config(dataset="cifar10")
    assert "pruned_epochs" not in _keyed(cifar.eval.to_dict(), "cifar10") and _revision(cifar) == ()
    inet = build_config(dataset="imagenet10", pruned_epochs="own")
    assert _keyed(inet.eval.to_dict(), "imagenet10")["pruned_epochs"] == "own" and _revision(inet)


# ----------------------------------------------------------------------------------------------------------
# 6. Entropy and SSP read augmented images on ImageNet


def test_imagenet_final_pass_reads_seeded_augmented_views() -> None:
    from yoco.dynamics import DynamicsConfig, augmented_predict, record_dynamics
    from yoco.predict import predict
    from yoco.train import TrainConfig

    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    cs = _set(x, torch.tensor([0, 0, 0, 1, 1, 1]), 1)
    models: list[nn.Module] = []
    cfg = DynamicsConfig(width=4, runs=1, seed=3, train=TrainConfig(epochs=1))
    dyn = record_dynamics(cs, cfg, runtime=rt(), on_epoch=lambda r, e, m: models.extend(m))
    assert dyn.config["final_pass"] == "imagenet-augmented"
    z = normalize(x, MEAN, STD)
    clean = F.log_softmax(predict(models[-1], z), 1)
    assert not torch.allclose(dyn.final_log_probs[0], clean, atol=1e-4)
    g = torch.Generator().manual_seed(3)
    torch.testing.assert_close(dyn.final_log_probs[0], F.log_softmax(augmented_predict(models[-1], z, MEAN, STD,
                                                                                        True, g), 1))
    torch.testing.assert_close(dyn.embeddings[0], augmented_predict(models[-1], z, MEAN, STD, True, g, features=True))
    again = record_dynamics(cs, cfg, runtime=rt())
    assert torch.equal(again.final_log_probs, dyn.final_log_probs)  # seeded


# ----------------------------------------------------------------------------------------------------------
# 7. The protocol document


def test_yoco_recipe_evaluates_an_mtt_set_as_yocos_test_py() -> None:
    # YOCO's loader applies its CIFAR Normalize to every set, MTT's already standardised tensors too
    # (utils/img_loader.py:461-471, 624), at lr 0.01 (argument.py:118) and without ZCA
    from yoco.runner import Networks, prepare, resolve_recipe

    mean, std = protocol.CIFAR_MEAN, protocol.CIFAR_STD
    x = normalize(torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(6)), mean, std)
    meta = CondensedMeta(dataset="cifar10", num_classes=2, method="mtt", ipc=2, normalized=True, mean=mean, std=std,
                         extra={"recipe": {"lr": 0.03, "zca": {"eps": 0.1}}})
    cs = CondensedSet(x, torch.tensor([0, 0, 1, 1]), meta, source="mtt")
    cpu = torch.device("cpu")
    torch.testing.assert_close(prepare(cs, cpu, mean=mean, std=std, renormalize=True).images, normalize(x, mean, std))
    assert torch.equal(prepare(cs, cpu, mean=mean, std=std).images, x)
    data = prepare(cs, cpu, mean=mean, std=std)
    yoco = resolve_recipe(data, Networks(), "eval", cs, "yoco")
    assert yoco.train.lr == 0.01 and yoco.zca_eps is None
    assert "standardised again" in yoco.notes[0] and "no ZCA" in yoco.notes[0]
    own = resolve_recipe(data, Networks(), "eval", cs, "set")
    assert own.train.lr == 0.03 and own.zca_eps == 0.1
    assert resolve_recipe(data, Networks(), "eval", cs, "protocol").train.lr == 0.01


def test_protocol_md_lists_every_imagenet_item_with_its_upstream_line() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    for ref in ("condense.py:102-122", "test.py:136-158", "utils/img_loader.py:102-124", "models/resnet_ap.py",
                "argument.py:616-640", "argument.py:139", "misc/reproduce.py:54-57", "condense.py:136-168",
                "generate_importance_score.py:395", "YOCO `test.py:61-62`", "Coreset.py:89-111",
                "--pruned-epochs", "--recipe yoco"):
        assert ref in text, ref


# ----------------------------------------------------------------------------------------------------------
# 8. The whole job on a tiny ImageNet-shaped folder


WNIDS = ["n02869837", "n01749939", "n02488291", "n02107142", "n13037406", "n02091831", "n04517823", "n04589890",
         "n03062245", "n01773797"]


def _tree(root: Path, train: int, val: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, wnid in enumerate(WNIDS):
        for split, n in (("train", train), ("val", val)):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 60, (224, 224, 3), dtype=np.uint8)
                a[:, :, c % 3] += np.uint8(40 + 15 * c)
                Image.fromarray(a).save(folder / f"{wnid}_{i}.png")


def test_the_whole_job_runs_on_a_tiny_imagenet_folder(tmp_path) -> None:
    from yoco import cli
    from yoco.data.condensed import load

    run = lambda *argv: cli.main([str(a) for a in argv])
    root, t = tmp_path / "imagenet", tmp_path
    _tree(root, train=9, val=1)
    small = ["--width", "4", "--device", "cpu", "--quiet"]
    assert run("condense", "--dataset", "imagenet10", "--data-root", root, "--preset", "imagenet10", "--ipc", "1",
               "--iterations", "1", "--inner", "1", "--pretrain-epochs", "0", "--net-images", "16",
               "--checkpoint-every", "0", "--out", t / "cond.safetensors", *small) == 0
    cond = load(t / "cond.safetensors")
    assert cond.images.shape == (10, 3, 224, 224) and cond.meta.factor == 3
    assert cond.meta.extra["config"]["model"] == "resnet10_ap" and cond.meta.extra["config"]["net_mix_p"] == 1.0
    g = torch.Generator().manual_seed(0)
    torch.save([torch.rand(20, 3, 224, 224, generator=g), torch.arange(10).repeat_interleave(2)], t / "data.pt")
    assert run("import", t / "data.pt", "--format", "idc", "--dataset", "imagenet10",
               "--out", t / "idc.safetensors") == 0
    imported = load(t / "idc.safetensors")
    assert imported.meta.factor == 3 and imported.meta.ipc == 2  # IDC's ImageNet sets are factor 3
    assert run("dynamics", t / "idc.safetensors", "--out", t / "dyn.safetensors", "--runs", "1", "--epochs", "1",
               *small) == 0
    assert run("score", t / "dyn.safetensors", "--out", t / "scores.safetensors", "--lbpe-epochs", "1",
               "--lbpe-top-k", "1", "--el2n-epochs", "1") == 0
    for rule in ("lbpe_easy_balance", "ssp", "entropy_hard_imbalance"):
        assert run("prune", t / "idc.safetensors", "--scores", t / "scores.safetensors", "--rule", rule, "--ipc",
                   "1", "--out", t / f"{rule}.safetensors") == 0
    pruned = load(t / "lbpe_easy_balance.safetensors")
    assert len(pruned) == 90 and pruned.class_counts() == [9] * 10 and pruned.meta.extra["pruned_from_ipc"] == 2
    assert run("evaluate", t / "lbpe_easy_balance.safetensors", "--dataset", "imagenet10", "--data-root", root,
               "--epochs", "1", "--repeat", "1", "--out", t / "eval.json", *small) == 0
    res = json.loads((t / "eval.json").read_text())
    assert res["config"]["model"] == "resnet10_ap" and len(res["runs"]) == 1
    assert res["config"]["train"]["mix_p"] == 1.0 and res["config"]["train"]["base_aug"] == "imagenet"
