"""How much the search features under the box change from one frame to the next: where `jump_cosine` can go.

    python benchmarks/jump_cosines.py [--data ../shared/data] [--sets val-hard,val] [--weights ...] [--set K=V]

The cosine is tracker/jumps.py's: the 8x8 window of search features under the box against the previous frame's,
cell by cell over the central 4x4. Per set, with the tracker's settings (the shipped ones unless --set):

* natural runs (each sequence tracked from its first box, as `siamtrack eval` does): per sequence, the least
  cosine on frames tracked well (state not lost, IoU >= 0.5 on this frame and the one before), and over all
  frames tracked (not lost) the share under each line;
* made absences (`siamtrack absence`'s cuts and covers, 30 frames): the cosine on each absence's first frame, and
  the share of them under each line.

The watch records every step's cosine and acts as configured (with jump_at_cuts, at shot cuts only), so the
tracker's boxes and states are the configured ones; `--set jump_cosine=0` only records (the figures in
docs/lost-and-found.md were measured so).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tracker.evaluation import metrics
from tracker.evaluation.absence import KINDS, run_events
from tracker.evaluation.datasets import load_dataset
from tracker.jumps import JumpWatch, cell_cosine
from tracker.options import add_model_options, load_tracker
from tracker.running import TrackRun
from tracker.tracking import SiamTracker

LINES = (0.5, 0.55, 0.6, 0.65, 0.7)


class RecordingWatch(JumpWatch):
    """Records each step's cosine with the window before (NaN: none before) and whether the target was lost."""

    def __init__(self, watch: JumpWatch | None) -> None:
        super().__init__(watch.line if watch else 0.0, watch.cuts.threshold if watch and watch.cuts else 0.0)
        self.acting, self.steps = watch is not None, []

    def after_step(self, state, window, score, lost):
        self.steps.append((cell_cosine(state.window, window) if state.window is not None else np.nan, lost))
        if self.acting:
            return super().after_step(state, window, score, lost)
        state.window = window
        return score


def recording_tracker(shared) -> SiamTracker:
    tracker = SiamTracker(shared.engine, shared.config)
    tracker.jumps = RecordingWatch(tracker.jumps)
    return tracker


def natural(clips, shared) -> None:
    tracked, least = [], {}
    for clip in clips:
        tracker = recording_tracker(shared)
        run, ious = TrackRun(tracker, tuple(clip.gt[0])), []
        for i, frame in clip.images():
            result = run.step(frame).result
            if i:
                ious.append(float(metrics.rect_iou(np.array([result.box]), np.array([clip.gt[i]]))[0]))
        cosines = np.array([c for c, _ in tracker.jumps.steps])
        lost = np.array([lost for _, lost in tracker.jumps.steps])
        ious = np.array(ious[:len(cosines)])
        good = ~lost & (ious >= 0.5) & (np.r_[0.0, ious[:-1]] >= 0.5) & np.isfinite(cosines)
        least[clip.name] = float(cosines[good].min()) if good.any() else np.nan
        tracked.append(cosines[~lost & np.isfinite(cosines)])
    tracked = np.concatenate(tracked)
    print(f"  natural runs: {len(tracked)} tracked frames; least cosine on frames tracked well, per sequence:")
    print("    " + ", ".join(f"{name} {value:.2f}" for name, value in sorted(least.items(), key=lambda kv: kv[1])))
    print("    tracked frames under each line: "
          + ", ".join(f"{line}: {(tracked < line).sum()} ({100 * (tracked < line).mean():.2f}%)" for line in LINES))


def absences(clips, shared) -> None:
    trackers = []

    def make():
        trackers.append(recording_tracker(shared))
        return trackers[-1]

    runs = run_events(clips, make, KINDS, 30, 60, progress=False)
    for kind in KINDS:
        onsets = [(run.name, tracker.jumps.steps[run.start][0]) for run, tracker in zip(runs, trackers)
                  if run.kind == kind]
        values = np.array([value for _, value in onsets])
        print(f"  {kind} onsets ({len(onsets)}): " + ", ".join(f"{name} {value:.2f}" for name, value in onsets))
        print("    under each line: " + ", ".join(f"{line}: {(values < line).sum()}/{len(values)}" for line in LINES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--sets", default="val-hard,val", help="comma-separated folders of --data")
    add_model_options(parser)
    args = parser.parse_args()
    shared = load_tracker(SiamTracker, args)
    for name in args.sets.split(","):
        _, clips, _ = load_dataset(args.data / name)
        print(f"{name}:")
        natural(clips, shared)
        absences(clips, shared)


if __name__ == "__main__":
    main()
