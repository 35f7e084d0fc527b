"""MDC condensation and the mdc_prefix rule, on tiny data, against step-by-step re-expressions of the authors' code.

Upstream = he-y/Multisize-Dataset-Condensation @ e9b9f7e. The re-expressions below are written for these tests (no
upstream line is copied): each follows the cited file and lines in upstream's own order of operations, so a change
to yoco's MDC that departs from what the authors' code computes fails here.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
import torch.nn.functional as F
from helpers import rt, tiny_real, write_mnist_like
from test_condense import TINY, fake_real

from yoco import cli
from yoco.augment import DSA
from yoco.condense import (
    MDCConfig,
    checkpoint_path,
    condense,
    condense_mdc,
    crop_major_order,
    idc,
    init_synthetic,
    matching,
    resolve_mdc_config,
)
from yoco.condense.mdc import MDCObjective, Regularizer, period_losses, subset_gradient_distance
from yoco.data.condensed import CondensedMeta, CondensedSet, decode, decode_images, load, normalize
from yoco.errors import YocoError
from yoco.files import read_tensors, write_tensors
from yoco.models import create_model
from yoco.rules import check_set, parse_rule, prune, select
from yoco.runtime import seeded
from yoco.scoretable import ScoreTable

# 4 classes of 8x8, ipc 3 at factor 2 (12 decoded images per class, subsets IPC 1 and 2), width 8, a choice every
# outer iteration, class by class: within 3 iterations some classes choose IPC 1, then IPC 2, and freeze IPC 1.
MDC_TINY = dataclasses.replace(TINY, ipc=3, batch_syn=12, iterations=3, inner=1, metric="mse", lr_img=0.05,
                               scale_lr_img=False, engine="sequential")
EVERY = MDCConfig(period=1, class_wise=True)


# ----------------------------------------------------------------------------------------------------------
# Upstream, re-expressed


def upstream_decode(img: torch.Tensor, f: int) -> torch.Tensor:
    """``Synthesizer.decode_zoom`` (condense_reg.py:123-143) for a side f divides: the f x f crops in row-major order,
    each crop of ALL images before the next crop, then bilinear upsampling back to the full side."""
    s = img.shape[-1] // f
    crops = [img[:, :, i * s:(i + 1) * s, j * s:(j + 1) * s] for i in range(f) for j in range(f)]
    return F.interpolate(torch.cat(crops), size=img.shape[-2:], mode="bilinear", align_corners=False)


class UpstreamSubset:
    """reg_ipcx.py:146-154 (``RegularizedIPC``)."""

    def __init__(self, ipcx: int) -> None:
        self.ipcx, self.iteration, self.regularize, self.keep_freeze = ipcx, -1, False, False


class UpstreamRegularizer:
    """reg_ipcx.py:156-234 (``Regularizer``): the methods condense_reg.py calls."""

    def __init__(self, ipc: int) -> None:
        self.reg_list = [UpstreamSubset(i) for i in range(ipc + 1)]
        self.prev_ipcx_list: list[int] = []
        self.prev_loss: list[float] = []

    def get_regularized_ipc(self) -> list[int]:
        return [r.ipcx for r in self.reg_list if r.regularize]

    def regularize_ipcx(self, ipcx: int, remove: bool = False, prev: bool = False) -> None:
        self.reg_list[ipcx].regularize = not remove
        if prev:
            self.prev_ipcx_list.append(ipcx)

    def update_ipc_prev_list(self) -> None:
        for x in self.prev_ipcx_list:
            self.regularize_ipcx(x, remove=True)
        self.prev_ipcx_list = []

    def update_status(self, iteration: int) -> None:
        for r in self.reg_list:
            if iteration == r.iteration:
                r.regularize, r.keep_freeze = False, True

    def set_quit_iteration(self, ipcx: int, iteration: int) -> None:
        self.reg_list[ipcx].iteration = iteration

    def get_freeze_ipc(self) -> int:
        current = self.get_regularized_ipc()
        if not current:
            return -1
        below = [r.ipcx for r in self.reg_list if r.keep_freeze and r.ipcx < min(current)]
        return max(below) if below else -1


def upstream_select(reg: UpstreamRegularizer, cur: list[float], it: int, candidates: list[int]) -> list[int]:
    """reg_ipcx.py:113-144 (``select_reg_ipc``); ``it`` is the 1-based iteration just finished."""
    if it == 1 or not reg.prev_loss:
        return [candidates[0]]
    diff = torch.abs(torch.tensor(reg.prev_loss) - torch.tensor(cur))
    return [torch.tensor(candidates)[torch.argsort(diff, descending=True)[0]].tolist()]


def upstream_update(regs: list[UpstreamRegularizer], rows: list[list[list[float]]], it0: int, inner: int,
                    period: int, class_wise: bool, ipc: int) -> list[int]:
    """condense_reg.py:643-671, after tracked iteration ``it0`` (0-based)."""
    candidates = list(range(1, ipc))
    chosen = []
    for c, reg in enumerate(regs):
        if class_wise:
            cur = torch.round(torch.sum(torch.tensor(rows[c]), axis=0) / inner, decimals=2).tolist()
        else:
            flat = torch.Tensor(rows).reshape(-1, len(rows[0][0]))
            cur = torch.round(torch.sum(flat, axis=0) / len(regs) / inner, decimals=2).tolist()
        picked = upstream_select(reg, cur, it0 + 1, candidates)
        reg.update_ipc_prev_list()
        for x in picked:
            reg.regularize_ipcx(x, prev=True)
            reg.set_quit_iteration(x, it0 + 1 + period)
        reg.prev_loss = cur
        chosen += picked
    return chosen


def upstream_class_loss(net, pool, syn_c, c, draw, cfg, dsa, reg, tracking, rows):
    """One class's matching in condense_reg.py:567-608 with reg_ipcx.py:37-111: decode (crop-major), subsample, detach
    the frozen subset's rows in place, ONE augmentation of the normalised real + synthetic batch, the subsets' feature
    distances when tracking, then the gradient distance over all parameters, skipping 1-D and 2-D ones, each layer's
    full term followed by its regularised subsets' terms."""
    f2 = cfg.factor**2
    indices = {x: list(range(x * f2)) for x in range(1, cfg.ipc)}  # condense_reg.py:505-512
    img = pool.images[draw.real_idx].to(torch.float32) / 255.0
    img_syn = upstream_decode(syn_c, cfg.factor)
    if draw.syn_subset is not None:  # Synthesizer.subsample: a random permutation's first batch_syn_max rows
        img_syn = img_syn[draw.syn_subset]
    freeze = reg.get_freeze_ipc()
    if freeze > 0:
        rows_f = indices[freeze]
        img_syn[rows_f] = img_syn[rows_f].detach()
    n = img.shape[0]
    img_aug = dsa(normalize(torch.cat([img, img_syn]), pool.mean, pool.std), seed=draw.dsa_seed, shared=True)
    if tracking:
        with torch.no_grad():
            feat_tg = net.body(img_aug[:n])
        feat = net.body(img_aug[n:])
        rows.append([(feat_tg.mean(0) - feat[indices[x]].mean(0)).pow(2).sum().item() for x in range(1, cfg.ipc)])
    lab = torch.full((n,), c)
    lab_syn = torch.full((img_aug.shape[0] - n,), c)
    params = list(net.parameters())
    g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(img_aug[:n]), lab), params)]
    g_syn = torch.autograd.grad(F.cross_entropy(net(img_aug[n:]), lab_syn), params, create_graph=True)
    regularized = reg.get_regularized_ipc()
    g_sub = {}
    for x in regularized:
        rows_x = torch.tensor(indices[x])
        g_sub[x] = torch.autograd.grad(F.cross_entropy(net(img_aug[n:][rows_x]), lab_syn[rows_x]), params,
                                       create_graph=True)
    loss = None
    for i in range(len(g_real)):
        if g_real[i].dim() in (1, 2):
            continue
        term = (g_real[i] - g_syn[i]).pow(2).sum()
        loss = term if loss is None else loss + term
        for x in regularized:
            loss = loss + (g_real[i] - g_sub[x][i]).pow(2).sum()
    return loss


