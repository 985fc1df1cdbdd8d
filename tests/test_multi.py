"""MultiTracker: several targets' crops in one network run per frame, each scored against its own template, with
per-target results equal to separate SiamTrackers' (onnxruntime; PyTorch within float noise), targets added and removed mid-stream, and lost
targets searched for in the same batch."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import iou, paste, target_patch, textured_background, two_target_video
from tracker import MultiTracker, SiamTracker, UserError

# Batching changes the order of float sums inside onnxruntime's kernels (a larger GEMM), so responses may differ in
# the last bits; boxes are compared to a hundredth of a pixel, scores to 1e-4.
BOX_ATOL, SCORE_ATOL = 1e-2, 1e-4
VERIFIED_SCORE_ATOL = 0.05  # the verifier's P: see _assert_same
# Eager PyTorch's CPU kernels pick their algorithm by batch size: on the same crops the shipped model's trunk
# features differ by ~5e-6 and its box distances by ~5e-5 between a batch of 3 and three batches of 1, and 30
# frames of tracking grow that to ~0.2 px. Still the same track, not the same bits.
TORCH_BOX_ATOL, TORCH_SCORE_ATOL = 1.0, 1e-2


def three_target_clip(n_frames: int = 30, hide: tuple[int, int] | None = None, seed: int = 5):
    """Three different textured objects on one background: two crossing the frame, one still. With `hide`
    (first, last), the second object is not drawn on those frames (it is absent, then comes back)."""
    rng = np.random.default_rng(seed)
    background = textured_background(rng, 320, 240)
    patches = [target_patch(rng, 40, 34), target_patch(rng, 34, 42, cells=4), target_patch(rng, 30, 30, cells=3)]
    frames, boxes = [], [[], [], []]
    for i in range(n_frames):
        frame = background.copy()
        centres = [(60 + 4 * i, 60 + 1.5 * i), (260 - 4 * i, 180 - 1.5 * i), (260, 50)]
        for k, (patch, centre) in enumerate(zip(patches, centres)):
            if k == 1 and hide is not None and hide[0] <= i <= hide[1]:
                boxes[k].append(boxes[k][-1])  # absent: the last visible box stands in
                continue
            boxes[k].append(paste(frame, patch, centre, 1.0))
        frames.append(frame)
    return frames, [np.array(b) for b in boxes]


def _separate(make, frames, box, start: int = 0, stop: int | None = None):
    tracker = make()
    tracker.init(frames[start], box)
    return [tracker.update(frame) for frame in frames[start + 1 : stop]]


def _assert_same(batched, alone, what, box_atol=BOX_ATOL, score_atol=SCORE_ATOL):
    assert len(batched) == len(alone), what
    np.testing.assert_allclose([r.box for r in batched], [r.box for r in alone], rtol=0, atol=box_atol, err_msg=what)
    np.testing.assert_allclose([r.response for r in batched], [r.response for r in alone], rtol=0, atol=score_atol,
                               err_msg=what)
    # The verifier's score (on by default) reads the features at the moved box: the box's sub-pixel float
    # differences between a batch and single runs move it a little more than the box rule's.
    np.testing.assert_allclose([r.score for r in batched], [r.score for r in alone], rtol=0,
                               atol=max(score_atol, VERIFIED_SCORE_ATOL), err_msg=what)
    assert [r.state for r in batched] == [r.state for r in alone], what


@pytest.fixture(scope="module")
def onnx_pair():
    """make() -> a SiamTracker, and the MultiTracker, on one shipped ONNX engine."""
    first = SiamTracker.from_pretrained(engine="onnx")
    return (lambda: SiamTracker(first.engine, first.config)), MultiTracker(first.engine, first.config)


@pytest.fixture(scope="module")
def torch_pair():
    pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")
    first = SiamTracker.from_pretrained(engine="torch", device="cpu")
    return (lambda: SiamTracker(first.engine, first.config)), MultiTracker(first.engine, first.config)


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_batched_equals_separate_trackers(engine, request):
    make, multi = request.getfixturevalue(f"{engine}_pair")
    frames, gts = three_target_clip()
    multi.init(frames[0], [tuple(g[0]) for g in gts])
    batched = [multi.update(frame) for frame in frames[1:]]
    assert all(list(r) == multi.targets for r in batched)
    for k, gt in enumerate(gts):
        ours = [r[multi.targets[k]] for r in batched]
        tolerance = (TORCH_BOX_ATOL, TORCH_SCORE_ATOL) if engine == "torch" else (BOX_ATOL, SCORE_ATOL)
        _assert_same(ours, _separate(make, frames, tuple(gt[0])), f"{engine}, target {k}", *tolerance)
        assert iou([r.box for r in ours], gt[1:]).min() > 0.5, f"{engine}, target {k} not tracked"


def test_batched_equals_separate_with_the_online_model(onnx_pair):
    """Each target's online model learns from its own crop's rows of the batch: in company as alone."""
    make, multi = onnx_pair
    config = multi.config.replace(online_weight=0.5, lost_threshold=0.6, online_update_every=3)
    together = MultiTracker(multi.engine, config)
    frames, gts = three_target_clip(n_frames=16)
    together.init(frames[0], [tuple(g[0]) for g in gts])
    batched = [together.update(frame) for frame in frames[1:]]
    for k, gt in enumerate(gts):
        ours = [r[together.targets[k]] for r in batched]
        alone = _separate(lambda: SiamTracker(multi.engine, config), frames, tuple(gt[0]))
        _assert_same(ours, alone, f"online, target {k}")
        assert iou([r.box for r in ours], gt[1:]).min() > 0.5, f"online, target {k} not tracked"


def test_one_network_run_per_frame(onnx_pair, monkeypatch):
    """All targets' crops (one each for a box-predicting model, a scale pyramid's otherwise) go through the
    search graph together, once per frame."""
    make, multi = onnx_pair
    frames, gts = three_target_clip(n_frames=4)
    multi.init(frames[0], [tuple(g[0]) for g in gts])
    calls = []

    def counting(real):
        def run(crops, template, owner=None):
            calls.append((len(crops), None if owner is None else list(owner)))
            return real(crops, template, owner)
        return run

    # The verifier (on by default) reads the features too: either entry point is one run of the search graph.
    monkeypatch.setattr(multi.engine, "search", counting(multi.engine.search))
    monkeypatch.setattr(multi.engine, "search_with_features", counting(multi.engine.search_with_features))
    for frame in frames[1:]:
        multi.update(frame)
    per = multi.rule.crops_per_target
    assert calls == [(3 * per, [k for k in range(3) for _ in range(per)])] * 3


def test_targets_added_and_removed_mid_stream(onnx_pair):
    make, multi = onnx_pair
    frames, gts = three_target_clip(n_frames=24)
    (first,) = multi.init(frames[0], [tuple(gts[0][0])])
    results = {first: [], "late": []}
    for i, frame in enumerate(frames[1:], start=1):
        out = multi.update(frame)
        results[first].append(out[first])
        if i > 8:
            results["late"].append(out[late])
        if i == 8:  # a second target from this frame on; its first update is on the next frame
            late = multi.add(frame, tuple(gts[1][8]))
            assert late == first + 1 and multi.targets == [first, late]
        if i == 16:
            multi.remove(first)
            assert multi.targets == [late] and len(multi) == 1
            break
    _assert_same(results[first], _separate(make, frames, tuple(gts[0][0]), 0, 17), "the first target")
    _assert_same(results["late"], _separate(make, frames, tuple(gts[1][8]), 8, 17), "the target added at frame 8")
    assert list(multi.update(frames[17])) == [late]
    multi.remove(late)
    assert multi.update(frames[18]) == {}
    assert multi.add(frames[18], tuple(gts[2][18])) == late + 1  # ids are never reused


def test_lost_target_searched_in_the_same_batch(onnx_pair):
    """One target goes away for 12 frames and comes back while the others stay: the lost one's tile search runs
    beside the others' crops. The two others get exactly what a tracker of its own gives; the hidden one too until
    it is lost. Then a tracker of its own takes one of the other objects (random textures this network scores as
    high as the hidden one), while in the MultiTracker those are held by the other targets: it stays lost while
    its object is away and finds its own object when it comes back."""
    make, multi = onnx_pair
    overrides = dict(lost_after=2)
    multi = MultiTracker(multi.engine, multi.config.replace(**overrides))
    frames, gts = three_target_clip(n_frames=34, hide=(8, 19))
    multi.init(frames[0], [tuple(g[0]) for g in gts])
    batched = [multi.update(frame) for frame in frames[1:]]
    separate = {}
    for k, gt in enumerate(gts):
        alone = SiamTracker(multi.engine, multi.config)
        alone.init(frames[0], tuple(gt[0]))
        separate[k] = [alone.update(f) for f in frames[1:]]
    for k in (0, 2):
        _assert_same([r[k] for r in batched], separate[k], f"target {k}")
    states = [r[1].state for r in batched]
    lost_at = states.index("lost")
    _assert_same([r[1] for r in batched[:lost_at + 1]], separate[1][:lost_at + 1], "target 1 until it is lost")
    taken = [i for i, r in enumerate(separate[1][lost_at:], lost_at) if r.state != "lost"][0]
    assert taken < 19 and iou([separate[1][taken].box], [gts[2][taken + 1]])[0] > 0.5, "alone, it takes target 2's"
    assert all(s == "lost" for s in states[lost_at:19]), states  # hidden on frames 8-19 (results 7-18)
    assert states[-1] == "tracking" and iou([batched[-1][1].box], [gts[1][-1]])[0] > 0.5, "found again"
    assert all(r[0].state != "lost" and r[2].state != "lost" for r in batched)
    assert iou([r[0].box for r in batched], gts[0][1:]).min() > 0.5


def test_several_targets_on_a_graph_without_the_owner_input(onnx_pair, monkeypatch):
    """Pairs exported before several targets per run (siamtrack-onnx/1: one template per call) still track
    several targets: one run per target, the outputs put back in the crops' order."""
    make, multi = onnx_pair
    engine = multi.engine
    frames, gts = three_target_clip(n_frames=6)
    multi.init(frames[0], [tuple(g[0]) for g in gts])
    expected = [multi.update(frame) for frame in frames[1:]]

    runs = []

    def one_template_per_run(images, template, owner, names):  # the /2 graph run as a /1 graph would be
        assert len(template) == 1 and not owner.any(), "a /1 graph takes one template per run"
        runs.append(len(images))
        return engine._search_session.run(names, {"search": images, "template": template, "owner": owner})

    monkeypatch.setattr(engine, "_search_owner_in", None)
    monkeypatch.setattr(engine, "_run_search", one_template_per_run)
    multi.init(frames[0], [tuple(g[0]) for g in gts])
    got = [multi.update(frame) for frame in frames[1:]]
    assert runs == [multi.rule.crops_per_target] * 3 * 5
    for a, b in zip(got, expected):
        _assert_same(list(a.values()), list(b.values()), "per-target runs")


