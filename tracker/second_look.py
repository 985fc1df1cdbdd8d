"""A second look on uncertain frames (issue 27, item 3; opt-in, verify=1 only).

With verify=1 a frame's score is the target verifier's P(box on target). When the first look scores under
lost_threshold + uncertain_margin (the frame would be "uncertain" or low), the tracker looks again, in one more
network run for that target, and only then:

* second_template=1: the same search region, scored against a second template: the exemplar cut at the box of
  the last frame the verifier confirmed (state "tracking", score >= second_template_gate), REPLACED (never
  blended) at most once every second_template_every frames. Until the first replacement it is the first template,
  and a look with it would repeat the first look, so none is taken.
* wide_search > 1: a search region wide_search times wider around the same centre, against the first template,
  for a target that moved further than the search region reaches.

Each look moves a copy of the state by the box rule; the verifier scores each move against the FIRST template's
identity features (the second template only proposes, it never defines the target), and the best move is taken
when it scores higher than the first look's. Frames the first look is sure of cost nothing extra.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .box_rules import keep_in_frame
from .crop import context_side, crop_square


@dataclass
class SecondTemplate:
    """One target's second template (its shadow, while lost, shares it)."""

    template: object  # engine-specific features: the first template's until a confirmed frame replaces them
    frames_since: int = 0  # frames tracked since the template was cut


class SecondLook:
    """The tracking loop's second look: look() on each state's step, after_tracked() after presence settles."""

    def __init__(self, engine, rule, verifier, config) -> None:
        self.engine, self.rule, self.verifier, self.config = engine, rule, verifier, config
        self.below = config.lost_threshold + config.uncertain_margin  # a first look under this gets a second
        self.runs = 0  # network runs of second looks
        self.replacements = 0  # second templates cut
        size = engine.config.search_size
        self._crops = np.empty((2, size, size, 3), np.uint8)

    def new_template(self, state) -> SecondTemplate | None:
        """A new target's second template (`state`: its tracking.TargetState, with the first template)."""
        return SecondTemplate(state.template) if self.config.second_template else None

    def look(self, frame: np.ndarray, state, before: tuple, score: float) -> tuple | None:
        """After the first look moved `state` (tracking.TargetState, or a lost target's shadow) from `before`
        (center, size, search_side) and the verifier scored it `score`: when that is under `below`, the second
        look. Returns None when the first look's move stands, else (score, box rule's score, verifier evidence) of
        the move taken, with `state` moved there."""
        if not score < self.below:
            return None
        looks = self._looks(state)
        if not looks:
            return None
        logits, distances, features = self._run(frame, state, before, looks)
        best = None
        for k, (factor, _) in enumerate(looks):
            trial = dataclasses.replace(state, center=before[0].copy(), size=before[1].copy(),
                                        search_side=before[2] * factor)
            rows = slice(k, k + 1)
            response = self.rule.move(trial, logits[rows], None if distances is None else distances[rows],
                                      features[k])
            response = keep_in_frame(frame, trial, before, response, self.config)
            if not response > 0:  # a non-finite answer: no move to take
                continue
            verified, evidence = self.verifier.score_move(state.identity, features[k], trial.center, before[0],
                                                          before[2] * factor, self.engine.config, response,
                                                          logits[rows])
            if verified > score and (best is None or verified > best[0]):
                best = (verified, response, evidence, trial)
        if best is None:
            return None
        state.center, state.size, state.search_side = best[3].center, best[3].size, best[3].search_side
        return best[:3]

    def after_tracked(self, frame: np.ndarray, state, presence_state: str, score: float) -> None:
        """After a tracked (not lost) target's frame settled: replace its second template when the verifier
        confirmed the frame and the last one was cut at least second_template_every frames ago."""
        second, c = state.second, self.config
        if second is None:
            return
        second.frames_since += 1
        if presence_state != "tracking" or score < c.second_template_gate or \
                second.frames_since < c.second_template_every:
            return
        side = context_side(*state.size, c.context_amount)
        exemplar = crop_square(frame, (state.center[0], state.center[1]), side, self.engine.config.exemplar_size,
                               state.fill)
        second.template, second.frames_since = self.engine.template(exemplar[None]), 0
        self.replacements += 1

    def _looks(self, state) -> list[tuple[float, object]]:
        """(search region side factor, template) of each second look this state gets."""
        looks = []
        second = state.second
        if second is not None and second.template is not state.template:
            looks.append((1.0, second.template))
        if self.config.wide_search > 1:
            looks.append((self.config.wide_search, state.template))
        return looks

    def _run(self, frame: np.ndarray, state, before: tuple, looks: list) -> tuple:
        """All looks' crops, cut around `before`'s centre, through the network in one run."""
        crops = self._crops[:len(looks)]
        for k, (factor, _) in enumerate(looks):
            crop_square(frame, (before[0][0], before[0][1]), before[2] * factor, self.engine.config.search_size,
                        state.fill, out=crops[k])
        templates = [template for _, template in looks]
        self.runs += 1
        if len(templates) == 1:
            return self.engine.search_with_features(crops, templates[0])
        return self.engine.search_with_features(crops, self.engine.stack_templates(templates),
                                                np.arange(len(templates), dtype=np.int64))


def second_look_for(engine, rule, verifier, config) -> SecondLook | None:
    """The tracking loop's second look, or None when config turns neither lever on (then nothing changes)."""
    if verifier is None or not (config.second_template or config.wide_search > 1):
        return None
    return SecondLook(engine, rule, verifier, config)
