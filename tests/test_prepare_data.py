"""`siamtrack prepare-data`: full-frame GOT-10k / OTB sequences -> the crop cache the trainer reads.

Tiny synthetic sequences (a white rectangle at a known box on dark texture) so the crop geometry can be checked
against the pixels, plus a format check on one real validation sequence when ../shared/data is present.
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.cli import main
from tracker.errors import UserError
from tracker.training.prepare import BOXES_HEADER, INDEX_HEADER, crop_geometry, prepare_data

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Source boxes (x, y, w, h) of the synthetic sequence, one per GT line, on a 200x150 frame. Integer bounds so the
# drawn rectangle covers exactly the box. Lines 3 (NaN), 5 (w <= 1), 6 (h <= 1) and 7 (outside) are unusable.
W, H = 200, 150
BOXES = [
    (40, 30, 30, 20),
    (45, 32, 31, 21),
    (60, 40, 120, 100),  # large: crop scale < 1
    (float("nan"),) * 4,
    (50, 50, 12, 9),  # small: crop scale > 1
    (52, 52, 1, 8),
    (52, 52, 8, 1),
    (210, 20, 20, 20),  # entirely right of the frame
    (-10, 100, 25, 30),  # partly outside: still usable
    (150, 120, 40, 25),  # partly outside bottom-right
]
UNUSABLE = {3, 5, 6, 7}


@pytest.fixture(autouse=True)
def _one_cv2_thread():
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(previous)


def _frame(rng: np.random.Generator, box) -> np.ndarray:
    coarse = rng.integers(0, 70, (H // 10, W // 10, 3), dtype=np.uint8)
    frame = cv2.resize(coarse, (W, H), interpolation=cv2.INTER_LINEAR)
    if all(math.isfinite(v) for v in box):
        x, y, w, h = (int(v) for v in box)
        frame[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = 255
    return frame


def make_got10k(root: Path, name: str = "seq_a", boxes=BOXES, seed: int = 0) -> Path:
    """A GOT-10k-layout dataset with one sequence; returns the dataset root."""
    rng = np.random.default_rng(seed)
    seq = root / name
    seq.mkdir(parents=True)
    for i, box in enumerate(boxes, 1):
        cv2.imwrite(str(seq / f"{i:08d}.png"), _frame(rng, box))
    (seq / "groundtruth.txt").write_text("".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in boxes))
    (root / "list.txt").write_text(name + "\n")
    return root


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def readme_crop_box(box):
    """The crop box by the formula of ../shared/data/README.md."""
    x, y, w, h = box
    p = (w + h) / 2
    scale = 127 / math.sqrt((w + p) * (h + p))
    return 223.5 - w * scale / 2, 223.5 - h * scale / 2, w * scale, h * scale


def test_synthetic_got10k(tmp_path):
    src = make_got10k(tmp_path / "mydata")
    dst = tmp_path / "cache"
    summary = prepare_data(src, dst, step=1, progress=False)
    folder = dst / "mydata__seq_a"
    assert summary.folders == ["mydata__seq_a"] and summary.skipped_rows == len(UNUSABLE)

    with open(folder / "boxes.csv", newline="") as f:
        assert next(csv.reader(f)) == BOXES_HEADER
    rows = read_rows(folder / "boxes.csv")
    kept = [i for i in range(len(BOXES)) if i not in UNUSABLE]
    assert [int(r["frame"]) for r in rows] == kept
    assert sorted(p.name for p in folder.glob("*.webp")) == [f"{i:06d}.webp" for i in kept]
    for row in rows:
        i = int(row["frame"])
        assert row["file"] == f"{i:06d}.webp"
        assert all(re.fullmatch(r"-?\d+\.\d\d", row[k]) for k in BOXES_HEADER[2:10])  # 2 decimals
        np.testing.assert_allclose([float(row[k]) for k in ("src_x", "src_y", "src_w", "src_h")], BOXES[i], atol=0.005)
        assert (int(row["frame_w"]), int(row["frame_h"])) == (W, H)
        crop_box = [float(row[k]) for k in ("x", "y", "w", "h")]
        np.testing.assert_allclose(crop_box, readme_crop_box(BOXES[i]), atol=0.006)

        crop = cv2.imread(str(folder / row["file"]), cv2.IMREAD_COLOR)
        assert crop.shape == (447, 447, 3)
        # The white rectangle in the pixels is where boxes.csv says (the visible part of it, within 1 px).
        ys, xs = np.nonzero(crop.min(axis=2) > 160)
        x, y, w, h = crop_box
        fx0, fy0 = max(BOXES[i][0], 0), max(BOXES[i][1], 0)  # clip the source box to the frame
        fx1, fy1 = min(BOXES[i][0] + BOXES[i][2], W), min(BOXES[i][1] + BOXES[i][3], H)
        scale = w / BOXES[i][2]
        vis = (x + (fx0 - BOXES[i][0]) * scale, y + (fy0 - BOXES[i][1]) * scale,
               x + (fx1 - BOXES[i][0]) * scale, y + (fy1 - BOXES[i][1]) * scale)
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], vis, atol=1.0)
        # Outside the frame is the per-channel mean colour of the whole frame (the corner, when it lies outside).
        (cx, cy), side, _ = crop_geometry(BOXES[i])
        if min(cx, cy) - side / 2 < -2:
            source = cv2.imread(str(src / "seq_a" / f"{i + 1:08d}.png"))
            np.testing.assert_allclose(crop[0, 0], source.reshape(-1, 3).mean(0), atol=3)

    index = read_rows(dst / "index.csv")
    with open(dst / "index.csv", newline="") as f:
        assert next(csv.reader(f)) == INDEX_HEADER
    assert [(r["folder"], r["kind"], r["n_crops"]) for r in index] == [("mydata__seq_a", "video", str(len(kept)))]
    assert index[0]["benchmark"] == "GOT-10k layout" and index[0]["source_path"].endswith("seq_a")


def test_step_and_the_trainer_reads_it(tmp_path):
    import torch

    from tracker.training.data import PairDataset, load_crop_cache
    from tracker.training.recipe import TrainConfig

    src = make_got10k(tmp_path / "mydata")
    make_got10k(tmp_path / "other", name="seq.b", seed=1)  # a second folder, for negative pairs
    dst = tmp_path / "cache"
    assert main(["prepare-data", str(src), str(dst), "--quiet"]) == 0  # default --step 2
    assert main(["prepare-data", str(tmp_path / "other"), str(dst), "--step", "3", "--quiet"]) == 0
    assert [int(r["frame"]) for r in read_rows(dst / "mydata__seq_a" / "boxes.csv")] == [0, 2, 4, 8]
    assert [int(r["frame"]) for r in read_rows(dst / "other__seq_b" / "boxes.csv")] == [0, 9]  # '.' -> '_'
    assert [r["folder"] for r in read_rows(dst / "index.csv")] == ["mydata__seq_a", "other__seq_b"]

    folders = load_crop_cache(dst)
    assert [f.path.name for f in folders] == ["mydata__seq_a", "other__seq_b"]
    assert not any(f.is_still for f in folders)
    recipe = TrainConfig(color_jitter=0.0, gray_prob=0.0, blur_prob=0.0, negative_prob=0.3)
    dataset = PairDataset(folders, recipe, recipe.model_config, length=12)
    for k in range(len(dataset)):
        z, x, box, positive = dataset[k]
        assert z.shape == (3, 127, 127) and x.shape == (3, 255, 255) and z.dtype == x.dtype == torch.uint8
        cx, cy = ((box[:2] + box[2:]) / 2).tolist()
        assert 0 <= cx < 255 and 0 <= cy < 255
        # Every source frame has the white target at its box: the centre pixel of the search crop is white.
        assert x[:, int(cy), int(cx)].min() > 200, (k, cx, cy)


def test_otb_layout_and_single_sequence_folder(tmp_path):
    rng = np.random.default_rng(2)
    seq = tmp_path / "otb" / "Walk"
    (seq / "img").mkdir(parents=True)
    boxes = BOXES[:3]
    for i, box in enumerate(boxes, 1):
        cv2.imwrite(str(seq / "img" / f"{i:04d}.png"), _frame(rng, box))
    # OTB ground truth is 1-based (x+1, y+1); two targets -> sequences Walk.1 and Walk.2
    for k in (1, 2):
        (seq / f"groundtruth_rect.{k}.txt").write_text("".join(f"{b[0] + 1},{b[1] + 1},{b[2]},{b[3]}\n" for b in boxes))
    summary = prepare_data(tmp_path / "otb", tmp_path / "cache", step=1, name="My OTB!", progress=False)
    assert summary.folders == ["My_OTB__Walk_1", "My_OTB__Walk_2"]
    rows = read_rows(tmp_path / "cache" / "My_OTB__Walk_1" / "boxes.csv")
    np.testing.assert_allclose([[float(r[k]) for k in ("src_x", "src_y", "src_w", "src_h")] for r in rows], boxes)
    index = read_rows(tmp_path / "cache" / "index.csv")
    assert {r["benchmark"] for r in index} == {"OTB layout"} and Path(index[0]["source_path"]).name == "Walk"

    make_got10k(tmp_path / "got" / "mine")  # one GOT-10k sequence folder given directly: prefix = its parent's name
    single = prepare_data(tmp_path / "got" / "mine" / "seq_a", tmp_path / "cache", progress=False)
    assert single.folders == ["mine__seq_a"]


def test_rerun_keeps_complete_folders_and_overwrite_redoes_them(tmp_path):
    src = make_got10k(tmp_path / "mydata")
    dst = tmp_path / "cache"
    prepare_data(src, dst, step=2, progress=False)
    again = prepare_data(src, dst, step=1, progress=False)
    assert again.kept == ["mydata__seq_a"] and again.folders == [] and again.crops == 0
    assert len(read_rows(dst / "mydata__seq_a" / "boxes.csv")) == 4  # still the --step 2 result
    redone = prepare_data(src, dst, step=3, overwrite=True, progress=False)
    assert redone.folders == ["mydata__seq_a"]
    assert sorted(p.name for p in (dst / "mydata__seq_a").glob("*.webp")) == ["000000.webp", "000009.webp"]
    assert read_rows(dst / "index.csv")[0]["n_crops"] == "2"


def test_real_val_sequence_format(tmp_path):
    val = DATA / "val"
    if not (val / "Dog" / "groundtruth.txt").is_file():
        pytest.skip(f"{val} not present")
    dst = tmp_path / "cache"
    assert main(["prepare-data", str(val), str(dst), "--sequences", "Dog", "--step", "20", "--quiet"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["index.csv", "val__Dog"]
    gt = np.loadtxt(val / "Dog" / "groundtruth.txt", delimiter=",")
    rows = read_rows(dst / "val__Dog" / "boxes.csv")
    assert [int(r["frame"]) for r in rows] == list(range(0, len(gt), 20))
    for row in rows:
        src_box = [float(row[k]) for k in ("src_x", "src_y", "src_w", "src_h")]
        np.testing.assert_allclose(src_box, gt[int(row["frame"])], atol=0.005)
        np.testing.assert_allclose([float(row[k]) for k in "xywh"], readme_crop_box(src_box), atol=0.006)
        assert (row["frame_w"], row["frame_h"]) == ("352", "240")
        assert cv2.imread(str(dst / "val__Dog" / row["file"])).shape == (447, 447, 3)
    (index,) = read_rows(dst / "index.csv")
    assert index["folder"] == "val__Dog" and index["n_crops"] == str(len(rows))
    assert index["source_repo"] and index["source_commit"] and index["license_note"]  # from meta.json


def test_bad_input_is_a_one_line_user_error(tmp_path, capsys):
    src = make_got10k(tmp_path / "mydata")
    with pytest.raises(UserError, match="SRC .*not found"):
        prepare_data(tmp_path / "missing", tmp_path / "out", progress=False)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("hello")
    with pytest.raises(UserError, match="unknown dataset layout"):
        prepare_data(tmp_path / "plain", tmp_path / "out", progress=False)
    with pytest.raises(UserError, match="not a crop cache"):
        prepare_data(src, tmp_path / "plain", progress=False)
    assert prepare_data(src, tmp_path / "plain", overwrite=True, progress=False).crops == 4
    assert (tmp_path / "plain" / "notes.txt").read_text() == "hello"  # --overwrite never deletes foreign files
    with pytest.raises(UserError, match="not a folder"):
        prepare_data(src, tmp_path / "plain" / "notes.txt", progress=False)
    with pytest.raises(UserError, match="not writable"):
        prepare_data(src, tmp_path / "plain" / "notes.txt" / "sub", progress=False)
    with pytest.raises(UserError, match="nope"):
        prepare_data(src, tmp_path / "out", sequences=["nope"], progress=False)
    with pytest.raises(UserError, match="--step"):
        prepare_data(src, tmp_path / "out", step=0, progress=False)
    with pytest.raises(UserError, match="reserved"):
        prepare_data(src, tmp_path / "out", name="stills", progress=False)

    capsys.readouterr()
    assert main(["prepare-data", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("siamtrack: error: SRC") and err.count("\n") == 1


def test_video_layout(tmp_path):
    """A video + groundtruth.txt folder (val-hard's layout) gives the same crops as the same frames as images."""
    from conftest import write_video

    rng = np.random.default_rng(3)
    frames = [_frame(rng, box) for box in BOXES]
    images = make_got10k(tmp_path / "pngs")  # same boxes, different random frames: only the rows are compared
    video_root = tmp_path / "clips"
    (video_root / "seq_a").mkdir(parents=True)
    write_video(video_root / "seq_a" / "video.avi", frames)
    (video_root / "seq_a" / "groundtruth.txt").write_text((images / "seq_a" / "groundtruth.txt").read_text())
    a = prepare_data(images, tmp_path / "cache_a", step=2, progress=False)
    b = prepare_data(video_root, tmp_path / "cache_b", step=2, progress=False)
    assert b.folders == ["clips__seq_a"] and b.crops == a.crops and b.skipped_rows == a.skipped_rows
    rows_a = read_rows(tmp_path / "cache_a" / "pngs__seq_a" / "boxes.csv")
    rows_b = read_rows(tmp_path / "cache_b" / "clips__seq_a" / "boxes.csv")
    fields = ("frame", "src_x", "w", "frame_w")
    assert [[r[k] for k in fields] for r in rows_a] == [[r[k] for k in fields] for r in rows_b]
    index = read_rows(tmp_path / "cache_b" / "index.csv")
    assert index[0]["benchmark"] == "video layout"