def test_bad_input_gives_user_errors(onnx_pair):
    _, multi = onnx_pair
    frames, gts = three_target_clip(n_frames=3)
    multi.init(frames[0], [tuple(gts[0][0])])
    with pytest.raises(UserError, match="no target 99"):
        multi.remove(99)
    with pytest.raises(UserError, match="frame size changed"):
        multi.update(frames[1][:100])
    with pytest.raises(UserError, match="frame size changed"):
        multi.add(frames[1][:100], (10, 10, 20, 20))
    with pytest.raises(UserError, match="target 1"):
        multi.init(frames[0], [(10, 10, 20, 20), (10, 10, -5, 20)])
    assert multi.targets, "a refused init keeps the targets it had"


# -- the command line: --box repeated, the target column, colours ------------------------------------------------


@pytest.fixture(scope="module")
def two_target_clip(tmp_path_factory):
    from conftest import write_video

    frames, gt_a, gt_b = two_target_video()
    path = write_video(tmp_path_factory.mktemp("two") / "two.avi", frames)
    return path, gt_a, gt_b


def _box_text(box) -> str:
    return ",".join(f"{v:.2f}" for v in box)


def test_cli_tracks_several_boxes_into_one_csv(two_target_clip, tmp_path):
    from test_cli import read_csv

    from tracker.cli import main

    clip, gt_a, gt_b = two_target_clip
    both, alone = tmp_path / "both.csv", tmp_path / "alone.csv"
    video = tmp_path / "both.avi"
    assert main(["track", str(clip), "--box", _box_text(gt_a[0]), "--box", _box_text(gt_b[0]), "--boxes", str(both),
                 "--output", str(video), "--quiet"]) == 0
    rows = read_csv(both)
    assert len(rows) == 2 * len(gt_a)
    assert [(int(r[0]), int(r[8])) for r in rows] == [(i, k) for i in range(len(gt_a)) for k in (0, 1)]
    for k, gt in enumerate((gt_a, gt_b)):
        boxes = np.array([[float(v) for v in r[1:5]] for r in rows if r[8] == str(k)])
        assert iou(boxes, gt).min() > 0.5, f"target {k}"
    # Target 1 alone gives the same boxes (a second --box does not change the first target's track either).
    assert main(["track", str(clip), "--box", _box_text(gt_b[0]), "--boxes", str(alone), "--quiet"]) == 0
    single = np.array([[float(v) for v in r[1:6]] for r in read_csv(alone)])
    np.testing.assert_allclose(np.array([[float(v) for v in r[1:6]] for r in rows if r[8] == "1"]), single, atol=0.02)
    from conftest import read_frames

    assert len(read_frames(video)) == len(gt_a), "one video frame per frame, not per target"


