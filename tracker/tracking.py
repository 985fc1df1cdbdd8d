"""The tracking loop: crop around the last position, score the crop(s) against the cached template, move the box.

Two modes, chosen by the network: with the SiamFC head alone, a small scale pyramid of crops (Bertinetto et al.
2016); with a box head (in the style of SiamFC++, Xu et al. 2020), one crop, whose peak cell also predicts the size.

OpenCV's tracker API (init / update) plus what it lacks: a score and an honest "lost" flag. All state lives in the
tracker instance, so any number of trackers can share one network; MultiTracker (multi.py) goes further and puts
several targets' crops through the network in one batch.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import cv2
import numpy as np

from .config import TrackerConfig
from .crop import context_side, crop_square, mean_colour, response_cell_positions
from .engines import load_engine
from .errors import UserError
from .online import OnlineTargetModel
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
    online: OnlineTargetModel | None = None  # shared with the shadow while lost, which never teaches it
    # This frame's would-be sample for the online model: (features, target centre in response cells, the best
    # rival's siamese probability), learnt only if the frame ends up "tracking".
    pending: tuple | None = None
    frames_unlearnt: int = 0  # confident frames since the online model last learnt


@dataclass
class _Target:
    """One target: where it is (state) and whether it is there (presence)."""
    state: _TargetState
    presence: Presence


class TrackingLoop:
    """What SiamTracker (one target) and MultiTracker (several, tracker/multi.py) share: the network, the
    hyperparameters and one frame's step over any number of targets. The step puts every target's search crops
    through the network in one batch, each crop scored against its own target's template, and then moves each
    target exactly as if it were tracked alone."""

    def __init__(self, engine, config: TrackerConfig | None = None) -> None:
        """engine: a network runner (TorchEngine, or the ONNX one) with template(), search() and .config.
        config: the tracking hyperparameters; default: the ones stored with the engine's weights (an ONNX pair's
        metadata), else TrackerConfig()'s defaults (one crop per frame for a model that predicts boxes)."""
        self.engine = engine
        stored = getattr(engine, "tracker_config", None)
        if config is None and isinstance(stored, TrackerConfig):
            config = stored
        elif config is None and engine.config.predicts_boxes:
            config = TrackerConfig(num_scales=1)
        self.config = config or TrackerConfig()
        self.stage_times: dict[str, float] = {}

        c, m = self.config, engine.config
        self.has_box_head = m.predicts_boxes
        if self.has_box_head and c.num_scales != 1:
            raise UserError(f"this model has a box head and tracks with one crop per frame: num_scales must be 1, "
                            f"got {c.num_scales}")
        self._scale_factors = c.scale_step ** (np.arange(c.num_scales) - (c.num_scales - 1) / 2)
        self._crops_per_target = 1 if self.has_box_head else c.num_scales
        up = c.response_upsample * engine.response_size
        hann = np.hanning(up)
        window = np.outer(hann, hann)
        self._window = (window / window.sum()).astype(np.float32)
        # The box rule's window over the response cells, and each cell's offset from the crop centre (crop pixels).
        cell_hann = np.hanning(engine.response_size)
        self._cell_window = np.outer(cell_hann, cell_hann).astype(np.float32)
        self._cell_offsets = response_cell_positions(engine.response_size, m.stride, m.search_size) - m.search_size / 2
        self._upsampled_size = up
        # Frame pixels per upsampled-response cell, divided by the search side: the displacement factor.
        self._cell = m.stride / c.response_upsample / m.search_size
        self._crops = np.empty((0, m.search_size, m.search_size, 3), np.uint8)  # grown as targets come
        # The last two stacks of templates, and what each was made of: a frame with lost targets stacks one set for
        # the step and another for the tile search, and both stay valid until targets come, go or get lost.
        self._stacks: list[tuple[tuple, object]] = []
        self._backbone_seconds = 0.0
        self._online = c.online_weight > 0
        if self._online and not (self.has_box_head and c.box_position == "box"):
            raise UserError("the online target model fuses with the box rule: it needs a model with a box head and "
                            "box_position='box' (or set online_weight=0)")
        if self._online and not getattr(engine, "has_features", False):
            raise UserError("these weights were exported without the search features the online target model "
                            "learns on: re-export them with `siamtrack export`, or set online_weight=0")

    @classmethod
    def from_pretrained(cls, weights: str | None = None, device: str = "auto", engine: str = "auto",
                        threads: int | None = None, **tracker_overrides):
        """The shipped default model (or given weights); keyword arguments override the tracking hyperparameters
        stored with the weights. engine, device, threads: as tracker.engines.load_engine's."""
        runner = load_engine(weights, engine, device, threads)
        try:
            config = runner.tracker_config.replace(**tracker_overrides)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        return cls(runner, config)

    # -- one target's start, any number of targets' step ----------------------------------------------------

    def _new_target(self, frame: np.ndarray, box) -> _Target:
        x, y, w, h = check_box(box, frame.shape)
        c, m = self.config, self.engine.config
        center = np.array([x + w / 2, y + h / 2])
        exemplar_side = context_side(w, h, c.context_amount)
        search_side = exemplar_side * m.search_size / m.exemplar_size
        fill = mean_colour(frame)
        exemplar = crop_square(frame, (center[0], center[1]), exemplar_side, m.exemplar_size, fill)
        state = _TargetState(
            center=center,
            size=np.array([w, h]),
            search_side=search_side,
            min_side=c.min_scale_factor * search_side,
            max_side=c.max_scale_factor * search_side,
            fill=fill,
            template=self.engine.template(exemplar[None]),
            frame_shape=frame.shape[:2],
        )
        if self._online:
            state.online = self._start_online(frame, state)
        return _Target(state, Presence(last_good=(center.copy(), np.array([w, h], float), search_side)))

    def _start_online(self, frame: np.ndarray, state: _TargetState) -> OnlineTargetModel:
        """The online model, learnt on the first frame: the search crop around the target as it is, shifted two
        cells diagonally four ways, blurred, and turned 10 degrees each way (what the next frames may do to it)."""
        c, m = self.config, self.engine.config
        size, shift = m.search_size, 2 * m.stride
        middle = (self.engine.response_size - 1) / 2
        crops = np.empty((8, size, size, 3), np.uint8)
        centres = [(middle, middle)]
        crop_square(frame, tuple(state.center), state.search_side, size, state.fill, out=crops[0])
        for i, (dx, dy) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)], start=1):
            at = state.center + np.array([dx, dy]) * shift * state.search_side / size
            crop_square(frame, tuple(at), state.search_side, size, state.fill, out=crops[i])
            centres.append((middle - dy * shift / m.stride, middle - dx * shift / m.stride))
        crops[5] = cv2.GaussianBlur(crops[0], (0, 0), 2.0)
        for i, angle in ((6, 10), (7, -10)):
            crop_square(frame, tuple(state.center), state.search_side, size, state.fill, out=crops[i], angle=angle)
        centres += [(middle, middle)] * 3
        features = self.engine.search_with_features(crops, state.template)[2]
        return OnlineTargetModel(features, centres, self.engine.response_size, channels=c.online_channels,
                                 memory=c.online_memory, learning_rate=c.online_learning_rate, sigma=c.online_sigma,
                                 regularization=c.online_regularization)

    @staticmethod
    def _check_frame(frame: np.ndarray, target: _Target) -> None:
        if frame.shape[:2] != target.state.frame_shape:
            (h0, w0), (h1, w1) = target.state.frame_shape, frame.shape[:2]
            raise UserError(f"frame size changed from {w0}x{h0} (the init frame) to {w1}x{h1}: boxes would be "
                            "wrong; call init(frame, box) again on a frame of the new size")

    def _step(self, frame: np.ndarray, targets: list[_Target]) -> list[TrackResult]:
        """One frame for every target (a BGR frame of their size): their results, in order."""
        times = [time.perf_counter()]
        c = self.config
        was_lost = [t.presence.state == "lost" for t in targets]
        # A lost target's box stays put; its shadow searches on as if it were tracked.
        stepping = [t.presence.shadow if lost else t.state for t, lost in zip(targets, was_lost)]
        scores = self._track_steps(frame, stepping, times)
        threshold = min(c.lost_threshold + c.redetect_margin, 0.999)
        for target, lost, score in zip(targets, was_lost, scores):
            if not lost:
                self._after_tracked(target, score)
        searching = [t for t, lost, score in zip(targets, was_lost, scores)
                     if lost and score < threshold and c.redetect_tiles]
        tile_hits = self._search_tiles(frame, searching)
        results = []
        for target, lost, score in zip(targets, was_lost, scores):
            if lost:
                score = self._after_search(target, score, tile_hits.get(id(target)), threshold)
            cx, cy = target.state.center
            w, h = target.state.size
            state = target.presence.state
            results.append(TrackResult(box=(float(cx - w / 2), float(cy - h / 2), float(w), float(h)), score=score,
                                       lost=state == "lost", state=state))
        times.append(time.perf_counter())
        t0, t1, t2, t3, t4 = times
        # Engines that run backbone and correlation as one call report it all as "backbone". "correlation" is the
        # rest of the network call plus turning responses into boxes; the tile search while lost is postprocess.
        backbone = self._backbone_seconds
        self.stage_times = {"crop": t1 - t0, "backbone": backbone, "correlation": (t3 - t1) - backbone,
                            "postprocess": t4 - t3}
        return results

    def _crop_buffer(self, count: int) -> np.ndarray:
        """Room for `count` search crops: one buffer, grown when more are needed (a view of its first rows)."""
        if len(self._crops) < count:
            self._crops = np.empty((count, *self._crops.shape[1:]), np.uint8)
        return self._crops[:count]

    def _search(self, crops: np.ndarray, templates: list, crops_each: list[int]):
        """One network run: the crops, in consecutive runs of crops_each[k], scored against templates[k] ->
        (logits, distances, features); features only with the online model, else None."""
        if len(templates) == 1:
            args = (crops, templates[0])
        else:
            for made_of, stacked in self._stacks:
                if len(made_of) == len(templates) and all(a is b for a, b in zip(made_of, templates)):
                    break
            else:  # stacked once per set of targets: it changes when targets come, go or get lost, not every frame
                stacked = self.engine.stack_templates(templates)
                self._stacks = [(tuple(templates), stacked)] + self._stacks[:1]
            args = (crops, stacked, np.repeat(np.arange(len(templates), dtype=np.int64), crops_each))
        if self._online:
            return self.engine.search_with_features(*args)
        return (*self.engine.search(*args), None)

    def _track_steps(self, frame: np.ndarray, states: list[_TargetState], times: list[float]) -> list[float]:
        """One frame of ordinary tracking for each state (a target's, or its shadow's while lost), all crops in
        one network run: the scores, with the states moved. A non-finite answer leaves a state as it was and
        scores 0."""
        per = self._crops_per_target
        crops = self._crop_buffer(per * len(states))
        before = [(s.center, s.size, s.search_side) for s in states]
        for i, state in enumerate(states):
            self._crop_target(frame, state, crops[i * per : (i + 1) * per])
        times.append(time.perf_counter())
        # Localise on logits, not probabilities: a confident sigmoid saturates into a plateau around the target
        # whose argmax the cosine window then drags towards the centre.
        logits, distances, features = self._search(crops, [s.template for s in states], [per] * len(states))
        times.append(time.perf_counter())
        self._backbone_seconds = self.engine.last_split.get("backbone", times[-1] - times[-2])
        scores = []
        for i, state in enumerate(states):
            rows = slice(i * per, (i + 1) * per)
            if self.has_box_head and self.config.box_position == "box":
                score = self._move_to_best_box(state, logits[rows][0], distances[rows][0],
                                               None if features is None else features[i])
            elif self.has_box_head:
                score = self._move_box_head(state, logits[rows][0], distances[rows][0])
            else:
                score = self._move_pyramid(state, logits[rows])
            scores.append(self._settle(frame, state, before[i], score))
            if state.online is not None and scores[-1] > 0:  # a non-finite step (score 0) teaches nothing
                state.pending = self._sample(state, before[i], logits[i], features[i])
        times.append(time.perf_counter())
        return scores

    def _sample(self, state: _TargetState, before: tuple, logits: np.ndarray, features: np.ndarray) -> tuple:
        """The online model's would-be sample from this frame's crop (taken at `before`'s centre and side): the
        features, the target's new centre in response cells, and the best siamese probability more than three cells
        from it (a rival peak: a look-alike or a distractor coming close)."""
        m = self.engine.config
        middle = (self.engine.response_size - 1) / 2
        offset = (state.center - before[0]) * m.search_size / before[2] / m.stride  # (x, y) in cells
        centre = (float(middle + offset[1]), float(middle + offset[0]))
        last = self.engine.response_size - 1
        row, col = (min(max(int(round(v)), 0), last) for v in centre)
        away = logits.copy()
        away[max(row - 3, 0) : row + 4, max(col - 3, 0) : col + 4] = -np.inf
        return features, centre, _sigmoid(away.max())

    def _settle(self, frame: np.ndarray, state: _TargetState, before: tuple, score: float) -> float:
        c = self.config
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

    def _after_tracked(self, target: _Target, score: float) -> None:
        c, state, presence = self.config, target.state, target.presence
        lost = presence.after_tracked(score, c.lost_threshold, c.uncertain_margin, c.lost_after,
                                      state.center, state.size, state.search_side)
        pending, state.pending = state.pending, None
        if pending is not None and presence.state == "tracking":
            # Learn every online_update_every confident frames, and at once when a rival peak shows up (that frame
            # holds the negative the model most needs); never while uncertain or lost.
            state.frames_unlearnt += 1
            features, centre, rival = pending
            if state.frames_unlearnt >= c.online_update_every or rival >= c.online_distractor:
                state.online.learn(features, centre)
                state.frames_unlearnt = 0
        if lost:
            state.frames_unlearnt = 0  # after a re-detection, learn only once confidence has held again
            # Just lost. The search goes on from here in a shadow of the target's state, while the box goes back
            # to where the target was last seen well and stays there.
            presence.shadow = dataclasses.replace(state, center=state.center.copy(), size=state.size.copy())
            if presence.last_good:
                center, size, side = presence.last_good
                state.center, state.size, state.search_side = center.copy(), size.copy(), side

    def _after_search(self, target: _Target, score: float, tile_hit, threshold: float) -> float:
        """While lost, after the shadow's step (`score`) and maybe a tile search (`tile_hit`: (score, position)):
        the shadow moves to the best tile peak that clears the re-detection threshold, to look there again next
        frame. The target is taken back only when Presence confirms a place."""
        c, state, presence = self.config, target.state, target.presence
        shadow = presence.shadow
        position, from_tiles = shadow.center, False
        if tile_hit is not None and tile_hit[0] > score:
            score, position, from_tiles = tile_hit[0], tile_hit[1], True
        if from_tiles and score >= threshold:  # track on from there next frame, at the held size, to confirm
            shadow.center = np.asarray(position, float).copy()
            shadow.size, shadow.search_side = state.size.copy(), state.search_side
        if presence.after_search(score, position, threshold, c.redetect_confirm, state.search_side / 4):
            state.center, state.size, state.search_side = shadow.center.copy(), shadow.size.copy(), shadow.search_side
            presence.shadow = None
        return score

    def _search_tiles(self, frame: np.ndarray, targets: list[_Target]) -> dict[int, tuple[float, np.ndarray]]:
        """For each lost target whose shadow scored low: the best peak over its next redetect_tiles tiles of the
        whole frame, nearest its last position first, all targets' tiles in one network run. Search regions are
        at the size the target had when last seen (the held box's), not the shadow's: following clutter, the
        shadow's scale drifts, and a template matched at the wrong scale scores low on the target itself.
        Returns id(target) -> (score, frame position)."""
        if not targets:
            return {}
        c, m = self.config, self.engine.config
        plans = []
        for target in targets:
            presence, side = target.presence, target.state.search_side
            if not presence.tiles:
                span = (self.engine.response_size - 1) * m.stride * side / m.search_size  # one crop's response
                presence.tiles = tile_centres((frame.shape[1], frame.shape[0]), span, presence.shadow.center)
            count = min(c.redetect_tiles, len(presence.tiles))
            plans.append([presence.tiles[(presence.next_tile + i) % len(presence.tiles)] for i in range(count)])
            presence.next_tile += count
        crops = self._crop_buffer(sum(len(centres) for centres in plans))
        k = 0
        for target, centres in zip(targets, plans):
            for centre in centres:
                crop_square(frame, (centre[0], centre[1]), target.state.search_side, m.search_size,
                            target.presence.shadow.fill, out=crops[k])
                k += 1
        logits, _, features = self._search(crops, [t.presence.shadow.template for t in targets], [len(p) for p in plans])
        hits, k = {}, 0
        for target, centres in zip(targets, plans):
            rows = slice(k, k + len(centres))
            scores = self._score_map(logits[rows], target.state.online, features[rows] if features is not None else None)
            hits[id(target)] = self._best_tile(frame, scores, centres, target)
            k += len(centres)
        return hits

    def _score_map(self, logits: np.ndarray, online: OnlineTargetModel | None, features: np.ndarray | None):
        """The score at every response cell: the siamese probability, fused with the online model's response."""
        probability = 1 / (1 + np.exp(-np.clip(logits, -50, 50)))
        if online is None:
            return probability
        weight = self.config.online_weight
        return (1 - weight) * probability + weight * np.clip(online.response(features), 0, 1)

    def _best_tile(self, frame: np.ndarray, scores: np.ndarray, centres: list, target: _Target) -> tuple[float, np.ndarray]:
        m, side = self.engine.config, target.state.search_side
        peaks = scores.reshape(len(centres), -1).max(axis=1)
        if not np.isfinite(peaks).any():
            return 0.0, target.presence.shadow.center
        best = int(np.nanargmax(peaks))
        cells = scores.shape[1]
        row, col = np.unravel_index(int(np.argmax(scores[best])), scores.shape[1:])
        offset = (np.array([col, row]) - (cells - 1) / 2) * m.stride * side / m.search_size
        position = np.clip(np.asarray(centres[best], float) + offset, 0, [frame.shape[1], frame.shape[0]])
        return float(peaks[best]), position

    def _crop_target(self, frame: np.ndarray, state: _TargetState, out: np.ndarray) -> None:
        """The search crops of one state into `out`: the scale pyramid, or the one crop of a box-head model."""
        m = self.engine.config
        sides = state.search_side * self._scale_factors if not self.has_box_head else [state.search_side]
        for i, side in enumerate(sides):
            crop_square(frame, (state.center[0], state.center[1]), side, m.search_size, state.fill, out=out[i])

    def _move_pyramid(self, state: _TargetState, logits: np.ndarray) -> float:
        """SiamFC: of num_scales responses, the best peak (after the scale penalty) moves the centre, its scale the
        size."""
        c = self.config
        sides = state.search_side * self._scale_factors
        up = self._upsampled_size
        responses = np.stack([cv2.resize(r, (up, up), interpolation=cv2.INTER_CUBIC) for r in logits])

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

    def _move_box_head(self, state: _TargetState, logits: np.ndarray, distances: np.ndarray) -> float:
        """One crop. The position comes from the upsampled response peak, as in _move_pyramid; the size from the
        box the cell under that peak predicts, at a rate lowered when that box would change the target's size or
        aspect ratio much (SiamRPN's penalty) or when the cell is unsure. Taking the position from the box instead
        (as SiamFC++ does) scored 0.015 to 0.02 lower AUC on val for every model we trained."""
        c, m = self.config, self.engine.config
        side = state.search_side
        left, top, right, bottom = distances
        up = self._upsampled_size
        response = cv2.resize(logits, (up, up), interpolation=cv2.INTER_CUBIC)

        displacement, (row, col) = self._windowed_peak(response, side)
        state.center = state.center + displacement

        # The response cell under the peak, and the box it predicts (frame pixels).
        cells = logits.shape[0]
        r, k = (min(int(v * cells / up), cells - 1) for v in (row, col))
        to_frame = side / m.search_size
        width, height = (left[r, k] + right[r, k]) * to_frame, (top[r, k] + bottom[r, k]) * to_frame
        penalty = _change_penalty(width, height, state.size, c.size_penalty)
        self._resize(state, width, height, c.scale_damping * penalty * _sigmoid(logits[r, k]))
        return _sigmoid(logits.max())

    def _move_to_best_box(self, state: _TargetState, logits: np.ndarray, distances: np.ndarray,
                          online_features: np.ndarray | None = None) -> float:
        """NanoTrack's (and SiamRPN++'s) rule: every cell's box is scored by its probability times the size /
        aspect change penalty, blended with a cosine window over the cells; the best box's centre is taken, and its
        size at scale_damping x penalty x probability. With the online model, "probability" is the fused score."""
        c = self.config
        to_frame = state.search_side / self.engine.config.search_size
        left, top, right, bottom = distances * to_frame
        width, height = left + right, top + bottom
        penalty = _change_penalty(width, height, state.size, c.size_penalty)
        probability = self._score_map(logits, state.online, online_features)
        ranked = (1 - c.window_influence) * penalty * probability + c.window_influence * self._cell_window
        r, k = (int(v) for v in np.unravel_index(int(np.argmax(ranked)), ranked.shape))
        # The chosen box's centre: its cell's position plus half the difference of its opposite sides.
        state.center = state.center + np.array([self._cell_offsets[k] * to_frame + (right[r, k] - left[r, k]) / 2,
                                                self._cell_offsets[r] * to_frame + (bottom[r, k] - top[r, k]) / 2])
        self._resize(state, width[r, k], height[r, k], c.scale_damping * penalty[r, k] * probability[r, k])
        return float(probability[r, k])

    def _resize(self, state: _TargetState, width: float, height: float, rate: float) -> None:
        """Move the target's size towards (width, height) at `rate`, and the search region with it."""
        c, m = self.config, self.engine.config
        state.size = (1 - rate) * state.size + rate * np.array([width, height])
        new_side = context_side(*state.size, c.context_amount) * m.search_size / m.exemplar_size
        state.search_side = float(np.clip(new_side, state.min_side, state.max_side))

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


