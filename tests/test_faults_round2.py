"""Faults, round two (issue 23): files, streams, standard streams and threads. One test per row of the issue,
named after it; the CLI runs in a subprocess wherever signals, streams or the file system matter, and each test
checks the exit status, the message and what is on disk afterwards."""
from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import VIDEOS
from test_cli import assert_one_line_error, console_script, read_csv
from test_faults import ENV, Run, cli
from tracker import SiamTracker, UserError

BAG = VIDEOS / "bag.avi"
BAG_BOX = "312,146,105,95"
needs_bag = pytest.mark.skipif(not BAG.is_file(), reason="needs ../shared/data/videos/bag.avi")


def bag_jpegs(count: int, size: tuple[int, int] | None = None) -> list[bytes]:
    """The first `count` frames of bag.avi as JPEGs (resized to `size` = (w, h) if given)."""
    capture = cv2.VideoCapture(str(BAG))
    jpegs = []
    while len(jpegs) < count:
        ok, frame = capture.read()
        assert ok
        if size is not None:
            frame = cv2.resize(frame, size)
        jpegs.append(cv2.imencode(".jpg", frame)[1].tobytes())
    capture.release()
    return jpegs


class PartServer:
    """http://127.0.0.1:PORT/stream.mjpg sending `parts` as an MJPEG stream at `fps`, then closing it; with
    raw=True, the parts are sent as they are, without multipart framing (garbage from the first byte)."""

    def __init__(self, parts: list[bytes], fps: float = 25.0, raw: bool = False) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream" if raw else
                                 "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    server._serve(self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.parts, self.fps, self.raw = parts, fps, raw
        self._http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/stream.mjpg"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def _serve(self, out) -> None:
        start = time.monotonic()
        for number, part in enumerate(self.parts):
            time.sleep(max(0.0, start + number / self.fps - time.monotonic()))
            if not self.raw:
                out.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(part))
            out.write(part + (b"" if self.raw else b"\r\n"))
            out.flush()

    def __enter__(self) -> "PartServer":
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()


def shell(command: str, cwd: Path, timeout: float = 300) -> Run:
    """`command` in bash, with $S the siamtrack command: for redirections such as `2>&-` or `> /dev/full`."""
    env = {**ENV, "S": " ".join(console_script())}
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)
    return Run(done.returncode, done.stdout, done.stderr)


@needs_bag
def test_row20_closed_stderr_still_tracks_and_writes_the_csv(tmp_path):
    run = shell(f"$S track {BAG} --box {BAG_BOX} --boxes x.csv --max-frames 5 2>&-", tmp_path)
    assert run.status == 0
    rows = read_csv(tmp_path / "x.csv")  # checks the header too: no log line of OpenCV landed in the file
    assert [row[0] for row in rows] == ["0", "1", "2", "3", "4"]


@needs_bag
def test_row21_stdout_write_error_is_one_line_and_keeps_the_json(tmp_path):
    run = shell(f"$S bench {BAG} --frames 10 --no-progress --json b.json > /dev/full", tmp_path)
    assert run.status == 2
    assert_one_line_error(run.err, "cannot write the standard output", "No space left on device")
    results = json.loads((tmp_path / "b.json").read_text())
    assert results  # the figures that could not be printed are on disk


@needs_bag
def test_row22_closed_pipe_on_stdout_exits_quietly(tmp_path):
    # The reader is gone before the first line is written (what `| head -1` does to a longer output): any
    # write raises EPIPE, every time, instead of only when the output outgrows the pipe's buffer.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(console_script() + ["bench", str(BAG), "--frames", "10", "--compare", "kcf",
                                                  "--no-progress"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=300, env=ENV, stdin=subprocess.DEVNULL, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode == 141  # as `yes | head -1`: 128 + SIGPIPE


@pytest.fixture
def link_loop(tmp_path) -> Path:
    """a -> b -> a"""
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


