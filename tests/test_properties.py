"""Property-based tests (hypothesis) of the three ways users hand numbers in: the --box text, the box itself, and
tracking-hyperparameter overrides. The property each time: the input is refused with a UserError / ValueError
that names what is wrong, or it is accepted and the tracker then runs on it with finite results, never a raw
exception in between."""
from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="needs hypothesis (pip install '.[dev]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tracker import SiamTracker, UserError  # noqa: E402
from tracker.config import TrackerConfig  # noqa: E402
from tracker.config import parse_overrides  # noqa: E402
from tracker.result import MAX_BOX_FACTOR, MIN_BOX_SIDE, MIN_INSIDE_SHARE, check_box, parse_box  # noqa: E402

RUNS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(allow_nan=False, allow_infinity=False)
anything_numeric = st.one_of(st.floats(), st.integers(-10**400, 10**400), st.text(max_size=6), st.booleans(),
                             st.none(), st.just("1e999"))


@functools.lru_cache(maxsize=1)
def shipped_engine():
    return SiamTracker.from_pretrained(engine="onnx").engine


def frame(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(width * 10007 + height)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def track_two_frames(config: TrackerConfig, box, size=(96, 72)):
    tracker = SiamTracker(shipped_engine(), config)
    tracker.init(frame(*size), box)
    return tracker.update(frame(*size))


# -- --box text ------------------------------------------------------------------------------------------------


@given(st.tuples(finite, finite, finite, finite))
def test_parse_box_round_trips_any_four_numbers(values):
    assert parse_box(",".join(repr(v) for v in values)) == values
    assert parse_box(" , ".join(repr(v) for v in values)) == values  # spaces are ignored


@given(st.text(max_size=40))
def test_parse_box_gives_four_floats_or_a_user_error(text):
    try:
        box = parse_box(text)
    except UserError as exc:
        assert "--box" in str(exc)
        return
    assert len(box) == 4 and all(type(v) is float for v in box)


# -- the box against its frame ---------------------------------------------------------------------------------


def usable(box, width: int, height: int) -> bool:
    """The documented rule: four finite numbers, each side from 1 px to 100x the frame's, overlapping the frame by
    at least a quarter of the box (or of the frame, for a box larger than it)."""
    x, y, w, h = box
    if not all(math.isfinite(v) for v in box):
        return False
    overlap = max(0.0, min(x + w, width) - max(x, 0.0)) * max(0.0, min(y + h, height) - max(y, 0.0))
    return (MIN_BOX_SIDE <= w <= MAX_BOX_FACTOR * width and MIN_BOX_SIDE <= h <= MAX_BOX_FACTOR * height
            and x < width and y < height and x + w > 0 and y + h > 0
            and overlap >= MIN_INSIDE_SHARE * min(w * h, width * height))


boxes = st.tuples(*(st.one_of(st.floats(), st.floats(-500, 500), st.floats(0, 3)) for _ in range(4)))


@given(box=boxes, width=st.integers(1, 4000), height=st.integers(1, 4000))
def test_check_box_accepts_exactly_the_usable_boxes(box, width, height):
    try:
        checked = check_box(box, (height, width))
    except UserError:
        assert not usable(box, width, height)
        return
    assert usable(box, width, height) and checked == tuple(float(v) for v in box)


@RUNS
@given(box=st.tuples(st.floats(-200, 200), st.floats(-200, 200), st.floats(0, 9600), st.floats(0, 7200)))
def test_every_accepted_box_tracks_with_finite_results(box):
    try:
        check_box(box, (72, 96))
    except UserError:
        with pytest.raises(UserError):
            track_two_frames(shipped_engine().tracker_config, box)
        return
    result = track_two_frames(shipped_engine().tracker_config, box)
    assert all(math.isfinite(v) for v in result.box) and 0.0 <= result.score <= 1.0


# -- tracking-hyperparameter overrides -------------------------------------------------------------------------

FIELDS = [f.name for f in dataclasses.fields(TrackerConfig)]
TYPES = {f.name: f.type for f in dataclasses.fields(TrackerConfig)}


@RUNS
@given(key=st.sampled_from(FIELDS), value=anything_numeric)
def test_an_override_is_refused_by_name_or_tracks(key, value):
    try:
        config = TrackerConfig().replace(**{key: value})
    except ValueError as exc:
        assert key in str(exc)
        return
    assert type(getattr(config, key)).__name__ == TYPES[key]
    try:
        result = track_two_frames(shipped_engine().tracker_config.replace(**{key: value}), (30.0, 20.0, 24.0, 18.0))
    except UserError as exc:  # valid on its own, but not for this model (num_scales > 1 for a box model)
        assert key in str(exc)
        return
    assert all(math.isfinite(v) for v in result.box)


@given(key=st.sampled_from(FIELDS), text=st.one_of(st.text(max_size=8), st.from_regex(r"-?\d{1,4}(\.\d{0,3})?", fullmatch=True)))
def test_set_on_the_command_line_is_refused_by_name_or_valid(key, text):
    try:
        config = TrackerConfig().replace(**parse_overrides([f"{key}={text}"]))
    except UserError as exc:
        assert "--set" in str(exc)
        return
    except ValueError as exc:
        assert key in str(exc)
        return
    assert type(getattr(config, key)).__name__ == TYPES[key]
