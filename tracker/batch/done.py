"""What a batch run leaves for the next one: DIR/done.jsonl (the jobs finished or failed), and the partial files
of workers that are gone."""
from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

from ..errors import UserError
from .manifest import Job

DONE_LOG = "done.jsonl"


class DoneLog:
    """DIR/done.jsonl: one JSON line per finished or failed job, appended and synced as each one ends."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / DONE_LOG
        self.done: dict[str, dict] = {}
        self.csv_key: dict[str, str] = {}  # job name -> key of the last done record: the run that wrote its box file
        try:
            text = self.path.read_text(errors="replace") if self.path.is_file() else ""
            if text and not text.endswith("\n"):
                # A line cut short by a hard kill: end it, so the next record starts a line of its own.
                self._append(b"\n")
        except OSError as exc:
            raise UserError(f"cannot update {self.path}: {exc.strerror or exc}: free some space (or fix the "
                            "folder's permissions) and rerun") from None
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # that job is simply not done
            if not isinstance(entry, dict):
                continue
            if entry.get("status") == "done":
                self.done[entry.get("key")] = entry
                self.csv_key[entry.get("name")] = entry.get("key")
            else:
                self.done.pop(entry.get("key"), None)

    def is_done(self, job: Job, key: str, box_file: Path) -> bool:
        # The box file must be this job's: a later line of another job with the same name (a manifest line changed
        # and changed back) overwrote it.
        return key in self.done and self.csv_key.get(job.name) == key and box_file.is_file()

    def record(self, job: Job, key: str, result: dict) -> None:
        entry = {"key": key, "name": job.name, "video": job.video, "box": list(job.box), "start": job.start,
                 **{k: result[k] for k in ("status", "frames", "seconds") if k in result}}
        if result.get("error"):
            entry["error"] = result["error"]
        entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self._append((json.dumps(entry) + "\n").encode())
        except OSError as exc:
            raise UserError(f"cannot record {job.name} in {self.path}: {exc.strerror or exc}: free some space and "
                            "rerun (the finished CSVs are kept; the rerun tracks the jobs not recorded)") from None

    def _append(self, line: bytes) -> None:
        """The whole line or nothing: a write that fails part way (a full disk) is cut back off, so the log never
        ends in half a record."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:  # a short write is followed by one that raises the reason (ENOSPC, EFBIG)
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):  # not a regular file (/dev/full): nothing to cut back
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)


def _is_running(pid: int) -> bool:
    """A live process (not a zombie: a killed worker may wait a moment to be reaped, and writes nothing more)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): trust kill()
    return state not in ("Z", "X")


def remove_stale_partials(out_dir: Path) -> int:
    """Partial box files left by processes that are gone (a killed worker, a killed batch)."""
    removed = 0
    for partial in out_dir.glob(".*.partial.*"):
        match = re.search(r"\.(\d+)\.partial\.(csv|txt)$", partial.name)
        if not match:
            continue
        if _is_running(int(match.group(1))):
            continue
        partial.unlink(missing_ok=True)
        removed += 1
    return removed
