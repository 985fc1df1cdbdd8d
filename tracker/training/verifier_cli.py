"""`siamtrack train-verifier` and `siamtrack calibrate-verifier`: make the target verifier (tracker/verifier.py).

train-verifier fits the head on the crop cache; calibrate-verifier runs the tracker over a validation set (and its
made absences) with the verifier on and the state machine out of the way (so the boxes are the plain tracker's),
and fits the logistic map from the verifier's evidence to P(IoU >= 0.5). Calibrate on one set, confirm on the
other (`--check`).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from ..appearance import AppearanceCheck, find_appearance
from ..crop_cache import load_crop_cache
from ..engines import load_engine
from ..errors import UserError
from ..evaluation import runner
from ..evaluation.absence import run_events
from ..evaluation.datasets import load_dataset
from ..evaluation.metrics import rect_iou
from ..evaluation.verification import auroc, score_quality
from ..outputs import check_output_path
from ..tracking import SiamTracker
from ..verifier import APPEARANCE_EVIDENCE, EVIDENCE, VERIFIER_FILE, find_verifier, load_verifier

DEFAULT_GATE = 0.66  # the shipped appearance_gate
# The shipped file's: chosen on val-hard by the calibration error on natural frames (docs/lost-and-found.md)
DEFAULT_ABSENCE_WEIGHT = 0.1

# torch (training) and scikit-learn are imported inside the commands: `siamtrack --help` and the tracking
# commands must not pay for them.


def cmd_train_verifier(args: argparse.Namespace) -> int:
    from .verifier import head_logits, sample_verifier_data, train_head

    for option, value, least in (("--pairs-per-folder", args.pairs_per_folder, 1), ("--epochs", args.epochs, 1),
                                 ("--look-alikes", args.look_alikes, 0)):
        if value < least:
            raise UserError(f"{option} must be {least} or more, got {value}")
    check_output_path(args.out, "--out")
    engine = load_engine(args.weights, "onnx", "cpu", None)
    if not engine.has_features:
        raise UserError("these weights were exported without search features: re-export them with `siamtrack export`")
    cache = load_crop_cache(args.data)
    look_alikes = None
    if args.look_alikes:
        from .data import mine_look_alikes

        def pooled_template(exemplars):  # the template's features averaged over its cells
            return np.concatenate([engine.template_to_numpy(engine.template(e[None])).mean(axis=(2, 3))
                                   for e in exemplars])

        look_alikes = mine_look_alikes(cache, pooled_template, args.look_alikes)
    samples = sample_verifier_data(engine, cache, args.pairs_per_folder, seed=args.seed, look_alikes=look_alikes)
    rng = np.random.default_rng(args.seed)
    folders = np.unique(samples.folder)
    held = rng.choice(folders, max(1, len(folders) // 6), replace=False)  # whole videos held out, to report on
    test = np.isin(samples.folder, held)
    net = train_head(samples, np.flatnonzero(~test), epochs=args.epochs, seed=args.seed)
    verifier = net.to_verifier(getattr(engine, "weights_sha256", ""))
    rows = np.flatnonzero(test & ((samples.iou >= 0.5) | (samples.iou < 0.1)))
    labels = samples.iou[rows] >= 0.5
    template = samples.templates[samples.owner[rows]].astype(np.float32)
    window = samples.windows[rows].astype(np.float32)
    cosine = (template * window).sum(1) / np.maximum(np.linalg.norm(template, axis=1) * np.linalg.norm(window, axis=1), 1e-6)
    print(f"held-out videos: {len(held)}, windows {len(rows)} ({labels.sum()} on the target)")
    print(f"AUROC on them: trained head {auroc(head_logits(verifier, samples, rows), labels):.3f}, "
          f"untrained cosine (central 4x4) {auroc(cosine[:, 2:6, 2:6].mean(axis=(1, 2)), labels):.3f}")
    if args.look_alikes:  # the windows that matter most: on target vs on the other video it looks most like
        hard = labels | samples.look_alike[rows]
        try:  # the head these weights have now (the same held-out videos: the split depends on the seed alone)
            current = f", the weights' current head {auroc(head_logits(find_verifier(engine), samples, rows[hard]), labels[hard]):.3f}"
        except UserError:
            current = ""
        print(f"AUROC on target vs mined look-alikes ({(~labels & hard).sum()} windows): trained head "
              f"{auroc(head_logits(verifier, samples, rows[hard]), labels[hard]):.3f}{current}, untrained cosine "
              f"{auroc(cosine[hard][:, 2:6, 2:6].mean(axis=(1, 2)), labels[hard]):.3f}")
    verifier.save(args.out)
    print(f"wrote {args.out} (uncalibrated: run `siamtrack calibrate-verifier DATASET --verifier {args.out}`)")
    return 0


class _Recording(SiamTracker):
    """A tracker that keeps the verifier's evidence of every update (None where the step gave none)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.records: list = []

    def update(self, frame):
        result = super().update(frame)
        self.records.append(next(iter(self.evidence.values()), None))
        return result


