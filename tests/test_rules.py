"""Rules: exact counts, direction, determinism, CCS strata, SSP prototypes, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.protocol import ccs_hard_cut
from yoco.rules import Rule, class_counts, parse_rule, prune, rule_names, select
from yoco.scores import compute_scores, get_score, score_names
from yoco.scoretable import build_table
from yoco.selectors.ccs import allocate, strata
from yoco.selectors.kmeans import kmeans


def dynamics(probs: torch.Tensor, labels: torch.Tensor) -> Dynamics:
    """Dynamics of ``probs [runs, epochs, N, C]`` with 4-D embeddings (zeros) and accuracies from the argmax."""
    r, _, n, _ = probs.shape
    return Dynamics(probs.log().half(), (probs.argmax(-1) == labels).float().mean(-1), labels,
                    probs[:, -1].log().float(), torch.zeros(r, n, 4))


# every registered score with an order, read from the registry, so a new score meets the same contract tests
RANKED = tuple(n for n in score_names() if get_score(n).directional)
FAST = settings(max_examples=50, deadline=None)


@st.composite
def scored_sets(draw, min_per_class: int = 1):
    """Labels of 1-5 classes with 1-12 images each (shuffled), score columns with ties allowed, and n."""
    sizes = draw(st.lists(st.integers(min_per_class, 12), min_size=1, max_size=5))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    perm = draw(st.permutations(range(len(labels))))
    labels = labels[list(perm)]
    values = st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(-5, 5, allow_nan=False)
    cols = {s: np.array(draw(st.lists(values, min_size=len(labels), max_size=len(labels)))) for s in RANKED}
    n = draw(st.integers(1, min(sizes)))
    return cols, labels, len(sizes), n


def reference(key: np.ndarray, members: np.ndarray, k: int, ascending: bool) -> set[int]:
    """The first k of ``members`` sorted by key (ties by index), with numpy's lexsort."""
    order = np.lexsort((members, key[members] if ascending else -key[members]))
    return set(members[order[:k]].tolist())


@FAST
@given(scored_sets(), st.sampled_from(RANKED), st.sampled_from(["easy", "hard"]))
def test_balanced_rules_keep_n_per_class_in_score_order(data, score, direction):
    cols, labels, c, n = data
    idx = select(cols, labels, f"{score}_{direction}_balance", n)
    assert idx.dtype == torch.int64 and torch.equal(idx, torch.sort(idx).values)
    assert len(torch.unique(idx)) == len(idx)
    assert class_counts(labels, idx, c) == [n] * c
    ascending = (direction == "easy") != (get_score(score).harder == "low")
    kept = set(idx.tolist())
    for k in range(c):
        members = np.flatnonzero(labels == k)
        assert kept & set(members.tolist()) == reference(cols[score], members, n, ascending)
        kept_vals = cols[score][[i for i in members if i in kept]]
        dropped = cols[score][[i for i in members if i not in kept]]
        if len(dropped):
            # whatever the ties, nothing dropped is better for the rule than anything kept
            if ascending:
                assert kept_vals.max() <= dropped.min()
            else:
                assert kept_vals.min() >= dropped.max()


@FAST
@given(scored_sets(), st.sampled_from(RANKED), st.sampled_from(["easy", "hard"]))
def test_imbalanced_rules_keep_n_times_classes_globally(data, score, direction):
    cols, labels, c, n = data
    if n * c > len(labels):
        n = len(labels) // c
    idx = select(cols, labels, f"{score}_{direction}_imbalance", n)
    assert len(idx) == n * c and len(torch.unique(idx)) == len(idx)
    ascending = (direction == "easy") != (get_score(score).harder == "low")
    assert set(idx.tolist()) == reference(cols[score], np.arange(len(labels)), n * c, ascending)
    assert sum(class_counts(labels, idx, c)) == n * c