def upstream_run(real, cfg, mdc: MDCConfig):
    """MDC's condense_reg.py:521-671 order, on yoco's run generator, networks and DSA (as test_condense's IDC loop
    re-expression): a fresh network per outer iteration, per inner step every class's draws and one image step each,
    then the network's pass on real images; the regularisers updated after tracked iterations."""
    g = torch.Generator().manual_seed(cfg.seed)
    syn = init_synthetic(real, cfg.ipc, cfg.factor, cfg.init, generator=g).images.clone().requires_grad_(True)
    opt = torch.optim.SGD([syn], lr=cfg.effective_lr_img(real.name, 8), momentum=cfg.mom_img)
    cpu = torch.device("cpu")
    pool, dsa = matching._RealPool(real, cpu), DSA(cfg.match_dsa, flip=real.flip)
    regs = [UpstreamRegularizer(cfg.ipc) for _ in range(real.num_classes)]
    choices = []
    for it in range(cfg.iterations):
        with torch.no_grad():
            syn.clamp_(0, 1)
        net = idc._build_net(cfg, real, cfg.seed + it, cpu)
        net_opt = idc._net_optimizer(net, cfg)
        tracking = it == 0 or (it + 1) % mdc.period == 0
        rows = [[] for _ in regs]
        for _ in range(cfg.inner):
            for c in range(real.num_classes):
                draw = matching._draw(pool, c, cfg, g)
                regs[c].update_status(it)
                loss = upstream_class_loss(net, pool, syn[c * cfg.ipc:(c + 1) * cfg.ipc], c, draw, cfg, dsa, regs[c],
                                           tracking, rows[c])
                opt.zero_grad()
                loss.backward()
                opt.step()
            draw = idc._net_draw(pool.labels.shape[0], cfg, g, cfg.net_images)
            idc._train_nets([net], pool, cfg, real.flip, [draw], cfg.net_epochs, [net_opt])
        if tracking:
            choices.append({"iteration": it + 1,
                            "chosen": upstream_update(regs, rows, it, cfg.inner, mdc.period, mdc.class_wise, cfg.ipc)})
    frozen = [[r.ipcx for r in reg.reg_list if r.keep_freeze] for reg in regs]
    return syn.detach(), choices, frozen


