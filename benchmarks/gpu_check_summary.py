"""The last step of benchmarks/gpu_check.sh: read what its steps wrote into OUT and write OUT/gpu_check.json and
OUT/gpu_check.md; exit 1 when a check failed (the GPU boxes differ from the CPU run's, the GPU was not used).

    python benchmarks/gpu_check_summary.py OUT DEVICE
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

MIN_IOU = 0.99  # the GPU run's boxes against the CPU run's, every frame (TF32 is off in the torch engine)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / np.maximum(a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter, 1e-9)


def boxes_of(path: Path) -> np.ndarray:
    """x,y,w,h per frame from an eval result file (x,y,w,h) or a batch CSV (a header, then frame,x,y,w,h,...)."""
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".csv":
        header = rows[0]
        cols = [header.index(k) for k in ("x", "y", "w", "h")]
        rows = [[r[c] for c in cols] for r in rows[1:]]
    return np.array([[float(v) if v else np.nan for v in r[:4]] for r in rows], float)


def min_iou(reference: Path, other: Path, pattern: str) -> dict:
    """Per-frame IoU of every file of `other` against the same file in `reference` -> min and frames compared."""
    values = []
    for ref in sorted(reference.glob(pattern)):  # the box files only, not eval's scores/ and times/
        mine = other / ref.name
        a, b = boxes_of(ref), boxes_of(mine)
        values.append(np.nan_to_num(iou(a, b[:len(a)]) if len(a) == len(b) else np.zeros(1), nan=1.0))
    joined = np.concatenate(values) if values else np.zeros(0)
    return {"files": len(values), "frames": int(joined.size),
            "min_iou": float(joined.min()) if joined.size else None}


def tracker_dir(eval_out: Path) -> Path:
    """The per-frame result folder of the one tracker an eval run wrote (beside its summary files)."""
    return next(p for p in sorted(eval_out.iterdir()) if p.is_dir())


def bench_rows(path: Path) -> list[dict]:
    rows = json.loads(path.read_text())["rows"]
    return [{k: r[k] for k in ("targets", "mode", "ms_per_frame", "ms_per_target")} for r in rows]


def main(out: Path, device: str) -> int:
    report = {"device": device, "providers": json.loads((out / "providers.json").read_text())}
    report["val_vs_cpu"] = {engine: min_iou(tracker_dir(out / f"val_cpu_{engine}"), tracker_dir(out / f"val_{engine}"),
                                            "*.txt") for engine in ("onnx", "torch")}
    report["bench"] = {engine: bench_rows(out / f"bench_{engine}.json") for engine in ("onnx", "torch")}
    report["batch"] = {run: (out / f"batch_{run}.txt").read_text().strip()
                       for run in ("cpu", "cuda") if (out / f"batch_{run}.txt").is_file()}
    if device == "cuda":
        report["batch_vs_cpu"] = min_iou(out / "batch_cpu", out / "batch_cuda", "*.csv")
    problems = list(report["providers"]["problems"])
    for name, figures in {**report["val_vs_cpu"], "batch": report.get("batch_vs_cpu")}.items():
        if figures and (not figures["files"] or figures["min_iou"] < MIN_IOU):
            problems.append(f"{name} on {device}: min IoU {figures['min_iou']} against the CPU run over "
                            f"{figures['files']} files (need >= {MIN_IOU})")
    report["problems"] = problems
    report["gpu_checks"] = "ran" if device == "cuda" else "skipped (dry run on the CPU: the shape of the check only)"
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    (out / "gpu_check.md").write_text(table(report))
    print(table(report))
    return 1 if problems else 0


def table(report: dict) -> str:
    p = report["providers"]
    lines = [f"# GPU check ({report['device']}; GPU checks {report['gpu_checks']})", "",
             f"onnxruntime {p['onnxruntime']}, onnxruntime-gpu {p['onnxruntime_gpu']}, providers {p['providers']}, "
             f"on_gpu {p['on_gpu']}; torch {p['torch']}, CUDA {p['torch_cuda']}, GPU {p['gpu']}", "",
             "| engine | val min IoU vs CPU (frames) | 1 target ms/frame | 16 targets ms/frame (batched) |",
             "|---|---|---|---|"]
    for engine in ("onnx", "torch"):
        rows = {(r["targets"], r["mode"]): r["ms_per_frame"] for r in report["bench"][engine]}
        v = report["val_vs_cpu"][engine]
        lines.append(f"| {engine}-{report['device']} | {v['min_iou']:.6f} ({v['frames']}) | "
                     f"{rows.get((1, 'batched'), float('nan')):.2f} | {rows.get((16, 'batched'), float('nan')):.2f} |")
    lines += [""] + [f"batch {run}: {text}" for run, text in report["batch"].items()]
    if "batch_vs_cpu" in report:
        lines.append(f"batch on cuda vs cpu: min IoU {report['batch_vs_cpu']['min_iou']}")
    lines += ["", "problems: " + ("; ".join(report["problems"]) or "none")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))
