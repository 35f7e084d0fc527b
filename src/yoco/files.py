"""Atomic file writing: every result file appears whole or not at all.

Each writer writes to a temporary name in the target's folder, then renames it over the target, so a
Ctrl-C or a crash never leaves a half-written file behind and never destroys an older complete one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
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
    except OSError as exc:  # a full disk names the file it was writing, not the temporary (or nothing)
        tmp_path.unlink(missing_ok=True)
        raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(path)) from None
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
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=header)
        except SafetensorError as exc:  # the Rust writer's I/O errors (a full disk) arrive as this, not OSError
            code = re.search(r"code: (\d+)", str(exc))
            number = int(code.group(1)) if code else errno.EIO
            raise OSError(number, os.strerror(number) if code else str(exc).splitlines()[0][:200], str(tmp)) from None

    return atomic_write(path, write)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` (which must be missing or empty); on success rename it to ``path``,
    on error delete it, so a folder of results appears whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, path)  # an empty folder at ``path`` is replaced; a non-empty one is an error
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def sha256_of(parts: Iterable[bytes | str | torch.Tensor]) -> str:
    """sha256 over ``parts`` in order: text as UTF-8, a tensor as its raw bytes in row-major order. The one way
    yoco hashes content (sets, datasets, dynamics), so digests recorded in results stay comparable."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, str):
            part = part.encode()
        elif not isinstance(part, (bytes, bytearray)):
            part = part.detach().cpu().contiguous().numpy().tobytes()
        h.update(part)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, read in chunks: ties a result to the exact file it was computed from."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MAX_CONFIG_BYTES = 1 << 20  # a config file of options is a few hundred bytes; a larger one is not a config file


def read_config(path: str | Path) -> dict[str, Any]:
    """A TOML or JSON file (or YAML, when PyYAML is installed) of option names and values, as a dict."""
    return load_config(path)[0]


def load_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """``(values, text)`` of a TOML, JSON (``.json``) or YAML (``.yaml``, ``.yml``) config file, read once: the
    text is what a copy beside the results holds, so it is the file as it was when the command started. Duplicate
    keys, text that is not UTF-8 and files over :data:`MAX_CONFIG_BYTES` are refused."""
    path = Path(path)
    if not path.is_file():
        raise YocoError(f"{path}: no such config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise YocoError(f"{path}: {path.stat().st_size} bytes, more than the {MAX_CONFIG_BYTES} a config file may hold")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YocoError(f"{path}: a config file must be UTF-8 text (byte {exc.start} is not)") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        values = _yaml(path, text)
    elif path.suffix.lower() == ".json":
        values = _json(path, text)
    else:
        import tomllib

        try:
            values = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError) as exc:
            raise YocoError(f"{path}: not valid TOML ({str(exc).splitlines()[0][:200] or type(exc).__name__})") from None
    if not isinstance(values, dict):
        raise YocoError(f"{path}: a config file must map option names to values")
    return values, text


def _json(path: Path, text: str) -> Any:
    """A JSON config's values; a key given twice is an error (``json`` keeps the last silently)."""

    def strict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"option {key!r} is given twice")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=strict)
    except (ValueError, RecursionError) as exc:
        raise YocoError(f"{path}: not valid JSON ({str(exc)[:200] or type(exc).__name__})") from None


def _yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise YocoError(f"{path}: YAML config files need PyYAML (pip install pyyaml); TOML needs nothing") from None

    class Strict(yaml.SafeLoader):
        """PyYAML's safe loader, except that a key given twice is an error (PyYAML keeps the last silently)."""

        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"option {key!r} is given twice",
                                                            key_node.start_mark)
                seen.add(key if isinstance(key, (str, int, float, bool)) else id(key))
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=Strict)
    except (yaml.YAMLError, RecursionError) as exc:
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise YocoError(f"{path}: not valid YAML ({detail})") from None


def check_outputs(outputs: Iterable[str | Path], inputs: Iterable[str | Path] = (),
                  folders: Iterable[str | Path] = ()) -> list[Path]:
    """Refuse, before any work starts, outputs that would destroy an input or each other, or cannot be written.

    ``inputs`` are every file a command reads (its sets, score tables, config files, the dataset's files) and the
    folders it reads whole (an image-folder tree): an output may not be (or resolve to, through links, or be a
    hard link of) an input file, nor lie inside an input folder. ``outputs`` are files: none may be another output
    or a folder, and its folder must exist or be creatable and be writable. ``folders`` are output folders written
    whole (an export): each must be missing or a folder, and may neither lie inside an input folder nor hold an
    input. Returns the outputs as paths.
    """
    ins = [Path(i) for i in inputs]
    outs = [Path(o) for o in outputs]
    seen: dict[Path, Path] = {}
    for out in outs:
        key = out.resolve()
        if key in seen:
            raise YocoError(f"{out}: the same file is asked for twice as output ({seen[key]} and {out})")
        seen[key] = out
        _not_an_input(out, key, ins)
        if out.is_dir():
            raise YocoError(f"{out}: output is an existing folder, not a file path")
        _writable(out)
        if out.exists() and not os.access(out, os.W_OK) and not os.access(out.parent, os.W_OK):
            raise YocoError(f"{out}: file exists and cannot be replaced")
    for folder in (Path(f) for f in folders):
        key = folder.resolve()
        _not_an_input(folder, key, ins)
        if folder.exists() and not folder.is_dir():
            raise YocoError(f"{folder}: exists and is not a folder")
        for inp in ins:
            if inp.resolve().is_relative_to(key):
                raise YocoError(f"{folder}: output folder holds the input {inp}; refusing to write there (choose "
                                "another output folder)")
        for out in outs:
            if key.is_relative_to(out.resolve()) or out.resolve().is_relative_to(key):
                raise YocoError(f"{folder}: output folder and output file {out} overlap")
        _writable(folder)
    return outs


def _not_an_input(out: Path, key: Path, inputs: list[Path]) -> None:
    for inp in inputs:
        where = inp.resolve()
        if key == where or (out.exists() and inp.exists() and os.path.samefile(out, inp)):
            raise YocoError(f"{out}: output is the input {inp}; refusing to overwrite it (choose another output path)")
        if where.is_dir() and key.is_relative_to(where):
            raise YocoError(f"{out}: output is inside the input folder {inp}; refusing to write there (choose "
                            "another output path)")


def _writable(out: Path) -> None:
    folder = _existing_parent(out)
    if not folder.is_dir():
        raise YocoError(f"{out}: cannot create its folder: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise YocoError(f"{out}: folder {folder} is not writable")


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
