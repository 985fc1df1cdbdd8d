"""Targets that cross each other: does each target keep its own object, or do two targets end on one?

Clips are built on the fly from real footage, with known ground truth:

* pastes: two validation targets are cut out of their own frames (each frame's GT box, resized to a fixed size)
  and pasted on a background video along straight paths that cross; where a patch is pasted is that target's
  ground truth. The second target is pasted last, so it passes in front of the first where they overlap.
* the multi-target demo's own case (demos/multi_target.py): its two pedestrians of vtest.avi, with its boxes.
  There is no ground truth there, so only the frames where both boxes hold one object are counted, and whether
  they end apart.

Counted per clip (a target in state lost claims nothing: its box is held where it was last seen):

* identity switches, as MOT's IDSW: a target's box matched (IoU >= 0.5, one to one, last frame's match kept while
  it holds, as CLEAR MOT matches) to another target's ground truth after having matched its own (and back again:
  each change of the matched object is one switch);
* shared frames: frames where two targets not lost hold one object: both boxes overlap the same ground truth
  object most (IoU >= 0.5), or their boxes overlap with IoU >= 0.5 while their objects do not (where one object
  hides the other, right boxes overlap too); without ground truth, boxes overlapping with IoU >= 0.5. Also
  counted apart: shared frames where both targets are in state tracking (neither flagged);
* identity F1 (MOT's IDF1, each target bound to the object it was started on): over the clip's frames, 2 IDTP /
  (2 IDTP + IDFP + IDFN), where IDTP counts frames a target not lost is on its own object (IoU >= 0.5), IDFP
  frames it claims anything else and IDFN frames its object goes without it. Where IDSW counts every change of
  object, a target put back on its own object included, IDF1 counts the frames each target is right;
* each target's success AUC over the clip (OTB's, on every frame after the first, whatever its state).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tracker.errors import UserError
from tracker.progress import progress as make_progress
from tracker.running import track
from tracker.sources import FrameSource

from . import metrics
from .datasets import load_dataset

MATCH_IOU = 0.5  # a box is on an object when it overlaps the object's box this much


@dataclass(frozen=True)
class Walker:
    """One pasted target: a validation sequence (set, name) from its frame `first` on, its pasted height and its
    straight path, as fractions of the background's width and height (start -> end centre)."""

    dataset: str
    name: str
    height: int
    start: tuple[float, float]
    end: tuple[float, float]
    first: int = 0


@dataclass(frozen=True)
class PasteCase:
    name: str
    walkers: tuple[Walker, ...]
    background_start: int  # first frame of vtest.avi used
    note: str


FRAMES = 80  # frames per pasted clip: the paths cross at about frame 40
PASTES = (
    PasteCase("pedestrians", (Walker("val", "Crossing", 90, (0.15, 0.55), (0.85, 0.45)),
                              Walker("val-hard", "Woman", 90, (0.85, 0.62), (0.15, 0.52))),
              0, "two walking people (look-alikes) pass each other, the second slightly lower and in front"),
    PasteCase("faces", (Walker("val", "David", 100, (0.15, 0.45), (0.85, 0.55)),
                        Walker("val-hard", "FaceOcc1", 100, (0.85, 0.40), (0.15, 0.60))),
              200, "two faces cross on an X, the second in front"),
    PasteCase("occlusion", (Walker("val-hard", "Woman", 90, (0.15, 0.5), (0.85, 0.5)),
                            Walker("val", "Crossing", 90, (0.85, 0.5), (0.15, 0.5))),
              400, "two walking people on one line: the wider one passes in front and hides the other whole"),
    PasteCase("twins", (Walker("val-hard", "Woman", 90, (0.15, 0.50), (0.85, 0.56)),
                        Walker("val-hard", "Woman", 90, (0.85, 0.53), (0.15, 0.47), first=300)),
              600, "the same woman twice (her frames 0- and 300-): look-alikes that pass each other, half covered"),
)
DEMO_CASE = "demo"
DEMO_BOXES = ((158, 136, 20, 57), (402, 150, 27, 51))  # demos/multi_target.py's two pedestrians of vtest.avi
DEMO_FRAMES = 150  # as many as the demo tracks by default
CASES = tuple(c.name for c in PASTES) + (DEMO_CASE,)


