"""A ladder folder as one self-contained HTML page (``yoco report DIR --html``).

The page holds the accuracy table (the rows of ``results.json``, laid out by :class:`yoco.report.LadderTable` as
``results.md`` is), the ladder plot, and, for every rule and target IPC, the decoded source set one row per class
with the images the rule kept shown and the dropped ones faded: what "easy" and "hard" keep, at a glance.

Everything is inside the file (``data:`` URIs). The source set's images are drawn once, as one PNG sprite that
every grid shows through CSS, so each grid costs a few bytes per image rather than a picture of its own. The
grid of a rule and IPC is its first pruned subset (the lowest subset number the plan names), read from
``pruned/``; its kept indices are the ones the set records (``meta.extra["selection"]["indices"]``, indices into
the source set decoded as the ladder decodes it, :func:`yoco.data.condensed.decode`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from yoco.data.condensed import CondensedSet, content_sha256, decode, load
from yoco.data.datasets.cifar import CIFAR10_CLASSES
from yoco.data.datasets.idx import FASHION_MNIST_CLASSES
from yoco.errors import YocoError
from yoco.files import check_outputs, write_text
from yoco.ladder.cache import read_json
from yoco.ladder.run import PLAN, fingerprint, read_plan
from yoco.report import GRID_PAD, LadderTable, accuracy_text, grid_image, ladder_title, spread_of
from yoco.rules import YOCO_RULE, parse_rule

log = logging.getLogger(__name__)

PAGE = "report.html"  # the page's default name inside the ladder folder
THUMB = 32  # the grids show images at most this many pixels a side (ImageNet's 224 px would make pages of MB)
MAX_CLASSES = 10  # the grids show the first this many classes (CIFAR-100's 100 rows per grid are no overview)
FADED = 0.18  # opacity of a dropped image
CLASS_NAMES = {"fashion-mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}


@dataclass(frozen=True)
class Kept:
    """What one rule kept at one IPC: its first subset's pruned set file and the decoded source indices kept."""

    rule: str
    ipc: int
    subset: int | None
    path: Path | None  # None: no pruned set of that subset in the folder
    indices: list[int]
    class_counts: list[int]


def page_path(folder: str | Path, out: str | Path | None = None) -> Path:
    """Where the page of ``folder`` goes (``out``, default ``folder/report.html``), refused before any work when it
    would overwrite a file the report reads or writes (the plan, results, plot, cells, sets or the source)."""
    folder = Path(folder)
    path = Path(out) if out is not None else folder / PAGE
    plan = read_json(folder / PLAN) or {}
    source = (plan.get("config") or {}).get("source")
    reads = [folder / name for name in (PLAN, "ladder.json", "results.json", "results.csv", "results.md",
                                        "ladder.png", "condensed.safetensors", "pruned", "cache", "cells")]
    check_outputs([path], reads + ([Path(source)] if isinstance(source, str) and source else []))
    return path


def write_page(folder: str | Path, doc: dict[str, Any] | None = None, *, out: str | Path | None = None,
               thumb: int = THUMB, max_classes: int = MAX_CLASSES) -> Path:
    """Write the HTML page of a ladder folder and return its path.

    ``doc`` is the results document :func:`yoco.ladder.report_ladder` returned (default: the folder's
    ``results.json``). ``out`` defaults to ``folder/report.html``; the page is written atomically and never over a
    file the report reads. ``thumb`` caps the side of an image in the grids (larger images are shrunk, never
    enlarged); ``max_classes`` caps the rows of a grid (the first classes are shown).
    """
    folder = Path(folder)
    path = page_path(folder, out)
    if thumb < 1 or max_classes < 1:
        raise YocoError(f"thumb and max_classes must be at least 1, got {thumb} and {max_classes}")
    plan = read_plan(folder)
    if doc is None:
        doc = read_json(folder / "results.json")
        if doc is None or not isinstance(doc.get("rows"), list):
            raise YocoError(f"{folder / 'results.json'}: no results here; `yoco report {folder}` writes them")
    config = doc.get("config") or plan.get("config") or {}
    source, source_path = ladder_source(folder, config)
    decoded = decode(source)
    kept = kept_sets(folder, plan, decoded)
    text = _page(folder, doc, config, source, source_path, decoded, kept, thumb, max_classes)
    write_text(path, text)
    log.info("wrote %s (%.0f kB: %d grids of %d images each)", path, len(text.encode()) / 1024, len(kept),
             len(decoded))
    return path


