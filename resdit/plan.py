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
from .fusion import build_partition
from .geometry import WindowPartition
from .positions import dynamic_ntk_frequencies, global_ids, ntk_frequencies, rope_table, scale_factors, window_ids
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
        pooled: the fused phase's pooled global branch (``config.pool > 1``), else None.
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
    pooled: "PooledGlobal | None" = None

    @property
    def image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]


@dataclass
class PooledGlobal:
    """The global branch on ``p x p`` blocks of the image grid (the last row and column of blocks may be partial).

    Attributes:
        factor: ``p``.
        grid: pooled grid ``(ceil(H / p), ceil(W / p))``.
        rope: ``(cos, sin)`` each ``[T + Hp*Wp, head_dim]``: text, then each block's mean position.
        key_bias: ``[T + Hp*Wp]`` added to the logits: 0 for text, ``log(tokens in the block)`` for a block, so a
            block's key carries the attention mass of the tokens it stands for.
    """

    factor: int
    grid: tuple[int, int]
    rope: tuple[torch.Tensor, torch.Tensor]
    key_bias: torch.Tensor


def pool_grid(x: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    """Mean over ``p x p`` blocks of row-major tokens ``[B, H*W, C]`` -> ``[B, Hp*Wp, C]`` (partial edge blocks
    average the tokens they hold)."""
    b, _, c = x.shape
    image = x.transpose(1, 2).reshape(b, c, *grid)
    pooled = torch.nn.functional.avg_pool2d(image, p, p, ceil_mode=True, count_include_pad=False)
    return pooled.flatten(2).transpose(1, 2)


def unpool_grid(x: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    """Bilinear upsampling of block outputs ``[B, Hp*Wp, C]`` back to ``[B, H*W, C]`` (block centres land on the
    centres of their ``p x p`` tokens)."""
    b, _, c = x.shape
    hp, wp = -(-grid[0] // p), -(-grid[1] // p)
    image = x.transpose(1, 2).reshape(b, c, hp, wp)
    up = torch.nn.functional.interpolate(image, size=(hp * p, wp * p), mode="bilinear", align_corners=False)
    return up[:, :, :grid[0], :grid[1]].flatten(2).transpose(1, 2)


def _pooled_global(pos_embed, txt, gids, grid, base, variant, p: int) -> PooledGlobal:
    ids = pool_grid(gids[None].double(), grid, p)[0].float()
    rows = torch.tensor([min(p, grid[0] - i) for i in range(0, grid[0], p)], dtype=torch.float32)
    cols = torch.tensor([min(p, grid[1] - j) for j in range(0, grid[1], p)], dtype=torch.float32)
    counts = (rows[:, None] * cols[None, :]).reshape(-1).to(gids.device)
    bias = torch.cat([torch.zeros(txt.shape[0], device=gids.device), counts.log()])
    rope = _global_rope(pos_embed, torch.cat([txt, ids]), variant, grid, base)
    return PooledGlobal(p, (len(rows), len(cols)), tuple(rope), bias)


def proportional_scale(image_tokens: int, base_tokens: int, head_dim: int) -> float | None:
    """``sqrt(log N / log n) / sqrt(d)`` for N > n (I-Max, Lumina-Next); None otherwise."""
    if image_tokens <= base_tokens or base_tokens < 2:
        return None
    return math.sqrt(math.log(image_tokens) / math.log(base_tokens)) / math.sqrt(head_dim)


def rope_variant(cfg: ResDiTConfig, progress: float | None, sigma: float | None) -> tuple[str, str, float]:
    """``(global ids kind, frequency kind, parameter)`` of the global branch at one step.

    ``progress`` is ``step / num_steps``; ``sigma`` the noise level in [0, 1] (flow matching).
    """
    spec = cfg.spec
    if spec.rope == "base":
        return spec.global_ids, "base", 0.0
    if spec.rope == "ntk":
        return "extrapolate", "ntk", cfg.ntk_factor
    if spec.rope == "time_aware":
        if progress is None or progress < cfg.watershed:
            return "scaled", "base", 0.0
        return "extrapolate", "ntk", cfg.ntk_factor
    if spec.rope == "dype":
        t = 1.0 if sigma is None else min(max(sigma, 0.0), 1.0)
        return "extrapolate", "dynamic", round(t * t, 4)
    raise ResDiTConfigError(f"Unknown RoPE variant {spec.rope!r}.")


def _global_rope(pos_embed, ids: torch.Tensor, variant, grid, base):
    """Global rotary table for ids ``[S, 3]`` under a frequency variant."""
    _, kind, param = variant
    if kind == "base":
        return pos_embed(ids)
    axes, theta = list(pos_embed.axes_dim), pos_embed.theta
    scales = (1.0, *scale_factors(grid, base))  # axis 0 (unused by FLUX images) keeps its frequencies
    if kind == "ntk":
        freqs = [None] + [ntk_frequencies(axes[a], theta, scales[a], param) for a in (1, 2)]
    elif kind == "dynamic":  # scale decays from s (pure noise, t = 1) to 1 (clean) as 1 + (s - 1) t^2
        freqs = [None] + [dynamic_ntk_frequencies(axes[a], theta, 1 + (scales[a] - 1) * param) for a in (1, 2)]
    else:
        raise ResDiTConfigError(f"Unknown frequency variant {kind!r}.")
    return rope_table(ids, axes, theta, freqs)


def build_plan(cfg: ResDiTConfig, pos_embed, grid: tuple[int, int], base: tuple[int, int], txt_ids: torch.Tensor,
               head_dim: int, device, variant: tuple[str, str, float] | None = None) -> Plan:
    """Build the :class:`Plan` for one image grid.

    Args:
        pos_embed: the model's ``FluxPosEmbed`` (ids ``[S, 3]`` -> ``(cos, sin)``).
        txt_ids: ``[T, 3]`` text ids as the pipeline passed them.
        variant: from :func:`rope_variant` (None: the mode's own index grid, base frequencies).
    """
    spec = cfg.spec
    variant = variant or (spec.global_ids, "base", 0.0)
    if min(grid) < 1:
        raise ResDiTConfigError(f"Empty token grid {grid}.")
    partition = build_partition(cfg, grid, base)
    wh, ww = partition.window
    if spec.local_ids is not None and min(wh, ww) < 2:
        raise ResDiTConfigError(
            f"Windows of {wh}x{ww} tokens are too small for the local branch; the image grid {grid} must be at "
            "least 2 tokens along each axis."
        )
    txt = txt_ids.to(device=device, dtype=torch.float32)
    gids = global_ids(variant[0], grid, base, partition).to(device)
    global_rope = _global_rope(pos_embed, torch.cat([txt, gids]), variant, grid, base)
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
    scale = (proportional_scale(grid[0] * grid[1], base[0] * base[1], head_dim)
             if cfg.uses_proportional_attention else None)
    pooled = None
    if cfg.pool > 1 and spec.schedule == "phased" and (grid[0] > base[0] or grid[1] > base[1]):  # identity at base
        pooled = _pooled_global(pos_embed, txt, gids, grid, base, variant, cfg.pool)
    return Plan(grid, base, txt.shape[0], partition.to(device), gids, local_ids, tuple(global_rope),
                None if local_rope is None else tuple(local_rope), radial_mask((wh, ww), cfg.cutoff).to(device), scale,
                pooled)
