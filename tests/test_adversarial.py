"""The adversarial suite: every reader and every command driven through the CLI in subprocesses, as a hostile or
careless user would, under an address-space limit.

Commands run in children of ``cli_server.py``, started once under ``RLIMIT_AS`` (children inherit it), so a command
that allocated what a hostile file claims fails there instead of taking the machine down; a few run as plain
``python -m yoco.cli`` subprocesses under the same limit. Every run must end with exit status 0 (a valid input), or
1 or 2 with exactly one line on stderr (INFO logs aside) and no traceback; its peak memory stays bounded; the files
it read are byte-identical afterwards; and a failed run leaves nothing behind (no partial file, no temporary).
Hypothesis damages every kind of input file and tries absurd option values beside the hand-written cases.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import rt, tiny_real, write_mnist_like
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fuzz_readers import byte_ops, corrupt

import yoco
from yoco.data.condensed import CondensedMeta, CondensedSet, save

ADDRESS_SPACE = 6 * 1024**3  # a yoco process needs about 1.5 GB of address space here; the probe's bomb wanted 40
MAX_RSS_KIB = 1_500_000
HERE = Path(__file__).resolve().parent
SRC = Path(yoco.__file__).resolve().parents[1]
QUICK = ["--epochs", "2", "--width", "8", "--repeat", "1", "--device", "cpu", "--quiet"]
# 12 examples per property keep CI near a minute; YOCO_ADVERSARIAL_EXAMPLES=500 (and derandomize off) searches deeper
EXAMPLES = int(os.environ.get("YOCO_ADVERSARIAL_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 12,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def limited() -> None:
    """preexec: the address-space limit every command runs under."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
            "PYTHONWARNINGS": "default"}


@dataclass
class Ran:
    rc: int
    out: str
    err: str
    maxrss_kib: int
    before: dict[str, str]
    after: dict[str, str]

    @property
    def lines(self) -> list[str]:
        """stderr without the INFO log lines."""
        return [ln for ln in self.err.splitlines() if ln.strip() and not ln.startswith("INFO ")]


