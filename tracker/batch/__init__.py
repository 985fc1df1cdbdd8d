"""`siamtrack batch`: track many videos on a local process pool or a Ray cluster, resumably.

A manifest lists jobs (video, first box, start frame). Each finished job writes ``DIR/<name>.csv`` (``.txt`` with
``--format mot`` or ``otb``) exactly as ``siamtrack track --boxes --format`` would (through the same writer:
atomic, whole rows) and then appends a line to ``DIR/done.jsonl``. A rerun skips the jobs that line says are
done, so an interrupted batch resumes where it stopped and nothing is tracked twice; a failed job (an
undecodable video, a bad box) is recorded with its error, the others go on, and a rerun tries it again. One
batch at a time works in DIR (a lock), and only with the settings DIR was first tracked with (see outdir.py;
--restart starts over).

Manifests:

* CSV with a header: ``video,x,y,w,h`` (or ``video,box`` with "x,y,w,h" quoted), optional ``start`` and
  ``name`` columns; with --box-format xyxy / cxcywh the box columns are x1,y1,x2,y2 / cx,cy,w,h;
* JSON lines: ``{"video": "a.mp4", "box": [x, y, w, h], "start": 0, "name": "a"}`` (start, name optional);
* a folder: each video with ``<stem>_init.txt`` or ``<stem>_groundtruth.txt`` beside it (first line: the box),
  and each subfolder holding one video plus ``groundtruth.txt`` (the val-hard layout).

Relative video paths are relative to the manifest. On a Ray cluster, the videos and DIR must be on a file
system every node sees.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2

from ..engines import physical_cores
from ..errors import UserError
from ..options import add_model_options, check_model_options
from ..outputs import BOX_FORMATS, check_output_dir
from ..progress import progress as make_progress
from ..result import BOX_INPUT_FORMATS
from ..signals import SignalGuard
from .done import DONE_LOG, DoneLog, remove_stale_partials
from .jobs import _TRACKERS, Settings, _tracker, box_file, job_key, track_job
from .manifest import Job, read_manifest
from .outdir import OutDirLock, check_settings
from .schedulers import MAX_ATTEMPTS, run_pool, run_ray

__all__ = ["DONE_LOG", "MAX_ATTEMPTS", "DoneLog", "Job", "Settings", "add_subcommands", "cmd_batch", "job_key",
           "read_manifest", "remove_stale_partials", "run_pool", "run_ray", "track_job"]


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
    notes: list[str] = []
    jobs, problems = read_manifest(args.manifest, notes, args.box_format)
    # Absolute: a Ray worker on another node (or in another working directory) must find the same places.
    out_dir = check_output_dir(args.out, "--out").resolve()
    settings, workers = _settings(args, overrides, len(jobs))
    # Bad weights or settings are one error now, not one failure per video later.
    _tracker(settings)
    _TRACKERS.clear()
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    for name, why in problems.items():
        print(f"warning: {name} skipped: {why}", file=sys.stderr)
    with OutDirLock(out_dir):  # a second batch on this DIR would track every job again, beside this one
        check_settings(out_dir, settings.identity(), args.restart)
        return _batch_in(out_dir, jobs, len(problems), settings, workers, args, guard)


def _batch_in(out_dir: Path, jobs: list[Job], not_understood: int, settings: Settings, workers: int, args,
              guard) -> int:
    """The jobs that DIR/done.jsonl does not list as done, run and recorded; the summary; the exit status."""
    log = DoneLog(out_dir)
    stale = remove_stale_partials(out_dir)
    keys = {job.name: job_key(job, settings) for job in jobs}
    todo = [job for job in jobs if not log.is_done(job, keys[job.name], box_file(out_dir, job, settings))]
    skipped = len(jobs) - len(todo)
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
    print(f"{len(done)} tracked, {skipped} already done, {failed} failed, {not_understood} not "
          f"understood; {frames} frames in {wall:.1f} s = {rate} across all videos ({where}); results in {out_dir}")
    return _exit_status(failed, not_understood, out_dir)


def _exit_status(failed: int, not_understood: int, out_dir: Path) -> int:
    """1, with one line saying what to do, when a job failed or a manifest entry could not become a job. A rerun
    retries a failed job (a video being copied, a worker out of memory); an entry the warnings above explain
    stays out of every rerun until the manifest (or the folder) is fixed, so the line does not promise a retry."""
    if not failed and not not_understood:
        return 0
    parts = []
    if failed:
        parts.append(f"{failed} job(s) failed: see {out_dir / DONE_LOG} and the table above; a rerun tries them "
                     "again")
    if not_understood:
        parts.append(f"{not_understood} video(s) not in the batch: fix what the warnings above name, then rerun")
    print(f"siamtrack: error: {'; '.join(parts)}", file=sys.stderr)
    return 1


def _settings(args, overrides: dict, job_count: int) -> tuple[Settings, int]:
    """What the workers build their trackers from, and how many workers."""
    cores = physical_cores()
    # One single-threaded worker per core measured 1.24x the throughput of one worker with all the cores
    # (75.8 vs 61.1 frames/s on val-hard, 2 cores): the network's small layers scale poorly across threads.
    workers = min(args.workers or cores, max(job_count, 1))
    threads = args.threads or max(1, cores // workers)
    weights = str(Path(args.weights).resolve()) if args.weights else None
    return Settings(weights=weights, engine=args.engine, device=args.device, threads=threads,
                    allow_truncated=args.allow_truncated, overrides=tuple(sorted(overrides.items())),
                    box_file_format=args.format), workers


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
        description="Track every job of MANIFEST into DIR/<name>.csv (as `siamtrack track --boxes` writes it; "
                    ".txt with --format mot or otb). "
                    "MANIFEST is a CSV (header: video,x,y,w,h[,start][,name]), a JSONL file "
                    '({"video": ..., "box": [x,y,w,h], "start": 0}) or a folder of videos with <stem>_init.txt '
                    "or <stem>_groundtruth.txt boxes (or subfolders with one video and groundtruth.txt). "
                    "--box-format reads a CSV's x1,y1,x2,y2 or cx,cy,w,h columns (or JSONL boxes) instead. "
                    "DIR/done.jsonl records each job; a rerun skips what is done. Exit status 1 when a job failed.")
    p.add_argument("manifest", metavar="MANIFEST", help="CSV or JSONL manifest, or a folder of videos")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the CSVs and done.jsonl")
    p.add_argument("--format", choices=list(BOX_FORMATS), default="csv",
                   help="box files: csv (DIR/<name>.csv, as track --boxes writes; default), mot (MOTChallenge, "
                        "DIR/<name>.txt, lost frames left out) or otb (x,y,w,h per frame, 1-based, DIR/<name>.txt); "
                        "a DIR keeps the format it was first tracked with (--restart to change it)")
    p.add_argument("--box-format", choices=list(BOX_INPUT_FORMATS), default="xywh",
                   help="what a CSV or JSONL manifest's four box numbers are: xywh (x,y,w,h; default), xyxy "
                        "(x1,y1,x2,y2, as detectors give them; CSV columns x1,y1,x2,y2) or cxcywh (centre and "
                        "size; columns cx,cy,w,h); the CSVs written are x,y,w,h whatever this is")
    p.add_argument("--workers", type=int, help="parallel jobs (default: one per physical core)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: a cluster ADDRESS (auto, or head-host:6379; ray://... needs ray[client]), or a "
                        "local Ray instance when no address is given (pip install 'siamtrack[batch]', or "
                        "'.[batch]' in a checkout)")
    p.add_argument("--gpu-fraction", type=float, default=None,
                   help="with --ray: GPUs per task (default: 0.25 when the cluster has GPUs, else 0)")
    add_model_options(p, threads_help="threads per job (default: the physical cores / workers)")
    p.add_argument("--allow-truncated", action="store_true", help="accept videos shorter than their header says")
    p.add_argument("--restart", action="store_true",
                   help="track every job again, even those done.jsonl lists as done (needed to reuse a DIR with "
                        "other weights, engine or --set; the old done.jsonl is kept, renamed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)
