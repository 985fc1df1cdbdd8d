"""The tracking loop: crop around the last position, score the crop(s) against the cached template, move the box.

Two modes, chosen by the network: with the SiamFC head alone, a small scale pyramid of crops (Bertinetto et al.
2016); with a box head (in the style of SiamFC++, Xu et al. 2020), one crop, whose peak cell also predicts the size.

OpenCV's tracker API (init / update) plus what it lacks: a score and an honest "lost" flag. All state lives in the
SiamTracker instance, so any number of targets can be tracked in one process, sharing one network.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .config import TrackerConfig
from .crop import context_side, crop_square, mean_colour
from .errors import UserError
from .presence import Presence, tile_centres
from .result import TrackResult, check_box

STAGES = ("crop", "backbone", "correlation", "postprocess")  # the keys of SiamTracker.stage_times


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """HxWx3 BGR uint8 from what users pass: BGR, grayscale (HxW or HxWx1) or BGRA."""
    if not isinstance(frame, np.ndarray):
        raise UserError(f"frame must be a numpy array (HxWx3 BGR uint8), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise UserError(f"frame must be uint8 (as cv2.imread / VideoCapture give), got {frame.dtype}")
    if frame.size == 0:
        raise UserError(f"frame is empty (shape {frame.shape}): a failed cv2 read gives this; check the "
                        "capture's ok flag before passing the frame")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise UserError(f"frame must be HxW, HxWx3 or HxWx4, got shape {frame.shape}")


@dataclass
class _TargetState:
    center: np.ndarray  # (cx, cy) in frame pixels
    size: np.ndarray  # (w, h)
    search_side: float  # side of the search region in frame pixels
    min_side: float
    max_side: float
    fill: tuple[float, ...]  # mean colour of the first frame, for padding
    template: object  # engine-specific template features
    frame_shape: tuple[int, int]  # (height, width) of the init frame: every later frame must match it


class SiamTracker:
    def __init__(self, engine, config: TrackerConfig | None = None) -> None:
        """engine: a network runner (TorchEngine, or the ONNX one) with template(), search() and .config."""
        self.engine = engine
        self.config = config or TrackerConfig()
        self.stage_times: dict[str, float] = {}
        self._state: _TargetState | None = None
        self._presence = Presence()

        c, m = self.config, engine.config
        self.has_box_head = bool(m.box_head_channels)
        if self.has_box_head and c.num_scales != 1:
            raise UserError(f"this model has a box head and tracks with one crop per frame: num_scales must be 1, "
                            f"got {c.num_scales}")
        self._scale_factors = c.scale_step ** (np.arange(c.num_scales) - (c.num_scales - 1) / 2)
        up = c.response_upsample * engine.response_size
        hann = np.hanning(up)
        window = np.outer(hann, hann)
        self._window = (window / window.sum()).astype(np.float32)
        self._upsampled_size = up
        # Frame pixels per upsampled-response cell, divided by the search side: the displacement factor.
        self._cell = m.stride / c.response_upsample / m.search_size
        self._crops = np.empty((c.num_scales, m.search_size, m.search_size, 3), np.uint8)

    @classmethod
    def from_pretrained(cls, weights: str | None = None, device: str = "auto", engine: str = "auto",
                        threads: int | None = None, **tracker_overrides) -> "SiamTracker":
        """The shipped default model (or given weights); keyword arguments override the tracking hyperparameters.

        engine: "onnx" runs onnxruntime on an exported pair (`weights`: a folder holding template.onnx and
        search.onnx, default the shipped one; no PyTorch needed); "torch" runs PyTorch on a checkpoint
        (`weights`: a .pt file, default the shipped one); "auto" picks onnx when onnxruntime is installed and
        `weights` is not a .pt checkpoint, else torch. The tracker config comes with the weights either way.
        threads: onnxruntime's intra-op threads (default: the physical cores); several trackers in separate
        processes on one machine should split the cores between them.
        """
        from .engines import pick_engine

        kind = pick_engine(engine, weights)
        if kind == "onnx":
            from .onnx_engine import OnnxEngine

            runner = OnnxEngine.from_dir(weights, device, threads=threads)
            config = runner.tracker_config
        else:
            try:
                from .checkpoint import load_model
                from .torch_engine import TorchEngine
            except ImportError as exc:
                if exc.name != "torch" and not (exc.name or "").startswith("torch."):
                    raise
                raise UserError("the torch engine needs PyTorch: pip install 'siamtrack[train]', or use "
                                "engine='onnx' (onnxruntime) with the exported weights") from None
            model, config, _ = load_model(weights)
            runner = TorchEngine(model, device)
        try:
            config = config.replace(**tracker_overrides)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return cls(runner, config)

    # -- API -------------------------------------------------------------------------------------------------

    def as_opencv(self):
        """This tracker behind OpenCV's tracker interface: update(frame) -> (ok, (x, y, w, h)) with ints."""
        from .cv2_compat import OpenCVTracker

        return OpenCVTracker(self)

    def init(self, frame: np.ndarray, box) -> None:
        frame = as_bgr(frame)
        x, y, w, h = check_box(box, frame.shape)
        c, m = self.config, self.engine.config
        center = np.array([x + w / 2, y + h / 2])
        exemplar_side = context_side(w, h, c.context_amount)
        search_side = exemplar_side * m.search_size / m.exemplar_size
        fill = mean_colour(frame)
        exemplar = crop_square(frame, (center[0], center[1]), exemplar_side, m.exemplar_size, fill)
        template = self.engine.template(exemplar[None])
        self._state = _TargetState(
            center=center,
            size=np.array([w, h]),
            search_side=search_side,
            min_side=c.min_scale_factor * search_side,
            max_side=c.max_scale_factor * search_side,
            fill=fill,
            template=template,
            frame_shape=frame.shape[:2],
        )
        self._presence = Presence(last_good=(center.copy(), np.array([w, h], float), search_side))

    def update(self, frame: np.ndarray) -> TrackResult:
        state = self._state
        if state is None:
            raise RuntimeError("call init(frame, box) before update(frame)")
        frame = as_bgr(frame)
        if frame.shape[:2] != state.frame_shape:
            (h0, w0), (h1, w1) = state.frame_shape, frame.shape[:2]
            raise UserError(f"frame size changed from {w0}x{h0} (the init frame) to {w1}x{h1}: boxes would be "
                            "wrong; call init(frame, box) again on a frame of the new size")
        times = [time.perf_counter()]
        c = self.config
        presence = self._presence
        if presence.state == "lost":
            score = self._search_while_lost(frame, state, times)
        else:
            score = self._track_step(frame, state, times)
            if presence.after_tracked(score, c.lost_threshold, c.uncertain_margin, c.lost_after,
                                      state.center, state.size, state.search_side):
                # Just lost. The search goes on from here in a shadow of the target's state, while the box goes
                # back to where the target was last seen well and stays there.
                presence.shadow = dataclasses.replace(state, center=state.center.copy(), size=state.size.copy())
                if presence.last_good:
                    center, size, side = presence.last_good
                    state.center, state.size, state.search_side = center.copy(), size.copy(), side
        cx, cy = state.center
        w, h = state.size
        result = TrackResult(box=(float(cx - w / 2), float(cy - h / 2), float(w), float(h)), score=score,
                             lost=presence.state == "lost", state=presence.state)
        times.append(time.perf_counter())
        t0, t1, t2, t3, t4 = times[:5]
        # Engines that run backbone and correlation as one call report it all as "backbone"; while lost, the
        # tile search counts as postprocess.
        backbone = self.engine.last_split.get("backbone", t2 - t1)
        self.stage_times = {"crop": t1 - t0, "backbone": backbone, "correlation": (t3 - t1) - backbone,
                            "postprocess": times[-1] - t3}
        return result

    def _track_step(self, frame: np.ndarray, state: _TargetState, times: list[float]) -> float:
        """One frame of ordinary tracking on `state` (the target's, or the shadow's while lost): the score, with
        the state moved; a non-finite answer leaves the state as it was and scores 0."""
        c = self.config
        before = (state.center, state.size, state.search_side)
        step = self._step_box_head if self.has_box_head else self._step_pyramid
        score = step(frame, state, times)
        frame_h, frame_w = frame.shape[:2]
        state.center = np.clip(state.center, 0, [frame_w, frame_h])
        state.size = np.clip(state.size, c.min_box_side, [max(frame_w, c.min_box_side), max(frame_h, c.min_box_side)])
        finite = math.isfinite(score) and np.isfinite(state.center).all() and np.isfinite(state.size).all() \
            and math.isfinite(state.search_side)
        if not finite:
            # A NaN/Inf from the network (weights that went bad, a numerical edge) must neither move the box nor
            # pass as confident: keep the last good state and count the frame as a low one.
            state.center, state.size, state.search_side = before
            score = 0.0
        return score

    def _search_while_lost(self, frame: np.ndarray, state: _TargetState, times: list[float]) -> float:
        """The box (`state`) stays put. The shadow tracks on as usual; when it scores low, redetect_tiles tiles of
        the whole frame (nearest the last position first, one batch through the network) are searched too, and
        the shadow moves to the best tile peak that clears the re-detection threshold, to look there again next
        frame. The target is taken back only when Presence confirms a place."""
        c = self.config
        presence = self._presence
        shadow = presence.shadow
        threshold = min(c.lost_threshold + c.redetect_margin, 0.999)
        score = self._track_step(frame, shadow, times)
        position, from_tiles = shadow.center, False
        if score < threshold and c.redetect_tiles:
            # At the size the target had when last seen (the held box's), not the shadow's: following clutter,
            # the shadow's scale drifts, and a template matched at the wrong scale scores low on the target itself.
            tile_score, tile_position = self._search_tiles(frame, shadow, state.search_side)
            if tile_score > score:
                score, position, from_tiles = tile_score, tile_position, True
        if from_tiles and score >= threshold:  # track on from there next frame, at the held size, to confirm
            shadow.center = np.asarray(position, float).copy()
            shadow.size, shadow.search_side = state.size.copy(), state.search_side
        if presence.after_search(score, position, threshold, c.redetect_confirm, state.search_side / 4):
            state.center, state.size, state.search_side = shadow.center.copy(), shadow.size.copy(), shadow.search_side
            presence.shadow = None
        return score

    def _search_tiles(self, frame: np.ndarray, shadow: _TargetState, side: float) -> tuple[float, np.ndarray]:
        """The best peak over the next redetect_tiles tiles, search regions of `side` frame pixels: (score, frame
        position)."""
        c, m = self.config, self.engine.config
        presence = self._presence
        if not presence.tiles:
            span = (self.engine.response_size - 1) * m.stride * side / m.search_size  # what one crop's response covers
            presence.tiles = tile_centres((frame.shape[1], frame.shape[0]), span, shadow.center)
        count = min(c.redetect_tiles, len(presence.tiles))
        centres = [presence.tiles[(presence.next_tile + i) % len(presence.tiles)] for i in range(count)]
        presence.next_tile += count
        crops = np.empty((count, m.search_size, m.search_size, 3), np.uint8)
        for i, centre in enumerate(centres):
            crop_square(frame, (centre[0], centre[1]), side, m.search_size, shadow.fill, out=crops[i])
        logits, _ = self.engine.search(crops, shadow.template)
        flat = logits.reshape(count, -1)
        peaks = flat.max(axis=1)
        if not np.isfinite(peaks).any():
            return 0.0, shadow.center
        best = int(np.nanargmax(peaks))
        cells = logits.shape[1]
        row, col = np.unravel_index(int(np.argmax(logits[best])), logits.shape[1:])
        offset = (np.array([col, row]) - (cells - 1) / 2) * m.stride * side / m.search_size
        position = np.clip(np.asarray(centres[best], float) + offset, 0, [frame.shape[1], frame.shape[0]])
        return _sigmoid(peaks[best]), position

    def _step_pyramid(self, frame: np.ndarray, state: _TargetState, times: list[float]) -> float:
        """SiamFC: num_scales crops; the best peak (after the scale penalty) moves the centre, its scale the size."""
        c, m = self.config, self.engine.config
        sides = state.search_side * self._scale_factors
        for i, side in enumerate(sides):
            crop_square(frame, (state.center[0], state.center[1]), side, m.search_size, state.fill, out=self._crops[i])
        times.append(time.perf_counter())

        # Localise on logits, not probabilities: a confident sigmoid saturates into a plateau around the target
        # whose argmax the cosine window then drags towards the centre.
        logits, _ = self.engine.search(self._crops, state.template)
        times.append(time.perf_counter())
        up = self._upsampled_size
        responses = np.stack([cv2.resize(r, (up, up), interpolation=cv2.INTER_CUBIC) for r in logits])
        times.append(time.perf_counter())

        # Penalise scale changes, then pick the scale with the highest peak. Logits can be negative: shift them to
        # start at 0 so that the multiplicative SiamFC penalty means the same whatever the logit range.
        centre_scale = c.num_scales // 2
        penalised = responses.reshape(c.num_scales, -1).max(axis=1) - responses.min()
        penalised[np.arange(c.num_scales) != centre_scale] *= c.scale_penalty
        best = int(np.argmax(penalised))
        displacement, _ = self._windowed_peak(responses[best], sides[best])
        state.center = state.center + displacement

        damped = (1 - c.scale_damping) + c.scale_damping * self._scale_factors[best]
        new_side = float(np.clip(state.search_side * damped, state.min_side, state.max_side))
        state.size = state.size * (new_side / state.search_side)
        state.search_side = new_side
        return _sigmoid(logits[best].max())

    def _step_box_head(self, frame: np.ndarray, state: _TargetState, times: list[float]) -> float:
        """One crop. The position comes from the upsampled response peak, as in _step_pyramid; the size from the
        box the cell under that peak predicts, at a rate lowered when that box would change the target's size or
        aspect ratio much (SiamRPN's penalty) or when the cell is unsure. Taking the position from the box instead
        (as SiamFC++ does) scored 0.015 to 0.02 lower AUC on val for every model we trained."""
        c, m = self.config, self.engine.config
        side = state.search_side
        crop_square(frame, (state.center[0], state.center[1]), side, m.search_size, state.fill, out=self._crops[0])
        times.append(time.perf_counter())
        logits, distances = self.engine.search(self._crops, state.template)
        times.append(time.perf_counter())
        logits, (left, top, right, bottom) = logits[0], distances[0]
        up = self._upsampled_size
        response = cv2.resize(logits, (up, up), interpolation=cv2.INTER_CUBIC)
        times.append(time.perf_counter())

        displacement, (row, col) = self._windowed_peak(response, side)
        state.center = state.center + displacement

        # The response cell under the peak, and the box it predicts (frame pixels).
        cells = logits.shape[0]
        r, k = (min(int(v * cells / up), cells - 1) for v in (row, col))
        to_frame = side / m.search_size
        width, height = (left[r, k] + right[r, k]) * to_frame, (top[r, k] + bottom[r, k]) * to_frame
        size_change = _padded_side(width, height) / _padded_side(*state.size)
        ratio_change = (width / height) / (state.size[0] / state.size[1])
        change = max(size_change, 1 / size_change) * max(ratio_change, 1 / ratio_change)
        penalty = math.exp(-(change - 1) * c.size_penalty)
        rate = c.scale_damping * penalty * _sigmoid(logits[r, k])
        state.size = (1 - rate) * state.size + rate * np.array([width, height])
        new_side = context_side(*state.size, c.context_amount) * m.search_size / m.exemplar_size
        state.search_side = float(np.clip(new_side, state.min_side, state.max_side))
        return _sigmoid(logits.max())

    def _windowed_peak(self, response: np.ndarray, side: float) -> tuple[np.ndarray, tuple[int, int]]:
        """The peak of an upsampled response after the cosine window: its offset from the crop centre in frame
        pixels (for a crop of `side` frame pixels), and its (row, column). The logits are shifted to start at 0 and
        normalised to sum 1 first, so that the window's weight means the same whatever their range."""
        response = response - response.min()
        response /= max(float(response.sum()), 1e-12)
        response = (1 - self.config.window_influence) * response + self.config.window_influence * self._window
        row, col = (int(v) for v in np.unravel_index(int(np.argmax(response)), response.shape))
        displacement = (np.array([col, row]) - (self._upsampled_size - 1) / 2) * self._cell * side
        return displacement, (row, col)


def _sigmoid(logit) -> float:
    logit = float(logit)
    if logit < -700:  # math.exp overflows past ~709; the score is 0 to double precision anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(-logit))


def _padded_side(width, height):
    """SiamRPN's size measure: the side of the square of equal area to the box grown by (w + h) / 2."""
    pad = (width + height) / 2
    return np.sqrt((width + pad) * (height + pad))
