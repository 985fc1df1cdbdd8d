"""`siamtrack` command line: track and webcam (tracker.app), batch, eval and bench (tracker.evaluation), and the
training/export tools; each module adds its own subcommands."""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys

from . import __version__
from .errors import UserError
from .signals import Signalled
from .sources import wait_for_readers


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siamtrack", description="Real-time siamese single-object tracker.")
    parser.add_argument("--version", action="version", version=f"siamtrack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    for module in ("tracker.app", "tracker.batch", "tracker.evaluation.cli", "tracker.training.cli", "tracker.export.cli"):
        try:
            __import__(module, fromlist=["add_subcommands"]).add_subcommands(sub)
        except ModuleNotFoundError as exc:
            # Only a missing optional part of siamtrack is skipped; a missing dependency inside it is a real error.
            if not (exc.name and module.startswith(exc.name)):
                raise
    return parser


# Options whose value may start with '-' (a box left of or above the frame): argparse would take "-10,-10,50,50"
# for an unknown option, so such a value is joined to its option as --box=-10,-10,50,50.
_NEGATIVE_VALUE_OPTIONS = ("--box",)
_LOOKS_NEGATIVE = re.compile(r"^-(\d|\.\d)")


def _join_negative_values(argv: list[str]) -> list[str]:
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in _NEGATIVE_VALUE_OPTIONS and i + 1 < len(argv) and _LOOKS_NEGATIVE.match(argv[i + 1]):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    """The `siamtrack` program (argv None: sys.argv), or one command run in this process (argv given)."""
    status = _run_command(argv)
    if argv is None:
        _exit_safely(status)
    return status


def _exit_safely(status: int) -> None:
    """Leave only once no camera or stream reader is inside a read: one that returns while Python shuts down
    aborts the process (SIGABRT) after its outputs were written. Every output is finished by now, so a reader
    stuck past its backend's own timeout is left behind with os._exit, which skips the shutdown."""
    if not wait_for_readers():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


def _run_command(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"siamtrack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any work was done, or in a command without outputs to finish
        print("siamtrack: interrupted", file=sys.stderr)
        return 130
    except Signalled as stop:
        print(f"siamtrack: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
