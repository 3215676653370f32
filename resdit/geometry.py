"""Partition geometry: minimum-overlap window starts (MOP), Gaussian splice weights (GWS).

A token grid of ``H x W`` tokens is cut into windows of the base grid's size ``h x w``.
Along each axis the windows start at :func:`window_starts`; every window is the same size,
so all windows can be gathered into one batch. Outputs of overlapping windows are spliced
back with normalised weights that form a partition of unity.

Example:
    >>> window_starts(256, 64)
    [0, 48, 96, 144, 192]
    >>> part = WindowPartition.build((24, 24), (16, 16))
    >>> part.num_windows, part.window
    (4, (16, 16))
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch

from .config import QUARTER, ResDiTConfigError
from .schedule import round_half_up


def least_overlap(rule: int | str, window: int) -> int:
    """The least overlap in tokens that ``rule`` asks of windows of ``window`` tokens: a number is itself,
    :data:`QUARTER` is ``max(1, window // 4)`` (4 of the toy's 16 tokens, 16 of FLUX.1's 64).

    Example:
        >>> least_overlap("quarter", 16), least_overlap("quarter", 64), least_overlap("quarter", 3), least_overlap(2, 16)
        (4, 16, 1, 2)
    """
    if rule == QUARTER:
        return max(1, window // 4)
    if isinstance(rule, str):
        raise ResDiTConfigError(f"window_overlap={rule!r}: use a whole number of tokens or {QUARTER!r}.")
    return rule


def window_starts(length: int, window: int, align: int = 1, min_overlap: int | str = 1) -> list[int]:
    """Minimum-overlap partition of ``length`` tokens into windows of ``window`` tokens.

    One window if ``length <= window``. Otherwise the smallest ``N > length / window`` with
    starts ``round((k - 1) (length - window) / (N - 1))``, ``k = 1..N``, such that every
    rounded stride is below ``window`` (rounding alone can make a stride equal the window,
    which would leave a seam with no overlap; SPEC 1 decision).

    With ``align`` > 1 every start but the last (which ends the window at ``length``) is rounded to a multiple of
    ``align`` instead, so the windows' origins differ by multiples of ``align`` tokens where they overlap: a model
    that draws a texture in phase with its canvas' edge (a window's edge is one) then draws it in the same phase in
    both windows, and the splice keeps it (docs/decisions.md, "Window starts on even tokens"). As without
    alignment, the smallest ``N`` whose rounded starts keep every stride under the window (every multiple of
    ``align`` at worst).

    With ``min_overlap`` > 1 every two neighbouring windows overlap by at least that many tokens (every stride at
    most ``window - min_overlap``): the smallest ``N`` whose starts do. A splice crossfades over the overlap, so
    one of 2 tokens (MOP's at 8x of a 16-token window) is nearly a cut (docs/decisions.md, "A least window
    overlap"). 1 is the minimum-overlap partition as specified; ``"quarter"`` a quarter of the window
    (:func:`least_overlap`).

    Example:
        >>> window_starts(128, 16, 2), window_starts(128, 16, 2, min_overlap=4)[:4]
        ([0, 14, 28, 42, 56, 70, 84, 98, 112], [0, 12, 22, 34])

    Raises:
        ResDiTConfigError: for a window of fewer than 2 tokens, a non-positive length, ``align`` not in
            ``[1, window)``, ``min_overlap`` not in ``[1, window)``, or a stride of ``align`` that would overlap by
            less than ``min_overlap``.
    """
    if length < 1:
        raise ResDiTConfigError(f"length={length} must be >= 1 token.")
    if window < 2:
        raise ResDiTConfigError(f"A window of {window} token(s) cannot overlap its neighbours; use at least 2.")
    if length <= window:
        return [0]
    min_overlap = least_overlap(min_overlap, window)
    if isinstance(align, bool) or not isinstance(align, int) or not 1 <= align < window:
        raise ResDiTConfigError(f"window_align={align!r} must be a whole number of tokens in [1, {window}) (the "
                                f"window is {window} tokens; 1: no alignment).")
    if isinstance(min_overlap, bool) or not isinstance(min_overlap, int) or not 1 <= min_overlap < window:
        raise ResDiTConfigError(f"window_overlap={min_overlap!r} must be a whole number of tokens in [1, {window}) "
                                f"(the window is {window} tokens; 1: the minimum-overlap partition).")
    stride = window - min_overlap  # the longest stride allowed
    if align > stride:
        raise ResDiTConfigError(f"window_align={align} and window_overlap={min_overlap} cannot both hold with windows "
                                f"of {window} tokens (aligned starts step by at least {align}, an overlap of "
                                f"{min_overlap} allows at most {stride}); lower one of them.")
    span = length - window
    n = length // window + 1  # smallest integer > length / window
    while n <= span // align + 2:  # beyond that the aligned starts repeat
        starts = [align * round_half_up(k * span / (n - 1) / align) for k in range(n - 1)] + [span]
        if all(0 < b - a <= stride for a, b in zip(starts, starts[1:])):
            return starts
        n += 1
    return sorted({*range(0, span, align), span})  # every aligned start: strides of align (<= stride) and the rest


def grid_starts(length: int, window: int) -> list[int]:
    """Hard, non-overlapping tiling (the ``w/o MOP and GWS`` ablation).

    Starts at multiples of ``window``; if ``length`` is not a multiple, the last window is
    moved back to end at ``length`` (the only overlap).
    """
    if length <= window:
        return [0]
    starts = list(range(0, length - window + 1, window))
    if starts[-1] + window < length:
        starts.append(length - window)
    return starts


def feather_ramps(starts: list[int], window: int) -> list[torch.Tensor]:
    """Per window along one axis, ``[window]`` float64 splice weights: 1, times ``sin^2`` rising over the overlap
    with the previous window and ``cos^2`` falling over the overlap with the next, on token centres. Where two
    windows overlap their weights sum to 1 and each reaches 0 at its own edge: no weight steps at a window
    border (GWS's truncated Gaussian jumps there). Image edges keep weight 1.

    Example:
        >>> [round(x, 2) for x in feather_ramps([0, 12, 24], 16)[0].tolist()[11:]]
        [1.0, 0.96, 0.69, 0.31, 0.04]
    """
    r = torch.arange(window, dtype=torch.float64)
    out = []
    for k, s in enumerate(starts):
        w = torch.ones(window, dtype=torch.float64)
        if k > 0 and starts[k - 1] + window > s:
            ov = starts[k - 1] + window - s
            w = torch.where(r < ov, torch.sin(math.pi / 2 * (r + 0.5) / ov) ** 2, w)
        if k < len(starts) - 1 and s + window > starts[k + 1]:
            ov = s + window - starts[k + 1]
            w = w * torch.where(r >= window - ov, torch.cos(math.pi / 2 * (r - (window - ov) + 0.5) / ov) ** 2, 1.0)
        out.append(w)
    return out


@dataclass
class WindowPartition:
    """Windows over an ``H x W`` token grid, ready to gather and splice in one batch.

    Attributes:
        grid: ``(H, W)`` tokens.
        window: ``(wh, ww)`` tokens per window (the base grid, clipped to the image).
        starts: per-axis window starts ``(rows, cols)``.
        index: ``[windows, wh * ww]`` long, row-major token index of each window's tokens.
        weights: ``[windows, wh * ww]`` splice weights; for every token, the weights of the
            windows covering it sum to 1.
        local_rc: ``[H * W, 2]`` the (row, col) of each token inside the window whose centre
            is nearest (used by the per-patch index grid).
    """

    grid: tuple[int, int]
    window: tuple[int, int]
    starts: tuple[list[int], list[int]]
    index: torch.Tensor
    weights: torch.Tensor
    local_rc: torch.Tensor

    @property
    def num_windows(self) -> int:
        return self.index.shape[0]

    @classmethod
    def build(cls, grid: tuple[int, int], base: tuple[int, int], layout: str = "mop", weighting: str = "gaussian",
              sigma: float = 0.5, align: int = 1, min_overlap: int | str = 1) -> "WindowPartition":
        """Partition ``grid`` into windows of ``base`` (clipped to ``grid``) tokens.

        Args:
            layout: ``"mop"`` (minimum overlap) or ``"grid"`` (hard tiling).
            weighting: ``"gaussian"`` (``exp(-d^2 / 2 sigma^2)`` around each window centre,
                sigma in window units per axis), ``"uniform"``, or ``"feather"`` (1 inside a window, a raised-cosine
                crossfade over each overlap with a neighbour, so a window's weight falls to zero at every edge that
                lies inside the image: :func:`feather_ramps`; ``sigma`` unused).
            align: MOP's window starts on multiples of ``align`` tokens (:func:`window_starts`); the grid layout's
                starts are multiples of the window already.
            min_overlap: MOP's neighbouring windows overlap by at least this many tokens, or by ``"quarter"`` of the
                window on each axis (:func:`window_starts`); the grid layout's hard tiles have no overlap to widen, and refuse any value but 1.
        """
        H, W = grid
        wh, ww = min(base[0], H), min(base[1], W)
        if layout not in ("mop", "grid"):
            raise ResDiTConfigError(f"Unknown window layout {layout!r}; use 'mop' or 'grid'.")
        if weighting not in ("gaussian", "uniform", "feather"):
            raise ResDiTConfigError(f"Unknown splice weighting {weighting!r}; use 'gaussian', 'uniform' or 'feather'.")
        if layout == "grid" and min_overlap != 1:
            raise ResDiTConfigError(f"min_overlap={min_overlap!r}: the grid layout's tiles do not overlap; use "
                                    "layout='mop' to widen the windows' overlap.")
        if layout == "mop":
            rows, cols = window_starts(H, wh, align, min_overlap), window_starts(W, ww, align, min_overlap)
        else:
            rows, cols = grid_starts(H, wh), grid_starts(W, ww)
        r = torch.arange(wh)
        c = torch.arange(ww)
        index = torch.stack([((y0 + r)[:, None] * W + (x0 + c)[None, :]).reshape(-1) for y0 in rows for x0 in cols])
        if weighting == "gaussian":
            dy = (r - (wh - 1) / 2.0) / (sigma * wh)
            dx = (c - (ww - 1) / 2.0) / (sigma * ww)
            log_raw = (-0.5 * (dy[:, None] ** 2 + dx[None, :] ** 2)).reshape(-1)
        else:
            log_raw = torch.zeros(wh * ww)
        raw = torch.exp(log_raw).double().expand(index.shape[0], -1)
        log_raw = log_raw.double().expand(index.shape[0], -1)
        if weighting == "feather":  # per window: its ramps depend on its neighbours
            ry, rx = feather_ramps(rows, wh), feather_ramps(cols, ww)
            raw = torch.stack([(a[:, None] * b[None, :]).reshape(-1) for a in ry for b in rx])
            log_raw = raw.log()
        flat = index.reshape(-1)
        total = torch.zeros(H * W, dtype=torch.float64).index_add_(0, flat, raw.reshape(-1))
        if not bool((total > 0).all()):  # a narrow splice underflowed somewhere: normalise in log space instead,
            # where each token's largest weight is exp(0), so no width gives 0 / 0
            peak = torch.full((H * W,), -math.inf, dtype=torch.float64).scatter_reduce(0, flat, log_raw.reshape(-1),
                                                                                      "amax")
            raw = torch.exp(log_raw - peak[index])
            total = torch.zeros(H * W, dtype=torch.float64).index_add_(0, flat, raw.reshape(-1))
        weights = (raw / total[index]).float()
        # Nearest window centre per token, per axis (windows form a product grid).
        local_r = _nearest_local(H, rows, wh)
        local_c = _nearest_local(W, cols, ww)
        local_rc = torch.stack([local_r[:, None].expand(H, W), local_c[None, :].expand(H, W)], -1).reshape(-1, 2)
        return cls((H, W), (wh, ww), (rows, cols), index, weights, local_rc)

    def to(self, device) -> "WindowPartition":
        return WindowPartition(self.grid, self.window, self.starts, self.index.to(device), self.weights.to(device),
                               self.local_rc.to(device))

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, H*W, ...]`` -> ``[B, windows, wh*ww, ...]``."""
        return x[:, self.index]

    def splice(self, windows: torch.Tensor) -> torch.Tensor:
        """Weighted splice ``[B, windows, wh*ww, C]`` -> ``[B, H*W, C]``."""
        b, n, L, ch = windows.shape
        weighted = (windows * self.weights.to(windows.dtype)[None, :, :, None]).reshape(b, n * L, ch)
        out = windows.new_zeros(b, self.grid[0] * self.grid[1], ch)
        return out.index_add_(1, self.index.reshape(-1), weighted)


def _nearest_local(length: int, starts: list[int], window: int) -> torch.Tensor:
    """For each position along an axis, its offset inside the window with the nearest centre."""
    pos = torch.arange(length, dtype=torch.float64)
    centres = torch.tensor([s + (window - 1) / 2.0 for s in starts], dtype=torch.float64)
    nearest = (pos[:, None] - centres[None, :]).abs().argmin(1)  # ties -> first window
    return (pos - torch.tensor(starts, dtype=torch.float64)[nearest]).long()
