"""The ``yoco`` command: thin wrappers that parse arguments, call the library, and print.

User errors (:class:`~yoco.errors.YocoError`) print one line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from yoco.errors import YocoError

log = logging.getLogger("yoco")
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = fn
        return fn

    return wrap


def _real(args: argparse.Namespace):
    from yoco.data.datasets import load_dataset

    return load_dataset(args.dataset, root=args.data_root, resolution=getattr(args, "resolution", None))


def _eval_config(args: argparse.Namespace):
    from yoco.evaluate import EvalConfig

    return EvalConfig(model=args.model, width=args.width, epochs=args.epochs, repeat=args.repeat, seed=args.seed,
                      test_points=args.test_points, device=args.device)


@command("datasets")
def cmd_datasets(args: argparse.Namespace) -> int:
    from yoco.data.datasets import dataset_status

    overrides = {args.dataset: args.data_root} if args.dataset and args.data_root else None
    rows = dataset_status(overrides)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "found" if r["found"] else "missing"
        print(f"{r['name']:<{width}}  {mark:<7}  {r['root']}  {r.get('description', '')}")
    return 0


@command("show")
def cmd_show(args: argparse.Namespace) -> int:
    from yoco.data.condensed import load
    from yoco.report import save_image_grid, summarize

    cs = load(args.condensed)
    print(summarize(cs))
    png = Path(args.png) if args.png else Path(args.condensed).with_suffix(".png")
    save_image_grid(cs, png, per_class=args.per_class)
    print(f"grid: {png}")
    return 0


@command("import")
def cmd_import(args: argparse.Namespace) -> int:
    from yoco.data.condensed import save
    from yoco.data.formats import import_condensed
    from yoco.report import summarize

    normalized = None if args.normalized is None else args.normalized == "yes"
    cs = import_condensed(args.path, args.format, dataset=args.dataset, num_classes=args.num_classes,
                          factor=args.factor, normalized=normalized, experiment=args.experiment,
                          labels_path=args.labels)
    save(cs, args.out)
    print(summarize(cs))
    print(f"wrote {args.out}")
    return 0


@command("evaluate")
def cmd_evaluate(args: argparse.Namespace) -> int:
    from yoco.data.condensed import load
    from yoco.evaluate import check_compatible, evaluate_condensed
    from yoco.io import write_json

    cs = load(args.condensed)
    real = _real(args)
    check_compatible(cs, real)
    result = evaluate_condensed(cs, real, _eval_config(args), progress=not args.quiet)
    out = Path(args.out) if args.out else Path(args.condensed).with_suffix(".eval.json")
    write_json(out, result)
    print(f"{real.name} test accuracy over {args.repeat} run(s): "
          f"last {100 * result['last_mean']:.2f} ± {100 * result['last_std']:.2f}  "
          f"(best {100 * result['best_mean']:.2f} ± {100 * result['best_std']:.2f})")
    print(f"wrote {out}")
    return 0


@command("sample")
def cmd_sample(args: argparse.Namespace) -> int:
    from yoco.data.condensed import save
    from yoco.data.subset import random_real_subset
    from yoco.report import summarize

    cs = random_real_subset(_real(args), args.ipc, seed=args.seed)
    save(cs, args.out)
    print(summarize(cs))
    print(f"wrote {args.out}")
    return 0


@command("dynamics")
def cmd_dynamics(args: argparse.Namespace) -> int:
    from yoco.data.condensed import load
    from yoco.dynamics import DynamicsConfig, record_dynamics, save_dynamics

    cs = load(args.condensed)
    cfg = DynamicsConfig(model=args.model, width=args.width, epochs=args.epochs, runs=args.runs, seed=args.seed,
                         record=args.record)
    dyn = record_dynamics(cs, cfg, device=args.device, progress=not args.quiet)
    save_dynamics(dyn, args.out)
    acc = dyn.train_acc[:, -1].mean()
    print(f"recorded {dyn.runs} run(s) x {dyn.epochs} epochs x {dyn.num_samples} images; "
          f"final train accuracy {100 * float(acc):.1f}%")
    print(f"wrote {args.out}")
    return 0


@command("score")
def cmd_score(args: argparse.Namespace) -> int:
    from yoco.dynamics import load_dynamics
    from yoco.protocol import lbpe_window
    from yoco.scores import compute_scores
    from yoco.scoretable import write_scores_csv

    dyn = load_dynamics(args.dynamics)
    meta = dyn.config.get("condensed_meta", {})
    e, k = lbpe_window(meta.get("dataset", ""), meta.get("method", ""))
    kw = {"lbpe_epochs": args.lbpe_epochs or e, "lbpe_top_k": args.lbpe_top_k or k, "el2n_epochs": args.el2n_epochs,
          "seed": args.seed}
    scores = compute_scores(dyn, **kw)
    write_scores_csv(args.out, scores, dyn.labels, {"dynamics": str(args.dynamics), **kw})
    embed_path = _embeddings_path(args.out)
    _save_embeddings(dyn, embed_path)
    print(f"wrote {args.out} ({len(dyn.labels)} rows: {', '.join(scores)}) and {embed_path}")
    return 0


def _embeddings_path(scores_csv: str | Path) -> Path:
    return Path(scores_csv).with_suffix(".embeddings.safetensors")


def _save_embeddings(dyn, path: Path) -> None:
    from yoco.dynamics import ssp_embeddings
    from yoco.io import write_tensors

    write_tensors(path, {"embeddings": ssp_embeddings(dyn)})


@command("prune")
def cmd_prune(args: argparse.Namespace) -> int:
    from yoco.data.condensed import decode, load, save
    from yoco.io import read_tensors, write_json
    from yoco.prune import prune_condensed
    from yoco.scoretable import check_matches, read_scores_csv

    cs = load(args.condensed)
    scores, labels, config = read_scores_csv(args.scores)
    check_matches(labels, decode(cs).labels, args.scores)
    embed_path = _embeddings_path(args.scores)
    embeddings = read_tensors(embed_path, "embeddings file")[1]["embeddings"] if embed_path.exists() else None
    pruned, record = prune_condensed(cs, scores, args.rule, args.ipc, embeddings=embeddings,
                                     hard_cut=args.hard_cut, seed=args.seed)
    out = Path(args.out)
    record = {**record, "source": str(args.condensed), "scores": str(args.scores), "score_config": config}
    save(pruned, out)
    write_json(out.with_suffix(".json"), record)
    print(f"kept {len(pruned)} decoded images by {record['rule']} (per class: {record['class_counts']})")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def _ipcs(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise YocoError(f"--ipcs takes comma-separated whole numbers, got {text!r}") from None


@command("ladder")
def cmd_ladder(args: argparse.Namespace) -> int:
    import dataclasses

    from yoco.ladder import LadderConfig, preset_config, quick, run_ladder

    if args.preset:
        cfg = preset_config(args.preset)
    else:
        if not args.dataset:
            raise YocoError("ladder needs --dataset (or a --preset)")
        cfg = LadderConfig(dataset=args.dataset)
    over: dict = {"repeat": args.repeat, "seed": args.seed}
    if args.dataset:
        over["dataset"] = args.dataset
    if args.ipcs:
        over["ipcs"] = _ipcs(args.ipcs)
    if args.rules:
        over["rules"] = tuple(r.strip() for r in args.rules.split(",") if r.strip())
    if args.lbpe_epochs:
        over["lbpe_epochs"] = args.lbpe_epochs
    if args.lbpe_top_k:
        over["lbpe_top_k"] = args.lbpe_top_k
    cfg = dataclasses.replace(cfg, **over)
    if args.quick:
        cfg = quick(cfg)
    cfg = _override_training(cfg, args)
    cs = _ladder_source(args, cfg.dataset)
    doc = run_ladder(cs, cfg, args.out, data_root=args.data_root, workers=args.workers, ray_address=args.ray,
                     force=args.force, device=args.device, progress=not args.quiet)
    _print_ladder(args.out, doc)
    return 0


def _override_training(cfg, args: argparse.Namespace):
    import dataclasses

    ev, dy = cfg.eval, cfg.dynamics
    if args.epochs:
        ev = dataclasses.replace(ev, epochs=args.epochs)
    if args.width:
        ev, dy = dataclasses.replace(ev, width=args.width), dataclasses.replace(dy, width=args.width)
    if args.dynamics_epochs:
        dy = dataclasses.replace(dy, epochs=args.dynamics_epochs)
    if args.dynamics_runs:
        dy = dataclasses.replace(dy, runs=args.dynamics_runs)
    return dataclasses.replace(cfg, eval=ev, dynamics=dy)


def _ladder_source(args: argparse.Namespace, dataset: str):
    from yoco.data.condensed import load

    if args.condensed and args.condense:
        raise YocoError("give either a condensed set or --condense ipc=K, not both")
    if args.condensed:
        return load(args.condensed)
    if not args.condense:
        raise YocoError("ladder needs a condensed set (or --condense ipc=K to condense the real dataset first)")
    from yoco.condense import condense_from_spec

    return condense_from_spec(dataset, args.condense, Path(args.out) / "condensed.safetensors",
                              data_root=args.data_root, device=args.device, progress=not args.quiet)


def _print_ladder(out: str | Path, doc: dict) -> None:
    out = Path(out)
    print((out / "results.md").read_text())
    print(f"plot: {out / 'ladder.png'}   table: {out / 'results.csv'}   all: {out / 'results.json'}")
    if doc["failed_cells"]:
        print(f"{doc['failed_cells']} evaluation(s) failed; see results.md")


@command("demo")
def cmd_demo(args: argparse.Namespace) -> int:
    from yoco.ladder import demo

    doc = demo(args.out, data_root=args.data_root, workers=args.workers, device=args.device, progress=not args.quiet)
    _print_ladder(args.out, doc)
    return 0


@command("condense")
def cmd_condense(args: argparse.Namespace) -> int:
    import dataclasses

    from yoco.condense import PRESETS, condense, preset_for, quick
    from yoco.evaluate import EvalConfig, evaluate_condensed
    from yoco.report import summarize

    real = _real(args)
    if args.preset in (None, "idc"):
        cfg = preset_for(real.name)
    elif args.preset == "cpu-quick":
        cfg = quick(preset_for(real.name))
    else:
        cfg = PRESETS[args.preset]
    over = {k: v for k, v in {"ipc": args.ipc, "factor": args.factor, "iterations": args.iterations,
                              "inner": args.inner, "width": args.width, "seed": args.seed,
                              "checkpoint_every": args.checkpoint_every, "eval_every": args.eval_every}.items()
            if v is not None}
    cfg = dataclasses.replace(cfg, **over)
    eval_fn = None
    if cfg.eval_every:
        quick_eval = EvalConfig(epochs=args.eval_epochs, repeat=1, test_points=1, device=args.device)

        def eval_fn(cs):
            res = evaluate_condensed(cs, real, quick_eval, progress=False)
            return res["last_mean"]

    cs = condense(real, cfg, args.out, device=args.device, resume=args.resume, progress=not args.quiet,
                  eval_fn=eval_fn)
    print(summarize(cs))
    print(f"wrote {args.out}")
    return 0


def _add_dataset(p: argparse.ArgumentParser, required: bool = True) -> None:
    from yoco.data.datasets import dataset_names

    p.add_argument("--dataset", required=required, default=None if required else "fashion-mnist",
                   help=f"real dataset ({', '.join(dataset_names())})")
    p.add_argument("--data-root", default=None, help="folder holding the dataset files (default: per dataset)")


def _add_eval(p: argparse.ArgumentParser) -> None:
    from yoco.models import model_names

    p.add_argument("--model", default=None, help=f"network ({', '.join(model_names())}); default by dataset")
    p.add_argument("--width", type=int, default=None, help="network width (shorter runs for quick looks)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the protocol's table)")
    p.add_argument("--repeat", type=int, default=3, help="independent runs with seeds seed..seed+repeat-1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-points", type=int, default=5, help="how many times to test during training")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render ``--help``)."""
    parser = argparse.ArgumentParser(prog="yoco", description="Condense once, prune to any size (YOCO).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        return p

    p = add("datasets", "list the known real datasets and whether each is found")
    p.add_argument("--dataset", default=None, help="check this dataset at --data-root")
    p.add_argument("--data-root", default=None)

    p = add("show", "summarise a condensed set and write a PNG grid of its images per class")
    p.add_argument("condensed", help="a yoco condensed-set file (.safetensors)")
    p.add_argument("--png", default=None, help="grid image path (default: beside the set)")
    p.add_argument("--per-class", type=int, default=10)

    p = add("import", "convert a published condensed set (IDC, DREAM, MTT, DSA, KIP) to yoco's format")
    p.add_argument("path", help="the published file (data.pt, images_best.pt, res_*.pt, .npz)")
    p.add_argument("--format", required=True, choices=["idc", "dream", "mtt", "dsa", "kip", "yoco"])
    p.add_argument("--dataset", required=True, help="the real dataset it was condensed from")
    p.add_argument("--out", required=True, help="output .safetensors path")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--factor", type=int, default=None, help="multi-formation factor (IDC/DREAM: 2, ImageNet: 3)")
    p.add_argument("--normalized", choices=["yes", "no"], default=None, help="are the stored images standardised")
    p.add_argument("--experiment", type=int, default=0, help="which experiment of a DSA res_*.pt file")
    p.add_argument("--labels", default=None, help="MTT labels_best.pt (default: beside the images)")

    p = add("evaluate", "train fresh networks on a condensed set and test on the real test set")
    p.add_argument("condensed", help="a yoco condensed-set file")
    _add_dataset(p)
    _add_eval(p)
    p.add_argument("--out", default=None, help="result JSON (default: CONDENSED.eval.json)")

    p = add("sample", "take random real images per class as a starting (\"condensed\") set")
    _add_dataset(p)
    p.add_argument("--ipc", type=int, required=True, help="images per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)


    p = add("condense", "condense a real dataset with IDC (gradient matching, multi-formation)")
    _add_dataset(p)
    p.add_argument("--ipc", type=int, required=True, help="stored images per class")
    p.add_argument("--factor", type=int, default=None, help="multi-formation factor (default: preset's, 2)")
    p.add_argument("--preset", default=None, help="idc (published, per dataset), cpu-quick, or a preset name")
    p.add_argument("--iterations", type=int, default=None, help="outer iterations (published: 2000)")
    p.add_argument("--inner", type=int, default=None, help="inner matching steps per iteration (published: 100)")
    p.add_argument("--width", type=int, default=None, help="matching network width (published: 128)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=None, help="outer iterations between checkpoints")
    p.add_argument("--eval-every", type=int, default=None, help="evaluate the current set every N iterations")
    p.add_argument("--eval-epochs", type=int, default=300, help="epochs of those periodic evaluations")
    p.add_argument("--resume", action="store_true", help="continue from OUT.ckpt")
    p.add_argument("--out", required=True)

    p = add("dynamics", "train networks on a condensed set and record every image's outputs per epoch")
    p.add_argument("condensed")
    p.add_argument("--out", required=True, help="dynamics file (.safetensors)")
    p.add_argument("--runs", type=int, default=3, help="independent training runs (scores are averaged)")
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--model", default="convnet3")
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", choices=["train", "clean"], default="train",
                   help="outputs of the augmented training pass (as the paper) or an extra clean pass per epoch")

    p = add("score", "compute every importance score from recorded dynamics into a CSV")
    p.add_argument("dynamics")
    p.add_argument("--out", required=True, help="scores CSV (embeddings for ssp are written beside it)")
    p.add_argument("--lbpe-epochs", type=int, default=None, help="LBPE window E (default: by dataset and method)")
    p.add_argument("--lbpe-top-k", type=int, default=None, help="LBPE top-K epochs (default: by dataset and method)")
    p.add_argument("--el2n-epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)

    p = add("prune", "keep IPC images per class of a condensed set by a rule (yoco = lbpe_easy_balance)")
    p.add_argument("condensed")
    p.add_argument("--scores", required=True, help="CSV written by `yoco score`")
    p.add_argument("--rule", required=True, help=_rules_help())
    p.add_argument("--ipc", type=int, required=True, help="target stored images per class")
    p.add_argument("--hard-cut", type=float, default=None, help="CCS hard-cut ratio (default: the paper's table)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)

    p = add("ladder", "prune one condensed set to every target IPC with every rule, evaluate, tabulate, plot")
    p.add_argument("condensed", nargs="?", default=None, help="the source condensed set")
    p.add_argument("--condense", default=None, metavar="ipc=K", help="condense the real dataset first (IDC)")
    p.add_argument("--dataset", default=None, help="real dataset for testing (default: the preset's)")
    p.add_argument("--data-root", default=None)
    p.add_argument("--preset", default=None, help=_presets_help())
    p.add_argument("--quick", action="store_true", help="short CPU settings for a first look (not the protocol)")
    p.add_argument("--ipcs", default=None, help="target IPCs, e.g. 1,2,5")
    p.add_argument("--rules", default=None, help=_rules_help())
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="evaluation epochs (default: protocol)")
    p.add_argument("--width", type=int, default=None, help="network width for dynamics and evaluation")
    p.add_argument("--dynamics-epochs", type=int, default=None)
    p.add_argument("--dynamics-runs", type=int, default=None)
    p.add_argument("--lbpe-epochs", type=int, default=None)
    p.add_argument("--lbpe-top-k", type=int, default=None)
    p.add_argument("--workers", type=int, default=1, help="evaluations run side by side in local processes")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run evaluations on a Ray cluster")
    p.add_argument("--force", action="store_true", help="reuse an output folder of another ladder")
    p.add_argument("--out", required=True, help="output folder")

    p = add("demo", "the whole job on the shipped Fashion-MNIST condensed set, sized for a 2-core CPU")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--data-root", default=None)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel evaluation processes (default: 2, or 1 on a one-core machine)")
    return parser


def _presets_help() -> str:
    from yoco.ladder import PRESETS

    return "paper experiment: " + ", ".join(PRESETS)


def _rules_help() -> str:
    from yoco.select import rule_names

    return ("a rule <score>[_easy|_hard][_balance|_imbalance] (a bare score takes its classic defaults, e.g. "
            "forgetting, el2n, ccs); for the ladder a comma-separated list. Known: " + ", ".join(rule_names()))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yoco`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except YocoError as exc:
        print(f"yoco: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("yoco: interrupted; finished files are complete, nothing half-written was kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
