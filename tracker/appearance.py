"""A second opinion for the verifier: does the box still look like the first box to a network that was never
trained on tracking?

The siamese trunk's features are what the tracker matched on, so when the tracker takes a look-alike they agree
with it. An ImageNet classifier's features (EfficientNet-Lite0 up to stage 5, `appearance.onnx`, made by
`siamtrack export-appearance`) were learned for another task and err elsewhere. The cosine between the first
box's and the current box's features, pooled over the central 4x4 cells of the 127 px exemplar crop, separates
val-hard's good from off-target tracking frames at AUROC 0.97 on its own (the verifier's trained head: 0.89).
A verifier file may ask for the first box in several quarter turns (`calibrate-verifier --turns`; its crop
rotated by 0, 90, 180 and 270 degrees), the cosine being the best of them: a target that rolls over (a
motorbike's somersault) then still looks like itself, at the cost of more runs at init only. The shipped file
uses one turn: four made a stranger after a cut look alike too often (docs/lost-and-found.md).

It costs one small network run per look (about 3 ms on one CPU core), so the tracker asks only when the
verifier is unsure (`appearance_gate`, tracker/config.py), and the verifier's appearance calibration turns the
evidence plus this cosine into the score (tracker/verifier.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .crop import context_side, crop_square, mean_colour
from .errors import UserError
from .paths import weights_dir
from .presence import redetect_threshold

APPEARANCE_FILE = "appearance.onnx"
CROP_SIZE = 127  # the exemplar crop, with SiamFC's context
CONTEXT = 0.5
CENTRE = slice(2, 6)  # the central 4x4 of the 8x8 feature map: the box, without most of its context


class AppearanceNet:
    """The ImageNet trunk on onnxruntime (CPU, one thread): features of a box's exemplar crop."""

    def __init__(self, path: str | Path) -> None:
        from .onnx_engine import _session_options, open_graph

        self.path = Path(path)
        self._session = open_graph(self.path, _session_options(1, False), ["CPUExecutionProvider"],
                                   "; re-make it with `siamtrack export-appearance`")
        self._input = self._session.get_inputs()[0].name

    def features(self, frame: np.ndarray, center, size, turns: int = 1) -> np.ndarray:
        """(C, 8, 8) features of the exemplar crop around a box of `size` (w, h) centred at `center` (x, y); with
        turns > 1, (turns, C, 8, 8): the crop turned by k quarter turns, k = 0 .. turns - 1."""
        w, h = float(size[0]), float(size[1])
        crop = crop_square(frame, (float(center[0]), float(center[1])), context_side(w, h, CONTEXT), CROP_SIZE,
                           mean_colour(frame))
        runs = [self._run(np.rot90(crop, k)) for k in range(turns)]
        return runs[0] if turns == 1 else np.stack(runs)

    def _run(self, crop: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
        return self._session.run(None, {self._input: batch})[0][0]


def similarity(first: np.ndarray, current: np.ndarray) -> float:
    """Cosine of the two boxes' features (C, 8, 8), each averaged over the central 4x4 cells; with the first box
    in several turns (T, C, 8, 8), the best cosine of the T."""
    a = np.asarray(first)[..., CENTRE, CENTRE].mean(axis=(-2, -1)).reshape(-1, first.shape[-3])
    b = current[:, CENTRE, CENTRE].mean(axis=(1, 2))
    norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b), 1e-12)
    return float(np.max(a @ b / norms))


class AppearanceCheck:
    """What the tracker does with the network: the first box's features at init, and a look at a verified box
    the verifier is unsure of (score under `gate`), scored by the verifier's appearance calibration. `record`:
    look at every box and keep the cosine, never changing a score (calibrate-verifier's collection)."""

    def __init__(self, net: AppearanceNet, gate: float, verifier, record: bool = False, turns: int = 1,
                 redetect_line: float | None = None) -> None:
        self.net, self.gate, self.verifier, self.record, self.turns = net, gate, verifier, record, turns
        self.redetect_line = redetect_line  # redetect_look: a lost target's place scored this or more is looked at

    def first(self, frame: np.ndarray, center, size) -> np.ndarray:
        """The first box's features, in `turns` quarter turns (as the appearance calibration was fitted)."""
        return self.net.features(frame, center, size, self.turns)

    def look(self, frame: np.ndarray, looks: np.ndarray | None, center, size, score: float,
             evidence: np.ndarray, lost: bool = False) -> tuple[float, np.ndarray]:
        """(score, evidence) of a verified box: with a look, the appearance calibration's score and the evidence
        with the cosine appended; without, as they came and NaN appended. `lost`: the box is a lost target's
        search, which with redetect_line is also looked at when it scores at that line."""
        unsure = score < self.gate or (lost and self.redetect_line is not None and score >= self.redetect_line)
        if looks is None or not (unsure or self.record):
            return score, np.append(evidence, np.nan)
        cosine = similarity(looks, self.net.features(frame, center, size))
        if unsure:
            score = self.verifier.appearance_probability(evidence, cosine)
        return score, np.append(evidence, cosine)


def appearance_check_for(engine, verifier, config) -> AppearanceCheck | None:
    """The tracker's appearance check with appearance_gate > 0 (and the verifier on); else None."""
    if verifier is None or not config.appearance_gate:
        return None
    if not verifier.has_appearance:
        raise UserError("appearance_gate > 0 needs a verifier.npz with an appearance calibration: fit one with "
                        "`siamtrack calibrate-verifier DATASET --appearance`, or set appearance_gate=0")
    return AppearanceCheck(find_appearance(engine), config.appearance_gate, verifier,
                           turns=verifier.appearance_turns,
                           redetect_line=redetect_threshold(config) if config.redetect_look else None)


def find_appearance(engine) -> AppearanceNet:
    """appearance.onnx beside the engine's weights, else the shipped one (it does not depend on the tracking
    weights); else a UserError saying how to make it."""
    folder = getattr(engine, "weights_folder", None)
    beside = [Path(folder) / APPEARANCE_FILE] if folder is not None else []
    for candidate in beside + [weights_dir() / APPEARANCE_FILE]:
        if candidate.is_file():
            return AppearanceNet(candidate)
    raise UserError(f"appearance_gate > 0 needs {APPEARANCE_FILE} beside the weights or in the shipped weights: "
                    "make it with `siamtrack export-appearance --out FOLDER`, or set appearance_gate=0")
