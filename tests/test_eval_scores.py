"""What eval writes and reports about trackers' scores: the state column of scores/<seq>.txt (and older files
without it), the score-quality table and reliability diagram, and the per-attribute table from meta.json."""
import json

import cv2
import numpy as np
import pytest
from conftest import DATA

from tracker.cli import main
from tracker.evaluation import runner
from tracker.evaluation.datasets import load_dataset
from tracker.result import TrackResult

BOX = (20.0, 20.0, 20.0, 20.0)
FRAMES = 10


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "data"
    metas = {"a": {"attributes": "FM,OCC"}, "b": {"attributes": ["occ", " SV "]}, "c": {"name": "c"}, "d": None}
    for name, meta in metas.items():
        (root / name).mkdir(parents=True)
        for i in range(1, FRAMES + 1):
            cv2.imwrite(str(root / name / f"{i:08d}.png"), np.full((96, 120, 3), 90, np.uint8))
        (root / name / "groundtruth.txt").write_text("\n".join([",".join(map(str, BOX))] * FRAMES) + "\n")
        (root / name / "meta.json").write_text("{broken" if meta is None else json.dumps(meta))
    return root


class Scripted:
    """After the first frame, in turns of three: off the target (IoU 0) at score 0.1, lost; on it at 0.9, tracking;
    on it at 0.8, uncertain."""

    def init(self, frame, box):
        self.i = 0

    def update(self, frame):
        self.i += 1
        kind = self.i % 3
        if kind == 0:
            return TrackResult((BOX[0] + 60, *BOX[1:]), 0.1, True, "lost")
        return TrackResult(BOX, 0.9 if kind == 1 else 0.8, False, "tracking" if kind == 1 else "uncertain")


class StatelessPeer(Scripted):
    reports_state = False  # as OpenCV's trackers: the lost flag only


def test_state_column_and_score_quality(dataset, tmp_path):
    _, seqs, _ = load_dataset(dataset)
    out = tmp_path / "out"
    assert runner.run(seqs, {"mine": Scripted(), "peer": StatelessPeer()}, out, progress=False) == {}
    mine_file, peer_file = (out / "mine" / "scores" / "a.txt").read_text(), (out / "peer" / "scores" / "a.txt").read_text()
    assert mine_file.startswith("# score,lost,state\n") and peer_file.startswith("# score,lost\n")
    rows = np.loadtxt(out / "mine" / "scores" / "a.txt", delimiter=",")
    assert rows[1:4].tolist() == [[0.9, 0, 0], [0.8, 0, 1], [0.1, 1, 2]]  # tracking, uncertain, lost
    scored = runner.score(out, seqs)
    mine = scored["mine"]["overall"]["score_quality"]
    # 4 sequences x 9 frames after the first: 3 off-target, 6 good each.
    assert (mine["good_frames"], mine["off_frames"]) == (24, 12)
    assert mine["auroc"] == 1.0 and mine["off_flagged"] == 1.0 and mine["good_flagged"] == 0.5
    assert mine["ece"] == pytest.approx((0.1 + 0.1 + 0.2) / 3) and mine["off_median_score"] == pytest.approx(0.1)
    # Per sequence, where the flags fall: each of its 6 good frames half tracking, half uncertain; 3 off, all lost.
    assert scored["mine"]["sequences"]["a"]["flags"] == {"good": 6, "good_uncertain": 3, "good_lost": 0, "off": 3,
                                                         "off_tracking": 0}
    assert "flags" not in scored["peer"]["sequences"]["a"]  # no states: its lost flag is all it says
    peer = scored["peer"]["overall"]["score_quality"]
    assert peer["good_flagged"] == 0.0 and peer["off_flagged"] == 1.0 and peer["flag"].startswith("lost flag only")
    # A folder written before the state was kept (two columns): read, judged by the lost flag.
    for f in (out / "mine" / "scores").iterdir():
        np.savetxt(f, np.loadtxt(f, delimiter=",")[:, :2], fmt=["%.5f", "%d"], delimiter=",", header="score,lost")
    old = runner.score(out, seqs)["mine"]["overall"]["score_quality"]
    assert old["good_flagged"] == 0.0 and old["auroc"] == 1.0 and old["flag"].startswith("lost flag only")


