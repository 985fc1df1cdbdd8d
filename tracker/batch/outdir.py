"""What keeps a batch's --out folder consistent: one batch at a time (a lock), and one set of settings (the
boxes of a rerun with other settings must not be taken for this run's)."""
from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import UserError
from .done import DONE_LOG

LOCK_FILE = ".batch.lock"
SETTINGS_FILE = "batch-settings.json"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; two batches on one --out are the user's to avoid
    fcntl = None


class OutDirLock:
    """An exclusive flock on DIR/.batch.lock for the whole run, holding the batch's pid. The kernel drops it when
    the process ends, however it ends (kill -9 included), so a stale lock never blocks a rerun."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> "OutDirLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"cannot create the lock file {self.path}: {exc.strerror}") from None
        if fcntl is None:
            return self
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise UserError(f"{self.path.parent} is in use by another siamtrack batch (pid {holder}): wait for it "
                            "to end, or give this one another --out") from None
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid only makes the message of a second batch clearer; the lock holds without it
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock; the file stays (removing it would race with a new batch)
            self.fd = None


def check_settings(out_dir: Path, identity: dict, restart: bool) -> None:
    """Refuse a DIR whose CSVs were tracked with other settings (weights, engine, --set): a rerun would take them
    for its own. The first run (or --restart) records its settings in DIR/batch-settings.json."""
    path = out_dir / SETTINGS_FILE
    recorded = _recorded_settings(path)
    if restart:
        _set_aside(out_dir / DONE_LOG)
    elif recorded is not None and recorded != identity:
        difference = _difference(recorded, identity)
        raise UserError(f"{out_dir} holds the results of a batch with other settings ({difference}): give another "
                        "--out, or add --restart to track every job again with these settings")
    if recorded != identity or restart:
        _write_atomically(path, json.dumps({"settings": identity}, indent=1, sort_keys=True) + "\n")


def _recorded_settings(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())["settings"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} cannot be read ({exc}): remove it, or add --restart to track every job "
                        "again") from None


def _difference(recorded: dict, identity: dict) -> str:
    keys = sorted(k for k in set(recorded) | set(identity) if recorded.get(k) != identity.get(k))
    return "; ".join(f"{k}: {_setting_text(k, recorded.get(k))} there, {_setting_text(k, identity.get(k))} now"
                     for k in keys)


_UNSET = {"weights": "the shipped weights", "format": "csv"}  # what a setting left out of the identity means


def _setting_text(key: str, value) -> str:
    if isinstance(value, list):  # the --set overrides: [[key, value], ...]
        return " ".join(f"--set {k}={v}" for k, v in value) or "no --set"
    return _UNSET.get(key, "none") if value is None else str(value)


def _set_aside(done_log: Path) -> None:
    """--restart: the old done.jsonl is kept beside, renamed, rather than deleted."""
    if done_log.exists():
        try:
            os.replace(done_log, done_log.with_name(f"done-before-restart.{os.getpid()}.jsonl"))
        except OSError as exc:
            raise UserError(f"cannot set aside {done_log} for --restart: {exc.strerror}") from None


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror}: free some space (or fix the folder's "
                        "permissions) and rerun") from None
