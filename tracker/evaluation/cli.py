"""The ``eval`` and ``bench`` subcommands of ``siamtrack``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from tracker.errors import UserError
from tracker.options import add_model_options, check_model_options, first_engine, load_tracker, split_list
from tracker.outputs import check_output_dir, check_output_path
from tracker.result import parse_box
from tracker.sources import default_box
from tracker.tracking import SiamTracker

from tracker.multi import MultiTracker

from . import bench, compare, crossing, peers, runner
from .absence import KINDS, flag_rates, long_term_scores, run_events, state_summary
from .attributes import attribute_table
from .datasets import load_dataset
from .lost import collect_scores, separating_threshold
from .targets_bench import format_targets, run_targets_bench
from .verification import GOOD_IOU, OFF_IOU


def add_subcommands(subparsers) -> None:
    e = subparsers.add_parser(
        "eval", help="one-pass evaluation on an OTB, GOT-10k or video folder, optionally against OpenCV trackers",
        description="One-pass evaluation (init on the first GT box, never re-init). Writes per-frame result "
                    "files, summary.json, summary.md, success/precision plots and, for trackers with a score, its "
                    "quality (AUROC good vs off-target frames, flagged shares, calibration error) and reliability.png "
                    "to --out; with OTB attributes in the sequences' meta.json, a per-attribute table.")
    e.add_argument("dataset", metavar="DATASET_DIR",
                   help="OTB or GOT-10k layout folder, <name>/video.mp4 + <name>/groundtruth.txt folders (as "
                        "../shared/data/val-hard), or one sequence folder of any of them")
    e.add_argument("--sequences", help="comma-separated subset of sequence names")
    e.add_argument("--compare", help=PEERS_HELP)
    e.add_argument("--out", help="output folder (default: results/<dataset name>; with --rescore: that folder)")
    e.add_argument("--no-siamtrack", action="store_true", help="run only the --compare peers")
    e.add_argument("--label", metavar="NAME",
                   help="the name siamtrack's results are written and reported under (default siamtrack), so that "
                        "two settings can share one --out folder, e.g. --label published-v3 --weights ...; other "
                        "trackers' results already in --out are kept and reported too")
    e.add_argument("--rescore", metavar="RESULT_DIR", help="score existing result files instead of tracking")
    _tracker_args(e)
    e.set_defaults(func=cmd_eval)

    b = subparsers.add_parser(
        "bench", help="median per-stage milliseconds and fps on a clip, next to OpenCV peers",
        description="Tracks a clip and prints median ms per stage (decode, crop, backbone, correlation, "
                    "postprocess, total) and fps; the --compare peers run on the same decoded frames.")
    b.add_argument("source", metavar="SOURCE", help="video file (or folder of frames)")
    b.add_argument("--box", help="initial box x,y,w,h in 0-based pixels (default: <clip>_groundtruth.txt "
                                 "or <clip>_init.txt next to the clip)")
    b.add_argument("--frames", type=int, help="track at most N frames (default: the whole clip)")
    b.add_argument("--compare", help=PEERS_HELP)
    b.add_argument("--no-siamtrack", action="store_true", help="time only the --compare peers")
    b.add_argument("--json", metavar="FILE", help="also write the medians to FILE as JSON")
    b.add_argument("--targets", metavar="N,N,...",
                   help="time several targets at once instead, e.g. 1,2,4,8,16: for each count, one MultiTracker "
                        "(all targets' crops in one network run) against that many separate trackers, and the "
                        "--compare peers as that many separate trackers; the targets are --box and boxes of its "
                        "size spread over the frame")
    b.add_argument("--plot", metavar="PNG", help="with --targets: also draw ms per frame against targets into PNG")
    _tracker_args(b)
    b.set_defaults(func=cmd_bench)

    compare.add_subcommand(subparsers)


    lost = subparsers.add_parser(
        "calibrate-lost", help="measure scores with the target present and absent; suggest lost_threshold",
        description="Tracks each sequence normally (scores on frames with IoU >= 0.5), then feeds the tracker "
                    "another sequence's frames, where its target is absent. Prints both score distributions and "
                    "the threshold that best separates them (the measurement behind lost_threshold).")
    lost.add_argument("dataset", metavar="DATASET_DIR", help="OTB, GOT-10k or video layout folder (as for eval)")
    lost.add_argument("--compare", help="peers whose score to measure the same way: nano (OpenCV's TrackerNano; "
                                        "the classic OpenCV trackers give no score)")
    lost.add_argument("--sequences", help="comma-separated subset of sequence names")
    lost.add_argument("--absent-frames", type=int, default=30, help="frames of another sequence per sequence")
    lost.add_argument("--max-false-alarm", type=float, default=0.05,
                      help="largest share of tracked frames the suggested threshold may flag (default 0.05)")
    _tracker_args(lost)
    lost.set_defaults(func=cmd_calibrate_lost)

    absence = subparsers.add_parser(
        "absence", help="measure the lost flag and re-detection where targets disappear and come back",
        description="On each sequence, the target disappears for --length frames (a cut to another sequence, or a "
                    "full occlusion of its box by a patch of another sequence) and comes back. Prints the share of "
                    "absent and of visible frames the per-frame flag (score < t) marks for each threshold t, the "
                    "state machine's figures as configured (frames to 'lost', frames to re-acquire, false "
                    "re-acquisitions), and VOT-LT precision / recall / F-score.")
    absence.add_argument("dataset", metavar="DATASET_DIR",
                         help="OTB or GOT-10k layout folder, or <Name>/video.mp4 + groundtruth.txt folders")
    absence.add_argument("--kinds", default="cut,occlusion", help="absences to make: cut, occlusion (default both)")
    absence.add_argument("--length", type=int, default=30, help="frames the target is absent (default 30)")
    absence.add_argument("--after", type=int, default=60, help="frames of the sequence kept after it returns")
    absence.add_argument("--max-sequences", type=int, help="use at most this many sequences")
    absence.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    _tracker_args(absence)
    absence.set_defaults(func=cmd_absence)

    cross = subparsers.add_parser(
        "crossing", help="count identity switches where tracked targets cross each other",
        description="Builds crossing clips from real footage (validation targets pasted on vtest.avi along paths "
                    "that cross; the multi-target demo's two pedestrians) and tracks each with one MultiTracker. "
                    "Prints, per clip, identity switches (MOT's IDSW), frames where two targets hold one object, "
                    "each target's success AUC, and whether the targets end apart.")
    cross.add_argument("--data", metavar="DIR", default=str(DEFAULT_DATA),
                       help="folder with val/, val-hard/ and videos/vtest.avi (default: ../shared/data beside the "
                            "checkout, else beside the working folder)")
    cross.add_argument("--cases", help=f"comma-separated clips to run: {','.join(crossing.CASES)} (default all)")
    cross.add_argument("--json", metavar="FILE", help="also write the counts to FILE as JSON")
    _tracker_args(cross)
    cross.set_defaults(func=cmd_crossing)


PEERS_HELP = (f"comma-separated OpenCV peers: {','.join(peers.PEERS)} (nano: cv2.TrackerNano with the NanoTrack v2 "
              f"pair from ${peers.NANOTRACK_ENV}, default ../shared/models/nanotrack-v2; nano-ours: cv2.TrackerNano with "
              f"the files of `siamtrack export --format opencv --out DIR` from ${peers.NANO_OURS_ENV})")


def cmd_calibrate_lost(args) -> int:
    _, sequences, problems = load_dataset(Path(args.dataset), split_list(args.sequences))
    for name, why in problems.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    if len(sequences) < 2:
        raise UserError("calibrate-lost needs at least 2 sequences (the absent target comes from another one)")
    if args.absent_frames < 1:
        raise UserError("--absent-frames must be >= 1")
    compared = peers.parse_peer_names(args.compare)
    for name in compared:
        if name != "nano":
            raise UserError(f"--compare {name}: OpenCV's {name.upper()} gives no score to calibrate; nano does")
        if peers.availability()[name]:
            raise UserError(peers.availability()[name])
    shared = load_tracker(SiamTracker, args, engine=first_engine(args))
    tracked, absent = collect_scores(sequences, lambda: SiamTracker(shared.engine, shared.config),
                                     args.absent_frames, progress=not args.no_progress)
    result = separating_threshold(tracked, absent, args.max_false_alarm)
    print(json.dumps(result, indent=2))
    print(f"suggested lost_threshold {result['threshold']:.2f}: flags {100 * result['recall']:.1f}% of "
          f"target-absent frames and {100 * result['false_alarm']:.1f}% of tracked frames "
          f"(current: {shared.config.lost_threshold:.2f})")
    for name in compared:
        tracked, absent = collect_scores(sequences, lambda name=name: peers.make_peer(name), args.absent_frames,
                                         progress=not args.no_progress)
        peer = separating_threshold(tracked, absent, args.max_false_alarm)
        print(f"{name}: the best threshold on its score ({peer['threshold']:.2f}) flags {100 * peer['recall']:.1f}% "
              f"of target-absent frames and {100 * peer['false_alarm']:.1f}% of tracked frames (median score "
              f"{peer['tracked_score_percentiles'][50]:.2f} tracked, {peer['absent_score_percentiles'][50]:.2f} "
              "absent)")
    return 0


def cmd_absence(args) -> int:
    kinds = split_list(args.kinds) or list(KINDS)
    for kind in kinds:
        if kind not in KINDS:
            raise UserError(f"--kinds: unknown kind {kind!r}; use {', '.join(KINDS)}")
    if args.length < 1 or args.after < 1:
        raise UserError("--length and --after must be >= 1")
    if args.json:
        check_output_path(args.json, "--json")
    _, clips, problems = load_dataset(Path(args.dataset))
    for name, why in problems.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    clips = clips[:args.max_sequences]
    shared = load_tracker(SiamTracker, args, engine=first_engine(args))
    runs = run_events(clips, lambda: SiamTracker(shared.engine, shared.config), kinds, args.length, args.after,
                      progress=not args.no_progress)
    report = {"config": {k: getattr(shared.config, k) for k in (
        "verify", "appearance_gate", "lost_threshold", "uncertain_margin", "uncertain_after", "lost_after",
        "fast_lost_threshold", "fast_lost_after", "redetect_margin", "redetect_confirm", "redetect_follow",
        "redetect_tiles", "redetect_move", "redetect_look", "jump_cosine", "jump_at_cuts", "hold_lost_box")}}
    for kind in kinds:
        chosen = [r for r in runs if r.kind == kind]
        report[kind] = {"flag": flag_rates(chosen, np.round(np.arange(0.3, 0.96, 0.05), 2)),
                        "states": state_summary(chosen), "long_term": long_term_scores(chosen),
                        "fillers": {r.name: r.filler for r in chosen}}
    print(f"config: {report['config']}")
    for kind in kinds:
        r = report[kind]
        print(f"\n{kind}: {r['states']['runs']} sequences, {args.length} absent frames each")
        print("  per-frame flag (score < t):  t      absent flagged  visible flagged")
        for row in r["flag"]:
            print(f"                               {row['threshold']:.2f}   {100 * row['absent_flagged']:6.1f}%"
                  f"         {100 * row['visible_flagged']:6.1f}%")
        st = r["states"]
        print(f"  states: absent frames lost {100 * st['absent_frames_lost']:.1f}%, visible frames lost "
              f"{100 * st['visible_frames_lost']:.1f}%; absences detected {st['absences_detected']} (median "
              f"{st['frames_to_lost_median']} frames); re-acquired {st['reacquired']} (median "
              f"{st['frames_to_reacquire_median']} frames); false re-acquisitions {st['false_reacquisitions']}"
              f"{_false_takes(st['false_reacquisitions_by_kind'])}")
        for event in st["false_reacquisition_events"]:
            print(f"    false re-acquisition: {event['sequence']} frame {event['frame']}, "
                  f"{_TAKEN[event['taken']]} (IoU {event['iou']:.3f})")
        lt = r["long_term"]
        print(f"  VOT-LT: F {lt['f_score']:.3f} (precision {lt['precision']:.3f}, recall {lt['recall']:.3f}, "
              f"at score >= {lt['threshold']})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


_TAKEN = {"while_away": "while the target was away", "another_place": "another place",
          "loose_box": "the target under a loose box"}


def _false_takes(by_kind: dict) -> str:
    """What the false re-acquisitions took: nothing (the target away), another place, the target under a loose
    box; empty when there were none."""
    if not sum(by_kind.values()):
        return ""
    return (f" (while the target was away {by_kind['while_away']}, another place {by_kind['another_place']}, "
            f"the target under a loose box (IoU {OFF_IOU:g} to {GOOD_IOU:g}) {by_kind['loose_box']})")


# Beside the checkout when siamtrack runs from one (an editable install), else ../shared/data from the working
# folder: an installed package's own location says nothing about where the data is.
_BESIDE_CHECKOUT = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DEFAULT_DATA = _BESIDE_CHECKOUT if _BESIDE_CHECKOUT.is_dir() else Path("..") / "shared" / "data"


def cmd_crossing(args) -> int:
    cases = split_list(args.cases) or list(crossing.CASES)
    for case in cases:
        if case not in crossing.CASES:
            raise UserError(f"--cases: unknown clip {case!r}; use {', '.join(crossing.CASES)}")
    if args.json:
        check_output_path(args.json, "--json")
    clips = crossing.build_clips(Path(args.data), cases)
    shared = load_tracker(MultiTracker, args, engine=first_engine(args))
    report = crossing.run_crossing(clips, lambda: MultiTracker(shared.engine, shared.config),
                                   progress=not args.no_progress)
    text = crossing.format_report(report)
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(report, indent=1))
        except OSError as exc:
            print(text)
            raise UserError(f"cannot write --json {args.json}: {exc.strerror or exc} "
                            "(the counts are printed above)") from None
    print(text)
    return 0


def _tracker_args(p: argparse.ArgumentParser) -> None:
    add_model_options(p, lists=True)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _trackers(args) -> tuple[dict, dict]:
    """(name -> tracker object, unavailable peer -> reason)."""
    names = peers.parse_peer_names(args.compare)
    avail = peers.availability()
    missing = {n: avail[n] for n in names if avail[n]}
    for n, why in missing.items():
        print(f"warning: peer {n} skipped: {why}", file=sys.stderr)
    trackers: dict = {}
    if not args.no_siamtrack:
        engines = split_list(args.engine) or ["auto"]
        weights_list = split_list(args.weights) or [None]
        check_model_options(args)
        for weights in weights_list:
            for engine in engines:
                name = _label(args)
                if len(engines) > 1:
                    name += f"-{engine}"
                if len(weights_list) > 1:
                    name += f"-{Path(weights).stem if Path(weights).suffix else Path(weights).name}"
                if name in trackers:
                    raise UserError(f"--weights: two entries would both be called {name}; give them distinct names")
                trackers[name] = load_tracker(SiamTracker, args, weights, engine)
    for n in names:
        if n not in missing:
            trackers[n] = peers.make_peer(n)
    if not trackers:
        raise UserError("nothing to run: drop --no-siamtrack or give --compare with an available peer")
    return trackers, missing


def _label(args) -> str:
    """--label, checked: a plain folder name that no --compare peer has."""
    label = getattr(args, "label", None)  # bench and calibrate-lost have no --label
    label = "siamtrack" if label is None else label
    if not label or label in (".", "..") or any(c in label for c in '/\\:') or label != label.strip():
        raise UserError(f"--label {label!r}: give a plain name to write siamtrack's results under, such as "
                        "published-v3 (no slashes, not empty)")
    if label.lower() in peers.parse_peer_names(args.compare):
        raise UserError(f"--label {label}: that is the name of a --compare peer; choose another")
    return label


def cmd_eval(args) -> int:
    root = Path(args.dataset)
    peers.parse_peer_names(args.compare)  # fail fast on a typo, before loading anything
    if args.label is not None and (args.no_siamtrack or args.rescore):
        raise UserError("--label names the results of the siamtrack run: it does nothing with --no-siamtrack or "
                        "--rescore; drop it")
    _label(args)
    layout, seqs, problems = load_dataset(root, split_list(args.sequences))
    for name, why in problems.items():
        print(f"warning: sequence {name} skipped: {why}", file=sys.stderr)
    for s in seqs:
        if s.note:
            print(f"note: {s.name}: {s.note}", file=sys.stderr)
    if not seqs:
        raise UserError(f"no usable sequences in {root}" + (" (see the warnings above)" if problems else ""))
    # dataset_dir (absolute) is how `siamtrack compare` finds the ground truth again.
    summary = {"dataset": str(root), "dataset_dir": str(root.resolve()), "layout": layout,
               "sequences": [s.name for s in seqs], "skipped": problems}
    if args.rescore:
        src = Path(args.rescore)
        if not src.is_dir() or not runner.find_trackers(src, [s.name for s in seqs]):
            raise UserError(f"--rescore {src}: no result files <tracker>/<sequence>.txt for these sequences")
        out = Path(args.out) if args.out else src
        scores = runner.score(src, seqs)
    else:
        out = check_output_dir(args.out or Path("results") / (root.resolve().name or "eval"), "--out")
        trackers, missing = _trackers(args)
        summary["peers_unavailable"] = missing
        print(f"{layout}: {len(seqs)} sequences, {sum(len(s) for s in seqs)} frames; trackers: "
              f"{', '.join(trackers)}; results -> {out}", file=sys.stderr)
        summary["failures"] = runner.run(seqs, trackers, out, progress=not args.no_progress)
        # Results of other trackers (another --label, an earlier --compare) already in --out are kept and scored
        # too, so summary.json covers every tracker whose files are there; it says which were not run now.
        earlier = [n for n in runner.find_trackers(out, [s.name for s in seqs]) if n not in trackers]
        if earlier:
            summary["earlier_results"] = earlier
            print(f"note: {out} also holds results of {', '.join(earlier)} from an earlier run: not re-run, "
                  "scored and reported with the others", file=sys.stderr)
        scores = runner.score(out, seqs, list(trackers) + earlier)
    summary["trackers"] = scores
    attributes = {s.name: list(s.attributes) for s in seqs if s.attributes}
    if attributes:
        summary["sequence_attributes"] = attributes
        summary["attributes"] = attribute_table(attributes, scores)
    paths = runner.write_summary(out, summary)
    md = runner.markdown(summary)
    print(md.split("## Per sequence")[0].rstrip())
    print("\nwrote " + ", ".join(str(p) for p in paths))
    if not any(t.get("overall") for t in scores.values()):
        reasons = "; ".join(f"{k}: {v}" for k, v in summary.get("failures", {}).items())
        raise UserError("no sequence could be scored" + (f" ({reasons})" if reasons else ""))
    return 0


def _target_counts(text: str) -> list[int]:
    try:
        counts = [int(v) for v in split_list(text) or []]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or max(counts) > 256:
        raise UserError(f"--targets {text!r}: give target counts from 1 to 256, comma-separated, e.g. 1,2,4,8,16")
    return sorted(set(counts))


def cmd_bench(args) -> int:
    src = Path(args.source)
    if not src.exists():
        raise UserError(f"clip not found: {src}")
    if args.frames is not None and args.frames < 2:
        raise UserError("--frames must be at least 2 (one init frame, then updates)")
    box = parse_box(args.box) if args.box else default_box(src)
    if box is None:
        raise UserError(f"{src.name} has no ground truth or init file next to it: pass --box x,y,w,h")
    if args.json:
        check_output_path(args.json, "--json", [src])
    counts = _target_counts(args.targets) if args.targets is not None else None
    if args.plot is not None:
        if counts is None:
            raise UserError("--plot draws the --targets figures: give --targets too (e.g. --targets 1,2,4,8,16)")
        if Path(args.plot).suffix.lower() != ".png":
            raise UserError(f"--plot {args.plot}: give a .png file name")
        check_output_path(args.plot, "--plot", [src])
    trackers, _ = _trackers(args)
    if counts is not None:
        networks = {n: t for n, t in trackers.items() if isinstance(t, SiamTracker)}
        makers = {n: (lambda n=n: peers.make_peer(n)) for n in trackers if n not in networks}
        summ = run_targets_bench(src, box, networks, counts, args.frames, makers, progress=not args.no_progress)
        text = format_targets(summ)
    else:
        summ = bench.summarize(bench.run_bench(src, box, trackers, args.frames, progress=not args.no_progress))
        text = bench.format_summary(summ)
    runner.write_json(args.json, summ, text)
    plotted = None
    if counts is not None and args.plot is not None:
        from .plots import plot_targets

        plotted = plot_targets(summ, Path(args.plot))
    print(text)
    if plotted is not None:
        print(f"wrote {plotted}")
    return 0