# ----------------------------------------------------------------------------------------------------------
# The pieces


def test_subsets_are_prefixes_of_idcs_crop_major_decoded_order():
    syn = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    order = crop_major_order(3, 2)
    assert order.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]  # tile d // 3 of stored image d % 3
    torch.testing.assert_close(decode_images(syn, 2)[order], upstream_decode(syn, 2), rtol=0, atol=0)


@pytest.mark.parametrize("period", [1, 3])
def test_regulariser_follows_upstreams_state_machine(period):
    # scripted losses (rounded, so ties happen) drive yoco's Regularizer and the re-expressed upstream one
    rnd = random.Random(period)
    ipc, mine, theirs = 5, Regularizer(5), UpstreamRegularizer(5)
    frozen_seen = set()
    for it in range(40):
        mine.begin(it)
        theirs.update_status(it)
        assert mine.regularised() == theirs.get_regularized_ipc()
        assert mine.frozen_ipc() == max(theirs.get_freeze_ipc(), 0)
        frozen_seen.add(mine.frozen_ipc())
        if it == 0 or (it + 1) % period == 0:
            cur = [round(rnd.choice([0.5, 1.0, rnd.random()]), 2) for _ in range(ipc - 1)]
            picked = upstream_select(theirs, cur, it + 1, list(range(1, ipc)))
            theirs.update_ipc_prev_list()
            for x in picked:
                theirs.regularize_ipcx(x, prev=True)
                theirs.set_quit_iteration(x, it + 1 + period)
            theirs.prev_loss = cur
            assert [mine.choose(cur, it, period)] == picked
    assert frozen_seen - {0}  # some subset was frozen below the regularised one
    state = json.loads(json.dumps(mine.state()))
    again = Regularizer(5)
    again.restore(state, "test")
    assert again.state() == mine.state()


