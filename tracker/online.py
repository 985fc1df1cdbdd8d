"""The online target model: a small discriminative filter learnt on this target while it is tracked (in the style
of ATOM and DiMP, Danelljan et al. 2019), whose response is fused with the siamese one.

The siamese head asks "does this look like the first frame's template, and like an object?", so another object of
the same kind scores as high as the target. This model asks "is this *this* target, against *its* background?":

* features: the backbone's search features, which the network computes every frame anyway (the search graph's
  `features` output), projected to `channels` channels by PCA of the first frame's features (fixed afterwards);
* filter: FILTER_CELLS x FILTER_CELLS cells x `channels`, with the head's depthwise-match geometry, so that its
  response lands on the siamese response's cells;
* loss: ridge regression of every sample's response onto a Gaussian at the target, 0 everywhere else: the rest of
  each search crop, look-alikes included, are the negatives;
* memory: the first frame's augmented crops keep INIT_SHARE of the weight for good; later samples share the
  rest as a running mean until 1/`learning_rate` are held, then each new one gets `learning_rate` of it and the
  older ones decay; the lightest goes when `memory` are held;
* fit: the normal equations are kept as a running sum of the samples' Gram matrices, so a refit is CG_STEPS
  conjugate-gradient steps from the last filter, not a pass over the memory.

When to learn is LearningSchedule's call: every update_every frames tracked with confidence, at once when a second
peak rivals the target, never while uncertain or lost. `first_frame_model` starts a target's model from augmented
crops of its first frame. numpy only, so both engines run it.
"""
from __future__ import annotations

import functools

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from threadpoolctl import ThreadpoolController

from .crop import crop_square
from .response import sigmoid

FILTER_CELLS = 4  # as the box-adaptive head's depthwise match: a 16x16 map padded by 1 gives its 15x15 cells
INIT_SHARE = 0.25  # of the normal equations' weight, held by the first frame's samples for good
CG_STEPS = 5  # per refit, warm-started from the last filter


@functools.lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()  # the BLAS libraries numpy has loaded, found once


def _one_blas_thread(method):
    """Run `method` with numpy's BLAS on one thread. These matrices are small, and a multi-threaded BLAS leaves its
    workers spinning after each call: on a 2-core CPU they took the core the network (and anything else tracking
    in the same process) needed next, 2.3 ms per frame of OpenCV's TrackerNano in one `siamtrack bench` run."""
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _blas().limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)
    return wrapper


