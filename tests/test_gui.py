"""The live window for real: `siamtrack track --show` on a virtual X display (Xvfb), driven with xdotool as a user
would (mouse drag to select, keys), checked with screenshots. `.ci/run` installs xvfb and xdotool (Debian)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_cli import assert_one_line_error, console_script, read_csv

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "videos"
CLIP, GT = VIDEOS / "bag.avi", VIDEOS / "bag_groundtruth.txt"
BOX_COLOURS = np.array([[0, 255, 0], [255, 220, 0], [255, 0, 0]])  # RGB: tracking, uncertain, lost
BEING_DRAWN = (0, 255, 255)  # RGB of the box being dragged in the selection view (viewer.draw_selection)


def _missing_tools() -> str | None:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (apt-get install xvfb xdotool; .ci/run does)"
    try:
        import Xlib  # noqa: F401
        from PIL import ImageGrab  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (the dev extra has it)"
    if not GT.is_file():
        return "needs ../shared/data/videos/bag.avi"
    return None


needs_x = pytest.mark.skipif(_missing_tools() is not None, reason=_missing_tools() or "")


def _display_answers(display: str) -> str | None:
    """None when an X client can connect to `display`, else why not."""
    from Xlib import display as xlib_display
    from Xlib.error import DisplayError

    try:
        xlib_display.Display(display).close()
        return None
    except (DisplayError, ConnectionError, OSError) as exc:
        return str(exc)


@pytest.fixture
def xdisplay(tmp_path):
    """A fresh Xvfb server for this test alone, on a display number it picked free itself (-displayfd: no other
    X server, another test run's included, can hold it), answering connections before the test starts. Its
    DISPLAY string. -noreset: by default Xvfb resets when its last client leaves, and refuses connections while it
    does. The display check's probe window is such a client, so the app's own connection right after it could
    fail, and Qt then aborts the app (SIGABRT: "could not connect to display", 1 run in 100 under two busy loops;
    connecting and closing 1,500 times in a row: 5 failed without -noreset, none with it)."""
    log = (tmp_path / "xvfb.log").open("w+")
    server = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x1024x24", "-nolisten", "tcp",
                               "-noreset"],
                              stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        number = server.stdout.readline().strip()
        assert number.isdigit(), f"Xvfb did not start: {Path(log.name).read_text()[-2000:]}"
        display, deadline, why = f":{number}", time.monotonic() + 30, "not tried"
        while (why := _display_answers(display)) is not None and time.monotonic() < deadline:
            assert server.poll() is None, f"Xvfb exited: {Path(log.name).read_text()[-2000:]}"
            time.sleep(0.1)
        assert why is None, f"Xvfb on {display} does not answer: {why}; {Path(log.name).read_text()[-2000:]}"
        yield display
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        log.close()


class App:
    """`siamtrack ARGS` on the X display, with the helpers a test needs to drive it."""

    def __init__(self, display: str, args: list[str], tmp_path: Path) -> None:
        self.display = display
        self.env = {**os.environ, "DISPLAY": display}
        self.env.pop("WAYLAND_DISPLAY", None)
        self.folder = tmp_path
        self.out = (tmp_path / "stdout.txt").open("w+")
        self.err = (tmp_path / "stderr.txt").open("w+")
        self.process = subprocess.Popen(console_script() + args, stdout=self.out, stderr=self.err, env=self.env,
                                        stdin=subprocess.DEVNULL, cwd=tmp_path)
        self.remapped = 0  # times ensure_painted mapped the window again (failure messages say it)
        self.window = self._find_window()

    def xdotool(self, *args) -> str:
        return subprocess.run(["xdotool", *map(str, args)], env=self.env, capture_output=True, text=True,
                              timeout=20).stdout

    def _find_window(self, timeout: float = 90) -> str:
        """The app's window: mapped, titled "siamtrack - ...", and the largest such (Qt may keep a hidden window of
        the same title beside it, and xdotool lists both)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.stderr()
            ids = self.xdotool("search", "--onlyvisible", "--name", "^siamtrack - ").split()
            sized = [(self._geometry(i)[2] * self._geometry(i)[3], i) for i in ids]
            sized = [(area, i) for area, i in sized if area >= 100 * 100]
            if sized:
                time.sleep(0.3)  # mapped: give it a moment to draw its first frame
                return max(sized)[1]
            time.sleep(0.2)
        raise AssertionError("no siamtrack window appeared")

    def _geometry(self, window: str) -> tuple[int, int, int, int]:
        shell = self.xdotool("getwindowgeometry", "--shell", window).split()
        values = dict(line.split("=") for line in shell if "=" in line)
        try:
            return tuple(int(values[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))
        except KeyError:  # the window went away meanwhile
            return 0, 0, 0, 0

    def wait_for_prompt(self, count: int = 1, timeout: float = 60) -> None:
        """siamtrack prints 'siamtrack: draw ...' to stderr when it waits for a box to be drawn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stderr().count("siamtrack: draw") >= count:
                time.sleep(0.5)  # the window has the selection frame on it
                self.ensure_painted()
                return
            assert self.process.poll() is None, self.stderr()
            time.sleep(0.1)
        raise AssertionError(f"the selection prompt never came; windows: {self.windows()} (using {self.window}); "
                             f"stderr: {self.stderr()}")

    def ensure_painted(self, timeout: float = 10) -> None:
        """Wait until the window shows something. Under CPU load (3 runs in 30 with two busy loops beside), the Qt 5
        in OpenCV's wheels misses the window's MapNotify on a server without a window manager; it then never counts
        the window as exposed and never paints it: black for the whole run while keys and mouse work (its
        qt.qpa.events log has no XCB_MAP_NOTIFY in those runs and one in the others). Unmapping and mapping the
        window again, as a window manager does on minimise and restore, gives Qt the notification it missed:
        60 runs in 60 passed with this, 3 of them remapped."""
        if self._painted_within(2.0):
            return
        self.remapped += 1
        self.xdotool("windowunmap", "--sync", self.window)
        self.xdotool("windowmap", "--sync", self.window)
        assert self._painted_within(timeout), f"the window stays black; stderr: {self.stderr()}"

    def _painted_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not self.screenshot().any():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def key(self, name: str) -> None:
        self.xdotool("key", "--window", self.window, name)

    def drag(self, box) -> None:
        """Drag `box` in the selection view, as one xdotool command, and wait until the view shows it being drawn,
        so that no key is sent before the app has the drag.

        One command, because separate xdotool processes are separate X connections, and the X server orders
        requests only within a connection: when Xvfb gets no CPU for a while (two busy loops, or xdist's other
        worker), a later process's button press can be handled before an earlier one's pointer move. With the
        server stopped while a move and then a press were sent by two processes, 10 to 14 presses in 20 landed
        where the pointer was before the move; sent by one process, 20 in 20 landed after it
        (benchmarks/xdotool_order.sh). A press at the old place is outside the box, or outside the window, and
        the drag never shows (seen once in 15 runs of this file under load, and once in CI); before the wait
        below, a drag also came late once in 80 runs, and the "n" after it found no box. Sent as one command, a
        first drag still never showed once, in a clean-clone CI run (the view without any box), after 15 runs
        of this file under two busy loops had passed; not seen since in 9 runs of it beside tracking tests on
        two xdist workers and 3 clean-clone CI runs. Why is open: that failure's message now names where the
        pointer is and the window under it."""
        x, y, w, h = (int(round(v)) for v in box)
        steps = [["mousemove", "--window", self.window, x, y], ["mousedown", 1],
                 ["mousemove", "--window", self.window, x + w // 2, y + h // 2],
                 ["mousemove", "--window", self.window, x + w, y + h], ["mouseup", 1]]
        self.xdotool(*[arg for step in steps for arg in (*step, "sleep", 0.2)])
        self.wait_for_outline(box, BEING_DRAWN, "the dragged box")

    def wait_for_outline(self, box, rgb, what: str, timeout: float = 10) -> None:
        """Wait until most of `box`'s outline shows in colour `rgb` (the app has taken in what was sent so far)."""
        deadline = time.monotonic() + timeout
        while box_coverage(shot := self.screenshot(), box, np.array([rgb])) < 0.5:
            if time.monotonic() > deadline:
                cv2.imwrite(str(self.folder / "outline-missing.png"), shot[:, :, ::-1])
                pointer = " ".join(self.xdotool("getmouselocation", "--shell").split())
                raise AssertionError(f"{what} {box} never showed in the window (last screenshot: "
                                     f"{self.folder / 'outline-missing.png'}); pointer: {pointer}; windows: "
                                     f"{self.windows()} (using {self.window}, mapped again {self.remapped} "
                                     f"times); stderr: {self.stderr()}")
            time.sleep(0.1)

    def screenshot(self) -> np.ndarray:
        """The window's pixels, RGB."""
        from PIL import ImageGrab

        x, y, w, h = self._geometry(self.window)
        return np.asarray(ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=self.display).convert("RGB"))

    def close_window(self) -> None:
        """What a window manager does when the user clicks the close button: WM_DELETE_WINDOW."""
        from Xlib import X, display, protocol

        connection = display.Display(self.display)
        window = connection.create_resource_object("window", int(self.window))
        message = protocol.event.ClientMessage(
            window=window, client_type=connection.intern_atom("WM_PROTOCOLS"),
            data=(32, [connection.intern_atom("WM_DELETE_WINDOW"), X.CurrentTime, 0, 0, 0]))
        window.send_event(message, event_mask=X.NoEventMask)
        connection.flush()
        connection.close()

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the app did not exit; windows: {self.windows()} (using {self.window}); "
                                 f"stderr: {self.stderr()}") from None
        finally:
            if self.process.poll() is None:
                self.process.kill()

    def windows(self) -> str:
        """Every window titled siamtrack..., for failure messages."""
        ids = self.xdotool("search", "--name", "siamtrack").split()
        visible = set(self.xdotool("search", "--onlyvisible", "--name", "siamtrack").split())
        return "; ".join(f"{i}{' visible' if i in visible else ''} {self._geometry(i)}" for i in ids) or "none"

    def stderr(self) -> str:
        self.err.flush()
        return Path(self.err.name).read_text()


