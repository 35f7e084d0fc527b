"""The newer rules (TDDS, DUAL, k-center greedy, herding, moderate coreset), each pinned on a small fixture against
a step-by-step re-expression of its authors' code; the shared features and the tables made before they were shared.

Upstream files, read at: TDDS = zhangxin-xd/Dataset-Pruning-TDDS @ 9c1e3bd, DUAL = behaapyy/dual-pruning @ 4ab525d,
DeepCore = PatrickZH/DeepCore @ 74ec709, Moderate-DS = tmllab/Moderate-DS @ b6f4de2.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from helpers import rt
from numpy import linalg as LA
from scipy.special import softmax
from scipy.stats import beta as beta_dist

from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.rules import class_counts, parse_rule, prune, select
from yoco.scoretable import build_table, complete_table, load_table
from yoco.selectors import dual as dual_module
from yoco.selectors import tdds as tdds_module
from yoco.selectors.dual import beta_weights, dual_scores, label_probs
from yoco.selectors.tdds import epoch_contributions, tdds_scores


def fixture_dynamics(runs: int = 1, epochs: int = 12, n: int = 24, c: int = 4, seed: int = 0) -> Dynamics:
    """Outputs that drift over the run (float16 log-softmax, as recorded), labels ``i % c``, 6-D embeddings."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % c
    drift = torch.randn(runs, 1, n, c, generator=g) * torch.linspace(0, 3, epochs).view(1, epochs, 1, 1)
    logits = torch.randn(runs, epochs, n, c, generator=g) + drift
    log_probs = torch.log_softmax(logits, -1).half()
    acc = (log_probs.argmax(-1) == labels).float().mean(-1)
    return Dynamics(log_probs, acc, labels, log_probs[:, -1].float(), torch.randn(runs, n, 6, generator=g))


# ---- TDDS ---------------------------------------------------------------------------------------------------------

def upstream_tdds(outputs: np.ndarray, trajectory_len: int, window_size: int, decay: float) -> np.ndarray:
    """TDDS ``importance_evaluation.py:27-65`` on outputs ``[epochs, N, C]`` already in sample order (the
    ``index_add`` by ``_Index.npy`` at lines 40-45 is then the identity)."""
    k = 0
    moving_averages = []
    while k < trajectory_len - window_size + 1:  # :34
        probs = torch.tensor(softmax(outputs[k:k + window_size], axis=2))  # :35-37
        kds = []
        for j in range(window_size - 1):  # :49-52
            log = torch.log(probs[j + 1] + 1e-8) - torch.log(probs[j] + 1e-8)
            kds.append(torch.abs(probs[j + 1] * log).sum(axis=1).numpy())
        kds = np.array(kds)
        average = kds.sum(0) / (window_size - 1)  # :55
        norm = LA.norm(np.array([kds[i] - average for i in range(window_size - 1)]), axis=0)  # :57-60
        moving_averages.append(norm * decay * (1 - decay) ** (trajectory_len - window_size - k))  # :61
        k += 1
    return np.squeeze(sum(np.array(moving_averages), 0))  # :65


