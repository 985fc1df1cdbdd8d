"""Progress for long runs: a tqdm bar on a terminal; in a log file or a pipe, a plain line now and then instead
(a bar's carriage returns turn a log into one unreadable line). Every long command uses this."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm


class PlainProgress:
    """The part of tqdm's interface the commands use (update, set_postfix, set_postfix_str, close, iteration),
    printing `desc: n/total unit, rate` every `every` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, every: float = 10.0, file=None,
                 iterable=None) -> None:
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.iterable = iterable
        self.file = file or sys.stderr
        self.n = 0
        self.postfix = ""
        self._started = self._printed = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._printed >= self.every:
            self._printed = now
            self._line(now)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items() if k != "refresh")

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = str(text)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def _line(self, now: float) -> None:
        seconds = now - self._started
        rate = f"{self.n / seconds:.1f} {self.unit}/s" if seconds > 0 else ""
        of = f"/{self.total}" if self.total else ""
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}s, {rate}{extra}", file=self.file, flush=True)

    def close(self) -> None:
        pass


def progress(total: int | None = None, desc: str = "", unit: str = "frame", quiet: bool = False, iterable=None,
             leave: bool = True):
    """A tqdm bar when stderr is a terminal, PlainProgress otherwise; nothing at all (a disabled bar) if quiet.
    With `iterable`, iterate over the result as over tqdm(iterable)."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if quiet or sys.stderr.isatty():
        return tqdm(iterable, total=total, unit=unit, desc=desc, dynamic_ncols=True, disable=quiet, file=sys.stderr,
                    leave=leave)
    return PlainProgress(total, desc.strip(), unit, iterable=iterable)
