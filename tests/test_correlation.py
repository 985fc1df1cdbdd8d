"""Cross-correlation against brute-force numpy loops, the energy normalisation of the head, and the box head."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")

from tracker.correlation import BoxHead, CorrelationHead, xcorr_depthwise, xcorr_pairwise, xcorr_shared_template  # noqa: E402


def brute_force(search: np.ndarray, template: np.ndarray) -> np.ndarray:
    """out[n, 0, i, j] = sum over c, a, b of search[n, c, i + a, j + b] * template[n or 0, c, a, b]."""
    n, _, height, width = search.shape
    _, _, h, w = template.shape
    out = np.zeros((n, 1, height - h + 1, width - w + 1))
    for k in range(n):
        t = template[k if template.shape[0] > 1 else 0]
        for i in range(height - h + 1):
            for j in range(width - w + 1):
                out[k, 0, i, j] = np.sum(search[k, :, i : i + h, j : j + w] * t)
    return out


SHAPES = [
    # (N, C, H, W, h, w)
    (1, 1, 5, 5, 3, 3),
    (3, 4, 9, 11, 4, 3),
    (2, 7, 8, 8, 8, 8),  # template as large as the search map: one output cell
    (5, 2, 12, 10, 1, 1),
]


@pytest.mark.parametrize("n,c,H,W,h,w", SHAPES)
def test_xcorr_shared_template_matches_loops(n, c, H, W, h, w):
    rng = np.random.default_rng(n * 100 + c)
    search = rng.standard_normal((n, c, H, W))
    template = rng.standard_normal((1, c, h, w))
    out = xcorr_shared_template(torch.from_numpy(search), torch.from_numpy(template)).numpy()
    assert out.shape == (n, 1, H - h + 1, W - w + 1)
    np.testing.assert_allclose(out, brute_force(search, template), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n,c,H,W,h,w", SHAPES)
def test_xcorr_pairwise_matches_loops(n, c, H, W, h, w):
    rng = np.random.default_rng(n * 100 + c + 1)
    search = rng.standard_normal((n, c, H, W))
    template = rng.standard_normal((n, c, h, w))
    out = xcorr_pairwise(torch.from_numpy(search), torch.from_numpy(template)).numpy()
    assert out.shape == (n, 1, H - h + 1, W - w + 1)
    np.testing.assert_allclose(out, brute_force(search, template), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("n,c,H,W,h,w", SHAPES)
def test_xcorr_depthwise_matches_loops(n, c, H, W, h, w, shared):
    """Channel k of the output is channel k of the search map correlated with channel k of the template."""
    rng = np.random.default_rng(n * 100 + c + 2)
    search = rng.standard_normal((n, c, H, W))
    template = rng.standard_normal((1 if shared else n, c, h, w))
    out = xcorr_depthwise(torch.from_numpy(search), torch.from_numpy(template)).numpy()
    assert out.shape == (n, c, H - h + 1, W - w + 1)
    for k in range(c):
        expected = brute_force(search[:, k : k + 1], template[:, k : k + 1])[:, 0]
        np.testing.assert_allclose(out[:, k], expected, rtol=1e-10, atol=1e-10)


def test_box_head_shapes_and_initial_boxes():
    """Template 6x6 and search 16x16 (the shipped cut) give an 11x11 map, as the response head does; every side
    distance starts at two strides, positive, and the head is differentiable."""
    head = BoxHead(in_channels=8, channels=4, stride=16)
    template = torch.randn(1, 8, 6, 6)
    search = torch.randn(3, 8, 16, 16, requires_grad=True)
    distances = head(template, search)
    assert distances.shape == (3, 4, 11, 11)
    torch.testing.assert_close(distances, torch.full_like(distances, 32.0), rtol=0.05, atol=0)
    distances.sum().backward()
    assert search.grad is not None and float(search.grad.abs().sum()) > 0
    # One template per search map (training) gives the same as the shared template repeated.
    head.eval()
    with torch.no_grad():
        shared = head(template, search)
        pairwise = head(template.expand(3, -1, -1, -1).contiguous(), search)
    torch.testing.assert_close(shared, pairwise)


def test_pairwise_with_repeated_template_equals_shared():
    rng = np.random.default_rng(3)
    search = torch.from_numpy(rng.standard_normal((4, 6, 10, 10)))
    template = torch.from_numpy(rng.standard_normal((1, 6, 4, 4)))
    shared = xcorr_shared_template(search, template)
    pairwise = xcorr_pairwise(search, template.expand(4, -1, -1, -1).contiguous())
    torch.testing.assert_close(shared, pairwise)


@pytest.mark.parametrize("scale,bias", [(10.0, -5.0), (1.0, 0.0), (3.5, 0.25)])
@pytest.mark.parametrize("batch", [1, 3])
def test_head_template_against_itself_gives_scale_plus_bias(scale, bias, batch):
    """Energy normalisation: the template found in the search map scores exactly 1.0 before the affine."""
    rng = np.random.default_rng(4)
    c, h, w, size = 5, 4, 3, 11
    template = torch.from_numpy(rng.standard_normal((batch, c, h, w)) * 7.0)  # any energy
    search = torch.zeros(batch, c, size, size, dtype=torch.float64)
    at = [(3, 4), (0, 0), (7, 8)][:batch]
    for k, (i, j) in enumerate(at):
        search[k, :, i : i + h, j : j + w] = template[k]
    head = CorrelationHead(scale, bias).double()
    with torch.no_grad():
        logits = head(template, search)
    assert logits.shape == (batch, 1, size - h + 1, size - w + 1)
    for k, (i, j) in enumerate(at):
        assert logits[k, 0, i, j].item() == pytest.approx(scale + bias, rel=1e-12)
        # The template's own position is the maximum of a zero-padded self-search (Cauchy-Schwarz).
        assert logits[k, 0].max().item() == pytest.approx(scale + bias, rel=1e-12)


def test_head_is_invariant_to_a_common_feature_scale():
    """Scaling template and search features by the same factor leaves the normalised score unchanged."""
    rng = np.random.default_rng(5)
    template = torch.from_numpy(rng.standard_normal((1, 3, 3, 3)))
    search = torch.from_numpy(rng.standard_normal((2, 3, 9, 9)))
    head = CorrelationHead(10.0, -5.0).double()
    with torch.no_grad():
        torch.testing.assert_close(head(template, search), head(template * 42.0, search * 42.0))


def test_head_parameters_are_learnable():
    head = CorrelationHead(10.0, -5.0)
    names = dict(head.named_parameters())
    assert set(names) == {"scale", "bias"} and all(p.requires_grad for p in names.values())
    template = torch.randn(2, 3, 3, 3)
    search = torch.randn(2, 3, 7, 7)
    head(template, search).sum().backward()
    assert head.scale.grad is not None and head.bias.grad is not None
