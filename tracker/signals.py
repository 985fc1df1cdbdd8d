"""Stopping a command by signal as cleanly as by Ctrl-C: the files it writes are finished, never cut off."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


class Signalled(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread so that a run ends like Ctrl-C: outputs finished, exit 128+N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class SignalGuard:
    """SIGINT, SIGTERM and SIGHUP become exceptions in the main thread (KeyboardInterrupt, Signalled), so that a
    run stopped by a service manager, `timeout` or a closed terminal finishes its files as Ctrl-C does; unhandled,
    SIGTERM would kill the process before the video's index is written, leaving it unplayable.

    Inside `deferred()` a signal only takes note: it is acted on when the block ends, so that one frame's CSV row
    and video frame are written together or not at all. After the first signal, more are ignored: they must
    not interrupt the finishing of the files."""

    HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self._previous: dict = {}
        self._deferring = False
        self._pending: int | None = None

    def __enter__(self) -> "SignalGuard":
        if threading.current_thread() is threading.main_thread():  # an embedding app's threads keep their own
            # A signal the process was started ignoring (nohup: SIGHUP; `cmd &` from a script: SIGINT) stays ignored.
            self._previous = {s: signal.signal(s, self._handle) for s in self.HANDLED
                              if signal.getsignal(s) is not signal.SIG_IGN}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    @property
    def pending(self) -> int | None:
        """The signal that stopped (or, while the files were finished, would have stopped) the run."""
        return self._pending

    def _handle(self, signum, _frame) -> None:
        if self._pending is not None:
            return
        self._pending = signum
        if not self._deferring:
            self._raise()

    def _raise(self) -> None:
        if self._pending == signal.SIGINT:
            raise KeyboardInterrupt
        raise Signalled(self._pending)

    @contextmanager
    def deferred(self, then_raise: bool = True):
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if then_raise and self._pending is not None:
            self._raise()
