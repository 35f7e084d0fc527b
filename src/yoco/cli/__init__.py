"""The ``yoco`` command: each sub-command declares its arguments beside its handler and maps them onto the
library; defaults live in the library's configs (an option left out means "the config's default", never 0).

Every command checks its outputs before any work starts (an output may not overwrite an input or another
output, and its folder must be writable). User errors print one line and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from yoco.cli import data, prune, train  # noqa: F401  (each registers its commands, in this order)
from yoco.cli.base import COMMANDS, _Help, _Parser
from yoco.errors import YocoError

CONFIGURABLE = ("evaluate", "condense", "ladder")  # the commands that take --config FILE

# One example per command, shown under its --help
EXAMPLES = {
    "datasets": "yoco datasets --dataset mnist --data-root ~/data/mnist",
    "download": "yoco download cifar10",
    "show": "yoco show idc-cifar10-ipc10.safetensors --png grid.png",
    "import": "yoco import mtt/CIFAR10/ipc10/images_best.pt --zca --dataset cifar10 --out mtt10.safetensors",
    "export": "yoco export mtt10.safetensors --format dd-ranking --out for-ddranking/",
    "sample": "yoco sample --dataset fashion-mnist --ipc 10 --out real10.safetensors",
    "evaluate": "yoco evaluate idc10.safetensors --dataset cifar10 --repeat 3 --out idc10.eval.json",
    "condense": "yoco condense --dataset fashion-mnist --ipc 10 --out idc10.safetensors",
    "dynamics": "yoco dynamics idc10.safetensors --out idc10.dyn.safetensors",
    "score": "yoco score idc10.dyn.safetensors --out idc10.scores.safetensors --csv idc10.scores.csv",
    "prune": "yoco prune idc10.safetensors --scores idc10.scores.safetensors --rule yoco --ipc 1 --out ipc1.safetensors",
    "ladder": "yoco ladder idc10.safetensors --dataset cifar10 --ipcs 1,2,5 --out runs/ladder",
    "report": "yoco report runs/ladder --html",
    "demo": "yoco demo --out runs/demo",
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The full argument parser (also used to render ``--help``) and each command's sub-parser."""
    from yoco.provenance import version

    parser = _Parser(prog="yoco", description="Condense once, prune to any size (YOCO).", formatter_class=_Help,
                     epilog="example:\n  yoco demo                      # the whole job on Fashion-MNIST, on a CPU\n"
                     "  yoco COMMAND --help            # each command's options and an example")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"yoco {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    subs = {}
    for name in COMMANDS.names():
        cmd = COMMANDS.get(name)
        p = sub.add_parser(name, help=cmd.help, description=cmd.help, formatter_class=_Help,
                           epilog="example:\n  " + EXAMPLES[name] if name in EXAMPLES else None)
        p.set_defaults(handler=cmd.arguments(p))
        if name in CONFIGURABLE:
            p.add_argument("--config", default=None, metavar="FILE",
                           help="TOML, JSON or YAML file (by its suffix) of this command's options, by their long "
                           "names; options given on the command line win; the file is copied beside the results")
        subs[name] = p
    return parser, subs


def _apply_config(sub: argparse.ArgumentParser, path: str) -> None:
    """Make the options in ``path`` the sub-parser's defaults (no longer required), so the command line wins."""
    from yoco.files import load_config

    values, text = load_config(path)
    actions = {a.dest: a for a in sub._actions if a.option_strings}
    defaults: dict[str, Any] = {}
    for raw_key, value in values.items():
        dest = str(raw_key).replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in ("config", "help"):
            known = sorted(d.replace("_", "-") for d in actions if d not in ("config", "help"))
            raise YocoError(f"{path}: unknown option {raw_key!r}; known: {', '.join(known)}")
        defaults[dest] = _config_value(path, raw_key, value, action)
        action.required = False
    sub.set_defaults(**defaults, config_text=text)


def _config_path(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def _config_value(path: str, key: str, value: Any, action: argparse.Action) -> Any:
    """A config-file value as argparse would have parsed it from the command line."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise YocoError(f"{path}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        if isinstance(value, dict):
            items = [f"{k}={v}" for k, v in value.items()]
        return [action.type(str(v)) if action.type else str(v) for v in items]
    text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
    try:
        parsed = action.type(text) if action.type else text
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise YocoError(f"{path}: {key}: {exc}") from None
    if action.choices is not None and parsed not in action.choices:
        raise YocoError(f"{path}: {key} must be one of {', '.join(map(str, action.choices))}, got {parsed!r}")
    return parsed


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``yoco`` console script."""
    parser, subs = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    config = _config_path(argv)
    if name in CONFIGURABLE and config:
        try:
            _apply_config(subs[name], config)
        except YocoError as exc:
            print(f"yoco: error: {exc}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except YocoError as exc:
        print(f"yoco: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk or a vanished folder while writing: atomic writes left nothing behind
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"yoco: error: {where}{exc.strerror or exc}; nothing half-written was kept", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("yoco: interrupted; finished files are complete, nothing half-written was kept", file=sys.stderr)
        return 130

