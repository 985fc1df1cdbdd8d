"""The per-frame answer every tracker in this project gives (ours and the OpenCV peers)."""
from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError

Box = tuple[float, float, float, float]  # x, y, w, h in 0-based pixels


@dataclass(frozen=True)
class TrackResult:
    box: Box
    score: float
    lost: bool


def parse_box(text: str) -> Box:
    """x,y,w,h from the command line (--box), or a UserError with an example."""
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UserError(f"--box must be x,y,w,h numbers, e.g. --box 120,80,60,40; got {text!r}") from None
    if len(values) != 4:
        raise UserError(f"--box needs four numbers x,y,w,h; got {len(values)} in {text!r}")
    return values  # type: ignore[return-value]