def test_easy_and_hard_ends_by_hand():
    scores = {"el2n": torch.tensor([0.3, 0.1, 0.9, 0.5]), "aum": torch.tensor([0.3, 0.1, 0.9, 0.5])}
    labels = torch.zeros(4, dtype=torch.int64)
    assert select(scores, labels, "el2n_easy", 2).tolist() == [0, 1]
    assert select(scores, labels, "el2n_hard", 2).tolist() == [2, 3]
    # low margin is hard: aum's hard end is its lowest values
    assert select(scores, labels, "aum_hard", 2).tolist() == [0, 1]
    assert select(scores, labels, "aum_easy", 2).tolist() == [2, 3]


def test_ties_go_to_the_lower_index():
    scores = {"lbpe": torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0])}
    labels = torch.zeros(5, dtype=torch.int64)
    assert select(scores, labels, "lbpe_easy_imbalance", 2).tolist() == [1, 2]
    assert select(scores, labels, "lbpe_hard_imbalance", 1).tolist() == [0]


def test_imbalanced_may_empty_a_class():
    scores = {"el2n": torch.tensor([0.9, 0.8, 0.1, 0.2])}
    labels = torch.tensor([0, 0, 1, 1])
    idx = select(scores, labels, "el2n_hard_imbalance", 1)
    assert idx.tolist() == [0, 1] and class_counts(labels, idx, 2) == [2, 0]
    assert class_counts(labels, select(scores, labels, "el2n_hard_balance", 1), 2) == [1, 1]


@FAST
@given(scored_sets(), st.sampled_from(["random", "random_balance", "ccs", "ccs_balance", "yoco", "forgetting"]),
       st.integers(0, 3))
def test_rules_are_deterministic_for_a_seed(data, rule, seed):
    cols, labels, c, n = data
    a = select(cols, labels, rule, n, seed=seed, hard_cut=0.2)
    b = select(cols, labels, rule, n, seed=seed, hard_cut=0.2)
    assert torch.equal(a, b)
    assert len(a) == n * c and len(torch.unique(a)) == len(a)


def test_random_depends_on_the_seed_and_matches_the_random_score():
    labels = torch.arange(4).repeat_interleave(25)
    picks = {tuple(select({}, labels, "random", 5, seed=s).tolist()) for s in range(4)}
    assert len(picks) == 4
    balanced = select({}, labels, "random_balance", 5, seed=1)
    assert class_counts(labels, balanced, 4) == [5] * 4
    # the random rule with seed s keeps the lowest values of the ``random`` score computed with seed s
    col = compute_scores(dynamics(torch.full((1, 1, 100, 4), 0.25), labels), ["random"], seed=7)["random"]
    assert set(select({}, labels, "random", 5, seed=7).tolist()) == set(torch.argsort(col)[:20].tolist())


