"""`siamtrack batch` when things go wrong (issue 23, the batch rows): manifests with paths OpenCV cannot take,
repeated lines, unlabelled videos, a rerun with other settings, two batches on one --out, a killed batch's
workers, a full disk. Each test runs the command as a user would and checks the exit status, the message and what
is on disk after."""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from test_batch import (batch, done_entries, make_clips, no_batch_left_behind,  # noqa: F401  (autouse)
                        reference_csvs, write_manifest)


def csvs(out: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in out.glob("*.csv")}


def last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two short clips and what `siamtrack track --boxes` writes for each."""
    folder = tmp_path_factory.mktemp("clips")
    made = make_clips(folder, frames_each=16, count=2)
    return made, reference_csvs(made, tmp_path_factory.mktemp("reference"))


def labelled_folder(folder: Path, clips, labelled: int) -> Path:
    """A folder manifest: the clips, the first `labelled` of them with a <stem>_init.txt."""
    folder.mkdir()
    for k, (clip, box) in enumerate(clips):
        shutil.copy(clip, folder / clip.name)
        if k < labelled:
            (folder / f"{clip.stem}_init.txt").write_text(",".join(map(str, box)) + "\n")
    return folder


# -- manifests -------------------------------------------------------------------------------------------------


def test_a_nul_byte_in_a_manifest_path_is_one_line_naming_the_line(tmp_path):
    manifest = tmp_path / "nul.csv"
    manifest.write_bytes(b"video,x,y,w,h\n\0\0\0,1,2,3,4\n")
    done = batch(manifest, "--out", tmp_path / "out")
    assert done.returncode == 2, done.stderr
    assert last_line(done.stderr).startswith("siamtrack: error: nul.csv line 2: the video path")
    assert "NUL byte" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / "done.jsonl").exists()


def test_a_path_that_is_not_utf8_fails_that_job_and_the_others_run(clips, tmp_path):
    made, expected = clips
    folder = labelled_folder(tmp_path / "videos", made, labelled=2)
    # A file name with a byte that is not UTF-8 (as a camera or an old archive may write): OpenCV used to crash
    # the whole batch on it (exit 139, no message).
    os.rename(os.fsencode(folder / made[1][0].name), os.fsencode(folder) + b"/bad\xff.avi")
    os.rename(os.fsencode(folder / f"{made[1][0].stem}_init.txt"), os.fsencode(folder) + b"/bad\xff_init.txt")
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"video": str(made[0][0]), "box": list(made[0][1])}) + "\n"
                     + json.dumps({"video": "bad\udcff.avi", "box": [1, 2, 3, 4]}) + "\n")
    for manifest, where in ((folder, r"videos/bad\udcff.avi"), (jsonl, "jobs.jsonl line 2")):
        out = tmp_path / f"out-{manifest.name}"
        done = batch(manifest, "--out", out, "--workers", "1")
        assert done.returncode == 1, done.stderr
        assert f"{where}: the path b'" in done.stderr and "is not UTF-8" in done.stderr, done.stderr
        assert "rename the file" in done.stderr and "Traceback" not in done.stderr
        assert "1 tracked" in done.stdout
        assert csvs(out) == {"clip0": expected["clip0"]}
        assert [e["name"] for e in done_entries(out)] == ["clip0"]


def test_a_repeated_manifest_line_is_tracked_once_with_a_warning(clips, tmp_path):
    made, expected = clips
    manifest = write_manifest(tmp_path / "jobs.csv", [made[0], made[1], made[0]])
    shutil.copy(made[0][0], tmp_path)
    shutil.copy(made[1][0], tmp_path)
    out = tmp_path / "out"
    done = batch(manifest, "--out", out, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "warning: jobs.csv line 4 repeats jobs.csv line 2 (same video, box and start): tracked once" \
        in done.stderr
    assert "2 job(s): 0 already done, 2 to track" in done.stderr
    assert csvs(out) == expected  # no clip0-2.csv
    assert sorted(e["name"] for e in done_entries(out)) == ["clip0", "clip1"]


def test_an_unlabelled_video_in_a_folder_says_what_to_add_and_promises_no_retry(clips, tmp_path):
    made, expected = clips
    folder = labelled_folder(tmp_path / "videos", made, labelled=1)
    out = tmp_path / "out"
    for run, already in ((1, 0), (2, 1)):
        done = batch(folder, "--out", out, "--workers", "1")
        assert done.returncode == 1, done.stderr
        assert "warning: clip1 skipped: no clip1_init.txt or clip1_groundtruth.txt beside clip1.avi: add one " \
               "(its first line: x,y,w,h), or list the video in a CSV manifest" in done.stderr
        assert f"1 job(s): {already} already done" in done.stderr, run
        assert last_line(done.stderr) == ("siamtrack: error: 1 video(s) not in the batch: fix what the warnings "
                                          "above name, then rerun")
        assert "a rerun tries" not in done.stderr
        assert csvs(out) == {"clip0": expected["clip0"]}
    (folder / "clip1_init.txt").write_text(",".join(map(str, made[1][1])) + "\n")
    done = batch(folder, "--out", out, "--workers", "1")
    assert done.returncode == 0 and "1 already done, 1 to track" in done.stderr, done.stderr
    assert csvs(out) == expected


# -- the --out folder: its settings, one batch at a time -------------------------------------------------------


def test_a_rerun_with_other_settings_is_refused_and_never_serves_their_boxes(clips, tmp_path):
    made, expected = clips
    manifest = write_manifest(tmp_path / "jobs.csv", made)
    for clip, _ in made:
        shutil.copy(clip, tmp_path)
    out = tmp_path / "out"
    other = ["--set", "window_influence=0.9", "--set", "scale_damping=0.0"]
    first = batch(manifest, "--out", out, "--workers", "1")
    assert first.returncode == 0, first.stderr
    log = (out / "done.jsonl").read_bytes()

    refused = batch(manifest, "--out", out, "--workers", "1", *other)
    assert refused.returncode == 2, refused.stderr
    assert last_line(refused.stderr) == (
        f"siamtrack: error: {out} holds the results of a batch with other settings (overrides: no --set there, "
        "--set scale_damping=0.0 --set window_influence=0.9 now): give another --out, or add --restart to track "
        "every job again with these settings")
    assert csvs(out) == expected and (out / "done.jsonl").read_bytes() == log  # nothing touched

    restarted = batch(manifest, "--out", out, "--workers", "1", *other, "--restart")
    assert restarted.returncode == 0 and "0 already done, 2 to track" in restarted.stderr, restarted.stderr
    other_boxes = csvs(out)
    assert other_boxes.keys() == expected.keys() and other_boxes != expected
    assert [p.read_bytes() for p in out.glob("done-before-restart.*.jsonl")] == [log]  # the old log is kept

    back = batch(manifest, "--out", out, "--workers", "1")  # settings A again: refused, not "2 already done"
    assert back.returncode == 2 and "other settings" in back.stderr, back.stderr
    assert csvs(out) == other_boxes
    again = batch(manifest, "--out", out, "--workers", "1", *other)  # the same settings resume as before
    assert again.returncode == 0 and "2 already done, 0 to track" in again.stderr, again.stderr


def test_a_second_batch_on_the_same_out_is_refused_naming_the_first(tmp_path):
    from test_batch import long_batch, start_batch

    manifest, expected, out = long_batch(tmp_path, frames_each=60)
    first = start_batch(manifest, out, 1)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _lock_names(out, first.pid):
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGSTOP)  # holding its lock however fast the machine is
        try:
            second = batch(manifest, "--out", out, "--workers", "1")
        finally:
            os.kill(first.pid, signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        assert last_line(second.stderr) == (f"siamtrack: error: {out} is in use by another siamtrack batch (pid "
                                            f"{first.pid}): wait for it to end, or give this one another --out")
        _, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    assert csvs(out) == expected
    assert sorted(e["name"] for e in done_entries(out)) == ["clip0", "clip1", "clip2"]  # each tracked once
    assert batch(manifest, "--out", out).returncode == 0  # the lock went with the first batch


def _lock_names(out: Path, pid: int) -> bool:
    lock = out / ".batch.lock"
    return lock.is_file() and lock.read_text().strip() == str(pid)


# -- the worker processes ----------------------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is pid."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while we looked
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.add(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads the process table from /proc (Linux)")
def test_the_workers_of_a_batch_killed_with_sigkill_die_with_it(tmp_path):
    from test_batch import _worker_pid_of_a_running_job, long_batch, start_batch

    manifest, _, out = long_batch(tmp_path, frames_each=150)
    process = start_batch(manifest, out, 2, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        worker = _worker_pid_of_a_running_job(out, time.monotonic() + 120)
        workers = _children(process.pid)  # the two workers and multiprocessing's resource tracker
        assert worker in workers and len(workers) >= 3, workers
        os.kill(process.pid, signal.SIGKILL)  # only the batch, as the OOM killer would
        process.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(map(_alive, workers)):
            time.sleep(0.05)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived their batch"
    finally:
        for pid in [pid for pid in workers if _alive(pid)] + ([process.pid] if process.poll() is None else []):
            os.kill(pid, signal.SIGKILL)  # never leave them behind, even when the test fails
        process.wait(timeout=30)
    again = batch(manifest, "--out", out, "--workers", "2")  # the lock died with it; partial files are cleared
    assert again.returncode == 0 and "removed" in again.stderr and "partial file(s)" in again.stderr, again.stderr
    assert sorted(e["name"] for e in done_entries(out)) == ["clip0", "clip1", "clip2"]


# -- a full disk -----------------------------------------------------------------------------------------------


def _file_size_limit(limit: int):
    """preexec_fn: files of the batch and its workers cannot grow past `limit` bytes, as on a disk that fills up
    while done.jsonl is appended (the write is cut short, then fails with EFBIG; SIGXFSZ ignored, so it is an
    error and not a kill)."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_recording_is_one_line_and_keeps_done_jsonl_whole(clips, tmp_path):
    made, expected = clips
    for clip, _ in made:
        shutil.copy(clip, tmp_path)
    out = tmp_path / "out"
    assert batch(write_manifest(tmp_path / "one.csv", made[:1]), "--out", out, "--workers", "1").returncode == 0
    # Earlier runs' lines, so that done.jsonl is the largest file and reaches the limit first.
    (out / "done.jsonl").write_bytes((out / "done.jsonl").read_bytes() * 20)
    log = (out / "done.jsonl").read_bytes()
    both = write_manifest(tmp_path / "both.csv", made)

    full = batch(both, "--out", out, "--workers", "1", preexec_fn=_file_size_limit(len(log) + 40))
    assert full.returncode == 2, full.stderr
    assert last_line(full.stderr) == (f"siamtrack: error: cannot record clip1 in {out / 'done.jsonl'}: File too "
                                      "large: free some space and rerun (the finished CSVs are kept; the rerun "
                                      "tracks the jobs not recorded)")
    assert "Traceback" not in full.stderr
    assert (out / "done.jsonl").read_bytes() == log  # the 40 bytes that fitted were cut back off
    assert csvs(out) == expected  # clip1's CSV was finished before its line failed: kept

    # The log on a device that is always full (ENOSPC from the first byte), from the start of a run.
    (out / "done.jsonl").unlink()
    (out / "done.jsonl").symlink_to("/dev/full")
    full = batch(both, "--out", out, "--workers", "1")
    assert full.returncode == 2 and "cannot record clip0 in" in full.stderr, full.stderr
    assert "No space left on device: free some space" in last_line(full.stderr)
    assert csvs(out) == expected

    (out / "done.jsonl").unlink()
    (out / "done.jsonl").write_bytes(log)
    again = batch(both, "--out", out, "--workers", "1")
    assert again.returncode == 0 and "1 already done, 1 to track" in again.stderr, again.stderr
    assert csvs(out) == expected