def test_period_losses_average_over_steps_and_classes_rounded_as_upstream():
    rows = [[[0.1234, 2.0], [0.5, 1.0]], [[1.0, 0.0], [0.3, 0.333]]]  # 2 classes, 2 inner steps, 2 subsets
    f32 = lambda v: torch.tensor(v, dtype=torch.float32).tolist()  # upstream's numbers are float32's
    assert period_losses(rows, 2, class_wise=True) == [f32([0.31, 1.5]), f32([0.65, 0.17])]
    shared = period_losses(rows, 2, class_wise=False)
    assert shared[0] == shared[1] == f32([0.48, 0.83])


def test_subset_loss_and_its_image_gradient_equal_upstreams_step():
    with seeded(0):
        net = create_model("convnet3", 4, 1, 8, width=8)
    g = torch.Generator().manual_seed(1)
    x_real = torch.randn(6, 1, 8, 8, generator=g)
    syn = torch.randn(12, 1, 8, 8, generator=g).requires_grad_(True)
    ours = subset_gradient_distance(net, matching.matched_params(net), x_real, syn, 2, [4, 8], "mse")
    (grad_ours,) = torch.autograd.grad(ours, syn)
    params = list(net.parameters())
    lab = torch.full((6,), 2)
    g_real = torch.autograd.grad(F.cross_entropy(net(x_real), lab), params)
    g_syn = torch.autograd.grad(F.cross_entropy(net(syn), torch.full((12,), 2)), params, create_graph=True)
    g_sub = [torch.autograd.grad(F.cross_entropy(net(syn[:m]), torch.full((m,), 2)), params, create_graph=True)
             for m in (4, 8)]
    theirs = sum((gr - gs).pow(2).sum() + sum((gr - s[i]).pow(2).sum() for s in g_sub)
                 for i, (gr, gs) in enumerate(zip(g_real, g_syn)) if gr.dim() == 4)
    (grad_theirs,) = torch.autograd.grad(theirs, syn)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(grad_ours, grad_theirs)
    plain = matching.gradient_distance(net, matching.matched_params(net), x_real, lab, syn, torch.full((12,), 2), "mse")
    assert float(ours.detach()) > float(plain.detach()) > 0  # the subset terms add to IDC's distance


# ----------------------------------------------------------------------------------------------------------
# The run


@pytest.mark.parametrize(("batch_syn", "class_wise"), [(12, False), (10, True)])
def test_mdc_run_is_upstreams_loop(tmp_path, batch_syn, class_wise):
    # batch_syn 10 < 12 decoded images: the batch is a random subsample and the subsets are its first rows, as upstream
    real = fake_real(n_per_class=16)
    cfg = dataclasses.replace(MDC_TINY, batch_syn=batch_syn)
    mdc = MDCConfig(period=1, class_wise=class_wise)
    ref, choices, frozen = upstream_run(real, cfg, mdc)
    ours = condense_mdc(real, cfg, tmp_path / "mdc.safetensors", mdc, runtime=rt(), net_batch=1)
    assert ours.meta.method == "mdc"
    assert ours.meta.extra["mdc"]["choices"] == choices
    assert ours.meta.extra["mdc"]["frozen"] == frozen
    if class_wise:  # some class regularised IPC 2 with IPC 1 frozen (detached) below it
        assert any(frozen) and any(2 in ch["chosen"] for ch in choices)
    # float rounding only: upstream differentiates w.r.t. every parameter, yoco w.r.t. the matched ones
    torch.testing.assert_close(ours.images, ref, rtol=0, atol=1e-6)


