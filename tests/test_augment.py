import math

import pytest
import torch

from yoco.augment import DSA, cutmix, mixup, parse_strategy
from yoco.errors import YocoError

FULL = "color_crop_cutout_flip_scale_rotate"


def test_strategy_parsing_drops_flip_for_digits():
    assert "flip" in parse_strategy(FULL, flip=True)
    assert "flip" not in parse_strategy(FULL, flip=False)
    assert parse_strategy("none") == ()
    with pytest.raises(YocoError, match="blur"):
        parse_strategy("color_blur")


@pytest.mark.parametrize("op", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_each_op_keeps_shape_and_changes_images(op):
    x = torch.rand(16, 3, 12, 12)
    out = DSA(op)(x, seed=3)
    assert out.shape == x.shape
    assert not torch.equal(out, x)


def test_siamese_seed_gives_identical_transforms():
    x = torch.rand(8, 3, 16, 16)
    aug = DSA(FULL)
    a, b = aug(x, seed=11), aug(x.clone(), seed=11)
    assert torch.equal(a, b)
    assert not torch.equal(a, aug(x, seed=12))


def test_siamese_seed_gives_same_transform_to_two_batches():
    # the real and synthetic batches of gradient matching: same seed, same transform per position
    real, syn = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    aug = DSA("crop_flip")
    both = aug(torch.cat([real, syn]), seed=5)
    assert torch.equal(aug(real, seed=5), aug(real, seed=5))
    assert both.shape == (8, 1, 16, 16)


def test_flip_off_for_digits_never_mirrors():
    x = torch.rand(64, 1, 8, 8)
    out = DSA("flip", flip=False)(x, seed=0)
    assert torch.equal(out, x)
    mirrored = DSA("flip", flip=True)(x, seed=0)
    flipped = (mirrored == x.flip(3)).flatten(1).all(1)
    assert 10 < int(flipped.sum()) < 54  # about half


def test_crop_is_integer_translation_with_zero_padding():
    x = torch.ones(32, 1, 16, 16)
    out = DSA("crop")(x, seed=1)
    # every output pixel is either an untouched 1 or zero padding
    assert torch.all(((out - 1).abs() < 1e-5) | (out.abs() < 1e-5))
    assert (out.abs() < 1e-5).any()


def test_dsa_is_differentiable():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    DSA(FULL)(x, seed=0).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_cutmix_pastes_a_box_and_reports_area():
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.full((1, 10, 10), float(i)) for i in range(6)])
    y = torch.arange(6)
    mixed, ya, yb, lam = cutmix(x, y, generator=g)
    for i in range(6):
        own = (mixed[i] == i).float().mean().item()
        if ya[i] != yb[i]:
            assert abs(own - lam) < 1e-6
    assert torch.equal(ya, y)


def test_mixup_blends():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(5, 1, 4, 4), torch.arange(5)
    mixed, _, yb, lam = mixup(x, y, generator=g)
    perm_x = x[[int((y == v).nonzero()) for v in yb]]
    assert torch.allclose(mixed, lam * x + (1 - lam) * perm_x)


def test_shared_mode_matches_batches_of_different_sizes():
    aug = DSA(FULL)
    real, syn = torch.rand(6, 3, 16, 16), torch.rand(3, 3, 16, 16)
    both = aug(torch.cat([real[:3], syn]), seed=9, shared=True)
    a, b = aug(real, seed=9, shared=True), aug(syn, seed=9, shared=True)
    # identical transform for every image: the first three of each batch match the joint call
    assert torch.allclose(a[:3], both[:3], atol=1e-6)
    assert torch.allclose(b, both[3:], atol=1e-6)


def test_draws_of_several_calls_apply_in_one_pass():
    # matching augments every class with its own seeded draw; concatenated draws applied once must give each
    # image what its own call gives (and the seeds must really differ, or the test proves nothing)
    aug = DSA(FULL)
    xs = [torch.rand(4, 3, 16, 16), torch.rand(5, 3, 16, 16)]
    alone = [aug(x, seed=s, shared=True) for x, s in zip(xs, (3, 4))]
    draws = [aug.draw(len(x), 16, 16, seed=s, shared=True) for x, s in zip(xs, (3, 4))]
    together = aug.apply(torch.cat(xs), {k: torch.cat([d[k] for d in draws]) for k in draws[0]})
    assert torch.allclose(together, torch.cat(alone), atol=1e-6)
    assert not torch.equal(draws[0]["color"][0], draws[1]["color"][0])


