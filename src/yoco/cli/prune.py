"""Commands that score, prune and tabulate: ``score``, ``prune``, ``ladder``, ``report``, ``demo``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from yoco import protocol
from yoco.cli.base import (
    BOUNDED,
    Handler,
    _compile,
    _config_copy,
    _device,
    _inputs,
    _ipcs,
    _keep_config,
    _names,
    _option,
    _precision,
    _pruned_epochs,
    _rules_help,
    _runtime,
    _seed,
    command,
    given,
    log,
)
from yoco.errors import YocoError

if TYPE_CHECKING:
    from yoco.data.condensed import CondensedSet
    from yoco.ladder import LadderConfig
    from yoco.runtime import Runtime


@command("score", "compute every importance score from recorded dynamics into a score table")
def _score(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("dynamics", help="a dynamics file written by `yoco dynamics`")
    p.add_argument("--out", required=True, help="score table (.safetensors: scores, labels and SSP's features)")
    p.add_argument("--csv", default=None, help="also export the scores as a readable CSV")
    p.add_argument("--lbpe-epochs", type=BOUNDED["epochs"], default=None,
                   help="LBPE window E (default: the published one for the set's dataset and method)")
    p.add_argument("--lbpe-top-k", type=BOUNDED["epochs"], default=None, help="LBPE top-K epochs (default: as E)")
    p.add_argument("--el2n-epochs", type=BOUNDED["epochs"], default=None,
                   help=f"EL2N window (default: {protocol.EL2N_EPOCHS})")
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


PRUNE_DIGESTS = {  # what each sha256 of a --record is the digest of
    "source_sha256": "the condensed set pruned, by content (yoco.data.condensed.content_sha256)",
    "pruned_sha256": "the pruned set written, by content",
    "scores_file_sha256": "the --scores file as stored (its bytes)",
}


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
        from yoco.data.condensed import content_sha256, load, save
        from yoco.files import check_outputs, file_sha256, write_json
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
            digests = {"source_sha256": content_sha256(cs), "pruned_sha256": content_sha256(pruned),
                       **({"scores_file_sha256": file_sha256(a.scores)} if a.scores else {})}
            write_json(a.record, {**record, "source": str(a.condensed), "pruned": str(a.out), **digests,
                                  "digests": {k: PRUNE_DIGESTS[k] for k in digests},
                                  "provenance": pruned.meta.extra["provenance"]})
            print(f"wrote {a.record}")
        return 0

    return run


@command("ladder", "prune one condensed set to every target IPC with every rule, evaluate, tabulate, plot")
def _ladder(p: argparse.ArgumentParser) -> Handler:
    from yoco.dynamics import DynamicsConfig
    from yoco.ladder import DEFAULT_RULES, PRESETS, SCORE_RUNS, LadderConfig
    from yoco.rules import options_help

    p.add_argument("condensed", nargs="?", default=None, help="the source condensed set")
    p.add_argument("--condense", default=None, metavar="ipc=K,...",
                   help="condense the real dataset first: method=idc (default) or mdc, preset=NAME, mdc_period, "
                   "mdc_class_wise, and the settings of `yoco condense` (e.g. ipc=10,iterations=200)")
    p.add_argument("--dataset", default=None, metavar="NAME",
                   help="real dataset for testing (default: the preset's, else the one the condensed set's metadata "
                   "names)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="folder holding the dataset files")
    p.add_argument("--preset", default=None, choices=list(PRESETS), help="a paper experiment (dataset, IPCs, window)")
    p.add_argument("--quick", action="store_true", help="a first look on a CPU, NOT the protocol: width 64, dynamics "
                   "2 x 150 epochs, evaluation 300 epochs with 2 test points, LBPE window shrunk to fit")
    p.add_argument("--ipcs", type=_ipcs, default=None,
                   help=f"target IPCs (default: the preset's, or {','.join(map(str, LadderConfig.ipcs))})")
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
                   help=f"training seeds per pruned set (default: {protocol.PER_RUN_REPEATS} with separate runs, "
                   f"YOCO's --repeat 1; {protocol.EVAL_REPEATS} averaged)")
    _seed(p, "first training seed", LadderConfig.seed)
    _seed(p, "seed of the rules that draw at random: random, ssp, ccs, kcenter, dual", LadderConfig.subset_seed,
          "--subset-seed")
    p.add_argument("--random-subsets", type=BOUNDED["runs"], default=None,
                   help="random balanced subsets (per dynamics run with separate runs; subset seeds from "
                   "--subset-seed) that the gain-over-random column is measured against (default: "
                   f"{LadderConfig.random_subsets})")
    p.add_argument("--epochs", type=BOUNDED["epochs"], default=None, help="evaluation epochs (default: the protocol's)")
    _pruned_epochs(p)
    p.add_argument("--width", type=BOUNDED["width"], default=None, help="network width for dynamics and evaluation")
    p.add_argument("--dynamics-epochs", type=BOUNDED["epochs"], default=None,
                   help=f"default: {protocol.DYNAMICS_EPOCHS}")
    p.add_argument("--dynamics-runs", type=BOUNDED["runs"], default=None, help=f"default: {protocol.DYNAMICS_RUNS}")
    _seed(p, "first seed of the dynamics runs, apart from the training seeds: another one measures how much of a "
          "score-based rule's result is its scores' noise", DynamicsConfig.seed, "--dynamics-seed")
    p.add_argument("--lbpe-epochs", type=BOUNDED["epochs"], default=None, help="default: the published window for the source")
    p.add_argument("--lbpe-top-k", type=BOUNDED["epochs"], default=None, help="default: the published window for the source")
    p.add_argument("--workers", type=BOUNDED["workers"], default=1, help="evaluations run side by side in local processes, the CPU's "
                   "threads shared among them; the dynamics train before them on this process's threads "
                   "(torch's default, or OMP_NUM_THREADS)")
    p.add_argument("--ray", default=None, metavar="ADDRESS", help="run evaluations on a Ray cluster")
    p.add_argument("--force", action="store_true", help="reuse an output folder that holds another ladder")
    p.add_argument("--out", required=True, help="output folder")
    _device(p)
    _compile(p)
    _precision(p)

    def run(a: argparse.Namespace) -> int:
        from yoco.data.condensed import load
        from yoco.ladder import build_config, check_folder, run_ladder, shipped_set

        copies = _config_copy(a, Path(a.out), folder=True)
        given_set = None
        if a.condensed and not a.condense and not a.dataset and not a.preset:  # the set names its dataset
            given_set = load(a.condensed)
            a.dataset = given_set.meta.dataset
        cfg = build_config(preset=a.preset, dataset=a.dataset, quick_look=a.quick, ipcs=a.ipcs, rules=a.rules,
                           repeat=a.repeat, seed=a.seed, subset_seed=a.subset_seed,
                           random_subsets=a.random_subsets, score_runs=a.score_runs, lbpe_epochs=a.lbpe_epochs,
                           lbpe_top_k=a.lbpe_top_k, options=dict(a.option) or None, eval_epochs=a.epochs,
                           width=a.width, dynamics_epochs=a.dynamics_epochs, dynamics_runs=a.dynamics_runs,
                           dynamics_seed=a.dynamics_seed, precision=a.precision, pruned_epochs=a.pruned_epochs)
        a.dataset = cfg.dataset  # the preset's, when only a preset is given: its files are inputs too
        if a.preset and not a.condensed and not a.condense:  # the preset's shipped set, an input like any other
            a.condensed = str(shipped_set(a.preset))
        check_folder(a.out, _inputs(a, a.condensed), copies)
        rt = _runtime(a)
        cs = given_set or _ladder_source(a, cfg, rt)
        doc = run_ladder(cs, cfg, a.out, data_root=a.data_root, ray_address=a.ray, force=a.force, runtime=rt)
        _keep_config(a, copies)
        return _print_ladder(a.out, doc)

    return run


def _ladder_source(a: argparse.Namespace, cfg: LadderConfig, rt: Runtime) -> CondensedSet:
    """The ladder's source: the set given, or the one ``--condense`` makes, after the ladder's checks on what that
    set will be (its dataset, method and IPC), so a ladder that cannot run costs no condensation."""
    from yoco.data.condensed import load
    from yoco.ladder import preflight
    from yoco.protocol import PRECISION

    if a.condensed and a.condense:
        raise YocoError("give either a condensed set or --condense ipc=K, not both")
    if a.condensed:
        return load(a.condensed)
    if not a.condense:
        raise YocoError("ladder needs a condensed set (or --condense ipc=K to condense the real dataset first, or a "
                        "--preset whose set yoco ships)")
    from yoco.condense import checkpoint_path, condense_from_spec, parse_condense_spec

    spec = a.condense  # the ladder's precision condenses too, unless the spec says otherwise
    if a.precision != PRECISION and "precision" not in spec:
        spec += f",precision={a.precision}"
    out = Path(a.out) / "condensed.safetensors"
    plan = parse_condense_spec(cfg.dataset, spec)
    preflight(cfg, plan.set_meta(str(out)), a.out)
    if out.is_file():  # a rerun of a stopped ladder: the set it condensed is its source, never condensed again
        cs = load(out)
        differ = plan.differences(cs)
        if differ:
            raise YocoError(f"{out} was condensed with other settings than --condense {a.condense} "
                            f"({'; '.join(differ)}); give another --out, or delete it to condense again")
        log.info("%s: the set this ladder condensed on an earlier run, reused", out)
        return cs
    # a condensation stopped part-way continues from its checkpoint (refused if another configuration wrote it)
    return condense_from_spec(cfg.dataset, plan, out, data_root=a.data_root, runtime=rt,
                              resume=checkpoint_path(out).is_file())


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
    p.add_argument("--html", action="store_true",
                   help="also write one self-contained HTML page: the table, the plot and, for every rule and IPC, "
                   "the source set's images with the kept ones shown and the dropped ones faded")
    p.add_argument("--html-out", default=None, metavar="PATH",
                   help="where the HTML page goes; implies --html (default: FOLDER/report.html)")

    def run(a: argparse.Namespace) -> int:
        from yoco.ladder import page_path, report_ladder, write_page

        html = a.html or a.html_out is not None
        if html:  # refused before the report is rewritten when it would overwrite what the report reads
            page_path(a.folder, a.html_out)
        doc = report_ladder(a.folder)
        if doc["cells"] < doc["planned_cells"]:
            print(f"{doc['cells']} of {doc['planned_cells']} cells finished", file=sys.stderr)
        page = write_page(a.folder, doc, out=a.html_out) if html else None
        status = _print_ladder(a.folder, doc)
        if page is not None:
            print(f"page: {page} ({page.stat().st_size / 1024:.0f} kB)")
        return status

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

        doc = demo(a.out, data_root=a.data_root, runtime=_runtime(a))
        return _print_ladder(a.out, doc)

    return run
