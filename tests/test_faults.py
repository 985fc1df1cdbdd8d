"""Faults and bad input: what is on disk after signals, full disks, unwritable paths, truncated or changing video,
extreme boxes, damaged weights and bad overrides. Each test names the item of issue 12 it covers.

The CLI runs in a subprocess (the installed `siamtrack` entry point), so the exit status and stderr are the real
process's; only the test that must patch the model loader calls `main()` in-process."""
from __future__ import annotations

import hashlib
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import pytest

from conftest import read_frames, synthetic_video, write_video
from test_cli import assert_one_line_error, console_script, read_csv
from tracker import SiamTracker, UserError
from tracker.cli import main
from tracker.result import check_box

ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


class Run(NamedTuple):
    status: int
    out: str
    err: str


def cli(argv) -> Run:
    """`siamtrack ARGV` in a fresh process, with no standard input."""
    done = subprocess.run(console_script() + [str(a) for a in argv], capture_output=True, text=True, timeout=300,
                          env=ENV, stdin=subprocess.DEVNULL)
    return Run(done.returncode, done.stdout, done.stderr)


def box_text(box) -> str:
    return ",".join(f"{v:.2f}" for v in box)


def partial_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.partial.*"))


def frame_count(video: Path) -> int:
    """Frames a reader actually decodes (not the header's count)."""
    return len(read_frames(video))


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """240 frames (about 6 s of tracking here): long enough to signal a run in the middle."""
    frames, gt = synthetic_video(n_frames=240)
    return write_video(tmp_path_factory.mktemp("long") / "long.avi", frames), tuple(gt[0])


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size) -> a fresh tmpfs of that many bytes (root only: skipped where mount is not allowed)."""
    mounted = []

    def mount(size: int, options: str = "") -> Path:
        point = tmp_path / f"tmpfs{len(mounted)}"
        point.mkdir()
        opts = f"size={size}" + (f",{options}" if options else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'})")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def fill(folder: Path, leave: int) -> None:
    """Fill the file system of `folder` until `leave` bytes are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(free - leave, 0))


# -- 1. signals finish the outputs -----------------------------------------------------------------------------


