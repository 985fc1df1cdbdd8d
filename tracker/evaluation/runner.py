"""One-pass evaluation: run trackers on sequences, write result files, score them from the files.

Layout of an output folder::

    <out>/<tracker>/<seq>.txt                 x,y,w,h per tracked frame (OTB/got10k result format)
    <out>/<tracker>/times/<seq>_time.txt      tracker seconds per frame (init, then update)
    <out>/<tracker>/times/<seq>_decode.txt    image decoding seconds per frame
    <out>/<tracker>/scores/<seq>.txt          score,lost,state per frame (state 0 tracking, 1 uncertain, 2 lost;
                                              score,lost only for trackers without states, and in older folders)
    <out>/summary.json, summary.md, success_plot.png, precision_plot.png, reliability.png

Scores are always computed from these files, so ``--rescore`` reproduces them exactly.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tracker.errors import UserError
from tracker.progress import progress as make_progress
from tracker.running import TrackRun

from . import attributes, metrics, verification
from .datasets import Sequence

# The state column of scores/<seq>.txt.
STATE_CODES = {"tracking": 0, "uncertain": 1, "lost": 2}


def run_sequence(seq: Sequence, trackers: dict, progress: bool = True):
    """Track ``seq`` with every tracker on the same decoded frames (one decode per frame).

    Returns (boxes, track_times, decode_times, errors, scores): dicts by tracker name, except decode_times.
    scores[name] is (N, 3): the tracker's score, lost flag and state code (STATE_CODES) per frame (NaN, 0, 0 where
    it gives none), or (N, 2) without the state for a tracker that has no states (reports_state False: OpenCV's).
    """
    n = len(seq)
    boxes = {k: np.full((n, 4), np.nan) for k in trackers}
    times = {k: np.zeros(n) for k in trackers}
    scores = {k: np.column_stack([np.full(n, np.nan), np.zeros(n)] + ([np.zeros(n)] if _reports_state(t) else []))
              for k, t in trackers.items()}
    decode = np.zeros(n)
    errors: dict[str, str] = {}
    init_box = tuple(float(v) for v in seq.gt[0])
    runs = {name: TrackRun(trk, init_box) for name, trk in trackers.items()}
    bar = make_progress(n, f"  {seq.name}", "frame", quiet=not progress, leave=False)
    decoded = seq.images()
    for i in range(n):
        t0 = time.perf_counter()
        _, frame = next(decoded)  # a frame that cannot be decoded is a ValueError naming it
        decode[i] = time.perf_counter() - t0
        bar.update(1)
        for name, run in runs.items():
            if name in errors:
                continue
            try:
                step = run.step(frame)
            except Exception as e:  # one tracker crashing must not stop the others; run() reports it in one line
                errors[name] = f"frame {i + 1}: {type(e).__name__}: {e}"
                continue
            times[name][i] = step.seconds
            boxes[name][i] = step.result.box
            if not step.is_init:  # the init frame's answer is the given box: no score of the tracker's own
                row = (step.result.score, float(step.result.lost), STATE_CODES.get(step.result.state, 0))
                scores[name][i] = row[:scores[name].shape[1]]
    bar.close()
    return boxes, times, decode, errors, scores


def _reports_state(tracker) -> bool:
    return bool(getattr(tracker, "reports_state", True))


def write_result(out: Path, tracker: str, seq: str, boxes, track_t, decode_t, scores=None) -> None:
    d = Path(out) / tracker
    (d / "times").mkdir(parents=True, exist_ok=True)
    np.savetxt(d / f"{seq}.txt", np.asarray(boxes), fmt="%.4f", delimiter=",")
    np.savetxt(d / "times" / f"{seq}_time.txt", np.asarray(track_t), fmt="%.8f")
    np.savetxt(d / "times" / f"{seq}_decode.txt", np.asarray(decode_t), fmt="%.8f")
    if scores is not None and np.isfinite(scores[:, 0]).any():  # OpenCV peers give no score
        (d / "scores").mkdir(exist_ok=True)
        header = "score,lost,state" if scores.shape[1] > 2 else "score,lost"
        np.savetxt(d / "scores" / f"{seq}.txt", scores, fmt=["%.5f"] + ["%d"] * (scores.shape[1] - 1),
                   delimiter=",", header=header)


def read_result(out: Path, tracker: str, seq: str):
    """(boxes (N,4), track times or None, decode times or None, scores or None) from a result folder; scores is
    (N,3) score, lost, state code, or (N,2) where the file has no state column (a tracker without states, or a
    folder written before the state was kept)."""
    d = Path(out) / tracker
    boxes = np.loadtxt(d / f"{seq}.txt", delimiter=",", ndmin=2)
    def opt(p):
        return np.loadtxt(p, ndmin=1) if p.is_file() else None
    scores = d / "scores" / f"{seq}.txt"
    return (boxes, opt(d / "times" / f"{seq}_time.txt"), opt(d / "times" / f"{seq}_decode.txt"),
            np.loadtxt(scores, delimiter=",", ndmin=2) if scores.is_file() else None)


def run(sequences: list[Sequence], trackers: dict, out: Path, progress: bool = True) -> dict[str, str]:
    """Run and write results; returns {'tracker/seq': error} for runs that failed."""
    failures: dict[str, str] = {}
    bar = make_progress(None, "sequences", "seq", quiet=not progress, iterable=sequences)
    for seq in bar:
        bar.set_postfix_str(seq.name)
        try:
            boxes, times, decode, errors, scores = run_sequence(seq, trackers, progress)
        except ValueError as e:
            failures[f"*/{seq.name}"] = str(e)
            tqdm.write(f"skipping {seq.name}: {e}", file=sys.stderr)
            continue
        for name in trackers:
            if name in errors:
                failures[f"{name}/{seq.name}"] = errors[name]
                tqdm.write(f"{name} failed on {seq.name}: {errors[name]}", file=sys.stderr)
            else:
                write_result(out, name, seq.name, boxes[name], times[name], decode, scores[name])
    return failures


def _fps(frames: int, seconds: float) -> float:
    return float(frames / seconds) if seconds > 0 else float("nan")


def find_trackers(out: Path, seq_names: list[str]) -> list[str]:
    """Tracker folders in ``out`` holding a result for at least one of ``seq_names``
    ('siamtrack' first, then alphabetical)."""
    names = sorted(d.name for d in Path(out).iterdir()
                   if d.is_dir() and any((d / f"{s}.txt").is_file() for s in seq_names))
    return sorted(names, key=lambda n: (n != "siamtrack", n))


def score(out: Path, sequences: list[Sequence], tracker_names: list[str] | None = None) -> dict:
    """Score every tracker's result files in ``out`` against ``sequences``' ground truth."""
    out = Path(out)
    names = tracker_names if tracker_names is not None else find_trackers(out, [s.name for s in sequences])
    result: dict = {}
    for name in names:
        per_seq, seq_json, missing, scored_runs = [], {}, {}, []
        tot = {"frames": 0, "track": 0.0, "e2e": 0.0}
        for seq in sequences:
            try:
                boxes, tt, dt, sc = read_result(out, name, seq.name)
                m = metrics.sequence_metrics(boxes, seq.gt, seq.valid, seq.image_size)
                flags = None
                if sc is not None and len(sc) == len(boxes):
                    ious = metrics.rect_iou(np.nan_to_num(boxes, nan=-1e6), seq.gt)
                    scored_runs.append((sc, ious, seq.valid))
                    if sc.shape[1] > 2:  # a tracker with states: where its flags fall on this sequence
                        frames = np.asarray(seq.valid, bool) & (np.arange(len(sc)) > 0)
                        flags = verification.flag_counts(ious[frames], sc[frames, 2])
            except (OSError, ValueError) as e:
                missing[seq.name] = str(e).splitlines()[0]
                continue
            per_seq.append(m)
            entry = {k: v for k, v in m.items() if k != "got_ious"}
            if flags is not None:
                entry["flags"] = flags
            if tt is not None:
                track_s, e2e_s = float(tt.sum()), float(tt.sum() + (dt.sum() if dt is not None else 0.0))
                entry["fps_tracker"] = _fps(len(tt), track_s)
                entry["fps_end_to_end"] = _fps(len(tt), e2e_s)
                tot["frames"] += len(tt)
                tot["track"] += track_s
                tot["e2e"] += e2e_s
            seq_json[seq.name] = entry
        overall = metrics.overall_metrics(per_seq)
        if overall:
            overall["fps_tracker"] = _fps(tot["frames"], tot["track"])
            overall["fps_end_to_end"] = _fps(tot["frames"], tot["e2e"])
        if overall and scored_runs:
            overall.update(_score_measures(scored_runs))
        result[name] = {"overall": overall, "sequences": seq_json, "missing": missing}
    return _jsonable(result)


def _score_measures(runs) -> dict:
    """What a tracker's per-frame score and flags are worth, from (scores, ious, valid) per sequence: the lost flag,
    VOT-LT's long-term measures and the score's quality as a verifier (verification.py)."""
    measures = {"lost_flag": metrics.lost_flag_stats(runs)}
    # Frames after the first; where the target is absent (no GT) the IoU counts 0.
    sc = np.concatenate([f[0][1:, 0] for f in runs])
    present = np.concatenate([np.asarray(f[2][1:], bool) for f in runs])
    ious = np.concatenate([np.where(f[2][1:], np.nan_to_num(f[1][1:]), 0.0) for f in runs])
    measures["long_term"] = metrics.long_term_f_score(np.nan_to_num(sc, nan=0.0), ious, present)
    # The score's quality: frames after the first that have GT. A file without the state column (a tracker
    # without states, or an older folder) is judged by its lost flag.
    has_state = all(f[0].shape[1] > 2 for f in runs)
    scored = [np.asarray(f[2], bool) & (np.arange(len(f[2])) > 0) for f in runs]
    flag_column = 2 if has_state else 1  # state uncertain (1) or lost (2); the lost flag (1)
    measures["score_quality"] = verification.score_quality(
        np.concatenate([f[0][k, 0] for f, k in zip(runs, scored)]),
        np.concatenate([f[1][k] for f, k in zip(runs, scored)]),
        np.concatenate([f[0][k, flag_column] >= 1 for f, k in zip(runs, scored)]), has_state)
    return measures


def write_json(path: str | None, report, text: str) -> None:
    """A command's --json FILE, when given, written before its `text` goes to stdout (a stdout that fails, a full
    disk or a closed pipe, must not cost the --json); when the file cannot be written, `text` is printed and the
    UserError says so."""
    if path:
        try:
            Path(path).write_text(json.dumps(_jsonable(report), indent=1))
        except OSError as exc:
            print(text)
            raise UserError(f"cannot write --json {path}: {exc.strerror or exc} (the figures are printed above)") from None


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_jsonable(v) for v in x.tolist()]
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


_COLUMNS = [("auc", "AUC"), ("precision", "P@20px"), ("norm_precision", "NormP@0.2"),
            ("ao", "AO"), ("sr50", "SR@0.5"), ("sr75", "SR@0.75"),
            ("fps_tracker", "fps (tracker)"), ("fps_end_to_end", "fps (end-to-end)")]


def _fmt(v, key) -> str:
    if v is None:
        return "-"
    return f"{v:.1f}" if key.startswith("fps") else f"{v:.3f}"


def markdown(summary: dict) -> str:
    trk = summary["trackers"]
    head = "| " + " | ".join(["tracker", "seqs"] + [c for _, c in _COLUMNS]) + " |"
    sep = "|" + "---|" * (len(_COLUMNS) + 2)
    lines = [f"# Evaluation on {summary.get('dataset', '?')} ({summary.get('layout', '?')} layout)", "",
             "One-pass evaluation (initialised on the first GT box, never re-initialised). "
             "AUC / P@20px / NormP are OTB-style (per-sequence curves averaged over sequences); "
             "AO / SR follow GOT-10k (frames after the first, pooled). Frames without GT are not scored.",
             "", "## Overall", "", head, sep]
    if summary.get("earlier_results"):
        lines[4:4] = [f"Results of {', '.join(summary['earlier_results'])} were already in this folder from an "
                      "earlier run: scored here, not re-run.", ""]
    for name, t in trk.items():
        o = t.get("overall") or {}
        lines.append("| " + " | ".join([name, str(o.get("sequences", 0))] + [_fmt(o.get(k), k) for k, _ in _COLUMNS]) + " |")
    lines += _score_quality_lines(trk)
    if summary.get("attributes"):
        lines += ["", "## Per attribute", "", "Mean success AUC and P@20px over the sequences that carry each "
                  "attribute (OTB codes from the sequences' meta.json; a sequence usually carries several).", ""]
        lines += attributes.markdown_lines(summary["attributes"])
    lines += ["", "## Per sequence", "", "| sequence | tracker | frames | " + " | ".join(c for _, c in _COLUMNS) + " |",
              "|" + "---|" * (len(_COLUMNS) + 3)]
    for seq in summary.get("sequences", []):
        for name, t in trk.items():
            e = t["sequences"].get(seq)
            if e:
                lines.append("| " + " | ".join([seq, name, str(e["frames"])] + [_fmt(e.get(k), k) for k, _ in _COLUMNS]) + " |")
    lines += _flag_lines(summary.get("sequences", []), trk)
    lost_rows = [(name, t["overall"]["lost_flag"]) for name, t in trk.items() if (t.get("overall") or {}).get("lost_flag")]
    if lost_rows:
        lines += ["", "## Lost flag", "", "Frames after the first: *missed* = IoU 0, *tracked* = IoU >= 0.5. "
                  "The best threshold maximises (lost on missed) - (lost on tracked) over the scores.", "",
                  "| tracker | missed | tracked | lost on missed | lost on tracked | best threshold | recall | false alarm |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, f in lost_rows:
            lines.append(f"| {name} | {f['missed_frames']} | {f['tracked_frames']} | {_fmt(f['lost_on_missed'], 'r')} | "
                         f"{_fmt(f['lost_on_tracked'], 'r')} | {f.get('best_threshold', float('nan')):.2f} | "
                         f"{_fmt(f.get('best_threshold_recall'), 'r')} | {_fmt(f.get('best_threshold_false_alarm'), 'r')} |")
    lt_rows = [(name, t["overall"]["long_term"]) for name, t in trk.items()
               if (t.get("overall") or {}).get("long_term")]
    if lt_rows:
        lines += ["", "## Long-term measures (VOT-LT)", "", "A frame is reported present when its score >= tau; "
                  "precision = mean IoU over reported frames, recall = IoU summed over reported frames / frames where "
                  "the target is there (IoU 0 where it is absent); F maximised over tau.", "",
                  "| tracker | F-score | precision | recall | tau |", "|---|---|---|---|---|"]
        for name, lt in lt_rows:
            tau = "-" if lt.get("threshold") is None else f"{lt['threshold']:.2f}"
            lines.append(f"| {name} | {_fmt(lt['f_score'], 'r')} | {_fmt(lt['precision'], 'r')} | "
                         f"{_fmt(lt['recall'], 'r')} | {tau} |")
    notes = [f"- sequence {k}: {v}" for k, v in summary.get("skipped", {}).items()]
    notes += [f"- {k}: {v}" for k, v in summary.get("failures", {}).items()]
    notes += [f"- peer {k} not run: {v}" for k, v in summary.get("peers_unavailable", {}).items()]
    if notes:
        lines += ["", "## Not evaluated", ""] + notes
    return "\n".join(lines) + "\n"


def _score_quality_lines(trackers: dict) -> list[str]:
    rows = [(name, t["overall"]["score_quality"]) for name, t in trackers.items()
            if (t.get("overall") or {}).get("score_quality")]
    if not rows:
        return []
    lines = ["", "## Score quality", "",
             f"Frames after the first with GT: *good* = IoU >= {verification.GOOD_IOU}, *off* = IoU < "
             f"{verification.OFF_IOU}. AUROC: the score ranking good above off frames; flagged: state uncertain or "
             "lost (trackers without states: the lost flag); ECE: calibration error of the score read as "
             f"P(IoU >= {verification.GOOD_IOU}), {verification.BINS} equal-width bins (reliability.png).", "",
             "| tracker | good | off | AUROC | off flagged | good flagged | ECE | median score (off) | flag |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, q in rows:
        lines.append(f"| {name} | {q['good_frames']} | {q['off_frames']} | {_fmt(q['auroc'], 'r')} | "
                     f"{_fmt(q['off_flagged'], 'r')} | {_fmt(q['good_flagged'], 'r')} | {_fmt(q['ece'], 'r')} | "
                     f"{_fmt(q['off_median_score'], 'r')} | {q['flag']} |")
    return lines


def _flag_lines(sequences: list[str], trackers: dict) -> list[str]:
    """Per sequence, the mistakes of the flags (trackers with states): good frames flagged, off-target unflagged."""
    rows = []
    for seq in sequences:
        for name, t in trackers.items():
            f = (t["sequences"].get(seq) or {}).get("flags")
            if f and (f["good_uncertain"] or f["good_lost"] or f["off_tracking"]):
                rows.append(f"| {seq} | {name} | {f['good']} | {f['good_uncertain']} | {f['good_lost']} | "
                            f"{f['off']} | {f['off_tracking']} |")
    if not rows:
        return []
    return ["", "## Where the flags fall", "", "Per sequence, trackers with states, sequences with a mistake only: "
            f"good frames (IoU >= {verification.GOOD_IOU}) in state uncertain or lost, and off-target frames (IoU < "
            f"{verification.OFF_IOU}) in state tracking.", "",
            "| sequence | tracker | good | good, uncertain | good, lost | off | off, tracking |",
            "|---|---|---|---|---|---|---|", *rows]


def write_summary(out: Path, summary: dict) -> list[Path]:
    from .plots import plot_curves, plot_reliability  # matplotlib: only when plots are drawn
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(markdown(summary))
    return [out / "summary.json", out / "summary.md"] + plot_curves(summary, out) + plot_reliability(summary, out)
