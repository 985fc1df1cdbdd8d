"""benchmarks/gpu_check.sh cannot run here (no GPU): its shell is syntax-checked, and its summary step, which decides
pass or fail, is run on folders laid out as the script's steps write them."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT, SUMMARY = ROOT / "benchmarks" / "gpu_check.sh", ROOT / "benchmarks" / "gpu_check_summary.py"
BOXES = ["10,10,20,20", "12,10,20,20", "14,11,20,20"]


def lay_out(out: Path, device: str, gpu_boxes: list[str], providers: list[str]) -> None:
    problems = [] if device == "cpu" or providers[0] == "CUDAExecutionProvider" else ["onnxruntime fell back"]
    (out / "providers.json").write_text(json.dumps({
        "device": device, "onnxruntime": None, "onnxruntime_gpu": "1.22.0", "providers": providers,
        "on_gpu": providers[0] == "CUDAExecutionProvider", "torch": "2.14", "torch_cuda": device == "cuda",
        "gpu": None, "problems": problems}))
    for engine in ("onnx", "torch"):
        for folder, boxes in ((f"val_cpu_{engine}", BOXES), (f"val_{engine}", gpu_boxes)):
            (out / folder / "siamtrack").mkdir(parents=True)
            (out / folder / "siamtrack" / "Dog.txt").write_text("\n".join(boxes) + "\n")
        rows = [{"targets": n, "mode": m, "ms_per_frame": 3.0 * n, "ms_per_target": 3.0, "fps": 1.0}
                for n in (1, 16) for m in ("batched", "separate")]
        (out / f"bench_{engine}.json").write_text(json.dumps({"rows": rows}))
    (out / "batch_cpu.txt").write_text("21 tracked ... = 80.0 frames/s across all videos")


def summarise(out: Path, device: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SUMMARY), str(out), device], capture_output=True, text=True,
                          timeout=60)


def test_script_parses():
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    assert subprocess.run([bash, "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_summary_passes_equal_boxes_and_writes_json_and_table(tmp_path):
    lay_out(tmp_path, "cpu", BOXES, ["CPUExecutionProvider"])
    done = summarise(tmp_path, "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["val_vs_cpu"]["onnx"] == {"files": 1, "frames": 3, "min_iou": 1.0}
    assert report["gpu_checks"].startswith("skipped") and report["problems"] == []
    assert "| onnx-cpu | 1.000000 (3) | 3.00 | 48.00 |" in (tmp_path / "gpu_check.md").read_text()


def test_summary_fails_when_gpu_boxes_drift(tmp_path):
    lay_out(tmp_path, "cpu", [BOXES[0], BOXES[1], "30,11,20,20"], ["CPUExecutionProvider"])
    done = summarise(tmp_path, "cpu")
    assert done.returncode == 1
    assert "min IoU" in json.loads((tmp_path / "gpu_check.json").read_text())["problems"][0]


def test_summary_fails_on_a_cpu_fallback(tmp_path):
    lay_out(tmp_path, "cuda", BOXES, ["CPUExecutionProvider"])
    for name in ("batch_cpu", "batch_cuda"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dog.csv").write_text("frame,x,y,w,h,score,lost,state,target\n0,1,2,3,4,1,0,ok,0\n")
    done = summarise(tmp_path, "cuda")
    assert done.returncode == 1 and "fell back" in done.stdout
    assert json.loads((tmp_path / "gpu_check.json").read_text())["batch_vs_cpu"]["min_iou"] == 1.0