def test_cli_mot_ids_are_targets_plus_one(two_target_clip, tmp_path):
    from tracker.cli import main

    clip, gt_a, gt_b = two_target_clip
    out = tmp_path / "b.mot"
    assert main(["track", str(clip), "--box", _box_text(gt_a[0]), "--box", _box_text(gt_b[0]), "--boxes", str(out),
                 "--format", "mot", "--max-frames", "3", "--quiet"]) == 0
    assert [line.split(",")[:2] for line in out.read_text().splitlines()] == \
        [[str(f), str(i)] for f in (1, 2, 3) for i in (1, 2)]


@pytest.mark.parametrize("extra, fragment", [
    (["--format", "otb"], "--format otb holds one target"),
    (["--boxes", "{tmp}/b.csv"], "target 1 (--box 5,5,-3,10)"),
])
def test_cli_several_boxes_refused_with_one_line(two_target_clip, tmp_path, capfd, extra, fragment):
    from test_cli import assert_one_line_error

    from tracker.cli import main

    clip, gt_a, _ = two_target_clip
    second = "5,5,-3,10" if "target 1" in fragment else "100,100,20,20"
    args = ["track", str(clip), "--box", _box_text(gt_a[0]), "--box", second,
            *[a.format(tmp=tmp_path) for a in extra]]
    if "--boxes" not in args:
        args += ["--boxes", str(tmp_path / "b.txt")]
    assert main(args) == 2
    assert_one_line_error(capfd.readouterr().err, fragment)
    assert not list(tmp_path.iterdir()), "nothing is written for a refused run"


