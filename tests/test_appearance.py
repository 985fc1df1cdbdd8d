"""The verifier's appearance check: the ImageNet cosine, its calibration, and the tracker asking only when unsure."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tracker.appearance import APPEARANCE_FILE, AppearanceNet, similarity
from tracker.config import TrackerConfig
from tracker.errors import UserError
from tracker.paths import weights_dir
from tracker.verifier import VERIFIER_FILE, load_verifier

DEMO_CLIP = __import__("pathlib").Path(__file__).resolve().parents[1] / "demos" / "data" / "pedestrians.mp4"


def test_similarity_is_the_cosine_of_the_central_cells():
    rng = np.random.default_rng(0)
    first = rng.normal(size=(6, 8, 8))
    moved_edges = first.copy()
    moved_edges[:, :2], moved_edges[:, 6:] = rng.normal(size=(2, 6, 2, 8))  # the context, not the box
    assert similarity(first, first) == pytest.approx(1.0)
    assert similarity(first, moved_edges) == pytest.approx(1.0)
    assert similarity(first, -first) == pytest.approx(-1.0)


def test_with_the_first_box_in_turns_the_best_turn_counts():
    rng = np.random.default_rng(1)
    first, other = rng.normal(size=(2, 6, 8, 8))
    turns = np.stack([other, first, -first])
    assert similarity(turns, first) == pytest.approx(1.0)
    assert similarity(turns, other) == pytest.approx(1.0)
    assert similarity(turns[:1], first) == pytest.approx(similarity(other, first))


def test_a_target_turned_upside_down_still_looks_like_itself():
    """The first box in four quarter turns: the same box in the frame turned by 180 degrees matches one turn
    exactly, where the first box alone sees it only as alike."""
    if not (weights_dir() / APPEARANCE_FILE).is_file():
        pytest.fail(f"the shipped {APPEARANCE_FILE} is missing: siamtrack export-appearance --out weights/")
    from conftest import read_frames

    frame = read_frames(DEMO_CLIP)[0]
    net = AppearanceNet(weights_dir() / APPEARANCE_FILE)
    height, width = frame.shape[:2]
    centre, size = (237.5, 292.5), (33, 91)  # the README's walker
    turns = net.features(frame, centre, size, turns=4)
    assert turns.shape[0] == 4 and np.allclose(turns[0], net.features(frame, centre, size), atol=1e-5)
    upside_down = net.features(np.ascontiguousarray(frame[::-1, ::-1]),
                               (width - centre[0], height - centre[1]), size)
    assert similarity(turns, upside_down) > 0.999  # the crop turned by two quarter turns, pixel for pixel
    assert similarity(turns[0], upside_down) < 0.95


def test_a_verifier_file_keeps_its_appearance_calibration(tmp_path):
    shipped = load_verifier(weights_dir() / VERIFIER_FILE)
    calibration = np.arange(7, dtype=float) / 10
    with_looks = shipped.with_calibration(shipped.calibration, calibration)
    again = load_verifier(with_looks.save(tmp_path / VERIFIER_FILE))
    assert again.has_appearance and np.array_equal(again.appearance_calibration, calibration)
    without = shipped.with_calibration(shipped.calibration, np.zeros(0))
    assert not load_verifier(without.save(tmp_path / "plain.npz")).has_appearance
    np.savez(tmp_path / "old.npz", **{k: getattr(shipped, k) for k in ("projection", "hidden_weight", "hidden_bias",
                                                                       "out_weight", "out_bias", "calibration")})
    assert not load_verifier(tmp_path / "old.npz").has_appearance  # a file from before the check
    assert load_verifier(tmp_path / "old.npz").appearance_turns == 1  # and from before turns
    turned = shipped.with_calibration(shipped.calibration, calibration, appearance_turns=4)
    assert load_verifier(turned.save(tmp_path / "turned.npz")).appearance_turns == 4
    assert load_verifier(turned.with_calibration(calibration[:6]).save(tmp_path / "kept.npz")).appearance_turns == 4
    np.savez(tmp_path / "bad.npz", **{**dict(np.load(tmp_path / "turned.npz")), "appearance_turns": np.array(7)})
    with pytest.raises(UserError, match="appearance_turns must be from 1 to 4"):
        load_verifier(tmp_path / "bad.npz")


def test_the_appearance_probability_follows_its_calibration():
    shipped = load_verifier(weights_dir() / VERIFIER_FILE)
    verifier = shipped.with_calibration(shipped.calibration, [0.1, 0, 0, 0, 0, 6.0, -4.0])
    evidence = np.array([2.0, 1, 1, 1, 1])
    assert verifier.appearance_probability(evidence, 0.5) == pytest.approx(1 / (1 + math.exp(-(0.2 + 3 - 4))))


def test_appearance_gate_is_a_share_and_verify_0_turns_it_off_with_the_verifier():
    """The shipped weights store an appearance_gate above 0: --set verify=0 must still give the box rule's score."""
    from tracker import SiamTracker

    with pytest.raises(ValueError, match="appearance_gate must be from 0"):
        TrackerConfig(verify=1, appearance_gate=1.5).validate()
    tracker = SiamTracker.from_pretrained(engine="onnx", verify=0)
    assert tracker.config.appearance_gate > 0 and tracker.verifier is None and tracker.appearance is None


