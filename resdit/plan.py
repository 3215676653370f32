"""Everything ResDiT needs for one resolution, built once per generation and size.

A :class:`Plan` holds the window partition, the rotary tables of both branches, the PSF
mask and the global branch's attention scale. Layers and steps share it: rotary tables are
never rebuilt per layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ResDiTConfig, ResDiTConfigError
from .geometry import WindowPartition
from .positions import global_ids, window_ids
from .spectral import radial_mask


@dataclass
class Plan:
    """Per-resolution tensors.

    Attributes:
        grid, base: image token grids ``(H, W)`` now and at training size.
        text_len: number of text tokens T (text comes first in FLUX's joint sequence).
        partition: the local branch's windows.
        global_ids, local_ids: image ids ``[H*W, 3]`` and ``[windows, wh*ww, 3]`` (float32).
        global_rope: ``(cos, sin)`` each ``[T + H*W, head_dim]``.
        local_rope: ``(cos, sin)`` each ``[T + wh*ww, head_dim]`` (one table for all windows)
            or ``[windows, T + wh*ww, head_dim]`` (per window).
        mask: PSF mask ``[wh, ww // 2 + 1]``.
        global_scale: softmax scale of the global branch (None: the default ``1/sqrt(d)``).
    """

    grid: tuple[int, int]
    base: tuple[int, int]
    text_len: int
    partition: WindowPartition
    global_ids: torch.Tensor
    local_ids: torch.Tensor | None
    global_rope: tuple[torch.Tensor, torch.Tensor]
    local_rope: tuple[torch.Tensor, torch.Tensor] | None
    mask: torch.Tensor
    global_scale: float | None

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]


def proportional_scale(image_tokens: int, base_tokens: int, head_dim: int) -> float | None:
    """``sqrt(log N / log n) / sqrt(d)`` for N > n (I-Max, Lumina-Next); None otherwise."""
    if image_tokens <= base_tokens or base_tokens < 2:
        return None
    return math.sqrt(math.log(image_tokens) / math.log(base_tokens)) / math.sqrt(head_dim)


def build_plan(cfg: ResDiTConfig, pos_embed, grid: tuple[int, int], base: tuple[int, int], txt_ids: torch.Tensor,
               head_dim: int, device) -> Plan:
    """Build the :class:`Plan` for one image grid.

    Args:
        pos_embed: the model's ``FluxPosEmbed`` (ids ``[S, 3]`` -> ``(cos, sin)``).
        txt_ids: ``[T, 3]`` text ids as the pipeline passed them.
    """
    spec = cfg.spec
    if min(grid) < 1:
        raise ResDiTConfigError(f"Empty token grid {grid}.")
    partition = WindowPartition.build(grid, base, layout=spec.windows, weighting=spec.weights, sigma=cfg.sigma)
    wh, ww = partition.window
    if spec.local_ids is not None and min(wh, ww) < 2:
        raise ResDiTConfigError(
            f"Windows of {wh}x{ww} tokens are too small for the local branch; the image grid {grid} must be at "
            "least 2 tokens along each axis."
        )
    txt = txt_ids.to(device=device, dtype=torch.float32)
    gids = global_ids(spec.global_ids, grid, base, partition).to(device)
    global_rope = pos_embed(torch.cat([txt, gids]))
    local_ids = local_rope = None
    if spec.local_ids == "window":
        local_ids = window_ids((wh, ww)).to(device).expand(partition.num_windows, -1, -1)
        local_rope = pos_embed(torch.cat([txt, local_ids[0]]))
    elif spec.local_ids == "global":
        part = partition.to(device)
        local_ids = gids[part.index]
        text_rows = torch.arange(txt.shape[0], device=device).expand(partition.num_windows, -1)
        rows = torch.cat([text_rows, part.index + txt.shape[0]], 1)  # [windows, T + L]
        local_rope = tuple(t[rows] for t in global_rope)
    scale = proportional_scale(grid[0] * grid[1], base[0] * base[1], head_dim) if cfg.proportional_attention else None
    return Plan(grid, base, txt.shape[0], partition.to(device), gids, local_ids, tuple(global_rope),
                None if local_rope is None else tuple(local_rope), radial_mask((wh, ww), cfg.cutoff).to(device), scale)
