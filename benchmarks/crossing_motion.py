"""Does motion keep identities through crossings? demote_by_motion and reunite_by_motion on many crossing clips.

    python benchmarks/crossing_motion.py [--data ../shared/data] [--weights ...] [--set KEY=VALUE ...]

`siamtrack crossing`'s four pasted clips always paste target #1 last, in front, so the target to demote is
always #0; a rule can pass them for the wrong reason. This runs them with the walkers' order reversed as well,
and more pairs, in three groups of clips:

* choosing: the benchmark's four clips, five more pairs, each also reversed (18 clips). demote_by_motion's
  DRIFT_FRAMES and MOTION_TIE (tracker/exclusive.py) were picked on these;
* confirming: six more pairs, each also reversed (12 clips), made after that choice. reunite_by_motion
  (tracker/reunite.py) was designed while looking at clips of both these groups;
* fresh: six more pairs, each also reversed (12 clips), made before reunite_by_motion was first run on them.

Each clip is tracked by a fresh MultiTracker with each of four settings (neither key on, either, both: the
shipped default); printed per group: identity switches (MOT's IDSW), identity F1 (IDF1), shared
frames and mean AUC, then each clip where the settings differ. The clips are built as `siamtrack crossing`
builds its own (crossing.paste_clip), so every run sees the same frames.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tracker.evaluation.crossing import PASTES, PasteCase, Walker, paste_clip, run_crossing
from tracker.multi import MultiTracker
from tracker.options import add_model_options, load_tracker

W = Walker
MORE_CHOOSING = (
    PasteCase("couple-dog", (W("val", "Couple", 90, (0.15, 0.5), (0.85, 0.55)),
                             W("val", "Dog", 90, (0.85, 0.52), (0.15, 0.5))), 100, "a couple and a dog cross"),
    PasteCase("girl-boy", (W("val-hard", "Girl", 100, (0.2, 0.45), (0.8, 0.55)),
                           W("val-hard", "Boy", 100, (0.8, 0.45), (0.2, 0.55))), 300, "two faces cross on an X"),
    PasteCase("singer-twins", (W("val-hard", "Singer1", 100, (0.15, 0.5), (0.85, 0.5)),
                               W("val-hard", "Singer1", 100, (0.85, 0.52), (0.15, 0.48), first=100)), 500,
              "one singer twice"),
    PasteCase("crossing-twins", (W("val", "Crossing", 90, (0.15, 0.48), (0.85, 0.52)),
                                 W("val", "Crossing", 90, (0.85, 0.5), (0.15, 0.5), first=40)), 700,
              "one walker twice"),
    PasteCase("slow-fast", (W("val-hard", "Woman", 90, (0.3, 0.5), (0.6, 0.5)),
                            W("val", "Crossing", 90, (0.9, 0.52), (0.1, 0.5))), 0, "a slow and a fast walker"),
)
CONFIRMING = (
    PasteCase("bird-tiger", (W("val-hard", "Bird2", 80, (0.1, 0.3), (0.9, 0.7)),
                             W("val-hard", "Tiger1", 80, (0.9, 0.3), (0.1, 0.7))), 50, "diagonals"),
    PasteCase("vertical", (W("val-hard", "Woman", 90, (0.45, 0.1), (0.55, 0.9)),
                           W("val", "Crossing", 90, (0.55, 0.9), (0.45, 0.1))), 250, "walkers cross top to bottom"),
    PasteCase("gym-twins", (W("val-hard", "Gym", 100, (0.2, 0.5), (0.8, 0.5)),
                            W("val-hard", "Gym", 100, (0.8, 0.5), (0.2, 0.5), first=150)), 350, "one gymnast twice"),
    PasteCase("david-twins", (W("val", "David", 90, (0.15, 0.45), (0.85, 0.5)),
                              W("val", "David", 90, (0.85, 0.5), (0.15, 0.45), first=200)), 450, "one face twice"),
    PasteCase("overtake", (W("val", "Couple", 90, (0.1, 0.5), (0.5, 0.5)),
                           W("val-hard", "Woman", 90, (0.05, 0.52), (0.95, 0.5))), 550, "one overtakes the other"),
    PasteCase("skaters", (W("val-hard", "Skating1", 110, (0.15, 0.55), (0.85, 0.45)),
                          W("val-hard", "Skating2-1", 110, (0.85, 0.55), (0.15, 0.45))), 650, "two skaters"),
)


FRESH = (
    PasteCase("woman-twins-x", (W("val-hard", "Woman", 90, (0.15, 0.3), (0.85, 0.7)),
                                W("val-hard", "Woman", 90, (0.85, 0.35), (0.15, 0.65), first=150)), 100,
              "one woman twice, on diagonals"),
    PasteCase("girl-twins", (W("val-hard", "Girl", 100, (0.15, 0.5), (0.85, 0.52)),
                             W("val-hard", "Girl", 100, (0.85, 0.5), (0.15, 0.48), first=250)), 150,
              "one face twice"),
    PasteCase("boy-twins", (W("val-hard", "Boy", 100, (0.1, 0.5), (0.9, 0.5)),
                            W("val-hard", "Boy", 100, (0.7, 0.52), (0.3, 0.48), first=300)), 250,
              "one boy twice, one twice as fast"),
    PasteCase("skating-pair", (W("val-hard", "Skating2-1", 110, (0.15, 0.5), (0.85, 0.5)),
                               W("val-hard", "Skating2-2", 110, (0.85, 0.52), (0.15, 0.5))), 300,
              "the two skaters of one pair"),
    PasteCase("dogs", (W("val", "Dog", 80, (0.2, 0.6), (0.8, 0.4)),
                       W("val-hard", "Dog1", 80, (0.8, 0.6), (0.2, 0.4))), 450, "two dogs, diagonals"),
    PasteCase("faces-vertical", (W("val", "Freeman1", 90, (0.4, 0.15), (0.6, 0.85)),
                                 W("val-hard", "FaceOcc1", 90, (0.6, 0.15), (0.4, 0.85))), 500,
              "two faces cross top to bottom"),
)
SETTINGS = {"neither": {"demote_by_motion": 0, "reunite_by_motion": 0},
            "demote_by_motion": {"demote_by_motion": 1, "reunite_by_motion": 0},
            "reunite_by_motion": {"demote_by_motion": 0, "reunite_by_motion": 1},
            "both (the default)": {"demote_by_motion": 1, "reunite_by_motion": 1}}


def both_orders(cases) -> list[PasteCase]:
    """Each case as it is and with its walkers swapped (the other one pasted last, in front)."""
    return [c for case in cases for c in (case, PasteCase(case.name + "-rev", case.walkers[::-1],
                                                          case.background_start, case.note + ", reversed"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--groups", default="choosing,confirming,fresh", help="which groups of clips to run")
    add_model_options(parser)
    args = parser.parse_args()
    shared = load_tracker(MultiTracker, args)
    configs = {name: shared.config.replace(**changes) for name, changes in SETTINGS.items()}
    groups = {"choosing": both_orders(PASTES + MORE_CHOOSING), "confirming": both_orders(CONFIRMING),
              "fresh": both_orders(FRESH)}
    for group in args.groups.split(","):
        clips = [paste_clip(args.data, case) for case in groups[group]]
        reports = {name: run_crossing(clips, lambda c=config: MultiTracker(shared.engine, c))
                   for name, config in configs.items()}
        print(f"{group} ({len(clips)} clips)")
        for name, report in reports.items():
            total = report["total"]
            print(f"  {name:20s} {total['identity_switches']:2d} identity switches, IDF1 {total['idf1']:.3f}, "
                  f"{total['shared_frames']:2d} shared frames, mean AUC {total['mean_auc']:.3f}")
        for clip in clips:
            counts = [(r[clip.name]["total_switches"], r[clip.name]["idf1"], r[clip.name]["shared_frames"])
                      for r in reports.values()]
            if len(set(counts)) > 1:
                print(f"    {clip.name:20s} IDSW / IDF1 / shared: "
                      + ", ".join(f"{n} {f:.2f} {h}" for n, f, h in counts))


if __name__ == "__main__":
    main()