def ladder_source(folder: str | Path, config: dict[str, Any]) -> tuple[CondensedSet, Path]:
    """The ladder's source set and where it was read: the folder's cached copy, the path the ladder was given, or
    the set ``--condense`` wrote, whichever holds the set the ladder's fingerprint names."""
    folder = Path(folder)
    fp = config.get("source_fingerprint")
    tried = []
    places = [folder / "cache" / f"source-{fp}.safetensors"] if isinstance(fp, str) else []
    if isinstance(config.get("source"), str) and config["source"]:
        places.append(Path(config["source"]))
    places.append(folder / "condensed.safetensors")
    for where in places:
        if not where.is_file():
            continue
        try:
            cs = load(where)
        except YocoError as exc:
            tried.append(f"{where} ({exc})")
            continue
        if fp is None or fingerprint(cs) == fp:
            return cs, where
        tried.append(f"{where} (another set: fingerprint {fingerprint(cs)})")
    raise YocoError(f"{folder}: the ladder's source set (fingerprint {fp}) is not where the ladder left it "
                    f"(looked at {', '.join(str(p) for p in places)}"
                    + (f"; {'; '.join(tried)}" if tried else "") + ")")


def kept_sets(folder: str | Path, plan: dict[str, Any], decoded: CondensedSet) -> list[Kept]:
    """For every rule and target IPC of the plan, in the plan's order, what its first subset kept of ``decoded``.

    A rule's pruned sets are ``pruned/{rule}-ipc{ipc}-sub{subset}-{key}.safetensors``. Where a folder holds several
    of one subset (made by other settings), the one whose images are the source's at its indices and that a
    finished cell of the plan evaluated (by content sha256) is taken, else the newest such one.
    """
    folder = Path(folder)
    subsets: dict[tuple[str, int], set[int]] = {}
    evaluated: dict[tuple[str, int, int | None], set[str]] = {}
    for c in plan["cells"]:
        if c.get("ipc") is None:
            continue
        k = (c["rule"], c["ipc"])
        sub = c.get("subset")
        subsets.setdefault(k, set()).update([sub] if sub is not None else [])
        res = read_json(folder / "cells" / str(c.get("file")))
        if res is not None and res.get("key") == c.get("key") and isinstance(res.get("sha256"), str):
            evaluated.setdefault((*k, sub), set()).add(res["sha256"])
    out = []
    for (rule, ipc), subs in subsets.items():
        sub = min(subs, default=None)
        pattern = f"{rule}-ipc{ipc}-sub{sub}-*.safetensors" if sub is not None else f"{rule}-ipc{ipc}-*.safetensors"
        found = []  # (path, the set's content sha256, its selection), newest first
        for path in sorted((folder / "pruned").glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True):
            read = _selection(path, rule, ipc, decoded)
            if read is not None:
                found.append((path, *read))
        if not found:
            log.warning("%s: no pruned set of %s at IPC %d (subset %s) made from this source; its grid is left out",
                        folder, rule, ipc, sub)
            out.append(Kept(rule, ipc, sub, None, [], []))
            continue
        shas = evaluated.get((rule, ipc, sub), set())
        path, _, idx, counts = next((f for f in found if f[1] in shas), found[0])
        if len(found) > 1 and not shas:
            log.warning("%s: %d pruned sets of %s at IPC %d (subset %s) and no finished cell says which was evaluated; "
                        "showing the newest, %s", folder, len(found), rule, ipc, sub, path.name)
        out.append(Kept(rule, ipc, sub, path, idx, counts))
    return out


