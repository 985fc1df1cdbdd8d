"""`siamtrack prepare-data`: full-frame sequences (GOT-10k or OTB layout) -> the training crop cache.

The output has the format of ../shared/data/train (see its README): one folder per sequence,
`<dataset>__<sequence>/NNNNNN.webp` (447x447 BGR, WebP quality 80) plus `boxes.csv`, and an `index.csv` at the top.

Geometry (SiamFC, context 0.5): for the source box x,y,w,h, s_z = sqrt((w+p)(h+p)) with p = (w+h)/2; the square of
side s_z * 447/127 centred on the box is resampled to 447x447 by one cv2.warpAffine, border = the per-channel mean
of the whole frame. The crop is made with `tracker.crop.crop_square`, the function the tracker and the pair sampler
use, so all three share one convention: continuous pixel coordinates (pixel i covers [i, i+1)), the box centre lands
exactly on the crop's continuous centre 223.5, and the crop box is `x = 223.5 - w*scale/2`, `w = w*scale`
(scale = 127/s_z), exactly as the README states.

Half-pixel note: the README writes the warp matrix as M = [[scale, 0, 223.5 - scale*cx], ...] and hands it to
cv2.warpAffine, which applies it to pixel *indices* (pixel centres at integers). Read that way, the box centre cx
(continuous) lands at continuous 224 - scale/2 instead of 223.5, i.e. the pixel content is shifted by
0.5 * (1 - scale) crop pixels relative to the box columns (+0.25 px at scale 0.5, -1 px at scale 3, 0 at scale 1).
crop_square adds that 0.5 * (scale - 1) to the offset, so its content agrees with the box columns at every scale.
The boxes.csv values are identical either way; only the resampled pixels differ by that sub-pixel amount.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..crop import box_to_crop, context_side, crop_square, mean_colour
from ..crop_cache import CACHE_SIDE
from ..errors import UserError
from ..evaluation.datasets import detect_layout, load_dataset
from ..progress import progress as make_progress

CROP_SIZE = CACHE_SIDE
EXEMPLAR_SIZE = 127
CONTEXT_AMOUNT = 0.5
BOXES_HEADER = ["file", "frame", "x", "y", "w", "h", "src_x", "src_y", "src_w", "src_h", "frame_w", "frame_h"]
INDEX_HEADER = ["folder", "kind", "benchmark", "source_repo", "source_commit", "source_path", "n_crops", "license_note"]
LAYOUT_NAMES = {"got10k": "GOT-10k layout", "got10k-seq": "GOT-10k layout",
                "otb": "OTB layout", "otb-seq": "OTB layout", "video": "video layout", "video-seq": "video layout"}


@dataclass
class PrepareSummary:
    """What a prepare-data run did (printed by the CLI)."""

    folders: list[str] = field(default_factory=list)  # written (or rewritten) this run
    kept: list[str] = field(default_factory=list)  # already complete in DST, left as they were
    crops: int = 0
    skipped_rows: int = 0  # sampled GT lines without a usable box
    unreadable: list[str] = field(default_factory=list)  # frames cv2 could not read
    problems: dict[str, str] = field(default_factory=dict)  # sequences that could not be loaded or gave no crop


def safe_name(text: str) -> str:
    """Restrict to [A-Za-z0-9_-] (other runs become '_')."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")


def crop_geometry(box) -> tuple[tuple[float, float], float, tuple[float, float, float, float]]:
    """(centre, side in source pixels, box in crop pixels) of the 447 crop for a source box x,y,w,h."""
    x, y, w, h = (float(v) for v in box)
    center = (x + w / 2, y + h / 2)
    side = context_side(w, h, CONTEXT_AMOUNT) * CROP_SIZE / EXEMPLAR_SIZE
    return center, side, box_to_crop((x, y, w, h), center, side, CROP_SIZE)


