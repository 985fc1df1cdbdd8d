"""`siamtrack compare`: paired bootstrap over sequences from eval result folders, and eval's --label that lets two
settings share one folder."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.cli import main
from tracker.evaluation import runner
from tracker.evaluation.compare import paired_bootstrap
from tracker.evaluation.datasets import load_dataset

GT_BOX = (20.0, 20.0, 20.0, 20.0)
FRAMES = 4


def make_dataset(root: Path, names: list[str]) -> Path:
    """GOT-10k layout: each sequence FRAMES grey 80x80 frames, the target box still."""
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(1, FRAMES + 1):
            cv2.imwrite(str(root / name / f"{i:08d}.png"), np.full((80, 80, 3), 100, np.uint8))
        (root / name / "groundtruth.txt").write_text("\n".join([",".join(map(str, GT_BOX))] * FRAMES) + "\n")
    return root


def write_results(out: Path, dataset: Path, shifts: dict[str, list[float]]) -> Path:
    """An eval result folder by hand: per tracker, its box on every frame after the first is the GT box moved
    right by that sequence's shift (a bigger shift: lower IoU; over 20 px: outside P@20)."""
    _, seqs, _ = load_dataset(dataset)
    for tracker, per_seq in shifts.items():
        for seq, shift in zip(seqs, per_seq):
            boxes = np.tile(GT_BOX, (FRAMES, 1))
            boxes[1:, 0] += shift
            runner.write_result(out, tracker, seq.name, boxes, np.full(FRAMES, 0.01), np.full(FRAMES, 0.001))
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"dataset": str(dataset), "dataset_dir": str(dataset.resolve()),
                                                  "sequences": [s.name for s in seqs]}))
    return out


NAMES = [f"s{i}" for i in range(8)]


@pytest.fixture
def folder(tmp_path):
    dataset = make_dataset(tmp_path / "data", NAMES)
    return write_results(tmp_path / "res", dataset, {
        "base": [6.0] * 8,                       # IoU 14/26 after the first frame; centre 6 px off
        "better": [0.0] * 8,                     # exact: AUC higher on every sequence, P@20 the same
        "mixed": [0.0] * 4 + [12.0] * 4,         # better on four sequences, worse (IoU 8/32) on four
        "far": [30.0] * 8})                      # outside 20 px: P@20 lower on every sequence


def test_paired_bootstrap_known_cases():
    rng = np.random.default_rng(0)
    mean, interval = paired_bootstrap(np.full((10, 1), 0.02), 2000, rng)
    assert mean[0] == pytest.approx(0.02) and interval[:, 0] == pytest.approx([0.02, 0.02])
    mean, interval = paired_bootstrap(np.array([0.1, -0.1] * 10), 2000, rng)
    assert mean[0] == pytest.approx(0.0) and interval[0, 0] < 0 < interval[1, 0]
    # Reproducible from the seed; a different seed draws other resamples.
    d = np.random.default_rng(5).normal(0.01, 0.05, (27, 2))
    first = paired_bootstrap(d, 5000, np.random.default_rng(1))[1]
    assert np.array_equal(first, paired_bootstrap(d, 5000, np.random.default_rng(1))[1])
    assert not np.array_equal(first, paired_bootstrap(d, 5000, np.random.default_rng(2))[1])