def gaussian_label(size: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    """(size, size) Gaussian of `sigma` cells peaking at centre = (row, col), in cells (fractions allowed)."""
    cells = np.arange(size, dtype=np.float64)
    rows = np.exp(-0.5 * ((cells - centre[0]) / sigma) ** 2)
    cols = np.exp(-0.5 * ((cells - centre[1]) / sigma) ** 2)
    return np.outer(rows, cols)


class OnlineTargetModel:
    """One target's filter and sample memory. Start it with the first frame's crops' features and where the target
    sits in each; then response() every frame and learn() when the loop says so."""

    @_one_blas_thread
    def __init__(self, features: np.ndarray, centres, response_size: int, *, channels: int, memory: int,
                 learning_rate: float, sigma: float, regularization: float) -> None:
        """features: (K,C,H,W) backbone features of the first frame's search crops; centres: K (row, col) target
        positions in response cells; response_size: the siamese response's side."""
        features = np.asarray(features, np.float32)
        k, c, h, w = features.shape
        pad2 = response_size + FILTER_CELLS - 1 - h
        if h != w or pad2 < 0 or pad2 % 2:
            raise ValueError(f"a {h}x{w} feature map cannot give a {response_size}x{response_size} response with a "
                             f"{FILTER_CELLS}x{FILTER_CELLS} filter")
        self.pad, self.response_size = pad2 // 2, response_size
        self.memory, self.learning_rate, self.sigma = memory, learning_rate, sigma
        self.regularization = regularization
        # PCA (uncentred, as ECO's) over every cell of the first frame's crops; fixed from here on, so every sample
        # in the memory lives in the same space.
        cells = features.transpose(0, 2, 3, 1).reshape(-1, c)
        _, _, vt = np.linalg.svd(cells.astype(np.float64), full_matrices=False)
        projection = vt[: min(channels, c)].T
        # Scaled so that a cell's projected vector has unit mean energy: the ridge weight then means the same for
        # any backbone.
        energy = float(np.mean(np.sum((cells @ projection) ** 2, axis=1)))
        self.projection = (projection / np.sqrt(max(energy, 1e-12))).astype(np.float32)
        self.channels = self.projection.shape[1]
        n = self.channels * FILTER_CELLS * FILTER_CELLS

        self._init_gram, self._init_rhs = np.zeros((n, n)), np.zeros(n)
        for one, centre in zip(features, centres):
            gram, rhs = self._normal_terms(self._project(one), centre)
            self._init_gram += gram / k
            self._init_rhs += rhs / k
        self._gram, self._rhs = np.zeros((n, n)), np.zeros(n)  # the later samples' weighted sums
        self._samples: list[tuple[np.ndarray, tuple[float, float]]] = []  # (projected features, centre)
        self._weights = np.zeros(0)
        gram, rhs = self._system()
        self.filter = np.linalg.solve(gram, rhs)
        self._refresh_kernel()

    # -- features and responses ----------------------------------------------------------------------------

    def _project(self, features: np.ndarray) -> np.ndarray:
        """(C,H,W) -> (channels, H + 2 pad, W + 2 pad): projected and zero-padded like the head's match."""
        projected = np.tensordot(self.projection, features, axes=([0], [0]))
        p = self.pad
        return np.pad(projected, ((0, 0), (p, p), (p, p)))

    def _columns(self, projected: np.ndarray) -> np.ndarray:
        """(R*R, channels*F*F): every response cell's window, in the filter's (channel, row, col) order."""
        windows = sliding_window_view(projected, (FILTER_CELLS, FILTER_CELLS), axis=(1, 2))  # (D,R,R,F,F)
        return windows.transpose(1, 2, 0, 3, 4).reshape(self.response_size ** 2, -1)

    def _normal_terms(self, projected: np.ndarray, centre) -> tuple[np.ndarray, np.ndarray]:
        """One sample's Gram matrix and right-hand side (projected features, target centre in cells)."""
        columns = self._columns(projected)
        label = gaussian_label(self.response_size, centre, self.sigma).ravel().astype(np.float32)
        # float32 products (half the time of float64), summed into float64 normal equations
        return (columns.T @ columns).astype(np.float64), (columns.T @ label).astype(np.float64)

    def _refresh_kernel(self) -> None:
        # The filter folded into the projection: one (F*F, C) matrix over the unprojected features, so a response
        # costs one small matmul and F*F shifted adds instead of a projection and a window copy.
        taps = self.filter.reshape(self.channels, FILTER_CELLS * FILTER_CELLS)
        self._kernel = (self.projection @ taps).T.astype(np.float32)

    @_one_blas_thread
    def response(self, features: np.ndarray) -> np.ndarray:
        """(C,H,W) or (N,C,H,W) backbone features -> (R,R) or (N,R,R) filter responses (about 1 on the target)."""
        features = np.asarray(features, np.float32)
        single = features.ndim == 3
        batch = features[None] if single else features
        n, c, h, w = batch.shape
        taps = np.matmul(self._kernel, batch.reshape(n, c, h * w)).reshape(n, FILTER_CELLS, FILTER_CELLS, h, w)
        p, r = self.pad, self.response_size
        taps = np.pad(taps, ((0, 0), (0, 0), (0, 0), (p, p), (p, p)))
        out = np.zeros((n, r, r), np.float32)
        for u in range(FILTER_CELLS):
            for v in range(FILTER_CELLS):
                out += taps[:, u, v, u : u + r, v : v + r]
        return out[0] if single else out

    # -- learning ------------------------------------------------------------------------------------------

    @_one_blas_thread
    def learn(self, features: np.ndarray, centre: tuple[float, float]) -> None:
        """Add one sample (a search crop's (C,H,W) features, the target at centre = (row, col) response cells) to
        the memory, dropping the lightest when full, and refit."""
        projected = self._project(np.asarray(features, np.float32))
        gram, rhs = self._normal_terms(projected, centre)
        # A running mean until 1/learning_rate samples are held, then exponential forgetting: the first sample
        # would otherwise keep weight (1 - rate)^n, most of the memory for dozens of samples.
        rate = max(self.learning_rate, 1.0 / (len(self._samples) + 1))
        self._weights *= 1 - rate
        self._gram *= 1 - rate
        self._rhs *= 1 - rate
        self._gram += rate * gram
        self._rhs += rate * rhs
        self._samples.append((projected, centre))
        self._weights = np.append(self._weights, rate)
        if len(self._samples) > self.memory:
            lightest = int(np.argmin(self._weights[:-1]))  # never the sample just added
            old_projected, old_centre = self._samples.pop(lightest)
            old_gram, old_rhs = self._normal_terms(old_projected, old_centre)
            weight = self._weights[lightest]
            self._weights = np.delete(self._weights, lightest)
            total = float(self._weights.sum())
            self._gram = (self._gram - weight * old_gram) / total
            self._rhs = (self._rhs - weight * old_rhs) / total
            self._weights /= total
        self._fit()

    @property
    def sample_count(self) -> int:
        """Samples in the memory besides the first frame's."""
        return len(self._samples)

    def _system(self) -> tuple[np.ndarray, np.ndarray]:
        if self._samples:
            gram = INIT_SHARE * self._init_gram + (1 - INIT_SHARE) * self._gram
            rhs = INIT_SHARE * self._init_rhs + (1 - INIT_SHARE) * self._rhs
        else:
            gram, rhs = self._init_gram.copy(), self._init_rhs
        gram[np.diag_indices_from(gram)] += self.regularization * np.trace(gram) / len(gram)
        return gram, rhs

    def _fit(self) -> None:
        """CG_STEPS conjugate-gradient steps on the ridge normal equations, from the current filter."""
        gram, rhs = self._system()
        f = self.filter.copy()
        residual = rhs - gram @ f
        direction = residual.copy()
        energy = float(residual @ residual)
        for _ in range(CG_STEPS):
            if energy < 1e-20:
                break
            along = gram @ direction
            step = energy / float(direction @ along)
            f += step * direction
            residual -= step * along
            new_energy = float(residual @ residual)
            direction = residual + (new_energy / energy) * direction
            energy = new_energy
        self.filter = f
        self._refresh_kernel()


def first_frame_model(frame: np.ndarray, state, engine, config) -> OnlineTargetModel:
    """A target's online model, learnt on its first frame: the search crop around the target (`state`, a
    tracking.TargetState) as it is, shifted two cells diagonally four ways, blurred, and turned 10 degrees each way
    (what the next frames may do to it). engine: the tracker's Engine; config: its TrackerConfig."""
    m = engine.config
    size, shift = m.search_size, 2 * m.stride
    middle = (engine.response_size - 1) / 2
    crops = np.empty((8, size, size, 3), np.uint8)
    centres = [(middle, middle)]
    crop_square(frame, tuple(state.center), state.search_side, size, state.fill, out=crops[0])
    for i, (dx, dy) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)], start=1):
        at = state.center + np.array([dx, dy]) * shift * state.search_side / size
        crop_square(frame, tuple(at), state.search_side, size, state.fill, out=crops[i])
        centres.append((middle - dy * shift / m.stride, middle - dx * shift / m.stride))
    crops[5] = cv2.GaussianBlur(crops[0], (0, 0), 2.0)
    for i, angle in ((6, 10), (7, -10)):
        crop_square(frame, tuple(state.center), state.search_side, size, state.fill, out=crops[i], angle=angle)
    centres += [(middle, middle)] * 3
    features = engine.search_with_features(crops, state.template)[2]
    return OnlineTargetModel(features, centres, engine.response_size, channels=config.online_channels,
                             memory=config.online_memory, learning_rate=config.online_learning_rate,
                             sigma=config.online_sigma, regularization=config.online_regularization)


