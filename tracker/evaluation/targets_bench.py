"""`siamtrack bench --targets 1,2,4,8,16`: per-frame time for N targets, batched (one MultiTracker: every target's
crops in one network run) against N separate trackers on the same network, on the same decoded frames in one run.

The targets are the given box and, for more, boxes of its size spread over the frame on a grid. The clip has no
ground truth for them: they measure cost, not accuracy. Targets that get lost search tiles of the frame, which
costs more crops; the lost share is reported beside the times, and it is the same for both ways of running, whose
boxes are compared frame by frame (they must agree: batching changes the cost, not the answer).
"""
from __future__ import annotations

import math
import time

import numpy as np

from tracker.errors import UserError
from tracker.progress import progress as make_progress
from tracker.multi import MultiTracker
from tracker.result import check_box
from tracker.running import TrackRun
from tracker.tracking import SiamTracker

from .bench import frames


def target_boxes(box, frame_shape, count: int) -> list[tuple[float, float, float, float]]:
    """`box`, then count - 1 boxes of its size centred on the cells of a grid over the frame (row by row),
    the cell that holds box's centre left out."""
    x, y, w, h = check_box(box, frame_shape)
    height, width = frame_shape[:2]
    side = math.ceil(math.sqrt(count))
    centres = [((col + 0.5) * width / side, (row + 0.5) * height / side) for row in range(side) for col in range(side)]
    own = min(range(len(centres)), key=lambda i: (centres[i][0] - x - w / 2) ** 2 + (centres[i][1] - y - h / 2) ** 2)
    others = [c for i, c in enumerate(centres) if i != own]
    return [(x, y, w, h)] + [(cx - w / 2, cy - h / 2, w, h) for cx, cy in others[: count - 1]]


def run_targets_bench(source, box, networks: dict, counts: list[int], limit: int | None = None,
                      peer_factories: dict | None = None, progress: bool = True) -> dict:
    """networks: name -> a SiamTracker whose engine and config are shared by the batched and separate trackers;
    peer_factories: name -> a callable making one OpenCV-style tracker (run as N separate ones, as OpenCV's legacy
    MultiTracker does). Every frame, for every count, every way of running updates on the same frame."""
    if not counts or min(counts) < 1:
        raise UserError(f"--targets: give target counts >= 1, e.g. 1,2,4,8,16 (got {counts})")
    it = frames(source, limit)
    first, _ = next(it, (None, 0.0))
    if first is None:
        raise UserError(f"no frames could be decoded from {source}")
    boxes = target_boxes(box, first.shape, max(counts))
    runs = _start_runs(first, boxes, networks, counts, peer_factories or {})
    times = {key[:3]: [] for key in runs}
    lost = {key[:3]: 0 for key in runs}
    box_diff = {(name, count): 0.0 for name in networks for count in counts}
    total = None if limit is None else max(limit - 1, 0)
    updates = 0
    for frame, _ in make_progress(total, "bench --targets", "frame", quiet=not progress, iterable=it, leave=False):
        updates += 1
        answers = _time_frame(frame, runs if updates % 2 else runs[::-1], times, lost, networks)
        for name in networks:
            for count in counts:
                a, b = np.array(answers[name, count, "batched"]), np.array(answers[name, count, "separate"])
                box_diff[name, count] = max(box_diff[name, count], float(np.abs(a - b).max()))
    if not updates:
        raise UserError(f"{source} has a single frame: nothing to time")
    rows = []
    for name, count, mode, _ in runs:
        ms = 1e3 * float(np.median(times[name, count, mode]))
        rows.append({"tracker": name, "targets": count, "mode": mode, "ms_per_frame": ms, "ms_per_target": ms / count,
                     "fps": 1e3 / ms, "lost_share": lost[name, count, mode] / (count * updates),
                     "box_diff_px": box_diff.get((name, count))})
    return {"source": str(source), "frame_size": [first.shape[1], first.shape[0]], "frames": updates + 1,
            "boxes": [list(b) for b in boxes], "rows": rows}


def _start_runs(first, boxes, networks: dict, counts: list[int], peer_factories: dict) -> list[tuple]:
    """(network or peer name, count, mode, its TrackRuns: one MultiTracker's, or one per separate tracker), each
    initialised on the first frame."""
    runs = []
    for name, net in networks.items():
        for count in counts:
            runs.append((name, count, "batched", [TrackRun(MultiTracker(net.engine, net.config), boxes[:count])]))
            runs.append((name, count, "separate", [TrackRun(SiamTracker(net.engine, net.config), b)
                                                   for b in boxes[:count]]))
    for name, make in peer_factories.items():
        for count in counts:
            runs.append((name, count, "separate", [TrackRun(make(), b) for b in boxes[:count]]))
    for *_, trackers in runs:
        for run in trackers:
            run.step(first)
    return runs


def _time_frame(frame, runs: list[tuple], times: dict, lost: dict, networks: dict) -> dict:
    """Every way of running updates on `frame` (the first run after a frame is decoded pays for cold caches, 0.7 ms
    of 6 ms here: the caller alternates the order); the networks' boxes by (name, count, mode)."""
    answers = {}
    for name, count, mode, trackers in runs:
        start = time.perf_counter()
        results = [run.step(frame).result for run in trackers]
        if mode == "batched":
            results = list(results[0].values())
        times[name, count, mode].append(time.perf_counter() - start)
        lost[name, count, mode] += sum(bool(r.lost) for r in results)
        if name in networks:
            answers[name, count, mode] = [r.box for r in results]
    return answers


def format_targets(result: dict) -> str:
    lines = [f"{result['source']}: {result['frames']} frames ({result['frame_size'][0]}x{result['frame_size'][1]}); "
             "median ms per frame for all targets together", "",
             f"{'tracker':<14}{'targets':>8}  {'mode':<9}{'ms/frame':>10}{'ms/target':>11}{'fps':>8}"
             f"{'vs separate':>13}{'lost':>7}{'max box diff':>14}"]
    separate = {(r["tracker"], r["targets"]): r["ms_per_frame"] for r in result["rows"] if r["mode"] == "separate"}
    for r in result["rows"]:
        speedup = separate[r["tracker"], r["targets"]] / r["ms_per_frame"] if r["mode"] == "batched" else None
        diff = "" if r["box_diff_px"] is None or r["mode"] != "batched" else f"{r['box_diff_px']:.3f} px"
        lines.append(f"{r['tracker']:<14}{r['targets']:>8}  {r['mode']:<9}{r['ms_per_frame']:>10.2f}"
                     f"{r['ms_per_target']:>11.2f}{r['fps']:>8.1f}{'' if speedup is None else f'{speedup:.2f}x':>13}"
                     f"{r['lost_share']:>7.0%}{diff:>14}")
    lines.append("(batched: one MultiTracker, every target's crops in one network run; separate: one tracker per "
                 "target on the same network. lost: share of target-frames flagged lost, whose tile search adds "
                 "crops. max box diff: largest difference between the batched and separate boxes over the run)")
    return "\n".join(lines)