@needs_bag
@pytest.mark.parametrize("option", ["source", "--weights", "--boxes"])
def test_row16_symlink_loop_is_one_line(option, link_loop, tmp_path):
    argv = ["track", BAG, "--box", BAG_BOX, "--max-frames", "3", "--quiet"]
    argv = [argv[0], link_loop, *argv[2:]] if option == "source" else argv + [option, link_loop]
    run = cli(argv)
    assert run.status == 2
    assert_one_line_error(run.err, f"{option} {link_loop} is a symbolic link loop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@needs_bag
def test_row1_boxes_through_a_symlink_and_never_onto_dev_stdout(tmp_path):
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to("real.csv")
    run = cli(["track", BAG, "--box", BAG_BOX, "--boxes", tmp_path / "link.csv", "--max-frames", "5", "--quiet"])
    assert run.status == 0, run.err
    assert (tmp_path / "link.csv").is_symlink() and os.readlink(tmp_path / "link.csv") == "real.csv"
    assert len(read_csv(tmp_path / "real.csv")) == 5
    # /dev/stdout redirected to a regular file looks like a regular file: it is still refused, the file it
    # points at keeps what it held, and /dev/stdout stays the link it was.
    redirected = tmp_path / "stdout.txt"
    redirected.write_text("kept\n")
    (tmp_path / "to_stdout.csv").symlink_to("/dev/stdout")
    for target in ("/dev/stdout", tmp_path / "to_stdout.csv"):
        run = shell(f"$S track {BAG} --box {BAG_BOX} --boxes {target} --max-frames 5 --quiet >> stdout.txt",
                    tmp_path)
        assert run.status == 2
        assert_one_line_error(run.err, f"cannot write --boxes {target}: not a regular file", "/dev/stdout")
    assert redirected.read_text() == "kept\n" and Path("/dev/stdout").is_symlink()
    assert not list(tmp_path.glob(".*partial*")) and not list(Path("/dev").glob(".*partial*"))


@needs_bag
def test_row8_names_that_are_not_utf8_are_refused_before_opencv(tmp_path):
    bad_video = os.fsdecode(bytes(tmp_path) + b"/bad\xff\xfe.avi")
    os.symlink(BAG, bad_video)
    folder = tmp_path / "frames"
    folder.mkdir()
    png = cv2.imencode(".png", np.zeros((48, 64, 3), np.uint8))[1].tobytes()
    for name in (b"0.png", b"1.png", b"2\xff.png"):  # the bad name sorts last: it would be reached mid-run
        Path(os.fsdecode(bytes(folder) + b"/" + name)).write_bytes(png)
    cases = [
        (["track", bad_video, "--box", BAG_BOX], "source"),
        (["bench", bad_video, "--box", BAG_BOX, "--frames", "5"], "source"),
        (["track", BAG, "--box", BAG_BOX, "--output", os.fsdecode(bytes(tmp_path) + b"/out\xff.avi")], "--output"),
        (["track", BAG, "--box", BAG_BOX, "--boxes", os.fsdecode(bytes(tmp_path) + b"/out\xff.csv")], "--boxes"),
        (["track", folder, "--box", "5,5,20,20", "--boxes", tmp_path / "f.csv"], "image"),
    ]
    for argv, what in cases:
        run = cli(argv)
        assert run.status == 2, (argv, run.err)
        assert_one_line_error(run.err, f"{what} ", "not valid UTF-8")
    assert sorted(os.listdir(tmp_path)) == sorted(["frames", os.fsdecode(b"bad\xff\xfe.avi")])


def test_row9_a_text_file_is_not_tracked_as_a_video(tmp_path):
    text = tmp_path / "bag_groundtruth.txt"
    text.write_text("".join(f"{10 + i},{20 + i},30,30\n" for i in range(300)))  # FFmpeg renders this as 28 frames
    for argv in (["track", text, "--box", "10,10,30,30", "--boxes", tmp_path / "t.csv"],
                 ["bench", text, "--box", "10,10,30,30", "--frames", "5"]):
        run = cli(argv)
        assert run.status == 2
        assert_one_line_error(run.err, f"cannot read video {text}: it is a text file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bag_groundtruth.txt"]


def test_row17_frames_wider_than_opencv_crops_are_refused(tmp_path):
    folder = tmp_path / "wide"
    folder.mkdir()
    wide = np.full((64, 33000, 3), 90, np.uint8)
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), wide)
    run = cli(["track", folder, "--box", "100,10,30,30", "--boxes", tmp_path / "w.csv", "--quiet"])
    assert run.status == 2
    assert_one_line_error(run.err, "frame is 33000x64 pixels", "at most 32,766 pixels a side")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wide"]
    tracker = SiamTracker.from_pretrained()
    with pytest.raises(UserError, match="33000x64"):
        tracker.init(wide, (100, 10, 30, 30))
    tracker.init(wide[:, :32766], (100, 10, 30, 30))  # the widest frame that works
    assert not tracker.update(wide[:, :32766]).lost


