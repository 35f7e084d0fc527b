"""Human-readable views of results: image grids and text summaries of condensed sets.

Every file is written atomically, so an interrupted report never leaves a truncated PNG behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from yoco.data.condensed import CondensedSet
from yoco.errors import YocoError
from yoco.files import atomic_write, write_json, write_text
from yoco.provenance import provenance
from yoco.rules import RANDOM_REFERENCE, YOCO_RULE

logger = logging.getLogger(__name__)

GRID_PAD = 2  # pixels of white between cells, so neighbouring synthetic images stay distinguishable


def save_image_grid(
    cs: CondensedSet,
    path: str | Path,
    per_class: int = 10,
    class_names: list[str] | None = None,
) -> Path:
    """Write a PNG with one row per class showing its first ``per_class`` stored images in pixel space.

    Images are shown as stored (multi-formation images keep their tiles) and clamped to ``[0, 1]``.
    With ``class_names`` each row is labelled on the left. Returns the path written.
    """
    if per_class < 1:
        raise YocoError(f"per_class must be at least 1, got {per_class}")
    if class_names is not None and len(class_names) != cs.num_classes:
        raise YocoError(f"{len(class_names)} class names given for {cs.num_classes} classes")
    _, c, h, _ = cs.images.shape
    if c not in (1, 3):
        raise YocoError(f"{cs.source}: can only draw grayscale or RGB images, got {c} channels")

    cols = min(per_class, max(cs.class_counts()))
    font, margin = None, 0
    if class_names:
        font = ImageFont.load_default(size=max(8, min(14, h // 2)))
        margin = int(max(font.getlength(name) for name in class_names)) + 2 * GRID_PAD
    image = grid_image(cs.pixels(), cs.labels, cs.num_classes, cols, margin)
    if font is not None and class_names:
        draw = ImageDraw.Draw(image)
        for k, name in enumerate(class_names):
            draw.text((GRID_PAD, GRID_PAD + k * (h + GRID_PAD) + h / 2), name, fill=0, font=font, anchor="lm")
    out = atomic_write(path, lambda p: image.save(p, format="PNG"))
    logger.info("wrote a %dx%d image grid of %s to %s", cs.num_classes, cols, cs.source, out)
    return out


def grid_image(pixels: torch.Tensor, labels: torch.Tensor, num_classes: int, per_class: int,
               margin: int = 0) -> Image.Image:
    """Pixel-space images ``[N, C, H, W]`` (C 1 or 3, clamped to ``[0, 1]``) as one picture: row ``k`` holds the
    first ``per_class`` images of class ``k`` in index order, each cell ``H x W`` with :data:`GRID_PAD` pixels of
    white around it, after ``margin`` blank pixels on the left. Image ``j`` of a row starts at
    ``(margin + GRID_PAD + j * (W + GRID_PAD), GRID_PAD + k * (H + GRID_PAD))``."""
    _, c, h, w = pixels.shape
    pix = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    canvas = np.full((GRID_PAD + num_classes * (h + GRID_PAD), margin + GRID_PAD + per_class * (w + GRID_PAD), c), 255,
                     dtype=np.uint8)
    for k in range(num_classes):
        idx = torch.nonzero(labels == k).flatten()[:per_class].tolist()
        y = GRID_PAD + k * (h + GRID_PAD)
        for j, i in enumerate(idx):
            x = margin + GRID_PAD + j * (w + GRID_PAD)
            canvas[y : y + h, x : x + w] = pix[i]
    return Image.fromarray(canvas[..., 0] if c == 1 else canvas)  # uint8: 2-D is "L", HxWx3 is "RGB"


def summarize(cs: CondensedSet) -> str:
    """A few lines describing a condensed set: provenance, storage, sizes, class balance and pixel range."""
    m = cs.meta
    n, c, h, w = cs.images.shape
    f = m.factor
    counts = cs.class_counts()
    if len(set(counts)) == 1:
        per_class = f"{counts[0]} stored image(s) in each of {len(counts)} classes"
    else:
        per_class = f"min {min(counts)}, max {max(counts)} stored: {counts}"
    if m.normalized:
        storage = f"normalised (mean {_floats(m.mean)}, std {_floats(m.std)})"
    else:
        storage = "pixel space [0, 1]"
    recipe = m.extra.get("recipe") if isinstance(m.extra.get("recipe"), dict) else {}
    lines = [
        f"source:    {cs.source}",
        f"dataset:   {m.dataset} ({m.num_classes} classes)",
        f"method:    {m.method}, ipc {m.ipc}, factor {f}",
        f"stored:    {n} images of {c}x{h}x{w}, {storage}",
        f"decoded:   {n * f * f} images ({n} x {f}^2)",
        f"per class: {per_class}",
    ]
    if "zca" in recipe:  # whitened values are not pixels: un-standardising them as mean/std data means nothing
        lines.append(f"values:    ZCA-whitened (no pixel statistics): min {float(cs.images.min()):.3f}, "
                     f"max {float(cs.images.max()):.3f}")
    else:
        pix = cs.pixels()
        lines.append(f"pixels:    min {float(pix.min()):.3f}, max {float(pix.max()):.3f}, mean {float(pix.mean()):.3f}")
    if cs.soft is not None:
        top = cs.soft.max(1).values
        lines.append(f"labels:    soft ({m.extra.get('soft_labels', 'label distributions')}); the arg-max class holds "
                     f"{float(top.mean()):.2f} of the mass on average")
    else:
        lines.append("labels:    hard (class indices)")
    lines.append(f"recipe:    {describe_recipe(recipe)}")
    made = m.extra.get("provenance")
    if isinstance(made, dict):
        lines.append(f"made by:   yoco {made.get('yoco')}, torch {made.get('torch')}, {made.get('device')}, "
                     f"{made.get('precision')}, {made.get('utc')}")
    return "\n".join(lines)


def describe_recipe(recipe: dict) -> str:
    """The evaluation recipe a set was published with, in words (the protocol's when it has none)."""
    parts = []
    if "lr" in recipe:
        parts.append(f"learned learning rate {recipe['lr']:g}" + (f" ({recipe['lr_file']})" if "lr_file" in recipe
                                                                  else ""))
    if "zca" in recipe:
        eps = recipe["zca"].get("eps") if isinstance(recipe["zca"], dict) else None
        parts.append("ZCA whitening" + (f" (eps {eps:g}): the test set is whitened the same way" if eps is not None
                                        else ""))
    return "; ".join(parts) if parts else "the protocol's (no learned learning rate, no ZCA)"


def _floats(values: tuple[float, ...] | None) -> str:
    return "?" if values is None else "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def accuracy_line(result: dict) -> str:
    """``last 78.44 ± 0.22 (best 78.59 ± 0.42)`` of an evaluation result; one run reads ``(1 run)``."""
    n = len(result["runs"])
    return (f"last {_fmt(result['last_mean'], result['last_std'], n)}  "
            f"(best {_fmt(result['best_mean'], result['best_std'], n)})")


def summarize_cells(cells: list[dict], real_reference: bool = False) -> list[dict]:
    """Group cell results by (rule, ipc): each repeat, mean and std (np.std; None for one repeat) of last and best
    accuracy, and the gain of the last accuracy over the random balanced subsets at the same IPC.

    ``real_reference``: the random subsets are random *real* training images (the source set is random real images),
    so each row also gets ``ior``, DD-Ranking's improvement over random: best accuracy minus the random subsets'
    best accuracy (docs/formats.md says where the two definitions differ)."""
    groups: dict[tuple[str, int | None], list[dict]] = {}
    for c in cells:
        groups.setdefault((c["rule"], c["ipc"]), []).append(c)
    rows = []
    for (rule, ipc), cs in groups.items():
        ok = [c for c in cs if c["status"] == "ok"]
        last = np.array([c["last"] for c in ok]) if ok else np.array([])
        best = np.array([c["best"] for c in ok]) if ok else np.array([])
        rows.append({
            "rule": rule, "ipc": ipc, "repeats": [c["last"] for c in ok], "seeds": [c["seed"] for c in ok],
            "subsets": sorted({c.get("subset") for c in ok if c.get("subset") is not None}),
            "runs": sorted({c.get("run") for c in ok if c.get("run") is not None}),
            "last_mean": float(last.mean()) if ok else None, "last_std": float(last.std()) if len(ok) > 1 else None,
            "best_mean": float(best.mean()) if ok else None, "best_std": float(best.std()) if len(ok) > 1 else None,
            "failed": [f"seed {c['seed']}: {c['error']}" for c in cs if c["status"] != "ok"],
        })
    reference = {r["ipc"]: r for r in rows if r["rule"] == RANDOM_REFERENCE and r["last_mean"] is not None}
    for r in rows:
        ref = reference.get(r["ipc"])
        r["gain_over_random"] = None if ref is None or r["last_mean"] is None else r["last_mean"] - ref["last_mean"]
        r["random_std"] = None if ref is None else ref["last_std"]
        r["ior"] = (r["best_mean"] - ref["best_mean"] if real_reference and ref is not None
                    and r["best_mean"] is not None else None)
    return rows


def write_ladder_reports(out: str | Path, cells: list[dict], config: dict, planned: int | None = None) -> dict:
    """Write ``results.json``, ``results.csv``, ``results.md`` and ``ladder.png`` for a ladder's cells.

    Returns the JSON document (rows of rule x IPC with each repeat, mean and std, plus the config); ``failed``
    names every cell that failed. A ladder run with settings other than the protocol's (``config["departures"]``)
    says so in the table's heading and the plot's title; so does a partial table (``planned`` cells, fewer given).
    """
    out = Path(out)
    real_reference = config.get("random_reference") == "real"
    rows = summarize_cells(cells, real_reference)
    failed = [f"{c['rule']} IPC {c['ipc']} seed {c['seed']}" for c in cells if c["status"] != "ok"]
    departures = list(config.get("departures", []))
    partial = planned is not None and len(cells) < planned
    doc = {"rows": rows, "config": config, "cells": len(cells), "failed_cells": len(failed), "failed": failed,
           "planned_cells": planned if planned is not None else len(cells),
           "provenance": provenance(precision=(config.get("eval") or {}).get("train", {}).get("precision"))}
    head = f"**Partial:** {len(cells)} of {planned} planned cells; each row counts the seeds finished so far.\n\n"
    write_json(out / "results.json", doc)
    write_text(out / "results.csv", ladder_csv(rows))
    notes = ["Networks trained through torch.compile (not bit-identical to eager training)."] if config.get(
        "compiled") else []
    if config.get("options"):  # a rule reads otherwise under another option, and its name does not say so
        notes.append(f"Rule options given (`--option`, each for the method that owns it): "
                     f"{options_text(config['options'])}.")
    write_text(out / "results.md", (head if partial else "") + "".join(n + "\n\n" for n in notes)
               + ladder_markdown(rows, departures, spread_of(config), real_reference))
    title = ladder_title(config) + (f" ({len(cells)} of {planned} cells)" if partial else "")
    save_ladder_plot(rows, out / "ladder.png", title=title)
    return doc


def ladder_title(config: dict) -> str:
    """The plot's title: the dataset, whether the settings depart from the protocol, and what a reader must see at
    a glance (averaged-scores cells, a precision other than the protocol's, the rule options given)."""
    title = f"{config.get('dataset', '')}: accuracy after pruning"
    title += " (NOT the full protocol)" if config.get("departures") else ""
    tags = ["averaged-scores cells"] if config.get("score_runs") == "averaged" else []
    tags += sorted({t["precision"] for t in ((config.get("eval") or {}).get("train") or {},
                                              (config.get("dynamics") or {}).get("train") or {}) if "precision" in t})
    tags += [options_text(config["options"])] if config.get("options") else []
    return title + (f" [{', '.join(tags)}]" if tags else "")


def options_text(options: dict[str, Any]) -> str:
    """The rule options a ladder was given, as ``name=value`` in name order (the table's note, the plot's title)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(options.items()))


def spread_of(config: dict) -> str:
    """What a ladder's ``mean ± std`` is over, from its config (older configs, without ``score_runs``: repeats)."""
    if config.get("score_runs") != "separate":
        return "over repeats"
    runs = (config.get("dynamics") or {}).get("runs", "the")
    return (f"over the {runs} dynamics runs, each with its own scores and pruned set evaluated "
            f"{config.get('repeat', 1)} time(s) (the paper's cells)")


def _fmt(mean: float | None, std: float | None, n: int = 2) -> str:
    if mean is None:
        return "failed"
    return f"{100 * mean:.2f} (1 run)" if n == 1 else f"{100 * mean:.2f} ± {100 * std:.2f}"


def ladder_csv(rows: list[dict]) -> str:
    """One line per (rule, ipc): repeats, mean and std of the last and best test accuracy, and the gain of the last
    accuracy over the random balanced subsets at the same IPC with their std, and DD-Ranking's IOR where the
    random subsets are real images (all in %; empty where a value does not exist)."""
    header = "rule,ipc,n_ok,repeats_last,last_mean,last_std,best_mean,best_std,gain_over_random,random_std,ior,failed"
    lines = [header]
    for r in rows:
        reps = ";".join(f"{100 * a:.2f}" for a in r["repeats"])
        nums = [r["last_mean"], r["last_std"], r["best_mean"], r["best_std"], r.get("gain_over_random"),
                r.get("random_std"), r.get("ior")]
        vals = ",".join("" if v is None else f"{100 * v:.4f}" for v in nums)
        err = " | ".join(r["failed"]).replace(",", ";").replace("\n", " ")
        lines.append(f"{r['rule']},{'' if r['ipc'] is None else r['ipc']},{len(r['repeats'])},{reps},{vals},{err}")
    return "\n".join(lines) + "\n"


def accuracy_text(row: dict) -> str:
    """A table cell: a row's last-epoch accuracy, ``70.61 ± 0.09`` in %, ``70.61 (1 run)``, or ``failed``."""
    return _fmt(row["last_mean"], row["last_std"], len(row["repeats"]))


@dataclass(frozen=True)
class LadderTable:
    """The layout of a ladder's accuracy table (rules as rows, target IPCs as columns), shared by ``results.md``
    and the HTML page so the two can never disagree: which rules and IPCs, each cell's row of ``results.json``,
    the best last-epoch accuracy per column and the unpruned source's row (None without one)."""

    ipcs: list[int]
    rules: list[str]
    cells: dict[tuple[str, int], dict]
    best: dict[int, float | None]
    source: dict | None

    @classmethod
    def of(cls, rows: list[dict]) -> LadderTable:
        ipcs = sorted({r["ipc"] for r in rows if r["ipc"] is not None})
        rules = list(dict.fromkeys(r["rule"] for r in rows if r["ipc"] is not None))
        cell = {(r["rule"], r["ipc"]): r for r in rows if r["ipc"] is not None}
        best = {k: max((cell[(rule, k)]["last_mean"] for rule in rules
                        if (rule, k) in cell and cell[(rule, k)]["last_mean"] is not None), default=None) for k in ipcs}
        source = next((r for r in rows if r["ipc"] is None), None)
        return cls(ipcs, rules, cell, best, source)

    def text(self, rule: str, ipc: int) -> str:
        """The cell's text (:func:`accuracy_text`), ``-`` where the ladder has no such cell."""
        r = self.cells.get((rule, ipc))
        return "-" if r is None else accuracy_text(r)

    def is_best(self, rule: str, ipc: int) -> bool:
        """Whether the cell holds its column's best last-epoch accuracy (bold in the tables)."""
        r = self.cells.get((rule, ipc))
        return r is not None and r["last_mean"] is not None and r["last_mean"] == self.best[ipc]


def ladder_markdown(rows: list[dict], departures: list[str] | None = None, spread: str = "over repeats",
                    real_reference: bool = False) -> str:
    """The paper's layout: rules as rows, target IPCs as columns, last-epoch accuracy mean ± std, best in bold.

    ``departures`` (how the settings depart from the protocol) head the table when there are any; ``spread`` says
    what the std is over (:func:`spread_of`); ``real_reference`` (the random subsets are real images) adds
    DD-Ranking's IOR beside the gain.
    """
    table = LadderTable.of(rows)
    ipcs, rules, cell = table.ipcs, table.rules, table.cells
    lines = ["| rule | " + " | ".join(f"IPC {k}" for k in ipcs) + " |", "| --- |" + " --- |" * len(ipcs)]
    for rule in rules:
        parts = []
        for k in ipcs:
            text = table.text(rule, k)
            parts.append(f"**{text}**" if table.is_best(rule, k) else text)
        lines.append(f"| {rule} | " + " | ".join(parts) + " |")
    note = f"Test accuracy (%) at the last epoch, mean ± std {spread}; best per column in bold."
    if table.source is not None:
        note += f" Unpruned source set: {accuracy_text(table.source)}."
    ref = {r["ipc"]: r for r in rows if r["rule"] == RANDOM_REFERENCE and r["last_mean"] is not None}
    if ref:
        n_ref = max(len(r["repeats"]) for r in ref.values())
        subsets = max(len(r.get("subsets") or [0]) for r in ref.values())
        short = [f"IPC {k}: {len(r['repeats'])} run(s)" for k, r in sorted(ref.items())
                 if k is not None and len(r["repeats"]) < n_ref]
        note += (f"\n\nGain over random balanced subsets at the same IPC (points; the reference is the mean of "
                 f"{subsets} subset(s) x {n_ref // max(subsets, 1)} training seed(s)"
                 + (f", fewer where still being filled ({'; '.join(short)})" if short else "")
                 + ", its std beside it"
                 + ("; the random subsets are real training images, so DD-Ranking's IOR (best accuracy minus the "
                    "random subsets' best) follows each gain" if real_reference else
                    "; the random subsets are drawn from the condensed source set, so this is not DD-Ranking's IOR, "
                    "whose random images are real training images") + "):\n\n")
        note += "| rule | " + " | ".join(f"IPC {k}" for k in ipcs) + " |\n| --- |" + " --- |" * len(ipcs) + "\n"
        for rule in rules:
            parts = []
            for k in ipcs:
                r = cell.get((rule, k))
                g = None if r is None else r.get("gain_over_random")
                spread = "1 run" if r is None or r["random_std"] is None else f"± {100 * r['random_std']:.2f}"
                ior = "" if r is None or r.get("ior") is None else f", IOR {100 * r['ior']:+.2f}"
                parts.append("-" if g is None else f"{100 * g:+.2f} (random {spread}{ior})")
            note += f"| {rule} | " + " | ".join(parts) + " |\n"
    failed = [f"- {r['rule']} IPC {r['ipc']}: {e}" for r in rows for e in r["failed"]]
    head = ""
    if departures:
        head = "**NOT the full protocol:** " + "; ".join(departures) + ".\n\n"
    return head + "\n".join(lines) + "\n\n" + note + "\n" + (
        "\nFailed cells:\n" + "\n".join(failed) + "\n" if failed else "")


def rule_styles(rules: list[str]) -> dict[str, dict[str, Any]]:
    """A line style per rule that no other rule of the plot shares: YOCO's rule thick and black, the others the ten
    colours of matplotlib's default cycle in order, then the same colours again with other markers and dashes (an
    all-rules ladder has 14 lines, and two rules in one colour and marker cannot be told apart)."""
    markers, dashes = "os^Dv", ("-", "--", ":", "-.")
    styles, i = {}, 0
    for rule in rules:
        if rule == YOCO_RULE:
            styles[rule] = {"color": "black", "lw": 2.5, "marker": "o", "ls": "-"}
            continue
        styles[rule] = {"color": f"C{i % 10}", "lw": 1.2, "marker": markers[i // 10 % len(markers)],
                        "ls": dashes[i // 10 % len(dashes)]}
        i += 1
    return styles


def save_ladder_plot(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Accuracy against target IPC, one line per rule with a ±std band, the unpruned set as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 4.4), dpi=120)
    rules = list(dict.fromkeys(r["rule"] for r in rows if r["ipc"] is not None))
    styles = rule_styles(rules)
    for rule in rules:
        pts = sorted((r["ipc"], r["last_mean"], r["last_std"] or 0.0) for r in rows
                     if r["rule"] == rule and r["ipc"] is not None and r["last_mean"] is not None)
        if not pts:
            continue
        k, m, s = (np.array(v, dtype=float) for v in zip(*pts))
        ax.plot(k, 100 * m, label=f"yoco ({rule})" if rule == YOCO_RULE else rule, **styles[rule])
        ax.fill_between(k, 100 * (m - s), 100 * (m + s), alpha=0.15, color=styles[rule]["color"])
    for r in rows:
        if r["ipc"] is None and r["last_mean"] is not None:
            ax.axhline(100 * r["last_mean"], ls="--", color="gray", label="unpruned source")
    ax.set_xscale("log")
    ipcs = sorted({r["ipc"] for r in rows if r["ipc"] is not None})
    ax.set_xticks(ipcs, [str(k) for k in ipcs])
    ax.set_xticks([], minor=True)
    ax.set_xlabel("target images per class (stored)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()

    def write(p: Path) -> None:
        fig.savefig(p, format="png")

    atomic_write(path, write)
    plt.close(fig)
    return Path(path)
