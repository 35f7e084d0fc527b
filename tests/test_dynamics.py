import pytest
import torch
from helpers import tiny_condensed

from yoco.dynamics import Dynamics, DynamicsConfig, load_dynamics, record_dynamics, save_dynamics
from yoco.errors import YocoError

CFG = DynamicsConfig(model="convnet", width=8, epochs=5, runs=2, batch_size=8)


@pytest.mark.parametrize("record", ["train", "clean"])
def test_records_every_image_every_epoch(record):
    cs = tiny_condensed(ipc=3, factor=2)
    dyn = record_dynamics(cs, DynamicsConfig(**{**CFG.to_dict(), "record": record}), device="cpu", progress=False)
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


def test_runs_differ_but_are_reproducible():
    cs = tiny_condensed()
    a = record_dynamics(cs, CFG, device="cpu", progress=False)
    b = record_dynamics(cs, CFG, device="cpu", progress=False)
    assert torch.equal(a.log_probs, b.log_probs)
    assert not torch.equal(a.log_probs[0], a.log_probs[1])


def test_save_load_round_trip_and_size(tmp_path):
    dyn = record_dynamics(tiny_condensed(), CFG, device="cpu", progress=False)
    path = save_dynamics(dyn, tmp_path / "dyn.safetensors")
    back = load_dynamics(path)
    for name in ("log_probs", "train_acc", "labels", "final_log_probs", "embeddings"):
        assert torch.equal(getattr(back, name), getattr(dyn, name))
    assert back.config["epochs"] == 5
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
