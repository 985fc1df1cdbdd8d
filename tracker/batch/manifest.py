"""Batch manifests: the jobs (video, first box, start frame, name) of a CSV, a JSON-lines file or a folder of
videos with their box files (see the package docs)."""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..paths import is_utf8
from ..result import BOX_INPUT_FORMATS, Box, input_format, parse_box
from ..sources import default_box

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg"}


@dataclass(frozen=True)
class Job:
    name: str  # the output file's stem; unique within a batch
    video: str  # absolute path
    box: Box
    start: int = 0


def _box_from_fields(values, where: str, box_format: str) -> Box:
    try:
        return parse_box(",".join(str(v) for v in values), flag="box", box_format=box_format)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _start(value, where: str) -> int:
    if value in (None, ""):
        return 0
    try:
        start = int(str(value))
    except ValueError:
        raise UserError(f"{where}: start must be a whole number of frames, got {value!r}") from None
    if start < 0:
        raise UserError(f"{where}: start must be >= 0, got {start}")
    return start


def _video_path(text, base: Path, where: str) -> str:
    if not text:
        raise UserError(f"{where}: no video given")
    if "\0" in str(text):  # no file name can hold one; os.stat would raise ValueError
        raise UserError(f"{where}: the video path {str(text)!r} holds a NUL byte: write the file's path there")
    path = Path(str(text)).expanduser()
    return str((base / path).resolve() if not path.is_absolute() else path)


def _box_columns(path: Path, columns: set[str], box_format: str) -> list[str]:
    """The header's four columns named as `box_format` names the numbers (x,y,w,h; x1,y1,x2,y2; cx,cy,w,h), or
    [] when the box comes from a box column only. A header naming another format's columns is refused with the
    flag that reads them, rather than read as what it is not."""
    names = input_format(box_format)[0].split(",")
    if "video" in columns and (set(names) <= columns or "box" in columns):
        return names if set(names) <= columns else []
    other = [fmt for fmt, (text, _) in BOX_INPUT_FORMATS.items() if set(text.split(",")) <= columns]
    hint = f": that header is {other[0]}, so add --box-format {other[0]}" if other and "video" in columns else ""
    raise UserError(f"{path}: a CSV manifest needs a header with video and {','.join(names)} (or box) columns "
                    f"(box format {box_format}), got {sorted(columns)}{hint}")


def _read_csv_manifest(path: Path, box_format: str) -> list[tuple]:
    rows = []
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a CSV saved by Excel starts with a BOM
        reader = csv.DictReader(f)
        if reader.fieldnames:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        box_columns = _box_columns(path, set(reader.fieldnames or []), box_format)
        for line, row in enumerate(reader, 2):
            where = f"{path.name} line {line}"
            use_box = "box" in row and (row.get("box") or not box_columns)  # a box cell, where given, wins
            values = [row.get("box")] if use_box else [row.get(k) for k in box_columns]
            rows.append((row.get("name") or None, _video_path(row.get("video"), path.parent, where),
                         _box_from_fields(values, where, box_format), _start(row.get("start"), where), where))
    return rows


def _read_jsonl_manifest(path: Path, box_format: str) -> list[tuple]:
    rows = []
    for line, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not text.strip():
            continue
        where = f"{path.name} line {line}"
        try:
            entry = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict) or "video" not in entry or "box" not in entry:
            names = input_format(box_format)[0].replace(",", ", ")
            raise UserError(f'{where}: expected {{"video": ..., "box": [{names}]}}, got {text.strip()[:80]!r}')
        box = entry["box"]
        values = box if isinstance(box, (list, tuple)) else [box]
        rows.append((entry.get("name"), _video_path(entry["video"], path.parent, where),
                     _box_from_fields(values, where, box_format), _start(entry.get("start"), where), where))
    return rows