def test_mdc_resumes_to_the_uninterrupted_run_and_batches_agree(tmp_path):
    real = fake_real(n_per_class=16)
    straight = condense_mdc(real, MDC_TINY, tmp_path / "a.safetensors", EVERY, runtime=rt())
    out = tmp_path / "b.safetensors"

    def stop(cs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        condense_mdc(real, dataclasses.replace(MDC_TINY, eval_every=2), out, EVERY, runtime=rt(),
                     eval_fn=stop)
    header, _ = read_tensors(checkpoint_path(out), "checkpoint")
    held = json.loads(header["objective"])  # the regulariser's state, as JSON in the safetensors header
    assert len(held["classes"]) == 4 and {"quit", "regularised", "frozen", "chosen", "prev_loss"} <= set(held["classes"][0])
    assert [ch["iteration"] for ch in held["choices"]] == [1, 2]
    # some class chose IPC 2 after IPC 1: IPC 1 freezes when the resumed run begins its next iteration
    assert any(cl["regularised"][2] and cl["quit"][1] == 2 for cl in held["classes"])
    resumed = condense_mdc(real, MDC_TINY, out, EVERY, runtime=rt(), resume=True)
    assert torch.equal(resumed.images, straight.images)
    assert resumed.meta.extra["mdc"] == straight.meta.extra["mdc"]
    assert resumed.meta.extra["matching_loss"] == straight.meta.extra["matching_loss"]
    # the batched engine (closed-form steps) with networks trained side by side: the same run up to float rounding
    side = condense_mdc(real, dataclasses.replace(MDC_TINY, engine="batched"), tmp_path / "c.safetensors", EVERY,
                        runtime=rt(), net_batch=3)
    assert side.meta.extra["mdc"]["choices"] == straight.meta.extra["mdc"]["choices"]
    torch.testing.assert_close(side.images, straight.images, rtol=0, atol=1e-5)


def test_mdc_checkpoints_are_not_idcs_and_damage_is_one_line(tmp_path):
    real = fake_real(n_per_class=16)
    out = tmp_path / "m.safetensors"
    condense_mdc(real, dataclasses.replace(MDC_TINY, iterations=2), out, EVERY, runtime=rt(),
                 keep_checkpoint=True)
    with pytest.raises(YocoError, match="another configuration.*objective"):
        condense(real, MDC_TINY, out, runtime=rt(), resume=True)
    with pytest.raises(YocoError, match="another configuration.*period"):
        condense_mdc(real, MDC_TINY, out, MDCConfig(period=2), runtime=rt(), resume=True)
    header, tensors = read_tensors(checkpoint_path(out), "checkpoint")
    state = json.loads(header["objective"])
    state["classes"][1]["frozen"] = [True]
    write_tensors(checkpoint_path(out), tensors, {**header, "objective": json.dumps(state)})
    with pytest.raises(YocoError, match="damaged MDC regulariser state"):
        condense_mdc(real, MDC_TINY, out, EVERY, runtime=rt(), resume=True)


@pytest.mark.parametrize(("change", "mdc", "words"), [
    ({"ipc": 1}, EVERY, "ipc must be at least 2"),
    ({"batch_syn": 7}, EVERY, "raise batch_syn to at least 8"),
    ({}, MDCConfig(period=0), "period must be at least 1"),
])
def test_mdc_refuses_what_it_cannot_run_before_any_file(tmp_path, change, mdc, words):
    out = tmp_path / "bad.safetensors"
    with pytest.raises(YocoError, match=words):
        condense_mdc(fake_real(n_per_class=16), dataclasses.replace(MDC_TINY, **change), out, mdc, runtime=rt())
    assert not out.exists() and not checkpoint_path(out).exists()


def test_mdc_settings_are_idcs_preset_with_mse():
    fm = resolve_mdc_config("fashion-mnist", ipc=10)
    assert fm.metric == "mse" and (fm.lr_img, fm.net_images, fm.iterations, fm.inner) == (1e-4, 500, 2000, 100)
    assert resolve_mdc_config("cifar10", metric="l1").metric == "l1"
    assert MDCConfig() == MDCConfig(period=100, class_wise=False)
    assert MDCObjective.stacked is False


# ----------------------------------------------------------------------------------------------------------
# mdc_prefix


def _mdc_set(ipc: int = 3, classes: int = 2, f: int = 2) -> CondensedSet:
    objective = MDCObjective(MDCConfig(), ipc, classes)
    meta = CondensedMeta("tiny", classes, method="mdc", ipc=ipc, factor=f, extra=objective.extra())
    images = torch.rand(classes * ipc, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return CondensedSet(images, torch.arange(classes).repeat_interleave(ipc), meta, source="mdc.safetensors")


def test_mdc_prefix_keeps_the_images_mdcs_subset_holds():
    cs = _mdc_set()
    dec = decode(cs)
    table = ScoreTable({"random": torch.rand(len(dec.labels))}, dec.labels)
    assert parse_rule("mdc_prefix").balanced  # per class by nature
    for k in (1, 2):
        pruned, record = prune(cs, table, "mdc_prefix", k)
        assert record["rule"] == "mdc_prefix_balance" and record["class_counts"] == [k * 4] * 2
        for c in range(2):
            # test.py:474-504 (Cx_Cy): the first ipcy * f^2 images of each class's crop-major decode
            theirs = upstream_decode(cs.images[c * 3:(c + 1) * 3], 2)[: k * 4]
            kept = pruned.images[pruned.labels == c]
            assert sorted(map(bytes, kept.numpy())) == sorted(map(bytes, theirs.numpy()))
        _, imbalanced = prune(cs, table, "mdc_prefix_imbalance", k)
        assert imbalanced["indices"] == record["indices"]


def test_mdc_prefix_refuses_a_set_that_is_not_mdcs_as_made():
    cs = _mdc_set()
    dec = decode(cs)
    table = ScoreTable({"random": torch.rand(len(dec.labels))}, dec.labels)
    idc_set = dataclasses.replace(cs, meta=dataclasses.replace(cs.meta, method="idc", extra={}), source="idc.safetensors")
    with pytest.raises(YocoError, match=r"mdc_prefix: idc.safetensors is not an MDC set"):
        prune(idc_set, table, "mdc_prefix", 1)
    pruned, _ = prune(cs, table, "mdc_prefix", 2)  # carries the MDC record, but is IPC 2 at factor 1 now
    with pytest.raises(YocoError, match="not the IPC 3 set MDC made"):
        prune(pruned, ScoreTable({"random": torch.rand(len(pruned.labels))}, pruned.labels), "mdc_prefix", 1)
    with pytest.raises(YocoError, match="is not an MDC set"):
        select({}, dec.labels, "mdc_prefix", 4)  # a bare selection has no set to read the order of
    check_set("mdc_prefix", cs)  # what a ladder asks of each rule before any work
    check_set("yoco", idc_set)
    with pytest.raises(YocoError, match="is not an MDC set"):
        check_set("mdc_prefix", idc_set)


def test_cli_condenses_with_mdc(tmp_path, capsys):
    real = tiny_real(n_per_class=8, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    common = ["--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--ipc", "2", "--preset", "cpu-quick",
              "--iterations", "1", "--inner", "1", "--width", "8", "--device", "cpu", "--quiet"]
    assert cli.main(["condense", *common, "--method", "mdc", "--mdc-period", "1",
                     "--out", str(tmp_path / "mdc.safetensors")]) == 0
    cs = load(tmp_path / "mdc.safetensors")
    assert cs.meta.method == "mdc" and cs.meta.extra["config"]["metric"] == "mse"
    assert cs.meta.extra["nested_subsets"]["order"] == "crop-major" and cs.meta.extra["mdc"]["config"]["period"] == 1
    capsys.readouterr()
    assert cli.main(["condense", *common, "--mdc-period", "5", "--out", str(tmp_path / "idc.safetensors")]) == 2
    assert "add --method mdc" in capsys.readouterr().err


def test_a_ladder_condenses_with_mdc_from_its_spec_and_cuts_the_set_by_its_own_order(tmp_path, capsys):
    """``ladder --condense method=mdc,...``: the same MDC run as ``yoco condense --method mdc`` (MDC's settings, its
    own keys), and the ladder then compares MDC's prefixes with YOCO's rule on that set in one table."""
    real = tiny_real(n_per_class=8, num_classes=10, size=16)
    write_mnist_like(tmp_path / "data", real)
    spec = "method=mdc,mdc_period=1,ipc=2,preset=cpu-quick,iterations=1,inner=1,width=8"
    ladder = ["ladder", "--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--ipcs", "1",
              "--rules", "mdc_prefix,yoco", "--repeat", "1", "--epochs", "2", "--width", "8", "--dynamics-epochs", "4",
              "--dynamics-runs", "1", "--lbpe-epochs", "3", "--lbpe-top-k", "2", "--device", "cpu", "--quiet"]
    assert cli.main([*ladder, "--condense", spec, "--out", str(tmp_path / "lad")]) == 0
    made = load(tmp_path / "lad" / "condensed.safetensors")
    assert cli.main(["condense", "--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--ipc", "2",
                     "--preset", "cpu-quick", "--iterations", "1", "--inner", "1", "--width", "8", "--device", "cpu",
                     "--quiet", "--method", "mdc", "--mdc-period", "1", "--out", str(tmp_path / "mdc.safetensors")]) == 0
    direct = load(tmp_path / "mdc.safetensors")
    assert made.meta.method == "mdc" and torch.equal(made.images, direct.images)
    assert made.meta.extra["mdc"] == direct.meta.extra["mdc"] and made.meta.extra["config"]["metric"] == "mse"
    rows = json.loads((tmp_path / "lad" / "results.json").read_text())["rows"]
    assert {r["rule"] for r in rows} >= {"mdc_prefix_balance", "lbpe_easy_balance"}
    capsys.readouterr()
    assert cli.main([*ladder, "--condense", "mdc_period=1,ipc=2", "--out", str(tmp_path / "l2")]) == 2
    assert "add method=mdc" in capsys.readouterr().err
    assert cli.main([*ladder, "--condense", "method=dc,ipc=2", "--out", str(tmp_path / "l3")]) == 2
    assert "method must be one of idc, mdc" in capsys.readouterr().err
    assert cli.main([*ladder, "--condense", "method=mdc,mdc_period=often", "--data-root", str(tmp_path / "none"),
                     "--out", str(tmp_path / "l4")]) == 2  # read before the dataset: its absence is not what is said
    assert "mdc_period must be int, got 'often'" in capsys.readouterr().err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mdc_batched_on_cuda_equals_the_sequential_cpu_run(tmp_path, ieee_float32):
    real = fake_real(n_per_class=16)
    cpu = condense_mdc(real, MDC_TINY, tmp_path / "cpu.safetensors", EVERY, runtime=rt())
    gpu = condense_mdc(real, dataclasses.replace(MDC_TINY, engine="batched"), tmp_path / "gpu.safetensors", EVERY,
                       runtime=rt("cuda"))  # the GPU default: networks side by side
    assert gpu.meta.extra["mdc"]["choices"] == cpu.meta.extra["mdc"]["choices"]
    torch.testing.assert_close(gpu.images, cpu.images, rtol=0, atol=1e-4)