def test_each_target_has_its_colour():
    from tracker.result import TrackResult
    from tracker.drawing import STATE_COLOURS, TARGET_COLOURS, draw_targets

    frame = np.zeros((120, 200, 3), np.uint8)
    shown = {0: TrackResult((10, 40, 30, 30), 0.9, False), 1: TrackResult((60, 40, 30, 30), 0.9, False),
             2: TrackResult((110, 40, 30, 30), 0.9, False, "uncertain"), 3: TrackResult((150, 40, 30, 30), 0.1, True,
                                                                                          "lost")}
    out = draw_targets(frame, shown)
    assert not frame.any(), "the frame passed in is not drawn on"
    left_edges = [tuple(int(c) for c in out[55, x]) for x in (10, 60, 110, 150)]
    assert left_edges == [TARGET_COLOURS[0], TARGET_COLOURS[1], STATE_COLOURS["uncertain"], STATE_COLOURS["lost"]]
    assert len(set(TARGET_COLOURS) | set(STATE_COLOURS.values())) == len(TARGET_COLOURS) + 2
    one = draw_targets(frame, {0: shown[1]})  # one target: green, as `siamtrack track` always drew it
    assert tuple(int(c) for c in one[55, 60]) == STATE_COLOURS["tracking"]


def test_bench_targets_times_batched_and_separate(two_target_clip, capfd, tmp_path):
    import cv2

    from tracker.cli import main

    clip, gt_a, _ = two_target_clip
    plot = tmp_path / "targets.png"
    assert main(["bench", str(clip), "--box", _box_text(gt_a[0]), "--targets", "3,1", "--frames", "6",
                 "--no-progress", "--plot", str(plot)]) == 0
    image = cv2.imread(str(plot))
    assert image is not None and image.shape[0] > 200 and image.std() > 10  # a drawn figure, not a blank file
    out = capfd.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("siamtrack ")]
    assert [(r[1], r[2]) for r in rows] == [("1", "batched"), ("1", "separate"), ("3", "batched"), ("3", "separate")]
    for r in rows:
        assert float(r[3]) > 0 and abs(float(r[4]) * int(r[1]) - float(r[3])) < 0.05  # ms/target = ms/frame / N
    assert all(float(r[-2]) <= 0.02 for r in rows if r[2] == "batched"), "batched boxes differ from separate ones"