def _read_folder_manifest(folder: Path) -> tuple[list, dict[str, str]]:
    """(jobs, problems): a video without a usable box file is a problem to report, not a reason to stop. The box
    files are found as `siamtrack bench` finds them (sources.default_box)."""
    rows, problems = [], {}
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and entry.suffix.lower() in VIDEO_SUFFIXES:
            name, video, box_of = entry.stem, entry, entry
            missing = (f"no {entry.stem}_init.txt or {entry.stem}_groundtruth.txt beside {entry.name}: add one (its "
                       "first line: x,y,w,h), or list the video in a CSV manifest")
        elif entry.is_dir() and (entry / "groundtruth.txt").is_file():
            videos = sorted(p for p in entry.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if len(videos) != 1:
                problems[entry.name] = f"expected one video beside {entry.name}/groundtruth.txt, found {len(videos)}"
                continue
            name, video, box_of, missing = entry.name, videos[0], entry, ""
        else:
            continue
        try:
            box = default_box(box_of)
        except (OSError, ValueError) as exc:
            problems[name] = f"{box_of}: {exc}"
            continue
        if box is None:
            problems[name] = missing
            continue
        rows.append((name, str(video.resolve()), box, 0, f"{folder.name}/{entry.name}"))
    return rows, problems


def read_manifest(path: str | Path, notes: list[str] | None = None,
                  box_format: str = "xywh") -> tuple[list[Job], dict[str, str]]:
    """(jobs, problems) from a CSV / JSONL manifest or a folder; names are made unique (a-2, a-3...). A line that
    repeats an earlier one (same name, video, box and start) is one job, and `notes` (if given) gets a line
    saying so; a path that is not UTF-8 is a problem of its own, and the other jobs still run. `box_format`
    (xywh, xyxy or cxcywh) says what a CSV or JSONL manifest's four box numbers are; the jobs' boxes are x, y, w, h
    whatever it is. A folder's box files are ground-truth files, x,y,w,h."""
    path = Path(path)
    problems: dict[str, str] = {}
    input_format(box_format)  # an unknown one is an error before anything is read
    if path.is_dir():
        if box_format != "xywh":
            raise UserError(f"--box-format {box_format} is for a CSV or JSONL manifest's boxes; {path} is a folder, "
                            "whose box files (<stem>_init.txt, groundtruth.txt) are x,y,w,h: convert them, or list "
                            "the videos in a CSV manifest")
        rows, problems = _read_folder_manifest(path)
    elif not path.is_file():
        raise UserError(f"manifest not found: {path}")
    elif path.suffix.lower() in (".csv", ".jsonl", ".json", ".ndjson"):
        read = _read_csv_manifest if path.suffix.lower() == ".csv" else _read_jsonl_manifest
        try:
            rows = read(path, box_format)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}): save the manifest as UTF-8") from None
        except csv.Error as exc:
            raise UserError(f"{path}: not a readable CSV file ({exc})") from None
    else:
        raise UserError(f"{path}: a manifest is a .csv, a .jsonl or a folder of videos")
    jobs = _unique_jobs(rows, problems, notes if notes is not None else [])
    if not jobs and not problems:
        raise UserError(f"{path}: no jobs (see the module docs: siamtrack batch --help)")
    return jobs, problems


def _unique_jobs(rows: list[tuple], problems: dict[str, str], notes: list[str]) -> list[Job]:
    jobs, taken, first_seen = [], set(), {}
    for name, video, box, start, where in rows:
        stem = re.sub(r"[^\w.-]+", "_", str(name or Path(video).stem)) or "job"
        if not is_utf8(video):
            # OpenCV takes paths as UTF-8 and crashes the process on one that is not (exit 139, no message).
            problems[stem] = (f"{where}: the path {video.encode('utf-8', 'surrogateescape')!r} is not UTF-8, "
                              "which OpenCV cannot open: rename the file (or its folder) to a UTF-8 name")
            continue
        same = (name, video, box, start)
        if same in first_seen:
            notes.append(f"{where} repeats {first_seen[same]} (same video, box and start): tracked once")
            continue
        first_seen[same] = where
        unique, k = stem, 1
        while unique in taken:
            k += 1
            unique = f"{stem}-{k}"
        taken.add(unique)
        jobs.append(Job(unique, video, box, start))
    return jobs