def collect(dataset: str, engine, verifier, progress: bool = True, appearance=None, turns: int = 1
            ) -> dict[str, np.ndarray]:
    """The verifier's evidence and the label (IoU >= 0.5 with the target there) of every tracked frame: one pass
    over each sequence, and the absence events of `siamtrack absence` (a cut to another scene, a full occlusion)
    made from the same sequences, so that frames without the target are not rare. Lost and found is out of the
    way (lost_threshold 0): the boxes are the plain tracker's. With `appearance` (an AppearanceNet), the evidence
    ends with the appearance cosine of every frame (the best of the first box's `turns` quarter turns)."""
    _, sequences, problems = load_dataset(Path(dataset))
    if not sequences:
        raise UserError(f"no sequences in {dataset}: {problems}")
    config = engine.tracker_config.replace(verify=1, lost_threshold=0.0, uncertain_margin=0.0,
                                           fast_lost_threshold=0.0,  # the shipped config stores one above 0
                                           appearance_gate=0.0,  # the cosine is recorded, never used
                                           jump_cosine=0.0)  # the shipped config stores a jump watch
    trackers: list[_Recording] = []

    def make_tracker() -> _Recording:
        trackers.append(_Recording(engine, config, verifier=verifier))
        if appearance is not None:
            trackers[-1].appearance = AppearanceCheck(appearance, 0.0, verifier, record=True, turns=turns)
        return trackers[-1]

    evidence, labels, kinds = [], [], []
    for seq in sequences:
        tracker = make_tracker()
        boxes, _, _, errors, _ = runner.run_sequence(seq, {"verifier": tracker}, progress=progress)
        if errors:
            raise UserError(f"{seq.name}: {errors['verifier']}")
        ious = rect_iou(boxes["verifier"][1:], seq.gt[1:])  # the first frame is the given box
        evidence += tracker.records
        labels += list(ious)
        kinds += [0] * len(ious)
    first_event = len(trackers)
    for run, tracker in zip(run_events(sequences, make_tracker, progress=progress), trackers[first_event:]):
        for record, iou, present in zip(tracker.records, run.ious, run.present):
            evidence.append(record), labels.append(iou if present else 0.0), kinds.append(1 if present else 2)
    keep = [k for k, e in enumerate(evidence) if e is not None and np.isfinite(labels[k])]
    return {"evidence": np.array([evidence[k] for k in keep]), "iou": np.array([labels[k] for k in keep]),
            "kind": np.array([kinds[k] for k in keep])}  # 0: natural frames, 1: absence runs with the target, 2: without


def fit_calibration(evidence: np.ndarray, iou: np.ndarray, kind: np.ndarray, absence_weight: float = 1.0) -> list:
    """The logistic map's weights (EVIDENCE's order, then the bias) from each frame's evidence to IoU >= 0.5. The
    absence runs' frames (kind > 0) count absence_weight each, the natural frames 1: the made absences teach the
    score to fall when the target is gone, at some cost to its calibration on natural frames."""
    from sklearn.linear_model import LogisticRegression

    weights = np.where(kind > 0, absence_weight, 1.0)
    keep = weights > 0
    fit = LogisticRegression(C=1.0, max_iter=5000).fit(evidence[keep], iou[keep] >= 0.5, sample_weight=weights[keep])
    return [*fit.coef_[0], fit.intercept_[0]]