@pytest.mark.parametrize("t, w, decay", [(12, 4, 0.9), (9, 9, 0.5), (10, 3, 1.0)])
def test_tdds_is_the_authors_score_and_keeps_their_end(t, w, decay):
    dyn = fixture_dynamics()
    contrib = epoch_contributions(dyn)
    assert contrib.shape == (24, 1, 11) and contrib.dtype == torch.float32
    ours = tdds_scores(contrib, t, w, decay)
    theirs = upstream_tdds(dyn.log_probs[0].double().numpy(), t, w, decay)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=1e-5, atol=1e-9)
    # train_subset keeps data_mask[int(rate * N):] of the ascending order (data_subset.py:39): the highest scores
    opts = {"tdds_epochs": t, "tdds_window": w, "tdds_decay": decay}
    table = build_table(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    kept = select(table.scores, dyn.labels, "tdds", 2, features=table.features, **opts)
    assert parse_rule("tdds").name == "tdds_hard_imbalance"
    assert set(kept.tolist()) == set(np.argsort(theirs)[-8:].tolist())
    easy = select(table.scores, dyn.labels, "tdds_easy_balance", 2, features=table.features, **opts)
    assert class_counts(dyn.labels, easy, 4) == [2] * 4
    for k in range(4):
        members = np.flatnonzero(dyn.labels.numpy() == k)
        assert set(easy.tolist()) & set(members.tolist()) == set(members[np.argsort(theirs[members])[:2]].tolist())


def test_tdds_contributions_span_chunk_boundaries(monkeypatch):
    dyn = fixture_dynamics(runs=2, epochs=7)
    whole = epoch_contributions(dyn)

    def one_epoch_chunks(d, run, stop):
        for e in range(stop):
            yield d.log_probs[run, e:e + 1]

    monkeypatch.setattr(tdds_module, "epoch_chunks", one_epoch_chunks)
    assert torch.equal(epoch_contributions(dyn), whole) and whole.shape == (24, 2, 6)
    # several runs (the averaged-scores option): the mean of each run's score
    both = tdds_scores(whole, 7, 3, 0.9)
    each = [tdds_scores(whole[:, r:r + 1], 7, 3, 0.9) for r in range(2)]
    assert torch.allclose(both, (each[0] + each[1]) / 2)


def test_tdds_options_are_checked_and_must_fit_the_dynamics():
    dyn = fixture_dynamics(epochs=6)
    table = build_table(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    with pytest.raises(YocoError, match="tdds_epochs=30 is longer than the 6 recorded epochs"):
        select(table.scores, dyn.labels, "tdds", 1, features=table.features)
    with pytest.raises(YocoError, match="tdds_window must be a whole number between 3 and tdds_epochs=6"):
        select(table.scores, dyn.labels, "tdds", 1, features=table.features, tdds_epochs=6, tdds_window=7)
    with pytest.raises(YocoError, match="one contribution, which has no variability"):
        select(table.scores, dyn.labels, "tdds", 1, features=table.features, tdds_epochs=6, tdds_window=2)
    with pytest.raises(YocoError, match="tdds_decay must be in"):
        select(table.scores, dyn.labels, "tdds", 1, features=table.features, tdds_epochs=6, tdds_window=3,
               tdds_decay=0)


# ---- DUAL ---------------------------------------------------------------------------------------------------------

def upstream_dual(target_probs: torch.Tensor, window_size: int) -> torch.Tensor:
    """DUAL ``exp_cifar/importance_evaluation.py:110-119`` on the label's probabilities ``[T, N]``."""
    windows_score = []
    for i in range(target_probs.size(0) - window_size + 1):
        window = target_probs[i:i + window_size, :]
        windows_score.append(window.std(dim=0) * 10 * (1 - window.mean(dim=0)))
    return torch.stack(windows_score).mean(dim=0)


def upstream_beta_weights(prune_rate: float, c_d: float, target_probs: np.ndarray, mask: np.ndarray,
                          score: np.ndarray, epochs: int) -> np.ndarray:
    """DUAL ``exp_cifar/data_subset.py:165-176`` up to the draw: ``joint_p`` (its first 30 epochs are our T)."""
    pred_mean = torch.tensor(target_probs)[:epochs].mean(axis=0).numpy()
    anchor_mean = pred_mean[mask[-10:]].mean()
    y_b = 15 * (1 - anchor_mean) * (1 - prune_rate ** c_d)
    y_a = 16 - y_b
    return beta_dist.pdf(pred_mean, y_a, y_b) * score


def test_dual_score_and_beta_weights_are_the_authors():
    dyn = fixture_dynamics(epochs=12, n=40)
    probs = label_probs(dyn)
    assert probs.shape == (40, 1, 12)
    # the label's probability of every epoch, as rearrange() gathers it (importance_evaluation.py:130-139)
    expected = torch.softmax(dyn.log_probs[0].double(), -1).gather(-1, dyn.labels.view(1, -1, 1).expand(12, -1, 1))
    assert torch.allclose(probs[:, 0].double(), expected.squeeze(-1).T, rtol=1e-6)
    target = probs[:, 0].T.double()  # [epochs, N], as the authors hold it
    score, mean = dual_scores(probs, 10, 4)
    theirs = upstream_dual(target[:10], 4)
    assert torch.allclose(score, theirs, rtol=1e-12)
    for prune_rate, c_d in [(0.9, 4.0), (0.5, 4.0), (0.975, 2.0)]:
        mask = np.argsort(theirs.numpy())
        want = upstream_beta_weights(prune_rate, c_d, target.numpy(), mask, theirs.numpy(), 10)
        np.testing.assert_allclose(beta_weights(score, mean, prune_rate, c_d).numpy(), want, rtol=1e-9)


def test_dual_top_keeps_the_highest_scores_and_beta_draws_the_budget():
    dyn = fixture_dynamics(epochs=12, n=40)
    table = build_table(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    opts = {"dual_epochs": 10, "dual_window": 4}
    theirs = upstream_dual(label_probs(dyn)[:, 0].T.double()[:10], 4).numpy()
    top = select(table.scores, dyn.labels, "dual", 2, features=table.features, dual_sample="top", **opts)
    assert set(top.tolist()) == set(np.argsort(theirs)[-8:].tolist())  # mask[-n:] (data_subset.py:45)
    draws = {tuple(select(table.scores, dyn.labels, "dual_balance", 2, features=table.features, seed=s,
                          **opts).tolist()) for s in range(6)}
    assert len(draws) > 1  # a seeded random draw, not an order
    for d in draws:
        assert len(set(d)) == 8 and class_counts(dyn.labels, list(d), 4) == [2] * 4
    same = select(table.scores, dyn.labels, "dual_balance", 2, features=table.features, seed=3, **opts)
    assert torch.equal(same, select(table.scores, dyn.labels, "dual_balance", 2, features=table.features, seed=3,
                                    **opts))


def test_dual_fills_from_the_top_scores_when_too_few_images_have_a_weight(monkeypatch):
    dyn = fixture_dynamics(epochs=12, n=40)
    table = build_table(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    opts = {"dual_epochs": 10, "dual_window": 4}
    score = dual_scores(table.features["label_probs"], 10, 4)[0]
    lone = int(torch.argmin(score))

    def one_weight(s, mean, ratio, c_d):
        w = torch.zeros_like(s)
        w[lone] = 1.0
        return w

    monkeypatch.setattr(dual_module, "beta_weights", one_weight)
    kept = select(table.scores, dyn.labels, "dual", 1, features=table.features, **opts)
    assert set(kept.tolist()) == {lone} | set(torch.sort(-score, stable=True).indices[:3].tolist())


def test_dual_defaults_follow_the_dataset():
    from yoco.rules import resolve_options
    from yoco.selectors import PruneContext

    cifar = resolve_options(parse_rule("dual"), {}, PruneContext("cifar10", 10, 1))
    assert cifar == {"dual_epochs": 30, "dual_window": 10, "dual_cd": 4.0, "dual_sample": "beta"}
    imagenet = resolve_options(parse_rule("dual"), {"dual_cd": 2}, PruneContext("imagenet10", 10, 1))
    assert imagenet == {"dual_epochs": 60, "dual_window": 10, "dual_cd": 2, "dual_sample": "top"}
    with pytest.raises(YocoError, match="dual_sample must be one of beta, top"):
        resolve_options(parse_rule("dual"), {"dual_sample": "gumbel"}, None)


# ---- k-center greedy and herding (DeepCore) -----------------------------------------------------------------------

def deepcore_euclidean(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """DeepCore ``methods_utils/euclidean.py:5-12``."""
    m, n = x.size(0), y.size(0)
    dist = x.pow(2).sum(1, keepdim=True).expand(m, n) + y.pow(2).sum(1, keepdim=True).expand(n, m).t()
    dist = dist - 2 * x @ y.t()
    return dist.clamp(min=1e-12).sqrt()


def deepcore_kcenter(matrix: torch.Tensor, budget: int, first: int) -> list[int]:
    """DeepCore ``kcentergreedy.py:8-65`` with no point already selected and the random first point given."""
    sample_num = matrix.shape[0]
    select_result = np.zeros(sample_num, dtype=bool)
    select_result[first] = True
    budget -= 1
    dis_matrix = -1 * torch.ones([1 + budget - 1, sample_num], dtype=matrix.dtype)
    dis_matrix[:1, ~select_result] = deepcore_euclidean(matrix[select_result], matrix[~select_result])
    mins = torch.min(dis_matrix[:1, :], dim=0).values
    for i in range(budget):
        p = torch.argmax(mins).item()
        select_result[p] = True
        if i == budget - 1:
            break
        mins[p] = -1
        dis_matrix[1 + i, ~select_result] = deepcore_euclidean(matrix[[p]], matrix[~select_result])
        mins = torch.min(mins, dis_matrix[1 + i])
    return np.arange(sample_num)[select_result].tolist()


def deepcore_herding(matrix: torch.Tensor, budget: int, pick=torch.argmax) -> list[int]:
    """DeepCore ``herding.py:63-87`` (``pick=torch.argmin``: the same loop stepping to the nearest image)."""
    sample_num = matrix.shape[0]
    indices = np.arange(sample_num)
    mu = torch.mean(matrix, dim=0)
    select_result = np.zeros(sample_num, dtype=bool)
    for i in range(budget):
        dist = deepcore_euclidean(((i + 1) * mu - torch.sum(matrix[select_result], dim=0)).view(1, -1),
                                  matrix[~select_result])
        p = indices[~select_result][pick(dist).item()]
        select_result[p] = True
    return indices[select_result].tolist()


def _embedding_table(n: int = 24, c: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % c
    emb = (torch.randn(n, 5, generator=g) + 2 * labels.view(-1, 1)).double()
    return labels, emb


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcenter_is_deepcores_greedy_from_the_seeded_first_point(seed):
    labels, emb = _embedding_table(seed=seed)
    kept = select({}, labels, "kcenter_imbalance", 3, features={"embeddings": emb}, seed=seed)
    first = int(torch.randint(24, (1,), generator=torch.Generator().manual_seed(seed)))
    assert kept.tolist() == sorted(deepcore_kcenter(emb, 9, first))
    # balanced: one greedy per class (kcentergreedy.py:158-173), each first point the generator's next draw
    kept = select({}, labels, "kcenter", 2, features={"embeddings": emb}, seed=seed)  # balanced by default
    g = torch.Generator().manual_seed(seed)
    want = []
    for k in range(3):
        members = (labels == k).nonzero().flatten()
        first = int(torch.randint(len(members), (1,), generator=g))
        want += members[deepcore_kcenter(emb[members], 2, first)].tolist()
    assert kept.tolist() == sorted(want)


@pytest.mark.parametrize("seed", [0, 1])
def test_herding_is_deepcores_loop(seed):
    labels, emb = _embedding_table(seed=seed)
    feats = {"embeddings": emb}
    assert select({}, labels, "herding_imbalance", 3, features=feats).tolist() == deepcore_herding(emb, 9)
    nearest = select({}, labels, "herding_imbalance", 3, features=feats, herding_pick="nearest").tolist()
    assert nearest == deepcore_herding(emb, 9, torch.argmin)
    kept = select({}, labels, "herding", 2, features=feats)  # balanced by default
    want = []
    for k in range(3):  # herding.py:93-99, one herding per class on its own mean
        members = (labels == k).nonzero().flatten()
        want += members[deepcore_herding(emb[members], 2)].tolist()
    assert kept.tolist() == sorted(want)


# ---- moderate coreset ---------------------------------------------------------------------------------------------

def upstream_moderate(features: np.ndarray, targets: np.ndarray, rate: float) -> list[int]:
    """Moderate-DS ``selection.py:13-33`` (distance to the class median) and ``66-77`` (which ids are pruned); the
    kept ids are the others."""
    num_classes = len(np.unique(targets, axis=0))
    prot = np.zeros((num_classes, features.shape[-1]), dtype=features.dtype)
    for i in range(num_classes):
        prot[i] = np.median(features[(targets == i).nonzero(), :].squeeze(), axis=0, keepdims=False)
    prots_for_each_example = np.zeros(shape=(features.shape[0], prot.shape[-1]))
    for i in range(num_classes):
        prots_for_each_example[(targets == i).nonzero()[0], :] = prot[i]
    distance = np.linalg.norm(features - prots_for_each_example, axis=1)
    low, high = 0.5 - rate / 2, 0.5 + rate / 2
    sorted_idx = distance.argsort()
    pruned = np.concatenate((sorted_idx[:round(distance.shape[0] * low)], sorted_idx[round(distance.shape[0] * high):]))
    return sorted(set(range(len(features))) - set(pruned.tolist()))


@pytest.mark.parametrize("n, per_class", [(24, 2), (24, 4), (30, 4)])
def test_moderate_keeps_the_authors_middle_band(n, per_class):
    labels, emb = _embedding_table(n=n)
    kept = select({}, labels, "moderate", per_class, features={"embeddings": emb})
    budget = 3 * per_class  # n - budget is even: upstream's band then holds exactly the budget
    assert kept.tolist() == upstream_moderate(emb.numpy(), labels.numpy(), budget / n)
    kept = select({}, labels, "moderate_balance", per_class, features={"embeddings": emb})
    want = []
    for k in range(3):
        members = (labels == k).nonzero().flatten().numpy()
        inside = upstream_moderate(emb.numpy()[members], np.zeros(len(members), dtype=int), per_class / len(members))
        want += members[inside].tolist()
    assert kept.tolist() == sorted(want)


def test_moderate_meets_the_budget_where_upstream_rounds_it_away():
    labels, emb = _embedding_table(n=30)
    assert len(upstream_moderate(emb.numpy(), labels.numpy(), 3 / 30)) == 2  # rounds 13.5 -> 14 and 16.5 -> 16
    assert len(select({}, labels, "moderate", 1, features={"embeddings": emb})) == 3


# ---- shared features, tables made before them, the ladder and --help ---------------------------------------------

def test_embedding_rules_share_one_feature_and_read_the_same_tensor():
    from yoco.selectors import SELECTORS

    assert {n: SELECTORS.get(n).feature_name for n in ("ssp", "kcenter", "herding", "moderate")} == dict.fromkeys(
        ("ssp", "kcenter", "herding", "moderate"), "embeddings")
    for rule in ("ssp", "kcenter_balance", "herding", "moderate", "tdds_easy_balance", "dual"):
        assert parse_rule(rule).reads_dynamics
    assert parse_rule("kcenter").needs == ((), ("embeddings",)) and parse_rule("dual").needs == ((), ("label_probs",))


def _old_table_file(path, table):
    """The file `yoco score` wrote before features were shared: SSP's embeddings under ``features.ssp``."""
    from yoco.files import write_tensors

    config = {**table.config, "methods": {"scores": table.config["methods"]["scores"], "features": {"ssp": 1}}}
    tensors = {"labels": table.labels, **{f"score.{k}": v for k, v in table.scores.items()},
               "features.ssp": table.features["embeddings"]}
    write_tensors(path, tensors, {"yoco_scores": "1", "config": json.dumps(config), "order": json.dumps(list(table.scores))})
    return path


def test_a_table_made_before_shared_features_prunes_with_ssp_and_is_completed(tmp_path):
    from yoco.data.condensed import CondensedMeta, CondensedSet

    dyn = fixture_dynamics(epochs=8)
    cs = CondensedSet(torch.rand(24, 1, 4, 4), dyn.labels, CondensedMeta("cifar10", 4, method="idc", ipc=6),
                      source="set.safetensors")
    table = build_table(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    old = load_table(_old_table_file(tmp_path / "old.safetensors", table))
    assert set(old.features) == {"embeddings"} and torch.equal(old.features["embeddings"], table.features["embeddings"])
    assert prune(cs, old, "ssp", 2, seed=1)[1]["indices"] == prune(cs, table, "ssp", 2, seed=1)[1]["indices"]
    calls = []

    def source():
        calls.append(1)
        return dyn

    same, added = complete_table(old, source, features=["embeddings"])
    assert added == [] and not calls and same is old
    done, added = complete_table(old, source, features=["embeddings", "contributions", "label_probs"])
    assert added == ["contributions", "label_probs"] and len(calls) == 1
    assert done.config["methods"]["features"] == {"embeddings": 1, "contributions": 1, "label_probs": 1}
    back = load_table(done.save(tmp_path / "done.safetensors"))
    assert all(torch.equal(back.features[k], table.features[k]) for k in table.features)
    assert prune(cs, back, "kcenter", 1)[1]["indices"] == prune(cs, table, "kcenter", 1)[1]["indices"]


def test_ladder_help_lists_the_newer_rules_and_their_defaults():
    from yoco.cli import build_parser

    text = " ".join(build_parser()[1]["ladder"].format_help().split())
    for name in ("tdds_hard_imbalance", "tdds_easy_balance", "dual_imbalance", "kcenter_balance", "herding_imbalance",
                 "moderate_balance"):
        assert name in text, name
    for bare in ("kcenter = kcenter_balance", "herding = herding_balance", "moderate = moderate_imbalance",
                 "tdds = tdds_hard_imbalance", "dual = dual_imbalance", "yoco = lbpe_easy_balance",
                 "forgetting = forgetting_hard_imbalance"):
        assert bare in text, bare
    for option in ("tdds: tdds_epochs (default: 30)", "tdds: tdds_window (default: 10)", "tdds: tdds_decay (default: 0.9)",
                   "dual: dual_cd (default: 4.0)", "herding: herding_pick (default: farthest; one of farthest, nearest)"):
        assert option in text, option


def test_tiny_ladder_with_the_newer_rules(tmp_path, monkeypatch):
    """A ladder of the five newer rules makes one table per dynamics run holding every shared feature, passes the
    rules' options, and prunes every set (training is left out: the dynamics are a fixture, and the evaluation
    cells stop before they start, so the test takes a second on a busy CPU)."""
    from test_ladder import _setup

    from yoco.data.condensed import load
    from yoco.ladder import run as ladder_run

    cs, cfg, root = _setup(tmp_path)
    rules = ("tdds", "dual_balance", "kcenter", "herding_balance", "moderate")
    cfg = dataclasses.replace(cfg, rules=rules, ipcs=(1, 2), repeat=1, reference=False, score_runs="separate",
                              options={"tdds_epochs": 6, "tdds_window": 3, "dual_epochs": 6, "dual_window": 3})
    fake = fixture_dynamics(runs=2, epochs=6, n=len(cs.labels), c=10)
    fake = dataclasses.replace(fake, labels=cs.labels.clone())
    monkeypatch.setattr(ladder_run, "record_dynamics", lambda *a, **k: dataclasses.replace(fake, config={}))
    monkeypatch.setattr(ladder_run, "riding_evaluation", lambda *a, **k: None)
    planned = []

    def stop(cells, *a, **k):
        planned.extend((c.rule, c.ipc) for c in cells)
        raise KeyboardInterrupt

    monkeypatch.setattr(ladder_run, "execute", stop)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        ladder_run.run_ladder(cs, cfg, out, data_root=root, runtime=rt())
    names = [parse_rule(r).name for r in rules]
    assert {r for r, _ in planned} == set(names)
    tables = sorted((out / "cache").glob("scores-run*"))
    assert len(tables) == 2
    for path in tables:
        assert set(load_table(path).features) == {"embeddings", "contributions", "label_probs"}
    for name in names:
        for ipc in (1, 2):
            sets = sorted((out / "pruned").glob(f"{name}-ipc{ipc}-*.safetensors"))
            assert len(sets) == 2, (name, ipc)  # one per dynamics run
            selection = load(sets[0]).meta.extra["selection"]
            assert sum(selection["class_counts"]) == 10 * ipc
            if "tdds" in name:
                assert selection["options"] == {"tdds_epochs": 6, "tdds_window": 3, "tdds_decay": 0.9}


def test_a_table_is_completed_only_from_the_dynamics_it_came_from(tmp_path):
    """A table records the content digest of its dynamics (the same whether held in memory or read back from
    their file); a column asked of it later is computed from those dynamics only. From dynamics recorded again
    with other contents (another machine's rounding), every column is computed again instead: one table never
    mixes two records."""
    from yoco.dynamics import load_dynamics, save_dynamics

    dyn = fixture_dynamics(epochs=8)
    back = load_dynamics(save_dynamics(dyn, tmp_path / "dyn.safetensors"))
    assert back.digest() == dyn.digest()
    table = build_table(dyn, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    assert table.config["dynamics_sha256"] == dyn.digest()
    partial = dataclasses.replace(table, features={k: v for k, v in table.features.items() if k != "label_probs"})
    done, added = complete_table(partial, lambda: back, features=["label_probs"])
    assert added == ["label_probs"] and torch.equal(done.scores["lbpe"], table.scores["lbpe"])
    other = fixture_dynamics(epochs=8, seed=1)
    assert other.digest() != dyn.digest()
    redone, added = complete_table(partial, lambda: other, features=["label_probs"])
    fresh = build_table(other, lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2)
    assert set(added) >= {"lbpe", "embeddings", "label_probs"} and redone.config["dynamics_sha256"] == other.digest()
    assert all(torch.equal(redone.scores[k], fresh.scores[k]) for k in fresh.scores)
    assert all(torch.equal(redone.features[k], fresh.features[k]) for k in fresh.features)
