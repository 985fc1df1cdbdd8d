"""Frame age on a live source: how old is the frame the tracker works on, with and without a slowed tracker?

A simulated camera (simulated_camera.py: MJPEG over HTTP on 127.0.0.1, the clip played in real time, each frame
stamped with its number) feeds `FrameSource(url).frames()`, the path `siamtrack track URL` takes. A frame's age is
the time from the camera sending it to the tracker starting on it. "newest frame" is siamtrack's reader (a thread
keeps only the newest frame); "every frame" reads each frame in turn, as a plain cv2.VideoCapture loop does.

    python benchmarks/live_latency.py                 # bag.avi (25 fps), tracker as is and slowed by 60 ms
    python benchmarks/live_latency.py --slow-ms 0 100

Prints one row per (reader, slowdown): frames tracked and dropped, age p50 / p95 in ms and in frame intervals,
and the share of tracked frames with IoU >= 0.5 against the clip's ground truth.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulated_camera import SimulatedCamera, read_stamp  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def run_live(camera: SimulatedCamera, tracker, first_box, ground_truth, slow_seconds: float = 0.0,
             latest_only: bool = True) -> dict:
    """Track camera.url from its first frame; returns ages (s), IoUs and counts."""
    from tracker.evaluation.metrics import rect_iou
    from tracker.sources import FrameSource

    source = FrameSource(camera.url)
    frames = source.frames(latest_only=latest_only)
    first = next(frames)
    tracker.init(first.image, first_box)
    ages, ious, numbers = [], [], []
    try:
        for frame in frames:
            number = read_stamp(frame.image)
            ages.append(time.monotonic() - camera.sent_at[number])
            result = tracker.update(frame.image)
            if slow_seconds:
                time.sleep(slow_seconds)
            numbers.append(number)
            ious.append(float(rect_iou(result.box, ground_truth[camera.clip_frame(number)])[0]))
    finally:
        source.close()
    return {"ages": np.array(ages), "ious": np.array(ious), "numbers": numbers, "dropped": source.dropped,
            "interval": 1.0 / camera.fps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default=str(DATA / "bag.avi"))
    parser.add_argument("--ground-truth", default=str(DATA / "bag_groundtruth.txt"))
    parser.add_argument("--slow-ms", type=float, nargs="+", default=[0.0, 60.0],
                        help="extra milliseconds per tracked frame (a slower model or machine)")
    args = parser.parse_args()

    from tracker import SiamTracker

    gt = np.loadtxt(args.ground_truth, delimiter=",")
    tracker = SiamTracker.from_pretrained()
    print(f"{'reader':<13} {'slow ms':>7} {'tracked':>7} {'dropped':>7} {'age p50 ms':>10} {'age p95 ms':>10} "
          f"{'p95/interval':>12} {'IoU>=0.5':>8}")
    for latest_only in (True, False):
        for slow in args.slow_ms:
            with SimulatedCamera(args.clip) as camera:
                run = run_live(camera, tracker, gt[0], gt, slow / 1000, latest_only)
            p50, p95 = np.percentile(run["ages"], [50, 95]) * 1000
            print(f"{'newest frame' if latest_only else 'every frame':<13} {slow:7.0f} {len(run['ages']):7d} "
                  f"{run['dropped']:7d} {p50:10.1f} {p95:10.1f} {p95 / 1000 / run['interval']:12.2f} "
                  f"{np.mean(run['ious'] >= 0.5):8.0%}")


if __name__ == "__main__":
    main()
