"""The target verifier: is the box on the target? A per-frame estimate of P(IoU >= 0.5) that the state machine
(presence.py) decides on.

A siamese response says "something here looks more like the template than anything around it": its probability
stays near 1 on a look-alike, on background after the target left, on the other pedestrian. The verifier weighs
more evidence, all of it already computed by the network run of the frame:

* the shape of the response: the raw peak logit, its margin over the best cell outside the peak's 5x5
  neighbourhood (a second peak: a distractor), and its peak-to-sidelobe ratio;
* appearance: a small head (`siamtrack train-verifier`, tracker/training/verifier.py) comparing the first
  template's trunk features with the search features in the 8x8 window under the box, cell by cell after a
  learned projection, trained on the crop cache with the scene's own background and other videos' targets as
  negatives.

A logistic map fitted on tracking runs of one validation set (`siamtrack calibrate-verifier`, which adds made
absences to the natural failures) turns the evidence into a probability; the other set confirms it. All numpy:
both engines give the same features and logits, so one verifier serves both.

A second map, the appearance calibration, adds one more piece of evidence where the tracker asks for it
(`appearance_gate`): the cosine of an ImageNet network's features of the box and of the first box
(tracker/appearance.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .paths import weights_dir

WINDOW = 8  # cells: the exemplar's feature map side (127 px at stride 16)
VERIFIER_FILE = "verifier.npz"
EVIDENCE = ("head logit", "response log-odds", "peak logit", "peak margin", "peak-to-sidelobe ratio")
_ARRAYS = ("projection", "hidden_weight", "hidden_bias", "out_weight", "out_bias", "calibration")
APPEARANCE_EVIDENCE = "appearance cosine"


def _logistic(z: float) -> float:
    """A calibration's probability from its log-odds (clamped: math.exp must not overflow)."""
    return 1 / (1 + math.exp(-min(max(z, -60.0), 60.0)))


def window_origin(offset_px: np.ndarray, stride: int, feature_side: int) -> np.ndarray:
    """Top-left cell (fractional x, y) of the 8x8 feature window centred `offset_px` crop pixels from the search
    crop's centre. A 255 px crop's 16x16 map holds the centred 127 px exemplar at cells 4..11 (measured: the
    cell-wise cosine to the template's own features peaks there); clamped inside the map."""
    centred = (feature_side - WINDOW) / 2
    return np.clip(centred + np.asarray(offset_px, float) / stride, 0, feature_side - WINDOW)


def feature_window(features: np.ndarray, origin) -> np.ndarray:
    """(C,8,8) window of features (C,H,W) at fractional top-left cell `origin` (x, y), bilinear."""
    x, y = float(origin[0]), float(origin[1])
    x0, y0 = int(math.floor(x)), int(math.floor(y))
    fx, fy = x - x0, y - y0
    x1, y1 = min(x0 + 1, features.shape[2] - WINDOW), min(y0 + 1, features.shape[1] - WINDOW)

    def at(row, col):
        return features[:, row:row + WINDOW, col:col + WINDOW]

    return ((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1)))


def box_window(features: np.ndarray, moved_centre, crop_centre, crop_side: float, model) -> np.ndarray:
    """The (C,8,8) window of a search crop's features (C,H,W) under a box centred at `moved_centre` (frame pixels),
    the crop cut around `crop_centre`, `crop_side` frame pixels a side; model: the network's ModelConfig
    (search_size, stride)."""
    offset = (np.asarray(moved_centre, float) - crop_centre) * model.search_size / crop_side
    return feature_window(features, window_origin(offset, model.stride, features.shape[-1]))


def response_shape(logits: np.ndarray) -> np.ndarray:
    """(peak logit, its margin over the best cell outside the peak's 5x5 neighbourhood, peak-to-sidelobe ratio)
    of a box rule's logits ((R,R), or (S,R,R) for several crops: the crop holding the peak)."""
    maps = np.asarray(logits, np.float64).reshape(-1, *np.shape(logits)[-2:])
    crop, row, col = np.unravel_index(int(np.argmax(maps)), maps.shape)
    cells = maps[crop]
    peak = float(cells[row, col])
    outside = np.ones(cells.shape, bool)
    outside[max(row - 2, 0):row + 3, max(col - 2, 0):col + 3] = False
    second = float(cells[outside].max()) if outside.any() else peak
    return np.array([peak, peak - second, (peak - cells.mean()) / (cells.std() + 1e-6)])


