"""`siamtrack compare`: is a tracker's lead over a baseline more than the luck of which sequences were chosen?

Reads result folders written by `siamtrack eval`, scores every tracker's files per sequence with the metrics eval
uses (success AUC, P@20) against the dataset's ground truth (the folder's summary.json names the dataset), pools the
sequences of all folders, and for each tracker gives the mean per-sequence difference to the baseline with a paired
bootstrap interval: resample the sequences with replacement, take the mean difference of each resample, read the
2.5th and 97.5th percentiles. A setting "wins" only where the interval lies above zero.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from tracker.errors import UserError
from tracker.outputs import check_output_path

from . import runner
from .datasets import load_dataset

MEASURES = {"auc": "AUC", "precision": "P@20"}
CONFIDENCE = 0.95
_CHUNK = 1000  # resamples drawn at a time: memory stays at _CHUNK x sequences indices


def paired_bootstrap(differences, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean, (2, k) interval) of per-sequence paired `differences` (n, k): the mean over sequences, and the
    CONFIDENCE percentile interval of that mean over `resamples` resamples of the n sequences with replacement
    (the same resampled sequences for all k columns)."""
    d = np.asarray(differences, float)
    d = d.reshape(len(d), -1)
    means = []
    for start in range(0, resamples, _CHUNK):
        picks = rng.integers(0, len(d), size=(min(_CHUNK, resamples - start), len(d)))
        means.append(d[picks].mean(axis=1))
    tail = 100 * (1 - CONFIDENCE) / 2
    return d.mean(axis=0), np.percentile(np.concatenate(means), [tail, 100 - tail], axis=0)


