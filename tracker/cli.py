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

    for module in ("tracker.app", "tracker.batch", "tracker.evaluation.cli", "tracker.training.cli",
                   "tracker.training.verifier_cli", "tracker.export.cli"):
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


def _reopen_closed_standard_streams() -> None:
    """A standard stream closed by the caller (`2>&-`) is reopened on /dev/null: Python would otherwise have no
    sys.stderr to print progress to, and the first file the run opens would take descriptor 2, so that every log
    line OpenCV or FFmpeg writes to "stderr" would land in the CSV."""
    for fd, mode, name in ((0, os.O_RDONLY, "stdin"), (1, os.O_WRONLY, "stdout"), (2, os.O_WRONLY, "stderr")):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, mode)  # the lowest free descriptor: fd itself
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))


def _silence_stdout(stdout) -> None:
    """After a failed write, point stdout at /dev/null so that Python's own flush at exit does not fail again
    (and print a second, unhelpful message)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass  # not a real file (a test's captured stdout): nothing will flush it at exit


class _StdoutFailed(Exception):
    """Writing stdout failed (the OSError is in `error`): told apart from an OSError of any other file."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class _GuardedStdout:
    """sys.stdout while a command runs: its write and flush errors become _StdoutFailed."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise _StdoutFailed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise _StdoutFailed(exc) from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _run(args) -> int:
    """The command with stdout guarded, then a flush of it: a pipe that closed or a full disk behind stdout shows
    here as one line rather than as a traceback at exit."""
    stdout = sys.stdout
    sys.stdout = _GuardedStdout(stdout)
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()
    except _StdoutFailed as failed:
        _silence_stdout(stdout)
        if isinstance(failed.error, BrokenPipeError):  # `siamtrack bench ... | head -1`: the reader has enough
            return 128 + signal.SIGPIPE
        raise UserError(f"cannot write the standard output: {failed.error.strerror or failed.error}; the results "
                        "that were not printed are lost (files such as --json are written before printing)") from None
    finally:
        sys.stdout = stdout
    return status


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
    _reopen_closed_standard_streams()
    # FFmpeg (inside OpenCV) writes its own log to stderr: hundreds of lines for a stream of garbage or a
    # damaged frame, burying the one-line message that says what is wrong. OpenCV reads this once, when it
    # first uses FFmpeg; OPENCV_FFMPEG_LOGLEVEL=16 (errors) in the environment brings the log back.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return _run(args)
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