@needs_bag
def test_row13_an_infinite_or_huge_stall_timeout_means_never(tmp_path):
    for timeout in ("inf", "1e7"):
        boxes = tmp_path / f"{timeout}.csv"
        with PartServer(bag_jpegs(100)) as stream:  # 4 s: longer than the model takes to load on a busy CPU
            run = cli(["track", stream.url, "--box", BAG_BOX, "--boxes", boxes, "--stall-timeout", timeout,
                       "--quiet"])
        assert run.status == 0, run.err
        assert "Traceback" not in run.err and "delivered no more frames" in run.err
        assert int(read_csv(boxes)[-1][0]) == 99  # to the end of the stream


def test_row14_garbage_from_the_first_byte_is_one_line_without_ffmpeg_log(tmp_path):
    noise = np.random.default_rng(14).integers(0, 256, 50 * 16384, dtype=np.uint8).tobytes()
    with PartServer([noise[i:i + 16384] for i in range(0, len(noise), 16384)], fps=100, raw=True) as stream:
        run = cli(["track", stream.url, "--box", "1,1,20,20", "--boxes", tmp_path / "g.csv", "--quiet"])
    assert run.status == 2
    assert_one_line_error(run.err, f"cannot open stream {stream.url}", "nothing FFmpeg can decode")
    assert len(run.err.splitlines()) == 1, run.err
    assert list(tmp_path.iterdir()) == []


@needs_bag
def test_row23b_a_box_mostly_outside_the_frame_is_refused(tmp_path):
    run = cli(["track", BAG, "--box", "-29,-29,30,30", "--boxes", tmp_path / "b.csv", "--quiet"])
    assert run.status == 2
    assert_one_line_error(run.err, "box -29,-29,30,30 lies mostly outside the 480x360 frame", "0.11% of it is inside")
    assert list(tmp_path.iterdir()) == []
    # Half in the frame is a target entering the picture: tracked.
    run = cli(["track", BAG, "--box", "-15,146,30,30", "--boxes", tmp_path / "b.csv", "--max-frames", "3", "--quiet"])
    assert run.status == 0, run.err
    assert len(read_csv(tmp_path / "b.csv")) == 3


@pytest.fixture(scope="module")
def bag_frame():
    if not BAG.is_file():
        pytest.skip("needs ../shared/data/videos/bag.avi")
    capture = cv2.VideoCapture(str(BAG))
    frame = capture.read()[1]
    capture.release()
    return frame


def hold_in_step(tracker):
    """Make tracker's next frame wait inside the network step until released: (entered, release) events."""
    entered, release = threading.Event(), threading.Event()
    step = tracker._step

    def held(*args):
        entered.set()
        assert release.wait(30)
        return step(*args)

    tracker._step = held
    return entered, release


def test_row18_one_tracker_updated_from_two_threads_at_once_is_refused(bag_frame):
    tracker = SiamTracker.from_pretrained(threads=1)
    tracker.init(bag_frame, (312, 146, 105, 95))
    entered, release = hold_in_step(tracker)
    results = []
    first = threading.Thread(target=lambda: results.append(tracker.update(bag_frame)))
    first.start()
    assert entered.wait(30)
    with pytest.raises(UserError, match="already tracking a frame in another thread"):
        tracker.update(bag_frame)
    release.set()
    first.join(30)
    assert len(results) == 1 and not results[0].lost  # the first thread's frame was tracked, once
    assert not tracker.update(bag_frame).lost  # one thread after the other is fine


def test_row19_remove_during_update_keeps_results_with_their_targets(bag_frame):
    from tracker import MultiTracker

    tracker = MultiTracker.from_pretrained(threads=1)
    boxes = [(312, 146, 105, 95), (20, 200, 60, 60)]
    a, b = tracker.init(bag_frame, boxes)
    entered, release = hold_in_step(tracker)
    results = []
    updating = threading.Thread(target=lambda: results.append(tracker.update(bag_frame)))
    updating.start()
    assert entered.wait(30)
    removing = threading.Thread(target=tracker.remove, args=(a,))
    removing.start()
    removing.join(0.3)
    assert removing.is_alive()  # waits for the frame being tracked
    release.set()
    updating.join(30)
    removing.join(30)
    assert not removing.is_alive() and set(results[0]) == {a, b}
    for target, box in zip((a, b), boxes):  # each result is where its own target was
        x, y, w, h = results[0][target].box
        assert abs(x + w / 2 - (box[0] + box[2] / 2)) < 40 and abs(y + h / 2 - (box[1] + box[3] / 2)) < 40
    assert set(tracker.update(bag_frame)) == {b}


