"""One-pass runner, result files, rescoring, summary outputs and the eval/bench commands."""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tracker.errors import UserError
from tracker.evaluation import cli, runner
from tracker.evaluation.datasets import load_dataset
from tracker.result import TrackResult


def _clip(n, W=120, H=96, box=(30, 30, 20, 16), step=2, seed=1):
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 255, (box[3], box[2], 3), dtype=np.uint8)
    for i in range(n):
        f = rng.integers(90, 110, (H, W, 3), dtype=np.uint8)
        x = box[0] + step * i
        f[box[1]:box[1] + box[3], x:x + box[2]] = patch
        yield f, (x, box[1], box[2], box[3])


@pytest.fixture
def got_dir(tmp_path):
    root = tmp_path / "data"
    for k, n in (("a", 12), ("b", 9)):
        (root / k).mkdir(parents=True)
        gts = []
        for i, (f, b) in enumerate(_clip(n, seed=len(k) + n), 1):
            cv2.imwrite(str(root / k / f"{i:08d}.png"), f)
            gts.append(",".join(map(str, b)))
        (root / k / "groundtruth.txt").write_text("\n".join(gts) + "\n")
    (root / "list.txt").write_text("a\nb\n")
    return root


class Oracle:
    """Replays the ground truth (shifted by a fixed offset)."""
    def __init__(self, seqs, dx=0.0):
        self.gt = {len(s): s.gt for s in seqs}
        self.dx = dx

    def init(self, frame, box):
        self.i, self.cur = 0, None
        self.cur = next(g for g in self.gt.values() if tuple(g[0]) == tuple(box))

    def update(self, frame):
        self.i += 1
        x, y, w, h = self.cur[self.i]
        return TrackResult((x + self.dx, y, w, h), 1.0, False)


class Crashing:
    def init(self, frame, box):
        pass

    def update(self, frame):
        raise RuntimeError("boom")


def test_run_score_and_rescore(got_dir, tmp_path):
    _, seqs, _ = load_dataset(got_dir)
    out = tmp_path / "out"
    failures = runner.run(seqs, {"oracle": Oracle(seqs), "shifted": Oracle(seqs, dx=5.0), "crash": Crashing()},
                          out, progress=False)
    assert set(failures) == {"crash/a", "crash/b"} and "boom" in failures["crash/a"]
    assert (out / "oracle" / "a.txt").is_file() and (out / "oracle" / "times" / "a_time.txt").is_file()
    assert np.loadtxt(out / "oracle" / "a.txt", delimiter=",").shape == (12, 4)
    s = runner.score(out, seqs, ["oracle", "shifted"])
    o = s["oracle"]["overall"]
    assert o["auc"] == pytest.approx(20 / 21) and o["precision"] == 1.0 and o["ao"] == pytest.approx(1.0)
    # shifted by 5 px on a 20 px wide box: IoU 15/25 = 0.6 after the first frame
    assert s["shifted"]["sequences"]["b"]["sr50"] == 1.0 and s["shifted"]["sequences"]["b"]["sr75"] == 0.0
    assert s["oracle"]["overall"]["fps_tracker"] > 0 and s["oracle"]["overall"]["fps_end_to_end"] > 0
    assert runner.score(out, seqs) == s  # rescoring the folder (trackers found on disk) gives the same numbers
    summary = {"dataset": str(got_dir), "layout": "got10k", "sequences": ["a", "b"], "trackers": s}
    for p in runner.write_summary(out, summary):
        assert p.is_file() and p.stat().st_size > 0
    assert "| oracle | 2 | 0.952 | 1.000 |" in (out / "summary.md").read_text()