def frame_sample(before_center: np.ndarray, before_side: float, center: np.ndarray, logits: np.ndarray,
                 features: np.ndarray, model_config, response_size: int) -> tuple:
    """A frame's would-be sample from its search crop (cut at `before_center`, `before_side` frame pixels wide): the
    features, the target's new `center` in response cells, and the best siamese probability more than three cells
    from it (a rival peak: a look-alike or a distractor coming close)."""
    m = model_config
    middle = (response_size - 1) / 2
    offset = (center - before_center) * m.search_size / before_side / m.stride  # (x, y) in cells
    centre = (float(middle + offset[1]), float(middle + offset[0]))
    last = response_size - 1
    row, col = (min(max(int(round(v)), 0), last) for v in centre)
    away = logits.copy()
    away[max(row - 3, 0) : row + 4, max(col - 3, 0) : col + 4] = -np.inf
    return features, centre, sigmoid(away.max())


@dataclass
class LearningSchedule:
    """When a target's online model learns: the frame's sample is proposed after its step and learnt only if the
    frame ends up "tracking", every update_every such frames, and at once when a rival peak reaches `distractor`
    (that frame holds the negative the model most needs); never while uncertain or lost."""

    update_every: int
    distractor: float
    pending: tuple | None = None  # this frame's sample: (features, target centre in cells, rival probability)
    frames_unlearnt: int = 0  # confident frames since the model last learnt

    def propose(self, sample: tuple) -> None:
        self.pending = sample

    def after_frame(self, model: OnlineTargetModel, presence_state: str, just_lost: bool) -> None:
        pending, self.pending = self.pending, None
        if pending is not None and presence_state == "tracking":
            self.frames_unlearnt += 1
            features, centre, rival = pending
            if self.frames_unlearnt >= self.update_every or rival >= self.distractor:
                model.learn(features, centre)
                self.frames_unlearnt = 0
        if just_lost:
            self.frames_unlearnt = 0  # after a re-detection, learn only once confidence has held again
