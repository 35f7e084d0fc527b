"""Importance scores on hand-made dynamics with known answers, and the scores CSV."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from yoco import scores as scores_mod
from yoco.dynamics import Dynamics
from yoco.errors import YocoError
from yoco.protocol import lbpe_window
from yoco.scores import compute_scores, get_score, register_score, score_names
from yoco.scoretable import check_matches, read_scores_csv, write_scores_csv


def make_dyn(probs, labels, train_acc=None, final_probs=None, dim: int = 3) -> Dynamics:
    """Dynamics from probabilities ``[runs, epochs, N, C]`` (stored as float16 log-probabilities, as recorded)."""
    probs = torch.as_tensor(probs, dtype=torch.float64)
    r, _, n, _ = probs.shape
    labels = torch.as_tensor(labels, dtype=torch.int64)
    if train_acc is None:
        train_acc = (probs.argmax(-1) == labels).to(torch.float32).mean(-1)
    final = probs[:, -1] if final_probs is None else torch.as_tensor(final_probs, dtype=torch.float64)
    return Dynamics(
        log_probs=probs.log().to(torch.float16),
        train_acc=torch.as_tensor(train_acc, dtype=torch.float32),
        labels=labels,
        final_log_probs=final.log().to(torch.float32),
        embeddings=torch.zeros(r, n, dim),
    )


def two_class(p_label: list[float], label: int = 0) -> torch.Tensor:
    """One run, one image, two classes: ``p_label[t]`` on the label at epoch t."""
    p = torch.tensor(p_label, dtype=torch.float64)
    other = 1 - p
    pair = torch.stack([p, other], -1) if label == 0 else torch.stack([other, p], -1)
    return pair[None, :, None, :]


def test_forgetting_counts_correct_to_wrong_transitions():
    # image 0 (label 0): correct, wrong, correct, wrong, wrong, correct -> forgotten twice
    # image 1 (label 1): wrong first, then always right -> never forgotten (learning is not forgetting)
    a = two_class([0.9, 0.2, 0.8, 0.3, 0.1, 0.7], label=0)
    b = two_class([0.4, 0.6, 0.9, 0.9, 0.9, 0.9], label=1)
    dyn = make_dyn(torch.cat([a, b], 2), [0, 1])
    out = compute_scores(dyn, ["forgetting"])["forgetting"]
    assert out.dtype == torch.float64 and out.tolist() == [2.0, 0.0]


def test_perfect_prediction_has_zero_error_and_full_margin():
    epochs, c = 12, 4
    probs = torch.zeros(1, epochs, 1, c)
    probs[..., 2] = 1.0
    dyn = make_dyn(probs, [2])
    out = compute_scores(dyn, ["lbpe", "el2n", "aum", "forgetting"], lbpe_epochs=10, lbpe_top_k=3, el2n_epochs=5)
    assert out["lbpe"].item() == 0.0
    assert out["el2n"].item() == 0.0
    assert out["aum"].item() == float(epochs)
    assert out["forgetting"].item() == 0.0


@pytest.mark.parametrize("c", [2, 4, 10])
def test_uniform_output_entropy_and_el2n(c):
    probs = torch.full((1, 10, 3, c), 1.0 / c)
    dyn = make_dyn(probs, [0, 1, c - 1])
    out = compute_scores(dyn, ["entropy", "el2n"], el2n_epochs=10)
    assert torch.allclose(out["entropy"], torch.full((3,), math.log(c), dtype=torch.float64), atol=1e-6)
    expect = math.sqrt((1 - 1 / c) ** 2 + (c - 1) / c**2)
    assert torch.allclose(out["el2n"], torch.full((3,), expect, dtype=torch.float64), atol=1e-6)


def test_el2n_reads_only_its_window():
    # error sqrt(2) * (1 - p) for two classes; the first 2 epochs have p = 0.5, later ones p = 1
    dyn = make_dyn(two_class([0.5, 0.5, 1.0, 1.0]), [0])
    two = compute_scores(dyn, ["el2n"], el2n_epochs=2)["el2n"].item()
    four = compute_scores(dyn, ["el2n"], el2n_epochs=4)["el2n"].item()
    assert two == pytest.approx(math.sqrt(2) * 0.5, abs=1e-3)
    assert four == pytest.approx(math.sqrt(2) * 0.25, abs=1e-3)


def test_aum_sums_margin_against_the_largest_other_class():
    epoch0 = [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]
    epoch1 = [[0.25, 0.25, 0.5], [0.1, 0.1, 0.8]]
    dyn = make_dyn(torch.tensor([[epoch0, epoch1]]), [0, 2])
    out = compute_scores(dyn, ["aum"])["aum"]
    # label 0: (0.5 - 0.3) + (0.25 - 0.5); label 2: (0.2 - 0.5) + (0.8 - 0.1)
    assert torch.allclose(out, torch.tensor([-0.05, 0.4], dtype=torch.float64), atol=2e-3)


def test_lbpe_sums_the_top_k_accuracy_epochs_of_the_window():
    p = [0.5, 0.75, 0.25, 0.875, 0.125, 0.625, 1.0, 1.0]
    # the two best epochs overall (6, 7) lie outside the window E=6; inside it the best are 1 and 3
    acc = [0.1, 0.9, 0.2, 0.8, 0.3, 0.5, 1.0, 1.0]
    dyn = make_dyn(two_class(p), [0], train_acc=[acc])
    got = compute_scores(dyn, ["lbpe"], lbpe_epochs=6, lbpe_top_k=2)["lbpe"].item()
    assert got == pytest.approx(math.sqrt(2) * ((1 - 0.75) + (1 - 0.875)), abs=2e-3)
    # K = 3 adds epoch 5 (accuracy 0.5)
    got3 = compute_scores(dyn, ["lbpe"], lbpe_epochs=6, lbpe_top_k=3)["lbpe"].item()
    assert got3 == pytest.approx(math.sqrt(2) * (0.25 + 0.125 + 0.375), abs=2e-3)


def test_lbpe_breaks_accuracy_ties_toward_the_earlier_epoch():
    p = [0.5, 0.75, 0.25, 0.875]
    dyn = make_dyn(two_class(p), [0], train_acc=[[0.1, 0.9, 0.9, 0.9]])
    got = compute_scores(dyn, ["lbpe"], lbpe_epochs=4, lbpe_top_k=2)["lbpe"].item()
    assert got == pytest.approx(math.sqrt(2) * (0.25 + 0.75), abs=2e-3)


def test_scores_are_averaged_over_runs():
    steady = two_class([0.9, 0.9, 0.9, 0.9])
    flip = two_class([0.9, 0.1, 0.9, 0.9])
    dyn = make_dyn(torch.cat([steady, flip], 0), [0], train_acc=[[1, 1, 1, 1], [1, 0, 1, 1]])
    out = compute_scores(dyn, ["forgetting", "aum", "lbpe"], lbpe_epochs=4, lbpe_top_k=1)
    assert out["forgetting"].item() == 0.5
    assert out["aum"].item() == pytest.approx((4 * 0.8 + 3 * 0.8 - 0.8) / 2, abs=5e-3)
    # run 0 picks epoch 0 (ties -> earliest), run 1 picks epoch 0 too: error sqrt(2) * 0.1 in both
    assert out["lbpe"].item() == pytest.approx(math.sqrt(2) * 0.1, abs=2e-3)


def test_entropy_reads_the_final_model_not_the_last_epoch():
    probs = torch.full((2, 3, 2, 2), 0.5)
    final = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[1.0, 0.0], [0.5, 0.5]]])
    dyn = make_dyn(probs, [0, 1], final_probs=final)
    out = compute_scores(dyn, ["entropy"])["entropy"]
    assert torch.allclose(out, torch.tensor([0.0, math.log(2)], dtype=torch.float64), atol=1e-6)


def test_random_is_seeded_uniform():
    dyn = make_dyn(torch.full((1, 2, 50, 2), 0.5), [0] * 50)
    a = compute_scores(dyn, ["random"], seed=3)["random"]
    b = compute_scores(dyn, ["random"], seed=3)["random"]
    c = compute_scores(dyn, ["random"], seed=4)["random"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert ((a >= 0) & (a < 1)).all() and len(torch.unique(a)) == 50


def test_all_scores_by_default_float64_per_image():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(2, 12, 7, 3, generator=g), -1)
    dyn = make_dyn(probs, torch.randint(3, (7,), generator=g))
    out = compute_scores(dyn, lbpe_epochs=10, lbpe_top_k=3, el2n_epochs=4)
    assert list(out) == score_names()
    assert {"random", "lbpe", "el2n", "forgetting", "aum", "entropy"} <= set(out)
    for v in out.values():
        assert v.shape == (7,) and v.dtype == torch.float64 and torch.isfinite(v).all()


def test_registry_directions():
    assert get_score("aum").harder == "low"
    for name in ("lbpe", "el2n", "forgetting", "entropy"):
        assert get_score(name).harder == "high"
    assert get_score("lbpe").default_direction == "easy"
    assert get_score("el2n").default_direction == "hard"


def test_register_score_adds_a_score_and_a_rule():
    from yoco.rules import parse_rule, rule_names

    @register_score("lastloss", harder="high", default_direction="hard")
    def lastloss(dyn, cfg):
        """Negative log-likelihood of the label at the last epoch."""
        lp = dyn.log_probs[:, -1].to(torch.float64)
        return -lp.gather(-1, dyn.labels.expand(dyn.runs, -1).unsqueeze(-1)).squeeze(-1)

    try:
        dyn = make_dyn(two_class([0.5, 1.0]), [0])
        assert compute_scores(dyn, ["lastloss"])["lastloss"].item() == 0.0
        assert "lastloss_hard_imbalance" in rule_names()
        assert parse_rule("lastloss").name == "lastloss_hard_imbalance"
        assert get_score("lastloss").summary.startswith("Negative log-likelihood")
    finally:
        scores_mod.SCORES.remove("lastloss")


def test_window_errors():
    dyn = make_dyn(torch.full((1, 5, 2, 2), 0.5), [0, 1])
    with pytest.raises(YocoError, match="5 epochs, shorter than lbpe's window of 10"):
        compute_scores(dyn, ["lbpe"], lbpe_epochs=10, lbpe_top_k=2)
    with pytest.raises(YocoError, match="top-K"):
        compute_scores(dyn, ["lbpe"], lbpe_epochs=4, lbpe_top_k=5)
    with pytest.raises(YocoError, match="el2n"):
        compute_scores(dyn, ["el2n"], el2n_epochs=6)
    with pytest.raises(YocoError, match="known scores: .*lbpe.*el2n"):
        compute_scores(dyn, ["loss"])
    # an unrequested score's window does not matter
    assert "aum" in compute_scores(dyn, ["aum"], lbpe_epochs=100)


def test_nan_dynamics_are_refused():
    probs = torch.full((1, 3, 2, 2), 0.5)
    dyn = make_dyn(probs, [0, 1])
    dyn.log_probs[0, 1, 1] = float("nan")
    with pytest.raises(YocoError, match="NaN"):
        compute_scores(dyn, ["el2n"], el2n_epochs=3)


def test_lbpe_window_table():
    assert lbpe_window("cifar10", "idc") == (100, 10)
    assert lbpe_window("CIFAR-100", "idc") == (200, 10)
    assert lbpe_window("cifar100", "dream") == (200, 10)
    assert lbpe_window("cifar10", "dream") == (200, 10)
    assert lbpe_window("imagenet10", "idc") == (200, 10)
    assert lbpe_window("cifar10", "mtt") == (10, 3)
    assert lbpe_window("cifar10", "dsa") == (100, 3)
    assert lbpe_window("cifar10", "kip") == (50, 3)
    assert lbpe_window("cifar10", "idc+lbpe_easy_balance") == (100, 10)
    for d in ("fashion-mnist", "mnist", "svhn", "", "real"):
        assert lbpe_window(d, "idc") == (100, 10)


# ---- the scores CSV ----------------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite, st.integers(0, 9)), min_size=0, max_size=30))
def test_csv_round_trip_is_exact(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "scores.csv"
    a = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    b = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    labels = torch.tensor([r[2] for r in rows], dtype=torch.int64)
    config = {"lbpe_epochs": 100, "dynamics": "d.safetensors", "note": "a,b\n\"c\""}
    assert write_scores_csv(path, {"lbpe": a, "aum": b}, labels, config) == path
    scores, lab, cfg = read_scores_csv(path)
    assert list(scores) == ["lbpe", "aum"]
    assert scores["lbpe"].tolist() == a.tolist() and scores["aum"].tolist() == b.tolist()
    assert torch.equal(lab, labels) and cfg == config


def test_csv_layout(tmp_path):
    path = write_scores_csv(tmp_path / "s.csv", {"el2n": torch.tensor([0.5, 0.25])}, torch.tensor([1, 0]), {"a": 1})
    assert path.read_text().splitlines() == ['# config: {"a": 1}', "index,label,el2n", "0,1,0.5", "1,0,0.25"]
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "empty"),
        ("idx,label,lbpe\n0,0,1.0\n", "bad header"),
        ("index,label\n0,0\n", "bad header"),
        ("index,label,lbpe,lbpe\n0,0,1.0,2.0\n", "bad header"),
        ("index,label,lbpe\n0,0,abc\n", "line 2: lbpe value 'abc' is not a number"),
        ("index,label,lbpe\n0,0,nan\n", "NaN"),
        ("index,label,lbpe\n0,0,1.0\n2,0,1.0\n", "line 3: index '2', expected 1"),
        ("index,label,lbpe\n1,0,1.0\n", "expected 0"),
        ("index,label,lbpe\n0,0.5,1.0\n", "label '0.5' is not an integer"),
        ("index,label,lbpe\n0,0,1.0,3\n", "4 fields, expected 3"),
        ("# config: {oops\nindex,label,lbpe\n0,0,1.0\n", "config is not valid JSON"),
    ],
)
def test_bad_csv_names_the_file(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(YocoError, match=match) as err:
        read_scores_csv(path)
    assert str(path) in str(err.value)


def test_missing_csv(tmp_path):
    with pytest.raises(YocoError, match="no such scores file") as err:
        read_scores_csv(tmp_path / "nope.csv")
    assert "nope.csv" in str(err.value)


def test_write_refuses_nan_and_mismatched_lengths(tmp_path):
    with pytest.raises(YocoError, match="NaN"):
        write_scores_csv(tmp_path / "a.csv", {"x": torch.tensor([float("nan")])}, torch.tensor([0]), {})
    with pytest.raises(YocoError, match="expected \\[2\\]"):
        write_scores_csv(tmp_path / "a.csv", {"x": torch.tensor([1.0])}, torch.tensor([0, 1]), {})
    assert not (tmp_path / "a.csv").exists()


def test_check_matches(tmp_path):
    check_matches(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]), "s.csv")
    with pytest.raises(YocoError, match="s.csv: 3 score rows but the decoded condensed set has 2"):
        check_matches(torch.tensor([0, 1, 1]), torch.tensor([0, 1]), "s.csv")
    with pytest.raises(YocoError, match="first: index 2, file 1, set 0"):
        check_matches(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 0]), "s.csv")


def test_csv_saved_by_a_spreadsheet_is_read(tmp_path):
    # a byte-order mark and spaces after commas, as spreadsheet programs save CSV files
    path = tmp_path / "sheet.csv"
    path.write_bytes("\ufeffindex, label, lbpe\r\n0, 1, 0.5\r\n1, 0, 0.25\r\n".encode("utf-8"))
    scores, labels, config = read_scores_csv(path)
    assert scores["lbpe"].tolist() == [0.5, 0.25] and labels.tolist() == [1, 0] and config == {}


def test_soft_targets_replace_the_one_hot_in_the_l2_error():
    # a set with soft labels: LBPE/EL2N measure the error against the taught distribution
    probs = torch.tensor([[0.7, 0.3], [0.2, 0.8]]).expand(1, 4, 2, 2).clone()
    dyn = make_dyn(probs, [0, 1])
    hard = compute_scores(dyn, ["el2n"], el2n_epochs=4)["el2n"]
    dyn.targets = torch.tensor([[0.7, 0.3], [0.5, 0.5]])
    soft = compute_scores(dyn, ["el2n"], el2n_epochs=4)["el2n"]
    assert hard[0] == pytest.approx(math.sqrt(0.3**2 * 2), abs=1e-3)
    assert soft[0] == pytest.approx(0.0, abs=1e-3)  # the network matches its target distribution exactly
    assert soft[1] == pytest.approx(math.sqrt(0.3**2 * 2), abs=1e-3)
