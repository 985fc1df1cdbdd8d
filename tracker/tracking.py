"""The tracking step: crop around each target's last position, score the crops against its template, move the box.

OpenCV's tracker API (init / update) plus what it lacks: a score and an honest "lost" flag. The step is split by
job: the box rule (box_rules.py) cuts the crops and moves the box, presence (presence.py) decides whether the
target is there and where to look when it is not, the online model (online.py) learns on its schedule, and the
stage timer (timing.py) books the time. All state lives in the tracker instance, so any number of trackers can
share one engine; MultiTracker (multi.py) puts several targets' crops through the network in one batch.
"""
from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np

from .appearance import appearance_check_for
from .box_rules import keep_in_frame, make_box_rule
from .config import TrackerConfig
from .crop import context_side, crop_square, mean_colour
from .cv2_compat import OpenCVTracker
from .engines import Engine, load_engine
from .errors import UserError
from .jumps import jump_watch_for
from .online import LearningSchedule, OnlineTargetModel, first_frame_model, frame_sample
from .presence import Presence, best_tile, redetect_threshold
from .response import fused_scores
from .result import TrackResult, check_box
from .second_look import SecondTemplate, second_look_for
from .timing import StageTimer
from .verifier import Verifier, box_window, verifier_for

MAX_FRAME_SIDE = 32766  # cv2.warpAffine asserts every side < SHRT_MAX (32,767)


def as_bgr(frame: np.ndarray) -> np.ndarray:
    """HxWx3 BGR uint8 from what users pass: BGR, grayscale (HxW or HxWx1) or BGRA."""
    if not isinstance(frame, np.ndarray):
        raise UserError(f"frame must be a numpy array (HxWx3 BGR uint8), got {type(frame).__name__}")
    if frame.dtype != np.uint8:
        raise UserError(f"frame must be uint8 (as cv2.imread / VideoCapture give), got {frame.dtype}")
    if frame.size == 0:
        raise UserError(f"frame is empty (shape {frame.shape}): a failed cv2 read gives this; check the "
                        "capture's ok flag before passing the frame")
    if max(frame.shape[:2]) > MAX_FRAME_SIDE:
        raise UserError(f"frame is {frame.shape[1]}x{frame.shape[0]} pixels: OpenCV's crop takes frames of at "
                        f"most {MAX_FRAME_SIDE:,} pixels a side; resize (or cut) the frames first")
    if frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1):
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return frame
    raise UserError(f"frame must be HxW, HxWx3 or HxWx4, got shape {frame.shape}")


def check_frame_size(frame: np.ndarray, target) -> None:
    """Every frame must have the init frame's size: a target's boxes are in its pixels."""
    if frame.shape[:2] != target.state.frame_shape:
        (h0, w0), (h1, w1) = target.state.frame_shape, frame.shape[:2]
        raise UserError(f"frame size changed from {w0}x{h0} (the init frame) to {w1}x{h1}: boxes would be "
                        "wrong; call init(frame, box) again on a frame of the new size")


@dataclass
class TargetState:
    """Where a target is (its shadow, while lost, is a copy of this that keeps searching)."""

    center: np.ndarray  # (cx, cy) in frame pixels
    size: np.ndarray  # (w, h)
    search_side: float  # side of the search region in frame pixels
    min_side: float
    max_side: float
    fill: tuple[float, ...]  # mean colour of the first frame, for padding
    template: object  # engine-specific template features
    frame_shape: tuple[int, int]  # (height, width) of the init frame: every later frame must match it
    online: OnlineTargetModel | None = None  # shared with the shadow while lost, which never teaches it
    identity: np.ndarray | None = None  # (C,8,8) first template's features on the CPU, for the verifier
    looks: np.ndarray | None = None  # the first box's ImageNet features, for the appearance check (appearance.py)
    second: SecondTemplate | None = None  # with second_template=1 (second_look.py); the shadow shares it
    # with jump_cosine (jumps.py): the search features under the box last frame, and the two sides of the last jump
    window: np.ndarray | None = None
    remembered: np.ndarray | None = None
    stranger: np.ndarray | None = None


