"""Evaluation toolkit: datasets (OTB / GOT-10k), metrics, the score's quality (verification), per-attribute tables,
OpenCV peers, one-pass runner, paired bootstrap comparisons (compare), plots, bench.

It sits on the core (trackers, results, errors) and the io layer (frame sources, the one frame loop in
``tracker.running``, the model options, outputs, progress); nothing in the core or io imports it.
"""
from .datasets import Sequence, load_dataset
from .metrics import overall_metrics, rect_iou, sequence_metrics
from .peers import OpenCVPeer, availability, make_peer

__all__ = ["Sequence", "load_dataset", "rect_iou", "sequence_metrics", "overall_metrics",
           "OpenCVPeer", "availability", "make_peer"]