def _tracked(gate: float, appearance_calibration, frames: int = 12):
    """The shipped model on the demo clip with the given gate and appearance calibration: per update, (score,
    evidence, the verifier's own probability from the evidence)."""
    from conftest import read_frames
    from tracker import SiamTracker
    from tracker.engines import load_engine

    engine = load_engine(None, "onnx", "cpu", 1)
    shipped = load_verifier(weights_dir() / VERIFIER_FILE)
    verifier = shipped.with_calibration(shipped.calibration, appearance_calibration)
    tracker = SiamTracker(engine, engine.tracker_config.replace(appearance_gate=gate), verifier=verifier)
    video = read_frames(DEMO_CLIP)[:frames]
    tracker.init(video[0], (221, 247, 33, 91))  # the README's walker
    rows = []
    for frame in video[1:]:
        score = tracker.update(frame).score
        evidence = next(iter(tracker.evidence.values()))
        rows.append((score, evidence, verifier.probability(evidence[:5])))
    return rows, verifier


def test_the_appearance_check_scores_the_frames_the_verifier_is_unsure_of():
    if not (weights_dir() / APPEARANCE_FILE).is_file():
        pytest.fail(f"the shipped {APPEARANCE_FILE} is missing: siamtrack export-appearance --out weights/")
    every, verifier = _tracked(1.0, [0, 0, 0, 0, 0, 8.0, -4.0])  # P = sigmoid(8 cosine - 4)
    assert all(np.isfinite(evidence[-1]) and -1 <= evidence[-1] <= 1 for _, evidence, _ in every)
    for score, evidence, _ in every:
        assert score == pytest.approx(1 / (1 + math.exp(-(8 * evidence[-1] - 4))))
    assert every[0][1][-1] > 0.5  # the box is still on the walker it started on
    none, _ = _tracked(1e-6, [0, 0, 0, 0, 0, 8.0, -4.0])
    for score, evidence, plain in none:  # sure frames: no look, the verifier's own score
        assert np.isnan(evidence[-1]) and score == pytest.approx(plain)


def test_a_gate_without_an_appearance_calibration_says_how_to_fit_one():
    with pytest.raises(UserError, match="appearance calibration.*calibrate-verifier .*--appearance"):
        _tracked(0.8, np.zeros(0), frames=2)


def test_a_broken_appearance_file_is_a_clear_error(tmp_path):
    (tmp_path / APPEARANCE_FILE).write_bytes(b"not an onnx graph")
    with pytest.raises(UserError, match="cannot load .*export-appearance"):
        AppearanceNet(tmp_path / APPEARANCE_FILE)


def test_export_appearance_rebuilds_the_shipped_file(tmp_path):
    """The shipped appearance.onnx is what `siamtrack export-appearance` makes from the pip package's weights."""
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from tracker.export.onnx_export import export_appearance

    path, difference = export_appearance(tmp_path)
    assert difference < 1e-4
    frame = np.random.default_rng(0).integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    made, shipped = AppearanceNet(path), AppearanceNet(weights_dir() / APPEARANCE_FILE)
    assert np.allclose(made.features(frame, (80, 60), (40, 30)), shipped.features(frame, (80, 60), (40, 30)),
                       atol=1e-4)


def test_redetect_look_also_looks_at_a_lost_targets_place_at_the_redetection_line():
    """redetect_look: a lost target's place scored at the re-detection line gets the appearance check above the
    gate too (a look-alike that does not look like the first box is not taken back); a tracked box above the
    gate, and a lost place under the line, are not looked at."""
    from tracker.appearance import AppearanceCheck

    class Net:
        def features(self, frame, center, size, turns=1):
            return np.ones((4, 8, 8))

    class Verifier:
        def appearance_probability(self, evidence, cosine):
            return 0.1  # "does not look like the first box"

    looks, evidence = np.ones((1, 4, 8, 8)), np.zeros(5)
    check = AppearanceCheck(Net(), 0.5, Verifier(), redetect_line=0.75)
    assert check.look(None, looks, (0, 0), (1, 1), 0.9, evidence)[0] == 0.9  # tracked, sure
    assert check.look(None, looks, (0, 0), (1, 1), 0.9, evidence, lost=True)[0] == 0.1  # lost, at the line
    assert check.look(None, looks, (0, 0), (1, 1), 0.7, evidence, lost=True)[0] == 0.7  # lost, under the line
    assert check.look(None, looks, (0, 0), (1, 1), 0.4, evidence)[0] == 0.1  # under the gate, as before
    without = AppearanceCheck(Net(), 0.5, Verifier())
    assert without.look(None, looks, (0, 0), (1, 1), 0.9, evidence, lost=True)[0] == 0.9
    with pytest.raises(ValueError, match="redetect_look must be 0"):
        TrackerConfig(redetect_look=2).validate()
