"""``yoco report DIR --html``: one self-contained page of a ladder folder, checked as HTML and in a real browser.

The browser half runs where the ``playwright`` Python package (``pip install -e ".[browser]"``) and a Chromium
executable are installed (Debian: ``apt-get install chromium``; another one through ``$YOCO_CHROMIUM``); playwright's
own browser downloads are never used. Elsewhere it is skipped, saying which is missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from helpers import rt, separable_images, tiny_real, write_mnist_like

from yoco import cli
from yoco.data.condensed import CondensedMeta, CondensedSet, decode, load
from yoco.dynamics import DynamicsConfig
from yoco.errors import YocoError
from yoco.evaluate import EvalConfig
from yoco.ladder import LadderConfig, page_path, run_ladder, write_page
from yoco.train import TrainConfig

RULES = ("lbpe_easy_balance", "random_balance", "forgetting_hard_imbalance")


@pytest.fixture(scope="module")
def ladder(tmp_path_factory) -> dict:
    """A finished tiny ladder: a factor-2 source (4 stored -> 16 decoded images per class), two dynamics runs (so
    every rule has subsets 0 and 1), three rules at IPC 1 and 2."""
    tmp = tmp_path_factory.mktemp("html")
    real = tiny_real(n_per_class=20, num_classes=10, size=16)
    write_mnist_like(tmp / "data", real)
    x, y = separable_images(4, 10, 16, seed=3)
    cs = CondensedSet(x, y, CondensedMeta("mnist", 10, method="test", ipc=4, factor=2), source="src")
    cfg = LadderConfig(
        dataset="mnist", ipcs=(1, 2), rules=("yoco", "random_balance", "forgetting"), repeat=1, score_runs="separate",
        dynamics=DynamicsConfig(model="convnet", width=8, runs=2, train=TrainConfig(epochs=6, batch_size=16)),
        eval=EvalConfig(model="convnet", width=8, test_points=1, train=TrainConfig(epochs=2)),
        lbpe_epochs=4, lbpe_top_k=2, el2n_epochs=2,
    )
    out = tmp / "run"
    run_ladder(cs, cfg, out, data_root=str(tmp / "data"), runtime=rt())
    page = write_page(out)
    return {"out": out, "page": page, "source": cs, "results": json.loads((out / "results.json").read_text())}


class _Page(HTMLParser):
    """What the tests read of the page: the table's data cells, each grid's tiles, every URL the page refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict] = []
        self.grids: list[dict] = []
        self.urls: list[str] = []
        self._cell: dict | None = None
        self._row: list[bool] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        self.urls += [a[k] for k in ("src", "href") if k in a]
        if tag == "td" and "data-rule" in a:
            self._cell = {**a, "text": ""}
        elif tag == "figure" and "grid" in a.get("class", ""):
            self.grids.append({**a, "rows": []})
        elif tag == "div" and a.get("class") == "r":
            self._row = []
            self.grids[-1]["rows"].append(self._row)
        elif tag == "i" and self._row is not None:
            self._row.append(a.get("class") == "k")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append(self._cell)
            self._cell = None
        elif tag == "div":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"] += data


def _parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


def _shown(row: dict) -> str:
    """A row's table text, spelled here independently of yoco.report."""
    n = len(row["repeats"])
    if row["last_mean"] is None:
        return "failed"
    return f"{100 * row['last_mean']:.2f} (1 run)" if n == 1 else f"{100 * row['last_mean']:.2f} ± {100 * row['last_std']:.2f}"


def _first_subsets(out: Path) -> dict[tuple[str, int], dict]:
    """The selection recorded by each rule and IPC's subset-0 pruned set."""
    found = {}
    for p in (out / "pruned").glob("*-sub0-*.safetensors"):
        sel = load(p).meta.extra["selection"]
        found[(sel["rule"], sel["ipc"])] = {**sel, "file": p.name}
    return found


