"""The `siamtrack` command line: help and version, one-line errors without tracebacks, outputs kept on failure,
and end-to-end tracking of the synthetic video through `siamtrack track`."""
import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

import tracker
from conftest import iou, read_frames, write_video
from tracker.cli import build_parser, main

SUBCOMMANDS = ["track", "webcam", "eval", "bench", "init-weights"]


def console_script() -> list[str]:
    """The installed `siamtrack` entry point next to this interpreter (else the module, for a bare checkout)."""
    script = Path(sys.executable).with_name("siamtrack")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tracker.cli"]


CSV_HEADER = ["frame", "x", "y", "w", "h", "score", "lost", "state", "target"]


def read_csv(path: Path) -> list[list[str]]:
    """The data rows of a --boxes CSV, after checking its header row and its \\n line endings."""
    data = Path(path).read_bytes()
    assert b"\r" not in data
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_HEADER, rows[:1]
    return rows[1:]


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("siamtrack: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for fragment in fragments:
        assert fragment in errors[0], err


@pytest.fixture
def headless(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


# -- help and version ------------------------------------------------------------------------------------------


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"siamtrack {tracker.__version__}"


def test_help_and_no_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    assert main([]) == 2  # no subcommand: prints the help, exits non-zero
    assert "usage: siamtrack" in capsys.readouterr().out


def test_every_subcommand_is_listed():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(SUBCOMMANDS) <= set(sub.choices)


@pytest.mark.parametrize("name", sorted(set(SUBCOMMANDS) | set(
    next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices)))
def test_subcommand_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: siamtrack {name}")


def test_track_help_lists_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["track", "--help"])
    out = capsys.readouterr().out
    for flag in ("--box", "--select", "--output", "--record", "--boxes", "--format", "--show", "--fast", "--weights",
                 "--device", "--max-frames", "--stall-timeout", "--quiet"):
        assert flag in out


@pytest.mark.parametrize("command", ["track", "webcam"])
def test_help_lists_the_window_keys(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for key in ("space pause/resume", "r re-select", "s save a PNG snapshot", "h show the key help again",
                "q or Esc quit", "closing the window"):
        assert key in out


# -- errors: one line, non-zero, no traceback ------------------------------------------------------------------


@pytest.fixture
def garbage_video(tmp_path):
    path = tmp_path / "garbage.avi"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


@pytest.fixture
def garbage_checkpoint(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    return path


@pytest.mark.parametrize(
    "case,args,fragments",
    [
        ("missing file", ["{tmp}/nope.mp4", "--box", "1,2,3,4"], ["no such file"]),
        ("unreadable video", ["{garbage}", "--box", "1,2,3,4"], ["cannot read video"]),
        ("text file as video", ["{tmp}/notes.mp4", "--box", "1,2,3,4"], ["cannot read video"]),
        ("empty folder", ["{tmp}/empty", "--box", "1,2,3,4"], ["no images"]),
        ("box outside", ["{clip}", "--box", "400,10,20,20"], ["outside the 320x240 frame"]),
        ("box above", ["{clip}", "--box", "10,-50,20,20"], ["outside"]),
        ("empty box", ["{clip}", "--box", "10,10,0,20"], ["empty"]),
        ("negative box", ["{clip}", "--box", "10,10,20,-5"], ["empty"]),
        ("nan box", ["{clip}", "--box", "nan,10,20,20"], ["finite"]),
        ("malformed box", ["{clip}", "--box", "10,10,a,20"], ["--box must be x,y,w,h numbers"]),
        ("three numbers", ["{clip}", "--box", "10,10,20"], ["four numbers"]),
        ("semicolons", ["{clip}", "--box", "10;10;20;20"], ["--box"]),
        ("empty --box", ["{clip}", "--box", ""], ["--box"]),
        ("no box", ["{clip}"], ["--box x,y,w,h", "--select"]),
        ("csv folder missing", ["{clip}", "--box", "1,2,3,4", "--boxes", "{tmp}/no/dir/out.csv"], ["does not exist"]),
        ("video folder missing", ["{clip}", "--box", "1,2,3,4", "--output", "{tmp}/no/dir/out.mp4"], ["does not exist"]),
        ("bad video suffix", ["{clip}", "--box", "1,2,3,4", "--output", "{tmp}/out.txt"], [".mp4"]),
        ("missing weights", ["{clip}", "--box", "1,2,3,4", "--weights", "{tmp}/nope.pt"], ["weights file not found"]),
        ("foreign weights", ["{clip}", "--box", "1,2,3,4", "--weights", "{garbage_pt}"], ["not a siamtrack checkpoint"]),
        ("unknown device", ["{clip}", "--box", "1,2,3,4", "--device", "tpu"], ["unknown device"]),
    ],
)
def test_track_bad_input(case, args, fragments, tmp_path, small_clip, garbage_video, garbage_checkpoint, capfd):
    (tmp_path / "notes.mp4").write_text("not a video\n")
    (tmp_path / "empty").mkdir()
    names = {"tmp": tmp_path, "clip": small_clip[0], "garbage": garbage_video, "garbage_pt": garbage_checkpoint}
    argv = ["track"] + [a.format(**names) for a in args] + ["--quiet"]
    assert main(argv) == 2
    assert_one_line_error(capfd.readouterr().err, *fragments)


def test_select_and_show_need_a_display(small_clip, headless, capfd):
    clip = str(small_clip[0])
    assert main(["track", clip, "--select", "--quiet"]) == 2
    assert_one_line_error(capfd.readouterr().err, "--select needs a display")
    assert main(["track", clip, "--box", "1,2,3,4", "--show", "--quiet"]) == 2
    assert_one_line_error(capfd.readouterr().err, "--show needs a display")


def test_console_script_error_and_version():
    """The installed entry point in a fresh process: exit codes and a one-line error on stderr."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(console_script() + ["track", "no/such/clip.mp4", "--box", "1,2,3,4"],
                          capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "no such file, folder or camera index: no/such/clip.mp4")
    done = subprocess.run(console_script() + ["--version"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0 and done.stdout.strip() == f"siamtrack {tracker.__version__}"


# -- outputs ---------------------------------------------------------------------------------------------------


def test_max_frames_writes_a_row_and_a_frame_per_processed_frame(small_clip, tmp_path, capfd):
    clip, box = small_clip
    boxes, video = tmp_path / "out.csv", tmp_path / "out.mp4"
    assert main(["track", str(clip), "--box", ",".join(map(str, box)), "--boxes", str(boxes),
                 "--output", str(video), "--max-frames", "5", "--quiet", "--device", "cpu"]) == 0
    rows = read_csv(boxes)
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    assert all(len(r) == 9 and r[8] == "0" for r in rows)  # frame,x,y,w,h,score,lost,state,target
    np.testing.assert_allclose([float(v) for v in rows[0][1:5]], box, atol=0.01)  # the first row is the given box
    assert all(0 <= float(r[5]) <= 1 and r[6] in ("0", "1") for r in rows)
    written = read_frames(video)
    assert len(written) == 5 and written[0].shape == (240, 320, 3)
    assert "tracked 5 frames" in capfd.readouterr().err


def test_boxes_written_so_far_are_kept_when_a_frame_fails(synthetic, tmp_path, capfd):
    """An unreadable image in the middle of a folder: one-line error, and the CSV keeps every frame before it."""
    frames, gt = synthetic[0][:8], synthetic[1][:8]
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:05d}.png"), frame)
    (folder / "00005.png").write_bytes(b"not a png")
    boxes = tmp_path / "out.csv"
    assert main(["track", str(folder), "--box", ",".join(map(str, gt[0])), "--boxes", str(boxes), "--quiet"]) == 2
    assert_one_line_error(capfd.readouterr().err, "cannot read image", "00005.png")
    rows = read_csv(boxes)
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3, 4]
    assert iou([[float(v) for v in r[1:5]] for r in rows], gt[:5]).min() > 0.5


def test_ctrl_c_keeps_the_boxes(small_clip, tmp_path, monkeypatch, capfd):
    from tracker.multi import MultiTracker

    real_update, calls = MultiTracker.update, []

    def update(self, frame):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_update(self, frame)

    monkeypatch.setattr(MultiTracker, "update", update)
    clip, box = small_clip
    boxes = tmp_path / "out.csv"
    assert main(["track", str(clip), "--box", ",".join(map(str, box)), "--boxes", str(boxes), "--quiet"]) == 130
    assert [int(r[0]) for r in read_csv(boxes)] == [0, 1, 2, 3]
    assert "interrupted after 4 frames" in capfd.readouterr().err


def test_init_weights_and_track_with_them(small_clip, tmp_path, capfd):
    clip, box = small_clip
    weights = tmp_path / "models" / "alexnet.pt"
    assert main(["init-weights", "--out", str(weights), "--backbone", "alexnet", "--stride", "8"]) == 0
    assert weights.is_file()
    boxes = tmp_path / "out.csv"
    assert main(["track", str(clip), "--box", ",".join(map(str, box)), "--weights", str(weights),
                 "--boxes", str(boxes), "--max-frames", "3", "--quiet"]) == 0
    assert len(read_csv(boxes)) == 3
    capfd.readouterr()
    assert main(["init-weights", "--out", str(tmp_path / "x.pt"), "--stride", "32"]) == 2
    assert_one_line_error(capfd.readouterr().err, "stride")


# -- end to end ------------------------------------------------------------------------------------------------


def test_end_to_end_synthetic_video_through_the_cli(synthetic, tmp_path, report, capfd):
    frames, gt = synthetic
    clip = write_video(tmp_path / "synthetic.mp4", frames)
    boxes, video = tmp_path / "boxes.csv", tmp_path / "tracked.mp4"
    assert main(["track", str(clip), "--box", ",".join(f"{v:.3f}" for v in gt[0]), "--boxes", str(boxes),
                 "--output", str(video), "--quiet"]) == 0
    summary = capfd.readouterr().err.strip().splitlines()[-1].split("; saved")[0]  # "tracked N frames; tracker X ms/frame..."
    rows = read_csv(boxes)
    assert [int(r[0]) for r in rows] == list(range(len(frames)))
    overlaps = iou([[float(v) for v in r[1:5]] for r in rows], gt)
    report(f"synthetic video (CLI, mp4 in and out): mean IoU {overlaps.mean():.3f}, IoU>=0.5 on "
           f"{100 * np.mean(overlaps >= 0.5):.0f}% of frames; {summary}")
    assert np.mean(overlaps >= 0.5) >= 0.9, f"IoU per frame: {np.round(overlaps, 2)}"
    written = read_frames(video)
    assert len(written) == len(frames) and written[0].shape == frames[0].shape


# -- box formats -----------------------------------------------------------------------------------------------


def test_box_formats_mot_and_otb(small_clip, tmp_path):
    clip, box = small_clip
    argv = ["track", str(clip), "--box", ",".join(map(str, box)), "--max-frames", "4", "--quiet"]
    assert main(argv + ["--boxes", str(tmp_path / "b.csv")]) == 0
    rows = read_csv(tmp_path / "b.csv")
    assert main(argv + ["--boxes", str(tmp_path / "b.mot"), "--format", "mot"]) == 0
    mot = [line.split(",") for line in (tmp_path / "b.mot").read_text().splitlines()]
    assert [m[:2] for m in mot] == [[str(i + 1), "1"] for i in range(4)]  # 1-based frames, one target id
    for m, r in zip(mot, rows):
        assert float(m[2]) == pytest.approx(float(r[1]) + 1, abs=0.011) and m[4:6] == r[3:5]
        assert m[6] == r[5] and m[7:] == ["-1", "-1", "-1"]
    assert main(argv + ["--boxes", str(tmp_path / "b.txt"), "--format", "otb"]) == 0
    otb = [line.split(",") for line in (tmp_path / "b.txt").read_text().splitlines()]
    assert len(otb) == 4 and all(len(o) == 4 for o in otb)
    assert float(otb[0][1]) == pytest.approx(float(rows[0][2]) + 1, abs=0.011)  # OTB's 1-based pixels


def test_mot_leaves_lost_frames_out(tmp_path):
    from tracker.outputs import BoxCsvWriter

    writer = BoxCsvWriter(tmp_path / "m.txt", fmt="mot")
    writer.write(0, (1, 2, 3, 4), 0.9, False)
    writer.write(1, (1, 2, 3, 4), 0.1, True)
    writer.write(2, (1, 2, 3, 4), 0.8, False)
    writer.close()
    assert [line.split(",")[0] for line in (tmp_path / "m.txt").read_text().splitlines()] == ["1", "3"]
    assert writer.rows == 2


def test_progress_is_a_plain_line_off_a_terminal(monkeypatch):
    """Not a terminal: no carriage-return bar in a log, but a line every `every` seconds."""
    import io

    from tracker.progress import PlainProgress, progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert isinstance(progress(10, "tracking"), PlainProgress)
    assert not isinstance(progress(10, "tracking", quiet=True), PlainProgress)
    lines = []
    bar = PlainProgress(100, "tracking", "frame", every=0.0, file=type("F", (), {"write": lambda s, t: lines.append(t), "flush": lambda s: None})())
    bar.set_postfix(score="0.90")
    bar.update(5)
    text = "".join(lines)
    assert "\r" not in text and text.startswith("tracking: 5/100 frames, ") and "frame/s" in text and "score=0.90" in text


def test_plain_progress_iterates_like_tqdm(monkeypatch):
    import io

    from tracker.progress import PlainProgress, progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    bar = progress(desc="sequences", unit="seq", iterable=["a", "b", "c"])
    assert isinstance(bar, PlainProgress) and bar.total == 3
    bar.set_postfix_str("a")
    assert list(bar) == ["a", "b", "c"] and bar.n == 3


@pytest.mark.parametrize("name, fmt, says", [
    ("b.json", "csv", "--boxes {path}: writing csv (no --format writes .json: name it *.csv)"),
    ("b.txt", "csv", "--boxes {path}: writing csv (use --format mot or otb for a .txt file, or name it *.csv)"),
    ("b.csv", "mot", "--boxes {path}: writing mot (use --format csv for a .csv file, or name it *.txt)"),
])
def test_boxes_suffix_of_another_format_warns_once(small_clip, tmp_path, capfd, name, fmt, says):
    clip, box = small_clip
    path = tmp_path / name
    argv = ["track", str(clip), "--box", ",".join(map(str, box)), "--max-frames", "2", "--quiet"]
    assert main(argv + ["--boxes", str(path), "--format", fmt]) == 0
    err = capfd.readouterr().err
    assert err.count("warning: --boxes") == 1 and f"warning: {says.format(path=path)}\n" in err, err
    assert path.is_file()  # written all the same, in the format asked for
    if fmt == "csv":
        assert len(read_csv(path)) == 2
    assert main(argv + ["--boxes", str(tmp_path / "b.csv")]) == 0
    assert "warning" not in capfd.readouterr().err  # a name that fits the format: not a word


@pytest.mark.parametrize("box_format", ["xyxy", "cxcywh"])
def test_box_format_gives_the_same_track_as_xywh(small_clip, tmp_path, box_format):
    clip, box = small_clip
    x, y, w, h = box
    given = {"xyxy": (x, y, x + w, y + h), "cxcywh": (x + w / 2, y + h / 2, w, h)}[box_format]
    argv = ["track", str(clip), "--max-frames", "6", "--quiet"]
    assert main(argv + ["--box", ",".join(map(str, box)), "--boxes", str(tmp_path / "xywh.csv")]) == 0
    assert main(argv + ["--box", ",".join(map(str, given)), "--box-format", box_format,
                        "--boxes", str(tmp_path / "other.csv")]) == 0
    assert read_csv(tmp_path / "other.csv") == read_csv(tmp_path / "xywh.csv")  # the file is x,y,w,h either way


def test_box_format_xyxy_refuses_swapped_corners(small_clip, capfd):
    clip, _ = small_clip
    assert main(["track", str(clip), "--box", "100,80,60,120", "--box-format", "xyxy", "--quiet"]) == 2
    assert_one_line_error(capfd.readouterr().err, "x1,y1,x2,y2", "x2 must be greater than x1")
