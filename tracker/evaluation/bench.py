"""Per-stage timing of trackers on a clip: every tracker sees the same decoded frames in one run."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tracker.errors import UserError
from tracker.progress import progress as make_progress
from tracker.result import check_box
from tracker.running import TrackRun
from tracker.sources import FrameSource
from tracker.timing import STAGES


def frames(source: Path, limit: int | None):
    """Yield (frame, decode_seconds) from a video file or a folder of images (through FrameSource, so a corrupt
    image or a truncated video is named in a UserError, as in `siamtrack track`)."""
    source = FrameSource(str(source))
    it = (frame.image for frame in source.frames())
    n = 0
    try:
        while limit is None or n < limit:
            t0 = time.perf_counter()
            f = next(it, None)
            dt = time.perf_counter() - t0
            if f is None:
                return
            n += 1
            yield f, dt
    finally:
        source.close()


def run_bench(source: Path, box, trackers: dict, limit: int | None = None, progress: bool = True) -> dict:
    """Init every tracker on frame 1 with ``box``, update on the following frames; times in seconds."""
    it = frames(source, limit)
    first = next(it, (None, 0.0))
    if first[0] is None:
        raise UserError(f"no frames could be decoded from {source}")
    frame, _ = first
    H, W = frame.shape[:2]
    box = check_box(box, frame.shape)  # the same check as `track` and SiamTracker.init
    rec = {n: {"init": 0.0, "update": [], "stages": {s: [] for s in STAGES}, "lost": 0} for n in trackers}
    runs = {name: TrackRun(trk, tuple(box)) for name, trk in trackers.items()}
    for name, run in runs.items():
        rec[name]["init"] = run.step(frame).seconds
    decode = []
    total = None if limit is None else max(limit - 1, 0)
    for frame, dt in make_progress(total, "bench", "frame", quiet=not progress, iterable=it, leave=False):
        decode.append(dt)
        for name, run in runs.items():
            step = run.step(frame)
            rec[name]["update"].append(step.seconds)
            rec[name]["lost"] += bool(step.result.lost)
            _add_stages(rec[name]["stages"], getattr(run.tracker, "stage_times", None))
    return {"source": str(source), "box": list(box), "frame_size": [W, H], "frames": len(decode) + 1,
            "decode": decode, "trackers": rec}


def _add_stages(stages: dict, stage_times) -> None:
    """The last update's seconds per stage (a tracker that times its stages: ours; OpenCV's peers do not)."""
    if isinstance(stage_times, dict):
        for s in STAGES:
            if s in stage_times:
                stages[s].append(float(stage_times[s]))


def _ms(v) -> float:
    return float(np.median(v)) * 1e3 if len(v) else float("nan")


def summarize(res: dict) -> dict:
    """Median milliseconds per stage and fps per tracker."""
    dec = np.asarray(res["decode"])
    out = {"source": res["source"], "box": res["box"], "frames": res["frames"], "decode_ms": _ms(dec),
           "trackers": {}}
    for name, r in res["trackers"].items():
        upd = np.asarray(r["update"])
        e2e = upd + dec[:len(upd)]
        row = {"init_ms": r["init"] * 1e3, "update_ms": _ms(upd), "end_to_end_ms": _ms(e2e),
               "fps": 1e3 / _ms(upd) if len(upd) else float("nan"),
               "fps_end_to_end": 1e3 / _ms(e2e) if len(upd) else float("nan"),
               "fps_mean": len(upd) / upd.sum() if upd.sum() > 0 else float("nan"),
               "lost_frames": r["lost"]}
        stages = {s: _ms(v) for s, v in r["stages"].items() if len(v) == len(upd) and len(v)}
        if stages:
            row["stages_ms"] = stages
            row["other_ms"] = _ms(upd - np.sum([r["stages"][s] for s in stages], axis=0))
        out["trackers"][name] = row
    return out


def format_summary(s: dict) -> str:
    lines = [f"{s['source']}: {s['frames']} frames, box {','.join(f'{v:g}' for v in s['box'])}",
             "median ms per frame (updates after the init frame)", ""]
    for name, r in s["trackers"].items():
        if "stages_ms" in r:
            lines.append(f"{name} stages:")
            lines.append(f"  {'decode':<14}{s['decode_ms']:8.2f} ms")
            for k, v in r["stages_ms"].items():
                lines.append(f"  {k:<14}{v:8.2f} ms")
            lines.append(f"  {'other':<14}{r['other_ms']:8.2f} ms   (update time not in a stage)")
            lines.append(f"  {'total':<14}{r['update_ms']:8.2f} ms   tracker {r['fps']:.1f} fps; "
                         f"with decode {r['end_to_end_ms']:.2f} ms = {r['fps_end_to_end']:.1f} fps")
            lines.append("")
    lines.append(f"{'tracker':<12}{'init ms':>9}{'update ms':>11}{'fps':>8}{'+decode ms':>12}"
                 f"{'e2e fps':>9}{'mean fps':>10}{'lost':>6}")
    for name, r in s["trackers"].items():
        lines.append(f"{name:<12}{r['init_ms']:9.2f}{r['update_ms']:11.2f}{r['fps']:8.1f}"
                     f"{r['end_to_end_ms']:12.2f}{r['fps_end_to_end']:9.1f}{r['fps_mean']:10.1f}{r['lost_frames']:6d}")
    lines.append(f"(decode median {s['decode_ms']:.2f} ms/frame, shared by all trackers; fps = 1000 / median ms; "
                 "a tracker with many lost frames may skip work on them, so its times flatter it)")
    return "\n".join(lines)
