"""OTB / GOT-10k layout parsing on tiny synthetic datasets (and the real val set when present)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.errors import UserError
from tracker.evaluation.datasets import detect_layout, load_dataset, parse_boxes

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _images(folder: Path, n: int, digits: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        cv2.imwrite(str(folder / f"{i:0{digits}d}.jpg"), np.full((24, 32, 3), i * 10 % 255, np.uint8))


def _otb_seq(root: Path, name: str, lines: list[str], n_images: int, gt_name="groundtruth_rect.txt"):
    _images(root / name / "img", n_images, 4)
    (root / name / gt_name).write_text("\n".join(lines) + "\n")


def test_parse_separators(tmp_path):
    for sep in (",", "\t", " ", ", ", "  "):
        f = tmp_path / "gt.txt"
        f.write_text(f"1{sep}2{sep}3{sep}4\n5{sep}6{sep}7.5{sep}8\n\n")
        np.testing.assert_array_equal(parse_boxes(f), [[1, 2, 3, 4], [5, 6, 7.5, 8]])
    f.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="expected 4"):
        parse_boxes(f)


def test_otb_layout(tmp_path):
    _otb_seq(tmp_path, "Comma", ["11,21,5,6", "12,22,5,6", "13,23,5,6"], 3)
    _otb_seq(tmp_path, "Tab", ["11\t21\t5\t6", "12\t22\t5\t6"], 2)
    _otb_seq(tmp_path, "Space", ["11 21 5 6", "NaN NaN NaN NaN", "13 23 5 6"], 3)
    _otb_seq(tmp_path, "Short", ["11,21,5,6", "12,22,5,6"], 5)             # fewer GT lines than images
    _otb_seq(tmp_path, "BadGT", ["11,21,5"], 3)                              # malformed: skipped
    _otb_seq(tmp_path, "Jogging", ["1,1,5,6"] * 2, 2, "groundtruth_rect.1.txt")
    (tmp_path / "Jogging" / "groundtruth_rect.2.txt").write_text("3,3,5,6\n4,4,5,6\n")
    (tmp_path / "NoImg").mkdir()
    (tmp_path / "NoImg" / "groundtruth_rect.txt").write_text("1,1,2,2\n")
    assert detect_layout(tmp_path) == "otb"
    layout, seqs, problems = load_dataset(tmp_path)
    by = {s.name: s for s in seqs}
    assert layout == "otb"
    assert set(by) == {"Comma", "Tab", "Space", "Short", "Jogging.1", "Jogging.2"}
    assert set(problems) == {"BadGT", "NoImg"} and "expected 4" in problems["BadGT"]
    np.testing.assert_array_equal(by["Comma"].gt[0], [10, 20, 5, 6])        # 1-based -> 0-based
    np.testing.assert_array_equal(by["Tab"].gt[1], [11, 21, 5, 6])
    assert by["Space"].valid.tolist() == [True, False, True]
    assert len(by["Short"]) == 2 and by["Short"].frames[-1].name == "0002.jpg" and "5 images" in by["Short"].note
    assert by["Comma"].image_size == (32, 24)


def test_subset_and_missing_names(tmp_path):
    _otb_seq(tmp_path, "A", ["1,1,5,5"] * 2, 2)
    _otb_seq(tmp_path, "B", ["1,1,5,5"] * 2, 2)
    _otb_seq(tmp_path, "Jogging", ["1,1,5,6"] * 2, 2, "groundtruth_rect.1.txt")
    (tmp_path / "Jogging" / "groundtruth_rect.2.txt").write_text("3,3,5,6\n4,4,5,6\n")
    _, seqs, problems = load_dataset(tmp_path, ["B", "Zed", "Jogging.2"])
    assert [s.name for s in seqs] == ["B", "Jogging.2"] and problems == {"Zed": "no such sequence"}
    _, seqs, _ = load_dataset(tmp_path, ["Jogging"])
    assert [s.name for s in seqs] == ["Jogging.1", "Jogging.2"]


def test_got10k_layout(tmp_path):
    for name, lines, n in (("s1", ["0,0,4,4", "1,1,4,4", "2,2,4,4"], 3), ("s2", ["5,5,3,3", "6,6,3,3"], 2),
                           ("bad", ["0,0,0,4", "1,1,4,4"], 2)):                # empty first box: skipped
        _images(tmp_path / name, n, 8)
        (tmp_path / name / "groundtruth.txt").write_text("\n".join(lines))
    (tmp_path / "s1" / "absence.label").write_text("0\n1\n0\n")
    (tmp_path / "list.txt").write_text("s1\ns2\nbad\ngone\n")
    layout, seqs, problems = load_dataset(tmp_path)
    assert layout == "got10k" and [s.name for s in seqs] == ["s1", "s2"]
    assert set(problems) == {"bad", "gone"} and "initialise" in problems["bad"]
    assert seqs[0].valid.tolist() == [True, False, True]
    np.testing.assert_array_equal(seqs[1].gt[0], [5, 5, 3, 3])               # 0-based, unchanged
    assert detect_layout(tmp_path / "s2") == "got10k-seq"
    _, one, _ = load_dataset(tmp_path / "s2")
    assert [s.name for s in one] == ["s2"]


def test_bad_roots(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_dataset(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError, match="unknown dataset layout"):
        load_dataset(tmp_path)


@pytest.mark.skipif(not (DATA / "val" / "list.txt").is_file(), reason=f"shared data not found at {DATA / 'val'}")
def test_real_val_set():
    layout, seqs, problems = load_dataset(DATA / "val")
    assert layout == "got10k" and not problems
    assert {s.name: len(s) for s in seqs} == {"Crossing": 120, "David": 471, "MotorRolling": 164, "Dog": 127,
                                               "Couple": 140, "Freeman1": 326}
    assert all(s.valid[0] for s in seqs)


def _video_seq(root: Path, name: str, n_frames: int, n_lines: int) -> list[np.ndarray]:
    """<root>/<name>/video.avi (MJPG: what every OpenCV build writes) + groundtruth.txt; returns the frames."""
    from conftest import write_video

    frames = [np.full((48, 64, 3), 20 + 10 * i, np.uint8) for i in range(n_frames)]
    (root / name).mkdir(parents=True)
    write_video(root / name / "video.avi", frames)
    (root / name / "groundtruth.txt").write_text("".join(f"{2 + i},3,10,12\n" for i in range(n_lines)))
    return frames


def test_video_layout(tmp_path):
    """val-hard's layout (and users' annotated clips): <name>/video.* + groundtruth.txt, 0-based, a line a frame."""
    _video_seq(tmp_path, "Walk", 6, 6)
    _video_seq(tmp_path, "Long", 8, 5)  # more frames than GT lines: the first 5 are tracked
    _video_seq(tmp_path, "Short", 3, 6)  # fewer frames than GT lines: skipped with the reason
    assert detect_layout(tmp_path) == "video"
    assert detect_layout(tmp_path / "Walk") == "video-seq"
    layout, seqs, problems = load_dataset(tmp_path)
    assert layout == "video" and [s.name for s in seqs] == ["Long", "Walk"]
    assert "6 GT lines but video.avi has 3 frames" in problems["Short"]
    walk = seqs[1]
    assert len(walk) == 6 and walk.image_size == (64, 48) and walk.folder == tmp_path / "Walk"
    np.testing.assert_array_equal(walk.gt[0], [2, 3, 10, 12])  # 0-based: not shifted
    levels = [int(image.mean()) for _, image in walk.images()]
    assert all(abs(a - b) < 4 for a, b in zip(levels, [20 + 10 * i for i in range(6)])), levels
    assert [i for i, _ in walk.images([4, 1])] == [1, 4]  # sparse, in order
    assert len(list(seqs[0].images())) == 5 and "tracking the first 5" in seqs[0].note


def test_video_that_ends_early_is_named(tmp_path):
    _video_seq(tmp_path, "Cut", 4, 4)
    (seq,) = load_dataset(tmp_path / "Cut")[1]
    seq.gt = np.vstack([seq.gt, seq.gt[-1:]])  # one GT line more than the video really holds
    seq.valid = np.append(seq.valid, True)
    with pytest.raises(ValueError, match="video.avi ended at frame 4 of the 5"):
        list(seq.images())


@pytest.mark.skipif(not (DATA / "val-hard" / "Biker" / "video.mp4").is_file(), reason="needs ../shared/data/val-hard")
def test_val_hard_loads_as_videos():
    layout, seqs, problems = load_dataset(DATA / "val-hard", ["Biker", "Skating2-2"])
    assert layout == "video" and not problems and [s.name for s in seqs] == ["Biker", "Skating2-2"]
    assert all(s.video is not None and len(s) == len(s.gt) for s in seqs)
    _, first = next(seqs[0].images())
    assert first.shape[1::-1] == seqs[0].image_size


def test_eval_on_a_video_folder(tmp_path, capfd):
    """`siamtrack eval` reads the video layout: a synthetic clip as video.avi + its exact ground truth."""
    from conftest import synthetic_video, write_video

    from tracker.cli import main

    frames, gt = synthetic_video(n_frames=25)
    (tmp_path / "data" / "Curve").mkdir(parents=True)
    write_video(tmp_path / "data" / "Curve" / "video.avi", frames)
    np.savetxt(tmp_path / "data" / "Curve" / "groundtruth.txt", gt, fmt="%.2f", delimiter=",")
    assert main(["eval", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    import json

    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["layout"] == "video" and summary["sequences"] == ["Curve"]
    assert summary["trackers"]["siamtrack"]["overall"]["auc"] > 0.5
