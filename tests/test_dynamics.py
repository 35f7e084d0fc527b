import re

import pytest
import torch
from helpers import rt, tiny_condensed

from yoco.dynamics import Dynamics, DynamicsConfig, load_dynamics, record_dynamics, save_dynamics
from yoco.errors import YocoError
from yoco.train import TrainConfig

CFG = DynamicsConfig(model="convnet", width=8, runs=2, train=TrainConfig(epochs=5, batch_size=8))


@pytest.mark.parametrize("record", ["train", "clean"])
def test_records_every_image_every_epoch(record):
    cs = tiny_condensed(ipc=3, factor=2)
    dyn = record_dynamics(cs, DynamicsConfig(**{**CFG.to_dict(), "record": record}), runtime=rt())
    n = 4 * 3 * 4  # classes x ipc x f^2
    assert dyn.log_probs.shape == (2, 5, n, 4) and dyn.log_probs.dtype == torch.float16
    assert torch.isfinite(dyn.log_probs.float()).all()
    # each row is a log-softmax: probabilities sum to one
    assert torch.allclose(dyn.log_probs.float().exp().sum(-1), torch.ones(2, 5, n), atol=1e-2)
    assert dyn.train_acc.shape == (2, 5)
    assert torch.equal(dyn.labels, torch.arange(4).repeat_interleave(12))
    assert dyn.final_log_probs.shape == (2, n, 4) and dyn.embeddings.shape[:2] == (2, n)
    # train accuracy is what the recorded predictions say
    acc = (dyn.log_probs.float().argmax(-1) == dyn.labels).float().mean(-1)
    assert torch.allclose(acc, dyn.train_acc)


@pytest.mark.parametrize("record", ["train", "clean"])
def test_batched_runs_record_what_separate_runs_record(record):
    # batched: all runs in one stacked computation, and in "clean" mode one predict pass for all of them
    cs = tiny_condensed(ipc=3, factor=2)
    cfg = DynamicsConfig(**{**CFG.to_dict(), "record": record, "runs": 3})
    apart = record_dynamics(cs, cfg, runtime=rt(batched=False))
    together = record_dynamics(cs, cfg, runtime=rt(batched=True))
    assert torch.allclose(apart.log_probs.float(), together.log_probs.float(), atol=2e-2)
    assert not torch.equal(together.log_probs[0], together.log_probs[2])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("record", ["train", "clean"])
def test_dynamics_recorded_on_cuda_match_the_cpu(record, ieee_float32):
    # on the GPU the record is written on the device (no copy per step) and comes back to the host at the end
    cs = tiny_condensed(ipc=3, factor=2)
    cfg = DynamicsConfig(**{**CFG.to_dict(), "record": record, "runs": 3})
    cpu = record_dynamics(cs, cfg, runtime=rt(batched=True))
    gpu = record_dynamics(cs, cfg, runtime=rt("cuda"))
    assert gpu.log_probs.device.type == "cpu" and gpu.log_probs.dtype == torch.float16
    assert torch.allclose(gpu.log_probs.float(), cpu.log_probs.float(), atol=2e-2)


def test_runs_differ_but_are_reproducible():
    cs = tiny_condensed()
    a = record_dynamics(cs, CFG, runtime=rt())
    b = record_dynamics(cs, CFG, runtime=rt())
    assert torch.equal(a.log_probs, b.log_probs)
    assert not torch.equal(a.log_probs[0], a.log_probs[1])


def test_save_load_round_trip_and_size(tmp_path):
    dyn = record_dynamics(tiny_condensed(), CFG, runtime=rt())
    path = save_dynamics(dyn, tmp_path / "dyn.safetensors")
    back = load_dynamics(path)
    for name in ("log_probs", "train_acc", "labels", "final_log_probs", "embeddings"):
        assert torch.equal(getattr(back, name), getattr(dyn, name))
    assert back.config["train"]["epochs"] == 5
    # float16 storage: 1000 epochs x 400 images x 10 classes would be 8 MB
    assert path.stat().st_size < dyn.log_probs.numel() * 2 + 200_000