class Yoco:
    """Runs commands in the server's children and records what they did to the world."""

    def __init__(self, world: Path, logs: Path) -> None:
        self.world, self.logs = world, logs
        self.proc = subprocess.Popen([sys.executable, str(HERE / "cli_server.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=environment(),
                                     preexec_fn=limited)  # noqa: PLW1509 - one setrlimit call between fork and exec

    def __call__(self, *argv: str | Path, fsize: int | None = None, timeout: int = 120) -> Ran:
        before = snapshot(self.world)
        request = {"argv": [str(a) for a in argv], "cwd": str(self.world), "stdout": str(self.logs / "out"),
                   "stderr": str(self.logs / "err"), "fsize": fsize, "timeout": timeout}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        return Ran(answer["rc"], (self.logs / "out").read_text(errors="replace"),
                   (self.logs / "err").read_text(errors="replace"), answer["maxrss_kib"], before, snapshot(self.world))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(ran: Ran, *words: str) -> str:
    """A failed run: status 1 or 2, one line on stderr naming the problem, no traceback, inputs byte-identical,
    nothing new left behind, memory bounded. Returns the line."""
    assert ran.rc in (1, 2), (ran.rc, ran.err[-2000:])
    assert "Traceback" not in ran.err, ran.err[-2000:]
    assert len(ran.lines) == 1 and ran.lines[0].startswith("yoco: "), ran.lines
    assert ran.after == ran.before, sorted(set(ran.after.items()) ^ set(ran.before.items()))
    assert ran.maxrss_kib < MAX_RSS_KIB, ran.maxrss_kib
    for word in words:
        assert word in ran.lines[0], ran.lines[0]
    return ran.lines[0]


def accepted_or_refused(ran: Ran, outputs: tuple[str, ...] = ()) -> None:
    """A run on possibly damaged input: success (only ``outputs`` new or changed) or a clean refusal."""
    if ran.rc == 0:
        assert "Traceback" not in ran.err
        changed = {k for k in set(ran.before) | set(ran.after) if ran.before.get(k) != ran.after.get(k)}
        assert changed <= set(outputs), changed
        assert ran.maxrss_kib < MAX_RSS_KIB
    else:
        refused(ran)


# ----------------------------------------------------------------------------------------------------------
# The world: a tiny dataset, a set, its dynamics and scores, and a published-format file of each kind


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from yoco.dynamics import DynamicsConfig, record_dynamics, save_dynamics
    from yoco.scoretable import build_table
    from yoco.train import TrainConfig

    w = tmp_path_factory.mktemp("world")
    real = tiny_real(n_per_class=6, num_classes=10, size=16)
    write_mnist_like(w / "data", real)
    idx = torch.cat([torch.nonzero(real.train_labels == c).flatten()[:3] for c in range(10)])
    cs = CondensedSet(real.train_images[idx].float() / 255, real.train_labels[idx],
                      CondensedMeta("mnist", 10, method="real", ipc=3, factor=1), source="set.safetensors")
    save(cs, w / "set.safetensors")
    dyn = record_dynamics(cs, DynamicsConfig(width=8, runs=1, train=TrainConfig(epochs=2)), runtime=rt())
    save_dynamics(dyn, w / "dyn.safetensors")
    table = build_table(dyn, lbpe_epochs=2, lbpe_top_k=1, el2n_epochs=1)
    table.save(w / "scores.safetensors")
    table.to_csv(w / "scores.csv")
    torch.save([cs.images, cs.labels], w / "data.pt")
    (w / "mtt").mkdir()
    torch.save(cs.images, w / "mtt" / "images_best.pt")
    torch.save(cs.labels, w / "mtt" / "labels_best.pt")
    torch.save(torch.tensor(0.01), w / "mtt" / "lr_best.pt")
    torch.save({"data": [(cs.images, cs.labels)]}, w / "res_DSA_mnist.pt")
    np.savez(w / "kip.npz", images=cs.images.permute(0, 2, 3, 1).numpy(),
             labels=np.eye(10, dtype=np.float32)[cs.labels.numpy()])
    (w / "eval.toml").write_text('dataset = "mnist"\ndata-root = "data"\nepochs = 2\nwidth = 8\nrepeat = 1\n'
                                 'device = "cpu"\nquiet = true\n')
    (w / "eval.yaml").write_text("dataset: mnist\ndata-root: data\nepochs: 2\nwidth: 8\nrepeat: 1\n")
    return w


@pytest.fixture(scope="module")
def yoco_cli(world: Path, tmp_path_factory: pytest.TempPathFactory):
    runner = Yoco(world, tmp_path_factory.mktemp("logs"))
    yield runner
    runner.close()


@pytest.fixture
def scratch(world: Path):
    """A file name in the world for a case's damaged input or output, removed afterwards."""
    made: list[Path] = []

    def name(n: str) -> Path:
        made.append(world / n)
        return world / n

    yield name
    for p in made:
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------------------------
# The probe's cases, end to end


def test_a_2kb_file_of_expanded_views_is_refused_under_the_memory_limit(world, scratch):
    """Case 12 as a plain ``python -m yoco.cli`` subprocess under the address-space limit."""
    bomb = scratch("bomb.pt")
    torch.save([torch.zeros(1, 1, 1, 1).expand(10**7, 1, 32, 32), torch.zeros(1, dtype=torch.long).expand(10**7)],
               bomb)
    before = snapshot(world)
    done = subprocess.run([sys.executable, "-m", "yoco.cli", "import", "bomb.pt", "--format", "idc", "--dataset",
                           "mnist", "--out", "b.safetensors"], cwd=world, capture_output=True, text=True,
                          check=False, env=environment(), timeout=120,
                          preexec_fn=limited)
    ran = Ran(done.returncode, done.stdout, done.stderr, 0, before, snapshot(world))
    refused(ran, "bomb.pt", "GiB")


@pytest.mark.parametrize("argv, words", [
    (["sample", "--dataset", "mnist", "--data-root", "data", "--ipc", "1", "--out", "data/train-labels-idx1-ubyte.gz"],
     ["refusing to overwrite"]),
    (["evaluate", "set.safetensors", "--config", "eval.toml", "--out", "eval.toml"], ["refusing to overwrite"]),
    (["condense", "--dataset", "mnist", "--data-root", "data", "--ipc", "1", "--out", "data/t10k-images-idx3-ubyte.gz"],
     ["refusing to overwrite"]),
    (["export", "set.safetensors", "--out", "data"], ["not empty"]),
    (["export", "set.safetensors", "--out", "."], ["holds the input"]),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--data-root", "data", "--out", "data"], ["not a ladder's"]),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--out", "eval.toml"], ["not a folder"]),
    (["evaluate", "set.safetensors", "--dataset", "fashion-mnist", "--data-root", "data", *QUICK], ["made from"]),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--ipcs", "1,1", "--out", "l"], ["given twice"]),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--random-subsets", "99999999999", "--out", "l"],
     ["at most 100"]),
    (["evaluate", "set.safetensors", "--dataset", "mnist", "--epochs", "99999999999999999999999"], ["at most"]),
    (["evaluate", "set.safetensors", "--dataset", "mnist", "--width", "100000"], ["at most 1024"]),
    (["dynamics", "set.safetensors", "--seed", "99999999999999999999999", "--out", "d.safetensors"], ["at most"]),
    (["sample", "--dataset", "mnist", "--data-root", "data", "--resolution", "1000000", "--ipc", "1", "--out", "s"],
     ["at most 4096"]),
    (["prune", "set.safetensors", "--scores", "dyn.safetensors", "--rule", "yoco", "--ipc", "1", "--out", "p"],
     ["not a yoco score table"]),
    (["score", "set.safetensors", "--out", "s.safetensors"], ["not a yoco dynamics file"]),
    (["import", "mtt", "--format", "mtt", "--dataset", "mnist", "--out", "mtt/lr_best.pt"], ["refusing to overwrite"]),
    (["report", "data"], ["no ladder plan"]),
    (["show", "scores.csv"], ["scores.csv"]),
])
def test_hand_written_cases_end_in_one_line_with_nothing_lost(yoco_cli, argv, words):
    refused(yoco_cli(*argv), *words)


