"""Progress bars that suit where they are written.

On a terminal, tqdm's bar redrawn in place. Anywhere else (a log file, a pipe, a batch job's output) a redraw is a
carriage return that a file keeps, so a long run would leave thousands of them on one line: there the bar writes a
plain line at most every :data:`SPARSE_SECONDS` seconds, and its last state when it closes.
"""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm.auto import tqdm as _tqdm

SPARSE_SECONDS = 60.0  # between two progress lines written to something that is not a terminal


class _Lines:
    """A stream that writes each of tqdm's redraws as a line of its own, and drops the blank ones (clearing)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").replace("\x1b[A", "").rstrip()
        if line.strip():
            self._stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or odd stream is not)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


class tqdm(_tqdm):
    """``tqdm.auto.tqdm``, writing sparse plain lines when its stream is not a terminal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        stream = kwargs.get("file") or sys.stderr
        if not kwargs.get("disable") and not is_terminal(stream):
            kwargs["file"] = _Lines(stream)
            kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0.1)), SPARSE_SECONDS)
            kwargs["maxinterval"] = max(float(kwargs.get("maxinterval", 10.0)), SPARSE_SECONDS)
            kwargs["dynamic_ncols"] = False
            kwargs.setdefault("ncols", 100)
        super().__init__(*args, **kwargs)