def test_eval_reports_score_quality_and_attributes(dataset, tmp_path, capsys):
    _, seqs, _ = load_dataset(dataset)
    assert [s.attributes for s in seqs] == [("FM", "OCC"), ("OCC", "SV"), (), ()]  # d's meta.json is broken
    out = tmp_path / "out"
    runner.run(seqs, {"mine": Scripted(), "peer": StatelessPeer()}, out, progress=False)
    assert main(["eval", str(dataset), "--rescore", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sequence_attributes"] == {"a": ["FM", "OCC"], "b": ["OCC", "SV"]}
    table = summary["attributes"]
    assert list(table) == ["SV", "OCC", "FM"]  # OTB's order
    assert table["OCC"]["sequences"] == 2 and table["OCC"]["name"] == "occlusion"
    per_seq = summary["trackers"]["mine"]["sequences"]
    assert table["OCC"]["trackers"]["mine"]["auc"] == pytest.approx((per_seq["a"]["auc"] + per_seq["b"]["auc"]) / 2)
    assert table["FM"]["trackers"]["peer"]["precision"] == pytest.approx(per_seq["a"]["precision"])
    # Printed with the overall table (before the per-sequence one), and in summary.md.
    for heading in ("## Score quality", "## Per attribute"):
        assert heading in printed and heading in (out / "summary.md").read_text()
    assert "| mine | 24 | 12 | 1.000 | 1.000 | 0.500 | 0.133 | 0.100 | uncertain or lost |" in printed
    assert "| OCC (occlusion) | 2 |" in printed
    # Per sequence, in summary.md only (with the per-sequence table).
    written = (out / "summary.md").read_text()
    assert "## Where the flags fall" not in printed and "| a | mine | 6 | 3 | 0 | 3 | 0 |" in written
    assert "| a | peer |" not in written.split("## Where the flags fall")[1].split("##")[0]
    assert (out / "reliability.png").stat().st_size > 0


def test_no_attribute_table_without_attributes(dataset, tmp_path, capsys):
    out = tmp_path / "out"
    _, seqs, _ = load_dataset(dataset, ["c", "d"])
    runner.run(seqs, {"mine": Scripted()}, out, progress=False)
    assert main(["eval", str(dataset), "--sequences", "c,d", "--rescore", str(out)]) == 0
    assert "## Per attribute" not in capsys.readouterr().out
    assert "attributes" not in json.loads((out / "summary.json").read_text())


@pytest.mark.skipif(not (DATA / "val-hard" / "list.txt").is_file(), reason=f"shared data not found at {DATA}")
def test_val_hard_carries_otb_attributes_and_val_none():
    _, hard, _ = load_dataset(DATA / "val-hard", ["Biker", "Skating2-2"])
    assert {s.name: s.attributes for s in hard} == {"Biker": ("SV", "OCC", "MB", "FM", "OPR", "OV", "LR"),
                                                     "Skating2-2": ("SV", "OCC", "DEF", "FM", "OPR")}
    _, val, _ = load_dataset(DATA / "val", ["Dog"])
    assert val[0].attributes == ()


def test_opencv_peer_state_follows_its_lost_flag():
    """OpenCV's trackers have no "uncertain": their state is the lost flag, and eval keeps no state column for them."""
    from tracker.evaluation.peers import OpenCVPeer

    class Refusing:
        def update(self, frame):
            return False, None

    peer = OpenCVPeer("mil")
    peer._cv, peer._box = Refusing(), (1.0, 2.0, 3.0, 4.0)
    result = peer.update(np.zeros((16, 16, 3), np.uint8))
    assert result.lost and result.state == "lost" and result.box == (1.0, 2.0, 3.0, 4.0)
    assert OpenCVPeer.reports_state is False
