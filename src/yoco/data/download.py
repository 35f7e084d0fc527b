"""Download a real dataset from its official source, on request only: ``yoco download NAME``.

Each file is fetched into ``<root>/.<file>.part`` (resumed with an HTTP range request when a partial file is
there), checked against the published MD5, and only then renamed to its final name, so nothing half-written is
ever read as data. Archives (CIFAR) are unpacked member by member into a temporary folder, refusing members that
would land outside it, and moved into place when complete.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from yoco.errors import YocoError
from yoco.progress import tqdm

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Remote:
    """One file of a dataset: where it is published, its MD5, and the folder an archive unpacks to."""

    url: str
    md5: str
    unpacks_to: str | None = None

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror of yann.lecun.com's files
_FASHION = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # Zalando's README
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
_CIFAR = "https://www.cs.toronto.edu/~kriz/"

# Published checksums: MNIST/Fashion-MNIST from their READMEs (and torchvision), CIFAR from the CIFAR page,
# SVHN from torchvision's SVHN class.
SOURCES: dict[str, tuple[Remote, ...]] = {
    "mnist": (Remote(_MNIST + "train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              Remote(_MNIST + "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
              Remote(_MNIST + "t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
              Remote(_MNIST + "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
    "fashion-mnist": (Remote(_FASHION + "train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
                      Remote(_FASHION + "train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
                      Remote(_FASHION + "t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
                      Remote(_FASHION + "t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
    "cifar10": (Remote(_CIFAR + "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py"),),
    "cifar100": (Remote(_CIFAR + "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python"),),
    "svhn": (Remote(_SVHN + "train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
             Remote(_SVHN + "test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")),
}


def download_root(name: str, root: str | Path | None = None) -> Path:
    """Where ``yoco download`` puts ``name``: ``root``, else ``$YOCO_DATA/<name>`` or ``~/.yoco/data/<name>``
    (the folder yoco looks in by default)."""
    if root is not None:
        return Path(root).expanduser()
    base = os.environ.get("YOCO_DATA")
    return (Path(base).expanduser() if base else Path.home() / ".yoco" / "data") / name


def download(name: str, root: str | Path | None = None, *, sources: dict[str, tuple[Remote, ...]] | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch every file of dataset ``name`` into its root (see :func:`download_root`) and return that folder.

    Files already present with the right checksum (or archives already unpacked) are skipped. ``sources``
    replaces the table of URLs and checksums (tests serve files from 127.0.0.1).
    """
    table = SOURCES if sources is None else sources
    if name not in table:
        raise YocoError(f"no download for {name!r}; downloadable: {', '.join(table)} (ImageNet subsets and image "
                        "folders must be put in place by hand)")
    folder = download_root(name, root)
    folder.mkdir(parents=True, exist_ok=True)
    for remote in table[name]:
        target = folder / remote.name
        if remote.unpacks_to and (folder / remote.unpacks_to).is_dir():
            log.info("%s already unpacked in %s", remote.name, folder / remote.unpacks_to)
            continue
        if target.is_file() and md5(target) == remote.md5:
            log.info("%s already present and verified", target)
        else:
            _fetch(remote, target, progress, timeout)
        if remote.unpacks_to:
            _unpack(target, folder, remote.unpacks_to)
            target.unlink()
    return folder


def md5(path: Path) -> str:
    """MD5 of a file (the checksum datasets publish), read in chunks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(remote: Remote, target: Path, progress: bool, timeout: float) -> None:
    """Download ``remote`` to ``target`` through a ``.part`` file, resuming it if one is there; verify; rename."""
    part = target.with_name(f".{target.name}.part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(remote.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already whole
            response = None
        else:
            raise YocoError(f"{remote.url}: download failed (HTTP {exc.code} {exc.reason})") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise YocoError(f"{remote.url}: cannot connect ({reason}); are you offline? The dataset can also be put in "
                        f"{target.parent} by hand") from None
    if response is not None:
        with response:
            # file:// and other non-HTTP sources give a plain file object: no status, no length
            length, status = getattr(response, "length", None), getattr(response, "status", None)
            resumed = have and status == 206
            total = length + (have if resumed else 0) if length is not None else None
            mode = "ab" if resumed else "wb"
            with open(part, mode) as fh, tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                                              desc=target.name, disable=not progress, leave=False) as bar:
                try:
                    while chunk := response.read(1 << 20):
                        fh.write(chunk)
                        bar.update(len(chunk))
                    short = total is not None and fh.tell() < total
                except (http.client.HTTPException, OSError):
                    short = True
                if short:
                    raise YocoError(f"{remote.url}: download interrupted after {fh.tell()} bytes; run the command "
                                    "again to resume it")
    got = md5(part)
    if got != remote.md5:
        part.unlink()
        raise YocoError(f"{remote.url}: checksum mismatch (MD5 {got}, published {remote.md5}); the partial file was "
                        "removed, run the command again")
    os.replace(part, target)


def _unpack(archive: Path, folder: Path, expect: str) -> None:
    """Unpack ``archive`` into ``folder`` through a temporary folder; members may not escape it."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", dir=folder))
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                dest = (tmp / member.name).resolve()
                if not dest.is_relative_to(tmp.resolve()) or member.issym() or member.islnk():
                    raise YocoError(f"{archive}: member {member.name!r} would be written outside the dataset folder; "
                                    "refusing to unpack it")
            tar.extractall(tmp, filter="data")
        if not (tmp / expect).is_dir():
            raise YocoError(f"{archive}: expected the archive to hold {expect}/, found {sorted(os.listdir(tmp))}")
        os.replace(tmp / expect, folder / expect)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise YocoError(f"{archive}: cannot unpack ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