def test_the_messages_of_the_probe(yoco_cli, world, scratch):
    import pickle

    scratch("legacy.pt").write_bytes(pickle.dumps({"x": print}, protocol=4))
    line = refused(yoco_cli("import", "legacy.pt", "--format", "idc", "--dataset", "mnist", "--out", "x.safetensors"))
    assert "weights_only" not in line
    scratch("mtt_bad").mkdir()
    for name in ("images_best.pt", "labels_best.pt"):
        (world / "mtt_bad" / name).write_bytes((world / "mtt" / name).read_bytes())
    torch.save(torch.tensor(1e10), world / "mtt_bad" / "lr_best.pt")
    refused(yoco_cli("import", "mtt_bad", "--format", "mtt", "--dataset", "mnist", "--out", "m.safetensors"), "1e+10")
    scratch("dup.yaml").write_text("epochs: 2\nepochs: 3\n")
    refused(yoco_cli("evaluate", "set.safetensors", "--dataset", "mnist", "--config", "dup.yaml"), "given twice")
    scratch("latin.toml").write_bytes(b'dataset = "caf\xe9"\n')
    refused(yoco_cli("evaluate", "set.safetensors", "--config", "latin.toml"), "UTF-8")


@pytest.mark.parametrize("argv, output", [
    (["sample", "--dataset", "mnist", "--data-root", "data", "--ipc", "2", "--out", "out.safetensors"],
     "out.safetensors"),
    (["prune", "set.safetensors", "--scores", "scores.safetensors", "--rule", "yoco", "--ipc", "2",
      "--out", "out.safetensors"], "out.safetensors"),
    (["import", "data.pt", "--format", "idc", "--dataset", "mnist", "--factor", "1", "--out", "out.safetensors"],
     "out.safetensors"),
    (["score", "dyn.safetensors", "--lbpe-epochs", "2", "--lbpe-top-k", "1", "--el2n-epochs", "1", "--out",
      "out.safetensors"], "out.safetensors"),
])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(yoco_cli, argv, output):
    """Case 14: writing past a file-size limit fails as a full disk does, in the safetensors writer too."""
    line = refused(yoco_cli(*argv, fsize=3000))
    assert output in line and ("File too large" in line or "No space" in line), line


def test_a_ladder_on_a_full_disk_leaves_only_whole_files(yoco_cli, world, scratch):
    folder = scratch("lad")
    ran = yoco_cli("ladder", "set.safetensors", "--dataset", "mnist", "--data-root", "data", "--ipcs", "1",
                   "--rules", "random_balance", "--dynamics-runs", "1", "--dynamics-epochs", "2", *QUICK,
                   "--out", "lad", fsize=3000)
    assert ran.rc == 2 and "Traceback" not in ran.err and len(ran.lines) == 1, ran.err[-2000:]
    assert "lad/" in ran.lines[0] and "File too large" in ran.lines[0]
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]
    assert {k: v for k, v in ran.after.items() if not k.startswith("lad/")} == ran.before


# ----------------------------------------------------------------------------------------------------------
# Hypothesis: absurd option values, damaged files of every kind


