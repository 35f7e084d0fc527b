"""What every ``yoco`` command shares: the command registry (:func:`command`), the parser's help format, bounded
numeric options, and the option groups and output checks the commands have in common.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from yoco import protocol
from yoco.registry import Registry

if TYPE_CHECKING:
    from yoco.runtime import Runtime

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


def _runtime(a: argparse.Namespace) -> Runtime:
    """The command's one runtime (:class:`yoco.runtime.Runtime`) from its --device, --quiet, --compile and
    --workers; the device is resolved here, once, and its --precision checked against it."""
    from yoco.runtime import Runtime, check_precision

    rt = Runtime.make(a.device, progress=not a.quiet, compile=getattr(a, "compile", False),
                      workers=getattr(a, "workers", 1))
    if getattr(a, "precision", None) is not None:
        check_precision(a.precision, rt.device)
    return rt


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


def _dataset(p: argparse.ArgumentParser, required: bool = True, default: str = "") -> None:
    from yoco.data.datasets import DATASETS

    p.add_argument("--dataset", required=required, default=None, metavar="NAME",
                   help="real dataset: " + ", ".join(DATASETS.names()) + (f" (default: {default})" if default else ""))
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder holding the dataset files (default: the dataset's own; see `yoco datasets`)")
    p.add_argument("--resolution", type=BOUNDED["pixels"], default=None, metavar="PX",
                   help=f"resize to PX x PX (ImageNet subsets: default {protocol.IMAGENET_RESOLUTION})")


def _real(args: argparse.Namespace):
    from yoco.data.datasets import load_dataset

    return load_dataset(args.dataset, root=args.data_root, resolution=args.resolution)


def _training(p: argparse.ArgumentParser, repeat_help: str) -> None:
    from yoco.models import model_names

    p.add_argument("--model", default=None, help=f"network ({', '.join(model_names())}); default: the "
                   f"protocol's for the dataset ({protocol.eval_model('cifar10')}; {protocol.eval_model('imagenet10')} "
                   "for ImageNet subsets)")
    p.add_argument("--width", type=BOUNDED["width"], default=None,
                   help=f"network width (default: the model's, {protocol.CONVNET_WIDTH})")
    p.add_argument("--epochs", type=BOUNDED["epochs"], default=None,
                   help=f"training epochs (default: the protocol's, {protocol.eval_epochs('cifar10', 10, 10)} for "
                   "CIFAR/MNIST-like data)")
    p.add_argument("--repeat", type=BOUNDED["runs"], default=None, help=repeat_help)
    from yoco.evaluate import EvalConfig

    _seed(p, "first training seed", EvalConfig.seed)


def _seed(p: argparse.ArgumentParser, what: str, default: int, flag: str = "--seed") -> None:
    """A seed option left None on the command line (so a config file or preset can set it) whose help names
    ``default``, the config field's default that a run takes."""
    p.add_argument(flag, type=BOUNDED["seed"], default=None, help=f"{what} (default: {default})")


def _pruned_epochs(p: argparse.ArgumentParser) -> None:
    from yoco import protocol

    p.add_argument("--pruned-epochs", choices=list(protocol.PRUNED_EPOCHS), default=None,
                   help="whose size sets a pruned set's evaluation epochs on ImageNet subsets: source (default, "
                   f"YOCO's test.py: the source set's, {protocol.eval_epochs('imagenet10', 90, 10)} for IPC 10 or 20 "
                   f"sources) or own (IDC's table on the pruned set's own size: "
                   f"{protocol.eval_epochs('imagenet10', 9, 10)} or {protocol.eval_epochs('imagenet10', 18, 10)})")


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


def _rules_help() -> str:
    from yoco.rules import bare_defaults, rule_names

    defaults = ", ".join(f"{bare} = {name}" for bare, name in bare_defaults().items())
    return ("a rule is <score>[_easy|_hard][_balance|_imbalance]; a bare name takes its defaults, the published "
            f"baselines' ({defaults}). Known: " + ", ".join(rule_names()))
