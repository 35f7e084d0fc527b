"""The ladder's stages: dynamics (once) -> score table (once) -> for every (rule, target IPC): prune -> cells.

Every stage goes through :func:`yoco.ladder.cache.cached`, so rerunning an interrupted or changed ladder
redoes only what is missing or affected, and a folder is locked while a ladder runs in it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from yoco import protocol
from yoco.data.condensed import CondensedSet, content_sha256, load, save
from yoco.dynamics import Dynamics, load_dynamics, record_dynamics, save_dynamics
from yoco.errors import YocoError
from yoco.evaluate import check_compatible, riding_evaluation
from yoco.files import write_json
from yoco.ladder.cache import FolderLock, cached, claim, key, read_json
from yoco.ladder.cells import Cell, _dataset, execute, write_result
from yoco.ladder.config import DEMO_SET, LadderConfig, demo_config
from yoco.report import write_ladder_reports
from yoco.rules import (
    RANDOM_REFERENCE,
    check_epochs,
    check_set,
    parse_rule,
    prune,
    resolve_options,
    set_meta_of,
)
from yoco.runtime import Runtime, runtime_or_default
from yoco.scores import windows_for
from yoco.scoretable import ScoreTable, build_table, complete_table, load_table
from yoco.selectors import PruneContext

log = logging.getLogger(__name__)
PLAN = "plan.json"  # the ladder's evaluation cells, written before they run, read by report_ladder
MAX_PRUNED_SETS = 2000  # pruned sets one ladder may write (each a file of its own); the paper's tables need < 200


def fingerprint(cs: CondensedSet) -> str:
    """Short content hash of a condensed set (images, labels, metadata): the prefix of its content sha256."""
    return content_sha256(cs)[:16]


def run_ladder(
    cs: CondensedSet,
    cfg: LadderConfig,
    out_dir: str | Path,
    *,
    data_root: str | None = None,
    ray_address: str | None = None,
    force: bool = False,
    runtime: Runtime | None = None,
    batch_cells: bool | None = None,
) -> dict[str, Any]:
    """Run (or resume) the whole ladder into ``out_dir`` and write results.{csv,json,md} and ladder.png.

    Returns the results document; its ``failed`` lists the cells that failed (the rest complete regardless).
    ``runtime`` (:class:`yoco.runtime.Runtime`, made once per command): the device every stage trains on, the
    local worker processes of the evaluations, progress bars, and ``compile``, which trains every network through
    ``torch.compile``; compiled stages are cached under keys of their own, so a folder never mixes compiled and
    eager numbers. ``batch_cells`` trains the cells of one target IPC together (default: on a GPU, in this
    process).
    """
    rt = runtime_or_default(runtime)
    compile = rt.compile
    out = Path(out_dir)
    with FolderLock(out):
        source_sha = content_sha256(cs)
        source_fp = source_sha[:16]  # fingerprint(cs), hashed once
        meta = set_meta_of(cs)
        preflight(cfg, meta, out)  # before the real data is read: a ladder that cannot run costs nothing
        real = _dataset(cfg.dataset, data_root)
        check_compatible(cs, real)
        claim(out, source_fp, cfg.dataset, cfg.to_dict(), force)
        tested = real.digest("test")  # cells are keyed by the test set's content, not by where it was read
        cache = out / "cache"

        revision = _revision(cfg)
        dyn_key = key(source_fp, cfg.dynamics.to_dict(), *_compiled(compile), *revision)
        eval_cfg = cfg.eval.to_dict()
        source_cells: list[Cell] = []
        if cfg.reference:
            src_path = cache / f"source-{source_fp}.safetensors"
            cached(src_path, source_fp, lambda: cs, save, load, fingerprint)
            source_cells = _cells(out, "source", None, src_path, source_fp, cfg, eval_cfg, data_root, rt,
                                  range(cfg.seed, cfg.seed + cfg.evaluations), tested=tested, digest=source_sha)

        def make_dynamics() -> Dynamics:
            log.info("recording training dynamics (%d runs x %d epochs)", cfg.dynamics.runs, cfg.dynamics.epochs)
            todo = [c for c in source_cells if not c.done()]
            riding = riding_evaluation(cs, real, dataclasses.replace(cfg.eval, repeat=1), cfg.dynamics.networks(),
                                       "dynamics", rt, [c.seed for c in todo]) if todo else None
            start = time.perf_counter()
            dyn = record_dynamics(cs, cfg.dynamics, rt, on_epoch=riding)
            dyn.config["cache_key"] = dyn_key
            dyn.config["seconds"] = time.perf_counter() - start  # as each cell records its own
            log.info("dynamics recorded in %.1f s", dyn.config["seconds"])
            if riding is not None:  # the unpruned source's cells are these very networks, tested on the way
                per_run = dyn.config["seconds"] / cfg.dynamics.runs
                results = riding.results(per_run, compile)
                for cell in todo:
                    if cell.seed in results:
                        write_result(cell, results[cell.seed], per_run, from_dynamics=True)
                log.info("source cells of seeds %s read off the dynamics runs", sorted(results))
            return dyn

        loaded: list[Dynamics] = []

        def dynamics() -> Dynamics:  # loaded (or recorded) at most once, and only when a score table needs it
            if not loaded:
                loaded.append(cached(cache / f"dynamics-{dyn_key}.safetensors", dyn_key, make_dynamics,
                                     save_dynamics, load_dynamics, lambda d: d.config.get("cache_key")))
            return loaded[0]

        # The windows follow from the source and the dynamics' length, so a folder whose score tables are made
        # (e.g. committed without its large dynamics file) resumes without the dynamics.
        windows = score_windows(cfg, meta)
        score_kw = {**windows, "seed": cfg.subset_seed}
        needs = [parse_rule(r).needs for r in cfg.rules]
        columns = {"scores": [c for n in needs for c in n[0]], "features": [f for n in needs for f in n[1]]}
        tables = [_score_table(cache, dyn_key, score_kw, dynamics, run if cfg.separate else None, columns)
                  for run in range(cfg.set_runs)]

        cells: list[Cell] = list(source_cells)
        for rule in cfg.rules:
            parsed = parse_rule(rule)
            name = parsed.name
            subsets = cfg.random_subsets if name == RANDOM_REFERENCE else 1
            for ipc in cfg.ipcs:
                # the method's resolved options (CCS's hard cut and pick) key its sets, so a changed default
                # never reuses a set made under the old one; rules without options keep their older keys, and an
                # option of another method (herding's pick) leaves this rule's sets and cells as they were
                own = resolve_options(parsed, cfg.options, PruneContext(cs.meta.dataset, cs.meta.ipc, ipc))
                given = {k: v for k, v in cfg.options.items() if k in own}
                for run, (table, table_key) in enumerate(tables):
                    # a subset that reads no score (random) is keyed by the source alone, so another dynamics seed
                    # or score window reruns only the cells that read them
                    origin = table_key if parsed.reads_dynamics else source_fp
                    for sub in range(cfg.subset_seed + run * subsets, cfg.subset_seed + (run + 1) * subsets):
                        pkey = key(origin, name, ipc, given, sub, *([own] if own else []))
                        path = out / "pruned" / f"{name}-ipc{ipc}-sub{sub}-{pkey}.safetensors"
                        scored = table.config.get("dynamics_sha256") if parsed.reads_dynamics else None
                        pruned = cached(path, pkey, partial(_pruned, cs, table, name, ipc, cfg, sub, pkey, scored),
                                        save, load, partial(_pruned_key, scored=scored))
                        # the run is part of a cell's name only where it chose the set (a random subset's seed
                        # already names it), so the same subset and seed is the same cell file in either mode
                        first = cfg.seed + run * cfg.repeat
                        cells += _cells(out, name, ipc, path, pkey, cfg, eval_cfg, data_root, rt,
                                        range(first, first + cfg.repeat), sub,
                                        run if cfg.separate and parsed.reads_dynamics else None, tested=tested,
                                        digest=content_sha256(pruned))

        # smallest target IPC first and the unpruned source last: a ladder stopped part-way leaves whole rows
        # (every rule at the small IPCs) rather than every IPC of a few rules
        todo = sorted((c for c in cells if not c.done()), key=lambda c: (c.ipc is None, c.ipc or 0))
        log.info("%d evaluation cells, %d already done, %d to run", len(cells), len(cells) - len(todo), len(todo))
        if batch_cells is None:
            batch_cells = rt.device.type == "cuda" and rt.workers == 1 and not ray_address
        report_config = {**cfg.to_dict(), "source": cs.source, "source_fingerprint": source_fp, "test_sha256": tested,
                         "source_sha256": source_sha, "departures": cfg.departures(), "compiled": compile,
                         "score_windows": windows,  # the windows used, where the config leaves them to the protocol
                         # where the random subsets' images come from: DD-Ranking's IOR exists only for real ones
                         "random_reference": "real" if cs.meta.method == "random-real" else "condensed"}
        write_json(out / PLAN, {"config": report_config,
                                "cells": [{"rule": c.rule, "ipc": c.ipc, "seed": c.seed, "subset": c.subset,
                                           "run": c.run, "key": c.key, "file": Path(c.out).name} for c in cells]})
        execute(todo, rt, ray_address, batch_cells=batch_cells)
        doc = write_ladder_reports(out, [c.result() for c in cells], report_config)
    return doc


def preflight(cfg: LadderConfig, meta: Mapping[str, Any], out: str | Path) -> None:
    """Refuse, before any work, a ladder that cannot run on a set with this metadata (``rules.set_meta_of``; for
    ``--condense``, what the condensation will make): target IPCs not below the source's, a rule that cannot cut
    the set (``mdc_prefix`` on a set not MDC's), dynamics shorter than a rule's or a score's window, more pruned
    sets than a folder allows. :func:`run_ladder` runs it too, so a set given directly gets the same checks."""
    source_ipc = meta.get("ipc")
    bad = [k for k in cfg.ipcs if source_ipc and k >= source_ipc]
    if bad:
        raise YocoError(f"{meta.get('source') or 'the source set'}: target IPCs {bad} must be below the source IPC "
                        f"{source_ipc}")
    for rule in cfg.rules:
        parsed = parse_rule(rule)
        check_set(parsed, meta)
        for ipc in cfg.ipcs:
            check_epochs(parsed, cfg.options, PruneContext(str(meta.get("dataset", "")), source_ipc, ipc),
                         cfg.dynamics.epochs)
    score_windows(cfg, meta, warn=False)
    planned = cfg.pruned_sets()
    if planned > MAX_PRUNED_SETS:
        raise YocoError(f"{out}: the ladder would write {planned} pruned sets, more than the {MAX_PRUNED_SETS} yoco "
                        "allows in one folder; use fewer rules, IPCs, dynamics runs or --random-subsets")


def score_windows(cfg: LadderConfig, meta: Mapping[str, Any], *, warn: bool = True) -> dict[str, int]:
    """The score windows (LBPE's E and K, EL2N's epochs) a ladder uses on a set with this metadata: the asked ones,
    else the published ones for its dataset and method, shrunk to the dynamics' length where asked for nothing
    (with a warning, unless ``warn`` is False)."""
    return windows_for(str(meta.get("dataset", "")), str(meta.get("method", "")), cfg.dynamics.epochs,
                       str(meta.get("source", "")), lbpe_epochs=cfg.lbpe_epochs, lbpe_top_k=cfg.lbpe_top_k,
                       el2n_epochs=cfg.el2n_epochs, warn=warn)


def report_ladder(out_dir: str | Path) -> dict[str, Any]:
    """Tabulate the cells finished so far in a ladder folder (running, stopped part-way, or done).

    Reads the plan the last :func:`run_ladder` wrote there and writes the same results.{csv,json,md} and ladder.png
    from the cells that have a result; while cells are missing, the table says how many of the planned ones it
    holds and each row counts only its finished seeds.
    """
    out = Path(out_dir)
    plan = read_plan(out)
    results = []
    for c in plan["cells"]:
        cell = Cell(c["rule"], c["ipc"], c["seed"], "", "", None, {}, c["key"], str(out / "cells" / c["file"]),
                    subset=c["subset"], run=c.get("run"))
        if (res := cell.recorded()) is not None:
            results.append(res)
    if not results:
        raise YocoError(f"{out}: none of the {len(plan['cells'])} planned evaluation cells has finished yet")
    return write_ladder_reports(out, results, plan["config"], planned=len(plan["cells"]))


def read_plan(folder: Path) -> dict[str, Any]:
    """The ladder plan in ``folder``, checked; a one-line error naming what is wrong when there is none."""
    if folder.exists() and not folder.is_dir():
        raise YocoError(f"{folder}: not a folder; give the ladder's output folder (its --out)")
    plan = read_json(folder / PLAN)
    if plan is None or not isinstance(plan.get("cells"), list):
        raise YocoError(f"{folder / PLAN}: no ladder plan here (missing or unreadable); a ladder writes it when its "
                        "evaluations start")
    _check_plan(plan, folder / PLAN)
    return plan


def _check_plan(plan: dict[str, Any], path: Path) -> None:
    """Refuse a plan whose cells or config are not of the kinds a ladder writes (a damaged or hand-edited file)."""
    def whole(v: Any, none: bool = False) -> bool:
        return (none and v is None) or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63)

    config = plan.get("config")
    kinds = {"dataset": str, "departures": list, "compiled": bool, "score_runs": str, "dynamics": dict}
    bad = [k for k, kind in kinds.items() if isinstance(config, dict) and k in config and not isinstance(config[k], kind)]
    if not isinstance(config, dict) or bad or not all(isinstance(d, str) for d in config.get("departures", [])) or (
            "repeat" in config and not whole(config["repeat"])) or (
            not whole((config.get("dynamics") or {}).get("runs", 0))):
        raise YocoError(f"{path}: damaged ladder plan (its config{' field ' + bad[0] if bad else ''} is not what a "
                        "ladder writes); rerun the ladder to write it again")
    for i, c in enumerate(plan["cells"]):
        if not (isinstance(c, dict) and isinstance(c.get("rule"), str) and whole(c.get("ipc"), none=True)
                and whole(c.get("seed")) and whole(c.get("subset"), none=True) and whole(c.get("run"), none=True)
                and isinstance(c.get("key"), str) and isinstance(c.get("file"), str)
                and c["file"] == Path(c["file"]).name and c["file"] not in ("", ".", "..")):
            raise YocoError(f"{path}: damaged ladder plan (cell {i} is not what a ladder writes); rerun the ladder to "
                            "write it again")


def _compiled(compile: bool) -> list[str]:
    """The cache-key marker of compiled stages: none when eager, so eager keys stay those of folders made before
    the option existed."""
    return ["compiled"] if compile else []


def _revision(cfg: LadderConfig) -> tuple[str, ...]:
    """The key marker of stages whose numbers changed when yoco began running ImageNet as IDC does (ResNet-AP-10
    rebuilt as IDC's, seeded augmented final passes for entropy and SSP, epochs of pruned sets): none elsewhere, so
    the keys of every other folder stay what they were."""
    models = {cfg.dynamics.model or protocol.eval_model(cfg.dataset), cfg.eval.model or protocol.eval_model(cfg.dataset)}
    return ("imagenet-as-idc",) if protocol.is_imagenet(cfg.dataset) or "resnet10_ap" in models else ()


def _keyed(eval_cfg: dict[str, Any], dataset: str) -> dict[str, Any]:
    """The evaluation config as a cell's key reads it: ``pruned_epochs`` changes numbers on ImageNet subsets only,
    so elsewhere it is left out and a folder made before it existed keeps its cells."""
    if protocol.is_imagenet(dataset):
        return eval_cfg
    return {k: v for k, v in eval_cfg.items() if k != "pruned_epochs"}


def _score_table(cache: Path, dyn_key: str, score_kw: dict[str, Any], dynamics: Callable[[], Dynamics],
                 run: int | None, columns: dict[str, list[str]]) -> tuple[ScoreTable, str]:
    """The score table of one dynamics run (``run``), or of the scores averaged over every run (None), and its key.

    The averaged table keeps the key it had before per-run tables existed, so older folders reuse it. A cached
    table that lacks a column the ladder's rules read (a method added since), or holds an older version of it,
    gets that column computed and added (:func:`yoco.scoretable.complete_table`); its other columns stay, and so
    does every set and cell made from them.
    """
    table_key = key(dyn_key, score_kw) if run is None else key(dyn_key, score_kw, "run", run)
    path = cache / (f"scores-{table_key}.safetensors" if run is None else f"scores-run{run}-{table_key}.safetensors")

    def source() -> Dynamics:
        return dynamics() if run is None else dynamics().run(run)

    def make() -> ScoreTable:
        return build_table(source(), **score_kw, config={"dynamics": dyn_key, "run": run, "cache_key": table_key})

    table = cached(path, table_key, make, lambda t, p: t.save(p), load_table, lambda t: t.config.get("cache_key"))
    table, added = complete_table(table, source, **columns)
    if added:
        log.info("%s: computed %s, which the table did not hold in their current version", path, ", ".join(added))
        table.save(path)
    return table, table_key


def _pruned(cs: CondensedSet, table: ScoreTable, rule: str, ipc: int, cfg: LadderConfig, subset: int,
            pkey: str, scored: str | None) -> CondensedSet:
    pruned, _ = prune(cs, table, rule, ipc, seed=subset, **cfg.options)
    pruned.meta.extra["cache_key"] = pkey
    if scored:  # the dynamics its scores came from, by content (keys name settings only)
        pruned.meta.extra["dynamics_sha256"] = scored
    return pruned


def _pruned_key(pruned: CondensedSet, *, scored: str | None) -> str | None:
    """A cached pruned set's key, or None when it was chosen by scores of other dynamics than the table's now (made
    again then); a set made before the digest was recorded is taken as it is."""
    made_from = pruned.meta.extra.get("dynamics_sha256")
    return pruned.meta.extra.get("cache_key") if made_from in (None, scored) else None


def _cells(out: Path, rule: str, ipc: int | None, set_path: Path, set_key: str, cfg: LadderConfig,
           eval_cfg: dict[str, Any], data_root: str | None, rt: Runtime, seeds: range,
           subset: int | None = None, run: int | None = None, *, tested: str, digest: str = "") -> list[Cell]:
    cells = []
    for s in seeds:
        # keyed by the kind of device the cell trains on, so `auto` and `cpu` on a CPU are the same cell, and by the
        # test set's content, so another --data-root with other test data never reuses a cell (cells of folders made
        # before the test set was in the key are evaluated again, once)
        k = key(set_key, _keyed(eval_cfg, cfg.dataset), rt.device.type, s, *_compiled(rt.compile),
                *_revision(cfg), {"test_sha256": tested})
        cell = Cell(rule, ipc, s, str(set_path), cfg.dataset, data_root, eval_cfg, k, "", subset=subset,
                    runtime=rt.but(progress=False), run=run, test_sha256=tested, set_sha256=digest)
        cells.append(dataclasses.replace(cell, out=str(out / "cells" / f"{cell.name}-{k}.json")))
    return cells


def demo(out: str | Path, *, data_root: str | None = None, runtime: Runtime | None = None) -> dict[str, Any]:
    """Run the demo ladder on the shipped condensed Fashion-MNIST set (random real images if it is absent)."""
    if DEMO_SET.exists():
        cs = load(DEMO_SET)
    else:
        from yoco.data.subset import random_real_subset

        log.warning("shipped condensed set %s not found; using 10 random real images per class", DEMO_SET)
        cs = random_real_subset(_dataset("fashion-mnist", data_root), 10, seed=0)
    return run_ladder(cs, demo_config(), out, data_root=data_root, runtime=runtime)