def test_the_papers_random_row_is_yocos_imbalanced_draw_over_decoded_images():
    """YOCO's `--pruning_key random` turns balance off (argument.py:363-366) and its loader then draws target IPC x
    f^2 x classes decoded images uniformly from all of them (utils/img_loader.py:295-310, ``random.sample``): classes
    come out unequal and a stored image may keep some of its tiles only. The ladder runs it by default beside yoco's
    balanced reference."""
    from yoco.ladder import DEFAULT_RULES
    from yoco.rules import RANDOM_REFERENCE

    labels = torch.arange(10).repeat_interleave(40)  # IPC 10 at factor 2: 40 decoded images per class
    assert parse_rule("random").name == "random_imbalance"
    assert "random" in DEFAULT_RULES and RANDOM_REFERENCE in DEFAULT_RULES
    draws = [select({}, labels, "random", 4, seed=s) for s in range(300)]
    counts = [class_counts(labels, d, 10) for d in draws]
    assert all(sum(c) == 40 for c in counts) and sum(c != [4] * 10 for c in counts) > 250
    tiles = [torch.bincount(d // 4, minlength=100) for d in draws]  # decoded image i*4+t is tile t of stored i
    assert any(((t > 0) & (t < 4)).any() for t in tiles)
    hits = torch.bincount(torch.cat(draws), minlength=400).double()
    assert hits.mean() == 30 and hits.min() >= 10 and hits.max() <= 55  # every decoded image about 30 times in 300


# ---- CCS -----------------------------------------------------------------------------------------------------

@FAST
@given(st.integers(1, 4), st.integers(4, 40), st.floats(0.0, 0.9), st.integers(0, 2**16), st.booleans())
def test_ccs_drops_the_hard_cut_and_meets_the_budget(c, per_class, beta, seed, balanced):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(c).repeat_interleave(per_class)[torch.randperm(c * per_class, generator=g)]
    el2n = torch.randperm(len(labels), generator=g).to(torch.float64) / len(labels)  # distinct scores
    n = int(torch.randint(1, per_class + 1, (1,), generator=g))
    rule = "ccs_balance" if balanced else "ccs"
    idx = select({"el2n": el2n}, labels, rule, n, hard_cut=beta, seed=seed)
    assert len(idx) == n * c and len(torch.unique(idx)) == len(idx)
    groups = [(labels == k).nonzero().flatten() for k in range(c)] if balanced else [torch.arange(len(labels))]
    budget = n if balanced else n * c
    kept = set(idx.tolist())
    for members in groups:
        m = len(members)
        cut = min(math.floor(beta * m), m - budget)
        hardest = members[torch.argsort(el2n[members], descending=True)[:cut]]
        assert not kept & set(hardest.tolist())
        if balanced:
            assert len(kept & set(members.tolist())) == n


def test_ccs_spreads_evenly_over_uniform_strata():
    el2n = torch.linspace(0, 1, 500, dtype=torch.float64)
    labels = torch.zeros(500, dtype=torch.int64)
    idx = select({"el2n": el2n}, labels, "ccs", 100, hard_cut=0.0, seed=1)
    bins = np.clip(np.floor(el2n.numpy() * 50), 0, 49).astype(int)
    assert np.bincount(bins[idx.numpy()], minlength=50).tolist() == [2] * 50


def test_ccs_after_cut_bins_span_the_remaining_range():
    el2n = torch.linspace(0, 1, 1000, dtype=torch.float64)
    labels = torch.zeros(1000, dtype=torch.int64)
    idx = select({"el2n": el2n}, labels, "ccs", 50, hard_cut=0.5, seed=0)
    assert el2n[idx].max() < 0.5
    bins = np.clip(np.floor(el2n[:500].numpy() / float(el2n[499]) * 50), 0, 49).astype(int)
    assert np.bincount(bins[idx.numpy()], minlength=50).tolist() == [1] * 50


def test_ccs_reduces_the_cut_when_the_budget_needs_it():
    el2n = torch.arange(10, dtype=torch.float64)
    labels = torch.zeros(10, dtype=torch.int64)
    # cut 0.5 would leave 5 images; the budget of 8 keeps all but the 2 hardest
    assert select({"el2n": el2n}, labels, "ccs", 8, hard_cut=0.5).tolist() == list(range(8))


def test_ccs_reads_el2n_and_defaults_its_cut():
    labels = torch.zeros(10, dtype=torch.int64)
    with pytest.raises(YocoError, match="needs score column 'el2n'; the scores hold: lbpe"):
        select({"lbpe": torch.zeros(10)}, labels, "ccs", 2)
    idx = select({"el2n": torch.arange(10.0)}, labels, "ccs", 9)
    assert idx.tolist() == list(range(9))  # default cut 0.1 drops exactly the hardest one


def test_ccs_samples_at_random_within_a_bin_when_asked():
    el2n = torch.full((100,), 0.5, dtype=torch.float64)  # one stratum holding everything
    labels = torch.zeros(100, dtype=torch.int64)
    picks = [select({"el2n": el2n}, labels, "ccs", 5, hard_cut=0.0, seed=s, pick="random").tolist() for s in range(4)]
    assert len({tuple(p) for p in picks}) == 4
    assert all(max(p) >= 5 for p in picks)  # not simply the first indices
    # the default (YOCO's code) reads no seed: ties in the one stratum go to the lower index
    assert {tuple(select({"el2n": el2n}, labels, "ccs", 5, hard_cut=0.0, seed=s).tolist()) for s in range(4)} == {
        (0, 1, 2, 3, 4)}


def upstream_ccs(el2n: torch.Tensor, beta: float, budget: int, stratas: int = 50) -> tuple[list[int], list[int]]:
    """YOCO's CCS as its code runs it, re-expressed step by step for this test: ``utils/img_loader.py:539-602``
    (imbalanced, ``mis_num = int(beta * N)``, the descending EL2N order with the hardest ``mis_num`` dropped, the
    scores replaced by that order) and ``ccs/core/data/Coreset.py:56-132`` (50 bins [min + k w, min + (k+1) w)
    with w = (1.0001 max - min) / 50, the budget spread over the bins sorted by size, and with
    ``random_select=False`` the first members of each bin in that descending order). Returns the kept indices
    and each bin's quota. Ties (absent from these scores) would follow upstream's unstable sorts."""
    n = len(el2n)
    order = torch.argsort(el2n, descending=True, stable=True)
    kept = order[int(beta * n):]
    score = el2n[kept]
    lo, hi = torch.min(score), torch.max(score) * 1.0001
    step = (hi - lo) / stratas
    masks = [(score >= lo + k * step) & (score < lo + (k + 1) * step) for k in range(stratas)]
    counts = torch.tensor([int(m.sum()) for m in masks])
    by_size = torch.argsort(counts, stable=True)
    rest, budgets = budget, [0] * stratas
    for i, b in enumerate(by_size.tolist()):
        budgets[b] = min(int(counts[b]), rest // (stratas - i))
        rest -= budgets[b]
    positions = torch.arange(len(score))
    picked = [int(p) for k in range(stratas) for p in positions[masks[k]][:budgets[k]]]
    return sorted(kept[picked].tolist()), budgets


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("beta", "budget"), [(0.3, 40), (0.1, 80), (0.0, 200), (0.3, 120)])
def test_ccs_picks_what_yocos_code_picks(seed, beta, budget):
    """The default pick is YOCO's: the same images as its code on 400 decoded images (CIFAR-10 IPC 10 x 2^2 x 10
    classes' worth per class, as one imbalanced pool), for its table's betas and budgets."""
    g = torch.Generator().manual_seed(seed)
    el2n = torch.rand(400, generator=g, dtype=torch.float64) ** 2 * 1.3  # skewed, like an error norm
    labels = torch.randint(10, (400,), generator=g)
    want, _ = upstream_ccs(el2n, beta, budget)
    assert select({"el2n": el2n}, labels, "ccs", budget // 10, num_classes=10, hard_cut=beta).tolist() == want


def test_ccs_random_pick_draws_upstream_ccs_quota_per_bin():
    """``pick="random"`` (upstream CCS) takes each bin's quota from the same bins, at random within them."""
    g = torch.Generator().manual_seed(0)
    el2n = torch.rand(400, generator=g, dtype=torch.float64) ** 2
    labels = torch.randint(10, (400,), generator=g)
    highest, budgets = upstream_ccs(el2n, 0.3, 40)
    rest = torch.argsort(el2n, descending=True, stable=True)[120:]
    lo, hi = float(el2n[rest].min()), float(el2n[rest].max()) * 1.0001
    draws = [select({"el2n": el2n}, labels, "ccs", 4, hard_cut=0.3, seed=s, pick="random") for s in range(3)]
    for idx in draws:
        bins = ((el2n[idx] - lo) / ((hi - lo) / 50)).floor().to(torch.int64)
        assert torch.bincount(bins, minlength=50).tolist() == budgets
    assert any(idx.tolist() != highest for idx in draws)


def test_allocate_from_the_emptiest_bin_up():
    assert allocate([1, 5, 100], 30) == [1, 5, 24]
    assert allocate([0, 3, 3, 0], 5) == [0, 2, 3, 0]
    assert allocate([10, 10], 7) == [3, 4]


@FAST
@given(st.lists(st.integers(0, 20), min_size=1, max_size=50), st.data())
def test_allocate_is_exact_and_within_bins(sizes, data):
    budget = data.draw(st.integers(0, sum(sizes)))
    quota = allocate(sizes, budget)
    assert sum(quota) == budget
    assert all(0 <= q <= s for q, s in zip(quota, sizes, strict=True))
    # no bin is starved while a bin of the same size or larger gets more than one extra
    for a in range(len(sizes)):
        for b in range(len(sizes)):
            if sizes[a] <= sizes[b] and quota[a] < sizes[a]:
                assert quota[b] <= quota[a] + 1


def test_strata_equal_width_as_ccs():
    # CCS stratified_sampling: width (1.0001 * max - min) / 50, bins [min + k w, min + (k + 1) w)
    v = torch.tensor([0.0, 0.019, 0.021, 0.5, 0.99995, 1.0], dtype=torch.float64)
    assert strata(v, 50).tolist() == [0, 0, 1, 24, 49, 49]  # 0.5 / (1.0001 / 50) = 24.998
    assert strata(torch.ones(3, dtype=torch.float64), 50).tolist() == [0, 0, 0]
    negative = torch.tensor([-2.0, -1.0, -0.5], dtype=torch.float64)
    assert strata(negative, 2).tolist() == [0, 1, 1]  # the maximum stays in the last bin


# ---- SSP -----------------------------------------------------------------------------------------------------

def clusters(k: int, per: int, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dim, generator=g) * 100
    cluster = torch.arange(k).repeat_interleave(per)
    return centers[cluster] + torch.randn(k * per, dim, generator=g) * 0.1, cluster


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssp_keeps_the_image_nearest_each_centroid_of_yocos_kmeans(seed):
    x, _ = clusters(6, 5, seed=seed)
    labels = torch.zeros(30, dtype=torch.int64)
    idx = select({}, labels, "ssp", 6, features={'ssp': x}, seed=seed)
    # the same k-means (random-point start from the rule's seed, float32) that the rule runs
    centers, _ = kmeans(x, 6, generator=torch.Generator().manual_seed(seed))
    nearest = torch.cdist(centers, x.float()).argmin(1)
    if len(set(nearest.tolist())) == 6:  # no two centroids share an image: the prototypes are exactly those
        assert sorted(idx.tolist()) == sorted(nearest.tolist())
    assert len(set(idx.tolist())) == 6


def test_ssp_balanced_runs_one_kmeans_per_class():
    x, cluster = clusters(6, 4)
    labels = cluster // 3  # class 0 holds clusters 0-2, class 1 clusters 3-5
    idx = select({}, labels, "ssp_balance", 3, features={'ssp': x})
    assert class_counts(labels, idx, 2) == [3, 3]
    assert sorted(cluster[idx].tolist()) == list(range(6))


@FAST
@given(st.integers(1, 3), st.integers(1, 10), st.integers(0, 100), st.booleans(), st.booleans())
def test_ssp_returns_distinct_indices(c, per_class, seed, balanced, duplicates):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(c).repeat_interleave(per_class)
    x = torch.zeros(len(labels), 3) if duplicates else torch.randn(len(labels), 3, generator=g)
    n = int(torch.randint(1, per_class + 1, (1,), generator=g))
    idx = select({}, labels, "ssp_balance" if balanced else "ssp", n, features={'ssp': x}, seed=seed)
    assert len(idx) == n * c and len(torch.unique(idx)) == len(idx)
    assert torch.equal(idx, select({}, labels, "ssp_balance" if balanced else "ssp", n, features={'ssp': x}, seed=seed))


def test_kmeans_plus_plus_finds_separated_means():
    x, cluster = clusters(4, 10, seed=3)
    centers, assign = kmeans(x, 4, generator=torch.Generator().manual_seed(0), init="k-means++")
    for k in range(4):
        members = assign == assign[cluster == k][0]
        assert torch.equal(members, cluster == k)
        assert torch.allclose(centers[assign[cluster == k][0]], x[cluster == k].mean(0), atol=1e-3)


def test_kmeans_random_start_is_lloyd_from_distinct_data_points():
    # YOCO's SSP: fast_pytorch_kmeans with random points as the start, float32, Lloyd until the centroids settle
    x, _ = clusters(3, 8, seed=1)
    centers0, _ = kmeans(x, 5, generator=torch.Generator().manual_seed(2), max_iter=0)
    assert centers0.dtype == torch.float32
    rows = [int((x.float() == c).all(1).nonzero()[0]) for c in centers0]
    assert len(set(rows)) == 5  # five distinct data points
    centers, assign = kmeans(x, 5, generator=torch.Generator().manual_seed(2))
    for j in assign.unique().tolist():  # a fixed point of Lloyd: every centroid is its members' mean
        assert torch.allclose(centers[j], x[assign == j].float().mean(0), atol=1e-3)


# ---- parsing, tables, errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, name",
    [
        ("yoco", "lbpe_easy_balance"),
        ("lbpe", "lbpe_easy_balance"),
        ("lbpe_easy_balance", "lbpe_easy_balance"),
        ("LBPE-Hard-Imbalance", "lbpe_hard_imbalance"),
        ("forgetting", "forgetting_hard_imbalance"),
        ("el2n_hard", "el2n_hard_imbalance"),
        ("el2n_easy", "el2n_easy_imbalance"),
        ("aum_balance", "aum_hard_balance"),
        ("entropy", "entropy_hard_imbalance"),
        ("random", "random_imbalance"),
        ("random_balance", "random_balance"),
        ("ssp", "ssp_imbalance"),
        ("ssp_balance", "ssp_balance"),
        ("ccs", "ccs_imbalance"),
        ("ccs_balance", "ccs_balance"),
    ],
)
def test_parse_rule(text, name):
    assert parse_rule(text).name == name


def test_every_listed_rule_parses_to_itself():
    names = rule_names()
    assert "yoco" in names and "ssp_imbalance" in names and "forgetting_hard_imbalance" in names
    for name in names:
        if name != "yoco":
            assert parse_rule(name).name == name
    rule = parse_rule("yoco")
    assert rule == Rule("lbpe", "easy", "balance") and rule.balanced
    assert parse_rule(rule) is rule


@pytest.mark.parametrize("text, match", [
    ("lbpe_sideways", "known rules: yoco, lbpe_easy_balance"),
    ("random_easy", "takes no easy/hard direction"),
    ("ssp_hard_balance", "takes no easy/hard direction"),
    ("", "unknown rule"),
])
def test_bad_rules(text, match):
    with pytest.raises(YocoError, match=match):
        parse_rule(text)


SPEC_HARD_CUTS = {  # SPEC section 5, copied by hand: dataset -> source IPC -> betas for targets 1, 2, 5(, 10)
    "cifar10": {10: (0.3, 0.1, 0.0), 50: (0.3, 0.3, 0.3, 0.1)},
    "cifar100": {10: (0.5, 0.4, 0.2), 20: (0.5, 0.5, 0.3), 50: (0.5, 0.5, 0.5, 0.3)},
    "imagenet10": {10: (0.3, 0.2, 0.1), 20: (0.3, 0.3, 0.2)},
}


def test_ccs_hard_cut_table():
    for dataset, by_source in SPEC_HARD_CUTS.items():
        for source, betas in by_source.items():
            for target, beta in zip((1, 2, 5, 10), betas, strict=False):
                assert ccs_hard_cut(dataset, source, target) == beta, (dataset, source, target)
    assert ccs_hard_cut("CIFAR-10", 10, 5) == 0.0
    assert ccs_hard_cut("ImageNet-10", 20, 2) == 0.3
    # fallbacks: the CIFAR-10 entry for the same IPCs, else 0.1
    assert ccs_hard_cut("svhn", 10, 2) == 0.1 and ccs_hard_cut("svhn", 50, 1) == 0.3
    assert ccs_hard_cut("cifar100", 10, 10) == 0.1 and ccs_hard_cut("cifar100", 100, 1) == 0.1


def test_class_counts():
    assert class_counts(torch.tensor([0, 2, 2, 1]), torch.tensor([1, 2]), 4) == [0, 0, 2, 0]


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "integer >= 1"),
    ({"n": 4}, "class 1 has only 3"),
    ({"rule": "el2n_imbalance", "n": 4}, "4 x 2 classes = 8 images but the set has only 7"),
    ({"scores": {"el2n": [0.1, float("nan"), 0, 0, 0, 0, 0]}}, "NaN"),
    ({"scores": {"el2n": [0.1, 0.2]}}, "shape \\[2\\] but there are 7 labels"),
    ({"rule": "lbpe_easy_balance"}, "needs score column 'lbpe'; the scores hold: el2n"),
    ({"rule": "ssp"}, "needs the ssp features of every image"),
    ({"rule": "ssp", "features": {"ssp": torch.zeros(6, 2)}}, "ssp features must be \\[N=7, D\\]"),
    ({"rule": "ccs", "hard_cutt": 0.1}, "unknown rule option\\(s\\) \\['hard_cutt'\\]; options by method: .*ccs.*hard_cut"),
    ({"rule": "ccs", "hard_cut": 1.0}, "hard-cut ratio must be in \\[0, 1\\)"),
    ({"labels": [[0, 1]]}, "one-dimensional"),
    ({"labels": [0.0, 1.0, 0, 0, 1, 1, 1]}, "integers"),
    ({"num_classes": 1}, "num_classes=1 but the labels reach 1"),
    ({"num_classes": 3}, "class 2 has only 0"),
])
def test_select_errors(kwargs, match):
    args = {"scores": {"el2n": torch.arange(7.0)}, "labels": [0, 0, 0, 0, 1, 1, 1], "rule": "el2n_balance", "n": 1}
    args.update(kwargs)
    with pytest.raises(YocoError, match=match):
        select(args.pop("scores"), args.pop("labels"), args.pop("rule"), args.pop("n"), **args)


