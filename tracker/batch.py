"""`siamtrack batch`: track many videos on a local process pool or a Ray cluster, resumably.

A manifest lists jobs (video, first box, start frame). Each finished job writes ``DIR/<name>.csv`` exactly as
``siamtrack track --boxes`` would (through the same writer: atomic, whole rows) and then appends a line to
``DIR/done.jsonl``. A rerun skips the jobs that line says are done, so an interrupted batch resumes where it
stopped and nothing is tracked twice; a failed job (an undecodable video, a bad box) is recorded with its
error, the others go on, and a rerun tries it again.

Manifests:

* CSV with a header: ``video,x,y,w,h`` (or ``video,box`` with "x,y,w,h" quoted), optional ``start`` and
  ``name`` columns;
* JSON lines: ``{"video": "a.mp4", "box": [x, y, w, h], "start": 0, "name": "a"}`` (start, name optional);
* a folder: each video with ``<stem>_init.txt`` or ``<stem>_groundtruth.txt`` beside it (first line: the box),
  and each subfolder holding one video plus ``groundtruth.txt`` (the val-hard layout).

Relative video paths are relative to the manifest. On a Ray cluster, the videos and DIR must be on a file
system every node sees.
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import multiprocessing
import os
import queue as queue_module
import re
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2

from .errors import UserError
from .options import add_model_options, check_model_options
from .outputs import check_output_dir
from .progress import progress as make_progress
from .result import Box, parse_box
from .session import Outputs, Session
from .signals import SignalGuard
from .sources import FrameSource, default_box
from .tracking import SiamTracker

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg"}
DONE_LOG = "done.jsonl"
MAX_ATTEMPTS = 3  # a job whose worker process dies is run again, at most this many times in all
PROGRESS_EVERY = 20  # frames between a worker's progress reports


@dataclass(frozen=True)
class Job:
    name: str  # the output file's stem; unique within a batch
    video: str  # absolute path
    box: Box
    start: int = 0


@dataclass(frozen=True)
class Settings:
    """What every worker builds its tracker from (picklable, so it reaches pool and Ray workers alike)."""

    weights: str | None = None
    engine: str = "auto"
    device: str = "auto"
    threads: int = 1
    allow_truncated: bool = False
    overrides: tuple = field(default_factory=tuple)  # (key, value) pairs of tracking hyperparameters

    def identity(self) -> dict:
        """The settings that change the boxes (not threads or device), for the job key."""
        return {"weights": str(Path(self.weights).resolve()) if self.weights else None, "engine": self.engine,
                "overrides": [list(kv) for kv in self.overrides]}


def job_key(job: Job, settings: Settings) -> str:
    """Identity of a job's result: the same video, box, start and model give the same CSV."""
    text = json.dumps({"job": asdict(job), "settings": settings.identity()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- manifests -------------------------------------------------------------------------------------------------


def _box_from_fields(values, where: str) -> Box:
    try:
        return parse_box(",".join(str(v) for v in values), flag="box")
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _start(value, where: str) -> int:
    if value in (None, ""):
        return 0
    try:
        start = int(str(value))
    except ValueError:
        raise UserError(f"{where}: start must be a whole number of frames, got {value!r}") from None
    if start < 0:
        raise UserError(f"{where}: start must be >= 0, got {start}")
    return start


def _video_path(text, base: Path, where: str) -> str:
    if not text:
        raise UserError(f"{where}: no video given")
    path = Path(str(text)).expanduser()
    return str((base / path).resolve() if not path.is_absolute() else path)


def _read_csv_manifest(path: Path) -> list[tuple[str | None, str, Box, int]]:
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a CSV saved by Excel starts with a BOM
        reader = csv.DictReader(f)
        if reader.fieldnames:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        columns = set(reader.fieldnames or [])
        if "video" not in columns or not ({"x", "y", "w", "h"} <= columns or "box" in columns):
            raise UserError(f"{path}: a CSV manifest needs a header with video and x,y,w,h (or box) columns, got "
                            f"{sorted(columns)}")
        for line, row in enumerate(reader, 2):
            where = f"{path.name} line {line}"
            values = [row["box"]] if "box" in columns and row.get("box") else [row.get(k) for k in "xywh"]
            rows.append((row.get("name") or None, _video_path(row.get("video"), path.parent, where),
                         _box_from_fields(values, where), _start(row.get("start"), where)))
    return rows


def _read_jsonl_manifest(path: Path) -> list[tuple[str | None, str, Box, int]]:
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not text.strip():
            continue
        where = f"{path.name} line {line}"
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or "video" not in entry or "box" not in entry:
            raise UserError(f'{where}: expected {{"video": ..., "box": [x, y, w, h]}}, got {text.strip()[:80]!r}')
        box = entry["box"]
        values = box if isinstance(box, (list, tuple)) else [box]
        rows.append((entry.get("name"), _video_path(entry["video"], path.parent, where),
                     _box_from_fields(values, where), _start(entry.get("start"), where)))
    return rows


def _read_folder_manifest(folder: Path) -> tuple[list, dict[str, str]]:
    """(jobs, problems): a video without a usable box file is a problem to report, not a reason to stop. The box
    files are found as `siamtrack bench` finds them (sources.default_box)."""
    rows, problems = [], {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            name, video, box_of = entry.stem, entry, entry
            missing = f"no {entry.stem}_init.txt or {entry.stem}_groundtruth.txt beside {entry.name}"
        elif entry.is_dir() and (entry / "groundtruth.txt").is_file():
            videos = sorted(p for p in entry.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if len(videos) != 1:
                problems[entry.name] = f"expected one video beside {entry.name}/groundtruth.txt, found {len(videos)}"
                continue
            name, video, box_of, missing = entry.name, videos[0], entry, ""
        else:
            continue
        try:
            box = default_box(box_of)
        except (OSError, ValueError) as exc:
            problems[name] = f"{box_of}: {exc}"
            continue
        if box is None:
            problems[name] = missing
            continue
        rows.append((name, str(video.resolve()), box, 0))
    return rows, problems


def read_manifest(path: str | Path) -> tuple[list[Job], dict[str, str]]:
    """(jobs, problems) from a CSV / JSONL manifest or a folder; names are made unique (a-2, a-3...)."""
    path = Path(path)
    problems: dict[str, str] = {}
    if path.is_dir():
        rows, problems = _read_folder_manifest(path)
    elif not path.is_file():
        raise UserError(f"manifest not found: {path}")
    elif path.suffix.lower() in (".csv", ".jsonl", ".json", ".ndjson"):
        read = _read_csv_manifest if path.suffix.lower() == ".csv" else _read_jsonl_manifest
        try:
            rows = read(path)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}): save the manifest as UTF-8") from None
        except csv.Error as exc:
            raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    else:
        raise UserError(f"{path}: a manifest is a .csv, a .jsonl or a folder of videos")
    jobs, taken = [], set()
    for name, video, box, start in rows:
        stem = re.sub(r"[^\w.-]+", "_", str(name or Path(video).stem)) or "job"
        unique, k = stem, 1
        while unique in taken:
            k += 1
            unique = f"{stem}-{k}"
        taken.add(unique)
        jobs.append(Job(unique, video, box, start))
    if not jobs and not problems:
        raise UserError(f"{path}: no jobs (see the module docs: siamtrack batch --help)")
    return jobs, problems


# -- the work of one job (in a worker process) -----------------------------------------------------------------

_TRACKERS: dict = {}  # Settings -> a loaded SiamTracker, one per worker process: the network loads once
_PROGRESS = None  # the pool's progress queue, set by _init_pool_worker


def _init_pool_worker(settings: Settings, progress_queue) -> None:
    global _PROGRESS
    _PROGRESS = progress_queue
    _configure_threads(settings.threads)


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
    """Track one video into out_dir/<name>.csv (a session as `siamtrack track --boxes` runs it); never raises for a
    bad job: the result says what went wrong."""
    started = time.perf_counter()
    progress = _QueueProgress()
    if _PROGRESS is not None:
        _PROGRESS.put(("start", job.name))
    try:
        tracker = _tracker(settings)
        source = FrameSource(job.video, allow_truncated=settings.allow_truncated, start=job.start)
        session = Session(source, Outputs(boxes=Path(out_dir) / f"{job.name}.csv", boxes_flag="CSV"), progress)
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


# -- the done log ----------------------------------------------------------------------------------------------


class DoneLog:
    """DIR/done.jsonl: one JSON line per finished or failed job, appended and synced as each one ends."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / DONE_LOG
        self.done: dict[str, dict] = {}
        if self.path.is_file():
            text = self.path.read_text(errors="replace")
            if text and not text.endswith("\n"):
                # A line cut short by a hard kill: end it, so the next record starts a line of its own.
                with open(self.path, "a") as f:
                    f.write("\n")
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # that job is simply not done
                if not isinstance(entry, dict):
                    continue
                if entry.get("status") == "done":
                    self.done[entry.get("key")] = entry
                else:
                    self.done.pop(entry.get("key"), None)

    def is_done(self, job: Job, key: str, out_dir: Path) -> bool:
        return key in self.done and (out_dir / f"{job.name}.csv").is_file()

    def record(self, job: Job, key: str, result: dict) -> None:
        entry = {"key": key, "name": job.name, "video": job.video, "box": list(job.box), "start": job.start,
                 **{k: result[k] for k in ("status", "frames", "seconds") if k in result}}
        if result.get("error"):
            entry["error"] = result["error"]
        entry["time"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        with open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())


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
    """Partial CSVs left by processes that are gone (a killed worker, a killed batch)."""
    removed = 0
    for partial in out_dir.glob(".*.partial.csv"):
        match = re.search(r"\.(\d+)\.partial\.csv$", partial.name)
        if not match:
            continue
        if _is_running(int(match.group(1))):
            continue
        partial.unlink(missing_ok=True)
        removed += 1
    return removed


# -- schedulers ------------------------------------------------------------------------------------------------


def run_pool(jobs: list[Job], settings: Settings, out_dir: Path, workers: int, on_result, on_progress,
             job_function=None) -> None:
    """A local process pool (spawned workers: no onnxruntime or OpenCV threads inherited through fork). A job
    whose worker dies is run again, up to MAX_ATTEMPTS in all. job_function (default track_job) must be a
    module-level function, importable in a spawned process."""
    job_function = job_function or track_job
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    attempts = {job.name: 0 for job in jobs}
    pending = list(jobs)
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_pool_worker,
                                   initargs=(settings, progress_queue))
        try:
            futures = {pool.submit(job_function, job, settings, str(out_dir)): job for job in pending}
            pending, started, broken = [], set(), []
            while futures:
                done, _ = wait(futures, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, on_progress, started)
                for future in done:
                    job = futures.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken.append(job)
                        continue
                    _drain(progress_queue, on_progress, started)
                    on_result(job, result)
        except BaseException:
            _terminate(pool)
            raise
        pool.shutdown(wait=True)
        _drain(progress_queue, on_progress, started)
        # When a worker dies, every unfinished job gets BrokenProcessPool. Only the jobs that had started count an
        # attempt (all of them if no start was heard), so one video that kills its worker cannot use up the
        # attempts of the jobs queued behind it.
        for job in [j for j in broken if j.name in started] or broken:
            attempts[job.name] += 1
        for job in broken:
            if attempts[job.name] < MAX_ATTEMPTS:
                pending.append(job)
            else:
                on_result(job, {"status": "failed", "frames": 0, "seconds": 0.0,
                                "error": f"its worker process died {attempts[job.name]} times"})
        if pending:
            print(f"warning: a worker process died; running {len(pending)} unfinished job(s) again",
                  file=sys.stderr)


def _drain(queue, on_progress, started: set) -> None:
    """Progress messages from the workers: ("start", job name) or ("frames", n)."""
    while True:
        try:
            kind, value = queue.get_nowait()
            if kind == "start":
                started.add(value)
            else:
                on_progress(value)
        except queue_module.Empty:
            return
        except (OSError, EOFError, ValueError):
            return


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Ctrl-C: stop the workers now (their partial files are removed by the next run), keep what is done."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public API for this
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)


def run_ray(jobs: list[Job], settings: Settings, out_dir: Path, address: str | None, workers: int,
            gpu_fraction: float | None, on_result, on_progress) -> None:
    """One Ray task per video, retried by Ray when its worker dies; a local Ray instance when no address."""
    try:
        import ray
    except ImportError:
        raise UserError("--ray needs Ray: pip install 'siamtrack[batch]' (or pip install ray)") from None
    quiet = {"ignore_reinit_error": True, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(num_cpus=workers * settings.threads, include_dashboard=False, **quiet)
    except Exception as exc:  # noqa: BLE001  Ray raises ValueError, ConnectionError, RuntimeError...
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot start Ray{f' at {address}' if address else ''}: {first_line}") from None
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpu_fraction is None:  # auto: share each GPU between tasks when the cluster has GPUs
            gpu_fraction = 0.25 if gpus > 0 and settings.device != "cpu" else 0.0
        if gpu_fraction > 0 and gpus == 0:
            # Ray would queue such tasks for ever, waiting for a GPU that never comes.
            raise UserError(f"--gpu-fraction {gpu_fraction:g} asks for GPUs, but this Ray cluster has none: "
                            "drop --gpu-fraction (or pass 0)")
        task = ray.remote(num_cpus=settings.threads, num_gpus=gpu_fraction, max_retries=MAX_ATTEMPTS - 1)(
            _ray_track_job)
        refs = {task.remote(job, settings, str(out_dir)): job for job in jobs}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in ready:
                job = refs.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    result = {"status": "failed", "frames": 0, "seconds": 0.0, "error": f"Ray: {first_line}"}
                on_result(job, result)
    finally:
        ray.shutdown()


# -- the command -----------------------------------------------------------------------------------------------


def _frame_total(jobs: list[Job]) -> int | None:
    """Frames the pending jobs will track (from the video headers), for the progress bar; None if unknown."""
    total = 0
    for job in jobs:
        capture = cv2.VideoCapture(job.video)
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        total += max(count - job.start, 0)
    return total or None


def cmd_batch(args) -> int:
    # SIGTERM / SIGHUP stop the workers and keep done.jsonl whole, as Ctrl-C does: a rerun resumes.
    with SignalGuard() as guard:
        return _batch(args, guard)


def _batch(args, guard) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    overrides = check_model_options(args)
    if args.gpu_fraction is not None and not 0 <= args.gpu_fraction <= 1:
        raise UserError(f"--gpu-fraction must be from 0 to 1 (a share of one GPU per task), got {args.gpu_fraction:g}")
    jobs, problems = read_manifest(args.manifest)
    # Absolute: a Ray worker on another node (or in another working directory) must find the same places.
    out_dir = check_output_dir(args.out, "--out").resolve()
    settings, workers = _settings(args, overrides, len(jobs))
    # Bad weights or settings are one error now, not one failure per video later.
    _tracker(settings)
    _TRACKERS.clear()

    log = DoneLog(out_dir)
    stale = remove_stale_partials(out_dir)
    keys = {job.name: job_key(job, settings) for job in jobs}
    todo = [job for job in jobs if not log.is_done(job, keys[job.name], out_dir)]
    skipped = len(jobs) - len(todo)
    for name, why in problems.items():
        print(f"warning: {name} skipped: {why}", file=sys.stderr)
    where = f"Ray ({args.ray or 'local'})" if args.ray is not None else f"{workers} local worker(s)"
    print(f"{len(jobs)} job(s): {skipped} already done, {len(todo)} to track on {where}, {settings.threads} thread(s) "
          "each" + (f"; removed {stale} partial file(s) of an interrupted run" if stale else ""), file=sys.stderr)

    started = time.perf_counter()
    results = _run(args, todo, settings, out_dir, workers, lambda job, result: log.record(job, keys[job.name], result),
                   guard)
    wall = time.perf_counter() - started
    print(summary_table(jobs, results, skipped_names={j.name for j in jobs if j not in todo}))
    done = [r for r in results.values() if r["status"] == "done"]
    failed = len(results) - len(done)
    frames = sum(r.get("frames", 0) for r in done)
    rate = f"{frames / wall:.1f} frames/s" if wall > 0 and frames else "n/a"
    print(f"{len(done)} tracked, {skipped} already done, {failed} failed, {len(problems)} not "
          f"understood; {frames} frames in {wall:.1f} s = {rate} across all videos ({where}); results in {out_dir}")
    if failed or problems:
        print(f"siamtrack: error: {failed + len(problems)} job(s) not tracked: see {out_dir / DONE_LOG} "
              "and the table above; a rerun tries them again", file=sys.stderr)
        return 1
    return 0


def _settings(args, overrides: dict, job_count: int) -> tuple[Settings, int]:
    """What the workers build their trackers from, and how many workers."""
    from .onnx_engine import physical_cores  # here: it imports onnxruntime, which a torch-only install lacks

    cores = physical_cores()
    # One single-threaded worker per core measured 1.24x the throughput of one worker with all the cores
    # (75.8 vs 61.1 frames/s on val-hard, 2 cores): the network's small layers scale poorly across threads.
    workers = min(args.workers or cores, max(job_count, 1))
    threads = args.threads or max(1, cores // workers)
    weights = str(Path(args.weights).resolve()) if args.weights else None
    return Settings(weights=weights, engine=args.engine, device=args.device, threads=threads,
                    allow_truncated=args.allow_truncated, overrides=tuple(sorted(overrides.items()))), workers


def _run(args, todo: list[Job], settings: Settings, out_dir: Path, workers: int, record, guard) -> dict[str, dict]:
    """The pending jobs on the pool or on Ray, each result recorded as it comes; the results by job name."""
    results: dict[str, dict] = {}
    bar = make_progress(_frame_total(todo) if todo else 0, "batch", "frame", quiet=args.no_progress)
    counts = {"done": 0, "failed": 0}

    def on_result(job: Job, result: dict) -> None:
        bar.update(max(result.get("frames", 0) - result.get("reported", 0), 0))
        counts[result["status"]] += 1
        bar.set_postfix(videos=f"{counts['done']}/{len(todo)}", failed=counts["failed"])
        with guard.deferred():  # a done line is written whole or not at all
            record(job, result)
        results[job.name] = result

    try:
        if todo and args.ray is not None:
            run_ray(todo, settings, out_dir, args.ray or None, workers, args.gpu_fraction, on_result, bar.update)
        elif todo:
            run_pool(todo, settings, out_dir, workers, on_result, bar.update)
    finally:
        bar.close()
        remove_stale_partials(out_dir)
    return results


def summary_table(jobs: list[Job], results: dict[str, dict], skipped_names: set[str]) -> str:
    lines = [f"{'video':<24}{'status':>9}{'frames':>8}{'seconds':>9}{'fps':>8}  error"]
    for job in jobs:
        if job.name in skipped_names:
            lines.append(f"{job.name[:23]:<24}{'skipped':>9}")
            continue
        r = results.get(job.name)
        if r is None:
            lines.append(f"{job.name[:23]:<24}{'not run':>9}")
            continue
        fps = f"{r['frames'] / r['seconds']:.1f}" if r.get("seconds") and r.get("frames") else "-"
        lines.append(f"{job.name[:23]:<24}{r['status']:>9}{r.get('frames', 0):>8}{r.get('seconds', 0):>9.1f}{fps:>8}"
                     f"  {r.get('error', '')[:120]}")
    return "\n".join(lines)


def add_subcommands(sub) -> None:
    p = sub.add_parser(
        "batch", help="track many videos (a manifest or a folder) on a process pool or Ray; resumable",
        description="Track every job of MANIFEST into DIR/<name>.csv (as `siamtrack track --boxes` writes it). "
                    "MANIFEST is a CSV (header: video,x,y,w,h[,start][,name]), a JSONL file "
                    '({"video": ..., "box": [x,y,w,h], "start": 0}) or a folder of videos with <stem>_init.txt '
                    "or <stem>_groundtruth.txt boxes (or subfolders with one video and groundtruth.txt). "
                    "DIR/done.jsonl records each job; a rerun skips what is done. Exit status 1 when a job failed.")
    p.add_argument("manifest", metavar="MANIFEST", help="CSV or JSONL manifest, or a folder of videos")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the CSVs and done.jsonl")
    p.add_argument("--workers", type=int, help="parallel jobs (default: one per physical core)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a cluster ADDRESS (auto, or head-host:6379; ray://... needs ray[client]), or a "
                        "local Ray instance when no address is given (pip install 'siamtrack[batch]')")
    p.add_argument("--gpu-fraction", type=float, default=None,
                   help="with --ray: GPUs per task (default: 0.25 when the cluster has GPUs, else 0)")
    add_model_options(p, threads_help="threads per job (default: the physical cores / workers)")
    p.add_argument("--allow-truncated", action="store_true", help="accept videos shorter than their header says")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)
