"""Where batch jobs run: a local process pool, or a Ray cluster. Either reports each job's result (and the
workers' frame counts) to the caller as they come."""
from __future__ import annotations

import logging
import multiprocessing
import queue as queue_module
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..errors import UserError, pip_install
from .jobs import Settings, _init_pool_worker, _ray_track_job, track_job
from .manifest import Job

MAX_ATTEMPTS = 3  # a job whose worker process dies is run again, at most this many times in all


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
        raise UserError(f"--ray needs Ray: {pip_install('batch')}, or pip install ray") from None
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