def test_bad_files_and_shapes(tmp_path):
    with pytest.raises(YocoError, match="no such dynamics file"):
        load_dynamics(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(YocoError, match="junk.safetensors"):
        load_dynamics(tmp_path / "junk.safetensors")
    with pytest.raises(YocoError, match="train_acc"):
        Dynamics(torch.zeros(1, 3, 4, 2), torch.zeros(1, 2), torch.zeros(4, dtype=torch.long),
                 torch.zeros(1, 4, 2), torch.zeros(1, 4, 5))


# ----------------------------------------------------------------------------------------------------------
# Untrusted dynamics files: every refusal is one line naming the file and what was expected


def good_tensors(runs: int = 2, epochs: int = 3, n: int = 5, c: int = 4) -> dict[str, torch.Tensor]:
    lp = torch.log_softmax(torch.randn(runs, epochs, n, c, generator=torch.Generator().manual_seed(0)), -1)
    return {"log_probs": lp.half(), "train_acc": torch.rand(runs, epochs), "labels": torch.arange(n) % c,
            "final_log_probs": lp[:, -1].float(), "embeddings": torch.randn(runs, n, 3)}


def write_dynamics(path, tensors: dict[str, torch.Tensor], config: str = '{"epochs": 3}'):
    from safetensors.torch import save_file

    tensors = {k: v.contiguous().clone() for k, v in tensors.items()}
    save_file(tensors, str(path), metadata={"yoco_dynamics": "1", "config": config})
    return path


def test_hand_written_good_file_loads(tmp_path):
    dyn = load_dynamics(write_dynamics(tmp_path / "d.safetensors", good_tensors()))
    assert (dyn.runs, dyn.epochs, dyn.num_samples, dyn.num_classes) == (2, 3, 5, 4)
    assert dyn.config == {"epochs": 3} and dyn.labels.dtype == torch.int64


@pytest.mark.parametrize(
    ("config", "message"),
    [("{not json", "the config in the header is not valid JSON"),
     ("[" * 100_000, "the config in the header is not valid JSON"),
     ("[1, 2]", "the config in the header must be a JSON object, found list"),
     ('"epochs"', "the config in the header must be a JSON object, found str")],
    ids=["syntax", "nesting", "list", "string"],
)
def test_bad_config_is_refused_naming_the_file(tmp_path, config, message):
    path = write_dynamics(tmp_path / "d.safetensors", good_tensors(), config)
    with pytest.raises(YocoError, match=f"^{re.escape(str(path))}: {re.escape(message)}") as err:
        load_dynamics(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: {**t, "log_probs": t["log_probs"][0]},
         r"log_probs must be 4-D \[runs, epochs, N, C\] with no empty axis, got shape \[3, 5, 4\]"),
        (lambda t: {**t, "log_probs": t["log_probs"][None]}, r"log_probs must be 4-D .* got shape \[1, 2, 3, 5, 4\]"),
        (lambda t: {**t, "log_probs": t["log_probs"][:, :0]}, r"log_probs must be 4-D .* got shape \[2, 0, 5, 4\]"),
        (lambda t: {**t, "train_acc": t["train_acc"][0]}, r"train_acc has shape \[3\], expected \[2, 3\]"),
        (lambda t: {**t, "labels": t["labels"][:4]}, r"labels has shape \[4\], expected \[5\]"),
        (lambda t: {**t, "final_log_probs": t["final_log_probs"][0]},
         r"final_log_probs has shape \[5, 4\], expected \[2, 5, 4\]"),
        (lambda t: {**t, "embeddings": t["embeddings"][0]}, r"embeddings must be \[runs=2, N=5, D >= 1\], got \[5, 3\]"),
        (lambda t: {**t, "embeddings": t["embeddings"][..., :0]}, r"embeddings must be .* got \[2, 5, 0\]"),
        (lambda t: {**t, "labels": t["labels"].float()}, "labels must be integer class indices, got torch.float32"),
        (lambda t: {**t, "labels": t["labels"] + 4}, r"labels span 4\.\.7, expected 0\.\.3 \(log_probs has 4 classes\)"),
        (lambda t: {**t, "log_probs": t["log_probs"].view(torch.int16)}, "log_probs must be floating-point, got torch.int16"),
        (lambda t: {**t, "train_acc": t["train_acc"].view(torch.int32)}, "train_acc must be floating-point"),
    ],
    ids=["lp-3d", "lp-5d", "lp-empty", "acc", "labels-n", "final", "emb-2d", "emb-empty", "labels-float",
         "labels-range", "lp-int", "acc-int"],
)
def test_wrong_ranks_shapes_and_dtypes_name_the_file(tmp_path, change, message):
    path = write_dynamics(tmp_path / "d.safetensors", change(good_tensors()))
    with pytest.raises(YocoError, match=f"^{re.escape(str(path))}: {message}"):
        load_dynamics(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_log_probs_are_refused_at_load(tmp_path, bad):
    t = good_tensors()
    t["log_probs"][1, 2, 3, 0] = bad
    path = write_dynamics(tmp_path / "d.safetensors", t)
    with pytest.raises(YocoError, match=f"^{re.escape(str(path))}: log_probs holds NaN or \\+inf values"):
        load_dynamics(path)
    # recording keeps what training produced (a diverged run is saved, then refused when read back)
    Dynamics(**t)
    t = good_tensors()
    t["log_probs"][0, 0, 0, 1] = float("-inf")  # probability zero is a valid log-probability
    assert load_dynamics(write_dynamics(tmp_path / "ok.safetensors", t)).num_classes == 4
    t["embeddings"][0, 0, 0] = float("nan")
    with pytest.raises(YocoError, match="embeddings holds NaN or infinite values"):
        load_dynamics(write_dynamics(tmp_path / "emb.safetensors", t))


def test_a_set_whose_channels_do_not_match_its_dataset_is_refused():
    from yoco.data.condensed import CondensedMeta, CondensedSet
    from yoco.errors import YocoError

    cs = CondensedSet(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), CondensedMeta("mnist", 4), source="rgb.st")
    with pytest.raises(YocoError, match="rgb.st: images have 3 channel\\(s\\) but the normalisation of 'mnist' has 1"):
        record_dynamics(cs, CFG, runtime=rt())