def test_hard_cut_is_ignored_by_other_rules():
    labels = torch.zeros(4, dtype=torch.int64)
    assert select({"el2n": torch.arange(4.0)}, labels, "el2n_hard", 1, hard_cut=5.0).tolist() == [3]


def test_every_rule_runs_on_computed_scores():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(8)
    probs = torch.softmax(torch.randn(2, 12, 24, 3, generator=g) * 3, -1)
    dyn = dynamics(probs, labels)
    dyn.embeddings.normal_(generator=g)
    table = build_table(dyn, lbpe_epochs=10, lbpe_top_k=3, el2n_epochs=5)  # every registered method's columns
    short = {"tdds_epochs": 12, "dual_epochs": 12}  # windows that fit the 12 recorded epochs
    # the set's metadata says it is MDC's (factor 1, 8 per class), for mdc_prefix, which reads the set's own order
    meta = {"ipc": 8, "factor": 1, "extra": {"nested_subsets": {"order": "crop-major", "ipc": 8}}}
    for name in rule_names():
        idx = select(table.scores, labels, name, 2, num_classes=3, features=table.features, seed=0, set_meta=meta,
                     **short)
        assert len(idx) == 6 and len(torch.unique(idx)) == 6
        if parse_rule(name).balanced:
            assert class_counts(labels, idx, 3) == [2, 2, 2]