@dataclass
class Target:
    """One target: where it is (state), whether it is there (presence), when its online model learns."""

    state: TargetState
    presence: Presence
    learning: LearningSchedule | None = None
    path: deque | None = None  # MultiTracker's: box centres of the last frames it held an object (exclusive.py)


class TemplateStacks:
    """Several targets' templates stacked for one network run. A frame with lost targets stacks one set for the
    step and another for the tile search; the last two stay valid until targets come, go or get lost, so they
    are stacked once per set of targets, not every frame."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._stacks: list[tuple[tuple, object]] = []

    def stacked(self, templates: list):
        for made_of, stacked in self._stacks:
            if len(made_of) == len(templates) and all(a is b for a, b in zip(made_of, templates)):
                return stacked
        stacked = self.engine.stack_templates(templates)
        self._stacks = [(tuple(templates), stacked)] + self._stacks[:1]
        return stacked


class TrackingLoop:
    """What SiamTracker (one target) and MultiTracker (several, tracker/multi.py) share: the engine, the
    hyperparameters and one frame's step over any number of targets. The step puts every target's search crops
    through the network in one batch, each crop scored against its own target's template, and then moves each
    target exactly as if it were tracked alone."""

    def __init__(self, engine: Engine, config: TrackerConfig | None = None, verifier: Verifier | None = None) -> None:
        """engine: a network runner (tracker.engines.Engine: the ONNX or the torch one). config: the tracking
        hyperparameters; default: the ones stored with the engine's weights. verifier: with config.verify, the
        target verifier (default: the verifier.npz beside the engine's weights)."""
        self.engine = engine
        self.config = config if config is not None else engine.tracker_config
        self.rule = make_box_rule(engine.config, self.config, engine.response_size)
        self.verifier = verifier_for(engine, self.rule, verifier) if self.config.verify else None
        self.evidence: dict[int, np.ndarray] = {}  # id(target state) -> the verifier's evidence of the last step
        self.appearance = appearance_check_for(engine, self.verifier, self.config)  # None: appearance_gate 0
        self.second_look = second_look_for(engine, self.rule, self.verifier, self.config)  # None: levers off
        self.jumps = jump_watch_for(self.verifier, self.config)  # None: jump_cosine 0
        self._online = self.config.online_weight > 0
        if self._online and not self.rule.fuses_online:
            raise UserError("the online target model fuses with the box rule: it needs a model with a box head and "
                            "box_position='box' (or set online_weight=0)")
        if self._online and not engine.has_features:
            raise UserError("these weights were exported without the search features the online target model "
                            "learns on: re-export them with `siamtrack export`, or set online_weight=0")
        self._crops = np.empty((0, engine.config.search_size, engine.config.search_size, 3), np.uint8)
        self._stacks = TemplateStacks(engine)
        self._timer = StageTimer()
        self.stage_times: dict[str, float] = {}
        # A tracker follows one video frame by frame: two threads updating it at once would interleave their
        # frames in one target's state. That is refused; changes to the targets (init, add, remove) from another
        # thread wait for the frame being tracked, so every result stays with its target.
        self._targets_lock = threading.RLock()
        self._frame_in_progress = threading.Lock()

    @contextmanager
    def _one_frame(self):
        """Held while update() tracks a frame: a second update() at the same time is a UserError."""
        if not self._frame_in_progress.acquire(blocking=False):
            raise UserError(f"this {type(self).__name__} is already tracking a frame in another thread: a tracker "
                            "follows one video frame by frame; give each thread (each video) its own tracker "
                            "(they can share one engine)")
        try:
            with self._targets_lock:
                yield
        finally:
            self._frame_in_progress.release()

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

    # -- one target's start ----------------------------------------------------------------------------------

    def _new_target(self, frame: np.ndarray, box, box_format: str = "xywh") -> Target:
        x, y, w, h = check_box(box, frame.shape, box_format)
        c, m = self.config, self.engine.config
        center = np.array([x + w / 2, y + h / 2])
        exemplar_side = context_side(w, h, c.context_amount)
        search_side = exemplar_side * m.search_size / m.exemplar_size
        fill = mean_colour(frame)
        exemplar = crop_square(frame, (center[0], center[1]), exemplar_side, m.exemplar_size, fill)
        state = TargetState(center=center, size=np.array([w, h]), search_side=search_side,
                            min_side=c.min_scale_factor * search_side, max_side=c.max_scale_factor * search_side,
                            fill=fill, template=self.engine.template(exemplar[None]), frame_shape=frame.shape[:2])
        if self.verifier is not None:
            state.identity = self.engine.template_to_numpy(state.template)[0]
            if self.appearance is not None:
                state.looks = self.appearance.first(frame, center, (w, h))
            state.second = self.second_look and self.second_look.new_template(state)
        learning = None
        if self._online:
            state.online = first_frame_model(frame, state, self.engine, c)
            learning = LearningSchedule(c.online_update_every, c.online_distractor)
        return Target(state, Presence(last_good=(center.copy(), np.array([w, h], float), search_side)), learning)

    # -- any number of targets' step -------------------------------------------------------------------------

    def _step(self, frame: np.ndarray, targets: list[Target]) -> list[TrackResult]:
        """One frame for every target (a BGR frame of their size): their results, in order."""
        self._timer.start()
        c, self.evidence = self.config, {}
        if self.jumps is not None:
            self.jumps.see_frame(frame)
        was_lost = [t.presence.state == "lost" for t in targets]
        # A lost target's box stays put; its shadow searches on as if it were tracked.
        stepping = [t.presence.shadow if lost else t.state for t, lost in zip(targets, was_lost)]
        before = [(s.center, s.size, s.search_side) for s in stepping]
        scores, samples, responses = self._track_steps(frame, stepping, before, was_lost)
        self._settle_claims(targets, was_lost, before, scores, samples)
        for target, lost, score, sample in zip(targets, was_lost, scores, samples):
            if not lost:
                self._after_tracked(target, score, sample)
                if self.second_look is not None:
                    self.second_look.after_tracked(frame, target.state, target.presence.learning_state, score)
        excluded = self._claimed_by_others(targets, was_lost, scores)
        threshold = redetect_threshold(c)
        searching = [t for t, lost, score in zip(targets, was_lost, scores)
                     if lost and score < threshold and c.redetect_tiles]
        tile_hits = self._search_tiles(frame, searching, excluded)
        for k, (target, lost) in enumerate(zip(targets, was_lost)):
            if lost:
                scores[k] = target.presence.settle_search(scores[k], tile_hits.get(id(target)), target.state, c)
                if target.presence.state != "lost" and self.jumps is not None:
                    self.jumps.forget(target.state)
        self._settle_identities(targets, scores)
        results = [_result(t, s, r, c.hold_lost_box) for t, s, r in zip(targets, scores, responses)]
        self._timer.mark()
        self.stage_times = self._timer.stage_times()
        return results

    def _track_steps(self, frame: np.ndarray, states: list[TargetState], before: list[tuple], lost: list[bool]):
        """One frame of ordinary tracking for each state (a target's, or its shadow's while lost; `before`: each
        one's (center, size, search_side) as the frame found it; `lost`: each one is a lost target's shadow), all
        crops in one network run: the scores, with the states moved, each state's would-be online sample (None
        without the online model) and the box rule's own scores (the scores are the verifier's when it is on).
        A non-finite answer leaves a state as it was and scores 0."""
        per = self.rule.crops_per_target
        crops = self._crop_buffer(per * len(states))
        for i, state in enumerate(states):
            self.rule.crop(frame, state, crops[i * per : (i + 1) * per])
        self._timer.mark()
        # Localise on logits, not probabilities: a confident sigmoid saturates into a plateau around the target
        # whose argmax the cosine window then drags towards the centre.
        logits, distances, features = self._run_network(crops, [s.template for s in states], [per] * len(states))
        self._timer.mark()
        self._timer.network_seconds = self.engine.last_split.get("backbone")
        scores, samples, responses = [], [], []
        for i, state in enumerate(states):
            rows = slice(i * per, (i + 1) * per)
            score = self.rule.move(state, logits[rows], None if distances is None else distances[rows],
                                   None if features is None else features[i])
            responses.append(keep_in_frame(frame, state, before[i], score, self.config))
            scores.append(self._verified(frame, state, features, i, before[i], responses[-1], logits[rows], lost[i]))
            taken = self.second_look and self.second_look.look(frame, state, before[i], scores[-1])
            if taken:  # a second look's move; the online sample below is cut for the first look's, so none
                scores[-1], responses[-1], self.evidence[id(state)] = taken
            sample = None
            if state.online is not None and scores[-1] > 0 and not taken:  # a non-finite step (0) teaches nothing
                sample = frame_sample(before[i][0], before[i][2], state.center, logits[i], features[i],
                                      self.engine.config, self.engine.response_size)
            samples.append(sample)
        self._timer.mark()
        return scores, samples, responses

    def _verified(self, frame: np.ndarray, state: TargetState, features, row: int, before: tuple, response: float,
                  logits, lost: bool = False) -> float:
        """The frame's score: the box rule's, or the verifier's P(box on target) from the search features under
        the moved box (crop `row`, cut at `before`'s centre and side) and the crops' logits, with the appearance
        check where it is unsure."""
        if self.verifier is None or response <= 0:
            return response
        window = box_window(features[row], state.center, before[0], before[2], self.engine.config)
        score, evidence = self.verifier.score_window(state.identity, window, response, logits)
        if self.appearance is not None:
            score, evidence = self.appearance.look(frame, state.looks, state.center, state.size, score, evidence, lost)
        self.evidence[id(state)] = evidence
        return score if self.jumps is None else self.jumps.after_step(state, window, score, lost)

    def _settle_claims(self, targets: list[Target], was_lost: list[bool], before: list, scores: list,
                       samples: list) -> None:
        """After the step, before presence settles: where several targets are tracked, the place to keep two from
        holding one object (MultiTracker; tracker/exclusive.py). One target holds what it finds."""

    def _settle_identities(self, targets: list[Target], scores: list) -> None:
        """After presence has settled: where several targets are tracked, the place to settle which is which after
        a crossing (MultiTracker with reunite_by_motion; tracker/reunite.py). One target is itself."""

    def _claimed_by_others(self, targets: list[Target], was_lost: list[bool], scores: list) -> dict:
        """id(lost target) -> the boxes its re-detection must not take (MultiTracker: the other targets' that are
        not lost). One target has no other target's box to avoid."""
        return {}

    def _after_tracked(self, target: Target, score: float, sample) -> None:
        just_lost = target.presence.settle_tracked(score, target.state, self.config)
        if target.learning is not None:
            if sample is not None:
                target.learning.propose(sample)
            target.learning.after_frame(target.state.online, target.presence.learning_state, just_lost)

    def _crop_buffer(self, count: int) -> np.ndarray:
        """Room for `count` search crops: one buffer, grown when more are needed (a view of its first rows)."""
        if len(self._crops) < count:
            self._crops = np.empty((count, *self._crops.shape[1:]), np.uint8)
        return self._crops[:count]

    def _run_network(self, crops: np.ndarray, templates: list, crops_each: list[int]):
        """One network run: the crops, in consecutive runs of crops_each[k], scored against templates[k] ->
        (logits, distances, features); features only with the online model, else None."""
        if len(templates) == 1:
            args = (crops, templates[0])
        else:
            owner = np.repeat(np.arange(len(templates), dtype=np.int64), crops_each)
            args = (crops, self._stacks.stacked(templates), owner)
        if self._online or self.verifier is not None:
            return self.engine.search_with_features(*args)
        return (*self.engine.search(*args), None)

    def _search_tiles(self, frame: np.ndarray, targets: list[Target],
                      excluded: dict | None = None) -> dict[int, tuple[float, np.ndarray]]:
        """For each lost target whose shadow scored low: the best peak over its next redetect_tiles tiles of the
        whole frame (presence.py plans them), all targets' tiles in one network run. Search regions are at the
        size the target had when last seen (the held box's), not the shadow's: following clutter, the shadow's
        scale drifts, and a template matched at the wrong scale scores low on the target itself. Peaks inside
        excluded[id(target)] (other targets' boxes, x, y, w, h) are left out.
        Returns id(target) -> (score, frame position)."""
        if not targets:
            return {}
        m, frame_size = self.engine.config, (frame.shape[1], frame.shape[0])
        plans = []
        for target in targets:
            span = (self.engine.response_size - 1) * m.stride * target.state.search_side / m.search_size
            plans.append(target.presence.next_tiles(frame_size, span, self.config.redetect_tiles))
        crops = self._crop_buffer(sum(len(centres) for centres in plans))
        k = 0
        for target, centres in zip(targets, plans):
            for centre in centres:
                crop_square(frame, (centre[0], centre[1]), target.state.search_side, m.search_size,
                            target.presence.shadow.fill, out=crops[k])
                k += 1
        templates = [t.presence.shadow.template for t in targets]
        logits, _, features = self._run_network(crops, templates, [len(p) for p in plans])
        hits, k = {}, 0
        for target, centres in zip(targets, plans):
            rows = slice(k, k + len(centres))
            scores = fused_scores(logits[rows], target.state.online, None if features is None else features[rows],
                                  self.config.online_weight)
            peak, position, tile = best_tile(scores, centres, m.stride, target.state.search_side, m.search_size,
                                             frame_size, target.presence.shadow.center,
                                             (excluded or {}).get(id(target), ()))
            if self.verifier is not None and tile is not None and peak > 0:  # the verifier's P(target there)
                shadow = target.presence.shadow
                window = box_window(features[k + tile], position, centres[tile], target.state.search_side, m)
                peak, evidence = self.verifier.score_window(shadow.identity, window, peak, logits[k + tile])
                if self.appearance is not None:
                    peak, _ = self.appearance.look(frame, shadow.looks, position, target.state.size, peak, evidence,
                                                   lost=True)
                if self.jumps is not None:
                    peak = self.jumps.tile_score(shadow, window, peak)
            hits[id(target)] = (peak, position)
            k += len(centres)
        return hits


def _result(target: Target, score: float, response: float, hold_lost_box: int = 1) -> TrackResult:
    state = target.presence.state
    shown = target.state if state != "lost" or hold_lost_box else target.presence.shadow
    cx, cy = shown.center
    w, h = shown.size
    return TrackResult(box=(float(cx - w / 2), float(cy - h / 2), float(w), float(h)), score=score,
                       lost=state == "lost", state=state, response=response)


class SiamTracker(TrackingLoop):
    """One target: init(frame, box), then update(frame) -> TrackResult every frame. Several SiamTrackers can share
    one engine; MultiTracker (tracker/multi.py) tracks several targets in one network run per frame."""

    def __init__(self, engine: Engine, config: TrackerConfig | None = None, verifier: Verifier | None = None) -> None:
        super().__init__(engine, config, verifier)
        self._target: Target | None = None

    def __repr__(self) -> str:
        where = "no target" if self._target is None else f"target {self._target.presence.state}"
        return f"SiamTracker(engine={self.engine.name}, rule={self.rule.name}, {where})"

    def as_opencv(self) -> OpenCVTracker:
        """This tracker behind OpenCV's tracker interface: update(frame) -> (ok, (x, y, w, h)) with ints."""
        return OpenCVTracker(self)

    def init(self, frame: np.ndarray, box, box_format: str = "xywh") -> None:
        """Start tracking the object in `box` (x, y, w, h, 0-based pixels) of `frame` (BGR, gray or BGRA uint8);
        a target tracked before is forgotten. box_format="xyxy" takes the box as corners x1, y1, x2, y2 (a
        detector's), "cxcywh" as its centre and size; results are x, y, w, h whatever the input was."""
        target = self._new_target(as_bgr(frame), box, box_format)
        with self._targets_lock:
            self._target = target

    def update(self, frame: np.ndarray) -> TrackResult:
        """The target in the next frame (same size as the init frame): its box, score and state."""
        frame = as_bgr(frame)
        with self._one_frame():
            if self._target is None:
                raise RuntimeError("call init(frame, box) before update(frame)")
            check_frame_size(frame, self._target)
            return self._step(frame, [self._target])[0]
