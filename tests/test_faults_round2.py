"""Faults, round two (issue 23): files, streams, standard streams and threads. One test per row of the issue,
named after it; the CLI runs in a subprocess wherever signals, streams or the file system matter, and each test
checks the exit status, the message and what is on disk afterwards."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import VIDEOS
from test_cli import assert_one_line_error, console_script, read_csv
from test_faults import ENV, Run, cli

BAG = VIDEOS / "bag.avi"
BAG_BOX = "312,146,105,95"
needs_bag = pytest.mark.skipif(not BAG.is_file(), reason="needs ../shared/data/videos/bag.avi")


def shell(command: str, cwd: Path, timeout: float = 300) -> Run:
    """`command` in bash, with $S the siamtrack command: for redirections such as `2>&-` or `> /dev/full`."""
    env = {**ENV, "S": " ".join(console_script())}
    done = subprocess.run(["bash", "-c", command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env, stdin=subprocess.DEVNULL)
    return Run(done.returncode, done.stdout, done.stderr)


@needs_bag
def test_row20_closed_stderr_still_tracks_and_writes_the_csv(tmp_path):
    run = shell(f"$S track {BAG} --box {BAG_BOX} --boxes x.csv --max-frames 5 2>&-", tmp_path)
    assert run.status == 0
    rows = read_csv(tmp_path / "x.csv")  # checks the header too: no log line of OpenCV landed in the file
    assert [row[0] for row in rows] == ["0", "1", "2", "3", "4"]


@needs_bag
def test_row21_stdout_write_error_is_one_line_and_keeps_the_json(tmp_path):
    run = shell(f"$S bench {BAG} --frames 10 --no-progress --json b.json > /dev/full", tmp_path)
    assert run.status == 2
    assert_one_line_error(run.err, "cannot write the standard output", "No space left on device")
    results = json.loads((tmp_path / "b.json").read_text())
    assert results  # the figures that could not be printed are on disk


@needs_bag
def test_row22_closed_pipe_on_stdout_exits_quietly(tmp_path):
    # The reader is gone before the first line is written (what `| head -1` does to a longer output): any
    # write raises EPIPE, every time, instead of only when the output outgrows the pipe's buffer.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(console_script() + ["bench", str(BAG), "--frames", "10", "--compare", "kcf",
                                                  "--no-progress"], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=300, env=ENV, stdin=subprocess.DEVNULL, cwd=tmp_path)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode == 141  # as `yes | head -1`: 128 + SIGPIPE