def test_compare_above_zero_and_straddling(folder, tmp_path, capsys):
    report_path = tmp_path / "cmp.json"
    assert main(["compare", str(folder), "--baseline", "base", "--json", str(report_path), "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    rows = report["trackers"]
    assert list(rows) == ["better", "far", "mixed"] and report["sequences"] == NAMES
    # The same per-sequence figures eval computes: the differences are those of eval's mean AUC / P@20.
    _, seqs, _ = load_dataset(tmp_path / "data")
    scored = runner.score(folder, seqs)
    for name in rows:
        for m in ("auc", "precision"):
            expected = scored[name]["overall"][m] - scored["base"]["overall"][m]
            assert rows[name][m]["difference"] == pytest.approx(expected)
    assert rows["better"]["auc"]["verdict"] == "above zero" and rows["better"]["auc"]["low"] > 0
    assert rows["better"]["precision"]["difference"] == 0 and rows["better"]["precision"]["verdict"] == "not above zero"
    assert rows["mixed"]["auc"]["low"] < 0 < rows["mixed"]["auc"]["high"]
    assert rows["mixed"]["auc"]["verdict"] == "not above zero"
    assert rows["far"]["precision"]["high"] < 0 and rows["far"]["precision"]["verdict"] == "not above zero"
    assert "| better | 8 |" in printed and "above zero" in printed and "10000 resamples, seed 3" in printed


def test_compare_pools_folders_and_prefixes_clashing_sequences(tmp_path, capsys):
    dataset = make_dataset(tmp_path / "data", ["x", "y", "z"])
    one = write_results(tmp_path / "one", dataset, {"base": [6.0] * 3, "better": [0.0] * 3, "only-here": [0.0] * 3})
    two = write_results(tmp_path / "two", dataset, {"base": [6.0] * 3, "better": [0.0] * 3})
    report_path = tmp_path / "cmp.json"
    assert main(["compare", str(one), str(two), "--baseline", "base", "--json", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert sorted(report["sequences"]) == sorted(f"{f}/{s}" for f in (str(one), str(two)) for s in "xyz")
    assert report["trackers"]["better"]["sequences"] == 6 and report["not_compared"] == ["only-here"]
    assert "not compared (not in every folder): only-here" in capsys.readouterr().err


def test_compare_errors(folder, tmp_path, capsys):
    assert main(["compare", str(folder), "--baseline", "nobody"]) == 2
    assert "--baseline nobody: no such tracker in the result folders; they hold base, better, far, mixed" in \
        capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["compare", str(empty), "--baseline", "base"]) == 2
    assert "has no readable summary.json" in capsys.readouterr().err
    (empty / "summary.json").write_text(json.dumps({"dataset": str(tmp_path / "data"), "sequences": NAMES}))
    assert main(["compare", str(empty), "--baseline", "base"]) == 2
    assert "holds no result files <tracker>/<sequence>.txt" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing"), "--baseline", "base"]) == 2
    assert "result folder not found" in capsys.readouterr().err
    other = write_results(tmp_path / "other", tmp_path / "data", {"better": [0.0] * 8})
    assert main(["compare", str(folder), str(other), "--baseline", "base"]) == 2
    assert f"--baseline base: no results in {other}" in capsys.readouterr().err
    assert main(["compare", str(folder), "--baseline", "base", "--resamples", "5"]) == 2
    assert "--resamples 5: give at least 100" in capsys.readouterr().err
    moved = write_results(tmp_path / "moved", tmp_path / "data", {"base": [0.0] * 8, "better": [0.0] * 8})
    (moved / "summary.json").write_text(json.dumps({"dataset_dir": str(tmp_path / "gone"), "sequences": NAMES}))
    assert main(["compare", str(moved), "--baseline", "base"]) == 2
    assert f"its dataset {tmp_path / 'gone'} (from summary.json) is not there" in capsys.readouterr().err


def test_eval_label_keeps_other_results_and_compare_reads_the_folder(tmp_path, capsys):
    """Two eval runs into one folder: the second, under --label, keeps the first's results and reports both;
    compare then reads the real folder."""
    from conftest import synthetic_video

    frames, gt = synthetic_video(n_frames=12)
    for name in ("one", "two"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i, f in enumerate(frames, 1):
            cv2.imwrite(str(tmp_path / "data" / name / f"{i:08d}.jpg"), f)
        np.savetxt(tmp_path / "data" / name / "groundtruth.txt", gt, fmt="%.2f", delimiter=",")
    out = tmp_path / "out"
    assert main(["eval", str(tmp_path / "data"), "--out", str(out), "--no-progress"]) == 0
    first = (out / "siamtrack" / "one.txt").read_bytes()
    assert main(["eval", str(tmp_path / "data"), "--out", str(out), "--no-progress", "--label", "tuned",
                 "--set", "window_influence=0.3"]) == 0
    assert "also holds results of siamtrack from an earlier run" in capsys.readouterr().err
    assert (out / "siamtrack" / "one.txt").read_bytes() == first and (out / "tuned" / "one.txt").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["trackers"]) == ["tuned", "siamtrack"] and summary["earlier_results"] == ["siamtrack"]
    assert "were already in this folder from an earlier run" in (out / "summary.md").read_text()
    assert main(["compare", str(out), "--baseline", "siamtrack", "--resamples", "200"]) == 0
    assert "| tuned | 2 |" in capsys.readouterr().out


def test_eval_label_errors(tmp_path, capsys):
    data = make_dataset(tmp_path / "data", ["a"])
    for argv, message in (
            (["--label", "a/b"], "--label 'a/b': give a plain name"),
            (["--label", "mil", "--compare", "mil"], "--label mil: that is the name of a --compare peer"),
            (["--label", "x", "--no-siamtrack", "--compare", "mil"], "--label names the results of the siamtrack run")):
        assert main(["eval", str(data), "--out", str(tmp_path / "out"), "--no-progress"] + argv) == 2
        assert message in capsys.readouterr().err
