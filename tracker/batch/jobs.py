"""The work of one batch job, in a worker process: a session (as `siamtrack track --boxes` runs it) from the
job's video into its box file DIR/<name>.csv (or .txt for --format mot / otb), with the tracker each worker loads
once."""
from __future__ import annotations

import ctypes
import hashlib
import json
import multiprocessing
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2

from ..errors import UserError
from ..outputs import box_format
from ..session import Outputs, Session
from ..sources import FrameSource
from ..tracking import SiamTracker
from .manifest import Job

PROGRESS_EVERY = 20  # frames between a worker's progress reports


@dataclass(frozen=True)
class Settings:
    """What every worker builds its tracker from (picklable, so it reaches pool and Ray workers alike)."""

    weights: str | None = None
    engine: str = "auto"
    device: str = "auto"
    threads: int = 1
    allow_truncated: bool = False
    overrides: tuple = field(default_factory=tuple)  # (key, value) pairs of tracking hyperparameters
    box_file_format: str = "csv"  # --format: what the box files are

    def identity(self) -> dict:
        """The settings that change the results (not threads or device), for the job key. The box file format
        counts only when it is not csv, so that a DIR tracked before --format existed is still this one."""
        identity = {"weights": str(Path(self.weights).resolve()) if self.weights else None, "engine": self.engine,
                    "overrides": [list(kv) for kv in self.overrides]}
        if self.box_file_format != "csv":
            identity["format"] = self.box_file_format
        return identity


def box_file(out_dir: str | Path, job: Job, settings: Settings) -> Path:
    """Where a job's boxes go: DIR/<name> with its format's usual suffix (.csv; .txt for mot and otb)."""
    return Path(out_dir) / f"{job.name}{box_format(settings.box_file_format).suffixes[0]}"


def job_key(job: Job, settings: Settings) -> str:
    """Identity of a job's result: the same video, box, start and model give the same CSV."""
    text = json.dumps({"job": asdict(job), "settings": settings.identity()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_TRACKERS: dict = {}  # Settings -> a loaded SiamTracker, one per worker process: the network loads once
_PROGRESS = None  # the pool's progress queue, set by _init_pool_worker


def _init_pool_worker(settings: Settings, progress_queue) -> None:
    global _PROGRESS
    _die_with_parent()
    _PROGRESS = progress_queue
    _configure_threads(settings.threads)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> None:
    """A worker whose batch is killed (kill -9, OOM killer) is killed too, instead of idling on with its network
    loaded: Linux sends it SIGKILL when the parent dies. Elsewhere a batch killed hard leaves its workers to exit
    when their job ends and the pool's pipe is found closed."""
    if not sys.platform.startswith("linux"):
        return
    parent = multiprocessing.parent_process()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent.pid:
        os._exit(1)  # the parent died before prctl took effect: nobody would send the signal


def _configure_threads(threads: int) -> None:
    """Each worker keeps to its share of the cores (onnxruntime gets it explicitly, see _tracker)."""
    cv2.setNumThreads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _tracker(settings: Settings):
    shared = _TRACKERS.get(settings)
    if shared is None:
        shared = SiamTracker.from_pretrained(settings.weights, device=settings.device, engine=settings.engine,
                                             threads=settings.threads, **dict(settings.overrides))
        _TRACKERS[settings] = shared
    return SiamTracker(shared.engine, shared.config)


class _QueueProgress:
    """The session's progress bar in a worker: every PROGRESS_EVERY frames, a message to the pool's queue."""

    def __init__(self) -> None:
        self.frames = self.reported = 0

    def update(self, n: int = 1) -> None:
        self.frames += n
        if _PROGRESS is not None and self.frames - self.reported >= PROGRESS_EVERY:
            _PROGRESS.put(("frames", self.frames - self.reported))
            self.reported = self.frames

    def set_postfix(self, **_) -> None:
        pass

    def close(self) -> None:
        pass


def track_job(job: Job, settings: Settings, out_dir: str) -> dict:
    """Track one video into its box file in out_dir (a session as `siamtrack track --boxes --format` runs it);
    never raises for a bad job: the result says what went wrong."""
    started = time.perf_counter()
    progress = _QueueProgress()
    if _PROGRESS is not None:
        _PROGRESS.put(("start", job.name))
    try:
        tracker = _tracker(settings)
        source = FrameSource(job.video, allow_truncated=settings.allow_truncated, start=job.start)
        outputs = Outputs(boxes=box_file(out_dir, job, settings), format=settings.box_file_format,
                          boxes_flag="box file")
        session = Session(source, outputs, progress)
        try:
            session.run(session.start(lambda: tracker, [job.box], f"{job.video} has no frames from frame {job.start}"))
            error = session.sinks.close()  # on failure it keeps the partial file and says so: nothing to discard
            if error is not None:
                raise error
        finally:
            source.close()
            session.sinks.discard()  # a failed job leaves no CSV: only finished ones count as done
    except Exception as exc:  # noqa: BLE001  one bad video must not stop the batch; the error is recorded
        error = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        return {"status": "failed", "error": error, "frames": progress.frames,
                "seconds": time.perf_counter() - started, "reported": progress.reported}
    return {"status": "done", "frames": progress.frames, "seconds": time.perf_counter() - started,
            "reported": progress.reported, "pid": os.getpid()}


def _ray_track_job(job: Job, settings: Settings, out_dir: str) -> dict:
    _configure_threads(settings.threads)
    return track_job(job, settings, out_dir)