class SiamTracker(TrackingLoop):
    """One target: init(frame, box), then update(frame) -> TrackResult every frame. Several SiamTrackers can share
    one engine; MultiTracker (tracker/multi.py) tracks several targets in one network run per frame."""

    def __init__(self, engine, config: TrackerConfig | None = None) -> None:
        super().__init__(engine, config)
        self._target: _Target | None = None

    def as_opencv(self):
        """This tracker behind OpenCV's tracker interface: update(frame) -> (ok, (x, y, w, h)) with ints."""
        from .cv2_compat import OpenCVTracker

        return OpenCVTracker(self)

    def init(self, frame: np.ndarray, box) -> None:
        self._target = self._new_target(as_bgr(frame), box)

    def update(self, frame: np.ndarray) -> TrackResult:
        if self._target is None:
            raise RuntimeError("call init(frame, box) before update(frame)")
        frame = as_bgr(frame)
        self._check_frame(frame, self._target)
        return self._step(frame, [self._target])[0]


def _sigmoid(logit) -> float:
    logit = float(logit)
    if logit < -700:  # math.exp overflows past ~709; the score is 0 to double precision anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(-logit))


def _change_penalty(width, height, size, size_penalty: float):
    """SiamRPN's penalty on a predicted box (or an array of them) of width x height against the target's size:
    exp(-(change - 1) * size_penalty), where change >= 1 multiplies the change in padded side and in aspect ratio."""
    size_change = _padded_side(width, height) / _padded_side(*size)
    ratio_change = (width / np.maximum(height, 1e-6)) / (size[0] / size[1])
    change = np.maximum(size_change, 1 / size_change) * np.maximum(ratio_change, 1 / ratio_change)
    return np.exp(-(change - 1) * size_penalty)


def _padded_side(width, height):
    """SiamRPN's size measure: the side of the square of equal area to the box grown by (w + h) / 2."""
    pad = (width + height) / 2
    return np.sqrt((width + pad) * (height + pad))