def make_crop(frame: np.ndarray, box) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The 447x447 crop of one frame around `box` and the box in crop pixels."""
    center, side, crop_box = crop_geometry(box)
    fill = mean_colour(frame)
    return crop_square(frame, center, side, CROP_SIZE, fill), crop_box


def box_usable(box, frame_w: int | None = None, frame_h: int | None = None) -> bool:
    """False for NaN/inf, w <= 1 or h <= 1, or (when the frame size is given) a box entirely outside the frame."""
    x, y, w, h = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 1 or h <= 1:
        return False
    if frame_w is not None and frame_h is not None:
        if x >= frame_w or y >= frame_h or x + w <= 0 or y + h <= 0:
            return False
    return True


def is_crop_cache(folder: Path) -> bool:
    return (folder / "index.csv").is_file() or any((d / "boxes.csv").is_file() for d in folder.iterdir() if d.is_dir())


def _check_destination(dst: Path, overwrite: bool) -> None:
    if dst.exists() and not dst.is_dir():
        raise UserError(f"DST {dst} exists and is not a folder")
    if dst.is_dir() and any(dst.iterdir()) and not is_crop_cache(dst) and not overwrite:
        raise UserError(f"DST {dst} is a non-empty folder that is not a crop cache: pick an empty or new folder "
                        "(or pass --overwrite to write into it anyway)")
    try:
        dst.mkdir(parents=True, exist_ok=True)
        probe = dst / ".prepare-data-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"DST {dst} is not writable ({exc.strerror or type(exc).__name__})") from None


def _readable(seq, lines: list[int], unreadable: list[str]):
    """(line, BGR frame) for each of `lines` whose frame decodes; the others are named in `unreadable`."""
    if seq.video is not None:
        done = 0
        try:
            for line, frame in seq.images(lines):
                done += 1
                yield line, frame
        except ValueError:  # the video ended early: none of the lines after it can be read
            unreadable.extend(f"{seq.video} frame {line}" for line in lines[done:])
        return
    for line in lines:
        try:
            yield from seq.images([line])
        except ValueError:
            unreadable.append(str(seq.frames[line]))


def _source_meta(seq_dir: Path) -> dict:
    """meta.json of a sequence folder (as in ../shared/data/val), if any."""
    try:
        meta = json.loads((seq_dir / "meta.json").read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _index_row(folder: str, seq_dir: Path, benchmark: str, n_crops: int) -> dict:
    meta = _source_meta(seq_dir)
    return {
        "folder": folder,
        "kind": "video",
        "benchmark": str(meta.get("benchmark") or benchmark),
        "source_repo": str(meta.get("source_repo", "")),
        "source_commit": str(meta.get("source_commit", "")),
        "source_path": str(meta.get("original_path") or seq_dir.resolve()),
        "n_crops": n_crops,
        "license_note": str(meta.get("license_note", "")),
    }


def _write_csv(path: Path, header: list[str], rows: list[list] | list[dict]) -> None:
    """Rows as lists (in header order) or dicts; written to a temporary file and renamed, so an interrupted run
    never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(k, "") for k in header] if isinstance(row, dict) else row)
    os.replace(tmp, path)


def _clear_folder(folder: Path) -> None:
    for p in list(folder.glob("*.webp")) + [folder / "boxes.csv", folder / "boxes.csv.tmp"]:
        if p.is_file():
            p.unlink()


def prepare_data(src: str | Path, dst: str | Path, step: int = 2, sequences: list[str] | None = None,
                 quality: int = 80, overwrite: bool = False, name: str | None = None, benchmark: str | None = None,
                 progress: bool = True) -> PrepareSummary:
    """Crop every `step`-th GT line of the sequences in `src` into the crop cache `dst`.

    A sequence folder already complete in `dst` (it has boxes.csv) is kept as it is unless `overwrite`, so an
    interrupted run can simply be started again. `name` is the folder prefix (default: the SRC folder name).
    """
    src, dst = Path(src), Path(dst)
    _check_arguments(src, step, quality)
    layout = detect_layout(src)  # UserError for an unknown layout
    dataset = _dataset_name(src, name, layout)
    benchmark = benchmark if benchmark is not None else LAYOUT_NAMES.get(layout, "")
    seqs, problems = _load_sequences(src, sequences)
    summary = PrepareSummary(problems=dict(problems))
    for seq_name, reason in problems.items():
        print(f"warning: skipping sequence {seq_name}: {reason}", file=sys.stderr)
    folder_names = _folder_names(seqs, dataset)

    _check_destination(dst, overwrite)
    index_path = dst / "index.csv"
    index = _read_index(index_path)
    todo = _still_to_do(seqs, folder_names, dst, overwrite, benchmark, index, summary)
    total = sum(len(range(0, len(seq.gt), step)) for seq, _ in todo)
    params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    bar = make_progress(total, "prepare-data", "crop", quiet=not progress or total == 0)
    try:
        for seq, folder_name in todo:
            bar.set_postfix_str(folder_name, refresh=False)
            rows = _crop_sequence(seq, dst / folder_name, step, params, bar, summary)
            if not rows:
                index.pop(folder_name, None)
                continue
            _write_csv(dst / folder_name / "boxes.csv", BOXES_HEADER, rows)  # last: marks the folder complete
            index[folder_name] = _index_row(folder_name, seq.folder, benchmark, len(rows))
            summary.folders.append(folder_name)
            summary.crops += len(rows)
    finally:
        bar.close()
        if index:
            _write_csv(index_path, INDEX_HEADER, [index[k] for k in sorted(index)])
    if summary.unreadable:
        print(f"warning: {len(summary.unreadable)} frame(s) could not be read, e.g. {summary.unreadable[0]}",
              file=sys.stderr)
    return summary