def _selection(path: Path, rule: str, ipc: int, decoded: CondensedSet
               ) -> tuple[str, list[int], list[int]] | None:
    """A pruned set's content sha256 and the kept indices and class counts it records, when it is ``rule`` at
    ``ipc`` cut from ``decoded`` (its images and labels are the decoded source's at those indices), else None."""
    try:
        cs = load(path)
    except YocoError as exc:
        log.warning("%s", exc)
        return None
    sel = cs.meta.extra.get("selection")
    if not isinstance(sel, dict) or sel.get("rule") != rule or sel.get("ipc") != ipc:
        return None
    idx = sel.get("indices")
    if not (isinstance(idx, list) and len(idx) == len(cs) and all(isinstance(i, int) and 0 <= i < len(decoded)
                                                                 for i in idx)):
        return None
    at = torch.tensor(idx, dtype=torch.long)
    if not (torch.equal(cs.labels, decoded.labels[at])
            and torch.allclose(cs.images, decoded.images[at], atol=1e-5, rtol=0)):
        return None
    counts = sel.get("class_counts")
    counts = counts if isinstance(counts, list) else torch.bincount(cs.labels, minlength=cs.num_classes).tolist()
    return content_sha256(cs), idx, counts


# ----------------------------------------------------------------------------------------------------------
# The page