# ---- the score table and prune ---------------------------------------------------------------------------------

def _table_and_set(ipc: int = 4, classes: int = 3, dataset: str = "cifar10"):
    from yoco.data.condensed import CondensedMeta, CondensedSet
    from yoco.scoretable import build_table

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(classes).repeat_interleave(ipc)
    probs = torch.softmax(torch.randn(2, 12, len(labels), classes, generator=g) * 3, -1)
    dyn = dynamics(probs, labels)
    dyn.embeddings.normal_(generator=g)
    cs = CondensedSet(torch.rand(len(labels), 1, 4, 4, generator=g), labels,
                      CondensedMeta(dataset, classes, method="idc", ipc=ipc), source="set.safetensors")
    return cs, build_table(dyn, lbpe_epochs=10, lbpe_top_k=3, el2n_epochs=5, config={"dynamics": "d"})


def test_score_table_round_trip_keeps_scores_features_and_config(tmp_path):
    from yoco.scoretable import load_table

    _, table = _table_and_set()
    assert set(table.features) == {"embeddings", "contributions", "label_probs"}
    assert table.features["embeddings"].shape == (12, 8)  # two runs' 4-D embeddings, normalised and concatenated
    assert table.features["contributions"].shape == (12, 2, 11) and table.features["label_probs"].shape == (12, 2, 12)
    back = load_table(table.save(tmp_path / "scores.safetensors"))
    assert list(back.scores) == list(table.scores) and back.config == table.config
    assert all(torch.equal(back.scores[k], v) for k, v in table.scores.items())
    assert all(torch.equal(back.features[k], v) for k, v in table.features.items())
    assert torch.equal(back.labels, table.labels)
    csv = load_table(table.to_csv(tmp_path / "scores.csv"))
    assert csv.features == {} and all(torch.equal(csv.scores[k], v) for k, v in table.scores.items())


