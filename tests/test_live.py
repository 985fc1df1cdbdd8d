"""Live sources: a simulated camera (MJPEG over HTTP on 127.0.0.1, bag.avi in real time) feeding the tracker.

The tracked frame must be the newest one even when the tracker is slower than the camera; a camera that stops
must end the run with a message and playable files, never a hang.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_cli import assert_one_line_error, console_script, read_csv
from tracker.evaluation.metrics import rect_iou

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from live_latency import run_live  # noqa: E402
from simulated_camera import SimulatedCamera, read_stamp, stamp  # noqa: E402

VIDEOS = REPO.parent / "shared" / "data" / "videos"
CLIP, GT = VIDEOS / "bag.avi", VIDEOS / "bag_groundtruth.txt"
pytestmark = pytest.mark.skipif(not GT.is_file(), reason="needs ../shared/data/videos/bag.avi and its ground truth")


@pytest.fixture(scope="module")
def ground_truth():
    return np.loadtxt(GT, delimiter=",")


@pytest.fixture(scope="module")
def tracker():
    from tracker import SiamTracker

    return SiamTracker.from_pretrained(threads=1)  # one core each for the tracker and the camera


def test_the_frame_stamp_survives_jpeg():
    frame = np.full((64, 160, 3), 90, np.uint8)
    for number in (0, 1, 195, 40000):
        jpeg = cv2.imdecode(cv2.imencode(".jpg", stamp(frame, number), [cv2.IMWRITE_JPEG_QUALITY, 90])[1], 1)
        assert read_stamp(jpeg) == number


@pytest.mark.parametrize("slow_ms", [0, 60])
def test_the_tracked_frame_is_the_newest_even_with_a_slow_tracker(tracker, ground_truth, slow_ms):
    """Ages are measured from the camera sending a frame to the tracker starting on it; a 60 ms slowdown makes the
    tracker (about 75 ms a frame) slower than the 40 ms between frames, so about every other frame is dropped."""
    with SimulatedCamera(CLIP) as camera:
        run = run_live(camera, tracker, ground_truth[0], ground_truth, slow_ms / 1000)
    ages, interval = run["ages"], run["interval"]
    p95 = float(np.percentile(ages, 95))
    assert p95 < 2 * interval, f"p95 frame age {1000 * p95:.0f} ms >= two frame intervals"
    if slow_ms:
        assert run["dropped"] > 0.25 * camera.frames, run["dropped"]  # the slow tracker really fell behind
        assert len(ages) + run["dropped"] + 1 >= camera.frames - 2  # every frame was either tracked or dropped
    assert np.all(np.diff(run["numbers"]) > 0)  # never an old frame again
    assert np.mean(run["ious"] >= 0.5) > 0.7, "the track did not hold"


def test_reading_every_frame_falls_behind_when_the_tracker_is_slow(tracker, ground_truth):
    """The failure the newest-frame reader exists for: read in turn, frames wait in the buffer and age."""
    with SimulatedCamera(CLIP, max_frames=100) as camera:
        run = run_live(camera, tracker, ground_truth[0], ground_truth, 0.06, latest_only=False)
    assert np.percentile(run["ages"], 95) > 10 * run["interval"]


def _run_cli(args, timeout=120):
    return subprocess.run(console_script() + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_cli_tracks_a_stream_url_until_it_ends(tmp_path, ground_truth):
    boxes, video = tmp_path / "s.csv", tmp_path / "s.mp4"
    # 3 s of the first frame before the clip moves: the box for frame 0 is still right when the CLI starts tracking.
    with SimulatedCamera(CLIP, lead_in=75) as camera:
        done = _run_cli(["track", camera.url, "--box", ",".join(map(str, ground_truth[0])), "--boxes", str(boxes),
                         "--record", str(video), "--quiet"])
    assert done.returncode == 0, done.stderr
    assert "delivered no more frames" in done.stderr
    rows = read_csv(boxes)
    numbers = [int(r[0]) for r in rows]
    # The first frame is the newest one after the model loaded; from there on every frame is tracked or dropped.
    assert numbers == sorted(set(numbers)) and numbers[-1] >= camera.lead_in + camera.frames - 3
    assert numbers[0] < camera.lead_in, "the model took longer to load than the lead-in"
    dropped = int(done.stderr.split(" frames dropped")[0].rsplit(" ", 1)[-1])
    assert dropped == numbers[-1] + 1 - len(numbers)  # counting the ones that came while the model loaded
    hits = [rect_iou([float(v) for v in r[1:5]], ground_truth[camera.clip_frame(n)])[0] >= 0.5
            for n, r in zip(numbers, rows)]
    assert np.mean(hits) > 0.7
    capture = cv2.VideoCapture(str(video))
    # Dropped frames are filled with the last shown one: the recording keeps the stream's real time.
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == numbers[-1] - numbers[0] + 1


def test_a_camera_that_stops_delivering_ends_the_run_with_playable_files(tmp_path, ground_truth):
    boxes, video = tmp_path / "s.csv", tmp_path / "s.mp4"
    with SimulatedCamera(CLIP, lead_in=75, stall_after=100) as camera:
        started = time.monotonic()
        done = _run_cli(["track", camera.url, "--box", ",".join(map(str, ground_truth[0])), "--boxes", str(boxes),
                         "--record", str(video), "--stall-timeout", "1.5", "--quiet"], timeout=60)
        seconds = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, "delivered no frame for 1.5 s")
    assert seconds < 30
    rows = read_csv(boxes)
    assert len(rows) >= 5 and int(rows[-1][0]) <= 99
    assert f"saved {boxes} ({len(rows)} rows), {video} (" in done.stderr
    capture = cv2.VideoCapture(str(video))
    span = int(rows[-1][0]) - int(rows[0][0]) + 1
    assert capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == span
    assert capture.read()[0]


def test_an_unreachable_stream_is_a_one_line_error():
    done = _run_cli(["track", "http://127.0.0.1:9/stream.mjpg", "--box", "1,2,3,4", "--quiet"], timeout=60)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "cannot open stream http://127.0.0.1:9/stream.mjpg")


# -- the pieces ------------------------------------------------------------------------------------------------


class FakeCamera:
    """read() delivers numbered frames every `interval` seconds, then (after `frames`) fails or hangs."""

    def __init__(self, frames: int, interval: float, then: str = "end") -> None:
        self.frames, self.interval, self.then, self.sent = frames, interval, then, 0

    def read(self):
        if self.sent >= self.frames:
            if self.then == "hang":
                time.sleep(3600)
            return False, None
        time.sleep(self.interval)
        self.sent += 1
        return True, np.full((4, 4, 3), self.sent - 1, np.uint8)


def test_grabber_hands_out_only_the_newest_frame():
    from tracker.sources import LatestFrameGrabber

    grabber = LatestFrameGrabber(FakeCamera(30, 0.005).read, "fake")
    taken = []
    while (frame := grabber.next()) is not None:
        taken.append(frame.index)
        assert int(frame.image[0, 0, 0]) == frame.index
        time.sleep(0.02)  # a consumer four times slower than the camera
    assert taken == sorted(set(taken)) and 3 <= len(taken) < 20
    assert len(taken) + grabber.dropped == 30


def test_grabber_gives_up_on_a_camera_that_hangs():
    from tracker import UserError
    from tracker.sources import LatestFrameGrabber

    grabber = LatestFrameGrabber(FakeCamera(2, 0.0, then="hang").read, "camera 3", stall_timeout=0.3)
    grabber.next()
    with pytest.raises(UserError, match="camera 3 delivered no frame for 0.3 s"):
        while True:
            grabber.next()
    assert not grabber.stop(timeout=0.1)  # still blocked in read(): the capture must not be released


class BlockedRead:
    """A capture whose read blocks until `unblock` is set (a driver inside a read when asked to stop), and that
    records a release made while a read is under way: the crash the grabber must never cause."""

    def __init__(self) -> None:
        import threading

        self.unblock, self.reading, self.released = threading.Event(), threading.Event(), []

    def read(self):
        self.reading.set()
        self.unblock.wait()
        time.sleep(0.05)  # still inside the read just after it was unblocked
        self.reading.clear()
        return False, None

    def release(self):
        self.released.append("during a read" if self.reading.is_set() else "after the read")


def test_a_capture_is_never_released_under_a_read_and_is_released_when_it_returns():
    from tracker.sources import LatestFrameGrabber, wait_for_readers

    capture = BlockedRead()
    level = cv2.utils.logging.getLogLevel()
    grabber = LatestFrameGrabber(capture.read, "camera 7", release=capture.release, read_limit=5.0)
    assert capture.reading.wait(5)
    assert not grabber.stop(timeout=0.1)  # stuck in the read: stop gives up on joining...
    assert capture.released == []  # ...and leaves the capture alone
    # The read's own timeout warning would come after the "stopped" message: OpenCV is quiet until the release.
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    capture.unblock.set()
    started = time.monotonic()
    assert wait_for_readers()  # what the process does on its way out: wait for the read to return
    assert time.monotonic() - started < 2
    assert capture.released == ["after the read"]  # released once, by the reader, after its read
    assert cv2.utils.logging.getLogLevel() == level


def test_wait_for_readers_gives_up_after_the_read_limit():
    from tracker.sources import _READERS_IN_A_READ, LatestFrameGrabber, wait_for_readers

    capture = BlockedRead()
    grabber = LatestFrameGrabber(capture.read, "camera 8", release=capture.release, read_limit=0.2)
    assert capture.reading.wait(5)
    assert not grabber.stop(timeout=0.1)
    started = time.monotonic()
    assert not wait_for_readers()  # a driver that overruns its own timeout: the CLI then leaves with os._exit
    assert 1.0 < time.monotonic() - started < 3
    capture.unblock.set()
    assert grabber.stop(timeout=5)  # the read returned at last: the reader is done
    assert wait_for_readers() and not _READERS_IN_A_READ
    assert capture.released == ["after the read"]


def test_pacer_plays_at_the_frame_rate_and_restarts_after_a_pause():
    from tracker.sources import Pacer

    pacer = Pacer(50.0)
    started = time.monotonic()
    for _ in range(11):
        pacer.wait()
    assert 0.18 < time.monotonic() - started < 0.4  # 10 intervals of 20 ms
    time.sleep(0.3)
    pacer.reset()
    started = time.monotonic()
    pacer.wait()
    pacer.wait()
    # After a reset the schedule restarts: one interval between the two frames, not a catch-up rush.
    assert 0.015 < time.monotonic() - started < 0.05