def keep_screenshot(name: str, image: np.ndarray) -> None:
    """With SIAMTRACK_SCREENSHOTS=DIR, the screenshots the checks used are kept there (the README's come from it)."""
    folder = os.environ.get("SIAMTRACK_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(Path(folder) / name), image[:, :, ::-1])


def box_coverage(image: np.ndarray, box, colours=BOX_COLOURS) -> float:
    """The share of the outline cv2.rectangle draws for `box` that has a box colour in the screenshot."""
    x, y, w, h = (int(round(v)) for v in box)
    height, width = image.shape[:2]
    points = [(x + i, y) for i in range(w)] + [(x + i, y + h) for i in range(w)] + \
             [(x, y + j) for j in range(h)] + [(x + w, y + j) for j in range(h)]
    inside = [(px, py) for px, py in points if 0 <= px < width and 0 <= py < height]
    return float(np.mean([(image[py, px] == colours).all(axis=1).any() for px, py in inside])) if inside else 0.0


def best_row(image: np.ndarray, rows) -> tuple[float, list[str]]:
    return max(((box_coverage(image, [float(v) for v in r[1:5]]), r) for r in rows), key=lambda t: t[0])


def video_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    return count


@needs_x
def test_show_pause_snapshot_quit(xdisplay, tmp_path):
    gt = np.loadtxt(GT, delimiter=",")
    boxes, video = tmp_path / "b.csv", tmp_path / "rec.mp4"
    # --snapshots names a folder that does not exist yet (relative to the app's working folder, tmp_path): the
    # first snapshot creates it.
    app = App(xdisplay, ["track", str(CLIP), "--box", ",".join(map(str, gt[0])), "--show", "--boxes", str(boxes),
                         "--record", str(video), "--snapshots", "shots/today"], tmp_path)
    app.ensure_painted()
    time.sleep(1.0)
    app.key("space")
    time.sleep(0.5)
    paused = app.screenshot()
    time.sleep(1.0)
    assert np.array_equal(paused, app.screenshot()), "the picture changed while paused"
    keep_screenshot("window-paused.png", paused)
    app.key("s")
    time.sleep(0.5)
    app.key("space")
    time.sleep(0.7)
    assert not np.array_equal(paused, app.screenshot()), "space did not resume"
    app.key("q")
    assert app.wait() == 0, app.stderr()

    rows = read_csv(boxes)
    assert 10 < len(rows) < len(gt), "files play at their frame rate with --show: q came before the end"
    coverage, row = best_row(paused, rows)
    assert coverage > 0.9, f"no CSV box is drawn in the paused window (best {coverage:.0%})"
    assert video_frames(video) == len(rows)
    snapshots = list((tmp_path / "shots" / "today").glob("siamtrack-*.png"))
    assert len(snapshots) == 1 and "snapshot saved" in app.stderr()
    assert best_row(cv2.imread(str(snapshots[0]))[:, :, ::-1], rows)[0] > 0.9


@needs_x
def test_select_reselect_and_close_the_window(xdisplay, tmp_path):
    gt = np.loadtxt(GT, delimiter=",")
    boxes, video = tmp_path / "b.csv", tmp_path / "rec.avi"
    app = App(xdisplay, ["track", str(CLIP), "--select", "--show", "--boxes", str(boxes), "--record", str(video)],
              tmp_path)
    app.wait_for_prompt()
    app.drag(gt[0])
    app.key("Return")
    time.sleep(1.5)
    app.key("r")
    app.wait_for_prompt(count=2)
    new_box = (40, 200, 80, 60)
    app.drag(new_box)
    app.key("Return")
    time.sleep(1.0)
    shot = app.screenshot()
    keep_screenshot("window-reselected.png", shot)
    app.close_window()
    assert app.wait() == 0, app.stderr()

    rows = read_csv(boxes)
    first = [float(v) for v in rows[0][1:5]]
    assert np.allclose(first, gt[0], atol=2), "the drawn box is not the first row"
    # The new target takes the next number: target 0 (the bag) before the re-selection, target 1 after it.
    after = next((i for i, r in enumerate(rows) if r[8] == "1"), None)
    assert after is not None and after > 5, "no tracking before the re-selection, or none after it"
    assert {r[8] for r in rows[:after]} == {"0"} and {r[8] for r in rows[after:]} == {"1"}
    # Its first update starts from the new box. The box is a patch of grass, which the network scores low and
    # follows loosely: its first step moved it 15 px once in 15 runs under load, so the check allows half its size.
    assert abs(float(rows[after][1]) - new_box[0]) < 40 and abs(float(rows[after][2]) - new_box[1]) < 30, rows[after]
    assert abs(float(rows[after - 1][1]) - new_box[0]) > 100, "the row before was still on the bag"
    assert best_row(shot, rows[after:])[0] > 0.9
    assert video_frames(video) == len(rows)


@needs_x
def test_select_several_targets(xdisplay, tmp_path):
    """Drag a box, n, drag another, ENTER: two targets, each drawn in its own colour (or a lost / uncertain one's),
    rows for both in the CSV. The clip: two textured objects crossing a textured background, there and back."""
    from conftest import two_target_video, write_video
    from tracker.drawing import TARGET_COLOURS

    # 17 frames: the two stay >= 12 px apart (from frame 21 on they overlap, and one box's outline would hide the
    # other's); there and back, long enough to pause while moving.
    frames, gt_a, gt_b = two_target_video(n_frames=17)
    order = (list(range(17)) + list(range(15, 0, -1))) * 4
    clip = write_video(tmp_path / "two.avi", [frames[i] for i in order])
    boxes, video = tmp_path / "b.csv", tmp_path / "rec.avi"
    app = App(xdisplay, ["track", str(clip), "--select", "--show", "--boxes", str(boxes), "--record", str(video)],
              tmp_path)
    app.wait_for_prompt()
    app.drag(gt_a[0])
    app.key("n")
    app.wait_for_outline(gt_a[0], TARGET_COLOURS[0][::-1], "the kept box #0")
    app.drag(gt_b[0])
    app.key("Return")
    time.sleep(1.5)
    app.key("space")
    time.sleep(0.5)
    shot = app.screenshot()
    keep_screenshot("window-two-targets.png", shot)
    app.key("q")
    assert app.wait() == 0, app.stderr()

    rows = read_csv(boxes)
    assert [r[8] for r in rows[:4]] == ["0", "1", "0", "1"] and len(rows) % 2 == 0
    assert np.allclose([float(v) for v in rows[0][1:5]], gt_a[0], atol=2), "the first drawn box is target 0"
    assert np.allclose([float(v) for v in rows[1][1:5]], gt_b[0], atol=2), "the second drawn box is target 1"
    for k in (0, 1):
        colours = np.array([TARGET_COLOURS[k][::-1]] + list(BOX_COLOURS[1:]))
        coverage = max(box_coverage(shot, [float(v) for v in r[1:5]], colours) for r in rows if r[8] == str(k))
        assert coverage > 0.9, f"target {k} is not drawn in its colour (best {coverage:.0%})"
    assert video_frames(video) == len(rows) // 2


@pytest.mark.parametrize("env", [{"DISPLAY": ":97"}, {"WAYLAND_DISPLAY": "wayland-97"}], ids=["x11", "wayland"])
@pytest.mark.parametrize("flag", ["--show", "--select"])
def test_an_unreachable_display_is_a_one_line_error(tmp_path, env, flag):
    clean = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run(console_script() + ["track", str(CLIP), "--box", "1,2,30,40", flag],
                          capture_output=True, text=True, env={**clean, **env, "XDG_RUNTIME_DIR": str(tmp_path)},
                          timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    # Qt's own reason comes with it (the probe's stderr), e.g. "qt.qpa.xcb: could not connect to display :97".
    assert_one_line_error(done.stderr, "cannot open a window", "--output", "(OpenCV said: ")


@needs_x
def test_webcam_command_on_a_live_stream(xdisplay, tmp_path):
    """`siamtrack webcam` opens the source, asks for the box with the mouse, tracks the newest frames, Esc quits."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from simulated_camera import SimulatedCamera

    gt = np.loadtxt(GT, delimiter=",")
    boxes = tmp_path / "w.csv"
    with SimulatedCamera(CLIP, loops=3) as camera:
        app = App(xdisplay, ["webcam", "--camera", camera.url, "--boxes", str(boxes)], tmp_path)
        app.wait_for_prompt()
        app.drag((100, 100, 60, 50))
        app.key("Return")
        time.sleep(2.0)
        app.key("Escape")
        assert app.wait() == 0, app.stderr()
    rows = read_csv(boxes)
    assert len(rows) > 20 and np.allclose([float(v) for v in rows[0][1:5]], (100, 100, 60, 50), atol=2)
    # The frames that arrived while the box was being drawn were not tracked: the second row is a later frame.
    assert int(rows[1][0]) > int(rows[0][0]) + 1
    assert " 0 frames dropped" not in app.stderr()


@needs_x
def test_webcam_demo_in_a_window(xdisplay, tmp_path):
    """The demo's window on a stream that would run for a minute: q must end it, long before."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from simulated_camera import SimulatedCamera

    gt = np.loadtxt(GT, delimiter=",")
    env = {**os.environ, "DISPLAY": xdisplay}
    with SimulatedCamera(CLIP, loops=8) as camera:
        process = subprocess.Popen([sys.executable, str(REPO / "demos" / "webcam.py"), "--camera", camera.url,
                                    "--box", ",".join(map(str, gt[0]))], env=env, cwd=tmp_path,
                                   stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline, wid = time.monotonic() + 90, None
        while wid is None and time.monotonic() < deadline and process.poll() is None:
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "webcam demo"], env=env,
                                   capture_output=True, text=True).stdout.split()
            wid = found[-1] if found else None
            time.sleep(0.3)
        assert wid, process.communicate()
        time.sleep(2.0)
        subprocess.run(["xdotool", "key", "--window", wid, "q"], env=env)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    tracked = int(re.search(r"(\d+) frames tracked", err).group(1))
    assert 10 < tracked < camera.frames


def test_snapshots_naming_a_file_is_a_one_line_error(tmp_path):
    """A missing --snapshots folder is made by the first snapshot (test_show_pause_snapshot_quit); a file there is
    refused before any window opens."""
    taken = tmp_path / "notes.txt"
    taken.write_text("mine\n")
    done = subprocess.run(console_script() + ["track", str(CLIP), "--box", "1,2,30,40", "--show", "--snapshots",
                                              str(taken)], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert_one_line_error(done.stderr, f"--snapshots {taken} is a file, not a folder")
    assert taken.read_text() == "mine\n"


# -- what the window draws, without a window ---------------------------------------------------------------------


def _ink(text: str, scale: float) -> int:
    """How many pixels `text` lights at this scale when nothing cuts it (drawn alone on a large canvas)."""
    from tracker.drawing import FONT

    canvas = np.zeros((200, 2000, 3), np.uint8)
    cv2.putText(canvas, text, (20, 100), FONT, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return int(np.count_nonzero(canvas.any(axis=2)))


def _drawn_whole(image: np.ndarray, labels) -> bool:
    """On a black frame, the only lit pixels are the labels' text: all of them there means none is cut by the
    frame's edge or covered by another label's band."""
    from tracker.drawing import fitted_scale

    width = image.shape[1]
    expected = sum(_ink(text, fitted_scale(text, scale, width)) for text, scale in labels)
    return int(np.count_nonzero(image.any(axis=2))) == expected


def test_status_line_and_key_help_fit_a_480_px_frame():
    from tracker.viewer import KEYS_HELP, draw_overlay, status_line

    frame = np.zeros((360, 480, 3), np.uint8)
    status = status_line(12345, 118.0, 117.0, 1234)  # the widest a long live run gives
    out = draw_overlay(frame, {}, status, show_help=True)
    assert _drawn_whole(out, [(status, 0.5), (KEYS_HELP, 0.45)])
    wide = np.zeros((360, 960, 3), np.uint8)  # room enough: the scale it was asked for
    assert _drawn_whole(draw_overlay(wide, {}, status), [(status, 0.5)])
    assert _ink(status, 0.5) == np.count_nonzero(draw_overlay(wide, {}, status).any(axis=2))


def test_selection_prompt_keeps_its_descenders():
    """The selection keys sit above the prompt: neither band covers the other's g, p and y (it read "draa a box")."""
    from tracker.viewer import SELECT_HELP, draw_selection

    prompt = "draw the target, then ENTER (n: another target; c cancels)"
    for width in (480, 640):
        out = draw_selection(np.zeros((360, width, 3), np.uint8), [], None, prompt)
        assert _drawn_whole(out, [(SELECT_HELP, 0.45), (prompt, 0.5)]), f"a label is cut at {width} px"


class _FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    perf_counter = monotonic


class _FakeViewer:
    """Records whether each frame shown has the key help on it (drawn at the bottom left on a black frame)."""

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        self.help_shown: list[bool] = []

    def show(self, image) -> None:
        self.help_shown.append(bool(image[-12:, :200].any()))

    def poll(self, wait_ms: int = 1):
        return self.keys.pop(0) if self.keys else None


def test_key_help_shows_once_tracking_starts_and_again_on_h(monkeypatch):
    """The window opens for the selection, which may take long: the help's 6 s start at the first tracked frame."""
    from types import SimpleNamespace

    import tracker.viewer as viewer_module

    clock = _FakeClock()
    monkeypatch.setattr(viewer_module, "time", clock)
    viewer = _FakeViewer()
    control = viewer_module.WindowControl(viewer, SimpleNamespace(dropped=0, skip_pending=lambda: None), None)
    frame = SimpleNamespace(index=0, image=np.zeros((240, 320, 3), np.uint8))

    def shown_at(seconds: float, key: str | None = None) -> list[bool]:
        clock.now, viewer.keys, viewer.help_shown = 1000.0 + seconds, [key] if key else [], []
        control.after_frame(frame, {})
        return viewer.help_shown

    clock.now = 1000.0  # the window opened; the box is drawn for the next 20 s
    assert shown_at(20.0) == [True]  # tracking starts
    assert shown_at(25.9) == [True]
    assert shown_at(26.1) == [False]
    assert shown_at(40.0, "help") == [False, True]  # h: drawn again at once...
    assert shown_at(45.9) == [True]  # ...for 6 s
    assert shown_at(46.1) == [False]
