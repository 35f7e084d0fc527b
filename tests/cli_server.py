"""Runs ``yoco`` commands for the adversarial suite, each in a forked child of one process that imported yoco once.

The suite starts this file as a subprocess under an address-space limit (``resource.setrlimit`` in its preexec), so
every child inherits the limit: a command that tried to allocate what a hostile file claims fails there instead of
taking the machine down. Each request is one JSON line on stdin: ``argv``, ``cwd``, the files for the child's stdout
and stderr, and optionally ``fsize`` (a file-size limit, so writing past it fails as a full disk would). Each answer
is one JSON line: the exit status and the child's peak resident memory in KiB. Imports stay ahead of the fork and no
thread is started here, so the children start from a clean copy.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback


def child(request: dict) -> None:
    """Run one command as ``python -m yoco.cli`` would, then leave without running the parent's cleanup."""
    from yoco import cli

    os.chdir(request["cwd"])
    for fd, name in ((1, request["stdout"]), (2, request["stderr"])):
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    if request.get("fsize") is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails (EFBIG) as on a full disk
        resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"], request["fsize"]))
    signal.alarm(int(request.get("timeout", 300)))  # a command that hangs is killed (and reported by its signal)
    sys.argv = ["yoco", *request["argv"]]
    try:
        code = cli.main(request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - what the interpreter would print for an uncaught exception
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    import torch  # noqa: F401 - imported once here, before any fork

    from yoco import cli  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                child(request)
            finally:
                os._exit(70)
        _, status, usage = os.wait4(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"rc": code, "maxrss_kib": usage.ru_maxrss}), flush=True)


if __name__ == "__main__":
    main()
