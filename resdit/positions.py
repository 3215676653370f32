"""Positional index grids for FLUX's axial RoPE, built in float32.

FLUX gives every image token the id ``(0, row, col)`` and every text token ``(0, 0, 0)``;
its ``FluxPosEmbed`` turns ids into rotary tables. ResDiT only changes the ids:

* ``extrapolate``: plain integers ``0..H-1`` (what the stock pipeline does at any size);
* ``scaled`` (PES): ``row / s_h`` with ``s_h = H / h`` (never below 1: a grid smaller than
  the base keeps its integer indices, a size the model was trained on);
* ``patch``: each token's offset inside its nearest window (condition (d));
* ``window`` (PIPE): ``0..h-1 x 0..w-1`` for one window, shared by all windows.

The stock pipeline builds ids in the prompt embeddings' dtype, bf16 for real FLUX, which is
exact only up to 256: beyond 4096 px rows collide and scaled fractional ids round. Ids here
are always float32.

Example:
    >>> scaled_ids((4, 4), (2, 2))[:, 1].tolist()[:8]
    [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5]
"""

from __future__ import annotations

import torch

from .geometry import WindowPartition


def _ids(rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``[H*W, 3]`` ids from per-token row and col coordinates (each ``[H*W]``)."""
    return torch.stack([torch.zeros_like(rows), rows, cols], -1).float()


def _mesh(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    r, c = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    return r.reshape(-1), c.reshape(-1)


def extrapolated_ids(grid: tuple[int, int]) -> torch.Tensor:
    """Plain integer ids ``[H*W, 3]`` (the original FLUX grid)."""
    return _ids(*_mesh(*grid))


def scale_factors(grid: tuple[int, int], base: tuple[int, int]) -> tuple[float, float]:
    """Per-axis ``s = max(H / h, 1)``."""
    return max(grid[0] / base[0], 1.0), max(grid[1] / base[1], 1.0)


def scaled_ids(grid: tuple[int, int], base: tuple[int, int]) -> torch.Tensor:
    """PES ids ``[H*W, 3]``: row ``i -> i / s_h``, col ``j -> j / s_w``."""
    r, c = _mesh(*grid)
    sh, sw = scale_factors(grid, base)
    return _ids(r / sh, c / sw)


def patch_ids(partition: WindowPartition) -> torch.Tensor:
    """Per-patch ids ``[H*W, 3]``: every token's offset inside its nearest window."""
    rc = partition.local_rc.to(torch.float64)
    return _ids(rc[:, 0], rc[:, 1])


def window_ids(window: tuple[int, int]) -> torch.Tensor:
    """PIPE ids ``[wh*ww, 3]`` of one window, shared by every window."""
    return _ids(*_mesh(*window))


def global_ids(kind: str, grid: tuple[int, int], base: tuple[int, int], partition: WindowPartition) -> torch.Tensor:
    """The global branch's ids for a :class:`~resdit.config.ModeSpec` ``global_ids`` value."""
    if kind == "extrapolate":
        return extrapolated_ids(grid)
    if kind == "scaled":
        return scaled_ids(grid, base)
    if kind == "patch":
        return patch_ids(partition)
    raise ValueError(f"Unknown global index grid {kind!r}.")


# ----------------------------------------------------------------------------- RoPE frequencies
# FLUX's axial RoPE: axis a of ``axes_dim[a]`` channels rotates at ``theta^(-2i/d)``, i < d/2.
# The baselines change these frequencies instead of (or as well as) the indices.


def base_frequencies(dim: int, theta: float) -> torch.Tensor:
    """``[dim / 2]`` float64 frequencies ``theta^(-2i/dim)`` (as ``FluxPosEmbed``)."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))


def ntk_frequencies(dim: int, theta: float, scale: float, theta_factor: float = 10.0) -> torch.Tensor:
    """NTK-aware RoPE, the I-Max recipe: ``theta x theta_factor``, every frequency clipped from
    below by plain position interpolation (``base / scale``) so none is compressed further than PI.

    I-Max (Du et al., 2024), "NTK-aware scaled RoPE with theta x 10, clipped by interpolation".
    """
    ntk = base_frequencies(dim, theta * theta_factor)
    return torch.maximum(ntk, base_frequencies(dim, theta) / max(scale, 1.0))


def dynamic_ntk_frequencies(dim: int, theta: float, scale: float) -> torch.Tensor:
    """NTK-by-parts' dynamic form: ``theta' = theta * scale^(dim / (dim - 2))`` (scale 1: base RoPE).

    Used by DyPE (Issachar et al., 2025) with a scale that decays with the noise level.
    """
    if dim <= 2 or scale <= 1.0:
        return base_frequencies(dim, theta)
    return base_frequencies(dim, theta * scale ** (dim / (dim - 2)))


def rope_table(ids: torch.Tensor, axes_dim, theta: float, frequencies: list[torch.Tensor] | None = None):
    """``(cos, sin)`` each ``[S, sum(axes_dim)]`` float32 from ids ``[S, n_axes]`` and per-axis
    frequencies (None: FLUX's base ones; the result then equals ``FluxPosEmbed(ids)``)."""
    cos_out, sin_out = [], []
    pos = ids.float()
    for a, dim in enumerate(axes_dim):
        freqs = base_frequencies(dim, theta) if frequencies is None or frequencies[a] is None else frequencies[a]
        angles = torch.outer(pos[:, a], freqs.to(pos.device))
        cos_out.append(angles.cos().repeat_interleave(2, dim=1).float())
        sin_out.append(angles.sin().repeat_interleave(2, dim=1).float())
    return torch.cat(cos_out, -1), torch.cat(sin_out, -1)
