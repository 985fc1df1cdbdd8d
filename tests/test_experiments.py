"""benchmarks/online_model_experiment.py (issue 10's online target model trials) still runs against the tracker's
internals it subclasses: a synthetic video folder, every method, the figures printed."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_video, write_video

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "online_model_experiment.py"


@pytest.fixture(scope="module")
def experiment():
    pytest.importorskip("onnx", reason="needs onnx (pip install '.[dev]')")
    spec = importlib.util.spec_from_file_location("online_model_experiment", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    frames, gt = synthetic_video(n_frames=20)
    root = tmp_path_factory.mktemp("exp") / "data"
    (root / "Curve").mkdir(parents=True)
    write_video(root / "Curve" / "video.avi", frames)
    np.savetxt(root / "Curve" / "groundtruth.txt", gt, fmt="%.2f", delimiter=",")
    return root


@pytest.mark.parametrize("configs", [
    '{"base": ["template", 0, 1.0, 1.0], "template": ["template", 0.05, 0.5, 0.0]}',
])
def test_experiment_runs_and_prints_figures(experiment, clip_folder, tmp_path, capsys, configs):
    assert experiment.main([str(clip_folder), "--out", str(tmp_path), "--configs", configs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == configs.count("[") and all("AUC 0." in line and "(1 sequences)" in line for line in lines)
    aucs = [float(line.split("AUC ")[1].split(",")[0]) for line in lines]
    assert min(aucs) > 0.5, lines  # the synthetic target is easy: every variant must still track it


def test_experiment_bad_configs(experiment, clip_folder, tmp_path, capsys):
    assert experiment.main([str(clip_folder), "--out", str(tmp_path), "--configs", '{"x": ["nope"]}']) == 2
    assert "unknown method" in capsys.readouterr().err


def test_dcf_rows_name_the_pair_they_need(experiment, clip_folder, tmp_path, capsys):
    """The correlation-filter rows read one trunk tensor of the EfficientNet int8 pair; on another pair (the
    shipped one now) they stop with a message saying so, before tracking anything."""
    configs = '{"dcf1": ["dcf", 1.0, 0.02, 0.1, 1.0, 0.8]}'
    assert experiment.main([str(clip_folder), "--out", str(tmp_path), "--configs", configs]) == 2
    assert "tied to the int8 EfficientNet pair" in capsys.readouterr().err


def test_template_similarity_prints_both_distributions(tmp_path, capsys):
    """benchmarks/template_similarity.py: two sequences, both percentile lines; a folder that is no dataset is a
    one-line error and exit 2."""
    spec = importlib.util.spec_from_file_location("template_similarity", SCRIPT.parent / "template_similarity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path / "data"
    for name, seed in (("A", 3), ("B", 9)):
        frames, gt = synthetic_video(n_frames=12, seed=seed)
        (root / name).mkdir(parents=True)
        write_video(root / name / "video.avi", frames)
        np.savetxt(root / name / "groundtruth.txt", gt, fmt="%.2f", delimiter=",")
    assert module.main([str(root), "--samples", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("same target") and lines[1].startswith("other objects"), lines
    values = [float(v) for line in lines for v in line.split("= ")[1].split(" / ")]
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert module.main([str(tmp_path / "nothing")]) == 2
    assert "error:" in capsys.readouterr().err
