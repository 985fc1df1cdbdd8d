"""The per-attribute view: each tracker's mean success AUC and P@20 over the sequences that carry an attribute
(OTB's codes, read from the sequences' meta.json), the way the OTB papers break results down."""
from __future__ import annotations

import numpy as np

# OTB's attribute codes (Wu, Lim, Yang, TPAMI 2015), in the papers' order; other codes are kept and sorted after.
OTB_ATTRIBUTES = {
    "IV": "illumination variation", "SV": "scale variation", "OCC": "occlusion", "DEF": "deformation",
    "MB": "motion blur", "FM": "fast motion", "IPR": "in-plane rotation", "OPR": "out-of-plane rotation",
    "OV": "out of view", "BC": "background clutter", "LR": "low resolution",
}
MEASURES = ("auc", "precision")  # success AUC and P@20, as in the overall table


def attribute_table(sequence_attributes: dict[str, list[str]], trackers: dict) -> dict:
    """{code: {"name", "sequences": n, "trackers": {tracker: {"sequences": scored, "auc", "precision"}}}} for every
    attribute some sequence carries. `trackers` is summary.json's: per-sequence figures under "sequences"; a
    tracker's mean is over the attribute's sequences it has results for (None when it has none)."""
    codes = {c for attrs in sequence_attributes.values() for c in attrs}
    order = list(OTB_ATTRIBUTES) + sorted(codes - set(OTB_ATTRIBUTES))
    table = {}
    for code in (c for c in order if c in codes):
        names = [s for s, attrs in sequence_attributes.items() if code in attrs]
        per_tracker = {}
        for tracker, t in trackers.items():
            rows = [t["sequences"][s] for s in names if s in t.get("sequences", {})]
            per_tracker[tracker] = {"sequences": len(rows), **{
                m: float(np.mean([r[m] for r in rows])) if rows else None for m in MEASURES}}
        table[code] = {"name": OTB_ATTRIBUTES.get(code, code), "sequences": len(names), "trackers": per_tracker}
    return table


def markdown_lines(table: dict) -> list[str]:
    """The table as markdown: a row per attribute, AUC and P@20 columns per tracker."""
    if not table:
        return []
    trackers = list(next(iter(table.values()))["trackers"])
    head = ["attribute", "seqs"] + [f"{t} {label}" for t in trackers for label in ("AUC", "P@20")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for code, row in table.items():
        cells = [f"{code} ({row['name']})" if row["name"] != code else code, str(row["sequences"])]
        for t in trackers:
            cells += ["-" if row["trackers"][t][m] is None else f"{row['trackers'][t][m]:.3f}" for m in MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return lines
