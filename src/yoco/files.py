"""Atomic file writing: every result file appears whole or not at all.

Each writer writes to a temporary name in the target's folder, then renames it over the target, so a
Ctrl-C or a crash never leaves a half-written file behind and never destroys an older complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yoco.errors import YocoError

if TYPE_CHECKING:
    import torch


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (NaN and infinity are refused: use None)."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable, allow_nan=False)
    return write_text(path, text + "\n")


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], header: dict[str, str] | None = None) -> Path:
    """Write ``tensors`` (and string ``header`` entries) as one safetensors file, atomically: no pickle."""
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    return atomic_write(path, lambda p: save_file(tensors, str(p), metadata=header))


def read_tensors(path: str | Path, what: str) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """Read a safetensors file as ``(header, tensors)``; a missing or unreadable file is a YocoError.

    ``what`` names the expected kind of file in the message ("condensed-set file", "dynamics file", ...).
    """
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise YocoError(f"{path}: no such {what}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise YocoError(f"{path}: not a yoco {what} ({exc})") from None
    return header, tensors


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks: ties a result to the exact file it was computed from."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_config(path: str | Path) -> dict[str, Any]:
    """A TOML file (or YAML, when PyYAML is installed) of option names and values, as a dict."""
    path = Path(path)
    if not path.is_file():
        raise YocoError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise YocoError(f"{path}: YAML config files need PyYAML (pip install pyyaml); TOML needs nothing") from None
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise YocoError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    else:
        import tomllib

        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise YocoError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(values, dict):
        raise YocoError(f"{path}: a config file must map option names to values")
    return values


def check_outputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path] = ()) -> list[Path]:
    """Refuse, before any work starts, outputs that would destroy an input or each other, or cannot be written.

    An output may not be (or resolve to, through links) one of ``inputs`` or another output; it must not be a
    folder, and its folder must exist or be creatable and be writable. Returns the outputs as paths.
    """
    outs = [Path(o) for o in outputs]
    seen: dict[Path, Path] = {}
    for out in outs:
        key = out.resolve()
        if key in seen:
            raise YocoError(f"{out}: the same file is asked for twice as output ({seen[key]} and {out})")
        seen[key] = out
        for inp in inputs:
            if key == Path(inp).resolve() or (out.exists() and Path(inp).exists() and os.path.samefile(out, inp)):
                raise YocoError(f"{out}: output is the input file {inp}; refusing to overwrite it (choose another "
                                "output path)")
        if out.is_dir():
            raise YocoError(f"{out}: output is an existing folder, not a file path")
        folder = _existing_parent(out)
        if not folder.is_dir():
            raise YocoError(f"{out}: cannot create its folder: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise YocoError(f"{out}: folder {folder} is not writable")
        if out.exists() and not os.access(out, os.W_OK) and not os.access(out.parent, os.W_OK):
            raise YocoError(f"{out}: file exists and cannot be replaced")
    return outs


def _existing_parent(path: Path) -> Path:
    """The nearest folder on ``path``'s way up that exists (where its missing folders would be created)."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