def test_prune_records_the_selection_in_the_set_and_ccs_takes_its_table_beta():
    cs, table = _table_and_set(ipc=10, classes=2)
    pruned, record = prune(cs, table, "ccs", 1)
    assert record["options"] == {"hard_cut": 0.3, "pick": "highest"}  # YOCO's beta for CIFAR-10 10 -> 1
    assert pruned.meta.extra["selection"]["indices"] == record["indices"] and pruned.meta.ipc == 1
    assert prune(cs, table, "ccs", 1, hard_cut=0.0)[1]["options"] == {"hard_cut": 0.0, "pick": "highest"}
    assert prune(cs, table, "yoco", 2)[1]["options"] == {}
    with pytest.raises(YocoError, match="ssp features"):
        prune(cs, dataclasses.replace(table, features={}), "ssp", 1)


def test_prune_refuses_a_table_of_another_set():
    _, table = _table_and_set()
    other, _ = _table_and_set(ipc=5)
    with pytest.raises(YocoError, match="15 images|score rows"):
        prune(other, table, "yoco", 1)


def test_options_help_names_every_selector_option_and_its_default():
    from yoco.rules import options_help
    from yoco.selectors import SELECTORS

    text = options_help()
    for name in SELECTORS.names():
        for option, default in SELECTORS.get(name).options.items():
            assert f"{name}: {option} (default: " in text and str(default) in text
    assert "protocol's value" in text  # ccs resolves its cut from YOCO's table