def test_target_boxes_spread_over_the_frame():
    from tracker.evaluation.targets_bench import target_boxes

    boxes = target_boxes((10, 20, 30, 40), (240, 320, 3), 9)
    assert boxes[0] == (10, 20, 30, 40) and len(set(boxes)) == 9
    assert all(b[2:] == (30, 40) for b in boxes)
    centres = [(x + w / 2, y + h / 2) for x, y, w, h in boxes[1:]]
    assert all(0 < cx < 320 and 0 < cy < 240 for cx, cy in centres)


def test_bench_plot_needs_targets_and_a_png(two_target_clip, capfd, tmp_path):
    from test_cli import assert_one_line_error

    from tracker.cli import main

    clip, gt_a, _ = two_target_clip
    box = ["--box", _box_text(gt_a[0])]
    assert main(["bench", str(clip), *box, "--plot", str(tmp_path / "a.png")]) == 2
    assert_one_line_error(capfd.readouterr().err, "give --targets too")
    assert main(["bench", str(clip), *box, "--targets", "1", "--plot", str(tmp_path / "a.jpg")]) == 2
    assert_one_line_error(capfd.readouterr().err, "give a .png file name")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("value", ["0", "a,b", "", "1,300"])
def test_bench_targets_bad_counts(two_target_clip, capfd, value):
    from test_cli import assert_one_line_error

    from tracker.cli import main

    clip, gt_a, _ = two_target_clip
    assert main(["bench", str(clip), "--box", _box_text(gt_a[0]), "--targets", value]) == 2
    assert_one_line_error(capfd.readouterr().err, "--targets")


