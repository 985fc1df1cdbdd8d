"""Where a frame's time goes: the tracking loop marks the end of each stage, the engine says how long its network
took, and `stage_times` splits the frame into STAGES (what `siamtrack bench` reports)."""
from __future__ import annotations

import time

STAGES = ("crop", "backbone", "correlation", "postprocess")  # the keys of a tracker's stage_times


class StageTimer:
    """One frame's clock: start(), then mark() after cropping, after the network run and after moving the boxes
    (a mark per stage boundary; later marks of a frame, e.g. the tile search while lost, extend the last stage)."""

    def __init__(self) -> None:
        self._marks: list[float] = []
        self.network_seconds: float | None = None  # the engine's own figure for its backbone, when it has one

    def start(self) -> None:
        self._marks = [time.perf_counter()]
        self.network_seconds = None

    def mark(self) -> None:
        self._marks.append(time.perf_counter())

    def stage_times(self) -> dict[str, float]:
        """Seconds per stage of the frame just timed. Engines that run backbone and correlation as one call report
        it all as "backbone"; "correlation" is the rest of the network call plus turning responses into boxes; the
        tile search while lost is "postprocess"."""
        t0, t1, t2, t3, t4 = self._marks
        backbone = self.network_seconds if self.network_seconds is not None else t2 - t1
        return {"crop": t1 - t0, "backbone": backbone, "correlation": (t3 - t1) - backbone, "postprocess": t4 - t3}