def _check_arguments(src: Path, step: int, quality: int) -> None:
    if not src.is_dir():
        raise UserError(f"SRC {src}: folder not found")
    if step < 1:
        raise UserError(f"--step must be >= 1, got {step}")
    if not 0 <= quality <= 100:
        raise UserError(f"--quality must be in 0..100, got {quality}")


def _dataset_name(src: Path, name: str | None, layout: str) -> str:
    """The folder prefix: --name, else the dataset folder's name (the parent's for one sequence folder)."""
    dataset = safe_name(name if name is not None else (src.resolve().parent.name if layout.endswith("-seq")
                                                      else src.resolve().name))
    if not dataset:
        raise UserError(f"--name {name!r}: need at least one of [A-Za-z0-9_-]")
    if dataset == "stills":
        raise UserError("--name stills is reserved for still-image sets (their crops are paired with themselves)")
    return dataset


def _load_sequences(src: Path, sequences: list[str] | None) -> tuple[list, dict[str, str]]:
    """The sequences to crop and the ones that could not be loaded (name -> why); a UserError when none is left
    or a named one does not exist."""
    _, seqs, problems = load_dataset(src, sequences)
    missing = sorted(k for k, v in problems.items() if v == "no such sequence")
    if missing:
        raise UserError(f"--sequences: not in {src}: {', '.join(missing)}")
    if not seqs:
        detail = "; ".join(f"{k}: {v}" for k, v in problems.items())
        raise UserError(f"no usable sequence in {src}" + (f" ({detail})" if detail else ""))
    return seqs, problems


def _folder_names(seqs: list, dataset: str) -> list[str]:
    folder_names = [f"{dataset}__{safe_name(s.name) or 'seq'}" for s in seqs]
    clashes = sorted({n for n in folder_names if folder_names.count(n) > 1})
    if clashes:
        raise UserError(f"sequence names collide once restricted to [A-Za-z0-9_-]: {', '.join(clashes)}")
    return folder_names


def _read_index(index_path: Path) -> dict[str, dict]:
    """index.csv's rows by folder ({} when there is none yet)."""
    if not index_path.is_file():
        return {}
    with open(index_path, newline="") as f:
        return {row["folder"]: row for row in csv.DictReader(f) if row.get("folder")}


def _still_to_do(seqs: list, folder_names: list[str], dst: Path, overwrite: bool, benchmark: str,
                 index: dict[str, dict], summary: PrepareSummary) -> list[tuple]:
    """(sequence, folder name) pairs to crop; the folders already complete in DST are kept (and indexed) unless
    `overwrite`."""
    todo = []
    for seq, folder_name in zip(seqs, folder_names):
        out = dst / folder_name
        if (out / "boxes.csv").is_file() and not overwrite:
            with open(out / "boxes.csv", newline="") as f:
                n = sum(1 for _ in csv.DictReader(f))
            index.setdefault(folder_name, _index_row(folder_name, seq.folder, benchmark, n))
            summary.kept.append(folder_name)
        else:
            todo.append((seq, folder_name))
    if summary.kept:
        print(f"keeping {len(summary.kept)} sequence folder(s) already in {dst} (--overwrite redoes them)",
              file=sys.stderr)
    return todo


def _crop_sequence(seq, out: Path, step: int, params: list[int], bar, summary: PrepareSummary) -> list[list]:
    """Write the crops of every `step`-th usable line of `seq` into `out`; returns their boxes.csv rows. With none,
    the folder is removed (when empty) and the sequence recorded as a problem."""
    out.mkdir(exist_ok=True)
    _clear_folder(out)
    rows = []
    lines = range(0, len(seq.gt), step)
    usable = [line for line in lines if seq.valid[line] and box_usable(seq.gt[line])]
    summary.skipped_rows += len(lines) - len(usable)
    bar.update(len(lines) - len(usable))
    for line, frame in _readable(seq, usable, summary.unreadable):
        bar.update(1)
        box = seq.gt[line]
        frame_h, frame_w = frame.shape[:2]
        if not box_usable(box, frame_w, frame_h):
            summary.skipped_rows += 1
            continue
        crop, (cx, cy, cw, ch) = make_crop(frame, box)
        file = f"{line:06d}.webp"
        if not cv2.imwrite(str(out / file), crop, params):
            raise UserError(f"cannot write {out / file} (is WebP supported by this OpenCV build?)")
        rows.append([file, line, *(f"{v:.2f}" for v in (cx, cy, cw, ch)),
                     *(f"{float(v):.2f}" for v in box), frame_w, frame_h])
    if not rows:
        if not any(out.iterdir()):
            out.rmdir()
        summary.problems[seq.name] = "no usable box on the sampled lines"
        print(f"warning: {seq.name}: no usable box on the sampled lines, no folder written", file=sys.stderr)
    return rows