def test_several_boxes_refused_for_otb_wherever_they_come_from(onnx_pair):
    """--box, --select and r all go through one check: an OTB file holds one target."""
    from tracker.session import check_boxes

    _, multi = onnx_pair
    frames, gts = three_target_clip(n_frames=2)
    before = multi.init(frames[0], [tuple(gts[0][0])])
    with pytest.raises(UserError, match="--format otb holds one target"):
        check_boxes(frames[1], [tuple(gts[0][1]), tuple(gts[1][1])], True, "otb", 1)
    assert multi.targets == before, "a refused re-selection keeps the targets"
    check_boxes(frames[1], [tuple(gts[0][1])], True, "otb", 1)
    assert len(multi.init(frames[1], [tuple(gts[0][1])])) == 1


def test_update_before_any_target_raises_but_all_removed_returns_empty(onnx_pair):
    """As SiamTracker: update before init/add is a programming error. Once started, removing the last target is
    not: the stream goes on with {} until a new target is added."""
    _, shared = onnx_pair
    multi = MultiTracker(shared.engine, shared.config)
    frames, gts = three_target_clip(n_frames=3)
    with pytest.raises(RuntimeError, match=r"call init\(frame, boxes\) or add\(frame, box\) before update"):
        multi.update(frames[0])
    (only,) = multi.init(frames[0], [tuple(gts[0][0])])
    multi.remove(only)
    assert multi.update(frames[1]) == {}
    later = MultiTracker(shared.engine, shared.config)
    later.add(frames[0], tuple(gts[0][0]))
    assert list(later.update(frames[1])) == [0]


def test_repr_names_engine_rule_and_targets(onnx_pair):
    _, shared = onnx_pair
    multi = MultiTracker(shared.engine, shared.config)
    name, rule = shared.engine.name, shared.rule.name
    assert repr(multi) == f"MultiTracker(engine={name}, rule={rule}, no target)"
    frames, gts = three_target_clip(n_frames=2)
    multi.init(frames[0], [tuple(gts[0][0]), tuple(gts[1][0])])
    assert repr(multi) == f"MultiTracker(engine={name}, rule={rule}, targets 0: tracking, 1: tracking)"
    alone = SiamTracker(shared.engine, shared.config)
    assert repr(alone).startswith(f"SiamTracker(engine={name}, rule={rule}, ")


@pytest.mark.parametrize("box_format", ["xyxy", "cxcywh"])
def test_box_formats_track_as_their_xywh(onnx_pair, box_format):
    """A detector's x1,y1,x2,y2 (or centre and size) given with its box_format tracks exactly as its x,y,w,h."""
    make, shared = onnx_pair
    frames, gts = three_target_clip(n_frames=8)
    xywh = [tuple(float(v) for v in g[0]) for g in gts[:2]]
    as_given = {"xyxy": [(x, y, x + w, y + h) for x, y, w, h in xywh],
                "cxcywh": [(x + w / 2, y + h / 2, w, h) for x, y, w, h in xywh]}[box_format]

    alone, converted = make(), make()
    alone.init(frames[0], xywh[0])
    converted.init(frames[0], as_given[0], box_format=box_format)
    expected = [alone.update(f) for f in frames[1:]]
    _assert_same([converted.update(f) for f in frames[1:]], expected, "SiamTracker", box_atol=0, score_atol=0)

    multi = MultiTracker(shared.engine, shared.config)
    first, = multi.init(frames[0], as_given[:1], box_format=box_format)
    second = multi.add(frames[0], as_given[1], box_format=box_format)
    batched = [multi.update(f) for f in frames[1:]]
    _assert_same([r[first] for r in batched], expected, "MultiTracker.init")
    _assert_same([r[second] for r in batched], _separate(make, frames, xywh[1]), "MultiTracker.add")


def test_xyxy_corners_in_the_wrong_order_are_a_user_error(onnx_pair):
    make, _ = onnx_pair
    frames, _ = three_target_clip(n_frames=1)
    with pytest.raises(UserError, match="x2 must be greater than x1"):
        make().init(frames[0], (100, 80, 60, 120), box_format="xyxy")
    with pytest.raises(UserError, match="unknown box format 'yxyx': use one of xywh, xyxy, cxcywh"):
        make().init(frames[0], (10, 10, 20, 20), box_format="yxyx")
