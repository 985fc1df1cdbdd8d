"""A PNG strip of frames with their tracked boxes, from a video and the CSV `siamtrack track --boxes` wrote.

    siamtrack track ../shared/data/videos/bag.avi --box 312.64,146.89,105.13,95.41 --boxes /tmp/bag.csv
    python benchmarks/frame_strip.py ../shared/data/videos/bag.avi /tmp/bag.csv --frames 0 45 90 135 180 \\
        --ground-truth ../shared/data/videos/bag_groundtruth.txt --out docs/strip.png

Tracked boxes are drawn as the CLI draws them (green, red when lost), the ground truth (when given) thin white.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np

from tracker.drawing import draw_box, put_label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video")
    parser.add_argument("boxes", help="CSV from siamtrack track --boxes")
    parser.add_argument("--frames", type=int, nargs="+", required=True, help="0-based frame numbers to show")
    parser.add_argument("--ground-truth", help="x,y,w,h per frame, drawn thin white")
    parser.add_argument("--width", type=int, default=240, help="width of each frame in the strip (px)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    with open(args.boxes, newline="") as f:
        rows = {int(r["frame"]): r for r in csv.DictReader(f)}
    gt = np.loadtxt(args.ground_truth, delimiter=",") if args.ground_truth else None
    capture = cv2.VideoCapture(args.video)
    wanted, tiles, index = set(args.frames), {}, 0
    while len(tiles) < len(wanted):
        ok, frame = capture.read()
        if not ok:
            raise SystemExit(f"{args.video} ended at frame {index}; missing {sorted(wanted - set(tiles))}")
        if index in wanted:
            if index not in rows:
                raise SystemExit(f"frame {index} is not in {args.boxes}")
            row = rows[index]
            if gt is not None:
                x, y, w, h = (int(round(v)) for v in gt[index])
                cv2.rectangle(frame, (x, y), (x + w, y + h), (255, 255, 255), 1)
            box = [float(row[k]) for k in ("x", "y", "w", "h")]
            frame = draw_box(frame, box, float(row["score"]), row["lost"] == "1")
            put_label(frame, f"frame {index}", (0, frame.shape[0] - 4), (255, 255, 255))
            scale = args.width / frame.shape[1]
            tiles[index] = cv2.resize(frame, (args.width, int(round(frame.shape[0] * scale))), interpolation=cv2.INTER_AREA)
        index += 1
    strip = np.hstack([tiles[i] for i in args.frames])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(args.out, strip, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({strip.shape[1]}x{strip.shape[0]})")


if __name__ == "__main__":
    main()
