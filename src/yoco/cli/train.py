"""Commands that train networks: ``evaluate``, ``condense``, ``dynamics``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from yoco import protocol
from yoco.cli.base import (
    BOUNDED,
    Handler,
    _compile,
    _config_copy,
    _dataset,
    _device,
    _inputs,
    _keep_config,
    _precision,
    _pruned_epochs,
    _real,
    _runtime,
    _saved,
    _seed,
    _training,
    command,
    given,
)
from yoco.errors import YocoError

if TYPE_CHECKING:
    from yoco.data.condensed import CondensedSet


@command("evaluate", "train fresh networks on a condensed set and test them on the real test set")
def _evaluate(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("condensed", help="a yoco condensed-set file")
    _dataset(p, required=False, default="the one the set's metadata names")
    _training(p, f"independent runs, seeds seed .. seed+repeat-1 (default: {protocol.EVAL_REPEATS})")
    p.add_argument("--test-points", type=BOUNDED["epochs"], default=None,
                   help=f"times the network is tested during training (default: the protocol's "
                   f"{protocol.EVAL_TEST_POINTS})")
    p.add_argument("--recipe", choices=["set", "protocol", "yoco"], default="set",
                   help="set: use the evaluation recipe the set's method published with it (MTT's learned learning "
                   "rate, ZCA), saying so; protocol: ignore it (with a warning); yoco: as YOCO's test.py evaluated "
                   f"MTT/DSA/KIP sets (lr {protocol.LR:g}, no ZCA, the stored standardised images standardised again)")
    _pruned_epochs(p)
    p.add_argument("--out", default=None, help="result JSON (default: CONDENSED with .eval.json)")
    _device(p)
    _compile(p)
    _precision(p)

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.evaluate import EvalConfig, check_compatible, evaluate_condensed
        from yoco.files import check_outputs, write_json
        from yoco.report import accuracy_line
        from yoco.train import TrainConfig

        out = Path(a.out) if a.out else Path(a.condensed).with_suffix(".eval.json")
        copies = _config_copy(a, out)
        cs = load(a.condensed)
        a.dataset = a.dataset or cs.meta.dataset  # its files are inputs too, so named before the outputs are checked
        check_outputs([out, *copies], _inputs(a, a.condensed))
        rt = _runtime(a)
        real = _real(a)
        check_compatible(cs, real)
        cfg = EvalConfig(**given(model=a.model, width=a.width, repeat=a.repeat, seed=a.seed,
                                 test_points=a.test_points, pruned_epochs=a.pruned_epochs),
                         train=TrainConfig(epochs=a.epochs, precision=a.precision), recipe=a.recipe)
        result = evaluate_condensed(cs, real, cfg, runtime=rt)
        result["file"] = str(a.condensed)  # named by content in "sha256" (see "digests"), wherever it lies
        write_json(out, result)
        _keep_config(a, copies)
        print(f"{real.name} test accuracy over {len(result['runs'])} run(s): {accuracy_line(result)}")
        print(f"wrote {out}")
        return 0

    return run


@command("condense", "condense a real dataset with IDC (gradient matching, multi-formation) or MDC (IDC plus "
         "an adaptive subset loss: nested subsets for every smaller IPC)")


def _condense(p: argparse.ArgumentParser) -> Handler:
    from yoco.condense import METHODS, PRESETS, IDCConfig
    from yoco.condense.config import GPU_NET_GROUP

    cifar, imnet = protocol.idc_preset("cifar10"), protocol.idc_preset("imagenet10")

    _dataset(p)
    p.add_argument("--ipc", type=BOUNDED["ipc"], required=True, help="stored images per class")
    p.add_argument("--method", choices=METHODS, default="idc",
                   help="idc: IDC; mdc: MDC (He et al., ICLR 2024), IDC's matching plus its adaptive subset loss, "
                   "with mse as its code sets it; the set records that each class's first images are MDC's "
                   "smaller sets (cut it with the rule mdc_prefix)")
    p.add_argument("--mdc-period", type=BOUNDED["iterations"], default=None,
                   help=f"MDC: outer iterations between choices of the subset to regularise (default: "
                   f"{protocol.MDC_PERIOD}, MDC's)")
    p.add_argument("--mdc-class-wise", action="store_true",
                   help="MDC: each class chooses its subset from its own losses (default: from the class average)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="IDC settings (default: the dataset's published preset; cpu-quick: a CPU smoke run)")
    p.add_argument("--factor", type=BOUNDED["factor"], default=None,
                   help=f"multi-formation factor (default: the preset's, {cifar['factor']}; {imnet['factor']} for "
                   "ImageNet)")
    p.add_argument("--iterations", type=BOUNDED["iterations"], default=None,
                   help=f"outer iterations (published: {cifar['iterations']}; ImageNet {imnet['iterations']})")
    p.add_argument("--inner", type=BOUNDED["iterations"], default=None,
                   help=f"inner matching steps per iteration (published: {cifar['inner']})")
    p.add_argument("--width", type=BOUNDED["width"], default=None,
                   help=f"matching network width (published: {cifar['width']}; ImageNet {imnet['width']})")
    p.add_argument("--net-images", type=BOUNDED["index"], default=None,
                   help=f"real images the network trains on after every inner step (published: {cifar['net_images']} "
                   f"CIFAR, {imnet['net_images']} others)")
    p.add_argument("--pretrain-epochs", type=BOUNDED["iterations0"], default=None,
                   help=f"epochs each fresh network trains on the real set before matching (published: "
                   f"{imnet['net_pretrain_epochs']} for ImageNet, {cifar['net_pretrain_epochs']} others)")
    p.add_argument("--decode", choices=["auto", "single", "bound"], default=None,
                   help="multi-formation of the matched synthetic batches: single, bound (at most batch_syn images "
                   "per class) or auto (default: IDC's presets, bound for ImageNet at factor >= 3 and IPC >= 20)")
    p.add_argument("--engine", choices=["auto", "batched", "sequential"], default=None,
                   help="batched: every class in one gradient evaluation, the per-class steps in closed "
                   "form (MDC: the classes' losses one by one, then one backward); sequential: IDC's loop; auto "
                   "(default): batched on a GPU, sequential on a CPU (faster there); all give the same images up "
                   "to float rounding")
    p.add_argument("--net-batch", type=BOUNDED["runs"], default=None,
                   help="train the matching networks of this many outer iterations side by side, ahead of their "
                   f"matching (their paths read only real images); default: {GPU_NET_GROUP} on a GPU, 1 on a CPU "
                   "(measured faster there); the same images up to float rounding")
    _seed(p, "seeds the start and every draw of the run", IDCConfig.seed)
    p.add_argument("--checkpoint-every", type=BOUNDED["iterations0"], default=None,
                   help=f"outer iterations between checkpoints (OUT.ckpt; default {IDCConfig.checkpoint_every}, "
                   "0 = off)")
    p.add_argument("--eval-every", type=BOUNDED["iterations0"], default=None, help="evaluate the current set every N iterations")
    p.add_argument("--eval-epochs", type=BOUNDED["epochs"], default=300, help="epochs of those periodic evaluations")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--out", required=True, help="output .safetensors path")
    _device(p)
    _compile(p, "train the network between matching steps with each step (augmentation, mixing, forward, backward, "
             "SGD) as one torch.compile-d graph, for a GPU's launch overhead; a runtime choice, so a checkpoint "
             "resumes with or without it")
    _precision(p)

    def run(a: argparse.Namespace) -> int:
        from yoco.condense import (
            MDCConfig,
            checkpoint_path,
            condense,
            condense_mdc,
            resolve_config,
            resolve_mdc_config,
        )
        from yoco.evaluate import EvalConfig, evaluate_condensed
        from yoco.files import check_outputs
        from yoco.train import TrainConfig

        copies = _config_copy(a, Path(a.out))
        check_outputs([a.out, checkpoint_path(a.out), *copies], _inputs(a))
        if a.method != "mdc" and (a.mdc_period is not None or a.mdc_class_wise):
            raise YocoError("--mdc-period and --mdc-class-wise are MDC's options; add --method mdc")
        rt = _runtime(a)
        real = _real(a)
        cfg = (resolve_mdc_config if a.method == "mdc" else resolve_config)(real.name, a.preset, **given(
            ipc=a.ipc, factor=a.factor, iterations=a.iterations, inner=a.inner, width=a.width, engine=a.engine,
            seed=a.seed, checkpoint_every=a.checkpoint_every, eval_every=a.eval_every, precision=a.precision,
            net_images=a.net_images, net_pretrain_epochs=a.pretrain_epochs, decode=a.decode))
        eval_fn = None
        if cfg.eval_every:
            quick_eval = EvalConfig(repeat=1, test_points=1, train=TrainConfig(epochs=a.eval_epochs))

            def eval_fn(cs: CondensedSet) -> float:
                return evaluate_condensed(cs, real, quick_eval, runtime=rt.but(progress=False))["last_mean"]

        kw = {"runtime": rt, "resume": a.resume, "eval_fn": eval_fn, "net_batch": a.net_batch}
        if a.method == "mdc":
            mdc = MDCConfig(**given(period=a.mdc_period, class_wise=a.mdc_class_wise or None))
            cs = condense_mdc(real, cfg, a.out, mdc, **kw)
        else:
            cs = condense(real, cfg, a.out, **kw)
        _keep_config(a, copies)
        return _saved(cs, a.out, written=True)

    return run


@command("dynamics", "train networks on a condensed set and record every image's outputs per epoch")
def _dynamics(p: argparse.ArgumentParser) -> Handler:
    from yoco.dynamics import DynamicsConfig

    p.add_argument("condensed", help="a yoco condensed-set file")
    p.add_argument("--out", required=True, help="dynamics file (.safetensors)")
    p.add_argument("--runs", type=BOUNDED["runs"], default=None, help="independent training runs; scores average them "
                   f"(default: {protocol.DYNAMICS_RUNS})")
    p.add_argument("--epochs", type=BOUNDED["epochs"], default=None,
                   help=f"default: the protocol's {protocol.DYNAMICS_EPOCHS}")
    p.add_argument("--model", default=None, help="default: the evaluation network of the set's dataset")
    p.add_argument("--width", type=BOUNDED["width"], default=None,
                   help=f"default: the model's, {protocol.CONVNET_WIDTH}")
    _seed(p, "first training seed", DynamicsConfig.seed)
    p.add_argument("--record", choices=["train", "clean"], default=None,
                   help="outputs of the augmented training pass (as the paper; default) or one clean pass per epoch")
    _device(p)
    _compile(p)
    _precision(p)

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.dynamics import DynamicsConfig, record_dynamics, save_dynamics
        from yoco.files import check_outputs
        from yoco.train import TrainConfig

        check_outputs([a.out], [a.condensed])
        rt = _runtime(a)
        cs = load(a.condensed)
        cfg = DynamicsConfig(**given(model=a.model, width=a.width, runs=a.runs, seed=a.seed, record=a.record),
                             train=TrainConfig(epochs=a.epochs, precision=a.precision))
        dyn = record_dynamics(cs, cfg, rt)
        save_dynamics(dyn, a.out)
        acc = dyn.train_acc[:, -1].mean()
        print(f"recorded {dyn.runs} run(s) x {dyn.epochs} epochs x {dyn.num_samples} images; "
              f"final train accuracy {100 * float(acc):.1f}%")
        print(f"wrote {a.out}")
        return 0

    return run