def _draw_one_call_at_a_time(n: int, h: int, w: int, seed: int) -> tuple[dict, float]:
    """The full strategy's parameters and a mixing coin, drawn number by number in IDC's order, as the loop of
    one network did before its draws were batched: the sequence that must not change under any batching."""
    g = torch.Generator().manual_seed(seed)
    flip = (torch.rand(n, generator=g) < 0.5).float().view(n, 1)
    color = torch.stack([torch.rand(n, generator=g) - 0.5, torch.rand(n, generator=g) * 2.0,
                         torch.rand(n, generator=g) + 0.5], 1)
    op = ("crop", "scale", "rotate")[int(torch.randint(3, (1,), generator=g))]
    theta = torch.zeros(n, 2, 3)
    if op == "scale":
        theta[:, 0, 0] = torch.rand(n, generator=g) * (1.2 - 1 / 1.2) + 1 / 1.2
        theta[:, 1, 1] = torch.rand(n, generator=g) * (1.2 - 1 / 1.2) + 1 / 1.2
    elif op == "rotate":
        a = (torch.rand(n, generator=g) - 0.5) * 2 * 15.0 * math.pi / 180
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    else:
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, 0, 2] = (torch.floor(torch.rand(n, generator=g) * 9) - 4) * 2.0 / w
        theta[:, 1, 2] = (torch.floor(torch.rand(n, generator=g) * 9) - 4) * 2.0 / h
    # cutout's centre as IDC's cutout_fn draws it: 0 .. side (a square of half an even side)
    cut = torch.stack([torch.floor(torch.rand(n, generator=g) * (h + 1)),
                       torch.floor(torch.rand(n, generator=g) * (w + 1))], 1)
    coin = float(torch.rand((), generator=g))
    return {"flip": flip, "color": color, "theta": theta.reshape(n, 6), "cutout": cut}, coin


@pytest.mark.parametrize("n", [40, 7])
def test_draws_of_many_generators_are_each_ones_own_sequence(n):
    """`draw_many` draws each generator's numbers in a few calls and transforms them together: every row block
    must be, number for number, what that generator gives when drawn one call at a time in IDC's order."""
    aug, seeds = DSA(FULL), list(range(12))  # enough seeds that crop, scale and rotate each come up
    drawn, extras = aug.draw_many(n, 32, 32, [torch.Generator().manual_seed(s) for s in seeds], extra=1)
    ops = set()
    for i, s in enumerate(seeds):
        want, coin = _draw_one_call_at_a_time(n, 32, 32, s)
        for k, v in want.items():
            assert torch.equal(drawn[k][i * n : (i + 1) * n], v), (s, k)
        assert float(extras[i, 0]) == coin
        t = want["theta"][0]
        ops.add("crop" if t[0] == 1 and t[4] == 1 else "rotate" if t[1] != 0 else "scale")
    assert ops == {"crop", "scale", "rotate"}
    one = aug.draw(n, 32, 32, seed=seeds[3])
    assert all(torch.equal(one[k], drawn[k][3 * n : 4 * n]) for k in one)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_seeded_dsa_and_cutmix_on_cuda_match_the_cpu():
    # parameters are drawn on the CPU and copied once (pinned, non-blocking): a seed must mean the same
    # transform on both devices, and the copy must have landed before the kernels read it
    x = torch.randn(64, 3, 32, 32)
    aug = DSA("color_crop_cutout_flip_scale_rotate")
    for seed in range(6):
        assert torch.allclose(aug(x.cuda(), seed=seed).cpu(), aug(x, seed=seed), atol=1e-4)
    y = torch.arange(64) % 10
    a = cutmix(x.cuda(), y.cuda(), generator=torch.Generator().manual_seed(1))
    b = cutmix(x, y, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0].cpu(), b[0]) and torch.equal(a[2].cpu(), b[2]) and a[3] == b[3]


@pytest.mark.parametrize("size", [28, 32])
def test_crop_reaches_idcs_shift_of_four_pixels(size):
    # IDC's crop_fn shifts by up to int(0.125 * side + 0.5) = 4 px at 28 and at 32 (not int(3.5) = 3 at 28)
    x = torch.zeros(1, 1, size, size)
    x[0, 0, :, size // 2] = 1.0
    aug = DSA("crop")
    shifts = set()
    for seed in range(300):
        col = aug(x, seed=seed)[0, 0].sum(0).argmax().item()
        shifts.add(col - size // 2)
    assert shifts == set(range(-4, 5))


@pytest.mark.parametrize(("size", "side"), [(28, 14), (32, 16)])
def test_cutout_zeros_a_square_of_half_the_side(size, side):
    # IDC's cutout_fn: a side x side square (side = int(0.5 * size + 0.5)), clipped at the border
    x = torch.ones(400, 1, size, size)
    out = DSA("cutout")(x, seed=0)
    zero = out[:, 0] == 0
    rows, cols = zero.any(2).sum(1), zero.any(1).sum(1)
    assert rows.max() == side and cols.max() == side
    # a square cut at a border is shorter; an interior one is exactly side x side
    full = (rows == side) & (cols == side)
    assert full.any() and torch.equal(zero[full].flatten(1).sum(1), torch.full((int(full.sum()),), side * side))
