"""The target verifier: feature windows, the numpy head against its torch twin, files, and the tracker with it on."""
from __future__ import annotations

import numpy as np
import pytest

from tracker.errors import UserError
from tracker.verifier import (VERIFIER_FILE, Verifier, feature_window, find_verifier, load_verifier,
                              window_origin)


def test_window_origin_is_the_centred_exemplar_and_moves_with_the_box():
    assert np.allclose(window_origin([0, 0], 16, 16), [4, 4])
    assert np.allclose(window_origin([16, -32], 16, 16), [5, 2])
    assert np.allclose(window_origin([500, -500], 16, 16), [8, 0])  # clamped inside the map


def test_feature_window_is_exact_on_whole_cells_and_bilinear_between():
    features = np.arange(2 * 16 * 16, dtype=np.float32).reshape(2, 16, 16)
    assert np.array_equal(feature_window(features, (3, 5)), features[:, 5:13, 3:11])
    half = feature_window(features, (3.5, 5))
    assert np.allclose(half, (features[:, 5:13, 3:11] + features[:, 5:13, 4:12]) / 2)


def _random_verifier(rng, calibration=(1.0, 0.0, 0.0)) -> Verifier:
    return Verifier(projection=rng.normal(size=(8, 6)).astype(np.float32),
                    hidden_weight=rng.normal(size=(5, 65)).astype(np.float32),
                    hidden_bias=rng.normal(size=5).astype(np.float32),
                    out_weight=rng.normal(size=5).astype(np.float32), out_bias=np.asarray(0.3, np.float32),
                    calibration=np.asarray(calibration, float), weights_sha256="abc")