def _normalised(cells: np.ndarray) -> np.ndarray:
    return cells / np.maximum(np.linalg.norm(cells, axis=0, keepdims=True), 1e-6)


def head_inputs(projection: np.ndarray, template: np.ndarray, window: np.ndarray) -> np.ndarray:
    """What the head's MLP sees: the cosine of the projected template and window cell by cell (64 values) and of
    their projected means (1). projection: (D, C); template, window: (C, 8, 8)."""
    channels = template.shape[0]
    t = projection @ template.reshape(channels, -1)
    w = projection @ window.reshape(channels, -1)
    cells = (_normalised(t) * _normalised(w)).sum(axis=0)
    pooled = float(_normalised(t.mean(axis=1, keepdims=True))[:, 0] @ _normalised(w.mean(axis=1, keepdims=True))[:, 0])
    return np.concatenate([cells, [pooled]]).astype(np.float32)


@dataclass(frozen=True)
class Verifier:
    """A trained head and its calibration: P = sigmoid(calibration . (head logit, response log-odds, peak logit,
    peak margin, peak-to-sidelobe ratio, 1)). A 3-long calibration is (head, response, bias) alone."""

    projection: np.ndarray  # (D, C)
    hidden_weight: np.ndarray  # (H, 65)
    hidden_bias: np.ndarray  # (H,)
    out_weight: np.ndarray  # (H,)
    out_bias: np.ndarray  # ()
    calibration: np.ndarray  # (6,): the weights of EVIDENCE and a bias
    weights_sha256: str = ""  # the network weights whose features it was trained on
    # (7,): the weights of EVIDENCE, APPEARANCE_EVIDENCE and a bias; empty: no appearance check
    appearance_calibration: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # how many quarter turns of the first box the appearance cosine takes the best of (1: files from before turns)
    appearance_turns: int = 1

    def logit(self, template: np.ndarray, window: np.ndarray) -> float:
        """The head's log-odds that `window` (C,8,8) shows the object of `template` (C,8,8)."""
        x = head_inputs(self.projection, template, window)
        hidden = np.maximum(self.hidden_weight @ x + self.hidden_bias, 0)
        return float(hidden @ self.out_weight + self.out_bias)

    def evidence(self, head_logit: float, response: float, logits: np.ndarray) -> np.ndarray:
        """What the calibration weighs, in EVIDENCE's order."""
        response = min(max(float(response), 1e-6), 1 - 1e-6)
        return np.concatenate([[head_logit, math.log(response / (1 - response))], response_shape(logits)])

    def probability(self, evidence: np.ndarray) -> float:
        """The calibrated P(box on target) from the evidence."""
        weights = np.asarray(self.calibration, np.float64)
        if len(weights) == 3:  # head, response, bias
            weights = np.array([weights[0], weights[1], 0, 0, 0, weights[2]])
        return _logistic(float(weights[:-1] @ evidence + weights[-1]))

    def score_window(self, identity: np.ndarray, window: np.ndarray, response: float,
                     logits: np.ndarray) -> tuple[float, np.ndarray]:
        """(P(the target is there), the evidence) for a box whose search features are `window` (C,8,8: box_window)
        in a search crop whose response is `logits`, the box rule having scored it `response`. identity: the first
        template's features (C,8,8)."""
        evidence = self.evidence(self.logit(identity, window), response, logits)
        return self.probability(evidence), evidence

    def score_move(self, identity: np.ndarray, features: np.ndarray, moved_centre, crop_centre, crop_side: float,
                   model, response: float, logits: np.ndarray) -> tuple[float, np.ndarray]:
        """score_window for a box the box rule moved to `moved_centre` (frame pixels) in a search crop cut around
        `crop_centre`, `crop_side` frame pixels a side, whose trunk features are `features` (C,H,W)."""
        window = box_window(features, moved_centre, crop_centre, crop_side, model)
        return self.score_window(identity, window, response, logits)

    @property
    def has_appearance(self) -> bool:
        return len(self.appearance_calibration) == len(EVIDENCE) + 2

    def appearance_probability(self, evidence: np.ndarray, cosine: float) -> float:
        """P(box on target) from the evidence (EVIDENCE's order) and the appearance cosine."""
        weights = np.asarray(self.appearance_calibration, np.float64)
        return _logistic(float(weights[:-2] @ np.asarray(evidence[:len(EVIDENCE)]) + weights[-2] * cosine
                               + weights[-1]))

    def with_calibration(self, calibration, appearance_calibration=None, appearance_turns: int | None = None
                         ) -> "Verifier":
        """A copy with a new calibration; the appearance calibration (and its turns) is kept unless one is given."""
        appearance = self.appearance_calibration if appearance_calibration is None else appearance_calibration
        turns = self.appearance_turns if appearance_turns is None else int(appearance_turns)
        return Verifier(self.projection, self.hidden_weight, self.hidden_bias, self.out_weight, self.out_bias,
                        np.asarray(calibration, np.float64), self.weights_sha256,
                        np.asarray(appearance, np.float64), turns)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        np.savez(path, **{k: getattr(self, k) for k in _ARRAYS}, weights_sha256=np.array(self.weights_sha256),
                 appearance_calibration=self.appearance_calibration, appearance_turns=np.array(self.appearance_turns))
        return path