@dataclass
class Clip:
    """A crossing clip: its frames (a fresh iterator each call), the targets' first boxes and, for pastes, the
    ground truth of every frame (T, K, 4)."""

    name: str
    note: str
    frames: object  # () -> iterator of BGR frames
    boxes: list
    gt: np.ndarray | None = None


def background_path(data: Path) -> Path:
    return data / "videos" / "vtest.avi"


def check_data(data: Path, cases) -> None:
    """A one-line UserError naming what is missing under `data` for these cases."""
    needed = [background_path(data)]
    for case in PASTES:
        if case.name in cases:
            needed += [data / w.dataset / w.name for w in case.walkers]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise UserError(f"the crossing clips are built from {data}, which lacks {', '.join(sorted(set(missing)))}: "
                        "pass --data DIR with val/, val-hard/ and videos/vtest.avi (the project's ../shared/data)")


def _background(data: Path, start: int, count: int):
    source = FrameSource(str(background_path(data)))
    try:
        for index, frame in enumerate(source.frames()):
            if index >= start + count:
                break
            if index >= start:
                yield frame.image
    finally:
        source.close()


def _walker_frames(data: Path, walker: Walker, count: int):
    """The walker's sequence's first `count` frames, each cut to its GT box: (patch, pasted size)."""
    _, sequences, problems = load_dataset(data / walker.dataset, [walker.name])
    if not sequences:
        raise UserError(f"cannot read {walker.dataset}/{walker.name}: {problems.get(walker.name, 'not found')}")
    sequence = sequences[0]
    if len(sequence) < walker.first + count:
        raise UserError(f"{walker.dataset}/{walker.name} has {len(sequence)} frames; the clip needs "
                        f"{walker.first + count}")
    x, y, w, h = sequence.gt[walker.first]
    size = (max(int(round(walker.height * w / h)), 8), walker.height)
    for index, image in sequence.images(range(walker.first, walker.first + count)):
        x, y, w, h = sequence.gt[index]
        x0, y0 = int(max(np.floor(x), 0)), int(max(np.floor(y), 0))
        x1, y1 = int(min(np.ceil(x + w), image.shape[1])), int(min(np.ceil(y + h), image.shape[0]))
        yield cv2.resize(image[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)], size, interpolation=cv2.INTER_AREA)


def paste_boxes(case: PasteCase, sizes: list[tuple[int, int]], frame_size: tuple[int, int], count: int) -> np.ndarray:
    """Where each walker's patch goes on each frame, (count, K, 4) x, y, w, h in whole pixels (the ground truth)."""
    width, height = frame_size
    boxes = np.zeros((count, len(case.walkers), 4))
    for k, (walker, (w, h)) in enumerate(zip(case.walkers, sizes)):
        for t in range(count):
            a = t / max(count - 1, 1)
            cx = ((1 - a) * walker.start[0] + a * walker.end[0]) * width
            cy = ((1 - a) * walker.start[1] + a * walker.end[1]) * height
            x = int(np.clip(round(cx - w / 2), 0, width - w))
            y = int(np.clip(round(cy - h / 2), 0, height - h))
            boxes[t, k] = (x, y, w, h)
    return boxes


def paste_clip(data: Path, case: PasteCase, count: int = FRAMES) -> Clip:
    """A pasted crossing clip (see the module docstring). Frames are decoded again on every pass, never stored."""
    first = next(_background(data, case.background_start, 1), None)
    if first is None:
        raise UserError(f"{background_path(data)} has fewer than {case.background_start + 1} frames")
    sizes = [next(_walker_frames(data, w, count)).shape[1::-1] for w in case.walkers]
    gt = paste_boxes(case, sizes, (first.shape[1], first.shape[0]), count)

    def frames():
        walkers = [_walker_frames(data, w, count) for w in case.walkers]
        for t, frame in enumerate(_background(data, case.background_start, count)):
            frame = frame.copy()
            for k, patches in enumerate(walkers):  # in order: the last walker passes in front
                x, y, w, h = (int(v) for v in gt[t, k])
                frame[y:y + h, x:x + w] = next(patches)
            yield frame

    return Clip(case.name, case.note, frames, [tuple(float(v) for v in gt[0, k]) for k in range(len(sizes))], gt)


def demo_clip(data: Path, count: int = DEMO_FRAMES) -> Clip:
    return Clip(DEMO_CASE, "demos/multi_target.py's two pedestrians of vtest.avi (no ground truth)",
                lambda: _background(data, 0, count), [tuple(map(float, b)) for b in DEMO_BOXES])