def read_result_folder(folder: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{tracker: {sequence: {"auc", "precision"}}} of an eval result folder, scored from its files."""
    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not folder.is_dir():
        raise UserError(f"result folder not found: {folder}")
    try:
        summary = json.loads(summary_path.read_text())
        dataset = Path(summary.get("dataset_dir") or summary["dataset"])
        names = list(summary["sequences"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{folder} has no readable summary.json naming its dataset and sequences: give a folder "
                        "written by siamtrack eval (--out)") from None
    if not dataset.is_dir():
        raise UserError(f"{folder}: its dataset {dataset} (from summary.json) is not there; the ground truth is read "
                        "from it: put the dataset back or fix dataset_dir in summary.json")
    _, sequences, problems = load_dataset(dataset, names)
    for name, why in problems.items():
        print(f"warning: {folder}: sequence {name} skipped: {why}", file=sys.stderr)
    trackers = runner.find_trackers(folder, [s.name for s in sequences]) if sequences else []
    if not trackers:
        raise UserError(f"{folder} holds no result files <tracker>/<sequence>.txt for its sequences: give a folder "
                        "written by siamtrack eval (--out)")
    scored = runner.score(folder, sequences, trackers)
    return {t: {s: {m: e[m] for m in MEASURES} for s, e in scored[t]["sequences"].items()} for t in trackers}


def pool(folders: dict[str, dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Merge read_result_folder's answers (by folder name): {tracker: {sequence: figures}}; a sequence name found
    in more than one folder is written <folder>/<sequence> everywhere."""
    counts: dict[str, int] = {}
    for results in folders.values():
        for seq in {s for per_seq in results.values() for s in per_seq}:
            counts[seq] = counts.get(seq, 0) + 1
    pooled: dict[str, dict] = {}
    for folder, results in folders.items():
        for tracker, per_seq in results.items():
            for seq, figures in per_seq.items():
                pooled.setdefault(tracker, {})[f"{folder}/{seq}" if counts[seq] > 1 else seq] = figures
    return pooled


def compare(pooled: dict, baseline: str, trackers: list[str], resamples: int, seed: int) -> dict:
    """Each tracker's mean AUC and P@20 against the baseline's, on the sequences both have results for, with
    paired bootstrap intervals and a verdict. One numpy Generator(seed), trackers in the order given."""
    rng = np.random.default_rng(seed)
    rows = {}
    for tracker in trackers:
        shared = [s for s in pooled[baseline] if s in pooled[tracker]]
        if not shared:
            rows[tracker] = {"sequences": 0}
            continue
        mine = np.array([[pooled[tracker][s][m] for m in MEASURES] for s in shared], float)
        base = np.array([[pooled[baseline][s][m] for m in MEASURES] for s in shared], float)
        mean, (low, high) = paired_bootstrap(mine - base, resamples, rng)
        rows[tracker] = {"sequences": len(shared), **{m: {
            "mean": float(mine[:, i].mean()), "baseline_mean": float(base[:, i].mean()),
            "difference": float(mean[i]), "low": float(low[i]), "high": float(high[i]),
            "verdict": "above zero" if low[i] > 0 else "not above zero"} for i, m in enumerate(MEASURES)}}
    return rows


def format_table(report: dict) -> str:
    pct = f"{100 * CONFIDENCE:g}%"
    lines = [f"baseline {report['baseline']}: {len(report['sequences'])} sequences from {len(report['folders'])} "
             f"folder(s); paired bootstrap over sequences, {report['resamples']} resamples, seed {report['seed']}, "
             f"{pct} intervals", "",
             "| tracker | seqs | " + " | ".join(f"{name} | diff [{pct}] | verdict" for name in MEASURES.values())
             + " |",
             "|" + "---|" * (2 + 3 * len(MEASURES))]
    for tracker, row in report["trackers"].items():
        if not row["sequences"]:
            lines.append(f"| {tracker} | 0 | " + " | ".join(["-", "-", "no shared sequences"] * len(MEASURES)) + " |")
            continue
        cells = [f"{row[m]['mean']:.3f} | {row[m]['difference']:+.3f} [{row[m]['low']:+.3f}, {row[m]['high']:+.3f}]"
                 f" | {row[m]['verdict']}" for m in MEASURES]
        lines.append(f"| {tracker} | {row['sequences']} | " + " | ".join(cells) + " |")
    base = report["baseline_means"]
    lines.append(f"| {report['baseline']} (baseline) | {len(report['sequences'])} | " +
                 " | ".join(f"{base[m]:.3f} | - | -" for m in MEASURES) + " |")
    return "\n".join(lines)


def add_subcommand(subparsers) -> None:
    c = subparsers.add_parser(
        "compare", help="paired bootstrap over sequences: each tracker's AUC and P@20 against a baseline's",
        description="Reads result folders written by `siamtrack eval`, pools their sequences and prints, for every "
                    "tracker present in all of them, the difference to --baseline in mean success AUC and mean P@20 "
                    "with a paired per-sequence bootstrap 95%% interval, and whether that interval lies above zero.")
    c.add_argument("result_dirs", nargs="+", metavar="RESULT_DIR", help="an eval --out folder (several are pooled)")
    c.add_argument("--baseline", required=True, metavar="NAME",
                   help="the tracker the others are measured against (a folder name in RESULT_DIR: siamtrack, nano, "
                        "an eval --label ...)")
    c.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    c.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    c.add_argument("--json", metavar="FILE", help="also write the figures to FILE as JSON")
    c.set_defaults(func=cmd_compare)


def cmd_compare(args) -> int:
    if args.resamples < 100:
        raise UserError(f"--resamples {args.resamples}: give at least 100 (the default, 10000, is what intervals need)")
    if args.json:
        check_output_path(args.json, "--json")
    folders: dict[str, dict] = {}
    for arg in args.result_dirs:
        if str(Path(arg)) in folders:
            raise UserError(f"{arg} is given twice: each result folder once")
        folders[str(Path(arg))] = read_result_folder(Path(arg))
    trackers = _compared_trackers(folders, args.baseline)
    pooled = pool(folders)
    base = pooled[args.baseline]
    report = {"baseline": args.baseline, "folders": list(folders), "resamples": args.resamples, "seed": args.seed,
              "confidence": CONFIDENCE, "sequences": list(base),
              "baseline_means": {m: float(np.mean([f[m] for f in base.values()])) for m in MEASURES},
              "trackers": compare(pooled, args.baseline, trackers, args.resamples, args.seed),
              "not_compared": sorted(set(pooled) - set(trackers) - {args.baseline})}
    text = format_table(report)
    runner.write_json(args.json, report, text)
    print(text)
    return 0


def _compared_trackers(folders: dict[str, dict], baseline: str) -> list[str]:
    """The trackers with results in every folder, baseline excluded; the baseline must be in every folder."""
    anywhere = set().union(*folders.values())
    everywhere = set.intersection(*(set(results) for results in folders.values()))
    if baseline not in anywhere:
        raise UserError(f"--baseline {baseline}: no such tracker in the result folders; they hold "
                        f"{', '.join(sorted(anywhere))}")
    lacking = [f for f, results in folders.items() if baseline not in results]
    if lacking:
        raise UserError(f"--baseline {baseline}: no results in {', '.join(lacking)}; every folder needs the "
                        "baseline's results")
    partial = sorted(anywhere - everywhere)
    if partial:
        print(f"note: not compared (not in every folder): {', '.join(partial)}", file=sys.stderr)
    others = sorted(everywhere - {baseline}, key=lambda n: (n != "siamtrack", n))
    if not others:
        raise UserError(f"nothing to compare: the folders hold no other tracker's results than {baseline}'s")
    return others