def _main(argv):
    p = argparse.ArgumentParser(prog="siamtrack")
    cli.add_subcommands(p.add_subparsers(dest="cmd", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def test_eval_command_and_rescore(got_dir, tmp_path, capsys):
    out = tmp_path / "res"
    assert _main(["eval", str(got_dir), "--no-siamtrack", "--compare", "mil", "--sequences", "a,b,zz",
                  "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert "| mil | 2 |" in printed.out and "zz skipped" in printed.err
    first = json.loads((out / "summary.json").read_text())
    assert set(first["trackers"]) == {"mil"} and first["skipped"] == {"zz": "no such sequence"}
    for f in ("summary.md", "success_plot.png", "precision_plot.png", "mil/a.txt", "mil/times/b_time.txt"):
        assert (out / f).is_file(), f
    out2 = tmp_path / "rescored"
    assert _main(["eval", str(got_dir), "--sequences", "a,b", "--rescore", str(out), "--out", str(out2)]) == 0
    again = json.loads((out2 / "summary.json").read_text())
    assert again["trackers"] == first["trackers"]


def test_eval_errors(got_dir, tmp_path):
    with pytest.raises(UserError, match="unknown peer"):
        _main(["eval", str(got_dir), "--compare", "kfc"])
    with pytest.raises(UserError, match="not found"):
        _main(["eval", str(tmp_path / "missing"), "--no-siamtrack", "--compare", "mil"])
    with pytest.raises(UserError, match="no usable sequences"):
        _main(["eval", str(got_dir), "--sequences", "zz", "--no-siamtrack", "--compare", "mil"])
    with pytest.raises(UserError, match="nothing to run"):
        _main(["eval", str(got_dir), "--no-siamtrack"])
    with pytest.raises(UserError, match="no result files"):
        _main(["eval", str(got_dir), "--rescore", str(tmp_path)])


@pytest.fixture
def avi(tmp_path):
    path = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (120, 96))
    if not vw.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG avi")
    for f, _ in _clip(12):
        vw.write(f)
    vw.release()
    return path


def test_bench_times_siamtrack_with_the_model_options(avi, capsys):
    """bench shares eval's tracker options but has no --label: it must not need one (it crashed once)."""
    assert _main(["bench", str(avi), "--box", "30,30,20,16", "--frames", "6", "--no-progress",
                  "--set", "verify=1"]) == 0
    out = capsys.readouterr().out
    assert "siamtrack" in out and "6 frames" in out


def test_bench_command(avi, capsys):
    with pytest.raises(UserError, match="pass --box"):
        _main(["bench", str(avi), "--no-siamtrack", "--compare", "mil"])
    with pytest.raises(UserError, match="four numbers"):
        _main(["bench", str(avi), "--box", "1,2,3", "--no-siamtrack", "--compare", "mil"])
    with pytest.raises(UserError, match="outside"):
        _main(["bench", str(avi), "--box", "500,2,3,9", "--no-siamtrack", "--compare", "mil"])
    avi.with_name("clip_groundtruth.txt").write_text("30,30,20,16\n")  # default box from the GT file
    out_json = avi.with_name("bench.json")
    assert _main(["bench", str(avi), "--no-siamtrack", "--compare", "mil,kcf", "--frames", "8",
                  "--no-progress", "--json", str(out_json)]) == 0
    printed = capsys.readouterr()
    text = printed.out
    assert "mil" in text and "8 frames" in text
    # KCF is in opencv-contrib-python only (siamtrack installs opencv-python): without it, kcf is skipped with
    # the swap to make, and mil still runs.
    from tracker.evaluation import peers

    why_not_kcf = peers.availability()["kcf"]
    if why_not_kcf:
        assert f"warning: peer kcf skipped: {why_not_kcf}" in printed.err and "kcf" not in text
    else:
        assert "kcf" in text
    res = json.loads(out_json.read_text())
    assert res["trackers"]["mil"]["update_ms"] > 0 and res["frames"] == 8


def test_bench_without_contrib_skips_csrt_with_the_swap_to_make(avi, capsys, monkeypatch):
    for module in (cv2, getattr(cv2, "legacy", None)):
        if module is not None and hasattr(module, "TrackerCSRT_create"):
            monkeypatch.delattr(module, "TrackerCSRT_create")
    assert _main(["bench", str(avi), "--box", "30,30,20,16", "--no-siamtrack", "--compare", "csrt,mil", "--frames",
                  "4", "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert ("warning: peer csrt skipped: csrt needs opencv-contrib-python: pip uninstall -y opencv-python && "
            "pip install opencv-contrib-python\n") in printed.err
    assert "mil" in printed.out and "csrt" not in printed.out


def test_bench_reads_stage_times(avi):
    from tracker.evaluation import bench

    class Staged(Oracle):
        def init(self, frame, box):
            self.box = box

        def update(self, frame):
            self.stage_times = {"crop": 0.001, "backbone": 0.004, "correlation": 0.0005, "postprocess": 0.0001}
            return TrackResult(self.box, 1.0, False)

    s = bench.summarize(bench.run_bench(avi, (30, 30, 20, 16), {"siamtrack": Staged([])}, progress=False))
    r = s["trackers"]["siamtrack"]
    assert r["stages_ms"]["backbone"] == pytest.approx(4.0) and set(r["stages_ms"]) == set(bench.STAGES)
    assert "backbone" in bench.format_summary(s)


def test_calibrate_lost_on_sequences_of_different_sizes(tmp_path, capfd):
    """The absent frames come from another sequence, resized to the tracked one's size (a tracker takes one frame
    size); nano's score is measured the same way when its models are there."""
    import cv2

    from conftest import synthetic_video, write_video

    from tracker.cli import main
    from tracker.evaluation import peers

    frames, gt = synthetic_video(n_frames=20)
    for name, scale in (("Big", 1.0), ("Small", 0.75)):
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        write_video(folder / "video.avi", [cv2.resize(f, None, fx=scale, fy=scale) for f in frames])
        np.savetxt(folder / "groundtruth.txt", gt * scale, fmt="%.2f", delimiter=",")
    compare = [] if peers.availability()["nano"] else ["--compare", "nano"]
    assert main(["calibrate-lost", str(tmp_path / "data"), "--absent-frames", "5", "--no-progress", *compare]) == 0
    out = capfd.readouterr().out
    assert "suggested lost_threshold" in out
    assert ("nano: the best threshold" in out) == bool(compare)
    assert main(["calibrate-lost", str(tmp_path / "data"), "--compare", "csrt"]) == 2
    assert "gives no score" in capfd.readouterr().err


def test_calibrate_lost_names_a_frame_it_cannot_read(tmp_path, capfd):
    from test_cli import assert_one_line_error

    from conftest import synthetic_video

    from tracker.cli import main

    frames, gt = synthetic_video(n_frames=8)
    for name, brightness in (("a", 0), ("b", 40)):  # other footage: a sequence's absent frames come from the other
        folder = tmp_path / "data" / name
        folder.mkdir(parents=True)
        for i, frame in enumerate(frames, 1):
            cv2.imwrite(str(folder / f"{i:08d}.jpg"), cv2.add(frame, brightness))
        np.savetxt(folder / "groundtruth.txt", gt, fmt="%.2f", delimiter=",")
    (tmp_path / "data" / "a" / "00000004.jpg").write_bytes(b"not a jpeg")
    assert main(["calibrate-lost", str(tmp_path / "data"), "--absent-frames", "3", "--no-progress"]) == 2
    assert_one_line_error(capfd.readouterr().err, "a: cannot decode 00000004.jpg")
