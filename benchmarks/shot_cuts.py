"""Where `jump_at_cuts`' line can go: the colour distance between consecutive frames (tracker/cuts.py) on natural
video and at the first frame of `siamtrack absence`'s made absences.

    python benchmarks/shot_cuts.py [--data ../shared/data] [--sets val,val-hard]

Per set: the distance's median, 99th and 99.9th percentile and maximum over all pairs of consecutive frames, the
frames where it is highest; and on each made absence (`siamtrack absence`'s cut into other footage and its cover
of the target's box, from the same frame), the distance between the frame before and the absence's first frame.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tracker.cuts import colour_distance, colour_histogram
from tracker.evaluation.absence import KINDS, event_frames
from tracker.evaluation.datasets import load_dataset, other_footage
from tracker.progress import progress

LENGTH, AFTER = 30, 60  # siamtrack absence's defaults
LINES = (0.2, 0.3, 0.4, 0.5)


def natural(clips) -> None:
    distances, worst = [], []
    bar = progress(sum(len(c) for c in clips), "natural frames", "frame")
    for clip in clips:
        last, seen = None, []
        for _, frame in clip.images():
            histogram = colour_histogram(frame)
            if last is not None:
                seen.append(colour_distance(last, histogram))
            last = histogram
            bar.update(1)
        distances.append(np.array(seen))
        worst += [(d, clip.name, k + 1) for k, d in enumerate(seen)]
    bar.close()
    pooled = np.concatenate(distances)
    p50, p99, p999 = np.percentile(pooled, [50, 99, 99.9])
    print(f"  natural: {len(pooled)} frame pairs; median {p50:.3f}, 99th percentile {p99:.3f}, 99.9th {p999:.3f}, "
          f"max {pooled.max():.3f}; at or over " + ", ".join(f"{t}: {(pooled >= t).sum()}" for t in LINES))
    print("  highest: " + ", ".join(f"{name} frame {k} {d:.3f}" for d, name, k in sorted(worst, reverse=True)[:6]))


def absences(clips) -> None:
    usable = [c for c in clips if len(c) >= 20 + LENGTH + AFTER]
    for kind in KINDS:
        onsets = []
        for clip, other in zip(usable, other_footage(usable)):
            start = min(max(20, len(clip) // 3), len(clip) - LENGTH - AFTER)
            frames = event_frames(clip, other, kind, start, LENGTH)
            before = None
            for k, (frame, _, _) in enumerate(frames):
                if k == start - 1:
                    before = colour_histogram(frame)
                elif k == start:
                    onsets.append((colour_distance(before, colour_histogram(frame)), clip.name, other.name))
                    break
        values = np.array([d for d, _, _ in onsets])
        print(f"  {kind}: {len(onsets)} onsets; least " + ", ".join(
            f"{name} <- {filler} {d:.3f}" for d, name, filler in sorted(onsets)[:4]) + "; at or over " +
            ", ".join(f"{t}: {(values >= t).sum()}" for t in LINES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--sets", default="val,val-hard")
    args = parser.parse_args()
    for name in args.sets.split(","):
        _, clips, _ = load_dataset(Path(args.data) / name)
        print(f"{name}: {len(clips)} sequences")
        natural(clips)
        absences(clips)


if __name__ == "__main__":
    main()