def build_clips(data: Path, cases=CASES) -> list[Clip]:
    check_data(data, cases)
    clips = [paste_clip(data, case) for case in PASTES if case.name in cases]
    return clips + ([demo_clip(data)] if DEMO_CASE in cases else [])


# -- tracking and counting -----------------------------------------------------------------------------------


def track_clip(clip: Clip, tracker, bar=None) -> tuple[np.ndarray, list[list[str]], np.ndarray]:
    """MultiTracker `tracker` on the clip from its first boxes: (boxes (T-1, K, 4), states, scores (T-1, K)),
    one row per frame after the first."""
    steps = track(tracker, clip.frames(), clip.boxes)  # the one frame loop: init, then update
    ids = list(next(steps).result)
    boxes, states, scores = [], [], []
    for step in steps:
        results = step.result
        boxes.append([results[i].box for i in ids])
        states.append([results[i].state for i in ids])
        scores.append([results[i].score for i in ids])
        if bar is not None:
            bar.update(1)
    return np.array(boxes, float).reshape(-1, len(ids), 4), states, np.array(scores, float).reshape(-1, len(ids))


def _claims(boxes: np.ndarray, gt: np.ndarray, claiming: list[bool], previous: list[int]) -> list[int | None]:
    """MOT's correspondence for one frame: per target, the ground-truth object its box is matched to (None when
    none). Matches are one to one: a target keeps last frame's object while its box still overlaps it with IoU >=
    MATCH_IOU, then the other pairs are matched from the largest overlap down. A lost target claims nothing."""
    ious = np.array([metrics.rect_iou(np.repeat(box[None], len(gt), 0), gt) for box in boxes])
    matched: list[int | None] = [None] * len(boxes)
    for k, j in enumerate(previous):
        if claiming[k] and ious[k, j] >= MATCH_IOU:
            matched[k] = j
    pairs = sorted(((ious[k, j], k, j) for k in range(len(boxes)) for j in range(len(gt))), reverse=True)
    for overlap, k, j in pairs:
        if overlap >= MATCH_IOU and claiming[k] and matched[k] is None and j not in matched:
            matched[k] = j
    return matched


def _best_objects(boxes: np.ndarray, gt: np.ndarray | None) -> list[int | None]:
    """Per target, the ground-truth object its box overlaps most if that is >= MATCH_IOU (not one to one)."""
    if gt is None:
        return [None] * len(boxes)
    found = []
    for box in boxes:
        ious = metrics.rect_iou(np.repeat(box[None], len(gt), 0), gt)
        found.append(int(np.argmax(ious)) if ious.max() >= MATCH_IOU else None)
    return found


def count_crossing(boxes, states, gt=None) -> dict:
    """The counts of the module docstring for one clip: boxes (T, K, 4) and states (T x K) of the frames after the
    first, gt (T, K, 4) of the same frames or None. Target k's own object is gt[:, k]."""
    boxes = np.asarray(boxes, float)
    count, targets = boxes.shape[:2]
    last_match = list(range(targets))  # MOT: each target starts on its own object
    switches, shared, shared_tracking = [0] * targets, [], 0
    for t in range(count):
        claiming = [states[t][k] != "lost" for k in range(targets)]
        if gt is not None:
            for k, j in enumerate(_claims(boxes[t], gt[t], claiming, last_match)):
                if j is not None and j != last_match[k]:
                    switches[k] += 1
                    last_match[k] = j
        pair = _sharing_pair(boxes[t], claiming, None if gt is None else gt[t])
        shared.append(pair is not None)
        shared_tracking += pair is not None and all(states[t][k] == "tracking" for k in pair)
    report = {"frames": count, "identity_switches": switches, "total_switches": int(sum(switches)),
              "shared_frames": int(sum(shared)), "shared_frames_both_tracking": int(shared_tracking),
              "shared_at_end": bool(shared[-1]) if shared else False,
              "end_states": list(states[-1]) if count else []}
    if gt is not None:
        gt = np.asarray(gt, float)
        report.update(identity_counts(boxes, states, gt))
        report["auc"] = [float(metrics.success_curve(metrics.rect_iou(boxes[:, k], gt[:, k])).mean())
                         for k in range(targets)]
    return report