def cmd_calibrate_verifier(args: argparse.Namespace) -> int:
    if not 0 <= args.absence_weight <= 1:
        raise UserError(f"--absence-weight must be from 0 to 1, got {args.absence_weight:g}")
    if not 1 <= args.turns <= 4 or (args.turns > 1 and not args.appearance):
        raise UserError(f"--turns must be from 1 to 4 and comes with --appearance, got {args.turns}"
                        f"{'' if args.appearance else ' without --appearance'}")
    engine = load_engine(args.weights, "onnx", "cpu", None)
    gate = args.gate if args.gate is not None else (engine.tracker_config.appearance_gate or DEFAULT_GATE)
    if not 0 < gate <= 1:
        raise UserError(f"--gate must be in (0, 1], got {gate:g}")
    path = args.verifier or str(Path(engine.weights_folder) / VERIFIER_FILE)
    verifier = load_verifier(path)
    looks = args.appearance if not args.check else verifier.has_appearance
    turns = args.turns if not args.check else verifier.appearance_turns  # a check measures the file's own turns
    data = collect(args.dataset, engine, verifier, progress=not args.no_progress,
                   appearance=find_appearance(engine) if looks else None, turns=turns)
    labels = data["iou"] >= 0.5
    base = data["evidence"][:, :len(EVIDENCE)]
    if not args.check:
        if labels.all() or not labels.any():
            raise UserError(f"{args.dataset}: every tracked frame is {'on' if labels.any() else 'off'} the target; "
                            "calibrate on a set where the tracker also fails")
        verifier = verifier.with_calibration(
            fit_calibration(base, data["iou"], data["kind"], args.absence_weight),
            fit_calibration(data["evidence"], data["iou"], data["kind"], args.absence_weight) if looks
            else None,  # without --appearance, the file's appearance calibration (if any) is kept
            turns if looks else None)
        if not verifier.weights_sha256:  # fitted on these weights' features: tie the file to them
            verifier = dataclasses.replace(verifier, weights_sha256=getattr(engine, "weights_sha256", ""))
        verifier.save(path)
        weights = ", ".join(f"{name} {w:+.4f}" for name, w in zip(EVIDENCE, verifier.calibration))
        print(f"calibration: {weights}, bias {verifier.calibration[-1]:+.4f} -> {path}")
        if looks:
            weights = ", ".join(f"{name} {w:+.4f}" for name, w in
                                zip((*EVIDENCE, APPEARANCE_EVIDENCE), verifier.appearance_calibration))
            print(f"appearance calibration: {weights}, bias {verifier.appearance_calibration[-1]:+.4f}")
    p = np.array([verifier.probability(e) for e in base])
    scores = [("verifier", p)]
    if looks:  # the appearance check where the verifier is under the gate, as the tracker applies it
        gated = np.array([verifier.appearance_probability(e[:-1], e[-1]) if q < gate else q
                          for e, q in zip(data["evidence"], p)])
        scores.append((f"looks<{gate:g}", gated))
    scores.append(("response", 1 / (1 + np.exp(-base[:, 1]))))
    for part, rows in (("natural frames", data["kind"] == 0), ("absence runs", data["kind"] > 0)):
        for name, score in scores:
            q = score_quality(score[rows], data["iou"][rows], score[rows] < 0.5, has_state=True)
            print(f"{part:15s} {name:9s} frames {q['frames']} (good {q['good_frames']}, off-target {q['off_frames']}): "
                  f"AUROC {_figure(q['auroc'])}, ECE {_figure(q['ece'])}, median score off-target "
                  f"{_figure(q['off_median_score'])}, under 0.5: off-target {_figure(q['off_flagged'])}, good "
                  f"{_figure(q['good_flagged'])}")
    return 0


def _figure(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    tv = sub.add_parser("train-verifier", help="train the target verifier's head on the crop cache")
    tv.add_argument("--data", default="../shared/data/train", help="crop cache folder (default ../shared/data/train)")
    tv.add_argument("--weights", help="exported ONNX folder whose features it learns on (default: the shipped pair)")
    tv.add_argument("--out", required=True, help=f"where to write the verifier (e.g. weights/{VERIFIER_FILE})")
    tv.add_argument("--pairs-per-folder", type=int, default=120, help="template/search pairs per video (default 120)")
    tv.add_argument("--look-alikes", type=int, default=0, metavar="N",
                    help="also show each pair's template one of its N mined look-alikes (the other videos' targets "
                         "whose template features are closest) as a negative (default 0: none, the shipped file's)")
    tv.add_argument("--epochs", type=int, default=8)
    tv.add_argument("--seed", type=int, default=0)
    tv.set_defaults(func=cmd_train_verifier)
    cv = sub.add_parser("calibrate-verifier", help="fit the verifier's score to P(IoU >= 0.5) on a validation set")
    cv.add_argument("dataset", metavar="DATASET_DIR", help="sequences with ground truth (as for eval)")
    cv.add_argument("--weights", help="exported ONNX folder (default: the shipped pair)")
    cv.add_argument("--verifier", help=f"verifier file (default: {VERIFIER_FILE} beside the weights)")
    cv.add_argument("--check", action="store_true", help="only measure the stored calibration on DATASET")
    cv.add_argument("--absence-weight", type=float, default=DEFAULT_ABSENCE_WEIGHT,
                    help="weight of the made absences' frames against the natural frames' 1 (default "
                         f"{DEFAULT_ABSENCE_WEIGHT:g}, the shipped file's; 0 fits the natural frames only; 1 counts "
                         "every frame alike, which scores natural video too low but falls sooner when the target "
                         "is gone)")
    cv.add_argument("--appearance", action="store_true",
                    help="also fit the appearance calibration (the evidence plus the ImageNet cosine, needs "
                         "appearance.onnx: `siamtrack export-appearance`); --check measures it when the file has one")
    cv.add_argument("--turns", type=int, default=1,
                    help="with --appearance: compare with the first box in this many quarter turns, the best cosine "
                         "counting (1 to 4, default 1; 4 keeps a target that rolls over alike, but also a stranger)")
    cv.add_argument("--gate", type=float,
                    help="the appearance_gate the printed figures apply the appearance check under (default: the "
                         f"weights' stored one, else {DEFAULT_GATE})")
    cv.add_argument("--no-progress", action="store_true", help="no progress bar")
    cv.set_defaults(func=cmd_calibrate_verifier)
