"""A simulated live camera: an MJPEG-over-HTTP server on 127.0.0.1 that serves a clip in real time.

IP cameras and phone camera apps stream MJPEG over HTTP (multipart/x-mixed-replace), which OpenCV opens as a
`http://...` source. This server plays a clip at its own frame rate whether or not anyone keeps up, as a camera
does, and stamps each frame with its number (a barcode in the top rows), so that the receiver can tell which
frame it got and how old it was: `sent_at[n]` is when frame n went out (time.monotonic()).

    python benchmarks/simulated_camera.py ../shared/data/videos/bag.avi --port 8090
    siamtrack track http://127.0.0.1:8090/stream.mjpg --show --select
"""
from __future__ import annotations

import argparse
import http.server
import socket
import threading
import time
from pathlib import Path

import cv2
import numpy as np

BARCODE_BITS = 16
BARCODE_CELL = 8  # px: a cell survives JPEG at quality 90 with room to spare
BARCODE_ROWS = 8


def stamp(frame: np.ndarray, number: int) -> np.ndarray:
    """The frame with `number` as a black/white barcode over its top-left BARCODE_ROWS x 128 pixels."""
    out = frame.copy()
    for bit in range(BARCODE_BITS):
        value = 255 if (number >> bit) & 1 else 0
        out[:BARCODE_ROWS, bit * BARCODE_CELL:(bit + 1) * BARCODE_CELL] = value
    return out


def read_stamp(frame: np.ndarray) -> int:
    """The number stamp() wrote into this frame (after JPEG round trips)."""
    number = 0
    for bit in range(BARCODE_BITS):
        cell = frame[1:BARCODE_ROWS - 1, bit * BARCODE_CELL + 2:(bit + 1) * BARCODE_CELL - 2]
        if cell.mean() > 127:
            number |= 1 << bit
    return number


class SimulatedCamera:
    """Serves `clip` at http://127.0.0.1:PORT/stream.mjpg, `loops` times over, at the clip's frame rate (or `fps`).

    The frames are encoded before serving starts, so the server never falls behind its own clock. One client at a
    time; each client gets the stream from frame 0 on connecting. Use as a context manager.
    """

    def __init__(self, clip: str | Path, fps: float | None = None, loops: int = 1, port: int = 0,
                 max_frames: int | None = None, stall_after: int | None = None, lead_in: int = 0) -> None:
        """stall_after: send this many frames, then nothing more while keeping the connection open (a camera
        that hung). lead_in: send frame 0 this many times first (a still scene before the clip's motion starts,
        so that a box for frame 0 is still right when a client starts tracking a little later); stamps and
        sent_at then count the sends, and clip_frame(n) is the clip frame of send n."""
        capture = cv2.VideoCapture(str(clip))
        if not capture.isOpened():
            raise FileNotFoundError(f"cannot read {clip}")
        self.fps = fps or capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.jpegs: list[bytes] = []
        number = 0
        while max_frames is None or number < max_frames:
            ok, frame = capture.read()
            if not ok:
                break
            self.jpegs.append(cv2.imencode(".jpg", stamp(frame, number), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
            number += 1
        capture.release()
        self.loops = loops
        self.stall_after = stall_after
        self.lead_in = lead_in
        self._closing = threading.Event()
        self.sent_at: dict[int, float] = {}  # send number (the stamp) -> time.monotonic() it was sent
        self.finished = threading.Event()
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server API)
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    camera._serve(self.wfile)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    camera.finished.set()

            def log_message(self, *args):  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def frames(self) -> int:
        return len(self.jpegs)

    def clip_frame(self, number: int) -> int:
        """The clip frame (0-based) that send `number` showed."""
        return max(number - self.lead_in, 0) % len(self.jpegs)

    def _serve(self, out) -> None:
        interval = 1.0 / self.fps
        start = time.monotonic()
        total = self.lead_in + self.loops * len(self.jpegs)
        for number in range(total):
            if self.stall_after is not None and number >= self.stall_after:
                self._closing.wait()
                return
            due = start + number * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            # Stamped with the send number, which also names the clip frame when there is no lead-in or loop.
            jpeg = self.jpegs[self.clip_frame(number)] if number < len(self.jpegs) and not self.lead_in else \
                self._encode(self.clip_frame(number), number)
            self.sent_at[number] = time.monotonic()  # before sending: the client may look it up at once
            out.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
            out.write(jpeg)
            out.write(b"\r\n")
            out.flush()

    def _encode(self, clip_frame: int, number: int) -> bytes:
        frame = cv2.imdecode(np.frombuffer(self.jpegs[clip_frame], np.uint8), cv2.IMREAD_COLOR)
        return cv2.imencode(".jpg", stamp(frame, number), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()

    def __enter__(self) -> "SimulatedCamera":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", help="video file to serve")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--fps", type=float, help="frame rate (default: the clip's)")
    parser.add_argument("--loops", type=int, default=1000, help="play the clip this many times")
    args = parser.parse_args()
    with SimulatedCamera(args.clip, fps=args.fps, loops=args.loops, port=args.port) as camera:
        print(f"serving {args.clip} ({camera.frames} frames at {camera.fps:g} fps) at {camera.url}; Ctrl-C stops")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