def test_only_the_random_selector_reads_nothing_from_the_dynamics():
    # a ladder keys the random subsets by the source alone and every other rule's by the score table
    from yoco.rules import parse_rule

    assert not parse_rule("random_balance").reads_dynamics and not parse_rule("random_imbalance").reads_dynamics
    for rule in ("yoco", "forgetting_hard_imbalance", "ssp", "ccs", "el2n_easy_balance"):
        assert parse_rule(rule).reads_dynamics, rule


def test_one_run_gives_its_own_scores_and_raw_embeddings_to_ssp():
    """A single run's table is what one of YOCO's reproductions computes: that run's scores, and SSP on the final
    model's embeddings as they are; several runs' embeddings are normalised and concatenated."""
    from yoco.scoretable import build_table
    from yoco.selectors.ssp import ssp_embeddings

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(4)
    probs = torch.softmax(torch.randn(2, 6, 12, 3, generator=g), -1)
    dyn = dynamics(probs, labels)
    dyn.embeddings = torch.randn(2, 12, 5, generator=g) * 7
    one = dyn.run(1)
    assert one.runs == 1 and torch.equal(one.log_probs[0], dyn.log_probs[1]) and one.config["run"] == 1
    assert torch.equal(ssp_embeddings(one), dyn.embeddings[1])
    both = ssp_embeddings(dyn)
    assert both.shape == (12, 10) and torch.allclose(both[:, :5].norm(dim=1), torch.ones(12))
    table = build_table(one, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    alone = compute_scores(dynamics(probs[1:], labels), lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    assert all(torch.equal(table.scores[k], alone[k]) for k in alone)
    with pytest.raises(YocoError, match="run 2 asked for, the dynamics hold runs 0..1"):
        dyn.run(2)