def load_verifier(path: str | Path) -> Verifier:
    """A verifier file (numpy arrays only: read without pickle)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in _ARRAYS}
            sha = str(data["weights_sha256"]) if "weights_sha256" in data else ""
            appearance = np.asarray(data["appearance_calibration"], np.float64) if "appearance_calibration" in data \
                else np.zeros(0)
            turns = int(data["appearance_turns"]) if "appearance_turns" in data else 1
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"cannot read the verifier {path}: {exc}; re-make it with `siamtrack train-verifier`") from None
    if not 1 <= turns <= 4:
        raise UserError(f"cannot read the verifier {path}: appearance_turns must be from 1 to 4, got {turns}; "
                        "re-fit it with `siamtrack calibrate-verifier DATASET --appearance`")
    return Verifier(**arrays, weights_sha256=sha, appearance_calibration=appearance, appearance_turns=turns)


def find_verifier(engine) -> Verifier:
    """The verifier.npz beside the engine's weights; else the shipped one when these are the shipped weights (the
    same sha256: an exported copy of the shipped checkpoint, a copied .pt), so that the stored verify=1 travels
    with the weights; else a UserError saying how to get one."""
    folder = getattr(engine, "weights_folder", None)
    weights = getattr(engine, "weights_sha256", "")
    beside = Path(folder) / VERIFIER_FILE if folder is not None else None
    if beside is not None and beside.is_file():
        return _checked(load_verifier(beside), weights, beside)
    shipped = weights_dir() / VERIFIER_FILE
    if weights and shipped.is_file():
        verifier = load_verifier(shipped)
        if verifier.weights_sha256 == weights:
            return verifier
    raise UserError(f"verify=1 needs the target verifier {VERIFIER_FILE} beside the weights"
                    f"{f' (in {folder})' if folder else ''}: make it with `siamtrack train-verifier`, or set "
                    "verify=0")


def _checked(verifier: Verifier, weights: str, path: Path) -> Verifier:
    """A verifier file refuses to serve weights other than those it was made for (when both say which)."""
    made_for = verifier.weights_sha256
    if made_for and weights and made_for != weights:
        raise UserError(f"{path} was trained on other weights' features (sha256 {made_for[:12]}, these are "
                        f"{weights[:12]}): re-make it with `siamtrack train-verifier --weights ...`, or set verify=0")
    return verifier


def verifier_for(engine, rule, verifier: Verifier | None = None) -> Verifier:
    """The verifier a tracker on `engine` with box rule `rule` uses with verify=1: the one given, else the file
    beside the weights."""
    if not engine.has_features:
        raise UserError("these weights were exported without the search features the verifier reads: re-export "
                        "them with `siamtrack export`, or set verify=0")
    if rule.crops_per_target != 1:  # it reads the one search crop the box was found in, at that crop's scale
        raise UserError(f"the verifier reads one search crop per target; box rule {rule.name!r} cuts "
                        f"{rule.crops_per_target}: use a model with a box head (box_position 'box' or 'peak') or "
                        "set verify=0")
    return verifier if verifier is not None else find_verifier(engine)
