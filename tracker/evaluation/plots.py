"""Success and precision plots (one curve per tracker, score in the legend, as in the OTB papers)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .metrics import CE_THRESHOLDS, IOU_THRESHOLDS  # noqa: E402

_STYLES = ["-", "--", "-.", ":"]


def _plot(trackers: dict, key: str, score_key: str, x, xlabel, ylabel, title, path: Path) -> None:
    items = [(n, t["overall"]) for n, t in trackers.items() if t.get("overall")]
    items.sort(key=lambda it: -(it[1].get(score_key) or 0.0))
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for i, (name, o) in enumerate(items):
        ax.plot(x, o[key], _STYLES[(i // 10) % len(_STYLES)], lw=2 if name == "siamtrack" else 1.4,
                label=f"{name} [{o[score_key]:.3f}]")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(float(x[0]), float(x[-1])), ylim=(0, 1))
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left" if key == "success_curve" else "lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(summary: dict, out: Path) -> list[Path]:
    """Write success_plot.png and precision_plot.png into ``out``; returns the paths."""
    out = Path(out)
    trk = summary["trackers"]
    n = len(summary.get("sequences", []))
    paths = [out / "success_plot.png", out / "precision_plot.png"]
    _plot(trk, "success_curve", "auc", IOU_THRESHOLDS, "Overlap threshold", "Success rate",
          f"Success plots of OPE ({n} sequences)", paths[0])
    _plot(trk, "precision_curve", "precision", CE_THRESHOLDS, "Location error threshold (px)",
          "Precision", f"Precision plots of OPE ({n} sequences)", paths[1])
    return paths


def plot_reliability(summary: dict, out: Path) -> list[Path]:
    """Write reliability.png into ``out`` (every tracker with a score): the observed frequency of IoU >= 0.5 against
    the mean score in each score bin, the diagonal a calibrated score would follow, and below it the frames per bin.
    Returns [the path], or [] when no tracker has scores."""
    rows = [(n, t["overall"]["score_quality"]) for n, t in summary["trackers"].items()
            if (t.get("overall") or {}).get("score_quality", {}).get("frames")]
    if not rows:
        return []
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.4), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    top.plot([0, 1], [0, 1], color="0.5", lw=1, ls=":", label="calibrated")
    width = 1.0 / len(rows[0][1]["bins"]) / (len(rows) + 1)
    for i, (name, q) in enumerate(rows):
        filled = [b for b in q["bins"] if b["frames"]]
        ece = "-" if q["ece"] is None else f"{q['ece']:.3f}"
        top.plot([b["mean_score"] for b in filled], [b["observed"] for b in filled], "o-",
                 lw=2 if name == "siamtrack" else 1.4, label=f"{name} [ECE {ece}]")
        bottom.bar([b["lower"] + (i + 0.5) * width for b in q["bins"]], [b["frames"] for b in q["bins"]],
                   width=width, align="edge", label=name)
    top.set(ylabel="observed frequency of IoU >= 0.5", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
            title=f"Reliability of the score ({len(summary.get('sequences', []))} sequences)")
    top.grid(True, alpha=0.4)
    top.legend(loc="upper left", fontsize=8)
    bottom.set(xlabel="score", ylabel="frames", yscale="log")
    bottom.grid(True, alpha=0.4)
    fig.tight_layout()
    path = Path(out) / "reliability.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return [path]


def plot_targets(result: dict, path: Path) -> Path:
    """`bench --targets`: ms per frame against the number of targets, one line per tracker and way of running."""
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    lines: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in result["rows"]:
        lines.setdefault((row["tracker"], row["mode"]), []).append((row["targets"], row["ms_per_frame"]))
    for i, ((tracker, mode), points) in enumerate(lines.items()):
        counts, ms = zip(*sorted(points))
        ax.plot(counts, ms, "o" + ("-" if mode == "batched" else "--"), lw=2 if mode == "batched" else 1.4,
                label=f"{tracker}, {mode}")
    counts = sorted({row["targets"] for row in result["rows"]})
    ax.set(xscale="log", yscale="log", xlabel="targets", ylabel="ms per frame (all targets)",
           title=f"{Path(result['source']).name}: several targets, {result['frames']} frames")
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.grid(True, which="both", alpha=0.4)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