def _default_signals() -> None:
    """In the child: the default dispositions. A test run under nohup passes SIGHUP on ignored, and siamtrack keeps
    an ignored signal ignored (as nohup asks), which is not what this test is about."""
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signum,status", [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_signal_mid_run_keeps_a_complete_csv_and_a_playable_video(signum, status, long_clip, tmp_path):
    clip, box = long_clip
    csv_path, video = tmp_path / "out.csv", tmp_path / "out.mp4"
    process = subprocess.Popen(console_script() + ["track", str(clip), "--box", box_text(box), "--boxes", str(csv_path),
                                                   "--output", str(video), "--quiet", "--engine", "onnx"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                               stdin=subprocess.DEVNULL, preexec_fn=_default_signals)
    deadline = time.monotonic() + 120
    rows_seen = 0
    while time.monotonic() < deadline and process.poll() is None:
        partial = [p for p in partial_files(tmp_path) if p.suffix == ".csv"]
        rows_seen = len(partial[0].read_text().splitlines()) - 1 if partial else 0  # less the header
        if rows_seen >= 10:
            # Mid-run, the targets do not exist yet: only their partial files do.
            assert not csv_path.exists() and not video.exists()
            break
        time.sleep(0.05)
    assert process.poll() is None, f"the run ended before it could be signalled: {process.communicate()}"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    assert "Traceback" not in err, err
    rows = read_csv(csv_path)
    assert len(rows) >= rows_seen and [int(r[0]) for r in rows] == list(range(len(rows)))
    assert all(len(r) == 9 for r in rows)
    assert frame_count(video) == len(rows), "the video must hold exactly the frames whose boxes are in the CSV"
    assert partial_files(tmp_path) == []
    assert f"after {len(rows)} frames" in err


# -- 2. outputs never overwrite an input -----------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--output", "--boxes"])
def test_output_naming_the_input_is_refused_and_the_input_kept(flag, small_clip, tmp_path):
    clip = tmp_path / "input.avi"
    shutil.copy(small_clip[0], clip)
    digest = hashlib.sha256(clip.read_bytes()).hexdigest()
    run = cli(["track", str(clip), "--box", box_text(small_clip[1]), flag, str(clip), "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, flag, "is the input")
    assert hashlib.sha256(clip.read_bytes()).hexdigest() == digest


def test_csv_and_video_naming_one_file_are_refused(small_clip, tmp_path):
    out = tmp_path / "same.mp4"
    run = cli(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--boxes", str(out),
                "--output", str(out), "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "--output", "is the input")
    assert not out.exists()


# -- 3. disk full ----------------------------------------------------------------------------------------------


def test_disk_full_while_writing_the_video_keeps_a_playable_video(long_clip, tmpfs, tmp_path):
    disk = tmpfs(8 << 20)
    fill(disk, 2_400_000)  # a little over the writer's reserve: some frames fit, then it must stop in time
    clip, box = long_clip
    csv_path, video = tmp_path / "out.csv", disk / "out.mp4"
    run = cli(["track", str(clip), "--box", box_text(box), "--boxes", str(csv_path), "--output", str(video),
                "--quiet", "--engine", "onnx"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "disk almost full", str(video), "playable")
    rows = read_csv(csv_path)
    assert 0 < len(rows) < 240
    assert frame_count(video) == len(rows)
    assert partial_files(disk) == [] and partial_files(tmp_path) == []


@pytest.mark.parametrize("targets", [1, 3])
def test_disk_full_while_writing_the_csv_keeps_whole_rows(long_clip, tmpfs, targets):
    """Whole rows, and with several targets whole frames: a frame's rows are written together."""
    disk = tmpfs(1 << 20)
    fill(disk, 4096)  # one page: about 80 rows fit
    clip, box = long_clip
    csv_path = disk / "out.csv"
    boxes = [box_text((box[0] + 20 * k, box[1], box[2], box[3])) for k in range(targets)]
    run = cli(["track", str(clip), *[a for b in boxes for a in ("--box", b)], "--boxes", str(csv_path), "--quiet",
                "--engine", "onnx"])
    assert run.status == 2, run.err
    err = run.err
    assert_one_line_error(err, "cannot write --boxes", str(csv_path), "No space left on device")
    text = csv_path.read_text()
    assert text.endswith("\n"), "no half-written last row"
    rows = read_csv(csv_path)
    assert 10 < len(rows) < 240 and len(rows) % targets == 0
    assert all(len(r) == 9 for r in rows)
    assert [(int(r[0]), int(r[8])) for r in rows] == [(i // targets, i % targets) for i in range(len(rows))]
    assert f"keeps the {len(rows)} rows" in err


# -- 4. frame size changes -------------------------------------------------------------------------------------


def test_frame_size_change_is_an_error_in_the_api(synthetic, default_tracker_factory):
    frames, gt = synthetic
    tracker = default_tracker_factory()
    tracker.init(frames[0], tuple(gt[0]))
    with pytest.raises(UserError, match="frame size changed from 320x240 .* to 640x480.*init"):
        tracker.update(cv2.resize(frames[1], (640, 480)))
    tracker.update(frames[1])  # the tracker is still usable on the original size
    tracker.init(cv2.resize(frames[1], (640, 480)), tuple(2 * v for v in gt[1]))  # the documented re-init
    assert tracker.update(cv2.resize(frames[2], (640, 480))).box


def test_frame_size_change_stops_the_cli_with_the_output_so_far(synthetic, tmp_path):
    frames, gt = synthetic
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames[:10]):
        cv2.imwrite(str(folder / f"{i:04d}.png"), frame if i < 6 else cv2.resize(frame, (400, 300)))
    csv_path, video = tmp_path / "out.csv", tmp_path / "out.mp4"
    run = cli(["track", str(folder), "--box", box_text(gt[0]), "--boxes", str(csv_path), "--output", str(video),
                "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "frame size changed from 320x240", "400x300")
    assert len(read_csv(csv_path)) == 6 and frame_count(video) == 6


# -- 5. unwritable outputs are refused before the first frame ---------------------------------------------------


@pytest.mark.parametrize("target,fragment", [
    ("{tmp}", "is a folder"),
    ("/dev/full", "not a regular file"),
    ("/proc/siamtrack.csv", "cannot write --boxes /proc/siamtrack.csv"),
])
def test_unwritable_boxes_path_is_refused_before_any_output(target, fragment, small_clip, tmp_path):
    video = tmp_path / "out.mp4"
    target = target.format(tmp=tmp_path)
    run = cli(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--boxes", target,
                "--output", str(video), "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, fragment)
    assert not video.exists() and partial_files(tmp_path) == []


def test_read_only_folder_is_refused(small_clip, tmpfs, tmp_path):
    read_only = tmpfs(1 << 20, "ro")
    video = tmp_path / "out.mp4"
    run = cli(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--boxes", str(read_only / "b.csv"),
                "--output", str(video), "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "cannot write --boxes", "Read-only file system")
    assert not video.exists()


def test_eval_out_and_bench_json_are_checked_before_the_run(tiny_dataset, small_clip):
    started = time.perf_counter()
    run = cli(["eval", str(tiny_dataset), "--out", "/proc/siamtrack-results", "--no-progress"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "cannot write --out /proc/siamtrack-results")
    run = cli(["bench", str(small_clip[0]), "--box", box_text(small_clip[1]), "--json", "/dev/full",
                "--no-progress"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "--json /dev/full", "not a regular file")
    assert time.perf_counter() - started < 30  # refused up front, not after tracking


# -- 6. eval with a first box outside the image ----------------------------------------------------------------


@pytest.fixture
def tiny_dataset(tmp_path):
    """A GOT-10k layout folder with one good 12-frame sequence."""
    frames, gt = synthetic_video(n_frames=12)
    root = tmp_path / "dataset"
    _write_got_sequence(root / "good", frames, gt)
    return root


def _write_got_sequence(folder: Path, frames, gt) -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i + 1:08d}.jpg"), frame)
    np.savetxt(folder / "groundtruth.txt", gt, fmt="%.3f", delimiter=",")


def test_eval_first_box_outside_the_image(tiny_dataset, tmp_path):
    frames, gt = synthetic_video(n_frames=12)
    bad_gt = gt.copy()
    bad_gt[0] = (500, 400, 20, 20)  # the frames are 320x240
    _write_got_sequence(tiny_dataset / "bad", frames, bad_gt)
    run = cli(["eval", str(tiny_dataset / "bad"), "--out", str(tmp_path / "r1"), "--no-progress"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "no usable sequences")
    run = cli(["eval", str(tiny_dataset), "--out", str(tmp_path / "r2"), "--no-progress"])
    assert run.status == 0, run.err
    captured = run
    assert "Traceback" not in captured.err
    assert "sequence bad skipped" in captured.err and "outside the 320x240 frame" in captured.err
    assert "| siamtrack | 1 |" in captured.out  # the good sequence is scored


# -- 7. extreme box sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("box,match", [
    ((10, 10, 1e-163, 1e-163), "too small"),
    ((10, 10, 0.5, 20), "too small"),
    ((10, 10, 7e153, 7e153), "too large"),
    ((0, 0, 32001, 10), "too large"),
    ((10, 10, 1e400, 10), "finite"),
])
def test_extreme_boxes_are_refused(box, match, small_clip, tmp_path):
    with pytest.raises(UserError, match=match):
        check_box(box, (240, 320))
    video = tmp_path / "out.mp4"
    run = cli(["track", str(small_clip[0]), "--box", ",".join(repr(float(v)) for v in box), "--output", str(video),
                "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, match)
    assert not video.exists()


def test_box_limits_are_inclusive():
    assert check_box((0, 0, 1, 1), (240, 320)) == (0.0, 0.0, 1.0, 1.0)
    assert check_box((0, 0, 32000, 24000), (240, 320)) == (0.0, 0.0, 32000.0, 24000.0)


# -- 8. truncated video ----------------------------------------------------------------------------------------


@pytest.fixture
def truncated_clip(tmp_path):
    frames, gt = synthetic_video(n_frames=60)
    clip = write_video(tmp_path / "whole.avi", frames)
    data = clip.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    return truncated, tuple(gt[0])


def test_truncated_video_is_reported(truncated_clip, tmp_path):
    clip, box = truncated_clip
    csv_path = tmp_path / "out.csv"
    run = cli(["track", str(clip), "--box", box_text(box), "--boxes", str(csv_path), "--quiet"])
    assert run.status == 2, run.err
    err = run.err
    read = len(read_csv(csv_path))
    assert 0 < read < 60
    assert_one_line_error(err, f"stopped at frame {read} of 60: the file looks truncated", "--allow-truncated")
    run = cli(["track", str(clip), "--box", box_text(box), "--boxes", str(csv_path), "--quiet",
                "--allow-truncated"])
    assert run.status == 0, run.err
    err = run.err
    assert f"warning: {clip}: stopped at frame {read} of 60" in err and "error" not in err
    assert len(read_csv(csv_path)) == read


def test_bench_reports_a_truncated_video(truncated_clip):
    clip, box = truncated_clip
    run = cli(["bench", str(clip), "--box", box_text(box), "--no-progress"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "the file looks truncated")


# -- 9. empty frames -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 320, 3), (240, 0), (0,)])
def test_empty_frame_is_a_user_error(shape, synthetic, default_tracker_factory):
    tracker = default_tracker_factory()
    tracker.init(synthetic[0][0], tuple(synthetic[1][0]))
    with pytest.raises(UserError, match="empty"):
        tracker.update(np.zeros(shape, np.uint8))
    with pytest.raises(UserError, match="empty"):
        tracker.init(np.zeros(shape, np.uint8), (1, 1, 5, 5))


# -- 10. non-finite weights and responses ----------------------------------------------------------------------


def test_checkpoint_with_nan_weights_is_refused(tmp_path, small_clip):
    torch = pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")
    from tracker.checkpoint import default_weights_path

    payload = torch.load(str(default_weights_path()), map_location="cpu", weights_only=True)
    for tensor in payload["state_dict"].values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(payload, str(bad))
    with pytest.raises(UserError, match="NaN or infinite weights"):
        SiamTracker.from_pretrained(str(bad))
    run = cli(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--weights", str(bad), "--quiet"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "NaN or infinite weights")


def test_onnx_pair_with_nan_weights_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx", reason="needs onnx (pip install '.[dev]')")
    from onnx import numpy_helper

    from tracker.paths import SEARCH_ONNX, TEMPLATE_ONNX, weights_dir

    shutil.copy(weights_dir() / SEARCH_ONNX, tmp_path / SEARCH_ONNX)
    model = onnx.load(str(weights_dir() / TEMPLATE_ONNX))
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype == np.float32 and values.size > 100:
            init.CopyFrom(numpy_helper.from_array(np.full_like(values, np.nan), init.name))
    onnx.save(model, str(tmp_path / TEMPLATE_ONNX))
    with pytest.raises(UserError, match="NaN or infinite"):
        SiamTracker.from_pretrained(str(tmp_path), engine="onnx")


class _NanOnFrame:
    """Wraps an engine and makes its search output NaN on chosen calls."""

    def __init__(self, engine, bad_calls) -> None:
        self._engine, self._bad, self._calls = engine, set(bad_calls), 0
        self.config, self.response_size = engine.config, engine.response_size
        self.has_features, self.weights_sha256 = engine.has_features, engine.weights_sha256  # for the verifier
        self.last_split = {}

    def template(self, exemplar):
        return self._engine.template(exemplar)

    def template_to_numpy(self, template):
        return self._engine.template_to_numpy(template)

    def search(self, crops, template):
        return self.search_with_features(crops, template)[:2]

    def search_with_features(self, crops, template, owner=None):
        logits, distances, features = self._engine.search_with_features(crops, template)
        self._calls += 1
        if self._calls in self._bad:
            logits = np.full_like(logits, np.nan)
        return logits, distances, features


def test_non_finite_response_is_lost_and_does_not_move_the_box(synthetic):
    frames, gt = synthetic
    real = SiamTracker.from_pretrained(engine="onnx")
    tracker = SiamTracker(_NanOnFrame(real.engine, bad_calls={3}), real.config)
    tracker.init(frames[0], tuple(gt[0]))
    results = [tracker.update(frame) for frame in frames[1:6]]
    assert results[2].state != "tracking" and results[2].score == 0.0  # a low frame (lost after lost_after of them)
    assert results[2].box == results[1].box  # held, not moved to NaN
    assert all(math.isfinite(v) for r in results for v in r.box)
    assert results[3].box != results[2].box  # tracking goes on from the held box


# -- 11. tracking overrides ------------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides,match", [
    ({"num_scales": 3.0}, "num_scales must be an integer"),
    ({"window_influence": "0.3"}, "window_influence must be a number"),
    ({"lost_threshold": True}, "lost_threshold must be a number"),
    ({"response_upsample": 100000}, "response_upsample must be from 1 to 64"),
    ({"max_scale_factor": 1e9}, "max_scale_factor"),
    ({"scale_step": float("nan")}, "scale_step must be a finite number"),
    ({"num_scales": 10001}, "num_scales must be odd, from 1 to 15"),
])
def test_bad_overrides_name_the_field(overrides, match):
    with pytest.raises(UserError, match=match):
        SiamTracker.from_pretrained(engine="onnx", **overrides)


@pytest.mark.parametrize("setting,match", [
    ("num_scales=3.0", "num_scales must be an integer"),
    ("response_upsample=100000", "response_upsample"),
    ("window_influence=abc", "must be a number"),
])
def test_bad_set_on_the_command_line(setting, match, small_clip):
    run = cli(["bench", str(small_clip[0]), "--box", box_text(small_clip[1]), "--set", setting,
                "--no-progress"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, match)


# -- 12-14. bench takes the boxes track takes; corrupt images named; negative numbers after --box ---------------


def test_bench_and_track_accept_the_same_small_box(small_clip, tmp_path):
    clip = str(small_clip[0])
    run = cli(["bench", clip, "--box", "100,100,1,1", "--frames", "3", "--no-progress"])
    assert run.status == 0, run.err
    run = cli(["track", clip, "--box", "100,100,1,1", "--max-frames", "3", "--quiet"])
    assert run.status == 0, run.err
    for command in (["bench", clip, "--box", "100,100,0.5,1", "--no-progress"],
                    ["track", clip, "--box", "100,100,0.5,1", "--quiet"]):
        run = cli(command)
        assert run.status == 2, run.err
        assert_one_line_error(run.err, "box is too small (w=0.5, h=1)")


def test_bench_names_a_corrupt_image(synthetic, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(synthetic[0][:6]):
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), frame)
    (folder / "0003.jpg").write_bytes(b"not a jpeg")
    run = cli(["bench", str(folder), "--box", box_text(synthetic[1][0]), "--no-progress"])
    assert run.status == 2, run.err
    assert_one_line_error(run.err, "cannot read image", "0003.jpg")


def test_negative_box_values_after_a_space(small_clip, tmp_path):
    csv_path = tmp_path / "out.csv"
    run = cli(["track", str(small_clip[0]), "--box", "-10,-10,50,50", "--boxes", str(csv_path),
                "--max-frames", "2", "--quiet"])
    assert run.status == 0, run.err
    assert read_csv(csv_path)[0][1:5] == ["-10.00", "-10.00", "50.00", "50.00"]
    run = cli(["bench", str(small_clip[0]), "--box", "-10,-10,50,50", "--frames", "3", "--no-progress"])
    assert run.status == 0, run.err


# -- the four messages -----------------------------------------------------------------------------------------


def test_missing_weights_are_named_not_a_missing_package(small_clip):
    run = cli(["track", str(small_clip[0]), "--box", "1,2,30,40", "--weights", "nosuch.pt", "--quiet"])
    assert run.status == 2, run.err
    err = run.err
    assert_one_line_error(err, "weights file not found: nosuch.pt")
    assert "install" not in err


def test_an_existing_device_file_is_not_reported_missing():
    if not Path("/dev/null").is_char_device():
        pytest.skip("no /dev/null character device on this system")
    run = cli(["track", "/dev/null", "--box", "1,2,30,40", "--quiet"])
    assert run.status == 2, run.err
    err = run.err
    assert_one_line_error(err, "cannot open camera device /dev/null")
    assert "no such file" not in err


def test_missing_camera_gives_one_line():
    if any(Path("/dev").glob("video*")):
        pytest.skip("this machine has a camera device")
    run = cli(["track", "0", "--box", "1,2,30,40"])
    assert run.status == 2
    assert [line for line in run.err.splitlines() if line.strip()] == [
        "siamtrack: error: cannot open camera 0: check it is connected, or pass a video file or image folder"]


def test_one_frame_run_reports_no_fake_fps(small_clip):
    run = cli(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--max-frames", "1", "--quiet"])
    assert run.status == 0, run.err
    last = run.err.strip().splitlines()[-1]
    assert last.startswith("tracked 1 frame;") and "no update to time" in last
    assert "1000000000" not in last


# -- the outputs' format ---------------------------------------------------------------------------------------


def test_finished_outputs_leave_no_partial_files_and_use_lf(small_clip, tmp_path):
    csv_path, video = tmp_path / "out.csv", tmp_path / "out.mp4"
    run = cli(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--boxes", str(csv_path),
                "--output", str(video), "--quiet"])
    assert run.status == 0, run.err
    data = csv_path.read_bytes()
    assert b"\r" not in data and data.count(b"\n") == 13  # the header and 12 rows
    assert frame_count(video) == 12 and partial_files(tmp_path) == []


@pytest.mark.parametrize("stop,status,message", [
    ("SIGTERM", 143, "siamtrack: stopped by SIGTERM"),
    ("ctrl-c", 130, "siamtrack: interrupted"),
])
def test_stopped_while_the_model_loads_leaves_nothing(stop, status, message, small_clip, tmp_path, monkeypatch, capfd):
    """The signal handler is in place from the start of `track`: stopped before the first frame, the run exits
    with the signal's status and one line, and leaves no output or partial file."""
    def load(*args, **kwargs):
        if stop == "SIGTERM":
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (main) thread: the handler raises here
            time.sleep(5)
        raise KeyboardInterrupt

    from tracker.multi import MultiTracker

    monkeypatch.setattr(MultiTracker, "from_pretrained", load)
    csv_path = tmp_path / "out.csv"
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    assert main(["track", str(small_clip[0]), "--box", box_text(small_clip[1]), "--boxes", str(csv_path),
                 "--quiet"]) == status
    assert capfd.readouterr().err.strip().splitlines() == [message]
    assert not csv_path.exists() and partial_files(tmp_path) == []
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the caller's handlers are back


def test_nohup_keeps_sighup_ignored(long_clip, tmp_path):
    """Under nohup (SIGHUP ignored from the start) a SIGHUP must not stop the run."""
    clip, box = long_clip
    csv_path = tmp_path / "out.csv"
    process = subprocess.Popen(["nohup"] + console_script() + ["track", str(clip), "--box", box_text(box),
                                                               "--boxes", str(csv_path), "--quiet", "--max-frames", "60"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not partial_files(tmp_path) and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGHUP)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert len(read_csv(csv_path)) == 60
