"""The per-frame answer every tracker in this project gives (ours and the OpenCV peers)."""
from __future__ import annotations

from dataclasses import dataclass

Box = tuple[float, float, float, float]  # x, y, w, h in 0-based pixels


@dataclass(frozen=True)
class TrackResult:
    box: Box
    score: float
    lost: bool