OPTIONS = [  # (command line with {} for the value, the option)
    (["evaluate", "set.safetensors", "--dataset", "mnist", "--epochs", "{}"], (1, 100_000)),
    (["evaluate", "set.safetensors", "--dataset", "mnist", "--width", "{}"], (1, 1024)),
    (["evaluate", "set.safetensors", "--dataset", "mnist", "--seed", "{}"], (0, 2**31 - 1)),
    (["dynamics", "set.safetensors", "--out", "d.safetensors", "--runs", "{}"], (1, 100)),
    (["sample", "--dataset", "mnist", "--data-root", "data", "--ipc", "{}", "--out", "s.safetensors"], (1, 10_000)),
    (["sample", "--dataset", "mnist", "--data-root", "data", "--ipc", "1", "--resolution", "{}", "--out", "s"],
     (1, 4096)),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--random-subsets", "{}", "--out", "l"], (1, 100)),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--workers", "{}", "--out", "l"], (1, 256)),
    (["ladder", "set.safetensors", "--dataset", "mnist", "--ipcs", "{}", "--out", "l"], (1, 10_000)),
    (["condense", "--dataset", "mnist", "--ipc", "1", "--iterations", "{}", "--out", "c"], (1, 100_000)),
    (["import", "data.pt", "--format", "idc", "--dataset", "mnist", "--num-classes", "{}", "--out", "i"],
     (1, 100_000)),
    (["prune", "set.safetensors", "--scores", "scores.safetensors", "--rule", "yoco", "--ipc", "{}", "--out", "p"],
     (1, 10_000)),
]


def out_of_range(bounds: tuple[int, int]) -> st.SearchStrategy[str]:
    low, high = bounds
    return st.one_of(st.integers(min_value=high + 1).map(str), st.integers(max_value=low - 1).map(str),
                     st.sampled_from(["9" * 30, "1e9", "0x10", "", " ", "nan", "-0.5", "٣"]).filter(
                         lambda t: not t.strip().lstrip("-").isdigit() or not low <= int(t) <= high))


@FUZZ
@given(data=st.data(), which=st.integers(0, len(OPTIONS) - 1))
def test_absurd_option_values_are_refused_in_one_line(yoco_cli, data, which):
    argv, bounds = OPTIONS[which]
    value = data.draw(out_of_range(bounds))
    refused(yoco_cli(*[a.replace("{}", value) for a in argv]))


READERS = [  # (the file damaged, the command that reads it, the files a success may write)
    ("set.safetensors", ["show", "{f}", "--png", "g.png"], ("g.png",)),
    ("dyn.safetensors", ["score", "{f}", "--lbpe-epochs", "2", "--lbpe-top-k", "1", "--el2n-epochs", "1", "--out",
                         "s.safetensors"], ("s.safetensors",)),
    ("scores.safetensors", ["prune", "set.safetensors", "--scores", "{f}", "--rule", "yoco", "--ipc", "1", "--out",
                            "p.safetensors"], ("p.safetensors",)),
    ("scores.csv", ["prune", "set.safetensors", "--scores", "{f}", "--rule", "ccs", "--ipc", "1", "--out",
                    "p.safetensors"], ("p.safetensors",)),
    ("data.pt", ["import", "{f}", "--format", "idc", "--dataset", "mnist", "--factor", "1", "--out", "i.safetensors"],
     ("i.safetensors",)),
    ("res_DSA_mnist.pt", ["import", "{f}", "--format", "dsa", "--dataset", "mnist", "--out", "i.safetensors"],
     ("i.safetensors",)),
    ("kip.npz", ["import", "{f}", "--format", "kip", "--dataset", "mnist", "--out", "i.safetensors"],
     ("i.safetensors",)),
    ("eval.toml", ["evaluate", "set.safetensors", "--config", "{f}", "--epochs", "1", "--out", "e.json"],
     ("e.json", "e.json.config.toml", "{f}.config.toml")),
    ("data/t10k-labels-idx1-ubyte.gz", ["sample", "--dataset", "mnist", "--data-root", "data", "--ipc", "1", "--out",
                                        "s.safetensors"], ("s.safetensors",)),
]