def _page(folder: Path, doc: dict[str, Any], config: dict[str, Any], source: CondensedSet, source_path: Path,
          decoded: CondensedSet, kept: list[Kept], thumb: int, max_classes: int) -> str:
    esc = html.escape
    rows = doc["rows"]
    title = ladder_title(config)
    head = []
    if config.get("departures"):
        head.append(f'<p class="warn" id="departures"><b>NOT the full protocol:</b> '
                    f'{esc("; ".join(config["departures"]))}.</p>')
    if doc.get("cells") is not None and doc.get("planned_cells") and doc["cells"] < doc["planned_cells"]:
        head.append(f'<p class="warn" id="partial"><b>Partial:</b> {doc["cells"]} of {doc["planned_cells"]} planned '
                    'cells; each row counts the seeds finished so far.</p>')
    md = folder / "results.md"
    details = (f"<details><summary>results.md (the same table as text, with the gain over random subsets)</summary>"
               f"<pre>{esc(md.read_text(encoding='utf-8'))}</pre></details>") if md.is_file() else ""
    plot = folder / "ladder.png"
    figure = (f'<img id="plot" alt="test accuracy against target IPC, one line per rule" '
              f'src="{_data_uri(plot.read_bytes())}">' if plot.is_file() else
              '<p class="warn">No plot: ladder.png is missing.</p>')
    css, grids = _grids(source, source_path, decoded, kept, config, thumb, max_classes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;color:#222;margin:1.5em auto;max-width:1400px;padding:0 1em}}
h1{{font-size:1.4em}} h2{{margin-top:1.6em;border-bottom:1px solid #ddd}} h3{{margin:1.2em 0 .3em}}
table{{border-collapse:collapse;margin:.5em 0}}
th,td{{border:1px solid #ccc;padding:.25em .7em;text-align:right}} th[scope=row]{{text-align:left;font-weight:normal}}
td.best{{font-weight:bold}} tfoot th,tfoot td{{color:#555}}
.warn{{background:#fff6d6;border:1px solid #e3c766;padding:.4em .7em}}
.note{{color:#555}} pre{{background:#f6f6f6;padding:.6em;overflow-x:auto}} #plot{{max-width:100%}}
figure{{margin:.4em 0 1em}} figcaption{{margin-bottom:.3em}}
{css}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
{"".join(head)}
<h2>Results</h2>
{_table(rows, config)}
{details}
<h2>Accuracy against target IPC</h2>
{figure}
{grids}
</body>
</html>
"""


def _table(rows: list[dict[str, Any]], config: dict[str, Any]) -> str:
    """The accuracy table, cell for cell the one of ``results.md``; each cell also carries its row's numbers."""
    esc = html.escape
    table = LadderTable.of(rows)
    out = ['<table id="results"><thead><tr><th>rule</th>'
           + "".join(f"<th>IPC {k}</th>" for k in table.ipcs) + "</tr></thead><tbody>"]
    for rule in table.rules:
        mark = " <small>(YOCO)</small>" if rule == YOCO_RULE else ""
        cells = []
        for k in table.ipcs:
            r = table.cells.get((rule, k))
            best = ' class="best"' if table.is_best(rule, k) else ""
            cells.append(f"<td{best}{_numbers(r)}>{esc(table.text(rule, k))}</td>")
        out.append(f'<tr><th scope="row">{esc(rule)}{mark}</th>{"".join(cells)}</tr>')
    out.append("</tbody>")
    if table.source is not None:
        out.append(f'<tfoot><tr><th scope="row">unpruned source</th><td colspan="{max(len(table.ipcs), 1)}"'
                   f'{_numbers(table.source)}>{esc(accuracy_text(table.source))}</td></tr></tfoot>')
    out.append("</table>")
    out.append(f'<p class="note">Test accuracy (%) at the last epoch, mean ± std {esc(spread_of(config))}; best per '
               "column in bold.</p>")
    return "\n".join(out)


def _numbers(r: dict[str, Any] | None) -> str:
    """A cell's row of ``results.json`` as data attributes, at full precision (JSON's spelling of each float)."""
    if r is None:
        return ""
    ipc = "" if r["ipc"] is None else str(r["ipc"])
    values = {"rule": r["rule"], "ipc": ipc, "last-mean": _num(r["last_mean"]), "last-std": _num(r["last_std"]),
              "best-mean": _num(r["best_mean"]), "best-std": _num(r["best_std"]), "runs": str(len(r["repeats"]))}
    return "".join(f' data-{k}="{html.escape(v)}"' for k, v in values.items())


def _num(v: float | None) -> str:
    return "" if v is None else json.dumps(v)


def _grids(source: CondensedSet, source_path: Path, decoded: CondensedSet, kept: list[Kept], config: dict[str, Any],
           thumb: int, max_classes: int) -> tuple[str, str]:
    """The CSS (the sprite and the tile positions) and the HTML of every rule's grids."""
    esc = html.escape
    n_classes = min(decoded.num_classes, max_classes)
    shown = torch.nonzero(decoded.labels < n_classes).flatten()
    pixels = decoded.pixels()[shown]
    h, w = pixels.shape[2:]
    if max(h, w) > thumb:  # shrink, keeping the aspect ratio
        h, w = max(1, round(h * thumb / max(h, w))), max(1, round(w * thumb / max(h, w)))
        pixels = F.interpolate(pixels, size=(h, w), mode="bilinear", antialias=True, align_corners=False)
    labels = decoded.labels[shown]
    per_class = max(int(torch.bincount(labels, minlength=n_classes).max()), 1)
    buf = io.BytesIO()
    grid_image(pixels, labels, n_classes, per_class).save(buf, format="PNG", optimize=True)
    step_x, step_y = w + GRID_PAD, h + GRID_PAD
    sprite = _data_uri(buf.getvalue())
    css = [f".g .r{{display:flex;align-items:center;margin:0 0 {GRID_PAD}px;white-space:nowrap}}",
           (".g .r b{flex:none;width:10em;padding-right:.6em;text-align:right;font-weight:normal;font-size:12px;"
            "overflow:hidden;text-overflow:ellipsis}"),
           (f".g i{{flex:none;width:{w}px;height:{h}px;margin-right:{GRID_PAD}px;opacity:{FADED};"
            f"background-image:url({sprite});background-repeat:no-repeat;"
            f"background-position-y:calc(var(--y) * -{step_y}px - {GRID_PAD}px)}}"),
           ".g i.k{opacity:1;outline:1px solid #1a9850}"]
    css += [f".g i:nth-of-type({j + 1}){{background-position-x:-{GRID_PAD + j * step_x}px}}" for j in range(per_class)]

    # each decoded image's place in its class row, in index order (the sprite's order)
    members = [torch.nonzero(decoded.labels == k).flatten().tolist() for k in range(n_classes)]
    names = list(CLASS_NAMES.get(source.meta.dataset, ()))
    if len(names) != decoded.num_classes:
        names = [f"class {k}" for k in range(decoded.num_classes)]
    f = source.meta.factor
    intro = (f"<p>Source set: <code>{esc(str(source_path))}</code>, {len(source)} stored images"
             + (f" decoded into {len(decoded)} ({f}&times;{f} tiles each, as the ladder decodes them)" if f > 1 else "")
             + ". Each grid shows the decoded source images, one row per class in the set's order, the images the "
             "rule kept outlined and the dropped ones faded; a rule and IPC shows its first pruned subset. "
             + (f"Only the first {n_classes} of {decoded.num_classes} classes are shown. " if n_classes <
                decoded.num_classes else "")
             + (f"Images are shrunk to {h}&times;{w} pixels. " if (h, w) != tuple(decoded.images.shape[2:]) else "")
             + "</p>")
    out = ["<h2>What each rule keeps</h2>", intro]
    for rule in dict.fromkeys(k.rule for k in kept):
        out.append(f'<section class="rule" id="rule-{esc(rule)}"><h3>{esc(rule)}'
                   + (" (YOCO)" if rule == YOCO_RULE else "") + f"</h3><p class=\"note\">{esc(_describe(rule))}</p>")
        for k in (k for k in kept if k.rule == rule):
            attrs = (f'data-rule="{esc(rule)}" data-ipc="{k.ipc}" data-subset="{"" if k.subset is None else k.subset}"'
                     f' data-kept="{len(k.indices)}"')
            if k.path is None:
                out.append(f'<figure class="grid missing" {attrs}><figcaption>IPC {k.ipc}: no pruned set of subset '
                           f"{k.subset} made from this source is in pruned/.</figcaption></figure>")
                continue
            keep = set(k.indices)
            caption = (f"IPC {k.ipc}: kept {len(k.indices)} of {len(decoded)} decoded images (subset {k.subset}, "
                       f"<code>pruned/{esc(k.path.name)}</code>); kept per class: {esc(str(k.class_counts))}")
            rows = []
            for cls in range(n_classes):
                tiles = "".join("<i class=k></i>" if i in keep else "<i></i>" for i in members[cls])
                n_kept = sum(i in keep for i in members[cls])
                rows.append(f'<div class="r" style="--y:{cls}"><b title="{esc(names[cls])}">{esc(names[cls])} '
                            f"&middot; {n_kept}</b>{tiles}</div>")
            out.append(f'<figure class="grid" {attrs} data-file="{esc(k.path.name)}"><figcaption>{caption}'
                       f'</figcaption><div class="g">{"".join(rows)}</div></figure>')
        out.append("</section>")
    return "\n".join(css), "\n".join(out)


def _describe(rule: str) -> str:
    """What a rule keeps, in words."""
    try:
        r = parse_rule(rule)
    except YocoError:
        return ""
    how = "the same number in every class" if r.balanced else "over the whole set (classes as they fall)"
    if r.score == "random":
        return f"Keeps images drawn at random, {how}."
    if r.direction is not None:
        word = {"easy": "easiest", "hard": "hardest"}[r.direction]
        by = "score" if r.selector is None else "selection"
        return f"Keeps the {word} images by the {r.score} {by}, {how}."
    return f"Keeps what the {r.score} selection picks, {how}."


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