def test_numpy_head_equals_its_torch_twin():
    torch = pytest.importorskip("torch")
    from tracker.training.verifier import VerifierNet

    net = VerifierNet(channels=6, projected=4, hidden=3)
    verifier = net.to_verifier("")
    rng = np.random.default_rng(0)
    template, window = rng.normal(size=(2, 6, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = float(net(torch.from_numpy(template[None]), torch.from_numpy(window[None]))[0])
    assert verifier.logit(template, window) == pytest.approx(expected, abs=1e-4)


def test_probability_follows_the_calibration():
    verifier = _random_verifier(np.random.default_rng(1), calibration=(2.0, 0.5, 0.1, 0.2, -0.3, -1.0))
    logits = np.zeros((15, 15))
    logits[7, 7], logits[0, 0] = 4.0, 1.0
    evidence = verifier.evidence(0.7, 0.9, logits)
    peak, margin, sidelobe = 4.0, 3.0, (4.0 - logits.mean()) / (logits.std() + 1e-6)
    assert np.allclose(evidence, [0.7, np.log(0.9 / 0.1), peak, margin, sidelobe])
    z = 2.0 * 0.7 + 0.5 * np.log(0.9 / 0.1) + 0.1 * peak + 0.2 * margin - 0.3 * sidelobe - 1.0
    assert verifier.probability(evidence) == pytest.approx(1 / (1 + np.exp(-z)))
    assert 0 < verifier.probability(np.full(5, 1e9)) <= 1


def test_a_three_weight_calibration_reads_head_response_and_bias():
    verifier = _random_verifier(np.random.default_rng(1), calibration=(2.0, 0.5, -1.0))
    z = 2.0 * 0.7 + 0.5 * np.log(0.9 / 0.1) - 1.0
    assert verifier.probability(verifier.evidence(0.7, 0.9, np.zeros((15, 15)))) == pytest.approx(1 / (1 + np.exp(-z)))


def test_the_peak_margin_looks_outside_the_peaks_neighbourhood():
    from tracker.verifier import response_shape

    logits = np.zeros((2, 15, 15))
    logits[1, 4, 4], logits[1, 5, 5], logits[1, 12, 12] = 5.0, 4.9, 2.0  # a broad peak and a distractor
    peak, margin, _ = response_shape(logits)
    assert peak == 5.0 and margin == pytest.approx(3.0)


def test_a_saved_verifier_loads_back_equal(tmp_path):
    verifier = _random_verifier(np.random.default_rng(2), calibration=(1.5, 0.2, 0.0, 0.1, 0.0, -0.1))
    back = load_verifier(verifier.save(tmp_path / VERIFIER_FILE))
    for name in ("projection", "hidden_weight", "hidden_bias", "out_weight", "out_bias", "calibration"):
        assert np.array_equal(getattr(back, name), getattr(verifier, name))
    assert back.weights_sha256 == "abc"


def test_a_broken_or_missing_verifier_file_is_a_clear_error(tmp_path):
    bad = tmp_path / VERIFIER_FILE
    bad.write_bytes(b"not numpy")
    with pytest.raises(UserError, match="cannot read the verifier"):
        load_verifier(bad)

    class Engine:
        weights_folder = tmp_path / "elsewhere"

    with pytest.raises(UserError, match="train-verifier.*verify=0"):
        find_verifier(Engine())


def _frames(folder, count):
    import cv2

    paths = sorted(folder.glob("*.jpg"))[:count]
    return [cv2.imread(str(p)) for p in paths]


def test_with_the_shipped_verifier_a_cut_to_another_scene_is_lost_within_a_few_frames():
    """The shipped default (the verifier on, lost_after 5, fast_lost_threshold 0.1) flags a cut to another video within 8 frames, and the
    target visible before the cut stays tracked; the previous default (no verifier, the box rule's saturated
    score, lost_after 20) does not."""
    import cv2

    from conftest import DATA
    from tracker import SiamTracker

    crossing, david = DATA / "val" / "Crossing", DATA / "val" / "David"
    if not (crossing.is_dir() and david.is_dir()):
        pytest.skip("needs ../shared/data/val")
    seen = _frames(crossing, 30)
    height, width = seen[0].shape[:2]
    elsewhere = [cv2.resize(f, (width, height)) for f in _frames(david, 20)]
    box = tuple(float(v) for v in (DATA / "val" / "Crossing" / "groundtruth.txt").read_text().split()[0].split(","))

    def states(**settings):
        tracker = SiamTracker.from_pretrained(**settings)
        tracker.init(seen[0], box)
        return [tracker.update(f).state for f in seen[1:] + elsewhere]

    shipped = states()
    previous = states(verify=0, lost_threshold=0.9, uncertain_margin=0.03, lost_after=20, redetect_margin=0.05,
                      hold_lost_box=1, fast_lost_threshold=0)
    cut = len(seen) - 1
    assert shipped[:cut].count("tracking") >= cut - 2
    assert "lost" in shipped[cut:cut + 8]
    assert "lost" not in previous[cut:cut + 8]  # what the verifier's calibrated score changes


def test_a_verifier_made_for_other_weights_is_refused(tmp_path):
    _random_verifier(np.random.default_rng(3)).save(tmp_path / VERIFIER_FILE)  # made for weights "abc"

    class Engine:
        weights_folder = tmp_path
        weights_sha256 = "def"

    with pytest.raises(UserError, match="other weights"):
        find_verifier(Engine())
    Engine.weights_sha256 = "abc"
    assert find_verifier(Engine()).weights_sha256 == "abc"


def test_the_shipped_weights_find_the_shipped_verifier_wherever_they_are(tmp_path):
    """The stored verify=1 travels with the weights: a copy of the shipped weights in a folder without
    verifier.npz (an export, a copied checkpoint) uses the shipped verifier, found by the weights' sha256; other
    weights there are refused, saying how to fix it."""
    from tracker.paths import weights_dir

    shipped = load_verifier(weights_dir() / VERIFIER_FILE)

    class Engine:
        weights_folder = tmp_path
        weights_sha256 = shipped.weights_sha256

    assert find_verifier(Engine()).weights_sha256 == shipped.weights_sha256
    Engine.weights_sha256 = "0" * 64  # other weights
    with pytest.raises(UserError, match=r"verify=1 needs the target verifier verifier.npz beside the weights.*verify=0"):
        find_verifier(Engine())


def test_a_copied_shipped_checkpoint_tracks_with_the_verifier(tmp_path):
    """The torch engine fingerprints its weights as the export does, so a copied checkpoint finds the verifier."""
    import shutil

    pytest.importorskip("torch")
    from tracker import SiamTracker
    from tracker.paths import default_weights_path

    copy = tmp_path / "mine.pt"
    shutil.copy(default_weights_path(), copy)
    tracker = SiamTracker.from_pretrained(str(copy), engine="torch")
    assert tracker.config.verify == 1 and tracker.verifier is not None


def test_the_verifier_refuses_a_box_rule_with_several_crops(siamfc_tracker_factory):
    """It reads the one crop the box was found in; the scale pyramid cuts three."""
    with pytest.raises(UserError, match="one search crop per target.*'pyramid' cuts 3"):
        siamfc_tracker_factory(verify=1)


def test_the_absence_weight_sets_how_much_the_made_absences_count():
    """calibrate-verifier --absence-weight: 0 fits the natural frames alone, 1 every frame alike, and in between
    the made absences pull the fit by their weight."""
    from sklearn.linear_model import LogisticRegression

    from tracker.training.verifier_cli import fit_calibration

    rng = np.random.default_rng(0)
    evidence = rng.normal(size=(600, 5))
    kind = np.repeat([0, 1, 2], 200)
    # Natural frames: the head logit decides; absent frames (kind 2) are off the target whatever it says.
    iou = np.where((evidence[:, 0] + 0.5 * rng.normal(size=600) > 0) & (kind != 2), 0.8, 0.0)

    def plain(rows):
        fit = LogisticRegression(C=1.0, max_iter=5000).fit(evidence[rows], iou[rows] >= 0.5)
        return [*fit.coef_[0], fit.intercept_[0]]

    np.testing.assert_allclose(fit_calibration(evidence, iou, kind, 0.0), plain(kind == 0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fit_calibration(evidence, iou, kind, 1.0), plain(kind >= 0), rtol=1e-4, atol=1e-4)
    biases = [fit_calibration(evidence, iou, kind, w)[-1] for w in (0.0, 0.5, 1.0)]
    assert biases[0] > biases[1] > biases[2]  # the more the absences count, the lower the score starts


def test_calibrate_verifier_checks_the_shipped_verifier_on_a_small_set(tmp_path, capfd):
    """The shipped config stores fast_lost_threshold 0.1; collecting evidence turns lost-and-found off (lost
    threshold 0), which must turn the fast rule off too rather than fail validation."""
    from tracker.cli import main

    assert main(["calibrate-verifier", str(_two_footages(tmp_path / "data")), "--check", "--no-progress"]) == 0
    out = capfd.readouterr().out
    assert "natural frames  verifier" in out and "absence runs    verifier" in out


def _two_footages(data):
    """A small set: two synthetic videos, so that each one's absence is filled with the other's frames."""
    from conftest import synthetic_video, write_video

    for name, seed in (("a", 1), ("b", 2)):
        frames, gt = synthetic_video(n_frames=110, width=200, height=150, seed=seed)
        folder = data / name
        folder.mkdir(parents=True)
        write_video(folder / "video.avi", frames)
        np.savetxt(folder / "groundtruth.txt", gt, fmt="%.2f", delimiter=",")
    return data


def test_calibrate_verifier_records_the_turns_its_appearance_calibration_was_fitted_on(tmp_path, capfd):
    import shutil

    from tracker.cli import main
    from tracker.paths import weights_dir

    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("template.onnx", "search.onnx", "appearance.onnx", VERIFIER_FILE):
        shutil.copy(weights_dir() / name, folder / name)
    data = _two_footages(tmp_path / "data")
    assert main(["calibrate-verifier", str(data), "--weights", str(folder), "--appearance", "--turns", "2",
                 "--no-progress"]) == 0
    fitted = load_verifier(folder / VERIFIER_FILE)
    assert fitted.has_appearance and fitted.appearance_turns == 2
    assert "appearance calibration:" in capfd.readouterr().out
    assert main(["calibrate-verifier", str(data), "--weights", str(folder), "--no-progress"]) == 0
    assert load_verifier(folder / VERIFIER_FILE).appearance_turns == 2  # a refit without --appearance keeps both