@FUZZ
@given(which=st.integers(0, len(READERS) - 1), ops=byte_ops)
def test_every_reader_reads_or_refuses_a_damaged_file_in_one_line(yoco_cli, world, which, ops):
    name, argv, outputs = READERS[which]
    path = world / name
    original = path.read_bytes()
    damaged = path.with_name(f"damaged-{path.name}") if "/" not in name else path
    try:
        damaged.write_bytes(corrupt(original, ops))
        target = str(damaged.relative_to(world))
        ran = yoco_cli(*[a.replace("{f}", target) for a in argv])
        accepted_or_refused(ran, tuple(o.replace("{f}", target) for o in outputs))
    finally:
        if damaged == path:
            path.write_bytes(original)
        else:
            damaged.unlink(missing_ok=True)
        for out in outputs:
            target = world / out.replace("{f}", str(damaged.relative_to(world)))
            target.unlink(missing_ok=True)


@FUZZ
@given(factor=st.sampled_from([10**3, 10**6, 10**9, 2**40]), kind=st.sampled_from(["expand", "npz", "zip"]))
def test_files_that_claim_huge_sizes_are_refused_before_allocating(yoco_cli, world, factor, kind):
    """A few bytes that say "terabytes": views of one value, an archive whose header inflates an array, a zip
    member that claims to unpack huge."""
    path = world / ("claim.npz" if kind == "npz" else "claim.pt")
    try:
        if kind == "expand":
            torch.save([torch.zeros(1, 1, 1, 1).expand(factor, 1, 16, 16), torch.zeros(1).long().expand(factor)], path)
        elif kind == "npz":
            np.savez(path, images=np.zeros((1, 16, 16, 1), np.float32), labels=np.zeros((1, 10), np.float32))
            with zipfile.ZipFile(path) as zf:
                parts = {n: zf.read(n) for n in zf.namelist()}
            header = parts["images.npy"]
            parts["images.npy"] = header.replace(b"(1, 16, 16, 1)", f"({factor}, 16, 16, 1)".encode())
            with zipfile.ZipFile(path, "w") as zf:
                for n, b in parts.items():
                    zf.writestr(n, b)
        else:
            torch.save([torch.zeros(4, 1, 16, 16), torch.zeros(4).long()], path)
            data = bytearray(path.read_bytes())
            at = data.find(b"PK\x01\x02")  # the first central-directory entry: its uncompressed size at +24
            data[at + 24:at + 28] = min(factor, 2**32 - 1).to_bytes(4, "little")
            path.write_bytes(bytes(data))
        fmt = "kip" if kind == "npz" else "idc"
        ran = yoco_cli("import", path.name, "--format", fmt, "--dataset", "mnist", "--factor", "1",
                       "--out", "i.safetensors")
        accepted_or_refused(ran, ("i.safetensors",))
    finally:
        path.unlink(missing_ok=True)
        (world / "i.safetensors").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def ladder_folder(world: Path) -> Path:
    """A finished tiny ladder in the world, for the readers of ``yoco report``."""
    from yoco.data.condensed import load
    from yoco.ladder import LadderConfig, quick, run_ladder

    cfg = quick(LadderConfig(dataset="mnist", ipcs=(1,), rules=("random_balance",), repeat=1), width=8, dyn_epochs=2,
                eval_epochs=2)
    run_ladder(load(world / "set.safetensors"), cfg, world / "lad0", data_root=str(world / "data"), runtime=rt())
    return world / "lad0"


REPORTS = ("lad0/results.csv", "lad0/results.json", "lad0/results.md", "lad0/ladder.png")
TRICKY = st.sampled_from(["10", "x", True, None, -1, 2**70, 1e308, [], {}, [1, 2], {"a": 1}, "\u202e", "9" * 400])


@FUZZ
@given(which=st.sampled_from(["plan.json", "cell"]), ops=byte_ops, field=st.integers(0, 50), value=TRICKY,
       how=st.sampled_from(["bytes", "field"]))
def test_report_reads_or_refuses_a_damaged_ladder_folder(yoco_cli, ladder_folder, which, ops, field, value, how):
    path = ladder_folder / "plan.json" if which == "plan.json" else min((ladder_folder / "cells").glob("*.json"))
    original = path.read_bytes()
    try:
        if how == "bytes":
            path.write_bytes(corrupt(original, ops))
        else:  # one value somewhere in the JSON replaced by a value of the wrong kind
            doc = json.loads(original)
            spots = list(_spots(doc))
            holder, key = spots[field % len(spots)]
            holder[key] = value
            path.write_text(json.dumps(doc))
        accepted_or_refused(yoco_cli("report", "lad0"), REPORTS)
    finally:
        path.write_bytes(original)


def _spots(doc: object):
    """Every (container, key) of a JSON document, depth first."""
    todo = [doc]
    while todo:
        item = todo.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for k, v in pairs:
            yield item, k
            todo.append(v)