def test_table_numbers_are_the_rows_of_results_json(ladder):
    page, _ = _parse(ladder["page"])
    rows = ladder["results"]["rows"]
    assert len(page.cells) == len(rows)  # one cell per row (the unpruned source's included), no other data cell
    by = {(c["data-rule"], c["data-ipc"]): c for c in page.cells}
    for r in rows:
        c = by[(r["rule"], "" if r["ipc"] is None else str(r["ipc"]))]
        for attr, key in (("data-last-mean", "last_mean"), ("data-last-std", "last_std"),
                          ("data-best-mean", "best_mean"), ("data-best-std", "best_std")):
            assert (float(c[attr]) if c[attr] else None) == r[key], (r["rule"], r["ipc"], key)
        assert int(c["data-runs"]) == len(r["repeats"])
        assert c["text"] == _shown(r)
    # the best cell of each column is marked, as results.md bolds it
    for ipc in (1, 2):
        col = [r for r in rows if r["ipc"] == ipc]
        best = max(col, key=lambda r: r["last_mean"])
        assert "best" in by[(best["rule"], str(ipc))].get("class", "")
        assert f"**{_shown(best)}**" in (ladder["out"] / "results.md").read_text()


def test_every_rule_and_ipc_has_a_grid_of_its_first_subset(ladder):
    page, _ = _parse(ladder["page"])
    decoded = decode(ladder["source"])  # the ladder's own decoding: 4 stored -> 16 decoded images per class
    assert len(decoded) == 160
    members = [torch.nonzero(decoded.labels == k).flatten().tolist() for k in range(10)]
    selections = _first_subsets(ladder["out"])
    grids = {(g["data-rule"], int(g["data-ipc"])): g for g in page.grids}
    assert set(grids) == {(rule, ipc) for rule in RULES for ipc in (1, 2)} == set(selections)
    for k, g in grids.items():
        sel = selections[k]
        assert g["data-subset"] == "0" and g["data-file"] == sel["file"]
        assert int(g["data-kept"]) == len(sel["indices"]) == sum(map(sum, g["rows"]))
        assert [len(row) for row in g["rows"]] == [16] * 10  # every decoded source image, one row per class
        # tile j of row k is decoded image members[k][j]: the outlined tiles are exactly the recorded indices
        shown = {members[c][j] for c, row in enumerate(g["rows"]) for j, kept in enumerate(row) if kept}
        assert shown == set(sel["indices"])
        assert [sum(row) for row in g["rows"]] == sel["class_counts"]
    balanced = grids[("lbpe_easy_balance", 2)]
    assert [sum(row) for row in balanced["rows"]] == [2 * 4] * 10  # IPC 2 of a factor-2 set: 8 decoded per class


def test_the_page_is_one_self_contained_file(ladder):
    page, text = _parse(ladder["page"])
    assert page.urls and all(u.startswith("data:image/png;base64,") for u in page.urls)
    assert all(u.startswith("data:image/png;base64,") for u in re.findall(r"url\(([^)]*)\)", text))
    assert text.count("data:image/png;base64,") == 2  # the plot and the one sprite every grid shares
    assert 'id="departures"' in text and "NOT the full protocol" in text
    assert ladder["page"] == ladder["out"] / "report.html"


def test_large_images_are_shrunk_and_many_classes_cut(ladder, tmp_path):
    path = write_page(ladder["out"], out=tmp_path / "small.html", thumb=8, max_classes=3)
    page, text = _parse(path)
    assert all(len(g["rows"]) == 3 and all(len(r) == 16 for r in g["rows"]) for g in page.grids)
    assert "Only the first 3 of 10 classes are shown" in text and "shrunk to 8&times;8 pixels" in text
    assert ".g i{flex:none;width:8px;height:8px;" in text


def test_the_page_never_overwrites_what_the_report_reads(ladder, tmp_path):
    out = ladder["out"]
    for name in ("results.json", "results.md", "ladder.png", "plan.json"):
        with pytest.raises(YocoError, match="refusing to overwrite"):
            page_path(out, out / name)
    pruned = next((out / "pruned").iterdir())
    with pytest.raises(YocoError, match="inside the input folder"):
        page_path(out, pruned.parent / "page.html")
    assert page_path(out, tmp_path / "elsewhere.html") == tmp_path / "elsewhere.html"