def test_row15_onnx_external_data_outside_the_model_folder_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from tracker.paths import weights_dir

    shipped = weights_dir()
    model = onnx.load(str(shipped / "search.onnx"))
    tensor = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    data = tensor.raw_data

    def pair_with_data_at(folder: Path, location: str) -> Path:
        folder.mkdir()
        (folder / "template.onnx").write_bytes((shipped / "template.onnx").read_bytes())
        del tensor.external_data[:]
        tensor.external_data.add(key="location", value=location)
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        onnx.save(model, str(folder / "search.onnx"))
        return folder

    (tmp_path / "outside.bin").write_bytes(data)  # the right bytes, but not beside the graph
    bad = [pair_with_data_at(tmp_path / "absolute", str(tmp_path / "outside.bin")),
           pair_with_data_at(tmp_path / "parent", "../outside.bin"),
           pair_with_data_at(tmp_path / "linked", "linked.bin")]
    (bad[-1] / "linked.bin").symlink_to(tmp_path / "outside.bin")
    for folder in bad:
        with pytest.raises(UserError, match="outside its folder"):
            SiamTracker.from_pretrained(folder, engine="onnx")
    run = cli(["track", BAG, "--box", BAG_BOX, "--weights", bad[0], "--engine", "onnx", "--quiet"])
    assert run.status == 2
    assert_one_line_error(run.err, "search.onnx keeps tensor data in", "outside its folder")
    # Data beside the graph is what external data is for: it loads.
    good = pair_with_data_at(tmp_path / "beside", "search.data")
    (good / "search.data").write_bytes(data)
    tracker = SiamTracker.from_pretrained(good, engine="onnx")
    assert tracker.engine.name == "onnx"


@needs_bag
def test_row10_a_damaged_frame_mid_stream_is_skipped_and_counted(tmp_path):
    jpegs = bag_jpegs(90)
    garbage = np.random.default_rng(10).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    with PartServer(jpegs[:50] + [garbage] + jpegs[50:]) as stream:
        run = cli(["track", stream.url, "--box", BAG_BOX, "--boxes", tmp_path / "s.csv", "--quiet"])
    assert run.status == 0, run.err
    assert "1 damaged frame skipped" in run.err and "Traceback" not in run.err
    numbers = [int(row[0]) for row in read_csv(tmp_path / "s.csv")]
    assert numbers[-1] >= 80  # tracked on to the end of the stream (frame 89), not stopped at the 51st part


@needs_bag
def test_row11_a_resolution_change_mid_stream_stops_with_the_rows_so_far(tmp_path):
    with PartServer(bag_jpegs(100) + bag_jpegs(30, (320, 240))) as stream:
        run = cli(["track", stream.url, "--box", BAG_BOX, "--boxes", tmp_path / "s.csv", "--quiet"])
    assert run.status == 2
    assert_one_line_error(run.err, "changed its frame size from 480x360 to 320x240 at frame 100",
                          "the rows so far are kept")
    numbers = [int(row[0]) for row in read_csv(tmp_path / "s.csv")]
    assert len(numbers) >= 5 and 80 <= numbers[-1] <= 99  # nothing of the new size was tracked
    assert f"saved {tmp_path / 's.csv'} ({len(numbers)} rows)" in run.err


@needs_bag
def test_row12_recordings_of_live_sources_play_at_the_measured_rate(tmp_path):
    video = tmp_path / "s.avi"
    with PartServer(bag_jpegs(80), fps=10) as stream:  # OpenCV says 25 fps for any MJPEG stream
        run = cli(["track", stream.url, "--box", BAG_BOX, "--output", video, "--quiet"])
    assert run.status == 0, run.err
    capture = cv2.VideoCapture(str(video))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), capture.get(cv2.CAP_PROP_FRAME_COUNT)
    capture.release()
    assert 9.0 <= fps <= 11.0, fps
    assert 3.0 <= frames / fps <= 8.5  # the stream's 8 s, less the part before the model loaded