def identity_counts(boxes: np.ndarray, states, gt: np.ndarray) -> dict:
    """IDTP, IDFP and IDFN summed over targets (each bound to object k = gt[:, k]) and the clip's IDF1."""
    own = np.stack([metrics.rect_iou(boxes[:, k], gt[:, k]) for k in range(boxes.shape[1])], 1) >= MATCH_IOU
    claiming = np.array([[state != "lost" for state in row] for row in states]).reshape(own.shape)
    tp = int((own & claiming).sum())
    fp, fn = int(claiming.sum()) - tp, own.size - tp
    return {"idtp": tp, "idfp": fp, "idfn": fn, "idf1": 2 * tp / max(2 * tp + fp + fn, 1)}


def _sharing_pair(boxes: np.ndarray, claiming: list[bool], gt: np.ndarray | None) -> tuple[int, int] | None:
    """Two claiming targets on one object, or None: both boxes on the same ground-truth object, or boxes that
    overlap with IoU >= MATCH_IOU where their own objects do not (objects that overlap that much, one hiding the
    other, make a right answer's boxes overlap too)."""
    objects = _best_objects(boxes, gt)
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            if not (claiming[a] and claiming[b]):
                continue
            if objects[a] is not None and objects[a] == objects[b]:
                return a, b
            apart = gt is None or metrics.rect_iou(gt[a][None], gt[b][None])[0] < MATCH_IOU
            if apart and metrics.rect_iou(boxes[a][None], boxes[b][None])[0] >= MATCH_IOU:
                return a, b
    return None


def run_crossing(clips: list[Clip], make_tracker, progress: bool = True) -> dict:
    """Every clip tracked by a fresh MultiTracker from make_tracker(): clip name -> counts (count_crossing), and
    "total" summing the switches and shared frames over clips."""
    bar = make_progress(sum(FRAMES if c.gt is not None else DEMO_FRAMES for c in clips) - len(clips),
                        "crossing clips", "frame", quiet=not progress)
    report = {}
    try:
        for clip in clips:
            bar.set_postfix_str(clip.name)
            boxes, states, _ = track_clip(clip, make_tracker(), bar)
            gt = None if clip.gt is None else clip.gt[1:]
            report[clip.name] = {"note": clip.note, **count_crossing(boxes, states, gt)}
    finally:
        bar.close()
    pasted = [r for r in report.values() if "auc" in r]
    report["total"] = {"identity_switches": int(sum(r["total_switches"] for r in report.values())),
                       "shared_frames": int(sum(r["shared_frames"] for r in report.values())),
                       "shared_frames_both_tracking": int(sum(r["shared_frames_both_tracking"]
                                                              for r in report.values())),
                       "mean_auc": float(np.mean([a for r in pasted for a in r["auc"]])) if pasted else None,
                       "idf1": _pooled_idf1(pasted)}
    return report


def _pooled_idf1(reports: list[dict]) -> float | None:
    """IDF1 over all frames of the clips with ground truth (their counts summed), None without any."""
    if not reports:
        return None
    tp, fp, fn = (sum(r[key] for r in reports) for key in ("idtp", "idfp", "idfn"))
    return 2 * tp / max(2 * tp + fp + fn, 1)


def format_report(report: dict) -> str:
    lines = [f"{'clip':12s} {'frames':>6s} {'IDSW':>5s} {'IDF1':>5s} {'shared':>6s} {'both tracking':>13s}  "
             "AUC per target    end"]
    for name, r in report.items():
        if name == "total":
            continue
        auc = " ".join(f"{a:.3f}" for a in r.get("auc", [])) or "(no GT)"
        end = ("together" if r["shared_at_end"] else "apart") + " (" + ", ".join(r["end_states"]) + ")"
        ids, idf1 = ("-", "-") if "auc" not in r else (str(r["total_switches"]), f"{r['idf1']:.3f}")
        lines.append(f"{name:12s} {r['frames']:6d} {ids:>5s} {idf1:>5s} {r['shared_frames']:6d} "
                     f"{r['shared_frames_both_tracking']:13d}  {auc:16s}  {end}")
    total = report["total"]
    mean = "" if total["mean_auc"] is None else f", IDF1 {total['idf1']:.3f}, mean AUC {total['mean_auc']:.3f}"
    lines.append(f"total: {total['identity_switches']} identity switches, {total['shared_frames']} shared frames "
                 f"({total['shared_frames_both_tracking']} with both tracking){mean}")
    return "\n".join(lines)
