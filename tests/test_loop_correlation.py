"""The export runs each depthwise correlation (correlation.ShiftedProducts) as a loop of grouped convs, one crop at a
time (tracker/export/loop_correlation.py): the same numbers as PyTorch within float rounding, each crop's
numbers the same alone or in any batch, and the shipped pair is exported that way."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
ort = pytest.importorskip("onnxruntime")

from torch import nn  # noqa: E402

from tracker.correlation import ShiftedProducts, xcorr_shifted_products  # noqa: E402
from tracker.export.loop_correlation import loop_shifted_products, marked_groups  # noqa: E402
from tracker.export.onnx_export import _export_one  # noqa: E402
from tracker.paths import SEARCH_ONNX, weights_dir  # noqa: E402

CHANNELS = 6


class TwoMatches(nn.Module):
    """Like the box-adaptive head: per-crop kernels picked by `owner`, two correlations (here of two kernel
    sizes, 4x4 and 3x3), and work around them that must stay as it is."""

    def __init__(self) -> None:
        super().__init__()
        self.wide, self.narrow = ShiftedProducts(), ShiftedProducts()

    def forward(self, search, templates, owner):
        kernels = templates.index_select(0, owner)
        return self.wide(search, kernels), self.narrow(search * 2, kernels[..., 1:, 1:])


class Unmarked(nn.Module):
    def forward(self, search, templates, owner):
        return xcorr_shifted_products(search, templates.index_select(0, owner))


def _example():
    generator = torch.Generator().manual_seed(0)
    return (torch.randn(3, CHANNELS, 18, 18, generator=generator), torch.randn(2, CHANNELS, 4, 4, generator=generator),
            torch.tensor([0, 1, 1]))


def _export(module, outputs):
    proto, exporter = _export_one(module.eval(), _example(), ["search", "templates", "owner"], outputs,
                                  {"search": "n", "owner": "n", "templates": "t"})
    assert exporter == "dynamo"
    return proto


def _session(proto):
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def test_each_correlation_becomes_a_loop_with_torchs_numbers_and_batch_independent_results():
    proto = _export(TwoMatches(), ["wide", "narrow"])
    assert len(marked_groups(proto.graph)) == 2
    assert loop_shifted_products(proto) == 2
    onnx.checker.check_model(proto, full_check=True)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Loop") == 2 and "Slice" in ops  # the kernels' 3x3 slice stays; the 2 x 16 shifts do not
    assert ops.count("Mul") == 1 and "Add" not in ops  # only `search * 2` is left of the Muls and Adds
    session = _session(proto)
    rng = np.random.default_rng(1)
    search = rng.standard_normal((5, CHANNELS, 18, 18)).astype(np.float32)
    templates = rng.standard_normal((3, CHANNELS, 4, 4)).astype(np.float32)
    owner = np.array([2, 0, 1, 1, 0])
    batched = session.run(None, {"search": search, "templates": templates, "owner": owner})
    expected = TwoMatches()(torch.from_numpy(search), torch.from_numpy(templates), torch.from_numpy(owner))
    for got, want in zip(batched, expected):
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)
    for i in range(len(search)):
        alone = session.run(None, {"search": search[i:i + 1], "templates": templates, "owner": owner[i:i + 1]})
        for got, one in zip(batched, alone):
            assert np.array_equal(got[i:i + 1], one), "a crop's numbers changed with the batch"


def test_a_graph_without_shifted_products_modules_is_left_as_it_is():
    proto = _export(Unmarked(), ["scores"])
    before = [node.op_type for node in proto.graph.node]
    assert loop_shifted_products(proto) == 0
    assert [node.op_type for node in proto.graph.node] == before


def test_the_shipped_search_graph_runs_its_correlations_as_loops():
    graph = onnx.load(str(weights_dir() / SEARCH_ONNX)).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("Loop") == 2, "re-export the pair: siamtrack export --out weights/ (weights/MODEL_CARD.md)"
    assert not marked_groups(graph)