def test_cli_report_html(ladder, tmp_path, capsys):
    out = ladder["out"]
    assert cli.main(["report", str(out), "--html-out", str(tmp_path / "p.html")]) == 0
    assert f"page: {tmp_path / 'p.html'}" in capsys.readouterr().out
    assert _parse(tmp_path / "p.html")[0].cells  # --html-out alone implies --html
    before = (out / "results.json").read_bytes()
    assert cli.main(["report", str(out), "--html-out", str(out / "results.json")]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    assert "(default: FOLDER/report.html)" in " ".join(capsys.readouterr().out.split())


def test_a_folder_without_its_source_set_says_so(ladder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(ladder["out"], copy, ignore=shutil.ignore_patterns("source-*", ".ladder.lock"))
    with pytest.raises(YocoError, match="source set .* is not where the ladder left it"):
        write_page(copy)


# ----------------------------------------------------------------------------------------------------------
# In a real browser


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium executable to drive, or a skip saying what is missing (before the ladder is built)."""
    pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install -e '.[browser]')")
    for exe in (os.environ.get("YOCO_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        path = exe and shutil.which(exe)
        if path:
            return path
    pytest.skip("no Chromium executable (apt-get install chromium, or set YOCO_CHROMIUM)")


def test_page_in_a_real_browser(chromium, ladder):
    exe = chromium
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        except Error as exc:
            pytest.skip(f"{exe} does not start here: {str(exc).splitlines()[0]}")
        try:
            tab = browser.new_page()
            problems = []
            tab.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda e: problems.append(str(e)))
            tab.on("requestfailed", lambda r: problems.append(f"{r.url[:60]}: {r.failure}"))
            tab.goto(ladder["page"].as_uri(), wait_until="load")
            images = tab.evaluate("""async () => Promise.all([...document.images].map(async img => {
                await img.decode(); return [img.id, img.naturalWidth, img.naturalHeight]; }))""")
            # the grids' tiles show the sprite through CSS: it must decode too, and be the size the tiles address
            sprite = tab.evaluate("""async () => {
                const url = getComputedStyle(document.querySelector('.g i')).backgroundImage.slice(5, -2);
                const img = new Image(); img.src = url; await img.decode();
                return [img.naturalWidth, img.naturalHeight]; }""")
            cells = tab.evaluate("""() => [...document.querySelectorAll('#results td[data-rule]')].map(td =>
                ({rule: td.dataset.rule, ipc: td.dataset.ipc, mean: td.dataset.lastMean, text: td.innerText.trim()}))""")
            opacity = tab.evaluate("""() => [...new Set([...document.querySelectorAll('.g i')].map(i =>
                (i.classList.contains('k') ? 'kept ' : 'dropped ') + getComputedStyle(i).opacity))].sort()""")
            kept = tab.evaluate("""() => Object.fromEntries([...document.querySelectorAll('figure.grid')].map(f =>
                [f.dataset.rule + '@' + f.dataset.ipc, [Number(f.dataset.kept), f.querySelectorAll('i.k').length]]))""")
        finally:
            browser.close()
    assert problems == []
    assert images and all(w > 0 and h > 0 for _, w, h in images) and "plot" in [i for i, _, _ in images]
    assert sprite == [2 + 16 * (16 + 2), 2 + 10 * (16 + 2)]  # 16 decoded images of 16 px per class row, 10 rows
    rows = ladder["results"]["rows"]
    assert len(cells) == len(rows)
    by = {(c["rule"], c["ipc"]): c for c in cells}
    for r in rows:
        c = by[(r["rule"], "" if r["ipc"] is None else str(r["ipc"]))]
        assert float(c["mean"]) == r["last_mean"] and c["text"] == _shown(r)
    assert opacity == ["dropped 0.18", "kept 1"]
    assert len(kept) == len(RULES) * 2 and all(n == shown for n, shown in kept.values())
