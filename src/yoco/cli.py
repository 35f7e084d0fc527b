"""The ``yoco`` command: each sub-command declares its arguments beside its handler and maps them onto the
library; defaults live in the library's configs (an option left out means "the config's default", never 0).

Every command checks its outputs before any work starts (an output may not overwrite an input or another
output, and its folder must be writable). User errors print one line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from yoco.errors import YocoError
from yoco.registry import Registry

if TYPE_CHECKING:
    from yoco.data.condensed import CondensedSet

log = logging.getLogger("yoco")

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A sub-command: ``arguments(parser)`` declares its options and returns the handler that runs it."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], Handler]


COMMANDS: Registry[Command] = Registry("command")


def command(name: str, help: str) -> Callable[[Callable[[argparse.ArgumentParser], Handler]], Command]:
    """Register ``fn(parser) -> handler`` as the sub-command ``name``."""

    def wrap(fn: Callable[[argparse.ArgumentParser], Handler]) -> Command:
        return COMMANDS.add(name, Command(name, help, fn), description=help)

    return wrap


class _Parser(argparse.ArgumentParser):
    """argparse, except that a bad command line is one line on stderr (status 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        flat, where = " ".join(message.split()), self.prog.removeprefix("yoco").strip()
        self.exit(2, f"yoco: error: {where + ': ' if where else ''}{flat}; see `{self.prog} --help`\n")


class _Help(argparse.RawDescriptionHelpFormatter):
    """Shows an option's default when it has a real one (not None, not a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


def _whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (zero never silently means "the default") and <= ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:40]!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        if high is not None and value > high:
            shown = f"{value}" if len(str(value)) <= 30 else f"a {len(str(value))}-digit number"
            raise argparse.ArgumentTypeError(f"must be at most {high} (yoco's limit for this option), got {shown}")
        return value

    return parse


# Upper bounds of the numeric options, far above the published protocol's values (epochs up to 3000, width 128,
# 3 runs, IDC's 2000 iterations of 100 inner steps, IPC 50), so a typo or an absurd value is one line, not an
# overflow traceback or a machine swapping. docs/reliability.md lists them.
LIMITS = {"epochs": 100_000, "width": 1024, "runs": 100, "seed": 2**31 - 1, "ipc": 10_000, "classes": 100_000,
          "factor": 8, "index": 100_000, "iterations": 100_000, "pixels": 4096, "workers": 256}
BOUNDED = {"epochs": _whole(1, LIMITS["epochs"]), "width": _whole(1, LIMITS["width"]),
           "runs": _whole(1, LIMITS["runs"]), "seed": _whole(0, LIMITS["seed"]), "ipc": _whole(1, LIMITS["ipc"]),
           "classes": _whole(1, LIMITS["classes"]), "factor": _whole(1, LIMITS["factor"]),
           "index": _whole(0, LIMITS["index"]), "iterations": _whole(1, LIMITS["iterations"]),
           "iterations0": _whole(0, LIMITS["iterations"]), "pixels": _whole(1, LIMITS["pixels"]),
           "workers": _whole(1, LIMITS["workers"])}


def _ipcs(text: str) -> tuple[int, ...]:
    values = tuple(BOUNDED["ipc"](v.strip()) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one target IPC, e.g. 1,2,5")
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise argparse.ArgumentTypeError(f"target IPC {twice[0]} is given twice; each IPC is one column of the table")
    return values


def _names(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one name")
    return values


def _option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text[:60]!r}")
    try:
        parsed: Any = float(value) if any(ch in value for ch in ".eE") else int(value)
    except ValueError:
        parsed = value.strip()
    if isinstance(parsed, float) and not math.isfinite(parsed):
        raise argparse.ArgumentTypeError(f"{key.strip()}: expected a finite number, got {value.strip()[:40]!r}")
    return key.strip(), parsed


def given(**kw: Any) -> dict[str, Any]:
    """The keyword arguments that were given (not None): what overrides a config's defaults."""
    return {k: v for k, v in kw.items() if v is not None}


# ----------------------------------------------------------------------------------------------------------
# Shared option groups


def _device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="where networks train: auto = CUDA when available")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _compile(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--compile", action="store_true",
                   help=help or "train each network through torch.compile: about 1.5x faster steps on a CPU once "
                   "compiled (seconds per process; a C++ compiler is needed), not bit-identical to eager training; "
                   "results and caches record it")


def _precision(p: argparse.ArgumentParser) -> None:
    from yoco.protocol import PRECISION, PRECISIONS

    p.add_argument("--precision", choices=list(PRECISIONS), default=PRECISION,
                   help="training arithmetic: fp32 = PyTorch's defaults, as the published code ran (the protocol); "
                   "tf32 = TF32 matmuls and convolutions (CUDA); bf16 = bfloat16 autocast, float32 weights; "
                   "results and caches record it")


