"""`siamtrack batch`: manifests, the local pool and Ray give the CSVs a single `siamtrack track` run gives, a bad
video is recorded while the rest finish, and a killed worker or a killed batch plus a rerun end with the same
output, nothing tracked twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import synthetic_video, write_video
from test_cli import console_script
from tracker.batch import Job, read_manifest
from tracker.cli import main
from tracker.errors import UserError

ENV = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}


def box_text(box) -> str:
    return ",".join(f"{v:.3f}" for v in box)


def make_clips(folder: Path, frames_each: int, count: int = 3) -> list[tuple[Path, tuple]]:
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for k in range(count):
        frames, gt = synthetic_video(n_frames=frames_each, seed=20 + k)
        clips.append((write_video(folder / f"clip{k}.avi", frames), tuple(round(float(v), 3) for v in gt[0])))
    return clips


def write_manifest(path: Path, clips, extra_rows=()) -> Path:
    lines = ["video,x,y,w,h"] + [f"{clip.name},{box_text(box)}" for clip, box in clips] + list(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


def reference_csvs(clips, folder: Path) -> dict[str, bytes]:
    """What a single `siamtrack track --boxes` run writes for each clip."""
    folder.mkdir(exist_ok=True)
    out = {}
    for clip, box in clips:
        csv_path = folder / f"{clip.stem}.csv"
        assert main(["track", str(clip), "--box", box_text(box), "--boxes", str(csv_path), "--quiet"]) == 0
        out[clip.stem] = csv_path.read_bytes()
    return out


def done_entries(out: Path) -> list[dict]:
    """The lines of DIR/done.jsonl (none before the first job has ended)."""
    log = out / "done.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def batch(*args, timeout=600, **popen) -> subprocess.CompletedProcess:
    return subprocess.run(console_script() + ["batch", *map(str, args), "--no-progress"], capture_output=True,
                          text=True, timeout=timeout, env=ENV, stdin=subprocess.DEVNULL, **popen)


def long_batch(tmp_path: Path, frames_each: int):
    """(manifest, expected CSVs, out dir) for three clips long enough to interrupt a batch in the middle."""
    clips = make_clips(tmp_path / "clips", frames_each=frames_each)
    expected = reference_csvs(clips, tmp_path / "reference")
    return write_manifest(tmp_path / "clips" / "jobs.csv", clips), expected, tmp_path / "out"


_STARTED: list[subprocess.Popen] = []  # background batches, stopped after each test however it ended


def start_batch(manifest: Path, out: Path, workers: int, **popen) -> subprocess.Popen:
    """`siamtrack batch` running in the background (stdout and stderr piped unless given)."""
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen}
    process = subprocess.Popen(console_script() + ["batch", str(manifest), "--out", str(out), "--workers",
                                                   str(workers), "--no-progress"], env=ENV, **popen)
    _STARTED.append(process)
    return process


@pytest.fixture(autouse=True)
def no_batch_left_behind():
    """A test that fails half way must not leave its background batch (and so its workers, which die with it on
    Linux) running after pytest."""
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=60)


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    clips = make_clips(folder, frames_each=24)
    (folder / "garbage.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    return folder, clips, reference_csvs(clips, tmp_path_factory.mktemp("reference"))


# -- manifests -------------------------------------------------------------------------------------------------


def test_manifest_formats(tmp_path):
    (tmp_path / "v").mkdir()
    csv_manifest = tmp_path / "jobs.csv"
    csv_manifest.write_text('video,box,start,name\nv/a.mp4,"1,2,30,40",5,\nv/a.mp4,"1,2,30,40",0,first\n'
                            '/abs/b.avi,"3,4,5,6",,\n')
    jobs, problems = read_manifest(csv_manifest)
    assert problems == {}
    assert jobs == [Job("a", str(tmp_path / "v" / "a.mp4"), (1.0, 2.0, 30.0, 40.0), 5),
                    Job("first", str(tmp_path / "v" / "a.mp4"), (1.0, 2.0, 30.0, 40.0), 0),
                    Job("b", "/abs/b.avi", (3.0, 4.0, 5.0, 6.0), 0)]
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('{"video": "v/a.mp4", "box": [1, 2, 30, 40]}\n\n{"video": "v/a.mp4", "box": "1,2,3,4", "start": 2}\n')
    jobs, _ = read_manifest(jsonl)
    assert [j.name for j in jobs] == ["a", "a-2"] and jobs[1].start == 2 and jobs[1].box == (1.0, 2.0, 3.0, 4.0)


def test_box_formats_in_manifests(tmp_path):
    """--box-format: a CSV's x1,y1,x2,y2 (or cx,cy,w,h) columns, a quoted box column or JSONL boxes in that format,
    all read as the same x, y, w, h job."""
    want = [Job("a", str(tmp_path / "a.mp4"), (10.0, 20.0, 30.0, 40.0), 0)]
    (tmp_path / "xyxy.csv").write_text("video,x1,y1,x2,y2\na.mp4,10,20,40,60\n")
    (tmp_path / "cxcywh.csv").write_text('video,box\na.mp4,"25,40,30,40"\n')
    (tmp_path / "xyxy.jsonl").write_text('{"video": "a.mp4", "box": [10, 20, 40, 60]}\n')
    assert read_manifest(tmp_path / "xyxy.csv", box_format="xyxy") == (want, {})
    assert read_manifest(tmp_path / "cxcywh.csv", box_format="cxcywh") == (want, {})
    assert read_manifest(tmp_path / "xyxy.jsonl", box_format="xyxy") == (want, {})
    (tmp_path / "both.csv").write_text('video,box,x1,y1,x2,y2\na.mp4,"10,20,40,60",,,,\nb.mp4,,1,2,4,6\n')
    jobs, _ = read_manifest(tmp_path / "both.csv", box_format="xyxy")  # a box cell wins where it is filled
    assert [job.box for job in jobs] == [(10.0, 20.0, 30.0, 40.0), (1.0, 2.0, 3.0, 4.0)]


@pytest.mark.parametrize("name,text,box_format,match", [
    ("m.csv", "video,x1,y1,x2,y2\na.mp4,10,20,40,60\n", "xywh", "that header is xyxy, so add --box-format xyxy"),
    ("m.csv", "video,x,y,w,h\na.mp4,10,20,40,60\n", "xyxy", r"video and x1,y1,x2,y2 \(or box\) columns"),
    ("m.csv", "video,x1,y1,x2,y2\na.mp4,40,20,10,60\n", "xyxy", "m.csv line 2: box 40,20,10,60 is x1,y1,x2,y2"),
    ("m.jsonl", '{"video": "a.mp4"}\n', "cxcywh", r"line 1: expected .*\[cx, cy, w, h\]"),
    (None, None, "xyxy", "is a folder, whose box files .* are x,y,w,h"),
])
def test_bad_box_formats_say_what_to_do(name, text, box_format, match, tmp_path):
    path = tmp_path / name if name else tmp_path
    if name:
        path.write_text(text)
    with pytest.raises(UserError, match=match):
        read_manifest(path, box_format=box_format)


def test_folder_manifest(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a_init.txt").write_text("10,20,30,40\n")
    (tmp_path / "b.avi").write_bytes(b"")
    (tmp_path / "b_groundtruth.txt").write_text("1\t2\t3\t4\n5,6,7,8\n")
    (tmp_path / "c.mp4").write_bytes(b"")  # no box file
    (tmp_path / "Seq").mkdir()
    (tmp_path / "Seq" / "video.mp4").write_bytes(b"")
    (tmp_path / "Seq" / "groundtruth.txt").write_text("7,8,9,10\n")
    jobs, problems = read_manifest(tmp_path)
    assert [(j.name, j.box) for j in jobs] == [("Seq", (7.0, 8.0, 9.0, 10.0)), ("a", (10.0, 20.0, 30.0, 40.0)),
                                               ("b", (1.0, 2.0, 3.0, 4.0))]
    assert list(problems) == ["c"] and "c_init.txt" in problems["c"]


@pytest.mark.parametrize("name,text,match", [
    ("m.csv", "video,x,y\na.mp4,1,2\n", "needs a header with video and x,y,w,h"),
    ("m.csv", "video,x,y,w,h\na.mp4,1,2,x,4\n", "m.csv line 2: box must be x,y,w,h numbers"),
    ("m.csv", "video,x,y,w,h,start\na.mp4,1,2,3,4,-1\n", "line 2: start must be >= 0"),
    ("m.jsonl", '{"video": "a.mp4"}\n', "line 1: expected"),
    ("m.jsonl", "{not json\n", "line 1: not JSON"),
    ("m.txt", "a.mp4\n", "a .csv, a .jsonl or a folder"),
])
def test_bad_manifests_name_the_line(name, text, match, tmp_path):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(UserError, match=match):
        read_manifest(path)


def test_missing_manifest_is_one_line(tmp_path):
    done = batch(tmp_path / "nope.csv", "--out", tmp_path / "out")
    assert done.returncode == 2 and done.stderr.strip() == f"siamtrack: error: manifest not found: {tmp_path / 'nope.csv'}"


# -- the local pool --------------------------------------------------------------------------------------------


def test_pool_matches_single_runs_records_failures_and_resumes(short_clips, tmp_path):
    folder, clips, expected = short_clips
    manifest = write_manifest(folder / "jobs.csv", clips, ["garbage.avi,1,2,30,40", "clip0.avi,900,900,10,10"])
    out = tmp_path / "out"
    done = batch(manifest, "--out", out, "--workers", "2")
    assert done.returncode == 1, done.stderr  # two jobs failed; the others finished
    for name, data in expected.items():
        assert (out / f"{name}.csv").read_bytes() == data, f"{name}: batch CSV differs from `siamtrack track`"
    entries = {e["name"]: e for e in done_entries(out)}
    assert {n: e["status"] for n, e in entries.items()} == {"clip0": "done", "clip1": "done", "clip2": "done",
                                                             "garbage": "failed", "clip0-2": "failed"}
    assert "cannot read video" in entries["garbage"]["error"] and "outside" in entries["clip0-2"]["error"]
    assert not (out / "garbage.csv").exists() and list(out.glob(".*partial*")) == []
    assert "frames/s across all videos" in done.stdout and "2 job(s) failed: see" in done.stderr

    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv")}
    again = batch(manifest, "--out", out, "--workers", "2")
    assert "3 already done, 2 to track" in again.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.csv")} == mtimes  # nothing tracked twice
    assert sum(e["status"] == "done" for e in done_entries(out)) == 3


def test_a_manifest_of_detector_boxes_tracks_as_its_xywh_twin(short_clips, tmp_path):
    folder, clips, expected = short_clips
    manifest = tmp_path / "corners.csv"
    manifest.write_text("video,x1,y1,x2,y2\n" + "".join(
        f"{folder / clip.name},{x:.3f},{y:.3f},{x + w:.3f},{y + h:.3f}\n" for clip, (x, y, w, h) in clips))
    out = tmp_path / "out"
    done = batch(manifest, "--out", out, "--workers", "1", "--box-format", "xyxy")
    assert done.returncode == 0, done.stderr
    assert {p.stem: p.read_bytes() for p in out.glob("*.csv")} == expected


def test_box_file_formats_are_what_track_writes_and_a_dir_keeps_its_own(short_clips, tmp_path):
    folder, clips, _ = short_clips
    clip, box = clips[0]
    manifest = tmp_path / "one.csv"
    manifest.write_text(f"video,x,y,w,h\n{folder / clip.name},{box_text(box)}\n")
    out = tmp_path / "out"
    for fmt in ("otb", "mot"):
        single = tmp_path / f"single.{fmt}.txt"
        assert main(["track", str(folder / clip.name), "--box", box_text(box), "--boxes", str(single), "--format", fmt,
                     "--quiet"]) == 0
        done = batch(manifest, "--out", out / fmt, "--format", fmt)
        assert done.returncode == 0, done.stderr
        assert [p.name for p in (out / fmt).glob("clip*")] == [f"{clip.stem}.txt"]
        assert (out / fmt / f"{clip.stem}.txt").read_bytes() == single.read_bytes()
    refused = batch(manifest, "--out", out / "mot")
    assert refused.returncode == 2 and "other settings (format: mot there, csv now)" in refused.stderr
    again = batch(manifest, "--out", out / "mot", "--format", "mot")
    assert again.returncode == 0 and "1 already done, 0 to track" in again.stderr


def test_folder_of_videos_with_init_files(short_clips, tmp_path):
    folder, clips, expected = short_clips
    videos = tmp_path / "videos"
    videos.mkdir()
    for clip, box in clips:
        (videos / clip.name).symlink_to(clip)
        (videos / f"{clip.stem}_init.txt").write_text(box_text(box) + "\n")
    out = tmp_path / "out"
    done = batch(videos, "--out", out, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert {p.stem: p.read_bytes() for p in out.glob("*.csv")} == expected


def _worker_pid_of_a_running_job(out: Path, deadline: float) -> int:
    while time.monotonic() < deadline:
        for partial in out.glob(".*.partial.csv"):
            if len(partial.read_bytes().splitlines()) >= 5:
                return int(partial.name.split(".")[-3])
        time.sleep(0.05)
    raise AssertionError("no job started within the time limit")


def test_a_killed_worker_is_retried_and_a_rerun_tracks_nothing(tmp_path):
    manifest, expected, out = long_batch(tmp_path, frames_each=90)
    process = start_batch(manifest, out, 2)
    os.kill(_worker_pid_of_a_running_job(out, time.monotonic() + 120), signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "a worker process died; running" in stderr
    assert {p.stem: p.read_bytes() for p in out.glob("*.csv")} == expected
    assert sorted(e["name"] for e in done_entries(out)) == ["clip0", "clip1", "clip2"]  # one line each
    assert list(out.glob(".*partial*")) == []
    again = batch(manifest, "--out", out)
    assert again.returncode == 0 and "3 already done, 0 to track" in again.stderr


def test_a_killed_batch_resumes_without_tracking_twice(tmp_path):
    manifest, expected, out = long_batch(tmp_path, frames_each=60)
    process = start_batch(manifest, out, 1, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not ((out / "done.jsonl").is_file() and done_entries(out)):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the batch and its workers, as a power cut would
    process.wait(timeout=60)
    finished = {e["name"] for e in done_entries(out)}
    assert 1 <= len(finished) < 3
    again = batch(manifest, "--out", out, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} already done, {3 - len(finished)} to track" in again.stderr
    assert {p.stem: p.read_bytes() for p in out.glob("*.csv")} == expected
    names = [e["name"] for e in done_entries(out)]
    assert sorted(names) == ["clip0", "clip1", "clip2"], "each job tracked exactly once"
    assert list(out.glob(".*partial*")) == []


# -- Ray -------------------------------------------------------------------------------------------------------


def test_ray_local_matches_single_runs(short_clips, tmp_path):
    try:
        import ray  # noqa: F401
    except ImportError:
        pytest.skip("ray is not installed (pip install '.[batch]'); the local pool is tested without it")
    folder, clips, expected = short_clips
    manifest = write_manifest(folder / "ray_jobs.csv", clips, ["garbage.avi,1,2,30,40"])
    out = tmp_path / "out"
    done = batch(manifest, "--out", out, "--workers", "2", "--ray")
    assert done.returncode == 1, done.stderr
    assert "on Ray (local)" in done.stderr
    assert {p.stem: p.read_bytes() for p in out.glob("*.csv")} == expected
    assert {e["name"]: e["status"] for e in done_entries(out)}["garbage"] == "failed"


def test_sigterm_stops_the_batch_cleanly_and_a_rerun_finishes(tmp_path):
    manifest, expected, out = long_batch(tmp_path, frames_each=90)
    process = start_batch(manifest, out, 2)
    _worker_pid_of_a_running_job(out, time.monotonic() + 120)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1] == "siamtrack: stopped by SIGTERM"
    assert list(out.glob(".*partial*")) == []  # the stopped workers' partial files are gone
    finished = [e["name"] for e in done_entries(out)]  # every line parses
    again = batch(manifest, "--out", out)
    assert again.returncode == 0, again.stderr
    assert {p.stem: p.read_bytes() for p in out.glob("*.csv")} == expected
    assert sorted(e["name"] for e in done_entries(out)) == ["clip0", "clip1", "clip2"]
    assert len(finished) < 3


# -- robustness of the scheduler and the log -------------------------------------------------------------------


def crash_on_poison(job, settings, out_dir):
    """A job function for run_pool: 'poison' kills its worker process, the others report success."""
    from tracker.batch import jobs as batch_module

    if batch_module._PROGRESS is not None:
        batch_module._PROGRESS.put(("start", job.name))
    if job.name == "poison":
        time.sleep(0.5)  # let the start message reach the parent
        os._exit(3)
    time.sleep(0.2)
    return {"status": "done", "frames": 1, "seconds": 0.2}


def test_a_job_that_kills_its_worker_does_not_fail_the_others(tmp_path):
    from tracker.batch import MAX_ATTEMPTS, Settings, run_pool

    jobs = [Job(name, "/none.mp4", (1.0, 2.0, 3.0, 4.0)) for name in ("poison", "a", "b", "c", "d")]
    results = {}
    run_pool(jobs, Settings(), tmp_path, 1, lambda job, r: results.__setitem__(job.name, r), lambda n: None,
             job_function=crash_on_poison)
    assert {n: r["status"] for n, r in results.items()} == {"poison": "failed", "a": "done", "b": "done",
                                                           "c": "done", "d": "done"}
    assert f"died {MAX_ATTEMPTS} times" in results["poison"]["error"]


def test_done_log_survives_a_torn_last_line(tmp_path):
    from tracker.batch import DoneLog

    log_path = tmp_path / "done.jsonl"
    log_path.write_text('{"key": "k1", "name": "a", "status": "done"}\n[1]\n{"key": "k2", "sta')
    (tmp_path / "a.csv").write_text("0,1,2,3,4,1.0000,0\n")
    log = DoneLog(tmp_path)
    assert set(log.done) == {"k1"}
    log.record(Job("b", "/b.mp4", (1.0, 2.0, 3.0, 4.0)), "k3", {"status": "done", "frames": 1, "seconds": 0.1})
    assert set(DoneLog(tmp_path).done) == {"k1", "k3"}  # the torn line did not swallow the new record


def test_folder_manifest_reports_a_bad_box_file_and_goes_on(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"")
    (tmp_path / "a_init.txt").write_text("1,2,3,4\n")
    (tmp_path / "b.mp4").write_bytes(b"")
    (tmp_path / "b_init.txt").write_text("")
    jobs, problems = read_manifest(tmp_path)
    assert [j.name for j in jobs] == ["a"] and "empty" in problems["b"]


def test_excel_csv_and_bad_encodings(tmp_path):
    excel = tmp_path / "excel.csv"
    excel.write_bytes("\ufeffvideo, x,y,w,h\r\na.mp4,1,2,3,4\r\n".encode("utf-8"))
    assert read_manifest(excel)[0][0].box == (1.0, 2.0, 3.0, 4.0)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("video,x,y,w,h\nvid\xe9o.mp4,1,2,3,4\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8"):
        read_manifest(latin)


@pytest.mark.parametrize("args,match", [
    (["--threads", "-1"], "--threads must be >= 1"),
    (["--gpu-fraction", "2.5"], "--gpu-fraction must be from 0 to 1"),
])
def test_bad_batch_options(args, match, short_clips, tmp_path):
    folder, clips, _ = short_clips
    done = batch(write_manifest(folder / "opts.csv", clips[:1]), "--out", tmp_path / "out", *args)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("siamtrack: error: ")
    assert match in done.stderr and "Traceback" not in done.stderr


def test_gpu_fraction_without_gpus_is_refused_not_queued_for_ever(short_clips, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (pip install '.[batch]')")
    folder, clips, _ = short_clips
    done = batch(write_manifest(folder / "gpu.csv", clips[:1]), "--out", tmp_path / "out", "--gpu-fraction", "0.5",
                 "--ray", timeout=180)
    assert done.returncode == 2 and "this Ray cluster has none" in done.stderr, done.stderr
