"""One small registry type for everything looked up by name: models, formats, datasets, scores, selectors and
commands. Entries carry a one-line description (the CLI's ``--help`` shows it), aliases resolve to their
entry, a duplicate name is refused, and an unknown name is a :class:`YocoError` that lists the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from yoco.errors import YocoError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order. ``kind`` names the entries in messages ("model", "score", ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._descriptions: dict[str, str] = {}
        self._aliases: dict[str, str] = {}

    def add(self, name: str, entry: T, description: str = "", aliases: tuple[str, ...] = ()) -> T:
        """Register ``entry`` under ``name`` (and ``aliases``); a name already taken is a programming error."""
        for key in (name, *aliases):
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.kind} {key!r} is already registered")
        self._entries[name] = entry
        self._descriptions[name] = description or _first_line(entry)
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def register(self, name: str, description: str = "", aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of :meth:`add`; the description defaults to the first docstring line."""

        def wrap(entry: T) -> T:
            return self.add(name, entry, description, aliases)

        return wrap

    def remove(self, name: str) -> None:
        """Unregister ``name`` and its aliases (for tests and plugins that clean up after themselves)."""
        key = self.canonical(name)
        del self._entries[key], self._descriptions[key]
        self._aliases = {a: n for a, n in self._aliases.items() if n != key}

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; unknown names raise :class:`YocoError`."""
        key = self._aliases.get(name, name)
        if key not in self._entries:
            raise YocoError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}")
        return key

    def get(self, name: str) -> T:
        """The entry registered as ``name`` (or an alias of it)."""
        return self._entries[self.canonical(name)]

    def names(self) -> list[str]:
        """Registered names, in registration order (aliases not included)."""
        return list(self._entries)

    def describe(self, name: str) -> str:
        """The one-line description of ``name``."""
        return self._descriptions[self.canonical(name)]

    def help(self) -> str:
        """``name: description`` for every entry, one per line, for ``--help`` texts."""
        return "; ".join(f"{n}: {d}" if d else n for n, d in self._descriptions.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _first_line(entry: object) -> str:
    doc = getattr(entry, "__doc__", None) or ""
    lines = doc.strip().splitlines()
    return lines[0].strip() if lines else ""


def import_submodules(package: str, path: Iterable[str], first: tuple[str, ...] = (), skip: tuple[str, ...] = ("base",)
                      ) -> list[str]:
    """Import every module of ``package`` (whose ``__path__`` is ``path``): the ``first`` ones in that order, then
    the rest by name, leaving out ``skip``. How a package of methods registers each of them without a list to edit:
    a new method is a new file. Returns the module names imported."""
    import importlib
    import pkgutil

    found = sorted(m.name for m in pkgutil.iter_modules(list(path)) if m.name not in skip)
    missing = [m for m in first if m not in found]
    if missing:
        raise ImportError(f"{package}: the modules {missing} listed first are missing")
    order = list(first) + [m for m in found if m not in first]
    for name in order:
        importlib.import_module(f"{package}.{name}")
    return order