def _dataset(p: argparse.ArgumentParser, required: bool = True) -> None:
    from yoco.data.datasets import DATASETS

    p.add_argument("--dataset", required=required, default=None, metavar="NAME",
                   help="real dataset: " + ", ".join(DATASETS.names()))
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the dataset files (default: the dataset's own; see `yoco datasets`)")
    p.add_argument("--resolution", type=BOUNDED["pixels"], default=None, metavar="PX",
                   help="resize to PX x PX (ImageNet subsets: default 224)")


def _real(args: argparse.Namespace):
    from yoco.data.datasets import load_dataset

    return load_dataset(args.dataset, root=args.data_root, resolution=args.resolution)


def _training(p: argparse.ArgumentParser, repeat_help: str) -> None:
    from yoco.models import model_names

    p.add_argument("--model", default=None, help=f"network ({', '.join(model_names())}); default: the "
                   "protocol's for the dataset (convnet3; resnet10_ap for ImageNet subsets)")
    p.add_argument("--width", type=BOUNDED["width"], default=None, help="network width (default: the model's, 128)")
    p.add_argument("--epochs", type=BOUNDED["epochs"], default=None,
                   help="training epochs (default: the protocol's, 1000 for CIFAR/MNIST-like data)")
    p.add_argument("--repeat", type=BOUNDED["runs"], default=None, help=repeat_help)
    p.add_argument("--seed", type=BOUNDED["seed"], default=None, help="first training seed (default: 0)")


def _pruned_epochs(p: argparse.ArgumentParser) -> None:
    from yoco import protocol

    p.add_argument("--pruned-epochs", choices=list(protocol.PRUNED_EPOCHS), default=None,
                   help="whose size sets a pruned set's evaluation epochs on ImageNet subsets: source (default, "
                   "YOCO's test.py: the source set's, 1000 for IPC 10 or 20 sources) or own (IDC's table on the "
                   "pruned set's own size: 2000 or 1500)")


def _config_copy(a: argparse.Namespace, beside: Path, folder: bool = False) -> list[Path]:
    """Where the ``--config`` file's copy goes beside the results (``OUT.config.<suffix>``, or ``config.<suffix>``
    in a results folder): one more output, checked with the others before any work. Empty without ``--config``, or
    when the copy would be the config file itself (a rerun from the copy kept last time)."""
    if not getattr(a, "config", None):
        return []
    src = Path(a.config)
    target = beside / f"config{src.suffix}" if folder else beside.with_name(f"{beside.name}.config{src.suffix}")
    if target.resolve() == src.resolve() or (target.exists() and os.path.samefile(target, src)):
        return []
    return [target]


def _keep_config(a: argparse.Namespace, copies: list[Path]) -> None:
    """Write the ``--config`` file's text, as read when the command started, to its copy beside the results."""
    from yoco.files import write_text

    for target in copies:
        write_text(target, a.config_text)


def _inputs(a: argparse.Namespace, *paths: str | Path | None) -> list[Path]:
    """Everything a command reads: ``paths``, the ``--config`` file, and the files of ``--dataset`` (when given)."""
    from yoco.data.datasets import dataset_inputs

    found = [Path(p) for p in paths if p]
    if getattr(a, "config", None):
        found.append(Path(a.config))
    if getattr(a, "dataset", None):
        found += dataset_inputs(a.dataset, getattr(a, "data_root", None))
    return found


def _saved(cs, out: str | Path, *, written: bool = False) -> int:
    """Write a condensed set (unless ``written`` already), then say what it holds and where it went."""
    from yoco.data.condensed import save
    from yoco.report import summarize

    if not written:
        save(cs, out)
    print(summarize(cs))
    print(f"wrote {out}")
    return 0


# ----------------------------------------------------------------------------------------------------------
# Commands


@command("datasets", "list the known real datasets and whether each is found")
def _datasets(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--dataset", default=None, metavar="NAME", help="check this dataset at --data-root")
    p.add_argument("--data-root", default=None, metavar="DIR", help="folder to look in for --dataset")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.datasets import dataset_status

        rows = dataset_status({a.dataset: a.data_root} if a.dataset and a.data_root else None)
        width = max(len(r["name"]) for r in rows)
        for r in rows:
            print(f"{r['name']:<{width}}  {'found' if r['found'] else 'missing':<7}  {r['root']}  "
                  f"{r.get('description', '')}")
        return 0

    return run


@command("download", "fetch a real dataset from its official source (checksum-verified, resumable)")
def _download(p: argparse.ArgumentParser) -> Handler:
    from yoco.data.download import SOURCES

    p.add_argument("name", choices=list(SOURCES), help="the dataset")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="where to put it (default: $YOCO_DATA/NAME or ~/.yoco/data/NAME, where yoco looks)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.download import download

        folder = download(a.name, a.data_root, progress=not a.quiet)
        print(f"{a.name} is in {folder}")
        return 0

    return run


@command("show", "summarise a condensed set (provenance, storage, recipe, labels); --png draws its images")
def _show(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("condensed", help="a yoco condensed-set file (.safetensors)")
    p.add_argument("--png", default=None, help="also write a grid of its images per class to this PNG file")
    p.add_argument("--per-class", type=BOUNDED["ipc"], default=10, help="images shown per class in --png")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.files import check_outputs
        from yoco.report import save_image_grid, summarize

        check_outputs([a.png] if a.png else [], _inputs(a, a.condensed))
        cs = load(a.condensed)
        print(summarize(cs))
        if a.png:
            save_image_grid(cs, a.png, per_class=a.per_class)
            print(f"grid: {a.png}")
        return 0

    return run


@command("import", "convert a published condensed set (IDC, DREAM, MTT, DD-Ranking, DSA, KIP, image folder, "
         "Hugging Face) to yoco's format")
def _import(p: argparse.ArgumentParser) -> Handler:
    from yoco.data.formats import FORMATS

    p.add_argument("path", help="the published file or folder (data.pt, images_best.pt, images.pt, res_*.pt, .npz, "
                   "an image folder, a parquet snapshot)")
    p.add_argument("--format", default=None, choices=FORMATS.names(),
                   help="default: told from the path's name or contents (a path that fits several formats is "
                   "refused, naming them). " + FORMATS.help())
    p.add_argument("--dataset", required=True, help="the real dataset it was condensed from")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--num-classes", type=BOUNDED["classes"], default=None,
                   help="default: the width of one-hot labels, else the largest label + 1")
    p.add_argument("--factor", type=BOUNDED["factor"], default=None,
                   help="multi-formation factor (default: the format's: IDC 2, 3 for ImageNet; DREAM 2; others 1)")
    p.add_argument("--normalized", choices=["yes", "no"], default=None,
                   help="are the stored images standardised (default: the format's: IDC/DREAM and the picture "
                   "formats no, MTT, DD-Ranking, DSA, KIP yes)")
    p.add_argument("--mean", type=_floats, default=None, metavar="M,...",
                   help="per-channel mean the images were standardised with (default: the dataset's)")
    p.add_argument("--std", type=_floats, default=None, metavar="S,...", help="per-channel std, with --mean")
    p.add_argument("--experiment", type=BOUNDED["index"], default=0, help="which experiment of a DSA res_*.pt file")
    p.add_argument("--labels", default=None,
                   help="MTT's labels_best.pt or DD-Ranking's labels.pt (default: beside the images)")
    p.add_argument("--image-column", default=None, metavar="NAME",
                   help="hf: the image column (default: the first of image, img, images, pixel_values, ...)")
    p.add_argument("--label-column", default=None, metavar="NAME",
                   help="hf: the label column (default: the first of label, labels, class_id, label_id, ...)")
    p.add_argument("--zca", action="store_true", help="the images are ZCA-whitened (MTT's CIFAR sets): evaluation "
                   "whitens the test set the same way")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.formats import detect_format, import_condensed
        from yoco.files import check_outputs

        a.format = a.format or detect_format(a.path)
        check_outputs([a.out], _import_inputs(a))
        normalized = None if a.normalized is None else a.normalized == "yes"
        cs = import_condensed(a.path, a.format, dataset=a.dataset, num_classes=a.num_classes, factor=a.factor,
                              normalized=normalized, mean=a.mean, std=a.std, experiment=a.experiment,
                              labels_path=a.labels, zca=a.zca, image_column=a.image_column,
                              label_column=a.label_column)
        print(f"format: {a.format}")
        return _saved(cs, a.out)

    return run


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text[:60]!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected finite numbers separated by commas, got {text[:60]!r}")
    return values


def _import_inputs(a: argparse.Namespace) -> list[Path]:
    """The files an import reads (:func:`yoco.data.formats.input_files`: the file, the labels and learning-rate
    files beside an images file, yoco's ``condensed.json``) and the dataset's files (read for class names)."""
    from yoco.data.formats import input_files

    return _inputs(a, *input_files(a.path, a.format, a.labels))


@command("export", "write a condensed set for other tools: an image folder, a Hugging Face snapshot, DD-Ranking's "
         "files")
def _export(p: argparse.ArgumentParser) -> Handler:
    from yoco.data.exports import EXPORTS

    p.add_argument("condensed", help="a yoco condensed-set file")
    p.add_argument("--out", required=True, help="a new (or empty) folder")
    p.add_argument("--format", default="imagefolder", choices=EXPORTS.names(), help=EXPORTS.help())
    p.add_argument("--class-names", action="store_true",
                   help="name the classes after the dataset's (reads the dataset) instead of 0..C-1")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where the dataset is, for --class-names")
    p.add_argument("--lossy", action="store_true",
                   help="picture formats: write a ZCA-whitened set as clamped 8-bit pictures anyway (their metadata "
                   "drops the ZCA recipe: they are not the set)")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.data.datasets import dataset_inputs, load_dataset
        from yoco.data.exports import export_set
        from yoco.files import check_outputs

        check_outputs([], _inputs(a, a.condensed), folders=[a.out])
        cs = load(a.condensed)
        if a.class_names:
            check_outputs([], dataset_inputs(cs.meta.dataset, a.data_root), folders=[a.out])
        names = list(load_dataset(cs.meta.dataset, root=a.data_root).classes) if a.class_names else None
        out = export_set(cs, a.out, a.format, names, lossy=a.lossy)
        kind = "8-bit PNG in pixel space" if EXPORTS.get(a.format).pictures else "tensors"
        print(f"wrote {len(cs)} images to {out} ({a.format}: {kind}, labels and recipe in condensed.json; "
              f"re-import with: yoco import {out} --dataset {cs.meta.dataset} --out SET.safetensors)")
        return 0

    return run


@command("sample", "take random real images per class as a starting (\"condensed\") set")
def _sample(p: argparse.ArgumentParser) -> Handler:
    _dataset(p)
    p.add_argument("--ipc", type=BOUNDED["ipc"], required=True, help="images per class")
    p.add_argument("--seed", type=BOUNDED["seed"], default=0, help="which random subset")
    p.add_argument("--out", required=True, help="output .safetensors path")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.subset import random_real_subset
        from yoco.files import check_outputs

        check_outputs([a.out], _inputs(a))
        cs = random_real_subset(_real(a), a.ipc, seed=a.seed)
        return _saved(cs, a.out)

    return run


@command("evaluate", "train fresh networks on a condensed set and test them on the real test set")
def _evaluate(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("condensed", help="a yoco condensed-set file")
    _dataset(p)
    _training(p, "independent runs, seeds seed .. seed+repeat-1 (default: 3)")
    p.add_argument("--test-points", type=BOUNDED["epochs"], default=None,
                   help="times the network is tested during training (default: the protocol's 4)")
    p.add_argument("--recipe", choices=["set", "protocol", "yoco"], default="set",
                   help="set: use the evaluation recipe the set's method published with it (MTT's learned learning "
                   "rate, ZCA), saying so; protocol: ignore it (with a warning); yoco: as YOCO's test.py evaluated "
                   "MTT/DSA/KIP sets (lr 0.01, no ZCA, the stored standardised images standardised again)")
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
        check_outputs([out, *copies], _inputs(a, a.condensed))
        cs = load(a.condensed)
        real = _real(a)
        check_compatible(cs, real)
        cfg = EvalConfig(**given(model=a.model, width=a.width, repeat=a.repeat, seed=a.seed,
                                 test_points=a.test_points, pruned_epochs=a.pruned_epochs),
                         train=TrainConfig(epochs=a.epochs, precision=a.precision), recipe=a.recipe)
        result = evaluate_condensed(cs, real, cfg, device=a.device, progress=not a.quiet, compile=a.compile)
        result["file"] = str(a.condensed)  # named by content in "sha256" (see "digests"), wherever it lies
        result["test_sha256"] = real.digest("test")  # the test set it was measured on, by content
        write_json(out, result)
        _keep_config(a, copies)
        print(f"{real.name} test accuracy over {len(result['runs'])} run(s): {accuracy_line(result)}")
        print(f"wrote {out}")
        return 0

    return run


@command("condense", "condense a real dataset with IDC (gradient matching, multi-formation) or MDC (IDC plus "
         "an adaptive subset loss: nested subsets for every smaller IPC)")
def _condense(p: argparse.ArgumentParser) -> Handler:
    from yoco.condense import METHODS, PRESETS

    _dataset(p)
    p.add_argument("--ipc", type=BOUNDED["ipc"], required=True, help="stored images per class")
    p.add_argument("--method", choices=METHODS, default="idc",
                   help="idc: IDC; mdc: MDC (He et al., ICLR 2024), IDC's matching plus its adaptive subset loss, "
                   "with mse as its code sets it; the set records that each class's first images are MDC's "
                   "smaller sets (cut it with the rule mdc_prefix)")
    p.add_argument("--mdc-period", type=BOUNDED["iterations"], default=None,
                   help="MDC: outer iterations between choices of the subset to regularise (default: 100, MDC's)")
    p.add_argument("--mdc-class-wise", action="store_true",
                   help="MDC: each class chooses its subset from its own losses (default: from the class average)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help="IDC settings (default: the dataset's published preset; cpu-quick: a CPU smoke run)")
    p.add_argument("--factor", type=BOUNDED["factor"], default=None,
                   help="multi-formation factor (default: the preset's, 2; 3 for ImageNet)")
    p.add_argument("--iterations", type=BOUNDED["iterations"], default=None, help="outer iterations (published: 2000)")
    p.add_argument("--inner", type=BOUNDED["iterations"], default=None,
                   help="inner matching steps per iteration (published: 100)")
    p.add_argument("--width", type=BOUNDED["width"], default=None, help="matching network width (published: 128)")
    p.add_argument("--net-images", type=BOUNDED["index"], default=None,
                   help="real images the network trains on after every inner step (published: 2000 CIFAR, 500 others)")
    p.add_argument("--pretrain-epochs", type=BOUNDED["iterations0"], default=None,
                   help="epochs each fresh network trains on the real set before matching (published: 10 for "
                   "ImageNet, 0 others)")
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
                   "matching (their paths read only real images); default: 8 on a GPU, 1 on a CPU (measured "
                   "faster there); the same images up to float rounding")
    p.add_argument("--seed", type=BOUNDED["seed"], default=None, help="default: 0")
    p.add_argument("--checkpoint-every", type=BOUNDED["iterations0"], default=None,
                   help="outer iterations between checkpoints (OUT.ckpt; default 50, 0 = off)")
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
        real = _real(a)
        cfg = (resolve_mdc_config if a.method == "mdc" else resolve_config)(real.name, a.preset, **given(
            ipc=a.ipc, factor=a.factor, iterations=a.iterations, inner=a.inner, width=a.width, engine=a.engine,
            seed=a.seed, checkpoint_every=a.checkpoint_every, eval_every=a.eval_every, precision=a.precision,
            net_images=a.net_images, net_pretrain_epochs=a.pretrain_epochs, decode=a.decode))
        eval_fn = None
        if cfg.eval_every:
            quick_eval = EvalConfig(repeat=1, test_points=1, train=TrainConfig(epochs=a.eval_epochs))

            def eval_fn(cs: CondensedSet) -> float:
                return evaluate_condensed(cs, real, quick_eval, device=a.device, progress=False)["last_mean"]

        kw = {"device": a.device, "resume": a.resume, "progress": not a.quiet, "eval_fn": eval_fn,
              "compile": a.compile, "net_batch": a.net_batch}
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
    p.add_argument("condensed", help="a yoco condensed-set file")
    p.add_argument("--out", required=True, help="dynamics file (.safetensors)")
    p.add_argument("--runs", type=BOUNDED["runs"], default=None, help="independent training runs; scores average them "
                   "(default: 3)")
    p.add_argument("--epochs", type=BOUNDED["epochs"], default=None, help="default: the protocol's 1000")
    p.add_argument("--model", default=None, help="default: the evaluation network of the set's dataset")
    p.add_argument("--width", type=BOUNDED["width"], default=None, help="default: the model's, 128")
    p.add_argument("--seed", type=BOUNDED["seed"], default=None, help="first training seed (default: 0)")
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
        cs = load(a.condensed)
        cfg = DynamicsConfig(**given(model=a.model, width=a.width, runs=a.runs, seed=a.seed, record=a.record),
                             train=TrainConfig(epochs=a.epochs, precision=a.precision))
        dyn = record_dynamics(cs, cfg, device=a.device, progress=not a.quiet, compile=a.compile)
        save_dynamics(dyn, a.out)
        acc = dyn.train_acc[:, -1].mean()
        print(f"recorded {dyn.runs} run(s) x {dyn.epochs} epochs x {dyn.num_samples} images; "
              f"final train accuracy {100 * float(acc):.1f}%")
        print(f"wrote {a.out}")
        return 0

    return run


@command("score", "compute every importance score from recorded dynamics into a score table")
def _score(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("dynamics", help="a dynamics file written by `yoco dynamics`")
    p.add_argument("--out", required=True, help="score table (.safetensors: scores, labels and SSP's features)")
    p.add_argument("--csv", default=None, help="also export the scores as a readable CSV")
    p.add_argument("--lbpe-epochs", type=BOUNDED["epochs"], default=None,
                   help="LBPE window E (default: the published one for the set's dataset and method)")
    p.add_argument("--lbpe-top-k", type=BOUNDED["epochs"], default=None, help="LBPE top-K epochs (default: as E)")
    p.add_argument("--el2n-epochs", type=BOUNDED["epochs"], default=None, help="EL2N window (default: 10)")
    p.add_argument("--seed", type=BOUNDED["seed"], default=0, help="seeds the random score")

    def run(a: argparse.Namespace) -> int:
        from yoco.dynamics import load_dynamics
        from yoco.files import check_outputs
        from yoco.scores import resolve_windows
        from yoco.scoretable import build_table

        if Path(a.out).suffix.lower() == ".csv":
            raise YocoError(f"{a.out}: the score table is a .safetensors file; use --csv for the CSV export")
        check_outputs([a.out] + ([a.csv] if a.csv else []), [a.dynamics])
        dyn = load_dynamics(a.dynamics)
        windows = resolve_windows(dyn, **given(lbpe_epochs=a.lbpe_epochs, lbpe_top_k=a.lbpe_top_k,
                                               el2n_epochs=a.el2n_epochs))
        table = build_table(dyn, **windows, seed=a.seed, config={"dynamics": str(a.dynamics)})
        table.save(a.out)
        print(f"wrote {a.out} ({len(table)} images: {', '.join(table.scores)}; features: "
              f"{', '.join(table.features) or 'none'})")
        if a.csv:
            table.to_csv(a.csv)
            print(f"wrote {a.csv}")
        return 0

    return run


@command("prune", "keep IPC images per class of a condensed set by a rule (yoco = lbpe_easy_balance)")
def _prune(p: argparse.ArgumentParser) -> Handler:
    from yoco.rules import options_help

    p.add_argument("condensed", help="the condensed set to prune")
    p.add_argument("--scores", default=None,
                   help="score table from `yoco score` (or a scores CSV: no ssp); not needed by random rules")
    p.add_argument("--rule", required=True, help=_rules_help())
    p.add_argument("--ipc", type=BOUNDED["ipc"], required=True, help="target stored images per class")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="NAME=VALUE",
                   help=f"a rule method's option, e.g. hard_cut=0.2 for ccs ({options_help()})")
    p.add_argument("--seed", type=BOUNDED["seed"], default=0,
                   help="seeds the rules that draw at random (random, ssp, ccs, kcenter, dual)")
    p.add_argument("--out", required=True, help="the pruned set (.safetensors; the selection is in its metadata)")
    p.add_argument("--record", default=None, help="also write the selection (indices, class counts) as JSON")

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load, save
        from yoco.files import check_outputs, write_json
        from yoco.rules import prune
        from yoco.scoretable import load_table

        check_outputs([a.out] + ([a.record] if a.record else []), [a.condensed, *([a.scores] if a.scores else [])])
        cs = load(a.condensed)
        table = load_table(a.scores) if a.scores else None
        pruned, record = prune(cs, table, a.rule, a.ipc, seed=a.seed, **dict(a.option))
        save(pruned, a.out)
        print(f"kept {len(pruned)} decoded images by {record['rule']} (per class: {record['class_counts']})")
        print(f"wrote {a.out}")
        if a.record:
            write_json(a.record, {**record, "source": str(a.condensed), "pruned": str(a.out)})
            print(f"wrote {a.record}")
        return 0

    return run


@command("ladder", "prune one condensed set to every target IPC with every rule, evaluate, tabulate, plot")
def _ladder(p: argparse.ArgumentParser) -> Handler:
    from yoco.ladder import DEFAULT_RULES, PRESETS, SCORE_RUNS
    from yoco.rules import options_help

    p.add_argument("condensed", nargs="?", default=None, help="the source condensed set")
    p.add_argument("--condense", default=None, metavar="ipc=K,...",
                   help="condense the real dataset first (IDC; keys of `yoco condense`, e.g. ipc=10,iterations=200)")
    p.add_argument("--dataset", default=None, metavar="NAME", help="real dataset for testing (default: the preset's)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="folder holding the dataset files")
    p.add_argument("--preset", default=None, choices=list(PRESETS), help="a paper experiment (dataset, IPCs, window)")
    p.add_argument("--quick", action="store_true", help="a first look on a CPU, NOT the protocol: width 64, dynamics "
                   "2 x 150 epochs, evaluation 300 epochs with 2 test points, LBPE window shrunk to fit")
    p.add_argument("--ipcs", type=_ipcs, default=None, help="target IPCs (default: the preset's, or 1,2,5)")
    p.add_argument("--rules", type=_names, default=None,
                   help=f"comma-separated rules (default: {','.join(DEFAULT_RULES)}); {_rules_help()}")
    p.add_argument("--option", type=_option, action="append", default=[], metavar="NAME=VALUE",
                   help=f"a rule method's option for every cell ({options_help()})")
    p.add_argument("--score-runs", default=None, choices=list(SCORE_RUNS),
                   help="separate (default, the paper's cells): each dynamics run makes its own scores and pruned "
                   "set, each set is evaluated --repeat times, and a cell is mean ± std over the runs; averaged: the "
                   "scores averaged over the runs into one pruned set, evaluated --repeat times (named in the "
                   "table's title as a departure)")
    p.add_argument("--repeat", type=BOUNDED["runs"], default=None,
                   help="training seeds per pruned set (default: 1 with separate runs, YOCO's --repeat 1; 3 averaged)")
    p.add_argument("--seed", type=BOUNDED["seed"], default=None, help="first training seed (default: 0)")
    p.add_argument("--subset-seed", type=BOUNDED["seed"], default=None,
                   help="seed of the rules that draw at random: random, ssp, ccs, kcenter, dual (default: 0)")
    p.add_argument("--random-subsets", type=BOUNDED["runs"], default=None,
                   help="random balanced subsets (per dynamics run with separate runs; subset seeds from "
                   "--subset-seed) that the gain-over-random column is measured against (default: 1)")
    p.add_argument("--epochs", type=BOUNDED["epochs"], default=None, help="evaluation epochs (default: the protocol's)")
    _pruned_epochs(p)
    p.add_argument("--width", type=BOUNDED["width"], default=None, help="network width for dynamics and evaluation")
    p.add_argument("--dynamics-epochs", type=BOUNDED["epochs"], default=None, help="default: 1000")
    p.add_argument("--dynamics-runs", type=BOUNDED["runs"], default=None, help="default: 3")
    p.add_argument("--dynamics-seed", type=BOUNDED["seed"], default=None,
                   help="first seed of the dynamics runs, apart from the training seeds: another one measures how "
                   "much of a score-based rule's result is its scores' noise (default: 0)")
    p.add_argument("--lbpe-epochs", type=BOUNDED["epochs"], default=None, help="default: the published window for the source")
    p.add_argument("--lbpe-top-k", type=BOUNDED["epochs"], default=None, help="default: the published window for the source")
    p.add_argument("--workers", type=BOUNDED["workers"], default=1, help="evaluations run side by side in local processes")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run evaluations on a Ray cluster")
    p.add_argument("--force", action="store_true", help="reuse an output folder that holds another ladder")
    p.add_argument("--out", required=True, help="output folder")
    _device(p)
    _compile(p)
    _precision(p)

    def run(a: argparse.Namespace) -> int:
        from yoco.ladder import build_config, check_folder, run_ladder

        copies = _config_copy(a, Path(a.out), folder=True)
        cfg = build_config(preset=a.preset, dataset=a.dataset, quick_look=a.quick, ipcs=a.ipcs, rules=a.rules,
                           repeat=a.repeat, seed=a.seed, subset_seed=a.subset_seed,
                           random_subsets=a.random_subsets, score_runs=a.score_runs, lbpe_epochs=a.lbpe_epochs,
                           lbpe_top_k=a.lbpe_top_k, options=dict(a.option) or None, eval_epochs=a.epochs,
                           width=a.width, dynamics_epochs=a.dynamics_epochs, dynamics_runs=a.dynamics_runs,
                           dynamics_seed=a.dynamics_seed, precision=a.precision, pruned_epochs=a.pruned_epochs)
        a.dataset = cfg.dataset  # the preset's, when only a preset is given: its files are inputs too
        check_folder(a.out, _inputs(a, a.condensed), copies)
        cs = _ladder_source(a, cfg.dataset)
        doc = run_ladder(cs, cfg, a.out, data_root=a.data_root, workers=a.workers, ray_address=a.ray,
                         force=a.force, device=a.device, progress=not a.quiet, compile=a.compile)
        _keep_config(a, copies)
        return _print_ladder(a.out, doc)

    return run


def _ladder_source(a: argparse.Namespace, dataset: str):
    from yoco.data.condensed import load
    from yoco.protocol import PRECISION

    if a.condensed and a.condense:
        raise YocoError("give either a condensed set or --condense ipc=K, not both")
    if a.condensed:
        return load(a.condensed)
    if not a.condense:
        raise YocoError("ladder needs a condensed set (or --condense ipc=K to condense the real dataset first)")
    from yoco.condense import condense_from_spec

    spec = a.condense  # the ladder's precision condenses too, unless the spec says otherwise
    if a.precision != PRECISION and "precision" not in spec:
        spec += f",precision={a.precision}"
    return condense_from_spec(dataset, spec, Path(a.out) / "condensed.safetensors", data_root=a.data_root,
                              device=a.device, progress=not a.quiet)


def _print_ladder(out: str | Path, doc: dict) -> int:
    out = Path(out)
    print((out / "results.md").read_text())
    print(f"plot: {out / 'ladder.png'}   table: {out / 'results.csv'}   all: {out / 'results.json'}")
    if doc["failed"]:
        print(f"yoco: {len(doc['failed'])} evaluation(s) failed: {', '.join(doc['failed'])} (errors in results.md; "
              "rerun the same command to retry them)", file=sys.stderr)
        return 1
    return 0


@command("report", "tabulate and plot the cells a ladder folder has finished so far (while it runs, or stopped)")
def _report(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("folder", help="a ladder's output folder (its --out)")

    def run(a: argparse.Namespace) -> int:
        from yoco.ladder import report_ladder

        doc = report_ladder(a.folder)
        if doc["cells"] < doc["planned_cells"]:
            print(f"{doc['cells']} of {doc['planned_cells']} cells finished", file=sys.stderr)
        return _print_ladder(a.folder, doc)

    return run


@command("demo", "the whole job on the shipped Fashion-MNIST condensed set, sized for a 2-core CPU")
def _demo(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--data-root", default=None, metavar="DIR", help="folder holding Fashion-MNIST's IDX files")
    p.add_argument("--workers", type=BOUNDED["workers"], default=min(2, os.cpu_count() or 1),
                   help="parallel evaluation processes")
    _device(p)
    _compile(p)

    def run(a: argparse.Namespace) -> int:
        from yoco.ladder import demo

        doc = demo(a.out, data_root=a.data_root, workers=a.workers, device=a.device, progress=not a.quiet,
                   compile=a.compile)
        return _print_ladder(a.out, doc)

    return run


def _rules_help() -> str:
    from yoco.rules import rule_names

    return ("a rule is <score>[_easy|_hard][_balance|_imbalance]; a bare score takes its classic defaults "
            "(forgetting = forgetting_hard_imbalance; yoco = lbpe_easy_balance). Known: " + ", ".join(rule_names()))


CONFIGURABLE = ("evaluate", "condense", "ladder")  # the commands that take --config FILE

# One example per command, shown under its --help
EXAMPLES = {
    "datasets": "yoco datasets --dataset mnist --data-root ~/data/mnist",
    "download": "yoco download cifar10",
    "show": "yoco show idc-cifar10-ipc10.safetensors --png grid.png",
    "import": "yoco import mtt/CIFAR10/ipc10/images_best.pt --zca --dataset cifar10 --out mtt10.safetensors",
    "export": "yoco export mtt10.safetensors --format dd-ranking --out for-ddranking/",
    "sample": "yoco sample --dataset fashion-mnist --ipc 10 --out real10.safetensors",
    "evaluate": "yoco evaluate idc10.safetensors --dataset cifar10 --repeat 3 --out idc10.eval.json",
    "condense": "yoco condense --dataset fashion-mnist --ipc 10 --out idc10.safetensors",
    "dynamics": "yoco dynamics idc10.safetensors --out idc10.dyn.safetensors",
    "score": "yoco score idc10.dyn.safetensors --out idc10.scores.safetensors --csv idc10.scores.csv",
    "prune": "yoco prune idc10.safetensors --scores idc10.scores.safetensors --rule yoco --ipc 1 --out ipc1.safetensors",
    "ladder": "yoco ladder idc10.safetensors --dataset cifar10 --ipcs 1,2,5 --out runs/ladder",
    "report": "yoco report runs/ladder",
    "demo": "yoco demo --out runs/demo",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The full argument parser (also used to render ``--help``) and each command's sub-parser."""
    from yoco.provenance import version

    parser = _Parser(prog="yoco", description="Condense once, prune to any size (YOCO).", formatter_class=_Help,
                     epilog="example:\n  yoco demo                      # the whole job on Fashion-MNIST, on a CPU\n"
                     "  yoco COMMAND --help            # each command's options and an example")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"yoco {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subs = {}
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)
        p = sub.add_parser(name, help=cmd.help, description=cmd.help, formatter_class=_Help,
                           epilog="example:\n  " + EXAMPLES[name] if name in EXAMPLES else None)
        p.set_defaults(handler=cmd.arguments(p))
        if name in CONFIGURABLE:
            p.add_argument("--config", default=None, metavar="FILE",
                           help="TOML (or YAML) file of this command's options, by their long names; options given "
                           "on the command line win; the file is copied beside the results")
        subs[name] = p
    return parser, subs


def _apply_config(sub: argparse.ArgumentParser, path: str) -> None:
    """Make the options in ``path`` the sub-parser's defaults (no longer required), so the command line wins."""
    from yoco.files import load_config

    values, text = load_config(path)
    actions = {a.dest: a for a in sub._actions if a.option_strings}
    defaults: dict[str, Any] = {}
    for raw_key, value in values.items():
        dest = str(raw_key).replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in ("config", "help"):
            known = sorted(d.replace("_", "-") for d in actions if d not in ("config", "help"))
            raise YocoError(f"{path}: unknown option {raw_key!r}; known: {', '.join(known)}")
        defaults[dest] = _config_value(path, raw_key, value, action)
        action.required = False
    sub.set_defaults(**defaults, config_text=text)


def _config_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _config_value(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """A config-file value as argparse would have parsed it from the command line."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise YocoError(f"{path}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        if isinstance(value, dict):
            items = [f"{k}={v}" for k, v in value.items()]
        return [action.type(str(v)) if action.type else str(v) for v in items]
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    try:
        parsed = action.type(text) if action.type else text
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise YocoError(f"{path}: {key}: {exc}") from None
    if action.choices is not None and parsed not in action.choices:
        raise YocoError(f"{path}: {key} must be one of {', '.join(map(str, action.choices))}, got {parsed!r}")
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yoco`` console script."""
    parser, subs = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    config = _config_path(argv)
    if name in CONFIGURABLE and config:
        try:
            _apply_config(subs[name], config)
        except YocoError as exc:
            print(f"yoco: error: {exc}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except YocoError as exc:
        print(f"yoco: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a vanished folder while writing: atomic writes left nothing behind
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"yoco: error: {where}{exc.strerror or exc}; nothing half-written was kept", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("yoco: interrupted; finished files are complete, nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
